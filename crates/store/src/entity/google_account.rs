use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "google_accounts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    /// `connected`, or `reconnect_required` once Google refused the grant.
    pub status: String,
    /// Scopes granted, space-separated.
    #[sea_orm(column_type = "Text")]
    pub scopes: String,
    /// AES-256-GCM (see the server's `crypto` module), bound to the user and the purpose.
    #[sea_orm(column_type = "Text")]
    pub encrypted_refresh_token: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub encrypted_access_token: Option<String>,
    pub access_expires_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
