use sea_orm::entity::prelude::*;

/// A table linked to a tab of a Google spreadsheet that follows its versions.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sheet_links")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub owner_id: Uuid,
    pub table_id: Uuid,
    pub spreadsheet_id: String,
    /// The tab's `sheetId` (stable when the tab is renamed).
    pub sheet_id: i64,
    pub sheet_title: String,
    /// `oauth` (the owner's Google account) or `service_account`.
    pub auth: String,
    /// The template the export used (JSON), applied again on every sync.
    #[sea_orm(column_type = "Text", nullable)]
    pub template: Option<String>,
    pub last_synced_version: i32,
    pub last_synced_at: DateTimeUtc,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    /// `active` or `error`.
    pub status: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
