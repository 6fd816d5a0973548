//! Requests to stop a running reply, for the instance that runs it: a user's Stop can reach any
//! instance behind a balancer, and the one writing the reply looks here while it streams.
//!
//! A ledger, not an entity: a row is the reply's message id and when the stop was asked for;
//! it goes when the reply ends (or with the retention sweep).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ReplyCancels {
    Table,
    MessageId,
    RequestedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ReplyCancels::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(ReplyCancels::MessageId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(ReplyCancels::RequestedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }
}
