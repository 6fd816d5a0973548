//! The thinking of reasoning models, kept with their replies (never sent back to the model),
//! and row bounds of target schema presets.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Messages {
    Table,
    Thinking,
    ThinkingMs,
}

#[derive(DeriveIden)]
enum SchemaPresets {
    Table,
    MinRows,
    MaxRows,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column a statement: SQLite adds one at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(Messages::Table)
                    .add_column(ColumnDef::new(Messages::Thinking).text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Messages::Table)
                    .add_column(ColumnDef::new(Messages::ThinkingMs).big_integer().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(SchemaPresets::Table)
                    .add_column(ColumnDef::new(SchemaPresets::MinRows).integer().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(SchemaPresets::Table)
                    .add_column(ColumnDef::new(SchemaPresets::MaxRows).integer().null())
                    .to_owned(),
            )
            .await
    }
}
