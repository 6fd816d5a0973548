//! What a running job has already done outside the database that its next attempt must not
//! do again: the spreadsheet or tab a Google export created, so that an attempt after a
//! crash writes into it instead of creating another. And an index of the replies being
//! written, which every server's housekeeping looks through for replies whose server died.

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
            .await?;
        // Partial: only the few replies being written at a time are in it (both databases
        // take this form).
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX IF NOT EXISTS messages_streaming ON messages (updated_at) \
                 WHERE status = 'streaming'",
            )
            .await?;
        Ok(())
    }
}
