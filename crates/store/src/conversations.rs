//! Conversations and messages. Every query filters by owner and skips soft-deleted rows.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use uuid::Uuid;

use super::entity::{conversation, message};

pub use conversation::Model as Conversation;
pub use message::Model as Message;

pub async fn create(
    db: &impl ConnectionTrait,
    owner_id: Uuid,
    title: &str,
    model: &str,
    system_prompt: Option<String>,
    target_schema_id: Option<Uuid>,
) -> Result<Conversation, DbErr> {
    let now = Utc::now();
    conversation::ActiveModel {
        id: Set(Uuid::now_v7()),
        owner_id: Set(owner_id),
        title: Set(title.to_owned()),
        model: Set(model.to_owned()),
        system_prompt: Set(system_prompt),
        current_table_id: Set(None),
        target_schema_id: Set(target_schema_id),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
    }
    .insert(db)
    .await
}

pub async fn find(
    db: &impl ConnectionTrait,
    owner_id: Uuid,
    id: Uuid,
) -> Result<Option<Conversation>, DbErr> {
    conversation::Entity::find_by_id(id)
        .filter(conversation::Column::OwnerId.eq(owner_id))
        .filter(conversation::Column::DeletedAt.is_null())
        .one(db)
        .await
}

pub async fn list(
    db: &impl ConnectionTrait,
    owner_id: Uuid,
    before: Option<Uuid>,
    limit: u64,
) -> Result<Vec<Conversation>, DbErr> {
    let mut q = conversation::Entity::find()
        .filter(conversation::Column::OwnerId.eq(owner_id))
        .filter(conversation::Column::DeletedAt.is_null())
        .order_by_desc(conversation::Column::Id)
        .limit(limit);
    if let Some(before) = before {
        q = q.filter(conversation::Column::Id.lt(before));
    }
    q.all(db).await
}

/// Fields a user may change.
#[derive(Default)]
pub struct Update {
    pub title: Option<String>,
    pub model: Option<String>,
    pub system_prompt: Option<Option<String>>,
    pub current_table_id: Option<Option<Uuid>>,
    pub target_schema_id: Option<Option<Uuid>>,
}

pub async fn update(
    db: &impl ConnectionTrait,
    owner_id: Uuid,
    id: Uuid,
    update: Update,
) -> Result<bool, DbErr> {
    let mut q = conversation::Entity::update_many()
        .col_expr(conversation::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(conversation::Column::Id.eq(id))
        .filter(conversation::Column::OwnerId.eq(owner_id))
        .filter(conversation::Column::DeletedAt.is_null());
    if let Some(title) = update.title {
        q = q.col_expr(conversation::Column::Title, Expr::value(title));
    }
    if let Some(model) = update.model {
        q = q.col_expr(conversation::Column::Model, Expr::value(model));
    }
    if let Some(prompt) = update.system_prompt {
        q = q.col_expr(conversation::Column::SystemPrompt, Expr::value(prompt));
    }
    if let Some(table) = update.current_table_id {
        q = q.col_expr(conversation::Column::CurrentTableId, Expr::value(table));
    }
    if let Some(schema) = update.target_schema_id {
        q = q.col_expr(conversation::Column::TargetSchemaId, Expr::value(schema));
    }
    Ok(q.exec(db).await?.rows_affected == 1)
}

pub async fn soft_delete(
    db: &impl ConnectionTrait,
    owner_id: Uuid,
    id: Uuid,
) -> Result<bool, DbErr> {
    let now = Utc::now();
    let r = conversation::Entity::update_many()
        .col_expr(conversation::Column::DeletedAt, Expr::value(now))
        .col_expr(conversation::Column::UpdatedAt, Expr::value(now))
        .filter(conversation::Column::Id.eq(id))
        .filter(conversation::Column::OwnerId.eq(owner_id))
        .filter(conversation::Column::DeletedAt.is_null())
        .exec(db)
        .await?;
    Ok(r.rows_affected == 1)
}

pub struct NewMessage<'a> {
    pub conversation_id: Uuid,
    pub owner_id: Uuid,
    pub role: &'a str,
    pub content: &'a str,
    pub status: &'a str,
    pub model: Option<&'a str>,
}

