//! `/jobs`: every job of the caller, whatever its kind (exports, sheet syncs, imports of large
//! files, account archives): status and progress to poll, cancel, and the file of one that
//! wrote a file. The kind-specific routes (`/exports`) stay as they are.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::Kind;
use crate::auth::extract::AuthUser;
use crate::db::jobs::{self as store, JobRecord};
use crate::error::{Error, OrNotFound};
use crate::exports::jobs::Progress;
use crate::http::extract::{Path, Query};
use crate::http::pagination::{Page, PageQuery};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_jobs))
        .routes(routes!(get_job))
        .routes(routes!(job_events))
        .routes(routes!(cancel_job))
        .routes(routes!(download_job))
}

/// A job of any kind.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobResponse {
    pub id: Uuid,
    pub kind: Kind,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    /// Rows done so far, and in all once known.
    pub progress: Progress,
    pub attempts: i32,
    pub max_attempts: i32,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// What a succeeded job produced: an import's `table_id`, `name` and `rows`; a file's
    /// `rows`, `bytes` and `file_name`; a change's `table_id` and the change's answer
    /// (`version`, `row_count`, `rows_written`, `rows_deleted`, `nulled_cells`, ...); a
    /// validation's answer (`version`, `violations`, `total`).
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    /// Where to download the file a succeeded job wrote (until its retention time).
    pub download_url: Option<String>,
    /// When the file is deleted.
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

pub fn response(job: JobRecord) -> JobResponse {
    let mut result: Option<Value> = job
        .result
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok());
    // The file's place on the server's disk is not the client's business.
    let artifact = result
        .as_mut()
        .and_then(Value::as_object_mut)
        .and_then(|o| o.remove("artifact"))
        .filter(|a| !a.is_null());
    let download_url = (job.status == store::SUCCEEDED && artifact.is_some())
        .then(|| format!("/api/v1/jobs/{}/download", job.id));
    JobResponse {
        id: job.id,
        kind: Kind::parse(&job.kind).unwrap_or(Kind::Export),
        status: job.status,
        progress: Progress {
            done: job.progress_done,
            total: job.progress_total,
        },
        attempts: job.attempts,
        max_attempts: job.max_attempts,
        error: job.error,
        result,
        download_url,
        expires_at: job.expires_at,
        created_at: job.created_at,
        started_at: job.started_at,
        finished_at: job.finished_at,
    }
}

/// `status` with the job and `Location: /api/v1/jobs/{id}`.
pub fn job_created(job: JobRecord, status: StatusCode) -> Response {
    let location = format!("/api/v1/jobs/{}", job.id);
    let mut res = (status, Json(response(job))).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobListQuery {
    /// How many items (1 to 200, default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    /// `next_cursor` from the previous page.
    #[param(
        pattern = "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})?$"
    )]
    pub cursor: Option<String>,
    /// Only jobs of this kind.
    #[param(pattern = "^(export|sheet_sync|import|account_archive|change|validation)?$")]
    pub kind: Option<String>,
    /// Only jobs with this status.
    #[param(pattern = "^(queued|running|succeeded|failed|cancelled)?$")]
    pub status: Option<String>,
}

/// The caller's jobs of every kind, newest first.
#[utoipa::path(get, path = "/jobs", tag = "jobs", params(JobListQuery),
    responses((status = 200, description = "Jobs", body = Page<JobResponse>)))]
async fn list_jobs(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(q): Query<JobListQuery>,
) -> Result<Json<Page<JobResponse>>, Error> {
    let (limit, before) = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .parse()?;
    let kind = match q.kind.as_deref() {
        None | Some("") => None,
        Some(k) => Some(
            Kind::parse(k)
                .ok_or_else(|| {
                    Error::field(
                        "kind",
                        "must be export, sheet_sync, import, account_archive, change or validation",
                    )
                })?
                .as_str(),
        ),
    };
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s @ ("queued" | "running" | "succeeded" | "failed" | "cancelled")) => Some(s),
        Some(_) => {
            return Err(Error::field(
                "status",
                "must be queued, running, succeeded, failed or cancelled",
            ));
        }
    };
    let rows = store::list_own(&state.db, auth.user.id, kind, status, before, limit + 1).await?;
    Ok(Json(Page::from_rows(rows, limit, |r| r.id, response)))
}

