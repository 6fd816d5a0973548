//! `/admin`: users (search, role, disable), their usage and quotas, and the audit log. Only
//! for the `admin` role; everyone else gets 403. Every change is written to the audit log.

pub mod routes;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use garde::Validate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::identity::AuthUser;
use crate::db::entity::user::Role;
use crate::db::users;
use crate::error::{Error, OrNotFound};
use crate::quotas::{self, Limits, Overrides};
use crate::state::AppState;

/// A signed-in admin.
pub struct Admin(pub AuthUser);

impl FromRequestParts<AppState> for Admin {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let auth = AuthUser::from_request_parts(parts, state).await?;
        if auth.user.role != Role::Admin {
            return Err(Error::forbidden(
                "admin-required",
                "This needs the admin role.",
            ));
        }
        Ok(Self(auth))
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AdminUser {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
    pub disabled: bool,
    pub disabled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<users::User> for AdminUser {
    fn from(u: users::User) -> Self {
        Self {
            id: u.id,
            email: u.email,
            role: u.role,
            disabled: u.disabled_at.is_some(),
            disabled_at: u.disabled_at,
            created_at: u.created_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserSearch {
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    #[param(
        pattern = "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})?$"
    )]
    pub cursor: Option<String>,
    /// Part of the email address (case-insensitive).
    pub q: Option<String>,
    /// `user` or `admin`.
    #[param(pattern = "^(user|admin)?$")]
    pub role: Option<String>,
    pub disabled: Option<bool>,
}

pub(crate) async fn find_user(state: &AppState, id: Uuid) -> Result<users::User, Error> {
    users::find_by_id(&state.db, id).await?.or_not_found("user")
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AdminUserDetail {
    #[serde(flatten)]
    pub user: AdminUser,
    pub quotas: QuotaReport,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    #[garde(skip)]
    pub role: Option<Role>,
    /// true: the user can no longer sign in, and every session (with its tokens) and API key
    /// of theirs is revoked for good; false: they may sign in again.
    #[garde(skip)]
    pub disabled: Option<bool>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DaysQuery {
    /// Days back from today (1 to 366, default 30).
    #[param(minimum = 1, maximum = 366)]
    pub days: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Used {
    pub tokens_today: u64,
    pub exports_today: u64,
    pub stored_rows: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QuotaReport {
    /// The configured defaults.
    pub defaults: Limits,
    /// This user's overrides (null: the default).
    pub overrides: Overrides,
    /// What applies (0: no limit).
    pub effective: Limits,
    pub used: Used,
}

pub(crate) async fn quota_report(state: &AppState, id: Uuid) -> Result<QuotaReport, Error> {
    let today = quotas::today();
    let tokens = crate::db::conversations::tokens_since(&state.db, id, today).await?;
    let exports = quotas::exports_today(&state.db, id).await?;
    Ok(QuotaReport {
        defaults: quotas::defaults(&state.config),
        overrides: quotas::overrides(&state.db, id).await?,
        effective: quotas::limits(state.quotas(), id).await?,
        used: Used {
            tokens_today: u64::try_from(tokens).unwrap_or(0),
            exports_today: exports,
            stored_rows: quotas::stored_rows(&state.db, id).await?,
        },
    })
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotaUpdate {
    /// Model tokens per UTC day (0: no limit; null: the default).
    #[schema(maximum = 1_000_000_000_000.0)]
    #[garde(range(max = 1_000_000_000_000))]
    pub tokens_per_day: Option<u64>,
    #[schema(maximum = 1_000_000_000)]
    #[garde(range(max = 1_000_000_000))]
    pub exports_per_day: Option<u64>,
    #[schema(maximum = 1_000_000_000_000.0)]
    #[garde(range(max = 1_000_000_000_000))]
    pub max_stored_rows: Option<u64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    #[param(
        pattern = "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})?$"
    )]
    pub cursor: Option<String>,
    /// Events by this user.
    pub actor: Option<Uuid>,
    /// An action (`auth.login`), or a prefix ending in a dot (`auth.`).
    pub action: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    /// From this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Before this time (RFC 3339).
    pub until: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventResponse {
    pub id: Uuid,
    pub action: String,
    pub actor_id: Option<Uuid>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}
