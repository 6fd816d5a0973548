use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "table_versions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub table_id: Uuid,
    pub version: i32,
    /// The columns of this version (JSON of `sheetgpt_core::version::Schema`).
    #[sea_orm(column_type = "Text")]
    pub schema: String,
    /// The operations that made this version from the previous one (JSON).
    #[sea_orm(column_type = "Text")]
    pub ops: String,
    /// A one-line description (`created from upload`, `3 cells set`…).
    pub summary: String,
    pub row_count: i64,
    pub author_id: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
