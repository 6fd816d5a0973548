use sea_orm::entity::prelude::*;

/// An authorization started by `connect` and not yet completed by the callback.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "google_authorizations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    /// The session that started it (None for an API key).
    pub session_id: Option<Uuid>,
    /// SHA-256 (hex) of the `state` sent to Google.
    pub state_hash: String,
    /// SHA-256 (hex) of the value of the cookie set in the browser that started it.
    pub browser_hash: Option<String>,
    /// The PKCE verifier, encrypted.
    #[sea_orm(column_type = "Text")]
    pub encrypted_verifier: String,
    pub expires_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
