//! What every request handler can reach.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use sea_orm::DatabaseConnection;

use crate::auth::cache::SessionCache;
use crate::auth::jwt::JwtKeys;
use crate::auth::password::Hasher;
use crate::auth::throttle::LoginThrottle;
use crate::chat::runs::Runs;
use crate::config::Config;
use crate::crypto::Cipher;
use crate::llm::registry::Models;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Config,
    pub db: DatabaseConnection,
    pub hasher: Hasher,
    pub jwt: JwtKeys,
    /// Encrypts secrets kept in the database (users' own model keys).
    pub cipher: Cipher,
    pub sessions: SessionCache,
    pub login_throttle: LoginThrottle,
    pub metrics: PrometheusHandle,
    pub models: Models,
    pub runs: Runs,
    /// Wakes this process's job workers when a job is queued here (others poll).
    pub jobs_queued: Arc<tokio::sync::Notify>,
    pub google: crate::google::Google,
    pub rate_limiter: crate::http::limiter::Limiter,
    /// Turns true when the server starts to stop: open WebSockets close (1001, going away)
    /// once their reply is done.
    pub shutting_down: tokio::sync::watch::Sender<bool>,
    /// WebSockets open on this process. Their tasks are not part of the HTTP server's graceful
    /// stop, so the stop waits for this to reach zero.
    pub open_sockets: std::sync::atomic::AtomicUsize,
    /// This process's temporary directory (`scratch`), removed when the state is dropped.
    pub scratch: crate::scratch::ScratchDir,
    /// Progress of the jobs running here, and the job event streams open here.
    pub live: crate::jobs::live::Live,
    /// The orders of sorted and filtered views of tables, kept for their deep pages.
    pub orders: crate::tables::order::OrderCache,
    /// Write transactions in turn (SQLite: one writer).
    pub writes: crate::db::WriteGate,
}

impl AppState {
    pub fn new(
        config: Config,
        db: DatabaseConnection,
        jwt_secret: &[u8],
        cipher: Cipher,
        metrics: PrometheusHandle,
    ) -> anyhow::Result<Self> {
        let auth = &config.auth;
        let hasher = Hasher::new(auth.argon2_memory_kib, auth.argon2_iterations)?;
        let jwt = JwtKeys::new(jwt_secret, auth);
        let sessions = SessionCache::new(Duration::from_secs(auth.session_cache_secs), 100_000);
        let models = Models::from_config(&config)?;
        let google = crate::google::Google::from_config(&config.google)?;
        let rate_limiter =
            crate::http::limiter::Limiter::new(&config.rate_limits, config.redis_url.as_deref())?;
        let login_throttle = LoginThrottle::new(auth);
        let scratch = crate::scratch::ScratchDir::create(&config.data_dir)?;
        let config_orders = config.tables.order_cache_bytes;
        let backend = sea_orm::ConnectionTrait::get_database_backend(&db);
        Ok(Self(Arc::new(Inner {
            config,
            db,
            hasher,
            jwt,
            cipher,
            sessions,
            login_throttle,
            metrics,
            models,
            runs: Runs::default(),
            jobs_queued: Arc::new(tokio::sync::Notify::new()),
            google,
            rate_limiter,
            shutting_down: tokio::sync::watch::Sender::new(false),
            open_sockets: std::sync::atomic::AtomicUsize::new(0),
            scratch,
            live: crate::jobs::live::Live::default(),
            orders: crate::tables::order::OrderCache::new(config_orders),
            writes: crate::db::WriteGate::new(backend),
        })))
    }
}

impl Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// What the quota checks need of the state.
    pub fn quotas(&self) -> crate::quotas::Ctx<'_> {
        crate::quotas::Ctx {
            db: &self.db,
            config: &self.config,
        }
    }
}
