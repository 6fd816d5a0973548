//! Tables and their versions.
//!
//! Rows are versioned one by one: a row version is valid from the table version that wrote
//! it until the version that replaced or deleted it (`valid_to`, null while current). A change
//! writes only the rows it touches, so storage grows with the size of changes, and any
//! version can be read back. Row versions are immutable value records of their table (no id
//! or timestamps of their own: at a million rows those would double the storage).

use sea_orm_migration::prelude::*;

use super::with_common_columns;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tables {
    Table,
    Id,
    OwnerId,
    Name,
    CurrentVersion,
    NextRowId,
    RowCount,
}

#[derive(DeriveIden)]
enum TableVersions {
    Table,
    Id,
    TableId,
    Version,
    Schema,
    Ops,
    Summary,
    RowCount,
    AuthorId,
}

#[derive(DeriveIden)]
enum TableRows {
    Table,
    TableId,
    RowId,
    ValidFrom,
    ValidTo,
    Position,
    Data,
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
                        .table(Tables::Table)
                        .if_not_exists()
                        .col(ColumnDef::new(Tables::Id).uuid().not_null().primary_key())
                        .col(ColumnDef::new(Tables::OwnerId).uuid().not_null())
                        .col(ColumnDef::new(Tables::Name).string_len(200).not_null())
                        .col(ColumnDef::new(Tables::CurrentVersion).integer().not_null())
                        .col(ColumnDef::new(Tables::NextRowId).big_integer().not_null())
                        .col(ColumnDef::new(Tables::RowCount).big_integer().not_null())
                        .foreign_key(
                            ForeignKey::create()
                                .from(Tables::Table, Tables::OwnerId)
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
                    .name("tables_owner_id")
                    .table(Tables::Table)
                    .col(Tables::OwnerId)
                    .col(Tables::Id)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                with_common_columns(
                    Table::create()
                        .table(TableVersions::Table)
                        .if_not_exists()
                        .col(
                            ColumnDef::new(TableVersions::Id)
                                .uuid()
                                .not_null()
                                .primary_key(),
                        )
                        .col(ColumnDef::new(TableVersions::TableId).uuid().not_null())
                        .col(ColumnDef::new(TableVersions::Version).integer().not_null())
                        .col(ColumnDef::new(TableVersions::Schema).text().not_null())
                        .col(ColumnDef::new(TableVersions::Ops).text().not_null())
                        .col(
                            ColumnDef::new(TableVersions::Summary)
                                .string_len(500)
                                .not_null(),
                        )
                        .col(
                            ColumnDef::new(TableVersions::RowCount)
                                .big_integer()
                                .not_null(),
                        )
                        .col(ColumnDef::new(TableVersions::AuthorId).uuid().null())
                        .foreign_key(
                            ForeignKey::create()
                                .from(TableVersions::Table, TableVersions::TableId)
                                .to(Tables::Table, Tables::Id)
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
                    .name("table_versions_table_version")
                    .table(TableVersions::Table)
                    .col(TableVersions::TableId)
                    .col(TableVersions::Version)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(TableRows::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(TableRows::TableId).uuid().not_null())
                    .col(ColumnDef::new(TableRows::RowId).big_integer().not_null())
                    .col(ColumnDef::new(TableRows::ValidFrom).integer().not_null())
                    .col(ColumnDef::new(TableRows::ValidTo).integer().null())
                    .col(ColumnDef::new(TableRows::Position).big_integer().not_null())
                    .col(ColumnDef::new(TableRows::Data).text().not_null())
                    .primary_key(
                        Index::create()
                            .col(TableRows::TableId)
                            .col(TableRows::RowId)
                            .col(TableRows::ValidFrom),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(TableRows::Table, TableRows::TableId)
                            .to(Tables::Table, Tables::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Reading the current version in order (the common case) walks this index only.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX IF NOT EXISTS table_rows_live \
                 ON table_rows (table_id, position) WHERE valid_to IS NULL",
            )
            .await?;
        // Older versions and diffs: rows by the versions that wrote or closed them.
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("table_rows_history")
                    .table(TableRows::Table)
                    .col(TableRows::TableId)
                    .col(TableRows::Position)
                    .col(TableRows::ValidFrom)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("table_rows_valid_to")
                    .table(TableRows::Table)
                    .col(TableRows::TableId)
                    .col(TableRows::ValidTo)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}
