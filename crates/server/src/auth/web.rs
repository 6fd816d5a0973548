//! Sign-in for the web page: `/auth/web/{login,refresh,logout}`.
//!
//! A page cannot keep a refresh token anywhere script can read without exposing it to any
//! script that ever runs there, so these endpoints keep it in a cookie instead: `HttpOnly`
//! (script never sees it), `SameSite=Strict` (other sites' requests do not carry it), scoped
//! to `/api/v1/auth/web` (no other request carries it either) and `Secure` when the request came
//! over TLS. The access token goes to the page in the body and lives only in its memory.
//!
//! The cookie makes these endpoints the only ones a browser authenticates on its own, so they
//! alone need protection against cross-site request forgery, in two layers:
//! - a request whose `Origin` is another site, or whose `Sec-Fetch-Site` says cross-site, is
//!   refused (login too: nobody may sign a visitor into an account of theirs);
//! - refresh and logout also need the double-submit token: the page reads the non-`HttpOnly`
//!   `sheetgpt_csrf` cookie, which only same-origin script can, and echoes it in
//!   `X-CSRF-Token`; the two are compared in constant time.
//!
//! Token rotation, reuse detection and revocation are the account service's, unchanged.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Serialize;
use subtle::ConstantTimeEq as _;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::ClientInfo;
use super::routes::LoginRequest;
use super::service::{self, TokenPair};
use super::tokens::random_token;
use crate::error::Error;
use crate::http::extract::ValidatedJson;
use crate::state::AppState;

pub const REFRESH_COOKIE: &str = "sheetgpt_refresh";
pub const CSRF_COOKIE: &str = "sheetgpt_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The refresh cookie goes only to these endpoints.
pub const REFRESH_COOKIE_PATH: &str = "/api/v1/auth/web";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(web_login))
        .routes(routes!(web_refresh))
        .routes(routes!(web_logout))
}

/// The web page's tokens: the refresh token is in the cookie, never in the body.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebTokenResponse {
    /// JWT for `Authorization: Bearer …`; keep it in memory only.
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    #[schema(example = 900)]
    pub expires_in: u64,
}

