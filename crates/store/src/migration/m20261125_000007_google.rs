//! Google Sheets: users' OAuth grants (tokens encrypted), pending authorizations, and links
//! from tables to the sheets that follow them.

use sea_orm_migration::prelude::*;

use super::with_common_columns;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum GoogleAccounts {
    Table,
    Id,
    UserId,
    Status,
    Scopes,
    EncryptedRefreshToken,
    EncryptedAccessToken,
    AccessExpiresAt,
}

#[derive(DeriveIden)]
enum GoogleAuthorizations {
    Table,
    Id,
    UserId,
    SessionId,
    StateHash,
    EncryptedVerifier,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum SheetLinks {
    Table,
    Id,
    OwnerId,
    TableId,
    SpreadsheetId,
    SheetId,
    SheetTitle,
    Auth,
    Template,
    LastSyncedVersion,
    LastSyncedAt,
    LastError,
    Status,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

fn fk(from_table: impl IntoIden, from_col: impl IntoIden) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(from_table, from_col)
        .to(Users::Table, Users::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                with_common_columns(
                    Table::create()
                        .table(GoogleAccounts::Table)
                        .if_not_exists()
                        .col(
                            ColumnDef::new(GoogleAccounts::Id)
                                .uuid()
                                .not_null()
                                .primary_key(),
                        )
                        .col(ColumnDef::new(GoogleAccounts::UserId).uuid().not_null())
                        .col(
                            ColumnDef::new(GoogleAccounts::Status)
                                .string_len(32)
                                .not_null(),
                        )
                        .col(ColumnDef::new(GoogleAccounts::Scopes).text().not_null())
                        .col(
                            ColumnDef::new(GoogleAccounts::EncryptedRefreshToken)
                                .text()
                                .not_null(),
                        )
                        .col(
                            ColumnDef::new(GoogleAccounts::EncryptedAccessToken)
                                .text()
                                .null(),
                        )
                        .col(
                            ColumnDef::new(GoogleAccounts::AccessExpiresAt)
                                .timestamp_with_time_zone()
                                .null(),
                        )
                        .foreign_key(&mut fk(GoogleAccounts::Table, GoogleAccounts::UserId)),
                )
                .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared(
            "CREATE UNIQUE INDEX IF NOT EXISTS google_accounts_user_id \
             ON google_accounts (user_id) WHERE deleted_at IS NULL",
        )
        .await?;

        manager
            .create_table(
                with_common_columns(
                    Table::create()
                        .table(GoogleAuthorizations::Table)
                        .if_not_exists()
                        .col(
                            ColumnDef::new(GoogleAuthorizations::Id)
                                .uuid()
                                .not_null()
                                .primary_key(),
                        )
                        .col(
                            ColumnDef::new(GoogleAuthorizations::UserId)
                                .uuid()
                                .not_null(),
                        )
                        .col(
                            ColumnDef::new(GoogleAuthorizations::SessionId)
                                .uuid()
                                .null(),
                        )
                        .col(
                            ColumnDef::new(GoogleAuthorizations::StateHash)
                                .string_len(64)
                                .not_null()
                                .unique_key(),
                        )
                        .col(
                            ColumnDef::new(GoogleAuthorizations::EncryptedVerifier)
                                .text()
                                .not_null(),
                        )
                        .col(
                            ColumnDef::new(GoogleAuthorizations::ExpiresAt)
                                .timestamp_with_time_zone()
                                .not_null(),
                        )
                        .foreign_key(&mut fk(
                            GoogleAuthorizations::Table,
                            GoogleAuthorizations::UserId,
                        )),
                )
                .to_owned(),
            )
            .await?;

        manager
            .create_table(
                with_common_columns(
                    Table::create()
                        .table(SheetLinks::Table)
                        .if_not_exists()
                        .col(
                            ColumnDef::new(SheetLinks::Id)
                                .uuid()
                                .not_null()
                                .primary_key(),
                        )
                        .col(ColumnDef::new(SheetLinks::OwnerId).uuid().not_null())
                        .col(ColumnDef::new(SheetLinks::TableId).uuid().not_null())
                        .col(
                            ColumnDef::new(SheetLinks::SpreadsheetId)
                                .string_len(200)
                                .not_null(),
                        )
                        .col(ColumnDef::new(SheetLinks::SheetId).big_integer().not_null())
                        .col(
                            ColumnDef::new(SheetLinks::SheetTitle)
                                .string_len(200)
                                .not_null(),
                        )
                        .col(ColumnDef::new(SheetLinks::Auth).string_len(32).not_null())
                        .col(ColumnDef::new(SheetLinks::Template).text().null())
                        .col(
                            ColumnDef::new(SheetLinks::LastSyncedVersion)
                                .integer()
                                .not_null(),
                        )
                        .col(
                            ColumnDef::new(SheetLinks::LastSyncedAt)
                                .timestamp_with_time_zone()
                                .not_null(),
                        )
                        .col(ColumnDef::new(SheetLinks::LastError).text().null())
                        .col(ColumnDef::new(SheetLinks::Status).string_len(32).not_null())
                        .foreign_key(&mut fk(SheetLinks::Table, SheetLinks::OwnerId)),
                )
                .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("sheet_links_table_id")
                    .table(SheetLinks::Table)
                    .col(SheetLinks::TableId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("sheet_links_owner_id")
                    .table(SheetLinks::Table)
                    .col(SheetLinks::OwnerId)
                    .col(SheetLinks::Id)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}
