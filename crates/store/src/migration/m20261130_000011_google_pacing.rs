//! Google's write quota is per Google account, whichever instance writes: each account's next
//! free write slot is kept here, so that every instance paces against the same clock.
//!
//! A ledger, not an entity: a row is an account key (a user id, or `service-account`) and the
//! time (Unix milliseconds) from which its next write may go.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum GooglePacing {
    Table,
    Account,
    NextAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(GooglePacing::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(GooglePacing::Account)
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(GooglePacing::NextAt)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }
}
