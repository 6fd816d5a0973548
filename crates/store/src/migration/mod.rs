//! Schema migrations, applied at start-up and by `sheetgpt migrate`. Each runs once (recorded
//! in `seaql_migrations`), so applying them again is a no-op. Migrations are append-only:
//! change the schema with a new one, never by editing an old one.

use sea_orm_migration::prelude::*;

mod m20261125_000001_accounts;
mod m20261125_000002_tables;
mod m20261125_000003_chat;
mod m20261125_000004_schemas;
mod m20261125_000005_model_keys;
mod m20261125_000006_exports;
mod m20261125_000007_google;
mod m20261125_000008_operations;
mod m20261130_000009_ws_tickets;
mod m20261130_000010_reply_cancels;
mod m20261130_000011_google_pacing;
mod m20261202_000012_google_browser_binding;
mod m20261202_000017_thinking;
mod m20261202_000018_locale;
mod m20261204_000019_job_checkpoint;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_accounts::Migration),
            Box::new(m20261125_000002_tables::Migration),
            Box::new(m20261125_000003_chat::Migration),
            Box::new(m20261125_000004_schemas::Migration),
            Box::new(m20261125_000005_model_keys::Migration),
            Box::new(m20261125_000006_exports::Migration),
            Box::new(m20261125_000007_google::Migration),
            Box::new(m20261125_000008_operations::Migration),
            Box::new(m20261130_000009_ws_tickets::Migration),
            Box::new(m20261130_000010_reply_cancels::Migration),
            Box::new(m20261130_000011_google_pacing::Migration),
            Box::new(m20261202_000012_google_browser_binding::Migration),
            Box::new(m20261202_000017_thinking::Migration),
            Box::new(m20261202_000018_locale::Migration),
            Box::new(m20261204_000019_job_checkpoint::Migration),
        ]
    }
}

/// Columns every table has.
pub(crate) fn with_common_columns(table: &mut TableCreateStatement) -> &mut TableCreateStatement {
    table
        .col(
            ColumnDef::new(Common::CreatedAt)
                .timestamp_with_time_zone()
                .not_null(),
        )
        .col(
            ColumnDef::new(Common::UpdatedAt)
                .timestamp_with_time_zone()
                .not_null(),
        )
        .col(
            ColumnDef::new(Common::DeletedAt)
                .timestamp_with_time_zone()
                .null(),
        )
}

#[derive(DeriveIden)]
#[expect(clippy::enum_variant_names, reason = "they are column names")]
pub(crate) enum Common {
    CreatedAt,
    UpdatedAt,
    DeletedAt,
}
