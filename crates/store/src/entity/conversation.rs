use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "conversations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub owner_id: Uuid,
    /// Empty until the first message names it.
    pub title: String,
    /// The configured model name (`offline`, `local`, …).
    pub model: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub system_prompt: Option<String>,
    /// The table the conversation works on (its schema and a sample go to the model).
    pub current_table_id: Option<Uuid>,
    /// The target schema preset replies' tables are conformed to.
    pub target_schema_id: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
