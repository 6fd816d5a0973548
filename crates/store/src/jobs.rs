//! The durable job queue. A worker claims one job at a time with a lease (`lease_owner`,
//! `lease_expires_at`) and renews it while it works; every write a worker makes is conditional
//! on still holding the lease, so a job whose worker died (its lease ran out) and was claimed
//! again is finished by exactly one worker. On PostgreSQL the claim skips rows another worker
//! is claiming (`FOR UPDATE SKIP LOCKED`); SQLite has one writer, so its claim is atomic as is.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use uuid::Uuid;

use super::entity::job;
use super::{is_unique_violation, owned, stmt};

pub use job::Model as JobRecord;

/// The job kinds.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Export,
    SheetSync,
    Import,
    AccountArchive,
    /// A change (or a revert) of every row of a large table.
    Change,
    /// The rule check of a version of a large table.
    Validation,
}

impl Kind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Export => "export",
            Self::SheetSync => "sheet_sync",
            Self::Import => "import",
            Self::AccountArchive => "account_archive",
            Self::Change => "change",
            Self::Validation => "validation",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Export,
            Self::SheetSync,
            Self::Import,
            Self::AccountArchive,
            Self::Change,
            Self::Validation,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

pub const QUEUED: &str = "queued";
pub const RUNNING: &str = "running";
pub const SUCCEEDED: &str = "succeeded";
pub const FAILED: &str = "failed";
pub const CANCELLED: &str = "cancelled";

pub struct NewJob<'a> {
    /// The job's id when the caller needs it before the job exists (to name its files).
    pub id: Option<Uuid>,
    pub kind: &'a str,
    pub payload: &'a str,
    pub max_attempts: i32,
    pub progress_total: Option<i64>,
    pub idempotency_key: Option<&'a str>,
}

/// Queues a job. With an idempotency key the owner already used for this kind, the job made
/// then is returned instead (`false`: not created now).
pub async fn enqueue(
    db: &impl ConnectionTrait,
    owner_id: Uuid,
    new: NewJob<'_>,
) -> Result<(JobRecord, bool), DbErr> {
    if let Some(key) = new.idempotency_key
        && let Some(found) = by_idempotency_key(db, owner_id, new.kind, key).await?
    {
        return Ok((found, false));
    }
    let now = Utc::now();
    let inserted = job::ActiveModel {
        id: Set(new.id.unwrap_or_else(Uuid::now_v7)),
        owner_id: Set(owner_id),
        kind: Set(new.kind.to_owned()),
        payload: Set(new.payload.to_owned()),
        status: Set(QUEUED.to_owned()),
        progress_done: Set(0),
        progress_total: Set(new.progress_total),
        attempts: Set(0),
        max_attempts: Set(new.max_attempts),
        run_after: Set(now),
        lease_owner: Set(None),
        lease_expires_at: Set(None),
        error: Set(None),
        result: Set(None),
        idempotency_key: Set(new.idempotency_key.map(str::to_owned)),
        checkpoint: Set(None),
        started_at: Set(None),
        finished_at: Set(None),
        expires_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
    }
    .insert(db)
    .await;
    match inserted {
        Ok(job) => Ok((job, true)),
        // The same key sent twice at once: the other request created it.
        Err(err) if is_unique_violation(&err) => {
            let key = new.idempotency_key.unwrap_or_default();
            match by_idempotency_key(db, owner_id, new.kind, key).await? {
                Some(found) => Ok((found, false)),
                None => Err(err),
            }
        }
        Err(err) => Err(err),
    }
}

pub async fn by_idempotency_key(
    db: &impl ConnectionTrait,
    owner_id: Uuid,
    kind: &str,
    key: &str,
) -> Result<Option<JobRecord>, DbErr> {
    job::Entity::find()
        .filter(job::Column::OwnerId.eq(owner_id))
        .filter(job::Column::Kind.eq(kind))
        .filter(job::Column::IdempotencyKey.eq(key))
        .one(db)
        .await
}

