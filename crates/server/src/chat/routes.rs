//! HTTP for conversations: CRUD, messages, replies as JSON or Server-Sent Events, cancel,
//! regenerate; `/models` and `/usage`.

use std::convert::Infallible;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use garde::Validate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::service::{self, ChatEvent};
use crate::auth::extract::AuthUser;
use crate::db::conversations::{self as store, Conversation, Message};
use crate::db::tables as table_store;
use crate::error::{Error, OrNotFound};
use crate::http::extract::{Path, Query, ValidatedJson};
use crate::http::pagination::{Page, PageQuery};
use crate::llm::registry::ModelInfo;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_conversation, list_conversations))
        .routes(routes!(
            get_conversation,
            update_conversation,
            delete_conversation
        ))
        .routes(routes!(send_message, list_messages))
        .routes(routes!(cancel_message))
        .routes(routes!(regenerate))
        .routes(routes!(super::ws::create_ticket))
        .routes(routes!(super::ws::connect))
        .routes(routes!(list_models))
        .routes(routes!(usage))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationResponse {
    pub id: Uuid,
    /// Set from the first message when not given.
    pub title: String,
    pub model: String,
    pub system_prompt: Option<String>,
    /// The table replies work on (changes apply to it; its shape is shown to the model).
    pub current_table_id: Option<Uuid>,
    /// The target schema preset (see `/schemas`) tables in replies are given.
    pub target_schema_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Conversation> for ConversationResponse {
    fn from(c: Conversation) -> Self {
        Self {
            id: c.id,
            title: c.title,
            model: c.model,
            system_prompt: c.system_prompt,
            current_table_id: c.current_table_id,
            target_schema_id: c.target_schema_id,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageResponse {
    pub id: Uuid,
    /// `user` or `assistant`.
    pub role: String,
    pub content: String,
    /// `complete`, `streaming`, `incomplete` (stopped early) or `error`.
    pub status: String,
    pub model: Option<String>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// Cost in millionths of a US dollar.
    pub cost_micros: i64,
    pub finish_reason: Option<String>,
    pub error: Option<String>,
    pub table_id: Option<Uuid>,
    pub table_version: Option<i32>,
    /// A reasoning model's thinking, kept apart from `content` (never sent back to a model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    /// How long the model thought, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking_ms: Option<i64>,
    /// What happened with tables in this reply.
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

impl From<Message> for MessageResponse {
    fn from(m: Message) -> Self {
        Self {
            id: m.id,
            role: m.role,
            content: m.content,
            status: m.status,
            model: m.model,
            prompt_tokens: m.prompt_tokens,
            completion_tokens: m.completion_tokens,
            cost_micros: m.cost_micros,
            finish_reason: m.finish_reason,
            error: m.error,
            table_id: m.table_id,
            table_version: m.table_version,
            thinking: m.thinking,
            thinking_ms: m.thinking_ms,
            meta: serde_json::from_str(&m.meta).unwrap_or_default(),
            created_at: m.created_at,
        }
    }
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct CreateConversation {
    #[schema(max_length = 200)]
    #[garde(length(chars, max = 200))]
    pub title: Option<String>,
    /// A model name from `GET /models`; the default model when absent.
    #[schema(max_length = 100)]
    #[garde(length(chars, max = 100))]
    pub model: Option<String>,
    /// Extra instructions for the model in this conversation.
    #[schema(max_length = 20000)]
    #[garde(length(chars, max = 20000))]
    pub system_prompt: Option<String>,
    /// A target schema preset: tables in replies get exactly its columns.
    #[garde(skip)]
    pub target_schema_id: Option<Uuid>,
}

async fn find(state: &AppState, user: Uuid, id: Uuid) -> Result<Conversation, Error> {
    store::find(&state.db, user, id)
        .await?
        .or_not_found("conversation")
}

/// Start a conversation.
#[utoipa::path(post, path = "/conversations", tag = "conversations", request_body = CreateConversation,
    responses((status = 201, description = "Created", body = ConversationResponse)))]
async fn create_conversation(
    State(state): State<AppState>,
    auth: AuthUser,
    ValidatedJson(body): ValidatedJson<CreateConversation>,
) -> Result<impl IntoResponse, Error> {
    let model = body
        .model
        .unwrap_or_else(|| state.models.default_name().to_owned());
    service::model_for(&state, &model).await?;
    if let Some(schema) = body.target_schema_id
        && crate::db::schemas::find(&state.db, auth.user.id, schema)
            .await?
            .is_none()
    {
        return Err(Error::field("target_schema_id", "no such schema"));
    }
    let c = store::create(
        &state.db,
        auth.user.id,
        body.title.as_deref().map(str::trim).unwrap_or(""),
        &model,
        body.system_prompt.filter(|s| !s.trim().is_empty()),
        body.target_schema_id,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(ConversationResponse::from(c))))
}

/// The user's conversations, newest first.
#[utoipa::path(get, path = "/conversations", tag = "conversations", params(PageQuery),
    responses((status = 200, description = "Conversations", body = Page<ConversationResponse>)))]
async fn list_conversations(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(page): Query<PageQuery>,
) -> Result<Json<Page<ConversationResponse>>, Error> {
    let (limit, before) = page.parse()?;
    let rows = store::list(&state.db, auth.user.id, before, limit + 1).await?;
    Ok(Json(Page::from_rows(
        rows,
        limit,
        |c| c.id,
        ConversationResponse::from,
    )))
}

/// One conversation.
#[utoipa::path(get, path = "/conversations/{id}", tag = "conversations",
    params(("id" = Uuid, Path, description = "Conversation id")),
    responses((status = 200, description = "The conversation", body = ConversationResponse)))]
