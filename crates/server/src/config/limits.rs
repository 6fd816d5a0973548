//! `[rate_limits]`, `[quotas]` and `[retention]`: how much, how often and how long.

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};

/// A rate: so many requests per so many seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limit {
    /// Requests allowed …
    pub requests: u32,
    /// … per this many seconds.
    pub per_secs: u64,
}

/// Request rate limits per route class; keyed by user, or by client address before sign-in.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitsConfig {
    pub enabled: bool,
    /// Sign-up, sign-in and token refresh, per client address.
    pub auth: Limit,
    /// Sending messages and regenerating replies.
    pub chat: Limit,
    /// Creating exports and downloading files.
    pub export: Limit,
    /// Every other API request.
    pub default: Limit,
    /// Prefix of the Redis keys (with `redis_url`).
    pub redis_prefix: String,
}

impl Default for RateLimitsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            auth: Limit {
                requests: 60,
                per_secs: 60,
            },
            chat: Limit {
                requests: 60,
                per_secs: 60,
            },
            export: Limit {
                requests: 60,
                per_secs: 60,
            },
            default: Limit {
                requests: 1200,
                per_secs: 60,
            },
            redis_prefix: "sheetgpt".to_owned(),
        }
    }
}

impl RateLimitsConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        for (key, limit) in [
            ("rate_limits.auth", self.auth),
            ("rate_limits.chat", self.chat),
            ("rate_limits.export", self.export),
            ("rate_limits.default", self.default),
        ] {
            if limit.requests == 0 || limit.per_secs == 0 {
                return Err(invalid(key, "requests and per_secs must be at least 1"));
            }
        }
        Ok(())
    }
}

/// How long deleted things and records are kept.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Days a deleted record (table, conversation, template, account…) stays restorable
    /// before it is purged for good.
    pub soft_deleted_days: u64,
    /// Days audit events are kept.
    pub audit_days: u64,
    /// How often each server sweeps.
    pub sweep_interval_secs: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            soft_deleted_days: 30,
            audit_days: 365,
            sweep_interval_secs: 3600,
        }
    }
}

/// Per-user quotas (0 = no limit); admins can override them per user. The model token quota
/// is `chat.daily_token_quota`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QuotasConfig {
    /// Export jobs a user may create per UTC day (0: no limit, the default).
    pub exports_per_day: u64,
    /// Rows a user's tables may hold in all.
    pub max_stored_rows: u64,
}