async fn find(state: &AppState, owner: Uuid, id: Uuid) -> Result<JobRecord, Error> {
    store::find_own(&state.db, owner, id)
        .await?
        .or_not_found("job")
}

/// `job` with the progress its worker has reached when it runs on this process (ahead of
/// what the database has: the worker writes it every second, and a SQLite write of the job
/// itself can hold that write back).
fn with_live(state: &AppState, mut job: JobRecord) -> JobRecord {
    if job.status == store::RUNNING
        && let Some(live) = state.live.progress(job.id)
    {
        let done = i64::try_from(live.done).unwrap_or(i64::MAX);
        job.progress_done = job.progress_done.max(done);
        if live.total > 0 {
            job.progress_total = Some(i64::try_from(live.total).unwrap_or(i64::MAX));
        }
    }
    job
}

/// One job: status, progress, attempts, error, result. Poll it to follow the job, or follow
/// `/jobs/{id}/events`.

#[utoipa::path(get, path = "/jobs/{id}", tag = "jobs",
    params(("id" = Uuid, Path, description = "Job id")),
    responses((status = 200, description = "The job", body = JobResponse)))]
async fn get_job(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<JobResponse>, Error> {
    let job = find(&state, auth.user.id, id).await?;
    Ok(Json(response(with_live(&state, job))))
}

/// One Server-Sent Event of `/jobs/{id}/events`, as the stream's parser sees it: its name,
/// `job`, and its data, a [`JobResponse`] as JSON (the document says so with `contentSchema`,
/// which utoipa has no attribute for).
struct JobEvent;

impl utoipa::PartialSchema for JobEvent {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let mut content_schema = utoipa::openapi::extensions::Extensions::default();
        content_schema.insert(
            "contentSchema".to_owned(),
            serde_json::json!({ "$ref": "#/components/schemas/JobResponse" }),
        );
        ObjectBuilder::new()
            .property(
                "event",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["job"])),
            )
            .property(
                "data",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .content_media_type("application/json")
                    .extensions(Some(content_schema)),
            )
            .required("event")
            .required("data")
            .into()
    }
}

impl ToSchema for JobEvent {}

/// An open event stream: the job it follows, what it last sent.
struct Follow {
    state: AppState,
    owner: Uuid,
    id: Uuid,
    /// Read already: sent first, without waiting.
    next: Option<JobRecord>,
    last: Option<String>,
    ended: bool,
    stop: tokio::sync::watch::Receiver<bool>,
    _slot: super::live::Stream,
}

/// Follow a job as Server-Sent Events: a `job` event (the job as `GET /jobs/{id}` answers)
/// at once and then each time its status or progress changes; progress moves at least every
/// second while the job works. The stream ends after the event of a job that has ended, or
/// when this server stops (follow it again: any server answers). At most
/// `exports.max_event_streams_per_user` streams per user and server.
#[utoipa::path(get, path = "/jobs/{id}/events", tag = "jobs",
    params(("id" = Uuid, Path, description = "Job id")),
    responses((status = 200, description = "`job` events, each a `JobResponse` as JSON", content_type = "text/event-stream", body = JobEvent),
        (status = 429, description = "Too many event streams open", body = crate::http::error::Problem, content_type = "application/problem+json")))]
