//! Validation jobs: the rule check of a version of more than `tables.max_sync_rows` rows runs
//! as a job instead of within the request. A version's rules and cells never change, so its
//! job is found again by the version (its idempotency key): asking again answers with the
//! running job, then with its result.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Kind;
use crate::db::jobs::{self as store, JobRecord};
use crate::db::tables as table_store;
use crate::error::Error;
use crate::state::AppState;
use crate::tables::bulk::{self, ValidationResponse};

/// What a validation job checks.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ValidationPayload {
    pub table_id: Uuid,
    pub version: i32,
}

/// How a validation was answered.
pub enum Validated {
    /// Checked now, or by a job that has finished.
    Now(ValidationResponse),
    /// Being checked by this job (`created`: queued by this request).
    Job { job: Box<JobRecord>, created: bool },
}

/// The violations of a version: checked within the request up to `tables.max_sync_rows`
/// rows, by a job past it.
pub async fn request(
    state: &AppState,
    owner: Uuid,
    table_id: Uuid,
    version: Option<i32>,
) -> Result<Validated, Error> {
    let loaded = crate::tables::service::load(state, owner, table_id, version).await?;
    let rows = table_store::version(&state.db, table_id, loaded.version)
        .await?
        .map_or(0, |v| v.row_count);
    let ruled = loaded.schema.columns.iter().any(|c| !c.rules.is_empty());
    if !ruled || u64::try_from(rows).unwrap_or(0) <= state.config.tables.max_sync_rows {
        let found = bulk::validate(state, owner, table_id, Some(loaded.version), None).await?;
        return Ok(Validated::Now(found.into()));
    }
    let kind = Kind::Validation.as_str();
    let key = format!("{table_id}:{}", loaded.version);
    if let Some(job) = store::by_idempotency_key(&state.db, owner, kind, &key).await? {
        match job.status.as_str() {
            store::SUCCEEDED => {
                if let Some(found) = job
                    .result
                    .as_deref()
                    .and_then(|r| serde_json::from_str::<ValidationResponse>(r).ok())
                {
                    return Ok(Validated::Now(found));
                }
                store::forget_key(&state.db, job.id).await?;
            }
            store::QUEUED | store::RUNNING => {
                return Ok(Validated::Job {
                    job: Box::new(job),
                    created: false,
                });
            }
            // Failed or cancelled: the next request checks it again.
            _ => store::forget_key(&state.db, job.id).await?,
        }
    }
    if let Some(job) = super::admit(state, owner, Kind::Validation, None, "validations").await? {
        return Ok(Validated::Job {
            job: Box::new(job),
            created: false,
        });
    }
    let payload = serde_json::to_string(&ValidationPayload {
        table_id,
        version: loaded.version,
    })
    .map_err(|e| Error::Internal(e.into()))?;
    let (job, created) = store::enqueue(
        &state.db,
        owner,
        store::NewJob {
            id: None,
            kind,
            payload: &payload,
            max_attempts: state.config.exports.max_attempts,
            progress_total: Some(rows),
            idempotency_key: Some(&key),
        },
    )
    .await?;
    if created {
        state.jobs_queued.notify_one();
    }
    Ok(Validated::Job {
        job: Box::new(job),
        created,
    })
}

/// Runs a validation job: the result is the answer the request would have given.
pub async fn run(
    state: &AppState,
    job: &JobRecord,
    control: &crate::exports::render::Control,
) -> Result<(ValidationResponse, u64), Error> {
    let payload: ValidationPayload = serde_json::from_str(&job.payload)
        .map_err(|_| Error::field("payload", "the validation's settings could not be read"))?;
    let found = bulk::validate(
        state,
        job.owner_id,
        payload.table_id,
        Some(payload.version),
        Some(control),
    )
    .await?;
    let rows = control.rows.load(std::sync::atomic::Ordering::Relaxed);
    Ok((found.into(), rows))
}

/// The rule check of a large table's version; its result is the validation's answer.
pub struct ValidationJob;

impl super::worker::Job for ValidationJob {
    const KIND: crate::db::jobs::Kind = crate::db::jobs::Kind::Validation;
    /// Everything it needs is in the job itself (its table and version).
    type Payload = serde::de::IgnoredAny;
    const UNREADABLE: &'static str = "The validation's settings could not be read.";

    async fn run(
        attempt: &super::worker::Attempt<'_>,
        _: serde::de::IgnoredAny,
    ) -> super::worker::Outcome {
        match run(attempt.state, attempt.job, &attempt.control).await {
            Ok((found, rows)) => {
                super::worker::Outcome::Succeeded(super::worker::Finished::of(rows, None, &found))
            }
            Err(err) => super::worker::failed(attempt.job, &err),
        }
    }
}