async fn get_conversation(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<ConversationResponse>, Error> {
    Ok(Json(find(&state, auth.user.id, id).await?.into()))
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct UpdateConversation {
    #[schema(min_length = 1, max_length = 200)]
    #[garde(length(chars, min = 1, max = 200))]
    pub title: Option<String>,
    #[schema(max_length = 100)]
    #[garde(length(chars, max = 100))]
    pub model: Option<String>,
    /// Empty string removes it.
    #[schema(max_length = 20000)]
    #[garde(length(chars, max = 20000))]
    pub system_prompt: Option<String>,
    /// The table replies work on (one of yours).
    #[garde(skip)]
    pub current_table_id: Option<Uuid>,
    /// A target schema preset (one of yours); the nil UUID removes it.
    #[garde(skip)]
    pub target_schema_id: Option<Uuid>,
}

/// Rename, change the model, the system prompt or the current table.
#[utoipa::path(patch, path = "/conversations/{id}", tag = "conversations", request_body = UpdateConversation,
    params(("id" = Uuid, Path, description = "Conversation id")),
    responses((status = 200, description = "Updated", body = ConversationResponse)))]
async fn update_conversation(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    ValidatedJson(body): ValidatedJson<UpdateConversation>,
) -> Result<Json<ConversationResponse>, Error> {
    find(&state, auth.user.id, id).await?;
    if let Some(model) = &body.model {
        service::model_for(&state, model).await?;
    }
    if let Some(table) = body.current_table_id
        && table_store::find(&state.db, auth.user.id, table)
            .await?
            .is_none()
    {
        return Err(Error::field("current_table_id", "no such table"));
    }
    if let Some(schema) = body.target_schema_id.filter(|id| !id.is_nil())
        && crate::db::schemas::find(&state.db, auth.user.id, schema)
            .await?
            .is_none()
    {
        return Err(Error::field("target_schema_id", "no such schema"));
    }
    store::update(
        &state.db,
        auth.user.id,
        id,
        store::Update {
            title: body.title.map(|t| t.trim().to_owned()),
            model: body.model,
            system_prompt: body
                .system_prompt
                .map(|s| Some(s).filter(|s| !s.trim().is_empty())),
            current_table_id: body.current_table_id.map(Some),
            target_schema_id: body.target_schema_id.map(|id| (!id.is_nil()).then_some(id)),
        },
    )
    .await?;
    Ok(Json(find(&state, auth.user.id, id).await?.into()))
}

