use super::{
    Admin, AdminUser, AdminUserDetail, AuditEventResponse, AuditQuery, DaysQuery, QuotaReport,
    QuotaUpdate, UserSearch, UserUpdate, find_user, quota_report,
};
use crate::audit::{self, Event};
use crate::auth::identity::ClientInfo;
use crate::chat::usage::UsageResponse;
use crate::db::entity::user::Role;
use crate::db::users;
use crate::error::Error;
use crate::http::extract::{Path, Query, ValidatedJson};
use crate::http::pagination::{Page, PageQuery};
use crate::quotas::{self, Overrides};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users))
        .routes(routes!(get_user, update_user))
        .routes(routes!(user_usage))
        .routes(routes!(get_quotas, set_quotas))
        .routes(routes!(audit_log))
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
            &state.db,
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
        audit::record(&state.db, Some(&client), event).await;
    }
    state.sessions.forget_user(id);
    Ok(Json(find_user(&state, id).await?.into()))
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
        crate::chat::usage::usage_report(state.quotas(), id, q.days).await?,
    ))
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
        &state.db,
        Some(&client),
        Event::new("admin.quotas_changed", Some(admin.user.id))
            .target("user", id)
            .details(serde_json::to_value(overrides).unwrap_or_default()),
    )
    .await;
    Ok(Json(quota_report(&state, id).await?))
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
