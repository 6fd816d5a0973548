use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "jobs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub owner_id: Uuid,
    /// What the job does (`export`).
    pub kind: String,
    /// The job's input (JSON), fixed at creation so that every attempt does the same work.
    #[sea_orm(column_type = "Text")]
    pub payload: String,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    pub progress_done: i64,
    pub progress_total: Option<i64>,
    /// Attempts started (claims), including the one running.
    pub attempts: i32,
    pub max_attempts: i32,
    /// Not claimed before this time (retry back-off).
    pub run_after: DateTimeUtc,
    /// The worker holding the job while it runs.
    pub lease_owner: Option<Uuid>,
    pub lease_expires_at: Option<DateTimeUtc>,
    /// Why the last attempt failed, in words safe to show the user.
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
    /// What a successful run produced (JSON).
    #[sea_orm(column_type = "Text", nullable)]
    pub result: Option<String>,
    pub idempotency_key: Option<String>,
    /// What an attempt did outside the database that the next must not do again (JSON; a
    /// Google export's created spreadsheet or tab), written under the lease.
    #[sea_orm(column_type = "Text", nullable)]
    pub checkpoint: Option<String>,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
    /// When the job's artifact is deleted.
    pub expires_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
