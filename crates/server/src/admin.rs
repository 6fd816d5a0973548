//! `/admin`: users (search, role, disable), their usage and quotas, and the audit log. Only
//! for the `admin` role; everyone else gets 403. Every change is written to the audit log.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use garde::Validate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::audit::{self, Event};
use crate::auth::extract::{AuthUser, ClientInfo};
use crate::chat::routes::UsageResponse;
use crate::db::entity::user::Role;
use crate::db::users;
use crate::error::{Error, OrNotFound};
use crate::http::extract::{Path, Query, ValidatedJson};
use crate::http::pagination::{Page, PageQuery};
use crate::quotas::{self, Limits, Overrides};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users))
        .routes(routes!(get_user, update_user))
        .routes(routes!(user_usage))
        .routes(routes!(get_quotas, set_quotas))
        .routes(routes!(audit_log))
}

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

/// Users, newest first, optionally searched by email, role and status.
#[utoipa::path(get, path = "/admin/users", tag = "admin", params(UserSearch),
    responses((status = 200, description = "Users", body = Page<AdminUser>)))]
async fn list_users(
    State(state): State<AppState>,
    _admin: Admin,
    Query(q): Query<UserSearch>,
) -> Result<Json<Page<AdminUser>>, Error> {
    let (limit, before) = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .parse()?;
    let mut search = users::Search {
        disabled: q.disabled,
        ..users::Search::default()
    };
    if let Some(text) = q.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        if text.chars().count() > 200 {
            return Err(Error::field("q", "must be at most 200 characters"));
        }
        search.email_contains = Some(text.to_owned());
    }
    search.role = match q.role.as_deref() {
        None | Some("") => None,
        Some("user") => Some(Role::User),
        Some("admin") => Some(Role::Admin),
        Some(_) => return Err(Error::field("role", "must be user or admin")),
    };
    let rows = users::search(&state.db, &search, before, limit + 1).await?;
    Ok(Json(Page::from_rows(
        rows,
        limit,
        |u| u.id,
        AdminUser::from,
    )))
}

async fn find_user(state: &AppState, id: Uuid) -> Result<users::User, Error> {
    users::find_by_id(&state.db, id).await?.or_not_found("user")
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AdminUserDetail {
    #[serde(flatten)]
    pub user: AdminUser,
    pub quotas: QuotaReport,
}

/// One user, with their quotas and what they used.
#[utoipa::path(get, path = "/admin/users/{id}", tag = "admin",
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, description = "The user", body = AdminUserDetail)))]
async fn get_user(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<Uuid>,
) -> Result<Json<AdminUserDetail>, Error> {
    let user = find_user(&state, id).await?;
    let quotas = quota_report(&state, id).await?;
    Ok(Json(AdminUserDetail {
        user: user.into(),
        quotas,
    }))
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

/// Change a user's role or disable/enable them.
#[utoipa::path(patch, path = "/admin/users/{id}", tag = "admin", request_body = UserUpdate,
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, description = "Updated", body = AdminUser),
        (status = 409, description = "An admin cannot demote or disable themselves", body = crate::http::error::Problem, content_type = "application/problem+json")))]
async fn update_user(
    State(state): State<AppState>,
    Admin(admin): Admin,
    client: ClientInfo,
    Path(id): Path<Uuid>,
    ValidatedJson(body): ValidatedJson<UserUpdate>,
) -> Result<Json<AdminUser>, Error> {
    let user = find_user(&state, id).await?;
    if id == admin.user.id && (body.role == Some(Role::User) || body.disabled == Some(true)) {
        return Err(Error::conflict(
            "cannot-demote-self",
            "You cannot take the admin role from yourself or disable yourself; ask another admin.",
        ));
    }
    if let Some(role) = body.role
        && role != user.role
    {
        users::set_role(&state.db, id, role).await?;
        audit::record(
            &state,
            Some(&client),
            Event::new("admin.role_changed", Some(admin.user.id))
                .target("user", id)
                .details(serde_json::json!({"from": user.role.as_str(), "to": role.as_str()})),
        )
        .await;
    }
    if let Some(disabled) = body.disabled
        && disabled != user.disabled_at.is_some()
    {
        let event = if disabled {
            let ended = crate::auth::service::disable_user(&state, id).await?;
            Event::new("admin.user_disabled", Some(admin.user.id))
                .target("user", id)
                .details(serde_json::json!({
                    "sessions_revoked": ended.sessions_revoked,
                    "api_keys_revoked": ended.api_keys_revoked,
                }))
        } else {
            users::set_disabled(&state.db, id, None).await?;
            Event::new("admin.user_enabled", Some(admin.user.id)).target("user", id)
        };
        audit::record(&state, Some(&client), event).await;
    }
    state.sessions.forget_user(id);
    Ok(Json(find_user(&state, id).await?.into()))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DaysQuery {
    /// Days back from today (1 to 366, default 30).
    #[param(minimum = 1, maximum = 366)]
    pub days: Option<u32>,
}

/// A user's model usage and cost per day and model.
#[utoipa::path(get, path = "/admin/users/{id}/usage", tag = "admin",
    params(("id" = Uuid, Path, description = "User id"), DaysQuery),
    responses((status = 200, description = "Usage", body = UsageResponse)))]
