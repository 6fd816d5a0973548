//! Job workers: each claims one job at a time from the database, holds it with a lease it
//! renews every third of the lease time, and records the outcome only while it still holds
//! it. A job whose worker died is claimed again once the lease has run out; a job that fails
//! for a reason that may pass (database, disk) is retried with exponential back-off.
//!
//! Also here: the sweeper that deletes export files after their retention time.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use tokio::task::JoinSet;
use uuid::Uuid;

use super::jobs::{Destination, ExportPayload, ExportResult, KIND};
use super::render::{self, Control, RenderError, Source};
use crate::db::jobs::{self as store, JobRecord};
use crate::db::tables as table_store;
use crate::google::client::{Credential, Session};
use crate::google::{links, sheets};
use crate::jobs::{ImportPayload, Kind};
use crate::state::AppState;

/// Directory (under the data dir) of finished export files.
pub const ARTIFACT_DIR: &str = "exports";

/// Starts the configured number of workers; they stop claiming when `stop` turns true and
/// give back the job they hold.
pub fn start(state: &AppState, stop: watch::Receiver<bool>) -> JoinSet<()> {
    let mut set = JoinSet::new();
    for _ in 0..state.config.exports.workers {
        let state = state.clone();
        let stop = stop.clone();
        set.spawn(async move { worker(state, stop).await });
    }
    set
}

