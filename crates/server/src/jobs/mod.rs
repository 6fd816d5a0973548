//! What every job kind shares beyond the queue (`db::jobs`) and the workers
//! (`exports::worker`): the files a job owns, and the generic `/jobs` API (`routes`).
//!
//! A job owns at most two files under the data dir, both named in its JSON: the upload it
//! reads (`payload.upload`, an import's file waiting in `uploads/`) and the artifact it wrote
//! (`result.artifact`, in `exports/`). Whoever ends a job for good (the worker, a cancel, the
//! account's deletion, the sweeper) removes them through [`remove_files`].

pub mod live;
pub mod routes;
pub mod validation;
pub mod worker;

use std::path::Path;

use crate::db::jobs::{self as store, JobRecord};
use uuid::Uuid;

use crate::error::Error;
use crate::state::AppState;

/// Directory (under the data dir) of uploads waiting for their import job.
pub const UPLOAD_DIR: &str = "uploads";

pub use crate::db::jobs::Kind;

/// Refuses a new job when the idempotency key already made one (returned), or when the owner
/// has `exports.max_active_per_user` jobs of this kind queued or running (429).
pub async fn admit(
    state: &AppState,
    owner: Uuid,
    kind: Kind,
    key: Option<&str>,
    what: &str,
) -> Result<Option<JobRecord>, Error> {
    if let Some(key) = key
        && let Some(job) = store::by_idempotency_key(&state.db, owner, kind.as_str(), key).await?
    {
        return Ok(Some(job));
    }
    let limit = state.config.exports.max_active_per_user;
    if store::count_active(&state.db, owner, kind.as_str()).await? >= limit {
        return Err(Error::TooManyRequests {
            retry_after_secs: 10,
            detail: format!("You have {limit} {what} queued or running; wait for one to finish."),
        });
    }
    Ok(None)
}

fn field(json: Option<&str>, name: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(json?).ok()?;
    value.get(name)?.as_str().map(str::to_owned)
}

/// The files of a job, relative to the data dir.
pub fn files_of(job: &JobRecord) -> Vec<String> {
    [
        field(Some(&job.payload), "upload"),
        field(job.result.as_deref(), "artifact"),
    ]
    .into_iter()
    .flatten()
    // Only plain relative names under the data dir.
    .filter(|p| !Path::new(p).is_absolute() && !p.split('/').any(|part| part == ".."))
    .collect()
}

/// Removes the job's files (those already gone are fine).
pub fn remove_files(state: &AppState, job: &JobRecord) {
    for file in files_of(job) {
        match std::fs::remove_file(state.config.data_dir.join(&file)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(job.id = %job.id, error = %e, "could not remove a job's file"),
        }
    }
}

/// Removes an uploaded file whose import job has ended or no longer exists (a crash between
/// the job's end and the file's removal, an account deleted on another server). Returns how
/// many were removed.
pub async fn sweep_uploads(state: &AppState) -> anyhow::Result<usize> {
    let dir = state.config.data_dir.join(UPLOAD_DIR);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(0);
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        // A young file may belong to a job whose transaction has not committed yet.
        let young = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_none_or(|age| age < crate::scratch::STALE_AFTER);
        if young {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let id = name
            .split('.')
            .next()
            .and_then(|stem| uuid::Uuid::parse_str(stem).ok());
        let keep = match id {
            Some(id) => store::find_any(&state.db, id)
                .await?
                .is_some_and(|j| j.status == store::QUEUED || j.status == store::RUNNING),
            None => false,
        };
        if !keep && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Cancels every job of the account and removes every file its jobs own (the account is
/// being deleted). A worker running one of them stops at its next heartbeat and leaves nothing
/// behind (`exports::worker`).
pub async fn end_all(state: &AppState, owner: uuid::Uuid) -> Result<u64, sea_orm::DbErr> {
    let cancelled = store::cancel_all(&state.db, owner).await?;
    for job in store::all_of(&state.db, owner).await? {
        remove_files(state, &job);
    }
    Ok(cancelled)
}

/// Queues the import of an upload received to this process's temporary directory: the file
/// moves to `uploads/<job id>.upload`, where whichever worker claims the job reads it. The
/// move happens inside the transaction that creates the job, so that either both exist or
/// neither (a job committed without its file, or a file whose job never committed, is what the
/// sweeper would otherwise have to find). Returns the job, and false when an earlier request
/// with the same idempotency key created it (this upload is then dropped).
pub async fn queue_import(
    state: &AppState,
    owner: uuid::Uuid,
    key: Option<&str>,
    path: tempfile::TempPath,
    mut payload: ImportPayload,
) -> Result<(JobRecord, bool), crate::error::Error> {
    use crate::error::Error;
    use sea_orm::TransactionTrait;
    let kind = Kind::Import.as_str();
    if let Some(job) = admit(state, owner, Kind::Import, key, "imports").await? {
        return Ok((job, false));
    }
    let id = uuid::Uuid::now_v7();
    let relative = format!("{UPLOAD_DIR}/{id}.upload");
    payload.upload = relative.clone();
    let text = serde_json::to_string(&payload).map_err(|e| Error::Internal(e.into()))?;
    crate::secrets::ensure_data_dir(&state.config.data_dir.join(UPLOAD_DIR))?;
    let target = state.config.data_dir.join(&relative);
    let turn = state.writes.turn().await?;
    let txn = state.db.begin().await?;
    let (job, created) = store::enqueue(
        &txn,
        owner,
        store::NewJob {
            id: Some(id),
            kind,
            payload: &text,
            max_attempts: state.config.exports.max_attempts,
            progress_total: None,
            idempotency_key: key,
        },
    )
    .await?;
    if !created {
        // The same key sent twice at once: the other request's job reads its own upload.
        txn.commit().await?;
        // Others' writes need not wait for what follows.
        drop(turn);
        return Ok((job, false));
    }
    // Within the data dir, so a rename: no copy of a large file.
    path.persist(&target)
        .map_err(|e| Error::Internal(e.error.into()))?;
    if let Err(err) = txn.commit().await {
        let _ = std::fs::remove_file(&target);
        return Err(err.into());
    }
    state.jobs_queued.notify_one();
    tracing::info!(job.id = %job.id, "import queued");
    Ok((job, true))
}

/// What an import job reads: the upload kept in `uploads/` and how to read it, fixed when the
/// upload was received.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ImportPayload {
    /// The table's name.
    pub name: String,
    /// The uploaded file's name.
    pub file_name: String,
    /// The upload, relative to the data dir.
    pub upload: String,
    pub spreadsheet: bool,
    pub delimiter: Option<u8>,
    pub sheet: Option<String>,
}

impl ImportPayload {
    pub fn source(&self) -> sheetgpt_core::import::Source {
        if self.spreadsheet {
            sheetgpt_core::import::Source::Spreadsheet {
                sheet: self.sheet.clone(),
            }
        } else {
            sheetgpt_core::import::Source::Delimited {
                delimiter: self.delimiter,
            }
        }
    }
}