/// One of the owner's jobs of a kind.
pub async fn find(
    db: &impl ConnectionTrait,
    owner_id: Uuid,
    kind: &str,
    id: Uuid,
) -> Result<Option<JobRecord>, DbErr> {
    owned::live::<job::Entity>(owner_id)
        .filter(job::Column::Kind.eq(kind))
        .filter(job::Column::Id.eq(id))
        .one(db)
        .await
}

/// A job by id, whoever owns it (for the workers and the sweeper).
pub async fn find_any(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<JobRecord>, DbErr> {
    job::Entity::find()
        .filter(job::Column::Id.eq(id))
        .filter(job::Column::DeletedAt.is_null())
        .one(db)
        .await
}

/// Cancels every job of the owner that has not finished (the account is being deleted);
/// returns how many.
pub async fn cancel_all(db: &impl ConnectionTrait, owner_id: Uuid) -> Result<u64, DbErr> {
    let r = job::Entity::update_many()
        .col_expr(job::Column::Status, Expr::value(CANCELLED))
        .col_expr(job::Column::FinishedAt, Expr::value(Utc::now()))
        .col_expr(job::Column::UpdatedAt, Expr::value(Utc::now()))
        .col_expr(job::Column::LeaseOwner, Expr::value(Option::<Uuid>::None))
        .col_expr(
            job::Column::LeaseExpiresAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(job::Column::OwnerId.eq(owner_id))
        .filter(job::Column::Status.is_in([QUEUED, RUNNING]))
        .exec(db)
        .await?;
    Ok(r.rows_affected)
}

/// Every job of the owner, of any kind and status (deleted ones too), for removing their
/// files with the account.
pub async fn all_of(db: &impl ConnectionTrait, owner_id: Uuid) -> Result<Vec<JobRecord>, DbErr> {
    job::Entity::find()
        .filter(job::Column::OwnerId.eq(owner_id))
        .all(db)
        .await
}

/// The owner's jobs of a kind, newest first, optionally of one status.
pub async fn list(
    db: &impl ConnectionTrait,
    owner_id: Uuid,
    kind: &str,
    status: Option<&str>,
    before: Option<Uuid>,
    limit: u64,
) -> Result<Vec<JobRecord>, DbErr> {
    let mut select = owned::live::<job::Entity>(owner_id).filter(job::Column::Kind.eq(kind));
    if let Some(status) = status {
        select = select.filter(job::Column::Status.eq(status));
    }
    owned::page(db, select, before, limit).await
}

/// The owner's jobs of any kind (or one kind), newest first, optionally of one status.
pub async fn list_own(
    db: &impl ConnectionTrait,
    owner_id: Uuid,
    kind: Option<&str>,
    status: Option<&str>,
    before: Option<Uuid>,
    limit: u64,
) -> Result<Vec<JobRecord>, DbErr> {
    let mut select = owned::live::<job::Entity>(owner_id);
    if let Some(kind) = kind {
        select = select.filter(job::Column::Kind.eq(kind));
    }
    if let Some(status) = status {
        select = select.filter(job::Column::Status.eq(status));
    }
    owned::page(db, select, before, limit).await
}

/// One of the owner's jobs, of any kind.
pub async fn find_own(
    db: &impl ConnectionTrait,
    owner_id: Uuid,
    id: Uuid,
) -> Result<Option<JobRecord>, DbErr> {
    owned::live::<job::Entity>(owner_id)
        .filter(job::Column::Id.eq(id))
        .one(db)
        .await
}

/// The owner's newest job of a kind that is queued or running.
pub async fn active(
    db: &impl ConnectionTrait,
    owner_id: Uuid,
    kind: &str,
) -> Result<Option<JobRecord>, DbErr> {
    owned::live::<job::Entity>(owner_id)
        .filter(job::Column::Kind.eq(kind))
        .filter(job::Column::Status.is_in([QUEUED, RUNNING]))
        .order_by_desc(job::Column::Id)
        .one(db)
        .await
}

/// Jobs of the owner and kind that are queued or running.
pub async fn count_active(
    db: &impl ConnectionTrait,
    owner_id: Uuid,
    kind: &str,
) -> Result<u64, DbErr> {
    owned::live::<job::Entity>(owner_id)
        .filter(job::Column::Kind.eq(kind))
        .filter(job::Column::Status.is_in([QUEUED, RUNNING]))
        .count(db)
        .await
}

/// Claims the job that has waited longest: a queued one whose time has come, or a running
/// one whose lease ran out (its worker died). The claim counts as an attempt.
pub async fn claim(
    db: &impl ConnectionTrait,
    worker: Uuid,
    lease_until: DateTime<Utc>,
) -> Result<Option<JobRecord>, DbErr> {
    let backend = db.get_database_backend();
    let lock = if backend == DatabaseBackend::Postgres {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    let now = Utc::now();
    let sql = format!(
        "UPDATE jobs SET status = 'running', lease_owner = ?, lease_expires_at = ?, \
         attempts = attempts + 1, started_at = COALESCE(started_at, ?), updated_at = ? \
         WHERE id = (SELECT id FROM jobs WHERE deleted_at IS NULL AND \
           ((status = 'queued' AND run_after <= ?) OR (status = 'running' AND lease_expires_at < ?)) \
           ORDER BY run_after, id LIMIT 1{lock}) \
         RETURNING *"
    );
    let values = vec![
        worker.into(),
        lease_until.into(),
        now.into(),
        now.into(),
        now.into(),
        now.into(),
    ];
    job::Entity::find()
        .from_raw_sql(stmt(backend, &sql, values))
        .one(db)
        .await
}

/// Renews the lease and records progress; false when the worker no longer holds the job
/// (cancelled, or claimed by another worker after the lease ran out).
pub async fn heartbeat(
    db: &impl ConnectionTrait,
    id: Uuid,
    worker: Uuid,
    lease_until: DateTime<Utc>,
    progress_done: i64,
    progress_total: Option<i64>,
) -> Result<bool, DbErr> {
    let mut q = held(id, worker)
        .col_expr(job::Column::LeaseExpiresAt, Expr::value(lease_until))
        .col_expr(job::Column::ProgressDone, Expr::value(progress_done));
    if let Some(total) = progress_total {
        q = q.col_expr(job::Column::ProgressTotal, Expr::value(total));
    }
    Ok(q.exec(db).await?.rows_affected == 1)
}

/// Records what this attempt did that the next must not do again; false when the worker no
/// longer holds the job (nothing is changed).
pub async fn save_checkpoint(
    db: &impl ConnectionTrait,
    id: Uuid,
    worker: Uuid,
    checkpoint: &str,
) -> Result<bool, DbErr> {
    let q = held(id, worker).col_expr(job::Column::Checkpoint, Expr::value(checkpoint));
    Ok(q.exec(db).await?.rows_affected == 1)
}

/// An update of a job the worker holds.
fn held(id: Uuid, worker: Uuid) -> sea_orm::UpdateMany<job::Entity> {
    job::Entity::update_many()
        .col_expr(job::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(job::Column::Id.eq(id))
        .filter(job::Column::LeaseOwner.eq(worker))
        .filter(job::Column::Status.eq(RUNNING))
}

/// Records success; false when the worker no longer held the job (nothing is changed).
pub async fn succeed(
    db: &impl ConnectionTrait,
    id: Uuid,
    worker: Uuid,
    result: &str,
    progress_done: i64,
    expires_at: Option<DateTime<Utc>>,
) -> Result<bool, DbErr> {
    let r = held(id, worker)
        .col_expr(job::Column::Status, Expr::value(SUCCEEDED))
        .col_expr(job::Column::Result, Expr::value(result))
        .col_expr(job::Column::Error, Expr::value(Option::<String>::None))
        .col_expr(job::Column::ProgressDone, Expr::value(progress_done))
        .col_expr(job::Column::ProgressTotal, Expr::value(progress_done))
        .col_expr(job::Column::FinishedAt, Expr::value(Utc::now()))
        .col_expr(job::Column::LeaseOwner, Expr::value(Option::<Uuid>::None))
        .col_expr(
            job::Column::LeaseExpiresAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(job::Column::ExpiresAt, Expr::value(expires_at))
        .exec(db)
        .await?;
    Ok(r.rows_affected == 1)
}

/// Records a failed attempt: queued again after `retry_at`, or failed for good when None.
pub async fn fail(
    db: &impl ConnectionTrait,
    id: Uuid,
    worker: Uuid,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
) -> Result<bool, DbErr> {
    let mut q = held(id, worker)
        .col_expr(job::Column::Error, Expr::value(error))
        .col_expr(job::Column::LeaseOwner, Expr::value(Option::<Uuid>::None))
        .col_expr(
            job::Column::LeaseExpiresAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        );
    q = match retry_at {
        Some(at) => q
            .col_expr(job::Column::Status, Expr::value(QUEUED))
            .col_expr(job::Column::RunAfter, Expr::value(at)),
        None => q
            .col_expr(job::Column::Status, Expr::value(FAILED))
            .col_expr(job::Column::FinishedAt, Expr::value(Utc::now())),
    };
    Ok(q.exec(db).await?.rows_affected == 1)
}

/// Gives a job back to the queue at once (this process is stopping): the attempt is not
/// counted against the job.
pub async fn release(db: &impl ConnectionTrait, id: Uuid, worker: Uuid) -> Result<bool, DbErr> {
    let r = held(id, worker)
        .col_expr(job::Column::Status, Expr::value(QUEUED))
        .col_expr(job::Column::LeaseOwner, Expr::value(Option::<Uuid>::None))
        .col_expr(
            job::Column::LeaseExpiresAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            job::Column::Attempts,
            Expr::col(job::Column::Attempts).sub(1),
        )
        .exec(db)
        .await?;
    Ok(r.rows_affected == 1)
}

/// Cancels one of the owner's jobs that has not finished; false when there is none such.
pub async fn cancel(
    db: &impl ConnectionTrait,
    owner_id: Uuid,
    kind: &str,
    id: Uuid,
) -> Result<bool, DbErr> {
    let r = owned::update::<job::Entity>(owner_id, id)
        .col_expr(job::Column::Status, Expr::value(CANCELLED))
        .col_expr(job::Column::FinishedAt, Expr::value(Utc::now()))
        .col_expr(job::Column::LeaseOwner, Expr::value(Option::<Uuid>::None))
        .col_expr(
            job::Column::LeaseExpiresAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(job::Column::Kind.eq(kind))
        .filter(job::Column::Status.is_in([QUEUED, RUNNING]))
        .exec(db)
        .await?;
    Ok(r.rows_affected == 1)
}

/// Succeeded jobs whose artifact is past its retention time.
pub async fn expired(db: &impl ConnectionTrait, limit: u64) -> Result<Vec<JobRecord>, DbErr> {
    job::Entity::find()
        .filter(job::Column::Status.eq(SUCCEEDED))
        .filter(job::Column::ExpiresAt.lt(Utc::now()))
        .limit(limit)
        .all(db)
        .await
}

/// Records that a job's artifact was deleted (its result without the file).
pub async fn set_expired(
    db: &impl ConnectionTrait,
    id: Uuid,
    result: Option<&str>,
) -> Result<(), DbErr> {
    job::Entity::update_many()
        .col_expr(
            job::Column::ExpiresAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(job::Column::Result, Expr::value(result.map(str::to_owned)))
        .col_expr(job::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(job::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Clears a job's idempotency key, so that the key can make a new job (a validation that
/// failed is checked again when asked again).
pub async fn forget_key(db: &impl ConnectionTrait, id: Uuid) -> Result<(), DbErr> {
    job::Entity::update_many()
        .col_expr(
            job::Column::IdempotencyKey,
            Expr::value(Option::<String>::None),
        )
        .filter(job::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Jobs of this kind the user created since `since` (today's exports, for the quota).
pub async fn created_since(
    db: &impl ConnectionTrait,
    owner_id: Uuid,
    kind: &str,
    since: DateTime<Utc>,
) -> Result<u64, DbErr> {
    job::Entity::find()
        .filter(job::Column::OwnerId.eq(owner_id))
        .filter(job::Column::Kind.eq(kind))
        .filter(job::Column::CreatedAt.gte(since))
        .count(db)
        .await
}
