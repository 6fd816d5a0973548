//! HTTP for accounts: `/auth/*` and `/api-keys`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use garde::Validate;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::cache::CurrentUser;
use super::extract::{AuthUser, ClientInfo, SessionUser};
use super::service::{self, TokenPair};
use crate::audit;
use crate::db::entity::api_key::Scope;
use crate::db::entity::user::Role;
use crate::db::{api_keys, sessions};
use crate::error::{Error, OrNotFound};
use crate::http::extract::{Path, Query, ValidatedJson};
use crate::http::pagination::{Page, PageQuery};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(me, update_me))
        .routes(routes!(change_password))
        .routes(routes!(list_sessions))
        .routes(routes!(revoke_session))
        .routes(routes!(create_api_key, list_api_keys))
        .routes(routes!(get_api_key, revoke_api_key))
        .merge(super::web::router())
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct RegisterRequest {
    #[garde(length(chars, max = 320))]
    #[schema(max_length = 320, example = "alice@example.com")]
    pub email: String,
    /// 10 to 256 characters; not a common password, not the email address.
    #[garde(length(chars, max = 1024))]
    #[schema(
        min_length = 10,
        max_length = 256,
        example = "correct horse battery staple"
    )]
    pub password: String,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct LoginRequest {
    #[garde(length(chars, min = 1, max = 320))]
    #[schema(min_length = 1, max_length = 320, example = "alice@example.com")]
    pub email: String,
    #[garde(length(chars, min = 1, max = 1024))]
    #[schema(
        min_length = 1,
        max_length = 1024,
        example = "correct horse battery staple"
    )]
    pub password: String,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct RefreshRequest {
    #[schema(min_length = 1, max_length = 512)]
    #[garde(length(chars, min = 1, max = 512))]
    pub refresh_token: String,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct ChangePasswordRequest {
    #[schema(min_length = 1, max_length = 1024)]
    #[garde(length(chars, min = 1, max = 1024))]
    pub current_password: String,
    /// 10 to 256 characters; not a common password, not the email address.
    #[schema(min_length = 10, max_length = 256)]
    #[garde(length(chars, max = 1024))]
    pub new_password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserResponse {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
    /// BCP 47 (`de-DE`): how dates that read both ways (`03/04/2024`) are read in your
    /// tables (month first in the United States, day first elsewhere); from the browser's
    /// `Accept-Language` at registration; `null` reads them month first.
    #[schema(example = "en-US", max_length = 35)]
    pub locale: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<CurrentUser> for UserResponse {
    fn from(u: CurrentUser) -> Self {
        Self {
            id: u.id,
            email: u.email,
            role: u.role,
            locale: u.locale,
            created_at: u.created_at,
        }
    }
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeRequest {
    /// A BCP 47 tag (`en-US`, `de-DE`, `fr`), or `null` to clear it.
    #[garde(skip)]
    #[schema(example = "de-DE", max_length = 35)]
    pub locale: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// JWT for `Authorization: Bearer …`.
    pub access_token: String,
    /// Single-use token for `POST /auth/refresh`; each use returns a new one.
    pub refresh_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    #[schema(example = 900)]
    pub expires_in: u64,
}

impl From<TokenPair> for TokenResponse {
    fn from(p: TokenPair) -> Self {
        Self {
            access_token: p.access_token,
            refresh_token: p.refresh_token,
            token_type: "Bearer",
            expires_in: p.expires_in,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PasswordChanged {
    /// How many other sessions were signed out.
    pub revoked_sessions: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionResponse {
    pub id: Uuid,
    /// True for the session of the token making this request.
    pub current: bool,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct CreateApiKeyRequest {
    /// A name to tell the key apart, e.g. "nightly export script".
    #[schema(min_length = 1, max_length = 100)]
    #[garde(length(chars, min = 1, max = 100))]
    pub name: String,
    /// `read` (GET only) or `read_write`.
    #[garde(skip)]
    pub scope: Scope,
    /// Days until the key stops working (1 to 3650); never when absent.
    #[schema(minimum = 1, maximum = 3650)]
    #[garde(range(min = 1, max = 3650))]
    pub expires_in_days: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyResponse {
    pub id: Uuid,
    pub name: String,
    /// The start of the key, to recognise it; the key itself is shown only once.
    #[schema(example = "sgk_Ab3dE9xQ")]
    pub prefix: String,
    pub scope: Scope,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKeyResponse {
    /// The key. Store it now: it is never shown again.
    pub key: String,
    #[serde(flatten)]
    pub api_key: ApiKeyResponse,
}

impl From<api_keys::ApiKey> for ApiKeyResponse {
    fn from(k: api_keys::ApiKey) -> Self {
        Self {
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            scope: k.scope,
            created_at: k.created_at,
            last_used_at: k.last_used_at,
            expires_at: k.expires_at,
        }
    }
}

/// Create an account.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterRequest,
    security(()),
    responses(
        (status = 201, description = "Account created", body = UserResponse),
        (status = 409, description = "The email address is taken", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn register(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: axum::http::HeaderMap,
    ValidatedJson(body): ValidatedJson<RegisterRequest>,
) -> Result<impl IntoResponse, Error> {
    let (email, password) = service::parse_credentials(&body.email, &body.password)?;
    let user = service::register(&state, &email, &password, Role::User).await?;
    // The browser's preferred language is the locale until the user picks one.
    let locale = headers
        .get(axum::http::header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(sheetgpt_core::locale::Locale::from_accept_language);
    if let Some(locale) = &locale {
        crate::db::users::set_locale(&state.db, user.id, Some(locale.as_str())).await?;
    }
    audit::record(
        &state.db,
        Some(&client),
        audit::Event::new("auth.register", Some(user.id)).target("user", user.id),
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(UserResponse {
            id: user.id,
            email: user.email,
            role: user.role,
            locale: locale.map(|l| l.as_str().to_owned()),
            created_at: user.created_at,
        }),
    ))
}

/// Sign in with email and password.
///
/// Unknown addresses and wrong passwords get the same answer in about the same time. After
/// repeated failures for one account or one client address, sign-ins are refused with 429
/// and `Retry-After` for a while.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    security(()),
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        (status = 401, description = "Email or password incorrect", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Account disabled", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed sign-ins", body = crate::http::error::Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
async fn login(
    State(state): State<AppState>,
    client: ClientInfo,
    ValidatedJson(body): ValidatedJson<LoginRequest>,
) -> Result<Json<TokenResponse>, Error> {
    let pair = service::login(&state, &body.email, &body.password, &client).await?;
    Ok(Json(pair.into()))
}

/// Exchange a refresh token for a new access token and a new refresh token.
///
/// A refresh token works once. Presenting one that was already used ends its whole session.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshRequest,
    security(()),
    responses(
        (status = 200, description = "New tokens", body = TokenResponse),
        (status = 401, description = "Refresh token invalid, expired, reused or its session ended", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn refresh(
    State(state): State<AppState>,
    client: ClientInfo,
    ValidatedJson(body): ValidatedJson<RefreshRequest>,
) -> Result<Json<TokenResponse>, Error> {
    let pair = service::refresh(&state, &body.refresh_token, &client, None).await?;
    Ok(Json(pair.into()))
}

/// Sign out: ends the session of the access token used.
#[utoipa::path(post, path = "/auth/logout", tag = "auth",
    responses((status = 204, description = "Signed out")))]
async fn logout(
    State(state): State<AppState>,
    auth: SessionUser,
    client: ClientInfo,
) -> Result<StatusCode, Error> {
    service::logout(&state, &auth.user, auth.session_id).await?;
    audit::record(
        &state.db,
        Some(&client),
        audit::Event::new("auth.logout", Some(auth.user.id)).target("session", auth.session_id),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user.
#[utoipa::path(get, path = "/auth/me", tag = "auth",
    responses((status = 200, description = "The user", body = UserResponse)))]
async fn me(auth: AuthUser) -> Json<UserResponse> {
    Json(auth.user.into())
}

/// Change your settings: the locale (a BCP 47 tag; 422 when it is not one).
#[utoipa::path(patch, path = "/auth/me", tag = "auth", request_body = UpdateMeRequest,
    responses(
        (status = 200, description = "The user, changed", body = UserResponse),
        (status = 422, description = "Not a language tag", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn update_me(
    State(state): State<AppState>,
    auth: AuthUser,
    ValidatedJson(body): ValidatedJson<UpdateMeRequest>,
) -> Result<Json<UserResponse>, Error> {
    let user = service::set_locale(&state, auth.user, body.locale.as_deref()).await?;
    Ok(Json(user.into()))
}

/// Change the password; every other session is signed out.
#[utoipa::path(post, path = "/auth/password", tag = "auth", request_body = ChangePasswordRequest,
    responses(
        (status = 200, description = "Password changed", body = PasswordChanged),
        (status = 429, description = "Too many wrong passwords", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn change_password(
    State(state): State<AppState>,
    auth: SessionUser,
    client: ClientInfo,
    ValidatedJson(body): ValidatedJson<ChangePasswordRequest>,
) -> Result<Json<PasswordChanged>, Error> {
    let revoked = service::change_password(
        &state,
        &auth.user,
        auth.session_id,
        &body.current_password,
        &body.new_password,
        &client,
    )
    .await?;
    Ok(Json(PasswordChanged {
        revoked_sessions: revoked,
    }))
}

/// The user's active sessions (signed-in devices), newest first.
#[utoipa::path(get, path = "/auth/sessions", tag = "auth", params(PageQuery),
    responses((status = 200, description = "Sessions", body = Page<SessionResponse>)))]
async fn list_sessions(
    State(state): State<AppState>,
    auth: SessionUser,
    Query(page): Query<PageQuery>,
) -> Result<Json<Page<SessionResponse>>, Error> {
    let (limit, before) = page.parse()?;
    let rows = sessions::list_active(&state.db, auth.user.id, before, limit + 1).await?;
    Ok(Json(Page::from_rows(
        rows,
        limit,
        |s| s.id,
        |s| SessionResponse {
            current: s.id == auth.session_id,
            id: s.id,
            user_agent: s.user_agent,
            ip: s.ip,
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            expires_at: s.expires_at,
        },
    )))
}

/// End one session (sign a device out). Its refresh and access tokens stop working.
#[utoipa::path(delete, path = "/auth/sessions/{id}", tag = "auth",
    params(("id" = Uuid, Path, description = "Session id")),
    responses((status = 204, description = "Session ended")))]
async fn revoke_session(
    State(state): State<AppState>,
    auth: SessionUser,
    client: ClientInfo,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, Error> {
    service::revoke_session(&state, &auth.user, id).await?;
    audit::record(
        &state.db,
        Some(&client),
        audit::Event::new("session.revoked", Some(auth.user.id)).target("session", id),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Create an API key. The key is in this answer only.
#[utoipa::path(post, path = "/api-keys", tag = "api-keys", request_body = CreateApiKeyRequest,
    responses(
        (status = 201, description = "Key created", body = CreatedApiKeyResponse),
        (status = 409, description = "Too many keys", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn create_api_key(
    State(state): State<AppState>,
    auth: SessionUser,
    client: ClientInfo,
    ValidatedJson(body): ValidatedJson<CreateApiKeyRequest>,
) -> Result<impl IntoResponse, Error> {
    if body.name.trim().is_empty() {
        return Err(Error::field("name", "must not be blank"));
    }
    let expires_at = body
        .expires_in_days
        .map(|days| Utc::now() + chrono::Duration::days(i64::from(days)));
    let created =
        service::create_api_key(&state, &auth.user, &body.name, body.scope, expires_at).await?;
    audit::record(
        &state.db,
        Some(&client),
        audit::Event::new("api_key.created", Some(auth.user.id))
            .target("api_key", created.record.id)
            .details(
                serde_json::json!({"name": created.record.name, "prefix": created.record.prefix}),
            ),
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiKeyResponse {
            key: created.key,
            api_key: created.record.into(),
        }),
    ))
}

/// The user's API keys (without the keys themselves), newest first.
#[utoipa::path(get, path = "/api-keys", tag = "api-keys", params(PageQuery),
    responses((status = 200, description = "Keys", body = Page<ApiKeyResponse>)))]
async fn list_api_keys(
    State(state): State<AppState>,
    auth: SessionUser,
    Query(page): Query<PageQuery>,
) -> Result<Json<Page<ApiKeyResponse>>, Error> {
    let (limit, before) = page.parse()?;
    let rows = api_keys::list(&state.db, auth.user.id, before, limit + 1).await?;
    Ok(Json(Page::from_rows(
        rows,
        limit,
        |k| k.id,
        ApiKeyResponse::from,
    )))
}

/// One API key.
#[utoipa::path(get, path = "/api-keys/{id}", tag = "api-keys",
    params(("id" = Uuid, Path, description = "API key id")),
    responses((status = 200, description = "The key", body = ApiKeyResponse)))]
async fn get_api_key(
    State(state): State<AppState>,
    auth: SessionUser,
    Path(id): Path<Uuid>,
) -> Result<Json<ApiKeyResponse>, Error> {
    let key = api_keys::find(&state.db, auth.user.id, id)
        .await?
        .or_not_found("API key")?;
    Ok(Json(key.into()))
}

/// Revoke an API key; it stops working at once.
#[utoipa::path(delete, path = "/api-keys/{id}", tag = "api-keys",
    params(("id" = Uuid, Path, description = "API key id")),
    responses((status = 204, description = "Key revoked")))]
async fn revoke_api_key(
    State(state): State<AppState>,
    auth: SessionUser,
    client: ClientInfo,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, Error> {
    if !api_keys::revoke(&state.db, auth.user.id, id).await? {
        return Err(Error::NotFound("API key"));
    }
    audit::record(
        &state.db,
        Some(&client),
        audit::Event::new("api_key.revoked", Some(auth.user.id)).target("api_key", id),
    )
    .await;
    tracing::info!(api_key.id = %id, "API key revoked");
    Ok(StatusCode::NO_CONTENT)
}
