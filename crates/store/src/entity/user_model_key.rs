use sea_orm::entity::prelude::*;

/// A user's own key for one configured model. `Debug` would show the ciphertext only.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "user_model_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    /// The model's name in the configuration.
    pub model: String,
    /// `v1:…` from the server's `crypto::Cipher::encrypt`, bound to the user and the model.
    #[sea_orm(column_type = "Text")]
    pub encrypted_key: String,
    /// The key's last characters, so the user can tell which key is saved (empty for keys too
    /// short to show any of).
    pub key_hint: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