/// Sign in from the web page: like `POST /auth/login`, but the refresh token is set as an
/// `HttpOnly`, `SameSite=Strict` cookie (path `/api/v1/auth/web`, `Secure` over TLS) and a
/// readable `sheetgpt_csrf` cookie is set for `X-CSRF-Token`. Cross-site requests are refused.
#[utoipa::path(post, path = "/auth/web/login", tag = "auth", request_body = LoginRequest,
    security(()),
    responses(
        (status = 200, description = "Signed in; cookies set", body = WebTokenResponse,
            headers(("Set-Cookie" = String, description = "`sheetgpt_refresh` (HttpOnly) and `sheetgpt_csrf`"))),
        (status = 401, description = "Email or password incorrect", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Cross-site request, or account disabled", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed sign-ins", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn web_login(
    State(state): State<AppState>,
    headers: HeaderMap,
    client: ClientInfo,
    ValidatedJson(body): ValidatedJson<LoginRequest>,
) -> Result<Response, Error> {
    check_same_origin(&state, &headers)?;
    let pair = service::login(&state, &body.email, &body.password, &client).await?;
    let csrf = random_token(32);
    Ok(signed_in(&state, &headers, pair, &csrf))
}

/// Exchange the refresh cookie for a new access token; the cookie is rotated. Needs
/// `X-CSRF-Token` equal to the `sheetgpt_csrf` cookie. A refresh token used twice ends its
/// session, as with `POST /auth/refresh`.
#[utoipa::path(post, path = "/auth/web/refresh", tag = "auth",
    security(()),
    params(("X-CSRF-Token" = String, Header, description = "The value of the `sheetgpt_csrf` cookie")),
    responses(
        (status = 200, description = "New access token; refresh cookie rotated", body = WebTokenResponse),
        (status = 401, description = "No refresh cookie, or it is invalid, expired, reused or its session ended", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Missing or wrong CSRF token, or a cross-site request", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn web_refresh(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let csrf = check_csrf(&state, &headers)?;
    let sent = cookies(&headers, REFRESH_COOKIE);
    if sent.len() > 1 {
        // Which one is ours cannot be told: a planted cookie could sign the browser into
        // someone else's account. Refuse, and clear ours.
        let mut response = Error::unauthorized(
            "ambiguous-sign-in",
            "Your browser sent two sign-in cookies; sign in again.",
        )
        .into_response();
        clear_cookies(&state, &headers, response.headers_mut());
        return Ok(response);
    }
    let Some(refresh_token) = sent.into_iter().next() else {
        return Err(Error::unauthorized(
            "not-signed-in",
            "You are not signed in on this browser.",
        ));
    };
    let grace = chrono::Duration::seconds(
        i64::try_from(state.config.auth.web_refresh_grace_secs).unwrap_or(i64::MAX / 1000),
    );
    match service::refresh(&state, &refresh_token, &client, Some(grace)).await {
        Ok(pair) => Ok(signed_in(&state, &headers, pair, &csrf)),
        // A refresh cookie that no longer works is removed, so the page shows the sign-in form.
        Err(err @ Error::Unauthorized { .. }) => {
            let mut response = err.into_response();
            clear_cookies(&state, &headers, response.headers_mut());
            Ok(response)
        }
        Err(err) => Err(err),
    }
}

/// Sign out from the web page: ends the session of the refresh cookie (its access tokens stop
/// working too) and clears both cookies. Needs `X-CSRF-Token` like refresh.
#[utoipa::path(post, path = "/auth/web/logout", tag = "auth",
    security(()),
    params(("X-CSRF-Token" = String, Header, description = "The value of the `sheetgpt_csrf` cookie")),
    responses(
        (status = 204, description = "Signed out; cookies cleared"),
        (status = 403, description = "Missing or wrong CSRF token, or a cross-site request", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn web_logout(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, Error> {
    check_csrf(&state, &headers)?;
    for refresh_token in cookies(&headers, REFRESH_COOKIE) {
        service::logout_by_refresh_token(&state, &refresh_token).await?;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    clear_cookies(&state, &headers, response.headers_mut());
    Ok(response)
}

fn signed_in(state: &AppState, headers: &HeaderMap, pair: TokenPair, csrf: &str) -> Response {
    let max_age = (pair.refresh_expires_at - Utc::now()).num_seconds().max(0);
    let secure = is_tls(state, headers);
    let mut response = Json(WebTokenResponse {
        access_token: pair.access_token,
        token_type: "Bearer",
        expires_in: pair.expires_in,
    })
    .into_response();
    let out = response.headers_mut();
    for value in [
        set_cookie(
            REFRESH_COOKIE,
            &pair.refresh_token,
            REFRESH_COOKIE_PATH,
            max_age,
            true,
            secure,
        ),
        set_cookie(CSRF_COOKIE, csrf, "/", max_age, false, secure),
    ]
    .into_iter()
    .flatten()
    {
        out.append(header::SET_COOKIE, value);
    }
    response
}

fn clear_cookies(state: &AppState, headers: &HeaderMap, out: &mut HeaderMap) {
    let secure = is_tls(state, headers);
    for value in [
        set_cookie(REFRESH_COOKIE, "", REFRESH_COOKIE_PATH, 0, true, secure),
        set_cookie(CSRF_COOKIE, "", "/", 0, false, secure),
    ]
    .into_iter()
    .flatten()
    {
        out.append(header::SET_COOKIE, value);
    }
}

fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age: i64,
    http_only: bool,
    secure: bool,
) -> Option<HeaderValue> {
    let mut text = format!("{name}={value}; Path={path}; Max-Age={max_age}; SameSite=Strict");
    if http_only {
        text.push_str("; HttpOnly");
    }
    if secure {
        text.push_str("; Secure");
    }
    HeaderValue::from_str(&text).ok()
}

/// The request reached us over TLS: only behind a proxy we trust to say so, since the server
/// itself speaks plain HTTP.
fn is_tls(state: &AppState, headers: &HeaderMap) -> bool {
    crate::http::forwarded::is_tls(headers, &state.config.http)
}

/// A cookie's value from the `Cookie` header(s).
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    cookies(headers, name).into_iter().next()
}

/// Every non-empty cookie of that name, in the order sent. A browser sends two of one name
/// when another site on a parent domain planted its own (with a longer path, first).
pub(crate) fn cookies(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(n, _)| *n == name)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .collect()
}

fn cross_site() -> Error {
    Error::forbidden(
        "cross-site-request",
        "This request came from another site; sign in from SheetGPT's own page.",
    )
}

/// Refuses a request that a browser says came from another site. Browsers send `Origin` on
/// every POST and `Sec-Fetch-Site` on every request; other clients may send neither.
fn check_same_origin(state: &AppState, headers: &HeaderMap) -> Result<(), Error> {
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or_default();
        // `none`: the user's own action (typed address, bookmark), not another site's page.
        if !matches!(site, "same-origin" | "none") {
            return Err(cross_site());
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        let origin_host = origin
            .split_once("://")
            .map(|(_, host)| host.trim_end_matches('/'));
        // The host the browser asked for: the trusted proxy's word, else `Host`.
        let host = crate::http::forwarded::host(headers, &state.config.http);
        match (origin_host, host) {
            (Some(o), Some(h)) if o.eq_ignore_ascii_case(&h) => {}
            _ => return Err(cross_site()),
        }
    }
    Ok(())
}

/// Same origin, and `X-CSRF-Token` equal to the `sheetgpt_csrf` cookie; returns the token.
fn check_csrf(state: &AppState, headers: &HeaderMap) -> Result<String, Error> {
    check_same_origin(state, headers)?;
    let refused = || {
        Error::forbidden(
            "csrf-token-invalid",
            "The request lacks this page's anti-forgery token; reload the page and try again.",
        )
    };
    let cookie = cookie(headers, CSRF_COOKIE).ok_or_else(refused)?;
    let sent = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .ok_or_else(refused)?;
    if bool::from(cookie.as_bytes().ct_eq(sent.as_bytes())) {
        Ok(cookie)
    } else {
        Err(refused())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_among_several_headers_and_pairs() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; sheetgpt_csrf=xyz"),
        );
        h.append(
            header::COOKIE,
            HeaderValue::from_static("sheetgpt_refresh=r-1"),
        );
        assert_eq!(cookie(&h, CSRF_COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie(&h, REFRESH_COOKIE).as_deref(), Some("r-1"));
        assert_eq!(cookie(&h, "missing"), None);
    }

    #[test]
    fn set_cookie_has_the_attributes_asked_for() {
        let v = set_cookie("n", "v", "/p", 60, true, true).map(|v| v.to_str().map(str::to_owned));
        assert_eq!(
            v.and_then(Result::ok).as_deref(),
            Some("n=v; Path=/p; Max-Age=60; SameSite=Strict; HttpOnly; Secure")
        );
    }
}