/// Delete a conversation (soft: purged later).
#[utoipa::path(delete, path = "/conversations/{id}", tag = "conversations",
    params(("id" = Uuid, Path, description = "Conversation id")),
    responses((status = 204, description = "Deleted")))]
async fn delete_conversation(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, Error> {
    if !store::soft_delete(&state.db, auth.user.id, id).await? {
        return Err(Error::NotFound("conversation"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Messages, oldest first.
#[utoipa::path(get, path = "/conversations/{id}/messages", tag = "conversations",
    params(("id" = Uuid, Path, description = "Conversation id"), PageQuery),
    responses((status = 200, description = "Messages", body = Page<MessageResponse>)))]
async fn list_messages(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    Query(page): Query<PageQuery>,
) -> Result<Json<Page<MessageResponse>>, Error> {
    find(&state, auth.user.id, id).await?;
    let (limit, after) = page.parse()?;
    let rows = store::list_messages(&state.db, id, after, limit + 1).await?;
    Ok(Json(Page::from_rows(
        rows,
        limit,
        |m| m.id,
        MessageResponse::from,
    )))
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct SendMessage {
    #[garde(length(chars, min = 1))]
    #[schema(
        min_length = 1,
        example = "list the ten largest European airports with passengers in 2023"
    )]
    pub content: String,
    /// Use another model for this reply only.
    #[schema(max_length = 100)]
    #[garde(length(chars, max = 100))]
    pub model: Option<String>,
}

/// The reply as one JSON answer (when not streamed).
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplyResponse {
    pub user_message_id: Uuid,
    pub message: MessageResponse,
    /// Tables made or changed by the reply.
    #[schema(value_type = Vec<Object>)]
    pub tables: Vec<ChatEvent>,
}

fn wants_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"))
}

/// Send a message and get the model's reply: one JSON answer, or with
/// `Accept: text/event-stream` a stream of events `start`, `delta` (text), `table`, `usage`,
/// `done` and `error`. The user's message is stored first; the reply when it completes. A
/// client that disconnects mid-stream cancels the reply; what was written is kept, marked
/// `incomplete`.
#[utoipa::path(post, path = "/conversations/{id}/messages", tag = "conversations", request_body = SendMessage,
    params(("id" = Uuid, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "The reply (JSON) or its events (text/event-stream)", body = ReplyResponse),
        (status = 502, description = "The model provider failed", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 504, description = "The model provider timed out", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn send_message(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    ValidatedJson(body): ValidatedJson<SendMessage>,
) -> Result<Response, Error> {
    let max = state.config.chat.max_message_chars;
    if body.content.chars().count() > max {
        return Err(Error::field(
            "content",
            format!("must be at most {max} characters long"),
        ));
    }
    let conversation = find(&state, auth.user.id, id).await?;
    let started = service::send(
        &state,
        auth.user.id,
        &conversation,
        Some(&body.content),
        body.model.as_deref(),
    )
    .await?;
    respond(&state, auth.user.id, started, wants_stream(&headers)).await
}

/// Answer the last message again (the previous reply is removed).
#[utoipa::path(post, path = "/conversations/{id}/regenerate", tag = "conversations",
    params(("id" = Uuid, Path, description = "Conversation id")),
    responses((status = 200, description = "The new reply (JSON) or its events", body = ReplyResponse),
        (status = 409, description = "Nothing to answer yet, or a reply is being written", body = crate::http::error::Problem, content_type = "application/problem+json")))]
async fn regenerate(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<Response, Error> {
    let conversation = find(&state, auth.user.id, id).await?;
    let started = service::send(&state, auth.user.id, &conversation, None, None).await?;
    respond(&state, auth.user.id, started, wants_stream(&headers)).await
}

async fn respond(
    state: &AppState,
    user: Uuid,
    started: service::Started,
    stream: bool,
) -> Result<Response, Error> {
    if stream {
        let events = futures_util::stream::unfold(started.events, |mut rx| async move {
            let event = rx.recv().await?;
            let name = match &event {
                ChatEvent::Start { .. } => "start",
                ChatEvent::Delta { .. } => "delta",
                ChatEvent::Thinking { .. } => "thinking",
                ChatEvent::Table { .. } => "table",
                ChatEvent::Job { .. } => "job",
                ChatEvent::Usage { .. } => "usage",
                ChatEvent::Done { .. } => "done",
                ChatEvent::Error { .. } => "error",
            };
            let sse = Event::default()
                .event(name)
                .json_data(&event)
                .unwrap_or_else(|_| Event::default().event("error"));
            Some((Ok::<_, Infallible>(sse), rx))
        });
        return Ok(Sse::new(events)
            .keep_alive(KeepAlive::default())
            .into_response());
    }
    let mut rx = started.events;
    let mut tables = Vec::new();
    while let Some(event) = rx.recv().await {
        match event {
            ChatEvent::Table { .. } => tables.push(event),
            ChatEvent::Done { .. } => break,
            _ => {}
        }
    }
    let message = store::find_message(&state.db, user, started.message_id)
        .await?
        .or_not_found("message")?;
    Ok(Json(ReplyResponse {
        user_message_id: started.user_message_id,
        message: message.into(),
        tables,
    })
    .into_response())
}

/// Stop a reply that is being written; what was written is kept, marked `incomplete`.
#[utoipa::path(post, path = "/conversations/{id}/messages/{message_id}/cancel", tag = "conversations",
    params(("id" = Uuid, Path, description = "Conversation id"), ("message_id" = Uuid, Path, description = "The reply")),
    responses((status = 202, description = "Cancelling"), (status = 409, description = "Not running", body = crate::http::error::Problem, content_type = "application/problem+json")))]
