//! Accounts: users, login sessions, refresh tokens and API keys.

use sea_orm_migration::prelude::*;

use super::with_common_columns;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    PasswordHash,
    Role,
    DisabledAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    UserId,
    UserAgent,
    Ip,
    LastUsedAt,
    ExpiresAt,
    RevokedAt,
    RevokedReason,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    Id,
    SessionId,
    TokenHash,
    ExpiresAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    UserId,
    Name,
    Prefix,
    KeyHash,
    Scope,
    LastUsedAt,
    ExpiresAt,
    RevokedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                with_common_columns(
                    Table::create()
                        .table(Users::Table)
                        .if_not_exists()
                        .col(ColumnDef::new(Users::Id).uuid().not_null().primary_key())
                        .col(ColumnDef::new(Users::Email).string().not_null())
                        .col(ColumnDef::new(Users::PasswordHash).string().not_null())
                        .col(ColumnDef::new(Users::Role).string_len(16).not_null())
                        .col(
                            ColumnDef::new(Users::DisabledAt)
                                .timestamp_with_time_zone()
                                .null(),
                        ),
                )
                .to_owned(),
            )
            .await?;
        // Unique among live users only, so that a deleted account's address can register
        // again. Partial indexes read the same on SQLite and PostgreSQL.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX IF NOT EXISTS users_email_live \
                 ON users (email) WHERE deleted_at IS NULL",
            )
            .await?;

        manager
            .create_table(
                with_common_columns(
                    Table::create()
                        .table(Sessions::Table)
                        .if_not_exists()
                        .col(ColumnDef::new(Sessions::Id).uuid().not_null().primary_key())
                        .col(ColumnDef::new(Sessions::UserId).uuid().not_null())
                        .col(ColumnDef::new(Sessions::UserAgent).string().null())
                        .col(ColumnDef::new(Sessions::Ip).string().null())
                        .col(
                            ColumnDef::new(Sessions::LastUsedAt)
                                .timestamp_with_time_zone()
                                .not_null(),
                        )
                        .col(
                            ColumnDef::new(Sessions::ExpiresAt)
                                .timestamp_with_time_zone()
                                .not_null(),
                        )
                        .col(
                            ColumnDef::new(Sessions::RevokedAt)
                                .timestamp_with_time_zone()
                                .null(),
                        )
                        .col(
                            ColumnDef::new(Sessions::RevokedReason)
                                .string_len(32)
                                .null(),
                        )
                        .foreign_key(
                            ForeignKey::create()
                                .from(Sessions::Table, Sessions::UserId)
                                .to(Users::Table, Users::Id)
                                .on_delete(ForeignKeyAction::Cascade),
                        ),
                )
                .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("sessions_user_id")
                    .table(Sessions::Table)
                    .col(Sessions::UserId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                with_common_columns(
                    Table::create()
                        .table(RefreshTokens::Table)
                        .if_not_exists()
                        .col(
                            ColumnDef::new(RefreshTokens::Id)
                                .uuid()
                                .not_null()
                                .primary_key(),
                        )
                        .col(ColumnDef::new(RefreshTokens::SessionId).uuid().not_null())
                        .col(
                            ColumnDef::new(RefreshTokens::TokenHash)
                                .string_len(64)
                                .not_null(),
                        )
                        .col(
                            ColumnDef::new(RefreshTokens::ExpiresAt)
                                .timestamp_with_time_zone()
                                .not_null(),
                        )
                        .col(
                            ColumnDef::new(RefreshTokens::UsedAt)
                                .timestamp_with_time_zone()
                                .null(),
                        )
                        .foreign_key(
                            ForeignKey::create()
                                .from(RefreshTokens::Table, RefreshTokens::SessionId)
                                .to(Sessions::Table, Sessions::Id)
                                .on_delete(ForeignKeyAction::Cascade),
                        ),
                )
                .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("refresh_tokens_token_hash")
                    .table(RefreshTokens::Table)
                    .col(RefreshTokens::TokenHash)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("refresh_tokens_session_id")
                    .table(RefreshTokens::Table)
                    .col(RefreshTokens::SessionId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                with_common_columns(
                    Table::create()
                        .table(ApiKeys::Table)
                        .if_not_exists()
                        .col(ColumnDef::new(ApiKeys::Id).uuid().not_null().primary_key())
                        .col(ColumnDef::new(ApiKeys::UserId).uuid().not_null())
                        .col(ColumnDef::new(ApiKeys::Name).string_len(100).not_null())
                        .col(ColumnDef::new(ApiKeys::Prefix).string_len(16).not_null())
                        .col(ColumnDef::new(ApiKeys::KeyHash).string_len(64).not_null())
                        .col(ColumnDef::new(ApiKeys::Scope).string_len(16).not_null())
                        .col(
                            ColumnDef::new(ApiKeys::LastUsedAt)
                                .timestamp_with_time_zone()
                                .null(),
                        )
                        .col(
                            ColumnDef::new(ApiKeys::ExpiresAt)
                                .timestamp_with_time_zone()
                                .null(),
                        )
                        .col(
                            ColumnDef::new(ApiKeys::RevokedAt)
                                .timestamp_with_time_zone()
                                .null(),
                        )
                        .foreign_key(
                            ForeignKey::create()
                                .from(ApiKeys::Table, ApiKeys::UserId)
                                .to(Users::Table, Users::Id)
                                .on_delete(ForeignKeyAction::Cascade),
                        ),
                )
                .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("api_keys_key_hash")
                    .table(ApiKeys::Table)
                    .col(ApiKeys::KeyHash)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("api_keys_user_id")
                    .table(ApiKeys::Table)
                    .col(ApiKeys::UserId)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}