async fn job_events(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Response, Error> {
    let owner = auth.user.id;
    let first = find(&state, owner, id).await?;
    let max = state.config.exports.max_event_streams_per_user;
    let slot = super::live::open_stream(&state.live, owner, max).ok_or_else(|| {
        Error::TooManyRequests {
            retry_after_secs: 5,
            detail: format!(
                "You have {max} job event streams open; close one, or poll GET /api/v1/jobs/{{id}}."
            ),
        }
    })?;
    let every = Duration::from_millis(state.config.exports.events_poll_ms);
    let follow = Follow {
        stop: state.shutting_down.subscribe(),
        state,
        owner,
        id,
        next: Some(first),
        last: None,
        ended: false,
        _slot: slot,
    };
    let events = futures_util::stream::unfold(follow, move |mut f| async move {
        loop {
            if f.ended || *f.stop.borrow() {
                return None;
            }
            let job = match f.next.take() {
                Some(job) => job,
                None => {
                    tokio::select! {
                        () = tokio::time::sleep(every) => {}
                        _ = f.stop.changed() => return None,
                    }
                    match store::find_own(&f.state.db, f.owner, f.id).await {
                        Ok(Some(job)) => job,
                        // Gone (its account was deleted), or the database failed: the client
                        // sees the stream end and may poll.
                        Ok(None) => return None,
                        Err(err) => {
                            tracing::warn!(job.id = %f.id, error = %err, "job events: read failed");
                            return None;
                        }
                    }
                }
            };
            let job = with_live(&f.state, job);
            let ended = job.status != store::QUEUED && job.status != store::RUNNING;
            let body = serde_json::to_string(&response(job)).unwrap_or_default();
            if f.last.as_deref() == Some(body.as_str()) {
                continue;
            }
            f.ended = ended;
            f.last = Some(body.clone());
            let event = Event::default().event("job").data(body);
            return Some((Ok::<_, Infallible>(event), f));
        }
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// Cancel a job that is queued or running: a running one stops at its next heartbeat and
/// leaves nothing half-done (an import stores no table).
#[utoipa::path(post, path = "/jobs/{id}/cancel", tag = "jobs",
    params(("id" = Uuid, Path, description = "Job id")),
    responses((status = 200, description = "Cancelled", body = JobResponse),
        (status = 409, description = "The job has already ended", body = crate::http::error::Problem, content_type = "application/problem+json")))]
async fn cancel_job(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<JobResponse>, Error> {
    let owner = auth.user.id;
    let job = find(&state, owner, id).await?;
    if !store::cancel(&state.db, owner, &job.kind, id).await? {
        let job = find(&state, owner, id).await?;
        return Err(Error::conflict(
            "job-finished",
            format!("The job has already {}.", job.status),
        ));
    }
    // A queued import's upload has no one left to read it.
    super::remove_files(&state, &job);
    tracing::info!(job.id = %id, kind = %job.kind, "job cancelled");
    Ok(Json(response(find(&state, owner, id).await?)))
}

/// Download the file a succeeded job wrote (an export's file, an account archive).
#[utoipa::path(get, path = "/jobs/{id}/download", tag = "jobs",
    params(("id" = Uuid, Path, description = "Job id")),
    responses((status = 200, description = "The file", content(
            (Vec<u8> = "application/zip"),
            (Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
            (String = "text/csv"),
            (Value = "application/json"))),
        (status = 409, description = "The job has not succeeded: its file is not ready", body = crate::http::error::Problem, content_type = "application/problem+json")))]
async fn download_job(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Response, Error> {
    let job = find(&state, auth.user.id, id).await?;
    if job.status != store::SUCCEEDED {
        return Err(Error::conflict(
            "job-not-ready",
            format!("The job is {}; its file is not ready.", job.status),
        ));
    }
    let result: crate::exports::jobs::ExportResult = job
        .result
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok())
        .ok_or_else(|| Error::conflict("no-file", "This job wrote no file."))?;
    let content_type = match Kind::parse(&job.kind) {
        Some(Kind::AccountArchive) => "application/zip",
        Some(Kind::Export) => crate::exports::jobs::payload(&job)?
            .options
            .format
            .content_type(),
        _ => return Err(Error::conflict("no-file", "This job wrote no file.")),
    };
    let gone = || Error::Gone {
        code: "job-file-expired",
        detail: "The file was deleted after its retention period; run the job again.".to_owned(),
    };
    let artifact = result.artifact.ok_or_else(gone)?;
    let file = match std::fs::File::open(state.config.data_dir.join(artifact)) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(gone()),
        Err(e) => return Err(Error::Internal(e.into())),
    };
    Ok(crate::exports::file_response(
        file,
        content_type,
        &result.file_name,
    ))
}
