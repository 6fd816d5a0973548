//! The audit log (append-only) and per-user quota overrides.

use sea_orm_migration::prelude::*;

use super::with_common_columns;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    Action,
    ActorId,
    TargetType,
    TargetId,
    Ip,
    UserAgent,
    RequestId,
    Details,
    CreatedAt,
}

#[derive(DeriveIden)]
enum UserQuotas {
    Table,
    Id,
    UserId,
    TokensPerDay,
    ExportsPerDay,
    MaxStoredRows,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Events outlive their actors (no foreign key): the record of what an account did
        // stays after the account is deleted, until the retention sweep.
        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(AuditEvents::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(AuditEvents::Action)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(ColumnDef::new(AuditEvents::ActorId).uuid().null())
                    .col(
                        ColumnDef::new(AuditEvents::TargetType)
                            .string_len(32)
                            .null(),
                    )
                    .col(ColumnDef::new(AuditEvents::TargetId).string_len(200).null())
                    .col(ColumnDef::new(AuditEvents::Ip).string_len(64).null())
                    .col(
                        ColumnDef::new(AuditEvents::UserAgent)
                            .string_len(500)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(AuditEvents::RequestId)
                            .string_len(100)
                            .null(),
                    )
                    .col(ColumnDef::new(AuditEvents::Details).text().null())
                    .col(
                        ColumnDef::new(AuditEvents::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("audit_events_actor_id", AuditEvents::ActorId),
            ("audit_events_action", AuditEvents::Action),
            ("audit_events_created_at", AuditEvents::CreatedAt),
        ] {
            manager
                .create_index(
                    Index::create()
                        .if_not_exists()
                        .name(name)
                        .table(AuditEvents::Table)
                        .col(col)
                        .col(AuditEvents::Id)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                with_common_columns(
                    Table::create()
                        .table(UserQuotas::Table)
                        .if_not_exists()
                        .col(
                            ColumnDef::new(UserQuotas::Id)
                                .uuid()
                                .not_null()
                                .primary_key(),
                        )
                        .col(
                            ColumnDef::new(UserQuotas::UserId)
                                .uuid()
                                .not_null()
                                .unique_key(),
                        )
                        .col(
                            ColumnDef::new(UserQuotas::TokensPerDay)
                                .big_integer()
                                .null(),
                        )
                        .col(
                            ColumnDef::new(UserQuotas::ExportsPerDay)
                                .big_integer()
                                .null(),
                        )
                        .col(
                            ColumnDef::new(UserQuotas::MaxStoredRows)
                                .big_integer()
                                .null(),
                        )
                        .foreign_key(
                            ForeignKey::create()
                                .from(UserQuotas::Table, UserQuotas::UserId)
                                .to(Users::Table, Users::Id)
                                .on_delete(ForeignKeyAction::Cascade),
                        ),
                )
                .to_owned(),
            )
            .await?;
        Ok(())
    }
}
