//! Operations endpoints, outside `/api/v1` and without authentication: liveness, readiness
//! and Prometheus metrics.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::db;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    #[schema(example = "ready")]
    pub status: &'static str,
    /// `ok` or why the database is not usable.
    pub database: String,
    /// Migrations this binary knows that the database lacks.
    pub pending_migrations: usize,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, description = "Alive", body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: the database answers and every migration is applied.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready", body = Readiness),
    ))]
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let (database, pending) = match state.db.ping().await {
        Err(err) => {
            tracing::warn!(error = %err, "readiness: database ping failed");
            ("unreachable".to_owned(), 0)
        }
        Ok(()) => match db::pending_migrations(&state.db).await {
            Ok(n) => ("ok".to_owned(), n),
            Err(err) => {
                tracing::warn!(error = %err, "readiness: cannot read migrations");
                ("migrations unreadable".to_owned(), 0)
            }
        },
    };
    let ready = database == "ok" && pending == 0;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Readiness {
            status: if ready { "ready" } else { "not ready" },
            database,
            pending_migrations: pending,
        }),
    )
}

/// Prometheus metrics: HTTP requests and latency by route and status, database pool.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(()),
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let (size, idle) = db::pool_stats(&state.db);
    let idle = u32::try_from(idle).unwrap_or(u32::MAX);
    metrics::gauge!("sheetgpt_db_pool_connections", "state" => "idle").set(f64::from(idle));
    metrics::gauge!("sheetgpt_db_pool_connections", "state" => "in_use")
        .set(f64::from(size.saturating_sub(idle)));
    metrics::gauge!("sheetgpt_db_pool_max_connections")
        .set(f64::from(state.config.database.max_connections));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
