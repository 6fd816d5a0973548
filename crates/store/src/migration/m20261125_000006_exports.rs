//! Export templates and the durable job queue that runs exports (and later other background
//! work): a job is claimed with a lease that its worker renews; a job whose lease runs out is
//! claimed again by any worker.

use sea_orm_migration::prelude::*;

use super::with_common_columns;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Templates {
    Table,
    Id,
    OwnerId,
    Name,
    Description,
    Body,
    Shared,
}

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Id,
    OwnerId,
    Kind,
    Payload,
    Status,
    ProgressDone,
    ProgressTotal,
    Attempts,
    MaxAttempts,
    RunAfter,
    LeaseOwner,
    LeaseExpiresAt,
    Error,
    Result,
    IdempotencyKey,
    StartedAt,
    FinishedAt,
    ExpiresAt,
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
                        .table(Templates::Table)
                        .if_not_exists()
                        .col(
                            ColumnDef::new(Templates::Id)
                                .uuid()
                                .not_null()
                                .primary_key(),
                        )
                        .col(ColumnDef::new(Templates::OwnerId).uuid().not_null())
                        .col(ColumnDef::new(Templates::Name).string_len(200).not_null())
                        .col(ColumnDef::new(Templates::Description).text().null())
                        .col(ColumnDef::new(Templates::Body).text().not_null())
                        .col(
                            ColumnDef::new(Templates::Shared)
                                .boolean()
                                .not_null()
                                .default(false),
                        )
                        .foreign_key(
                            ForeignKey::create()
                                .from(Templates::Table, Templates::OwnerId)
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
                    .name("templates_owner_id")
                    .table(Templates::Table)
                    .col(Templates::OwnerId)
                    .col(Templates::Id)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                with_common_columns(
                    Table::create()
                        .table(Jobs::Table)
                        .if_not_exists()
                        .col(ColumnDef::new(Jobs::Id).uuid().not_null().primary_key())
                        .col(ColumnDef::new(Jobs::OwnerId).uuid().not_null())
                        .col(ColumnDef::new(Jobs::Kind).string_len(32).not_null())
                        .col(ColumnDef::new(Jobs::Payload).text().not_null())
                        .col(ColumnDef::new(Jobs::Status).string_len(16).not_null())
                        .col(
                            ColumnDef::new(Jobs::ProgressDone)
                                .big_integer()
                                .not_null()
                                .default(0),
                        )
                        .col(ColumnDef::new(Jobs::ProgressTotal).big_integer().null())
                        .col(
                            ColumnDef::new(Jobs::Attempts)
                                .integer()
                                .not_null()
                                .default(0),
                        )
                        .col(ColumnDef::new(Jobs::MaxAttempts).integer().not_null())
                        .col(
                            ColumnDef::new(Jobs::RunAfter)
                                .timestamp_with_time_zone()
                                .not_null(),
                        )
                        .col(ColumnDef::new(Jobs::LeaseOwner).uuid().null())
                        .col(
                            ColumnDef::new(Jobs::LeaseExpiresAt)
                                .timestamp_with_time_zone()
                                .null(),
                        )
                        .col(ColumnDef::new(Jobs::Error).text().null())
                        .col(ColumnDef::new(Jobs::Result).text().null())
                        .col(ColumnDef::new(Jobs::IdempotencyKey).string_len(200).null())
                        .col(
                            ColumnDef::new(Jobs::StartedAt)
                                .timestamp_with_time_zone()
                                .null(),
                        )
                        .col(
                            ColumnDef::new(Jobs::FinishedAt)
                                .timestamp_with_time_zone()
                                .null(),
                        )
                        .col(
                            ColumnDef::new(Jobs::ExpiresAt)
                                .timestamp_with_time_zone()
                                .null(),
                        )
                        .foreign_key(
                            ForeignKey::create()
                                .from(Jobs::Table, Jobs::OwnerId)
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
                    .name("jobs_owner_kind_id")
                    .table(Jobs::Table)
                    .col(Jobs::OwnerId)
                    .col(Jobs::Kind)
                    .col(Jobs::Id)
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        // What workers scan: jobs waiting or running (finished ones drop out of the index).
        db.execute_unprepared(
            "CREATE INDEX IF NOT EXISTS jobs_claimable ON jobs (run_after) \
             WHERE status IN ('queued', 'running')",
        )
        .await?;
        db.execute_unprepared(
            "CREATE UNIQUE INDEX IF NOT EXISTS jobs_owner_idempotency_key \
             ON jobs (owner_id, kind, idempotency_key) WHERE idempotency_key IS NOT NULL",
        )
        .await?;
        Ok(())
    }
}
