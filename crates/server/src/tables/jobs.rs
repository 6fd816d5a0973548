//! The tables' jobs: large imports, and changes of every row.
//!
//! Change jobs: a change that touches every row (`sort`, `filter_delete`, `change_type`,
//! `trim`, `add_column` with a default or formula) or a revert, of a table past
//! `tables.max_sync_rows`, is applied by a job worker rather than within the request, so that
//! it never meets the request timeout. The job applies exactly what the request asked, to the
//! version the table had then: when the table changed in between, the job fails as the
//! request would have (stale version) and nothing is written.

use serde::{Deserialize, Serialize};
use sheetgpt_core::version::Op;
use uuid::Uuid;

use crate::db::jobs::{self as store, JobRecord};
use crate::error::Error;
use crate::jobs::{Kind, admit};
use crate::state::AppState;

/// What a change job applies.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChangePayload {
    pub table_id: Uuid,
    /// The version the change is based on, fixed when it was queued.
    pub base: i32,
    pub work: Work,
}

/// The change itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Work {
    /// Operations, as sent to `POST /tables/{id}/changes`.
    Ops {
        ops: Vec<Op>,
        summary: Option<String>,
    },
    /// A revert to this version.
    Revert { to: i32 },
}

/// Queues a change job (`total`: the rows it will go over, 0 when unknown). Returns the job,
/// and false when an earlier request with the same idempotency key created it.
pub async fn queue(
    state: &AppState,
    owner: Uuid,
    key: Option<&str>,
    payload: &ChangePayload,
    total: i64,
) -> Result<(JobRecord, bool), Error> {
    if let Some(job) = admit(state, owner, Kind::Change, key, "large changes").await? {
        return Ok((job, false));
    }
    let text = serde_json::to_string(payload).map_err(|e| Error::Internal(e.into()))?;
    let (job, created) = store::enqueue(
        &state.db,
        owner,
        store::NewJob {
            id: None,
            kind: Kind::Change.as_str(),
            payload: &text,
            // A change that fails for the server's reasons is tried again; one whose table
            // moved on fails at once (stale version, not retried).
            max_attempts: state.config.exports.max_attempts,
            progress_total: (total > 0).then_some(total),
            idempotency_key: key,
        },
    )
    .await?;
    if created {
        state.jobs_queued.notify_one();
        tracing::info!(job.id = %job.id, table.id = %payload.table_id, "change queued");
    }
    Ok((job, created))
}

/// Runs a change job's work: the change (or revert) recorded as the job's success in its own
/// transaction.
pub async fn run(
    state: &AppState,
    job: &JobRecord,
    payload: ChangePayload,
    run: crate::tables::service::JobRun<'_>,
) -> Result<(), Error> {
    use crate::tables::service;
    let owner = job.owner_id;
    match payload.work {
        Work::Ops { ops, summary } => {
            service::change(
                state,
                owner,
                payload.table_id,
                Some(payload.base),
                ops,
                summary,
                Some(run),
            )
            .await?;
        }
        Work::Revert { to } => {
            service::revert(
                state,
                owner,
                payload.table_id,
                to,
                Some(payload.base),
                Some(run),
            )
            .await?;
        }
    }
    Ok(())
}

/// A change of every row of a large table, recorded as succeeded in the change's own
/// transaction.
pub struct ChangeJob;

impl crate::jobs::worker::Job for ChangeJob {
    const KIND: crate::db::jobs::Kind = crate::db::jobs::Kind::Change;
    type Payload = ChangePayload;
    const UNREADABLE: &'static str = "The change's operations could not be read.";

    async fn run(
        attempt: &crate::jobs::worker::Attempt<'_>,
        payload: ChangePayload,
    ) -> crate::jobs::worker::Outcome {
        let run = crate::tables::service::JobRun {
            control: &attempt.control,
            job_id: attempt.job.id,
            worker: attempt.worker,
        };
        match self::run(attempt.state, attempt.job, payload, run).await {
            Ok(()) => crate::jobs::worker::Outcome::Recorded,
            Err(err) => crate::jobs::worker::failed(attempt.job, &err),
        }
    }
}

/// An import of a large upload: the same two-pass import as a small one, counting rows as it
/// stores them, recording its success in the import's transaction.
pub struct ImportJob;

impl crate::jobs::worker::Job for ImportJob {
    const KIND: crate::db::jobs::Kind = crate::db::jobs::Kind::Import;
    type Payload = crate::jobs::ImportPayload;
    const UNREADABLE: &'static str = "The import's settings could not be read.";

    async fn run(
        attempt: &crate::jobs::worker::Attempt<'_>,
        payload: crate::jobs::ImportPayload,
    ) -> crate::jobs::worker::Outcome {
        let (state, job) = (attempt.state, attempt.job);
        let path = state.config.data_dir.join(&payload.upload);
        if !path.exists() {
            return crate::jobs::worker::Outcome::Failed {
                message: "The uploaded file is no longer on the server; upload it again."
                    .to_owned(),
                retryable: false,
            };
        }
        let imported = crate::tables::service::import(
            state,
            job.owner_id,
            &payload.name,
            path,
            payload.source(),
            Some(crate::tables::service::JobRun {
                control: &attempt.control,
                job_id: job.id,
                worker: attempt.worker,
            }),
        )
        .await;
        match imported {
            Ok(table) => {
                tracing::info!(job.id = %job.id, table.id = %table.id, rows = table.row_count, "import job stored its table");
                crate::jobs::worker::Outcome::Recorded
            }
            Err(err) => crate::jobs::worker::failed(job, &err),
        }
    }
}
