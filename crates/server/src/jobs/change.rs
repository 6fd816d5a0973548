//! Change jobs: a change that touches every row (`sort`, `filter_delete`, `change_type`,
//! `trim`, `add_column` with a default or formula) or a revert, of a table past
//! `tables.max_sync_rows`, is applied by a job worker rather than within the request, so that
//! it never meets the request timeout. The job applies exactly what the request asked, to the
//! version the table had then: when the table changed in between, the job fails as the
//! request would have (stale version) and nothing is written.

use serde::{Deserialize, Serialize};
use sheetgpt_core::version::Op;
use uuid::Uuid;

use super::Kind;
use crate::db::jobs::{self as store, JobRecord};
use crate::error::Error;
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

impl super::worker::Job for ChangeJob {
    const KIND: crate::db::jobs::Kind = crate::db::jobs::Kind::Change;
    type Payload = ChangePayload;
    const UNREADABLE: &'static str = "The change's operations could not be read.";

    async fn run(
        attempt: &super::worker::Attempt<'_>,
        payload: ChangePayload,
    ) -> super::worker::Outcome {
        let run = crate::tables::service::JobRun {
            control: &attempt.control,
            job_id: attempt.job.id,
            worker: attempt.worker,
        };
        match self::run(attempt.state, attempt.job, payload, run).await {
            Ok(()) => super::worker::Outcome::Recorded,
            Err(err) => super::worker::failed(attempt.job, &err),
        }
    }
}
