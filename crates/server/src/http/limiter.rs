//! The counters behind the rate limits: in-process with governor (GCRA) by default, or in
//! Redis (fixed windows) so that every instance shares them. The middleware that applies
//! them to requests is `http::rate_limit`.

use std::num::NonZeroU32;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::Method;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::config::{Limit, RateLimitsConfig};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Auth,
    Chat,
    Export,
    Default,
}

impl Class {
    pub fn name(self) -> &'static str {
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

pub(super) fn limit_of(config: &RateLimitsConfig, class: Class) -> Limit {
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
