//! Router assembly and the middleware every request passes through. Each feature module
//! owns its routes and OpenAPI annotations; this module only nests them.

pub mod error;
pub mod extract;
pub mod forwarded;
pub mod limiter;
pub mod nul;
pub mod openapi;
pub mod ops;
pub mod pagination;
pub mod rate_limit;

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::config::HttpConfig;
use crate::state::AppState;
use error::Problem;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole application: API, operations endpoints, OpenAPI document and docs page.
pub fn router(state: AppState) -> Router {
    let (api, doc) = OpenApiRouter::with_openapi(openapi::base())
        .nest(
            "/api/v1",
            crate::auth::routes::router()
                .merge(crate::chat::routes::router())
                .merge(crate::llm::keys::routes::router())
                .merge(crate::schemas::routes::router())
                .merge(crate::exports::templates::routes::router())
                .merge(crate::exports::jobs::routes::router())
                .merge(crate::jobs::routes::router())
                .merge(crate::google::routes::router())
                .merge(crate::google::links::routes::router())
                .merge(crate::admin::routes::router())
                .merge(crate::account::routes::router())
                .merge(crate::tables::routes::router(
                    state.config.tables.max_upload_bytes,
                )),
        )
        .merge(ops::router())
        .split_for_parts();
    let doc = openapi::finish(doc);
    let http = state.config.http.clone();

    Router::new()
        .merge(api)
        .merge(SwaggerUi::new("/docs").url("/api/v1/openapi.json", doc))
        .merge(crate::web::router())
        .fallback(|| async {
            Problem::for_status(StatusCode::NOT_FOUND).into_response_with(StatusCode::NOT_FOUND)
        })
        .layer(middleware::from_fn(nul::refuse_in_uri))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            rate_limit::limit,
        ))
        .layer(middleware::from_fn(record_metrics))
        .layer(axum::extract::DefaultBodyLimit::max(http.body_limit_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(http.request_timeout_secs),
        ))
        .layer(cors(&http))
        .with_state(state)
        // Outermost first: a panic anywhere becomes a problem; every request gets an id
        // before it is traced; bare error statuses from the inner layers become problems.
        .layer(
            ServiceBuilder::new()
                .layer(CatchPanicLayer::custom(|_| {
                    tracing::error!("handler panicked");
                    Problem::for_status(StatusCode::INTERNAL_SERVER_ERROR)
                        .into_response_with(StatusCode::INTERNAL_SERVER_ERROR)
                }))
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|req: &Request| {
                            let request_id = req
                                .headers()
                                .get(REQUEST_ID)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("-");
                            tracing::info_span!(
                                "request",
                                method = %req.method(),
                                path = %req.uri().path(),
                                request_id = %request_id,
                                user.id = tracing::field::Empty,
                            )
                        })
                        .on_request(())
                        .on_response(
                            tower_http::trace::DefaultOnResponse::new().level(tracing::Level::INFO),
                        ),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(middleware::map_response(problem_for_bare_errors))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::X_FRAME_OPTIONS,
                    HeaderValue::from_static("DENY"),
                ))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("no-referrer"),
                ))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(CSP),
                ))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("no-store"),
                )),
        )
}

/// Same-origin everything; Swagger UI needs inline styles and data: images. The web page's
/// files carry a stricter one of their own (`web::PAGE_CSP`).
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
                   script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
                   form-action 'self'";

fn cors(http: &HttpConfig) -> CorsLayer {
    if http.cors_allowed_origins.is_empty() {
        // No CORS headers at all: browsers keep to same-origin.
        return CorsLayer::new();
    }
    let origin = if http.cors_allowed_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            http.cors_allowed_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(origin)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            REQUEST_ID,
        ])
        .expose_headers([REQUEST_ID, header::RETRY_AFTER, header::ETAG])
        .max_age(Duration::from_secs(600))
}

/// Errors produced below the handlers (unknown route, wrong method, body too large, timeout,
/// panic) come as bare status codes; give them the same problem+json body as the rest.
async fn problem_for_bare_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    // Handlers answer errors with problem+json, or on purpose with JSON (readyz); what
    // comes bare or as plain text is from the framework or a tower layer.
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.as_bytes().to_vec());
    let bare = content_type
        .as_deref()
        .is_none_or(|ct| ct.starts_with(b"text/plain"));
    if !bare {
        return response;
    }
    let (parts, _) = response.into_parts();
    let mut problem = Problem::for_status(status).into_response_with(status);
    for name in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(value) = parts.headers.get(&name) {
            problem.headers_mut().insert(name, value.clone());
        }
    }
    problem
}

/// Request count and latency by method, route template and status.
async fn record_metrics(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("sheetgpt_http_requests_total", &labels).increment(1);
    metrics::histogram!("sheetgpt_http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}