pub async fn insert_message(
    db: &impl ConnectionTrait,
    m: NewMessage<'_>,
) -> Result<Message, DbErr> {
    let now = Utc::now();
    message::ActiveModel {
        id: Set(Uuid::now_v7()),
        conversation_id: Set(m.conversation_id),
        owner_id: Set(m.owner_id),
        role: Set(m.role.to_owned()),
        content: Set(m.content.to_owned()),
        status: Set(m.status.to_owned()),
        model: Set(m.model.map(str::to_owned)),
        prompt_tokens: Set(0),
        completion_tokens: Set(0),
        cost_micros: Set(0),
        finish_reason: Set(None),
        error: Set(None),
        table_id: Set(None),
        table_version: Set(None),
        thinking: Set(None),
        thinking_ms: Set(None),
        meta: Set("{}".to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
    }
    .insert(db)
    .await
}

/// The final state of an assistant message.
pub struct Finished<'a> {
    pub content: &'a str,
    pub status: &'a str,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_micros: i64,
    pub finish_reason: Option<&'a str>,
    pub error: Option<&'a str>,
    pub table_id: Option<Uuid>,
    pub table_version: Option<i32>,
    pub thinking: Option<&'a str>,
    pub thinking_ms: Option<i64>,
    pub meta: &'a serde_json::Value,
}

