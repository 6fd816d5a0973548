//! Rate limits per route class (auth, chat, export, default), keyed by user, or by client
//! address before sign-in (auth routes always by address). Replies asked for on a
//! conversation's WebSocket are counted in `chat` one by one, like the HTTP requests that ask
//! for them ([`count_for_user`]); opening the socket is an ordinary (`default`) request. In-process with governor (GCRA)
//! by default; with `SHEETGPT_REDIS_URL`, counted in Redis (fixed windows) so that every
//! instance shares them. Answers carry `RateLimit-Limit`, `RateLimit-Remaining`,
//! `RateLimit-Reset` and `RateLimit-Policy`; a refused request gets 429 problem+json with
//! `Retry-After`.

use std::num::NonZeroU32;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::auth::extract::{AuthUser, ClientInfo};
use crate::config::{Limit, RateLimitsConfig};
use crate::error::Error;
use crate::state::AppState;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Auth,
    Chat,
    Export,
    Default,
}

impl Class {
    fn name(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Chat => "chat",
            Self::Export => "export",
            Self::Default => "default",
        }
    }

    /// The class of a request, or None for routes without limits (operations, docs, page).
    pub fn of(method: &Method, path: &str) -> Option<Self> {
        let rest = path.strip_prefix("/api/v1/")?;
        let parts: Vec<&str> = rest.split('/').collect();
        let post = method == Method::POST;
        Some(match parts.as_slice() {
            ["auth", "login" | "register" | "refresh"] if post => Self::Auth,
            ["auth", "web", "login" | "refresh"] if post => Self::Auth,
            ["conversations", _, "messages" | "regenerate"] if post => Self::Chat,
            ["exports"] if post => Self::Export,
            ["tables", _, "download"] | ["exports", _, "download"] => Self::Export,
            ["account", "export"] => Self::Export,
            _ => Self::Default,
        })
    }
}

fn limit_of(config: &RateLimitsConfig, class: Class) -> Limit {
    match class {
        Class::Auth => config.auth,
        Class::Chat => config.chat,
        Class::Export => config.export,
        Class::Default => config.default,
    }
}

/// What a check decided.
#[derive(Debug)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the allowance is back (whole).
    pub reset_secs: u64,
}

type Keyed =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

pub enum Limiter {
    Off,
    Local {
        limiters: Vec<(Class, Keyed, Limit)>,
    },
    Redis(Box<RedisLimiter>),
}

pub struct RedisLimiter {
    client: redis::Client,
    connection: tokio::sync::OnceCell<redis::aio::ConnectionManager>,
    prefix: String,
    limits: RateLimitsConfig,
}

const WINDOW_SCRIPT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n";

impl Limiter {
    pub fn new(config: &RateLimitsConfig, redis_url: Option<&str>) -> anyhow::Result<Self> {
        if !config.enabled {
            return Ok(Self::Off);
        }
        if let Some(url) = redis_url {
            let client = redis::Client::open(url)
                .map_err(|e| anyhow::anyhow!("redis_url is not a Redis URL: {e}"))?;
            return Ok(Self::Redis(Box::new(RedisLimiter {
                client,
                connection: tokio::sync::OnceCell::new(),
                prefix: config.redis_prefix.clone(),
                limits: config.clone(),
            })));
        }
        let limiters = [Class::Auth, Class::Chat, Class::Export, Class::Default]
            .into_iter()
            .map(|class| {
                let limit = limit_of(config, class);
                let burst = NonZeroU32::new(limit.requests).unwrap_or(NonZeroU32::MIN);
                let period = Duration::from_secs(limit.per_secs.max(1)) / burst.get();
                let quota = Quota::with_period(period.max(Duration::from_micros(1)))
                    .unwrap_or_else(|| Quota::per_second(burst))
                    .allow_burst(burst);
                let limiter =
                    RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>();
                (class, limiter, limit)
            })
            .collect();
        Ok(Self::Local { limiters })
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Local { .. } => "in-process",
            Self::Redis(_) => "redis",
        }
    }

    /// Forgets keys that are back to a full allowance (in-process memory upkeep).
    pub fn prune(&self) {
        if let Self::Local { limiters } = self {
            for (_, limiter, _) in limiters {
                limiter.retain_recent();
            }
        }
    }

    pub async fn check(&self, class: Class, key: &str) -> Option<Decision> {
        match self {
            Self::Off => None,
            Self::Local { limiters } => {
                let (_, limiter, limit) = limiters.iter().find(|(c, _, _)| *c == class)?;
                let per_request =
                    Duration::from_secs(limit.per_secs.max(1)) / limit.requests.max(1);
                Some(match limiter.check_key(&key.to_owned()) {
                    Ok(snapshot) => {
                        let remaining = snapshot.remaining_burst_capacity();
                        let refill = per_request * (limit.requests.saturating_sub(remaining));
                        Decision {
                            allowed: true,
                            limit: limit.requests,
                            remaining,
                            reset_secs: refill.as_secs_f64().ceil() as u64,
                        }
                    }
                    Err(not_until) => Decision {
                        allowed: false,
                        limit: limit.requests,
                        remaining: 0,
                        reset_secs: not_until
                            .wait_time_from(DefaultClock::default().now())
                            .as_secs_f64()
                            .ceil()
                            .max(1.0) as u64,
                    },
                })
            }
            Self::Redis(redis_limiter) => {
                let RedisLimiter {
                    client,
                    connection,
                    prefix,
                    limits,
                } = &**redis_limiter;
                let limit = limit_of(limits, class);
                let per = limit.per_secs.max(1);
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let window = now / per;
                let reset_secs = (window + 1) * per - now;
                let counted = async {
                    let conn = connection
                        .get_or_try_init(|| client.get_connection_manager())
                        .await?;
                    let mut conn = conn.clone();
                    redis::Script::new(WINDOW_SCRIPT)
                        .key(format!("{prefix}:rl:{}:{key}:{window}", class.name()))
                        .arg(per + 1)
                        .invoke_async::<u64>(&mut conn)
                        .await
                        .map_err(anyhow::Error::from)
                };
                // A Redis that hangs must not hang every request with it.
                let count = match tokio::time::timeout(REDIS_TIMEOUT, counted).await {
                    Ok(result) => result,
                    Err(_) => Err(anyhow::anyhow!(
                        "no answer from Redis within {REDIS_TIMEOUT:?}"
                    )),
                };
                match count {
                    Ok(n) => Some(Decision {
                        allowed: n <= u64::from(limit.requests),
                        limit: limit.requests,
                        remaining: u32::try_from(u64::from(limit.requests).saturating_sub(n))
                            .unwrap_or(0),
                        reset_secs,
                    }),
                    Err(err) => {
                        // Redis down: serve rather than refuse everyone.
                        tracing::warn!(error = %err, "rate limit check failed; allowing the request");
                        None
                    }
                }
            }
        }
    }
}

/// The longest a rate limit check waits for Redis before letting the request through.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

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
