//! `/integrations/google`: connect (the consent URL), the OAuth callback, status, disconnect.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::oauth;
use crate::auth::extract::{AuthUser, ClientInfo};
use crate::http::error::ApiError;
use crate::http::extract::Query;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(status, disconnect))
        .routes(routes!(connect))
        .routes(routes!(callback))
}

fn enabled(state: &AppState) -> Result<(), ApiError> {
    if state.google.enabled() {
        Ok(())
    } else {
        Err(ApiError::NotFound("Google integration"))
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectResponse {
    /// Send the user here to allow access; Google sends them back to the callback.
    pub authorization_url: String,
}

/// Start connecting the caller's Google account: answers the consent URL (valid 10 minutes).
#[utoipa::path(post, path = "/integrations/google/connect", tag = "google",
    responses((status = 200, description = "Consent URL", body = ConnectResponse),
        (status = 404, description = "Google is not configured on this server", body = crate::http::error::Problem, content_type = "application/problem+json")))]
async fn connect(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<ConnectResponse>, ApiError> {
    enabled(&state)?;
    if state.google.oauth.is_none() {
        return Err(ApiError::conflict(
            "google-oauth-not-configured",
            "This server writes to Google Sheets through a service account only; share your spreadsheet with it.",
        ));
    }
    let url = oauth::start(&state, auth.user.id, auth.session_id()).await?;
    Ok(Json(ConnectResponse {
        authorization_url: url,
    }))
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
/// `?google=denied` or `?google=error&reason=…`.
#[utoipa::path(get, path = "/integrations/google/callback", tag = "google", params(CallbackQuery),
    security(()),
    responses((status = 303, description = "Back to the page")))]
async fn callback(
    State(state): State<AppState>,
    client: ClientInfo,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let back = &state.config.google.after_connect_url;
    let sep = if back.contains('?') { '&' } else { '?' };
    let outcome = match (q.error.as_deref(), q.code.as_deref(), q.state.as_deref()) {
        (Some(_), _, Some(csrf)) => {
            // Declined: forget the pending authorization.
            let _ = oauth::complete(&state, "", csrf).await;
            "google=denied".to_owned()
        }
        (None, Some(code), Some(csrf)) if !code.is_empty() && code.len() <= 2048 => {
            match oauth::complete(&state, code, csrf).await {
                Ok(user_id) => {
                    crate::audit::record(
                        &state,
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
) -> Result<Json<GoogleStatus>, ApiError> {
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
) -> Result<Json<Disconnected>, ApiError> {
    enabled(&state)?;
    let revoked = oauth::disconnect(&state, auth.user.id)
        .await?
        .ok_or(ApiError::NotFound("Google connection"))?;
    crate::audit::record(
        &state,
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
