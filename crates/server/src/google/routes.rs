//! `/integrations/google`: connect (the consent URL), the OAuth callback, status, disconnect.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::oauth;
use crate::auth::extract::{AuthUser, ClientInfo};
use crate::auth::tokens::random_token;
use crate::error::{Error, OrNotFound};
use crate::http::extract::Query;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(status, disconnect))
        .routes(routes!(connect))
        .routes(routes!(callback))
}

fn enabled(state: &AppState) -> Result<(), Error> {
    if state.google.enabled() {
        Ok(())
    } else {
        Err(Error::NotFound("Google integration"))
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectResponse {
    /// Send the user here to allow access; Google sends them back to the callback.
    pub authorization_url: String,
}

/// The cookie that binds a started authorization to the browser that started it.
pub const BROWSER_COOKIE: &str = "sheetgpt_google_connect";
/// As long as the authorization it binds.
const BROWSER_COOKIE_SECS: i64 = 600;

/// The path of the callback (from `google.redirect_url`): the only requests that carry the
/// binding cookie.
fn callback_path(state: &AppState) -> String {
    let url = &state.config.google.redirect_url;
    url.split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|at| &rest[at..]))
        .map(|path| path.split(['?', '#']).next().unwrap_or(path))
        .filter(|path| !path.is_empty())
        .unwrap_or("/")
        .to_owned()
}

/// `HttpOnly` (script never reads it), `SameSite=Lax` (the callback is a top-level navigation
/// coming from Google, which `Strict` would send without it), `Secure` over TLS.
fn browser_cookie(
    state: &AppState,
    headers: &HeaderMap,
    value: &str,
    max_age: i64,
) -> Option<HeaderValue> {
    let secure = crate::http::forwarded::is_tls(headers, &state.config.http)
        || state.config.google.redirect_url.starts_with("https://");
    let mut text = format!(
        "{BROWSER_COOKIE}={value}; Path={}; Max-Age={max_age}; HttpOnly; SameSite=Lax",
        callback_path(state)
    );
    if secure {
        text.push_str("; Secure");
    }
    HeaderValue::from_str(&text).ok()
}

/// Start connecting the caller's Google account: answers the consent URL (valid 10 minutes)
/// and sets the `sheetgpt_google_connect` cookie that binds it to this browser. Open the URL
/// in the same browser: the callback refuses one that comes back without the cookie.
#[utoipa::path(post, path = "/integrations/google/connect", tag = "google",
    responses((status = 200, description = "Consent URL", body = ConnectResponse,
            headers(("Set-Cookie" = String, description = "`sheetgpt_google_connect` (HttpOnly, SameSite=Lax, path of the callback)"))),
        (status = 404, description = "Google is not configured on this server", body = crate::http::error::Problem, content_type = "application/problem+json")))]
async fn connect(
    State(state): State<AppState>,
    auth: AuthUser,
    headers: HeaderMap,
) -> Result<Response, Error> {
    enabled(&state)?;
    if state.google.oauth.is_none() {
        return Err(Error::conflict(
            "google-oauth-not-configured",
            "This server writes to Google Sheets through a service account only; share your spreadsheet with it.",
        ));
    }
    let browser = random_token(32);
    let url = oauth::start(&state, auth.user.id, auth.session_id(), &browser).await?;
    let mut response = Json(ConnectResponse {
        authorization_url: url,
    })
    .into_response();
    if let Some(cookie) = browser_cookie(&state, &headers, &browser, BROWSER_COOKIE_SECS) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    pub code: Option<String>,
    pub state: Option<String>,
    /// Set by Google when the user declined.
    pub error: Option<String>,
}

/// Where Google sends the user back. Redirects (303) to the page with `?google=connected`,
/// `?google=denied` or `?google=error&reason=…` (`oauth-browser-mismatch` when the browser
/// that comes back is not the one that started the connection).
#[utoipa::path(get, path = "/integrations/google/callback", tag = "google", params(CallbackQuery),
    security(()),
    responses((status = 303, description = "Back to the page")))]
