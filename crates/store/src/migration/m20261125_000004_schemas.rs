//! Target schema presets, and the preset a conversation uses.

use sea_orm_migration::prelude::*;

use super::with_common_columns;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SchemaPresets {
    Table,
    Id,
    OwnerId,
    Name,
    Columns,
}

#[derive(DeriveIden)]
enum Conversations {
    Table,
    TargetSchemaId,
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
                        .table(SchemaPresets::Table)
                        .if_not_exists()
                        .col(
                            ColumnDef::new(SchemaPresets::Id)
                                .uuid()
                                .not_null()
                                .primary_key(),
                        )
                        .col(ColumnDef::new(SchemaPresets::OwnerId).uuid().not_null())
                        .col(
                            ColumnDef::new(SchemaPresets::Name)
                                .string_len(200)
                                .not_null(),
                        )
                        .col(ColumnDef::new(SchemaPresets::Columns).text().not_null())
                        .foreign_key(
                            ForeignKey::create()
                                .from(SchemaPresets::Table, SchemaPresets::OwnerId)
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
                    .name("schema_presets_owner_id")
                    .table(SchemaPresets::Table)
                    .col(SchemaPresets::OwnerId)
                    .col(SchemaPresets::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Conversations::Table)
                    .add_column(ColumnDef::new(Conversations::TargetSchemaId).uuid().null())
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}
