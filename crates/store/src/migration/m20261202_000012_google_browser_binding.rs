//! Binds a started Google authorization to the browser that started it: the hash of a random
//! value that `/connect` also sets as a cookie, which the callback must bring back (RFC 9700
//! §4.7.1). Authorizations started before this migration have none and are refused.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum GoogleAuthorizations {
    Table,
    BrowserHash,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(GoogleAuthorizations::Table)
                    .add_column(
                        ColumnDef::new(GoogleAuthorizations::BrowserHash)
                            .string()
                            .null(),
                    )
                    .to_owned(),
            )
            .await
    }
}