async fn callback(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let browsers = crate::auth::web::cookies(&headers, BROWSER_COOKIE);
    let back = &state.config.google.after_connect_url;
    let sep = if back.contains('?') { '&' } else { '?' };
    let outcome = match (q.error.as_deref(), q.code.as_deref(), q.state.as_deref()) {
        (Some(_), _, Some(csrf)) => {
            // Declined: forget the pending authorization.
            let _ = oauth::complete(&state, "", csrf, &browsers).await;
            "google=denied".to_owned()
        }
        (None, Some(code), Some(csrf)) if !code.is_empty() && code.len() <= 2048 => {
            match oauth::complete(&state, code, csrf, &browsers).await {
                Ok(user_id) => {
                    crate::audit::record(
                        &state.db,
                        Some(&client),
                        crate::audit::Event::new("google.connected", Some(user_id))
                            .target("user", user_id),
                    )
                    .await;
                    "google=connected".to_owned()
                }
                Err(err) => {
                    let problem = err.problem();
                    tracing::info!(code = %problem.code, "Google authorization not completed");
                    format!("google=error&reason={}", problem.code)
                }
            }
        }
        _ => "google=error&reason=invalid-callback".to_owned(),
    };
    let location = format!("{back}{sep}{outcome}");
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    // Spent either way.
    if let Some(clear) = browser_cookie(&state, &headers, "", 0) {
        response.headers_mut().append(header::SET_COOKIE, clear);
    }
    response
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GoogleStatus {
    /// Users can connect their own Google account here.
    pub oauth_available: bool,
    /// The service account's address, when there is one: share a spreadsheet with it to let
    /// SheetGPT write there.
    pub service_account_email: Option<String>,
    /// `connected`, `reconnect_required` (Google refused the grant) or `not_connected`.
    pub status: String,
    pub connected: bool,
    pub scopes: Vec<String>,
    pub connected_at: Option<DateTime<Utc>>,
}

/// Whether the caller's Google account is connected, and how this server reaches Google.
#[utoipa::path(get, path = "/integrations/google", tag = "google",
    responses((status = 200, description = "Status", body = GoogleStatus),
        (status = 404, description = "Google is not configured on this server", body = crate::http::error::Problem, content_type = "application/problem+json")))]
async fn status(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<GoogleStatus>, Error> {
    enabled(&state)?;
    let account = oauth::account(&state.db, auth.user.id).await?;
    let status = account
        .as_ref()
        .map_or("not_connected", |a| a.status.as_str())
        .to_owned();
    Ok(Json(GoogleStatus {
        oauth_available: state.google.oauth.is_some(),
        service_account_email: state
            .google
            .service_account
            .as_ref()
            .map(|sa| sa.email.clone()),
        connected: status == oauth::CONNECTED,
        status,
        scopes: account
            .as_ref()
            .map(|a| a.scopes.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
        connected_at: account.map(|a| a.created_at),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Disconnected {
    /// Google confirmed the revocation of the grant.
    pub revoked_at_google: bool,
}

/// Disconnect: revoke the grant at Google and delete the tokens here.
#[utoipa::path(delete, path = "/integrations/google", tag = "google",
    responses((status = 200, description = "Disconnected", body = Disconnected),
        (status = 404, description = "Not connected, or Google is not configured on this server", body = crate::http::error::Problem, content_type = "application/problem+json")))]
async fn disconnect(
    State(state): State<AppState>,
    auth: AuthUser,
    client: ClientInfo,
) -> Result<Json<Disconnected>, Error> {
    enabled(&state)?;
    let revoked = oauth::disconnect(&state, auth.user.id)
        .await?
        .or_not_found("Google connection")?;
    crate::audit::record(
        &state.db,
        Some(&client),
        crate::audit::Event::new("google.disconnected", Some(auth.user.id))
            .target("user", auth.user.id)
            .details(serde_json::json!({"revoked_at_google": revoked})),
    )
    .await;
    Ok(Json(Disconnected {
        revoked_at_google: revoked,
    }))
}
