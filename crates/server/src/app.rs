//! `Application::build(config)` gives a server bound to its port with the database migrated;
//! `run_until` serves until the shutdown future resolves, then lets in-flight requests finish.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::state::AppState;
use crate::{crypto, db, http, secrets, telemetry};

pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let state = build_state(config).await?;
        let listener = TcpListener::bind(state.config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", state.config.listen))?;
        Ok(Self { listener, state })
    }

    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let grace = Duration::from_secs(self.state.config.http.shutdown_grace_secs);
        let state = self.state.clone();
        let housekeeping = tokio::spawn(async move {
            let abandoned = Duration::from_secs(state.config.chat.abandoned_reply_secs);
            let mut tick = tokio::time::interval(Duration::from_secs(30).min(abandoned / 2));
            let every = Duration::from_secs(state.config.retention.sweep_interval_secs.max(30));
            let mut last_sweep: Option<std::time::Instant> = None;
            loop {
                tick.tick().await;
                state.metrics.run_upkeep();
                state.login_throttle.prune();
                state.rate_limiter.prune();
                state.scratch.touch();
                // Replies whose server died while writing them (any server's).
                let cutoff = chrono::Duration::from_std(abandoned)
                    .ok()
                    .and_then(|d| chrono::Utc::now().checked_sub_signed(d))
                    .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
                let ended = async {
                    let _turn = state.writes.turn().await?;
                    crate::db::conversations::end_abandoned(&state.db, cutoff).await
                };
                match ended.await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(replies = n, "ended replies abandoned mid-stream"),
                    Err(err) => tracing::warn!(error = %err, "could not end abandoned replies"),
                }
                if last_sweep.is_none_or(|at| at.elapsed() >= every) {
                    last_sweep = Some(std::time::Instant::now());
                    if let Err(err) = crate::retention::sweep(&state).await {
                        tracing::warn!(error = %err, "retention sweep failed");
                    }
                }
            }
        });
        // Each model server's real context window, asked once beside the service (a server
        // that is down at start-up is only not checked).
        let checks = tokio::spawn(self.state.models.clone().check_windows());
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let kinds = crate::jobs::worker::Kinds::default()
            .with::<crate::exports::worker::ExportJob>()
            .with::<crate::google::links::SyncJob>()
            .with::<crate::tables::jobs::ImportJob>()
            .with::<crate::account::ArchiveJob>()
            .with::<crate::tables::jobs::ChangeJob>()
            .with::<crate::jobs::validation::ValidationJob>();
        let mut workers = crate::jobs::worker::start(&self.state, kinds, stop_rx.clone());
        let app = http::router(self.state.clone());
        let mut stopped = stop_rx.clone();
        let sockets = self.state.clone();
        let server = axum::serve(
            self.listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: finishing in-flight requests");
            let _ = stop_tx.send(true);
            sockets.shutting_down.send_replace(true);
        });
        // In-flight requests get `grace` to finish; after that the process stops anyway.
        let deadline = async move {
            let _ = stopped.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        };
        let graceful = tokio::select! {
            result = server => {
                result.context("server failed")?;
                true
            }
            () = deadline => {
                tracing::warn!("shutdown grace period over; dropping open connections");
                false
            }
        };
        if graceful {
            // WebSockets close themselves (1001) once their reply is done; give them the grace.
            let open = || {
                self.state
                    .open_sockets
                    .load(std::sync::atomic::Ordering::Relaxed)
            };
            if tokio::time::timeout(grace, async {
                while open() > 0 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
            .await
            .is_err()
            {
                tracing::warn!(
                    open = open(),
                    "shutdown grace period over; dropping WebSockets"
                );
            }
        }
        drop(stop_rx);
        housekeeping.abort();
        checks.abort();
        // Workers give their jobs back to the queue (for another process, or the next start).
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while workers.join_next().await.is_some() {}
        })
        .await;
        self.state.db.clone().close().await.ok();
        tracing::info!("stopped");
        Ok(())
    }
}

/// Connects, migrates and assembles everything a request needs (also used by the CLI).
pub async fn build_state(config: Config) -> anyhow::Result<AppState> {
    let jwt_secret =
        secrets::load_or_generate(config.jwt_secret.as_ref(), &config.data_dir, "jwt_secret")?;
    let encryption_key = secrets::load_or_generate_key(
        config.encryption_key.as_ref(),
        &config.data_dir,
        "encryption_key",
    )?;
    // A configured key was checked with the configuration; this catches a damaged file.
    let cipher = crypto::Cipher::from_text(encryption_key.expose_secret()).map_err(|err| {
        anyhow::anyhow!(
            "the encryption key in {}: {err}",
            config.data_dir.join("encryption_key").display()
        )
    })?;
    let db = db::connect(&config).await?;
    db::migrate(&db)
        .await
        .context("database migration failed")?;
    let metrics = telemetry::metrics_handle()?;
    let state = AppState::new(
        config,
        db,
        jwt_secret.expose_secret().as_bytes(),
        cipher,
        metrics,
    )?;
    // Temporaries of processes that died (killed, crashed) go before this one starts work.
    state.scratch.sweep();
    Ok(state)
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
