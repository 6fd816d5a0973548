//! Users' own keys for configured model providers, encrypted (see the server's `crypto` module).

use sea_orm_migration::prelude::*;

use super::with_common_columns;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum UserModelKeys {
    Table,
    Id,
    UserId,
    Model,
    EncryptedKey,
    KeyHint,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                with_common_columns(
                    Table::create()
                        .table(UserModelKeys::Table)
                        .if_not_exists()
                        .col(
                            ColumnDef::new(UserModelKeys::Id)
                                .uuid()
                                .not_null()
                                .primary_key(),
                        )
                        .col(ColumnDef::new(UserModelKeys::UserId).uuid().not_null())
                        .col(
                            ColumnDef::new(UserModelKeys::Model)
                                .string_len(100)
                                .not_null(),
                        )
                        .col(
                            ColumnDef::new(UserModelKeys::EncryptedKey)
                                .text()
                                .not_null(),
                        )
                        .col(
                            ColumnDef::new(UserModelKeys::KeyHint)
                                .string_len(8)
                                .not_null(),
                        )
                        .foreign_key(
                            ForeignKey::create()
                                .from(UserModelKeys::Table, UserModelKeys::UserId)
                                .to(Users::Table, Users::Id)
                                .on_delete(ForeignKeyAction::Cascade),
                        ),
                )
                .to_owned(),
            )
            .await?;
        // One live key per user and model; deleted rows wait for the purge. sea-query has no
        // partial indexes, and this statement reads the same in SQLite and PostgreSQL.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX IF NOT EXISTS user_model_keys_user_id_model \
                 ON user_model_keys (user_id, model) WHERE deleted_at IS NULL",
            )
            .await?;
        Ok(())
    }
}
