//! Who is asking: the signed-in user and how they signed in, and where the request came from.
//! The HTTP layer's extractors (`auth::extract`) build these; services take them as plain
//! values.

use uuid::Uuid;

use super::cache::CurrentUser;
use crate::db::entity::api_key::Scope;

#[derive(Clone, Debug)]
pub struct AuthUser {
    pub user: CurrentUser,
    pub via: AuthVia,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthVia {
    Session(Uuid),
    ApiKey { id: Uuid, scope: Scope },
}

impl AuthUser {
    pub fn session_id(&self) -> Option<Uuid> {
        match self.via {
            AuthVia::Session(id) => Some(id),
            AuthVia::ApiKey { .. } => None,
        }
    }
}

/// An `AuthUser` signed in with a password (a session), not an API key: required to manage
/// sessions, API keys and the password itself.
pub struct SessionUser {
    pub user: CurrentUser,
    pub session_id: Uuid,
}

/// Who is calling from where: for sessions, login throttling and logs.
#[derive(Clone, Debug)]
pub struct ClientInfo {
    pub ip: String,
    pub user_agent: Option<String>,
    /// The request's `x-request-id` (set for every request by the middleware).
    pub request_id: Option<String>,
}
