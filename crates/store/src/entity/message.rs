use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "messages")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub owner_id: Uuid,
    /// `user` or `assistant`.
    pub role: String,
    #[sea_orm(column_type = "Text")]
    pub content: String,
    /// `complete`, `streaming`, `incomplete` (client left or cancelled), `error`.
    pub status: String,
    pub model: Option<String>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// Cost in millionths of a US dollar.
    pub cost_micros: i64,
    pub finish_reason: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
    /// A table made from (or changed by) this reply.
    pub table_id: Option<Uuid>,
    pub table_version: Option<i32>,
    /// The thinking of a reasoning model, apart from the reply; never sent back to a model.
    #[sea_orm(column_type = "Text", nullable)]
    pub thinking: Option<String>,
    /// How long the model thought, in milliseconds.
    pub thinking_ms: Option<i64>,
    /// What happened while handling the reply (tables found, operations applied…), JSON.
    #[sea_orm(column_type = "Text")]
    pub meta: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