async fn worker(state: AppState, mut stop: watch::Receiver<bool>) {
    let id = Uuid::now_v7();
    let poll = Duration::from_millis(state.config.exports.poll_ms);
    tracing::debug!(worker = %id, "job worker started");
    while !*stop.borrow() {
        let lease_until = Utc::now() + lease(&state);
        match store::claim(&state.db, id, lease_until).await {
            Ok(Some(job)) => run(&state, id, job, &stop).await,
            Ok(None) => {
                tokio::select! {
                    () = state.jobs_queued.notified() => {}
                    () = tokio::time::sleep(poll) => {}
                    _ = stop.changed() => {}
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not claim a job");
                tokio::select! {
                    () = tokio::time::sleep(poll) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }
    tracing::debug!(worker = %id, "job worker stopped");
}

fn lease(state: &AppState) -> chrono::Duration {
    chrono::Duration::seconds(i64::try_from(state.config.exports.lease_secs).unwrap_or(60))
}

/// Back-off before attempt `attempts + 1`: base × 2^(attempts − 1), capped.
pub fn backoff(base_secs: u64, max_secs: u64, attempts: i32) -> Duration {
    let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let secs = base_secs.saturating_mul(1u64 << exp).min(max_secs);
    Duration::from_secs(secs)
}

/// How an attempt ended.
enum Outcome {
    /// Succeeded with this result (JSON); `artifact` is the file to keep, if any.
    Succeeded(Finished),
    /// Failed; retry when the error may pass.
    Failed { message: String, retryable: bool },
    /// The worker no longer holds the job (cancelled, or the lease ran out and another worker
    /// took it): nothing more to record.
    Lost,
    /// This process is stopping: give the job back.
    Released,
    /// Succeeded, and already recorded in the work's own transaction (an import).
    Recorded,
}

async fn run(state: &AppState, worker: Uuid, job: JobRecord, stop: &watch::Receiver<bool>) {
    let started = std::time::Instant::now();
    metrics::counter!("sheetgpt_jobs_started_total", "kind" => job.kind.clone()).increment(1);
    tracing::info!(job.id = %job.id, kind = %job.kind, attempt = job.attempts, "job started");
    let outcome = if job.attempts > job.max_attempts {
        // Claimed again after its workers kept dying (a lease ran out every time).
        Outcome::Failed {
            message: format!(
                "The job was interrupted {} times and was given up.",
                job.max_attempts
            ),
            retryable: false,
        }
    } else if job.kind == KIND {
        export(state, worker, &job, stop).await
    } else if job.kind == links::SYNC_KIND {
        sync(state, worker, &job, stop).await
    } else if job.kind == Kind::Import.as_str() {
        import(state, worker, &job, stop).await
    } else if job.kind == Kind::AccountArchive.as_str() {
        archive(state, worker, &job, stop).await
    } else if job.kind == Kind::Change.as_str() {
        change(state, worker, &job, stop).await
    } else if job.kind == Kind::Validation.as_str() {
        validation(state, worker, &job, stop).await
    } else {
        Outcome::Failed {
            message: format!("Unknown job kind `{}`.", job.kind),
            retryable: false,
        }
    };
    let config = &state.config.exports;
    let db = &state.db;
    let (label, recorded) = match outcome {
        Outcome::Succeeded(result) => {
            let text = result.to_string();
            let expires = Utc::now()
                + chrono::Duration::hours(i64::try_from(config.retention_hours).unwrap_or(168));
            let rows = i64::try_from(result.rows).unwrap_or(i64::MAX);
            let expires = result.artifact.is_some().then_some(expires);
            let recorded = store::succeed(db, job.id, worker, &text, rows, expires).await;
            if matches!(recorded, Ok(false)) {
                discard_if_cancelled(state, &job, result.artifact.as_deref()).await;
            }
            ("succeeded", recorded)
        }
        Outcome::Failed { message, retryable } => {
            let retry_at = (retryable && job.attempts < job.max_attempts).then(|| {
                let wait = backoff(config.retry_base_secs, config.retry_max_secs, job.attempts);
                Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default()
            });
            let label = if retry_at.is_some() {
                "retry"
            } else {
                "failed"
            };
            (
                label,
                store::fail(db, job.id, worker, &message, retry_at).await,
            )
        }
        Outcome::Lost => ("lost", Ok(true)),
        Outcome::Released => ("released", store::release(db, job.id, worker).await),
        Outcome::Recorded => ("succeeded", Ok(true)),
    };
    if let Err(err) = recorded {
        // The lease runs out and another attempt follows.
        tracing::warn!(job.id = %job.id, error = %err, "could not record the job's outcome");
    }
    // An import's upload goes once its job has ended, whichever way (cancelled, deleted with
    // its account, failed for good, succeeded); it stays for a retry.
    if job.kind == Kind::Import.as_str() {
        let ended = match store::find_any(db, job.id).await {
            Ok(current) => {
                current.is_none_or(|j| j.status != store::QUEUED && j.status != store::RUNNING)
            }
            Err(_) => false, // the sweeper removes it later
        };
        if ended {
            crate::jobs::remove_files(state, &job);
        }
    }
    metrics::counter!("sheetgpt_jobs_finished_total", "kind" => job.kind.clone(), "outcome" => label)
        .increment(1);
    tracing::info!(job.id = %job.id, outcome = label, elapsed_ms = started.elapsed().as_millis() as u64, "job ended");
}

/// A run that finished after the job was cancelled, or after its account was deleted, leaves
/// no file behind.
async fn discard_if_cancelled(state: &AppState, job: &JobRecord, artifact: Option<&str>) {
    let abandoned = match store::find_any(&state.db, job.id).await {
        Ok(Some(j)) => j.status == store::CANCELLED,
        Ok(None) => true,
        Err(_) => false,
    };
    if abandoned && let Some(artifact) = artifact {
        let _ = std::fs::remove_file(state.config.data_dir.join(artifact));
    }
}

async fn export(
    state: &AppState,
    worker: Uuid,
    job: &JobRecord,
    stop: &watch::Receiver<bool>,
) -> Outcome {
    let permanent = |message: &str| Outcome::Failed {
        message: message.to_owned(),
        retryable: false,
    };
    let Ok(payload) = serde_json::from_str::<ExportPayload>(&job.payload) else {
        tracing::error!(job.id = %job.id, "export payload does not parse");
        return permanent("The export's settings could not be read.");
    };
    let db = &state.db;
    let table = match table_store::find(db, job.owner_id, payload.table_id).await {
        Ok(Some(t)) => t,
        Ok(None) => return permanent("The table was deleted."),
        Err(err) => return retry_db(&err),
    };
    let record = match table_store::version(db, table.id, payload.version).await {
        Ok(Some(r)) => r,
        Ok(None) => return permanent("The table version no longer exists."),
        Err(err) => return retry_db(&err),
    };
    let schema = match table_store::parse_schema(&record) {
        Ok(s) => s,
        Err(err) => {
            tracing::error!(job.id = %job.id, error = %err, "stored schema does not parse");
            return permanent("The table could not be read.");
        }
    };
    let resolved = match payload.template.as_ref() {
        None => sheetgpt_core::template::Resolved::identity(&schema.columns),
        Some(t) => match t.resolve(&schema.columns) {
            Ok(r) => r,
            Err(missing) => return permanent(&missing.to_string()),
        },
    };

    let control = Arc::new(Control::default());
    let heartbeat = tokio::spawn(heartbeat(
        state.clone(),
        worker,
        job.id,
        Some(record.row_count),
        Arc::clone(&control),
        stop.clone(),
    ));
    if let Destination::GoogleSheets(dest) = &payload.destination {
        let credential = match payload.google_auth.as_deref() {
            Some("service_account") => Credential::ServiceAccount,
            _ => Credential::User(job.owner_id),
        };
        // Checked again now: the admin's list may have changed since the job was queued.
        if credential == Credential::ServiceAccount
            && let Some(id) = dest
                .spreadsheet
                .as_deref()
                .and_then(sheetgpt_core::export::sheets::spreadsheet_id)
        {
            match crate::db::users::find_by_id(&state.db, job.owner_id).await {
                Ok(Some(owner))
                    if crate::google::service_account_may_write(
                        &state.config.google,
                        &id,
                        &owner.email,
                    ) => {}
                Ok(_) => {
                    heartbeat.abort();
                    return permanent(&crate::google::not_allowed_message(&id));
                }
                Err(err) => {
                    heartbeat.abort();
                    return retry_db(&err);
                }
            }
        }
        let session = Session::new(state, credential);
        let rows = sheets::Rows {
            table_id: table.id,
            version: payload.version,
            current: payload.version == table.current_version,
            schema,
            row_count: u64::try_from(record.row_count).unwrap_or(0),
        };
        // A spreadsheet or tab an earlier attempt created (and was stopped in) is written
        // into again, not created twice.
        let resume = job
            .checkpoint
            .as_deref()
            .and_then(|c| serde_json::from_str::<sheets::Tab>(c).ok());
        let created = async |tab: &sheets::Tab| {
            let checkpoint = serde_json::to_string(tab).unwrap_or_default();
            // In turn with the other writes (SQLite), so that a busy server does not starve it.
            let _turn = state.writes.turn().await?;
            match store::save_checkpoint(&state.db, job.id, worker, &checkpoint).await {
                Ok(true) => Ok(()),
                // Another worker holds the job now (or it was cancelled): stop here.
                Ok(false) => Err(sheets::SheetError::Cancelled),
                Err(err) => Err(sheets::SheetError::Db(err)),
            }
        };
        let written = sheets::write(
            &session,
            dest,
            &table.name,
            &rows,
            &resolved,
            &control,
            sheets::Created {
                earlier: resume,
                record: created,
            },
        )
        .await;
        heartbeat.abort();
        let held = heartbeat.await.unwrap_or(Ok(Held::Yes));
        return match (written, held) {
            (_, Ok(Held::Lost)) => Outcome::Lost,
            (_, Ok(Held::Stopping)) => Outcome::Released,
            (Ok(tab), _) => {
                if !dest.share_with.is_empty() {
                    let shared: Vec<_> = dest
                        .share_with
                        .iter()
                        .map(|s| serde_json::json!({"email": s.email, "role": s.role}))
                        .collect();
                    crate::audit::record(
                        state,
                        None,
                        crate::audit::Event::new("sheet.shared", Some(job.owner_id))
                            .target("spreadsheet", &tab.spreadsheet_id)
                            .details(serde_json::json!({"export": job.id, "with": shared})),
                    )
                    .await;
                }
                let link_id = if dest.link {
                    match links::create(
                        state,
                        job.owner_id,
                        table.id,
                        &tab,
                        credential,
                        payload.template.as_ref(),
                        payload.version,
                    )
                    .await
                    {
                        Ok(link) => Some(link.id),
                        Err(err) => return retry_db(&err),
                    }
                } else {
                    None
                };
                Outcome::Succeeded(Finished::export(ExportResult {
                    rows: rows.row_count,
                    bytes: 0,
                    file_name: String::new(),
                    artifact: None,
                    sheet: Some(sheets::SheetResult {
                        spreadsheet_url: sheets::spreadsheet_url(&tab.spreadsheet_id),
                        spreadsheet_id: tab.spreadsheet_id,
                        sheet_id: tab.sheet_id,
                        sheet_title: tab.title,
                        api_calls: session.calls(),
                        link_id,
                    }),
                }))
            }
            (Err(err), _) => {
                if !matches!(err, sheets::SheetError::Cancelled) {
                    tracing::warn!(job.id = %job.id, error = %err, "Google Sheets export attempt failed");
                }
                Outcome::Failed {
                    message: err.public_message(),
                    retryable: err.is_retryable(),
                }
            }
        };
    }
    let source = Source {
        table_id: table.id,
        table_name: table.name.clone(),
        version: payload.version,
        current: payload.version == table.current_version,
        schema,
    };
    let data_dir = state.config.data_dir.clone();
    let rendered = render::render(
        db,
        state.scratch.path(),
        source,
        resolved,
        &payload.options,
        &state.config.exports,
        Arc::clone(&control),
    )
    .await;
    heartbeat.abort();
    let held = heartbeat.await.unwrap_or(Ok(Held::Yes));
    match (rendered, held) {
        (_, Ok(Held::Lost)) => Outcome::Lost,
        (_, Ok(Held::Stopping)) => Outcome::Released,
        (Ok((file, rows)), _) => {
            let format = payload.options.format;
            let name = format!("{}.{}", job.id, format.extension());
            let relative = PathBuf::from(ARTIFACT_DIR).join(&name);
            let target = data_dir.join(&relative);
            let persisted = crate::secrets::ensure_data_dir(&data_dir.join(ARTIFACT_DIR))
                .map_err(std::io::Error::other)
                .and_then(|()| file.persist(&target).map_err(|e| e.error));
            let bytes = match persisted.and_then(|f| f.metadata()) {
                Ok(m) => m.len(),
                Err(err) => {
                    tracing::warn!(job.id = %job.id, error = %err, "could not store the export file");
                    return Outcome::Failed {
                        message: "The file could not be stored (storage error).".to_owned(),
                        retryable: true,
                    };
                }
            };
            Outcome::Succeeded(Finished::export(ExportResult {
                rows,
                bytes,
                file_name: render::file_name(&table.name, payload.version, format),
                artifact: Some(relative.to_string_lossy().into_owned()),
                sheet: None,
            }))
        }
        (Err(err), _) => {
            if !matches!(err, RenderError::Cancelled) {
                tracing::warn!(job.id = %job.id, error = %err, "export attempt failed");
            }
            Outcome::Failed {
                message: err.public_message(),
                retryable: err.is_retryable(),
            }
        }
    }
}

/// An import of a large upload: the same two-pass import as a small one, counting rows as it
/// stores them, recording its success in the import's transaction.
async fn import(
    state: &AppState,
    worker: Uuid,
    job: &JobRecord,
    stop: &watch::Receiver<bool>,
) -> Outcome {
    let Ok(payload) = serde_json::from_str::<ImportPayload>(&job.payload) else {
        tracing::error!(job.id = %job.id, "import payload does not parse");
        return Outcome::Failed {
            message: "The import's settings could not be read.".to_owned(),
            retryable: false,
        };
    };
    let path = state.config.data_dir.join(&payload.upload);
    if !path.exists() {
        return Outcome::Failed {
            message: "The uploaded file is no longer on the server; upload it again.".to_owned(),
            retryable: false,
        };
    }
    let control = Arc::new(Control::default());
    let heartbeat = tokio::spawn(heartbeat(
        state.clone(),
        worker,
        job.id,
        None,
        Arc::clone(&control),
        stop.clone(),
    ));
    let imported = crate::tables::service::import(
        state,
        job.owner_id,
        &payload.name,
        path,
        payload.source(),
        Some(crate::tables::service::JobRun {
            control: &control,
            job_id: job.id,
            worker,
        }),
    )
    .await;
    heartbeat.abort();
    let held = heartbeat.await.unwrap_or(Ok(Held::Yes));
    match (imported, held) {
        (Ok(table), _) => {
            tracing::info!(job.id = %job.id, table.id = %table.id, rows = table.row_count, "import job stored its table");
            Outcome::Recorded
        }
        (_, Ok(Held::Lost)) => Outcome::Lost,
        (_, Ok(Held::Stopping)) => Outcome::Released,
        (Err(err), _) => failed(job, &err),
    }
}

/// A change of every row of a large table (`jobs::change`), recorded as succeeded in the
/// change's own transaction.
async fn change(
    state: &AppState,
    worker: Uuid,
    job: &JobRecord,
    stop: &watch::Receiver<bool>,
) -> Outcome {
    let Ok(payload) = serde_json::from_str::<crate::jobs::change::ChangePayload>(&job.payload)
    else {
        tracing::error!(job.id = %job.id, "change payload does not parse");
        return Outcome::Failed {
            message: "The change's operations could not be read.".to_owned(),
            retryable: false,
        };
    };
    let control = Arc::new(Control::default());
    let heartbeat = tokio::spawn(heartbeat(
        state.clone(),
        worker,
        job.id,
        job.progress_total,
        Arc::clone(&control),
        stop.clone(),
    ));
    let run = crate::tables::service::JobRun {
        control: &control,
        job_id: job.id,
        worker,
    };
    let changed = crate::jobs::change::run(state, job, payload, run).await;
    heartbeat.abort();
    let held = heartbeat.await.unwrap_or(Ok(Held::Yes));
    match (changed, held) {
        (Ok(()), _) => Outcome::Recorded,
        (_, Ok(Held::Lost)) => Outcome::Lost,
        (_, Ok(Held::Stopping)) => Outcome::Released,
        (Err(err), _) => failed(job, &err),
    }
}

/// The rule check of a large table's version; its result is the validation's answer.
async fn validation(
    state: &AppState,
    worker: Uuid,
    job: &JobRecord,
    stop: &watch::Receiver<bool>,
) -> Outcome {
    let control = Arc::new(Control::default());
    let heartbeat = tokio::spawn(heartbeat(
        state.clone(),
        worker,
        job.id,
        job.progress_total,
        Arc::clone(&control),
        stop.clone(),
    ));
    let checked = crate::jobs::validation::run(state, job, &control).await;
    heartbeat.abort();
    let held = heartbeat.await.unwrap_or(Ok(Held::Yes));
    match (checked, held) {
        (_, Ok(Held::Lost)) => Outcome::Lost,
        (_, Ok(Held::Stopping)) => Outcome::Released,
        (Ok((found, rows)), _) => Outcome::Succeeded(Finished {
            rows,
            artifact: None,
            json: serde_json::to_string(&found).unwrap_or_default(),
        }),
        (Err(err), _) => failed(job, &err),
    }
}

/// The outcome of work that failed with a service error: the problem's detail for the user,
/// another attempt when the server was at fault (database, disk).
fn failed(job: &JobRecord, err: &crate::error::Error) -> Outcome {
    let problem = err.problem();
    if problem.code == crate::tables::service::JOB_STOPPED {
        // Cancelled, or the lease was lost when it came to commit: nothing was stored.
        return Outcome::Lost;
    }
    let retryable = err.status().is_server_error();
    if retryable {
        tracing::warn!(job.id = %job.id, error = %err, "job attempt failed");
    }
    // A job has no response body for the fields: the first ones go into its error.
    let mut message = problem.detail;
    if !problem.errors.is_empty() {
        const LISTED: usize = 10;
        let listed: Vec<String> = problem
            .errors
            .iter()
            .take(LISTED)
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        message = format!(
            "{} {}{}",
            message,
            listed.join("; "),
            if problem.errors.len() > LISTED {
                "; …"
            } else {
                "."
            }
        );
    }
    Outcome::Failed { message, retryable }
}

/// The account archive (`account`), written to a file kept like an export's.
async fn archive(
    state: &AppState,
    worker: Uuid,
    job: &JobRecord,
    stop: &watch::Receiver<bool>,
) -> Outcome {
    let control = Arc::new(Control::default());
    let heartbeat = tokio::spawn(heartbeat(
        state.clone(),
        worker,
        job.id,
        None,
        Arc::clone(&control),
        stop.clone(),
    ));
    let written = crate::account::write_archive(state, job.owner_id, Arc::clone(&control)).await;
    heartbeat.abort();
    let held = heartbeat.await.unwrap_or(Ok(Held::Yes));
    match (written, held) {
        (_, Ok(Held::Lost)) => Outcome::Lost,
        (_, Ok(Held::Stopping)) => Outcome::Released,
        (Ok((file, rows)), _) => {
            let data_dir = &state.config.data_dir;
            let relative = PathBuf::from(ARTIFACT_DIR).join(format!("{}.zip", job.id));
            let persisted = crate::secrets::ensure_data_dir(&data_dir.join(ARTIFACT_DIR))
                .map_err(std::io::Error::other)
                .and_then(|()| file.persist(data_dir.join(&relative)).map_err(|e| e.error));
            let bytes = match persisted.and_then(|f| f.metadata()) {
                Ok(m) => m.len(),
                Err(err) => {
                    tracing::warn!(job.id = %job.id, error = %err, "could not store the archive");
                    return Outcome::Failed {
                        message: "The archive could not be stored (storage error).".to_owned(),
                        retryable: true,
                    };
                }
            };
            Outcome::Succeeded(Finished::export(ExportResult {
                rows,
                bytes,
                file_name: crate::account::archive_name(),
                artifact: Some(relative.to_string_lossy().into_owned()),
                sheet: None,
            }))
        }
        (Err(err), _) => failed(job, &err),
    }
}

/// A sheet sync job, with the same lease and heartbeat as an export.
async fn sync(
    state: &AppState,
    worker: Uuid,
    job: &JobRecord,
    stop: &watch::Receiver<bool>,
) -> Outcome {
    let control = Arc::new(Control::default());
    let heartbeat = tokio::spawn(heartbeat(
        state.clone(),
        worker,
        job.id,
        Some(0),
        Arc::clone(&control),
        stop.clone(),
    ));
    let synced = links::run_sync(state, job, &control).await;
    heartbeat.abort();
    let held = heartbeat.await.unwrap_or(Ok(Held::Yes));
    match (synced, held) {
        (_, Ok(Held::Lost)) => Outcome::Lost,
        (_, Ok(Held::Stopping)) => Outcome::Released,
        (Ok(result), _) => Outcome::Succeeded(Finished {
            rows: result.rows_written,
            artifact: None,
            json: serde_json::to_string(&result).unwrap_or_default(),
        }),
        (Err(err), _) => Outcome::Failed {
            message: err.public_message(),
            retryable: err.is_retryable(),
        },
    }
}

/// A successful attempt's result.
struct Finished {
    rows: u64,
    /// The file to keep (and to delete after retention), under the data dir.
    artifact: Option<String>,
    json: String,
}

impl Finished {
    fn export(result: ExportResult) -> Self {
        Self {
            rows: result.rows,
            artifact: result.artifact.clone(),
            json: serde_json::to_string(&result).unwrap_or_default(),
        }
    }
}

impl std::fmt::Display for Finished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.json)
    }
}

fn retry_db(err: &sea_orm::DbErr) -> Outcome {
    tracing::warn!(error = %err, "export attempt failed on the database");
    Outcome::Failed {
        message: "The table could not be read (database error).".to_owned(),
        retryable: true,
    }
}

/// How often a running job's progress is written while it moves.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

enum Held {
    Yes,
    Lost,
    Stopping,
}

/// Renews the lease and records progress until aborted; stops the render (through
/// `control`) when the job is lost or the process is stopping, and says which. Progress is
/// recorded every [`PROGRESS_EVERY`] while it moves (so `/jobs/{id}/events` shows it live);
/// the lease is renewed every third of its length even when nothing moved.
async fn heartbeat(
    state: AppState,
    worker: Uuid,
    job_id: Uuid,
    total: Option<i64>,
    control: Arc<Control>,
    mut stop: watch::Receiver<bool>,
) -> Result<Held, sea_orm::DbErr> {
    let _running = crate::jobs::live::running(&state, job_id, Arc::clone(&control));
    let renew_every = Duration::from_millis(state.config.exports.lease_secs * 1000 / 3);
    let every = renew_every.min(PROGRESS_EVERY);
    let mut renewed = tokio::time::Instant::now();
    let mut recorded = (-1, None);
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            control.cancelled.store(true, Ordering::Relaxed);
            return Ok(Held::Stopping);
        }
        let done = i64::try_from(control.rows.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
        let total = match control.total.load(Ordering::Relaxed) {
            0 => total,
            n => Some(i64::try_from(n).unwrap_or(i64::MAX)),
        };
        if (done, total) == recorded && renewed.elapsed() < renew_every {
            continue;
        }
        let lease_until = Utc::now() + lease(&state);
        match store::heartbeat(&state.db, job_id, worker, lease_until, done, total).await {
            Ok(true) => {
                renewed = tokio::time::Instant::now();
                recorded = (done, total);
            }
            Ok(false) => {
                control.cancelled.store(true, Ordering::Relaxed);
                return Ok(Held::Lost);
            }
            // A database hiccup: try again at the next beat; the lease has room for two misses.
            Err(err) if renewed.elapsed() >= renew_every => {
                tracing::warn!(job.id = %job_id, error = %err, "heartbeat failed");
            }
            // Only progress was to be written (a SQLite write of the job itself may hold the
            // lock): this process still shows it live, the next beat writes it.
            Err(err) => tracing::debug!(job.id = %job_id, error = %err, "progress not written"),
        }
    }
}

/// Deletes export files past their retention time, and temporary files left by a process
/// that was killed while writing. Returns the number of export files deleted.
pub async fn sweep(state: &AppState) -> anyhow::Result<usize> {
    let mut deleted = 0;
    loop {
        let expired = store::expired(&state.db, 100).await?;
        if expired.is_empty() {
            break;
        }
        for job in expired {
            let mut result: Option<ExportResult> = job
                .result
                .as_deref()
                .and_then(|r| serde_json::from_str(r).ok());
            if let Some(artifact) = result.as_mut().and_then(|r| r.artifact.take()) {
                match std::fs::remove_file(state.config.data_dir.join(&artifact)) {
                    Ok(()) => deleted += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::warn!(job.id = %job.id, error = %e, "could not delete an export file")
                    }
                }
            }
            let text = result.map(|r| serde_json::to_string(&r).unwrap_or_default());
            store::set_expired(&state.db, job.id, text.as_deref()).await?;
        }
    }
    state.scratch.sweep();
    if deleted > 0 {
        tracing::info!(files = deleted, "deleted expired export files");
    }
    Ok(deleted)
}