async fn cancel_message(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, message_id)): Path<(Uuid, Uuid)>,
) -> Result<StatusCode, Error> {
    find(&state, auth.user.id, id).await?;
    let message = store::find_message(&state.db, auth.user.id, message_id)
        .await?
        .filter(|m| m.conversation_id == id)
        .or_not_found("message")?;
    if message.status != "streaming" {
        return Err(Error::conflict(
            "not-running",
            "This reply is not being written.",
        ));
    }
    // Running here: stopped at once. Elsewhere (another instance behind the balancer): the
    // instance writing it sees the request within half a second.
    if !state.runs.cancel(message_id) {
        store::request_cancel(&state.db, message_id).await?;
    }
    Ok(StatusCode::ACCEPTED)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelsResponse {
    pub items: Vec<ModelInfo>,
}

/// Models that conversations can use.
#[utoipa::path(get, path = "/models", tag = "conversations",
    responses((status = 200, description = "Models", body = ModelsResponse)))]
async fn list_models(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<ModelsResponse>, Error> {
    let own_keys = crate::llm::keys::models_with_own_key(&state, auth.user.id).await?;
    Ok(Json(ModelsResponse {
        items: state.models.list(&own_keys).await,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Days back from today (1 to 366, default 30).
    #[param(minimum = 1, maximum = 366)]
    pub days: Option<u32>,
}

/// Tokens and cost per day and model.
#[utoipa::path(get, path = "/usage", tag = "conversations", params(UsageQuery),
    responses((status = 200, description = "Usage", body = crate::chat::usage::UsageResponse)))]
async fn usage(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(q): Query<UsageQuery>,
) -> Result<Json<crate::chat::usage::UsageResponse>, Error> {
    Ok(Json(
        crate::chat::usage::usage_report(state.quotas(), auth.user.id, q.days).await?,
    ))
}
