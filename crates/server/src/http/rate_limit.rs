//! Rate limits per route class (auth, chat, export, default), keyed by user, or by client
//! address before sign-in (auth routes always by address). Replies asked for on a
//! conversation's WebSocket are counted in `chat` one by one, like the HTTP requests that ask
//! for them ([`count_for_user`]); opening the socket is an ordinary (`default`) request. In-process with governor (GCRA)
//! by default; with `SHEETGPT_REDIS_URL`, counted in Redis (fixed windows) so that every
//! instance shares them. Answers carry `RateLimit-Limit`, `RateLimit-Remaining`,
//! `RateLimit-Reset` and `RateLimit-Policy`; a refused request gets 429 problem+json with
//! `Retry-After`.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::extract::{AuthUser, ClientInfo};
use crate::error::Error;
use crate::state::AppState;

use super::limiter::limit_of;
pub use super::limiter::{Class, Decision, Limiter};

const LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
const POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

fn user_key(user_id: uuid::Uuid) -> String {
    format!("user:{user_id}")
}

fn refused(state: &AppState, class: Class, decision: &Decision) -> Error {
    metrics::counter!("sheetgpt_rate_limited_total", "class" => class.name()).increment(1);
    let policy = limit_of(&state.config.rate_limits, class);
    Error::TooManyRequests {
        retry_after_secs: decision.reset_secs.max(1),
        detail: format!(
            "Too many {} requests: at most {} per {} seconds. Try again in {} seconds.",
            class.name(),
            decision.limit,
            policy.per_secs,
            decision.reset_secs.max(1)
        ),
    }
}

/// Counts one request of `class` for a signed-in user that did not come as an HTTP request
/// of its own (a `send` on a WebSocket): the same allowance, the same refusal.
pub async fn count_for_user(
    state: &AppState,
    class: Class,
    user_id: uuid::Uuid,
) -> Result<(), Error> {
    match state.rate_limiter.check(class, &user_key(user_id)).await {
        Some(decision) if !decision.allowed => Err(refused(state, class, &decision)),
        _ => Ok(()),
    }
}

/// The middleware.
pub async fn limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(class) = Class::of(req.method(), req.uri().path()) else {
        return next.run(req).await;
    };
    let (mut parts, body) = req.into_parts();
    let key = if class != Class::Auth
        && parts
            .headers
            .contains_key(axum::http::header::AUTHORIZATION)
        && let Ok(user) = AuthUser::from_request_parts(&mut parts, &state).await
    {
        user_key(user.user.id)
    } else {
        let ip = ClientInfo::from_request_parts(&mut parts, &state)
            .await
            .map_or_else(|_| "unknown".to_owned(), |c| c.ip);
        format!("ip:{ip}")
    };
    let req = Request::from_parts(parts, body);
    let Some(decision) = state.rate_limiter.check(class, &key).await else {
        return next.run(req).await;
    };
    let policy = limit_of(&state.config.rate_limits, class);
    let mut response = if decision.allowed {
        next.run(req).await
    } else {
        refused(&state, class, &decision).into_response()
    };
    let headers = response.headers_mut();
    headers.insert(LIMIT, HeaderValue::from(decision.limit));
    headers.insert(REMAINING, HeaderValue::from(decision.remaining));
    headers.insert(RESET, HeaderValue::from(decision.reset_secs));
    if let Ok(v) = HeaderValue::from_str(&format!("{};w={}", policy.requests, policy.per_secs)) {
        headers.insert(POLICY, v);
    }
    response
}
