//! `[database]`, `[http]` and `[auth]`: the pool, the HTTP server and sign-in.

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    pub max_connections: u32,
    pub min_connections: u32,
    pub connect_timeout_secs: u64,
    pub acquire_timeout_secs: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            max_connections: 16,
            min_connections: 1,
            connect_timeout_secs: 5,
            acquire_timeout_secs: 5,
        }
    }
}

impl DatabaseConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_connections == 0 {
            return Err(invalid("database.max_connections", "must be at least 1"));
        }
        if self.min_connections > self.max_connections {
            return Err(invalid(
                "database.min_connections",
                "must not exceed database.max_connections",
            ));
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// Time a request may take before it is answered with 503.
    pub request_timeout_secs: u64,
    /// Origins allowed by CORS; empty means same-origin only.
    pub cors_allowed_origins: Vec<String>,
    /// Behind a reverse proxy: take the client address, scheme and host from the
    /// `X-Forwarded-For`/`-Proto`/`-Host` entries the trusted proxies appended (see
    /// `trusted_proxy_hops`), never from what the client wrote there itself.
    pub trust_forwarded_for: bool,
    /// How many proxies in front of the server append to `X-Forwarded-For`: the client address
    /// is the entry this many from the right (1: the rightmost, the one the nearest proxy
    /// added). Only with `trust_forwarded_for`.
    pub trusted_proxy_hops: u32,
    /// Time in-flight requests get to finish after SIGINT/SIGTERM.
    pub shutdown_grace_secs: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            body_limit_bytes: 2 * 1024 * 1024,
            request_timeout_secs: 30,
            cors_allowed_origins: Vec::new(),
            trust_forwarded_for: false,
            trusted_proxy_hops: 1,
            shutdown_grace_secs: 20,
        }
    }
}

impl HttpConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.body_limit_bytes < 1024 {
            return Err(invalid("http.body_limit_bytes", "must be at least 1024"));
        }
        if self.request_timeout_secs == 0 {
            return Err(invalid("http.request_timeout_secs", "must be at least 1"));
        }
        for origin in &self.cors_allowed_origins {
            if origin != "*" && !(origin.starts_with("http://") || origin.starts_with("https://")) {
                return Err(invalid(
                    "http.cors_allowed_origins",
                    format!("`{origin}` is not an origin like https://app.example.com"),
                ));
            }
        }
        if !(1..=32).contains(&self.trusted_proxy_hops) {
            return Err(invalid(
                "http.trusted_proxy_hops",
                "must be between 1 and 32",
            ));
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub issuer: String,
    pub audience: String,
    /// Lifetime of an access token (JWT).
    pub access_token_ttl_secs: u64,
    /// Lifetime of a login session and so of its refresh tokens.
    pub session_ttl_days: u64,
    /// How long a checked session is trusted before the database is asked again. Revocations
    /// made through this instance take effect at once; those made elsewhere within this time.
    pub session_cache_secs: u64,
    /// Failed sign-ins allowed for one account from one client address before that address
    /// is refused for this account (the tight brake against guessing).
    pub login_failures_per_account_and_ip: u32,
    /// Failed sign-ins allowed for one account from all addresses together before sign-ins
    /// from addresses that never signed in to it are slowed down (guessing from many
    /// addresses). Addresses the account signed in from before are not slowed by it, so that
    /// strangers cannot lock the owner out.
    pub login_failures_per_account: u32,
    /// Failed sign-ins allowed from one client address, whatever the account.
    pub login_failures_per_ip: u32,
    /// Time over which each of the allowances above is restored.
    pub login_failure_window_secs: u64,
    /// The web page's refresh (cookie) only: a spent refresh token presented again within this
    /// many seconds of its exchange, while that exchange's new token is still unused, is taken
    /// for a lost answer (a reload mid-refresh, two tabs at once) and exchanged again instead
    /// of ending the session. 0 turns this off.
    pub web_refresh_grace_secs: u64,
    /// Argon2id memory cost in KiB.
    pub argon2_memory_kib: u32,
    /// Argon2id passes.
    pub argon2_iterations: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            issuer: "sheetgpt".to_owned(),
            audience: "sheetgpt-api".to_owned(),
            access_token_ttl_secs: 15 * 60,
            session_ttl_days: 30,
            session_cache_secs: 5,
            login_failures_per_account_and_ip: 5,
            login_failures_per_account: 100,
            login_failures_per_ip: 20,
            login_failure_window_secs: 15 * 60,
            web_refresh_grace_secs: 10,
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 2,
        }
    }
}

impl AuthConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !(60..=24 * 3600).contains(&self.access_token_ttl_secs) {
            return Err(invalid(
                "auth.access_token_ttl_secs",
                "must be between 60 and 86400",
            ));
        }
        if self.session_ttl_days == 0 {
            return Err(invalid("auth.session_ttl_days", "must be at least 1"));
        }
        for (key, allowance) in [
            (
                "auth.login_failures_per_account_and_ip",
                self.login_failures_per_account_and_ip,
            ),
            (
                "auth.login_failures_per_account",
                self.login_failures_per_account,
            ),
            ("auth.login_failures_per_ip", self.login_failures_per_ip),
        ] {
            if allowance == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if self.login_failure_window_secs == 0 {
            return Err(invalid(
                "auth.login_failure_window_secs",
                "must be at least 1",
            ));
        }
        if self.argon2_memory_kib < 8 * 1024 {
            return Err(invalid("auth.argon2_memory_kib", "must be at least 8192"));
        }
        if self.argon2_iterations == 0 {
            return Err(invalid("auth.argon2_iterations", "must be at least 1"));
        }
        if self.issuer.is_empty() || self.audience.is_empty() {
            return Err(invalid(
                "auth.issuer",
                "issuer and audience must not be empty",
            ));
        }
        Ok(())
    }
}
