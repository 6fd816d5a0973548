//! The WebSocket tickets already redeemed, shared by every instance on the database, so that a
//! ticket opens one socket in all (not one per instance behind a balancer).
//!
//! A ledger, not an entity: a row is a ticket's id and the time after which the ticket is
//! refused for its age alone (then the row is swept), nothing else.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WsTicketsSpent {
    Table,
    Jti,
    RefusedAfter,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WsTicketsSpent::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(WsTicketsSpent::Jti)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(WsTicketsSpent::RefusedAfter)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }
}
