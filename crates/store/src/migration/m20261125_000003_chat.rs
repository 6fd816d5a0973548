//! Conversations and their messages.

use sea_orm_migration::prelude::*;

use super::with_common_columns;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Conversations {
    Table,
    Id,
    OwnerId,
    Title,
    Model,
    SystemPrompt,
    CurrentTableId,
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    Id,
    ConversationId,
    OwnerId,
    Role,
    Content,
    Status,
    Model,
    PromptTokens,
    CompletionTokens,
    CostMicros,
    FinishReason,
    Error,
    TableId,
    TableVersion,
    Meta,
    CreatedAt,
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
                        .table(Conversations::Table)
                        .if_not_exists()
                        .col(
                            ColumnDef::new(Conversations::Id)
                                .uuid()
                                .not_null()
                                .primary_key(),
                        )
                        .col(ColumnDef::new(Conversations::OwnerId).uuid().not_null())
                        .col(
                            ColumnDef::new(Conversations::Title)
                                .string_len(200)
                                .not_null(),
                        )
                        .col(
                            ColumnDef::new(Conversations::Model)
                                .string_len(100)
                                .not_null(),
                        )
                        .col(ColumnDef::new(Conversations::SystemPrompt).text().null())
                        .col(ColumnDef::new(Conversations::CurrentTableId).uuid().null())
                        .foreign_key(
                            ForeignKey::create()
                                .from(Conversations::Table, Conversations::OwnerId)
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
                    .name("conversations_owner_id")
                    .table(Conversations::Table)
                    .col(Conversations::OwnerId)
                    .col(Conversations::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                with_common_columns(
                    Table::create()
                        .table(Messages::Table)
                        .if_not_exists()
                        .col(ColumnDef::new(Messages::Id).uuid().not_null().primary_key())
                        .col(ColumnDef::new(Messages::ConversationId).uuid().not_null())
                        .col(ColumnDef::new(Messages::OwnerId).uuid().not_null())
                        .col(ColumnDef::new(Messages::Role).string_len(16).not_null())
                        .col(ColumnDef::new(Messages::Content).text().not_null())
                        .col(ColumnDef::new(Messages::Status).string_len(16).not_null())
                        .col(ColumnDef::new(Messages::Model).string_len(100).null())
                        .col(
                            ColumnDef::new(Messages::PromptTokens)
                                .big_integer()
                                .not_null(),
                        )
                        .col(
                            ColumnDef::new(Messages::CompletionTokens)
                                .big_integer()
                                .not_null(),
                        )
                        .col(
                            ColumnDef::new(Messages::CostMicros)
                                .big_integer()
                                .not_null(),
                        )
                        .col(ColumnDef::new(Messages::FinishReason).string_len(32).null())
                        .col(ColumnDef::new(Messages::Error).text().null())
                        .col(ColumnDef::new(Messages::TableId).uuid().null())
                        .col(ColumnDef::new(Messages::TableVersion).integer().null())
                        .col(ColumnDef::new(Messages::Meta).text().not_null())
                        .foreign_key(
                            ForeignKey::create()
                                .from(Messages::Table, Messages::ConversationId)
                                .to(Conversations::Table, Conversations::Id)
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
                    .name("messages_conversation_id")
                    .table(Messages::Table)
                    .col(Messages::ConversationId)
                    .col(Messages::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("messages_owner_created")
                    .table(Messages::Table)
                    .col(Messages::OwnerId)
                    .col(Messages::CreatedAt)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}