pub async fn finish_message(
    db: &impl ConnectionTrait,
    id: Uuid,
    f: Finished<'_>,
) -> Result<(), DbErr> {
    message::Entity::update_many()
        .col_expr(message::Column::Content, Expr::value(f.content))
        .col_expr(message::Column::Status, Expr::value(f.status))
        .col_expr(message::Column::PromptTokens, Expr::value(f.prompt_tokens))
        .col_expr(
            message::Column::CompletionTokens,
            Expr::value(f.completion_tokens),
        )
        .col_expr(message::Column::CostMicros, Expr::value(f.cost_micros))
        .col_expr(message::Column::FinishReason, Expr::value(f.finish_reason))
        .col_expr(message::Column::Error, Expr::value(f.error))
        .col_expr(message::Column::TableId, Expr::value(f.table_id))
        .col_expr(message::Column::TableVersion, Expr::value(f.table_version))
        .col_expr(message::Column::Thinking, Expr::value(f.thinking))
        .col_expr(message::Column::ThinkingMs, Expr::value(f.thinking_ms))
        .col_expr(message::Column::Meta, Expr::value(f.meta.to_string()))
        .col_expr(message::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(message::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn find_message(
    db: &impl ConnectionTrait,
    owner_id: Uuid,
    id: Uuid,
) -> Result<Option<Message>, DbErr> {
    message::Entity::find_by_id(id)
        .filter(message::Column::OwnerId.eq(owner_id))
        .filter(message::Column::DeletedAt.is_null())
        .one(db)
        .await
}

/// Messages oldest first, `limit` after the cursor.
pub async fn list_messages(
    db: &impl ConnectionTrait,
    conversation_id: Uuid,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<Message>, DbErr> {
    let mut q = message::Entity::find()
        .filter(message::Column::ConversationId.eq(conversation_id))
        .filter(message::Column::DeletedAt.is_null())
        .order_by_asc(message::Column::Id)
        .limit(limit);
    if let Some(after) = after {
        q = q.filter(message::Column::Id.gt(after));
    }
    q.all(db).await
}

/// The newest `limit` messages, newest first (for the model's context).
pub async fn recent_messages(
    db: &impl ConnectionTrait,
    conversation_id: Uuid,
    limit: u64,
) -> Result<Vec<Message>, DbErr> {
    message::Entity::find()
        .filter(message::Column::ConversationId.eq(conversation_id))
        .filter(message::Column::DeletedAt.is_null())
        .order_by_desc(message::Column::Id)
        .limit(limit)
        .all(db)
        .await
}

/// Replaces what is recorded about a message (`meta`): for a user's message, the tables
/// made from it.
pub async fn set_message_meta(
    db: &impl ConnectionTrait,
    id: Uuid,
    meta: &serde_json::Value,
) -> Result<(), DbErr> {
    message::Entity::update_many()
        .col_expr(message::Column::Meta, Expr::value(meta.to_string()))
        .col_expr(message::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(message::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn soft_delete_message(db: &impl ConnectionTrait, id: Uuid) -> Result<(), DbErr> {
    let now = Utc::now();
    message::Entity::update_many()
        .col_expr(message::Column::DeletedAt, Expr::value(now))
        .col_expr(message::Column::UpdatedAt, Expr::value(now))
        .filter(message::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Tokens a user's messages used since `since`.
pub async fn tokens_since(
    db: &impl ConnectionTrait,
    owner_id: Uuid,
    since: DateTime<Utc>,
) -> Result<i64, DbErr> {
    let rows: Vec<(i64, i64)> = message::Entity::find()
        .select_only()
        .column(message::Column::PromptTokens)
        .column(message::Column::CompletionTokens)
        .filter(message::Column::OwnerId.eq(owner_id))
        .filter(message::Column::CreatedAt.gte(since))
        .filter(message::Column::Role.eq("assistant"))
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.iter().map(|(p, c)| p + c).sum())
}

/// Assistant messages of a user since `since` with their model, tokens, cost and day.
pub async fn usage_rows(
    db: &impl ConnectionTrait,
    owner_id: Uuid,
    since: DateTime<Utc>,
) -> Result<Vec<(DateTime<Utc>, Option<String>, i64, i64, i64)>, DbErr> {
    message::Entity::find()
        .select_only()
        .column(message::Column::CreatedAt)
        .column(message::Column::Model)
        .column(message::Column::PromptTokens)
        .column(message::Column::CompletionTokens)
        .column(message::Column::CostMicros)
        .filter(message::Column::OwnerId.eq(owner_id))
        .filter(message::Column::Role.eq("assistant"))
        .filter(message::Column::CreatedAt.gte(since))
        .into_tuple()
        .all(db)
        .await
}

/// Asks the instance writing this reply to stop it (whichever instance that is). Asking twice
/// is asking once.
pub async fn request_cancel(db: &impl ConnectionTrait, message_id: Uuid) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    db.execute_raw(super::stmt(
        backend,
        "INSERT INTO reply_cancels (message_id, requested_at) VALUES (?, ?) \
         ON CONFLICT (message_id) DO NOTHING",
        vec![message_id.into(), Utc::now().timestamp().into()],
    ))
    .await?;
    Ok(())
}

/// Marks a reply as being written now (see `end_abandoned`).
pub async fn touch_streaming(db: &impl ConnectionTrait, message_id: Uuid) -> Result<(), DbErr> {
    message::Entity::update_many()
        .col_expr(message::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(message::Column::Id.eq(message_id))
        .filter(message::Column::Status.eq("streaming"))
        .exec(db)
        .await?;
    Ok(())
}

/// Ends as `incomplete` every reply still `streaming` that no server marked as being
/// written since `cutoff`: its server stopped (killed, crashed) before it was done. Returns
/// how many.
pub async fn end_abandoned(db: &impl ConnectionTrait, cutoff: DateTime<Utc>) -> Result<u64, DbErr> {
    let r = message::Entity::update_many()
        .col_expr(message::Column::Status, Expr::value("incomplete"))
        .col_expr(
            message::Column::Error,
            Expr::value("The server writing this reply stopped before it was done; ask again."),
        )
        .col_expr(message::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(message::Column::Status.eq("streaming"))
        .filter(message::Column::UpdatedAt.lt(cutoff))
        .exec(db)
        .await?;
    Ok(r.rows_affected)
}

/// Whether a stop was asked for this reply.
pub async fn cancel_requested(db: &impl ConnectionTrait, message_id: Uuid) -> Result<bool, DbErr> {
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(super::stmt(
            backend,
            "SELECT 1 AS hit FROM reply_cancels WHERE message_id = ?",
            vec![message_id.into()],
        ))
        .await?;
    Ok(row.is_some())
}

/// Forgets the stop request of a reply that ended; with `None`, every request older than a
/// day (left by an instance that died mid-reply).
pub async fn clear_cancels(
    db: &impl ConnectionTrait,
    message_id: Option<Uuid>,
) -> Result<u64, DbErr> {
    let backend = db.get_database_backend();
    let (sql, values) = match message_id {
        Some(id) => (
            "DELETE FROM reply_cancels WHERE message_id = ?",
            vec![id.into()],
        ),
        None => (
            "DELETE FROM reply_cancels WHERE requested_at < ?",
            vec![(Utc::now().timestamp() - 86_400).into()],
        ),
    };
    Ok(db
        .execute_raw(super::stmt(backend, sql, values))
        .await?
        .rows_affected())
}