async fn user_usage(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<Uuid>,
    Query(q): Query<DaysQuery>,
) -> Result<Json<UsageResponse>, Error> {
    find_user(&state, id).await?;
    Ok(Json(
        crate::chat::routes::usage_report(&state, id, q.days).await?,
    ))
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

async fn quota_report(state: &AppState, id: Uuid) -> Result<QuotaReport, Error> {
    let today = quotas::today();
    let tokens = crate::db::conversations::tokens_since(&state.db, id, today).await?;
    let exports = quotas::exports_today(&state.db, id).await?;
    Ok(QuotaReport {
        defaults: quotas::defaults(state),
        overrides: quotas::overrides(&state.db, id).await?,
        effective: quotas::limits(state, id).await?,
        used: Used {
            tokens_today: u64::try_from(tokens).unwrap_or(0),
            exports_today: exports,
            stored_rows: quotas::stored_rows(&state.db, id).await?,
        },
    })
}

/// A user's quotas: defaults, overrides, what applies and what is used.
#[utoipa::path(get, path = "/admin/users/{id}/quotas", tag = "admin",
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, description = "Quotas", body = QuotaReport)))]
async fn get_quotas(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<Uuid>,
) -> Result<Json<QuotaReport>, Error> {
    find_user(&state, id).await?;
    Ok(Json(quota_report(&state, id).await?))
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

/// Set a user's quota overrides (all three; null keeps the default).
#[utoipa::path(put, path = "/admin/users/{id}/quotas", tag = "admin", request_body = QuotaUpdate,
    params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, description = "Quotas", body = QuotaReport)))]
async fn set_quotas(
    State(state): State<AppState>,
    Admin(admin): Admin,
    client: ClientInfo,
    Path(id): Path<Uuid>,
    ValidatedJson(body): ValidatedJson<QuotaUpdate>,
) -> Result<Json<QuotaReport>, Error> {
    find_user(&state, id).await?;
    let overrides = Overrides {
        tokens_per_day: body.tokens_per_day,
        exports_per_day: body.exports_per_day,
        max_stored_rows: body.max_stored_rows,
    };
    quotas::set_overrides(&state.db, id, overrides).await?;
    audit::record(
        &state,
        Some(&client),
        Event::new("admin.quotas_changed", Some(admin.user.id))
            .target("user", id)
            .details(serde_json::to_value(overrides).unwrap_or_default()),
    )
    .await;
    Ok(Json(quota_report(&state, id).await?))
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

/// The audit log, newest first, filtered.
#[utoipa::path(get, path = "/admin/audit", tag = "admin", params(AuditQuery),
    responses((status = 200, description = "Events", body = Page<AuditEventResponse>)))]
async fn audit_log(
    State(state): State<AppState>,
    _admin: Admin,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Page<AuditEventResponse>>, Error> {
    let (limit, before) = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .parse()?;
    for (field, value) in [
        ("action", &q.action),
        ("target_type", &q.target_type),
        ("target_id", &q.target_id),
    ] {
        if value.as_ref().is_some_and(|v| v.chars().count() > 200) {
            return Err(Error::field(field, "must be at most 200 characters"));
        }
    }
    let filter = audit::Filter {
        actor: q.actor,
        action: q.action.filter(|a| !a.is_empty()),
        target_type: q.target_type.filter(|a| !a.is_empty()),
        target_id: q.target_id.filter(|a| !a.is_empty()),
        since: q.since,
        until: q.until,
    };
    let rows = audit::list(&state.db, &filter, before, limit + 1).await?;
    Ok(Json(Page::from_rows(
        rows,
        limit,
        |e| e.id,
        |e| AuditEventResponse {
            id: e.id,
            action: e.action,
            actor_id: e.actor_id,
            target_type: e.target_type,
            target_id: e.target_id,
            ip: e.ip,
            user_agent: e.user_agent,
            request_id: e.request_id,
            details: e.details.and_then(|d| serde_json::from_str(&d).ok()),
            created_at: e.created_at,
        },
    )))
}
