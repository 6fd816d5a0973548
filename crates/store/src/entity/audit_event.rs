use sea_orm::entity::prelude::*;

/// One security-relevant event. Append-only: never updated; deleted only by retention.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// `auth.login`, `auth.login_failed`, `api_key.created`, `admin.user_updated`, …
    pub action: String,
    /// Who did it (None: someone not signed in, or the system).
    pub actor_id: Option<Uuid>,
    /// What it was done to: `user`, `session`, `api_key`, `export`, `google`, …
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    /// Facts about the event (JSON), never secrets.
    #[sea_orm(column_type = "Text", nullable)]
    pub details: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
