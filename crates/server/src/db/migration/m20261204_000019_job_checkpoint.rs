//! What a running job has already done outside the database that its next attempt must not
//! do again: the spreadsheet or tab a Google export created, so that an attempt after a
//! crash writes into it instead of creating another.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Checkpoint,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Jobs::Table)
                    .add_column(ColumnDef::new(Jobs::Checkpoint).text().null())
                    .to_owned(),
            )
            .await
    }
}
