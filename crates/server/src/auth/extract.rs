//! `AuthUser`: a handler that takes it cannot run for an unauthenticated request.
//!
//! The bearer credential is either an access token (JWT, tied to a live login session) or an
//! API key (`sgk_…`). Read-only keys are refused on any method that can change data.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{Method, header};
use chrono::Utc;
use uuid::Uuid;

use super::cache::CurrentUser;
pub use super::identity::{AuthUser, AuthVia, ClientInfo, SessionUser};
use super::jwt::TokenError;
use super::tokens::{API_KEY_PREFIX, digest};
use crate::db::entity::api_key::Scope;
use crate::db::{api_keys, sessions, users};
use crate::error::Error;
use crate::state::AppState;

fn bearer(parts: &Parts) -> Result<&str, Error> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| {
            Error::unauthorized(
                "missing-credentials",
                "Send `Authorization: Bearer <access token or API key>`.",
            )
        })?
        .to_str()
        .map_err(|_| {
            Error::unauthorized("invalid-token", "The Authorization header is not valid.")
        })?;
    let (scheme, token) = value.split_once(' ').ok_or_else(|| {
        Error::unauthorized(
            "invalid-token",
            "The Authorization header must be `Bearer <token>`.",
        )
    })?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(Error::unauthorized(
            "invalid-token",
            "The Authorization header must be `Bearer <token>`.",
        ));
    }
    Ok(token.trim())
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        if let Some(user) = parts.extensions.get::<AuthUser>() {
            return Ok(user.clone());
        }
        let token = bearer(parts)?;
        let user = if token.starts_with(API_KEY_PREFIX) {
            let user = from_api_key(state, token).await?;
            if let AuthVia::ApiKey {
                scope: Scope::Read, ..
            } = user.via
                && !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS)
            {
                return Err(Error::forbidden(
                    "insufficient-scope",
                    "This API key is read-only; it cannot change data.",
                ));
            }
            user
        } else {
            from_access_token(state, token).await?
        };
        tracing::Span::current().record("user.id", tracing::field::display(user.user.id));
        parts.extensions.insert(user.clone());
        Ok(user)
    }
}

impl FromRequestParts<AppState> for SessionUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let auth = AuthUser::from_request_parts(parts, state).await?;
        match auth.via {
            AuthVia::Session(session_id) => Ok(Self {
                user: auth.user,
                session_id,
            }),
            AuthVia::ApiKey { .. } => Err(Error::forbidden(
                "session-required",
                "Sign in with a password to manage sessions, API keys or your password; API keys cannot.",
            )),
        }
    }
}

async fn from_access_token(state: &AppState, token: &str) -> Result<AuthUser, Error> {
    let claims = state.jwt.verify(token).map_err(|err| match err {
        TokenError::Expired => Error::unauthorized(
            "token-expired",
            "The access token has expired; get a new one with your refresh token.",
        ),
        TokenError::Invalid => {
            Error::unauthorized("invalid-token", "The access token is not valid.")
        }
    })?;
    session_user(state, claims.sub, claims.sid).await
}

/// The user of a login session that is still live, the user not disabled: for access tokens,
/// and again when a WebSocket ticket asked with that session is redeemed.
pub async fn session_user(
    state: &AppState,
    user_id: Uuid,
    session_id: Uuid,
) -> Result<AuthUser, Error> {
    if let Some(cached) = state.sessions.get(session_id)
        && cached.user.id == user_id
    {
        return Ok(AuthUser {
            user: cached.user,
            via: AuthVia::Session(session_id),
        });
    }
    let session = sessions::find(&state.db, session_id)
        .await?
        .filter(|s| s.user_id == user_id)
        .ok_or_else(|| {
            Error::unauthorized("session-revoked", "This session has ended; sign in again.")
        })?;
    if session.revoked_at.is_some() || session.expires_at <= Utc::now() {
        return Err(Error::unauthorized(
            "session-revoked",
            "This session has ended; sign in again.",
        ));
    }
    let user = live_user(state, user_id).await?;
    state
        .sessions
        .insert(session.id, user.clone(), session.expires_at);
    Ok(AuthUser {
        user,
        via: AuthVia::Session(session.id),
    })
}

async fn from_api_key(state: &AppState, key: &str) -> Result<AuthUser, Error> {
    let found = api_keys::find_usable_by_hash(&state.db, &digest(key))
        .await?
        .ok_or_else(invalid_api_key)?;
    key_user(state, found).await
}

/// The user of an API key, by id, if the key is still usable and the user not disabled: for
/// redeeming a WebSocket ticket asked with that key.
pub async fn api_key_user(
    state: &AppState,
    user_id: Uuid,
    key_id: Uuid,
) -> Result<AuthUser, Error> {
    let found = api_keys::find(&state.db, user_id, key_id)
        .await?
        .filter(|k| k.expires_at.is_none_or(|at| at > Utc::now()))
        .ok_or_else(invalid_api_key)?;
    key_user(state, found).await
}

fn invalid_api_key() -> Error {
    Error::unauthorized(
        "invalid-api-key",
        "This API key is not valid or has been revoked.",
    )
}

async fn key_user(state: &AppState, found: api_keys::ApiKey) -> Result<AuthUser, Error> {
    let user = live_user(state, found.user_id).await?;
    // One write a minute at most per key: enough to tell when a key was last used.
    if found
        .last_used_at
        .is_none_or(|at| Utc::now() - at > chrono::Duration::seconds(60))
    {
        api_keys::touch(&state.db, found.id).await?;
    }
    Ok(AuthUser {
        user,
        via: AuthVia::ApiKey {
            id: found.id,
            scope: found.scope,
        },
    })
}

async fn live_user(state: &AppState, id: Uuid) -> Result<CurrentUser, Error> {
    let user = users::find_by_id(&state.db, id)
        .await?
        .ok_or_else(|| Error::unauthorized("invalid-token", "The account no longer exists."))?;
    if user.disabled_at.is_some() {
        return Err(Error::unauthorized(
            "account-disabled",
            "This account has been disabled.",
        ));
    }
    Ok(CurrentUser {
        id: user.id,
        email: user.email,
        role: user.role,
        locale: user.locale,
        created_at: user.created_at,
    })
}

impl FromRequestParts<AppState> for ClientInfo {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let ip = crate::http::forwarded::client_ip(&parts.headers, peer, &state.config.http)
            .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let request_id = parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Self {
            ip,
            user_agent,
            request_id,
        })
    }
}
