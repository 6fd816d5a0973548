//! Sending a message: the user's message is stored first; a task then drives the model's
//! stream, forwarding events to whoever listens (SSE, WebSocket or a JSON answer) and storing
//! the reply when it completes. If the listener goes away or the reply is cancelled, the
//! upstream request is dropped (cancelled) and the partial reply is kept, marked incomplete.

use std::time::Duration;

use futures_util::StreamExt;
use serde::Deserialize;
use serde::Serialize;
use sheetgpt_core::extract;
use sheetgpt_core::version::Op;
use tokio::sync::{mpsc, oneshot, watch};
use utoipa::ToSchema;
use uuid::Uuid;

use super::context;
use crate::db::conversations::{self as store, Conversation, Finished, NewMessage};
use crate::db::tables as table_store;
use crate::error::Error;
use crate::llm::registry::{ModelEntry, Unresolved};
use crate::llm::{ChatMessage, ChatRequest, FinishReason, LlmError, Role, StreamEvent, Usage};
use crate::state::AppState;
use crate::tables::service as tables;

/// Events of a reply, in the order they happen.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ChatEvent {
    /// The reply started: ids of the stored user message and of the reply.
    Start {
        user_message_id: Uuid,
        message_id: Uuid,
        model: String,
    },
    /// Text to append to the reply.
    Delta { text: String },
    /// The model's thinking (reasoning models), apart from the reply: shown folded, never
    /// searched for tables or changes, never sent back to the model.
    Thinking { text: String },
    /// A table made from the reply or from a table pasted in the user's message, or the
    /// current table changed by the reply.
    Table {
        table_id: Uuid,
        version: i32,
        /// `created` or `changed`.
        kind: &'static str,
        /// `message` (pasted by the user, stored as given) or `reply`.
        source: &'static str,
        name: String,
        row_count: i64,
        /// False when the reply was still cut at the output limit after continuing.
        complete: bool,
    },
    /// A job was queued for the reply (a change of every row of a table past
    /// `tables.max_sync_rows`): follow it at `/api/v1/jobs/{job_id}`.
    Job {
        job_id: Uuid,
        table_id: Uuid,
        /// The job's kind (`change`).
        kind: &'static str,
    },
    Usage {
        prompt_tokens: u32,
        completion_tokens: u32,
        /// Estimated when the provider reported none.
        estimated: bool,
        cost_micros: i64,
    },
    /// The reply is stored.
    Done {
        message_id: Uuid,
        /// `complete`, `incomplete`, or `error`: the model failed, or what the reply asked for
        /// (a change to the table, storing a pasted table) was not done; `error` says why.
        status: String,
        finish_reason: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// Present when the model did not see the whole conversation (see `meta.context`).
        #[serde(skip_serializing_if = "Option::is_none")]
        context: Option<context::Report>,
    },
    /// Something went wrong mid-stream; the partial reply is kept.
    Error { message: String },
}

/// How often a running reply looks for a stop asked for on another instance.
const REMOTE_CANCEL_POLL: Duration = Duration::from_millis(500);

/// While this instance writes the reply, looks for a stop asked through another instance
/// (`reply_cancels`) and passes it on; clears the request when the reply has ended.
async fn watch_remote_cancel(state: AppState, id: Uuid) {
    let mut tick = tokio::time::interval(REMOTE_CANCEL_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The reply is marked as being written every quarter of `chat.abandoned_reply_secs`, so
    // that no server ends it as abandoned while this one writes it.
    let touch_every = Duration::from_secs(state.config.chat.abandoned_reply_secs) / 4;
    let mut touched = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        if !state.runs.is_running(id) {
            break;
        }
        if touched.elapsed() >= touch_every {
            // In turn with the other writes (SQLite); tried again at the next tick if it fails.
            let touch = async {
                let _turn = state.writes.turn().await?;
                store::touch_streaming(&state.db, id).await
            };
            match touch.await {
                Ok(()) => touched = tokio::time::Instant::now(),
                Err(err) => tracing::warn!(error = %err, "could not mark a reply as being written"),
            }
        }
        match store::cancel_requested(&state.db, id).await {
            Ok(true) => {
                tracing::info!(message.id = %id, "reply stopped from another instance");
                state.runs.cancel(id);
            }
            Ok(false) => {}
            Err(err) => tracing::warn!(error = %err, "could not look for a stop request"),
        }
    }
    if let Err(err) = store::clear_cancels(&state.db, Some(id)).await {
        tracing::warn!(error = %err, "could not clear a stop request");
    }
}

/// The model a conversation or message names: configured, or listed by the server of a
/// `discover = true` entry (`local/qwen3`). A discovered model its server no longer lists is
/// a 422 `model-unavailable`, not a failure of the request.
pub async fn model_for(state: &AppState, name: &str) -> Result<ModelEntry, Error> {
    match state.models.resolve(name).await {
        Ok(entry) => Ok(entry),
        Err(Unresolved::Unknown) => Err(Error::field(
            "model",
            format!("no model named `{name}`; see GET /api/v1/models"),
        )),
        Err(Unresolved::NotOffered(why)) => Err(Error::Unprocessable {
            code: "model-unavailable",
            detail: format!("{why}; pick another model (GET /api/v1/models lists them)."),
            errors: Vec::new(),
        }),
    }
}

fn llm_error(err: &LlmError, entry: &ModelEntry) -> Error {
    match err {
        LlmError::ContextTooLong(said) => Error::Unprocessable {
            code: "context-too-long",
            detail: format!(
                "This conversation is too long for the model {}'s context window (its server \
                 said: {said}). Start a new conversation, or pick a model with a larger window. \
                 SheetGPT fits the conversation into the {} tokens configured for this model; \
                 if the server's window is smaller, an administrator can lower \
                 models.{}.context_window to match it.",
                entry.name, entry.context_window, entry.name
            ),
            errors: Vec::new(),
        },
        LlmError::RateLimited { retry_after } => Error::TooManyRequests {
            retry_after_secs: retry_after.map_or(30, |d| d.as_secs().max(1)),
            detail: "The model provider is rate limiting requests; try again shortly.".to_owned(),
        },
        LlmError::Timeout(_) => Error::Gateway {
            timeout: true,
            detail: err.to_string(),
        },
        _ => Error::Gateway {
            timeout: false,
            detail: err.to_string(),
        },
    }
}

/// A reply that has started: its events arrive on `events`.
pub struct Started {
    pub events: mpsc::Receiver<ChatEvent>,
    pub user_message_id: Uuid,
    pub message_id: Uuid,
}

/// Stores the user's message (unless regenerating) and starts the reply. Returns once the
/// model has started answering, or with the error that kept it from starting.
#[tracing::instrument(skip_all, fields(user.id = %user, conversation.id = %conversation.id))]
pub async fn send(
    state: &AppState,
    user: Uuid,
    conversation: &Conversation,
    content: Option<&str>,
    model_name: Option<&str>,
) -> Result<Started, Error> {
    let mut conversation = conversation.clone();
    let model_name = model_name.unwrap_or(&conversation.model).to_owned();
    let entry =
        crate::llm::keys::model_for_user(state, user, &model_for(state, &model_name).await?)
            .await?;
    crate::quotas::check_tokens(state.quotas(), user).await?;

    let target = match conversation.target_schema_id {
        Some(id) => match crate::db::schemas::find(&state.db, user, id).await? {
            Some(preset) => Some(Target {
                columns: crate::db::schemas::columns(&preset)?,
                bounds: crate::db::schemas::bounds(&preset),
            }),
            None => None,
        },
        None => None,
    };

    let (user_message, pasted, pasted_now) = match content {
        Some(text) => {
            let m = store::insert_message(
                &state.db,
                NewMessage {
                    conversation_id: conversation.id,
                    owner_id: user,
                    role: "user",
                    content: text,
                    status: "complete",
                    model: None,
                },
            )
            .await?;
            if conversation.title.is_empty() {
                let title = auto_title(text);
                store::update(
                    &state.db,
                    user,
                    conversation.id,
                    store::Update {
                        title: Some(title.clone()),
                        ..store::Update::default()
                    },
                )
                .await?;
                // Tables made from this message and its reply are named after the conversation.
                conversation.title = title;
            }
            let pasted = store_pasted_tables(
                state,
                user,
                &conversation,
                text,
                target.as_ref().map(|t| t.columns.as_slice()),
            )
            .await;
            if !pasted.is_empty() {
                store::set_message_meta(
                    &state.db,
                    m.id,
                    &serde_json::json!({ "pasted_tables": pasted }),
                )
                .await?;
                if let Some(id) = pasted.iter().rev().find_map(|p| p.table_id) {
                    store::update(
                        &state.db,
                        user,
                        conversation.id,
                        store::Update {
                            current_table_id: Some(Some(id)),
                            ..store::Update::default()
                        },
                    )
                    .await?;
                    conversation.current_table_id = Some(id);
                }
            }
            (m, pasted, true)
        }
        None => {
            // Regenerate: the last user message is the prompt; drop the reply after it.
            let recent = store::recent_messages(&state.db, conversation.id, 2).await?;
            let Some(last_user) = recent.iter().find(|m| m.role == "user").cloned() else {
                return Err(Error::conflict(
                    "nothing-to-regenerate",
                    "The conversation has no message to answer yet.",
                ));
            };
            for m in recent
                .iter()
                .filter(|m| m.role == "assistant" && m.id > last_user.id)
            {
                store::soft_delete_message(&state.db, m.id).await?;
            }
            let pasted = pasted_of(&last_user.meta);
            (last_user, pasted, false)
        }
    };

    // The context: newest messages first (the new one included), the current table's shape.
    // Pasted tables were stored from the whole message above; what the model is sent of them
    // may be a summary, and what was left out is reported in the reply's `meta.context`.
    let history: Vec<context::Turn> = store::recent_messages(&state.db, conversation.id, 200)
        .await?
        .into_iter()
        .filter(|m| !m.content.is_empty())
        .map(turn_of)
        .collect();
    let table_context = match conversation.current_table_id {
        Some(id) => table_preview(state, user, id).await?,
        None => None,
    };
    let built = context::build(
        conversation.system_prompt.as_deref(),
        table_context.as_deref(),
        &history,
        entry.context_window,
        state.config.chat.reply_max_tokens,
        &|text: &str| entry.tokenizer.count(text),
    );
    let messages = built.messages;
    let context_report = built.report;
    let prompt_estimate: u32 = messages
        .iter()
        .map(|m| entry.tokenizer.count(&m.content))
        .sum();
    let request = ChatRequest {
        messages,
        max_tokens: Some(state.config.chat.reply_max_tokens),
        temperature: None,
        response_schema: target
            .as_ref()
            .map(|t| sheetgpt_core::target::json_schema(&t.columns, t.bounds)),
    };

    let reply = store::insert_message(
        &state.db,
        NewMessage {
            conversation_id: conversation.id,
            owner_id: user,
            role: "assistant",
            content: "",
            status: "streaming",
            model: Some(&model_name),
        },
    )
    .await?;

    let (started_tx, started_rx) = oneshot::channel();
    let (events_tx, events_rx) = mpsc::channel(256);
    let cancel = state.runs.register(reply.id);
    tokio::spawn(watch_remote_cancel(state.clone(), reply.id));
    let entry_for_errors = entry.clone();
    let dates = user_date_order(state, user).await;
    let run = Run {
        state: state.clone(),
        user,
        dates,
        conversation: conversation.clone(),
        entry,
        message_id: reply.id,
        user_message_id: user_message.id,
        prompt_estimate,
        cancel,
        target,
        pasted,
        pasted_now,
        context_report,
        structured_form: None,
    };
    tokio::spawn(run.drive(request, started_tx, events_tx));
    match started_rx.await {
        Ok(Ok(())) => Ok(Started {
            events: events_rx,
            user_message_id: user_message.id,
            message_id: reply.id,
        }),
        Ok(Err(err)) => Err(llm_error(&err, &entry_for_errors)),
        Err(_) => Err(Error::Internal(anyhow::anyhow!("reply task ended early"))),
    }
}

/// A table found in a user's message, as recorded in the message's `meta.pasted_tables`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct PastedTable {
    /// Byte range of the table in the message.
    span: (usize, usize),
    format: serde_json::Value,
    /// The stored table; none when it could not be stored (`error` says why).
    table_id: Option<Uuid>,
    name: String,
    rows: usize,
    columns: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// How the table was matched to the conversation's target columns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    issues: Vec<String>,
    /// What the model is sent in the table's place when the message is too long for it.
    summary: String,
    /// The stored content's fingerprint, to know a reply that repeats the table.
    #[serde(skip)]
    fingerprint: Option<u64>,
}

/// A hash of a table's column names, types and cells (within this process).
fn fingerprint(table: &sheetgpt_core::table::Table) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for c in &table.columns {
        c.name.hash(&mut h);
        c.ty.hash(&mut h);
    }
    for row in &table.rows {
        for cell in row {
            cell.to_json().to_string().hash(&mut h);
        }
        0xFFu8.hash(&mut h);
    }
    h.finish()
}

/// Longest sample of a pasted table sent to the model in its summary, in characters.
const SUMMARY_SAMPLE_CHARS: usize = 4_000;

/// Stores every table in the user's message, read from the whole message (never from what the
/// model is sent of it), exactly as given; in a conversation with target columns, matched to
/// them (what does not match is listed in `issues`).
/// How the user's locale writes dates that read both ways (`03/04/2024`); month first when
/// the user has none or cannot be read now.
async fn user_date_order(state: &AppState, user: Uuid) -> sheetgpt_core::table::DateOrder {
    let locale = match crate::db::users::find_by_id(&state.db, user).await {
        Ok(found) => found.and_then(|u| u.locale),
        Err(err) => {
            tracing::warn!(error = %err, "cannot read the user's locale; dates read month first");
            None
        }
    };
    sheetgpt_core::locale::date_order(locale.as_deref())
}

async fn store_pasted_tables(
    state: &AppState,
    user: Uuid,
    conversation: &Conversation,
    text: &str,
    target: Option<&[sheetgpt_core::table::Column]>,
) -> Vec<PastedTable> {
    let owned = text.to_owned();
    let dates = user_date_order(state, user).await;
    // Large pastes take real CPU to parse: keep it off the async workers.
    let found =
        match tokio::task::spawn_blocking(move || extract::extract_tables_reading(&owned, dates))
            .await
        {
            Ok(found) => found,
            Err(err) => {
                tracing::error!(error = %err, "reading the tables of a message failed");
                return Vec::new();
            }
        };
    let base = if conversation.title.is_empty() {
        "Table from chat".to_owned()
    } else {
        conversation.title.clone()
    };
    let mut out = Vec::with_capacity(found.len());
    for (i, item) in found.into_iter().enumerate() {
        let name = if i == 0 {
            base.clone()
        } else {
            format!("{base} ({})", i + 1)
        };
        let (table, issues) = match target {
            Some(target) => sheetgpt_core::target::conform(&item.table, target),
            None => (item.table, Vec::new()),
        };
        let summary = sheetgpt_core::paste::summarize(
            &name,
            &table,
            state.config.chat.table_sample_rows,
            SUMMARY_SAMPLE_CHARS,
        );
        let (rows, columns) = (table.rows.len(), table.columns.len());
        let print = fingerprint(&table);
        let mut pasted = PastedTable {
            span: (item.span.start, item.span.end),
            format: serde_json::to_value(item.format).unwrap_or_default(),
            table_id: None,
            name: name.clone(),
            rows,
            columns,
            error: None,
            issues,
            summary,
            fingerprint: Some(print),
        };
        match tables::create(state, user, &name, table, "pasted in a message").await {
            Ok(record) => {
                pasted.table_id = Some(record.id);
                pasted.name = record.name;
            }
            Err(e) => pasted.error = Some(problem_text(&e)),
        }
        out.push(pasted);
    }
    out
}

/// The pasted tables recorded in a user message's meta.
fn pasted_of(meta: &str) -> Vec<PastedTable> {
    serde_json::from_str::<serde_json::Value>(meta)
        .ok()
        .and_then(|mut v| v.get_mut("pasted_tables").map(serde_json::Value::take))
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

/// A stored message as the context builder takes it: a user's message with pasted tables
/// also in its summarised form.
fn turn_of(m: crate::db::conversations::Message) -> context::Turn {
    let role = if m.role == "assistant" {
        Role::Assistant
    } else {
        Role::User
    };
    let pasted = if role == Role::User {
        pasted_of(&m.meta)
    } else {
        Vec::new()
    };
    let summarised = (!pasted.is_empty()).then(|| {
        let spans: Vec<(std::ops::Range<usize>, String)> = pasted
            .iter()
            .filter(|p| {
                m.content.is_char_boundary(p.span.0) && m.content.is_char_boundary(p.span.1)
            })
            .map(|p| (p.span.0..p.span.1, p.summary.clone()))
            .collect();
        sheetgpt_core::paste::replace_spans(&m.content, &spans)
    });
    context::Turn {
        role,
        content: m.content,
        summarised,
    }
}

fn auto_title(text: &str) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("New conversation");
    let mut title: String = line.chars().take(60).collect();
    if line.chars().count() > 60 {
        title.push('…');
    }
    title
}

/// The current table's columns and first rows, as Markdown with row ids, for the model.
async fn table_preview(state: &AppState, user: Uuid, id: Uuid) -> Result<Option<String>, Error> {
    let Ok(loaded) = tables::load(state, user, id, None).await else {
        return Ok(None);
    };
    let limit = state.config.chat.table_sample_rows as u64;
    let rows = table_store::page(&state.db, id, loaded.version, true, &[], None, limit).await?;
    let mut out = format!(
        "\"{}\" (version {}, {} rows). Columns: {}.\n\n| row |",
        loaded.table.name,
        loaded.version,
        loaded.table.row_count,
        loaded
            .schema
            .columns
            .iter()
            .map(|c| format!("{} ({})", c.name, c.ty))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for c in &loaded.schema.columns {
        out.push_str(&format!(" {} |", c.name.replace('|', "\\|")));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(loaded.schema.columns.len()));
    for raw in rows.into_iter().take(state.config.chat.table_sample_rows) {
        let row = raw.into_row(&loaded.schema);
        out.push_str(&format!("\n| {} |", row.id));
        for c in &loaded.schema.columns {
            out.push_str(&format!(
                " {} |",
                row.get(c)
                    .to_string()
                    .replace('|', "\\|")
                    .replace('\n', " ")
            ));
        }
    }
    if loaded.table.row_count > state.config.chat.table_sample_rows as i64 {
        out.push_str("\n(more rows not shown)");
    }
    Ok(Some(out))
}

struct Run {
    state: AppState,
    user: Uuid,
    /// How the user's locale writes dates that read both ways.
    dates: sheetgpt_core::table::DateOrder,
    conversation: Conversation,
    entry: ModelEntry,
    message_id: Uuid,
    user_message_id: Uuid,
    prompt_estimate: u32,
    cancel: watch::Receiver<bool>,
    /// The conversation's target columns, when it has a schema preset.
    target: Option<Target>,
    /// Tables in the user's message, stored before the model was asked.
    pasted: Vec<PastedTable>,
    /// Whether they were stored for this reply (false when regenerating).
    pasted_now: bool,
    /// What the model was not sent.
    context_report: context::Report,
    /// The form structured output was asked in, as the model's stream said.
    structured_form: Option<crate::llm::StructuredForm>,
}

/// The columns a conversation's tables must have, and how many rows.
struct Target {
    columns: Vec<sheetgpt_core::table::Column>,
    bounds: sheetgpt_core::target::RowBounds,
}

/// The thinking of a reasoning model's reply, and how long it took.
#[derive(Default)]
struct Thought {
    text: String,
    started: Option<std::time::Instant>,
    ended: Option<std::time::Instant>,
}

impl Thought {
    fn millis(&self) -> Option<i64> {
        let started = self.started?;
        let ended = self.ended.unwrap_or_else(std::time::Instant::now);
        i64::try_from(ended.duration_since(started).as_millis()).ok()
    }
}

impl Run {
    async fn drive(
        mut self,
        request: ChatRequest,
        started: oneshot::Sender<Result<(), LlmError>>,
        events: mpsc::Sender<ChatEvent>,
    ) {
        let stream = match self.entry.model.stream(request.clone()).await {
            Ok(s) => s,
            Err(err) => {
                tracing::warn!(error = %err, "model did not start");
                self.store(
                    "",
                    &Thought::default(),
                    "error",
                    Usage::default(),
                    None,
                    Some(&err.to_string()),
                    TableOutcome::default(),
                )
                .await;
                let _ = started.send(Err(err));
                self.state.runs.remove(self.message_id);
                return;
            }
        };
        let _ = started.send(Ok(()));
        let _ = events
            .send(ChatEvent::Start {
                user_message_id: self.user_message_id,
                message_id: self.message_id,
                model: self.entry.name.clone(),
            })
            .await;
        let mut text = String::new();
        let mut thought = Thought::default();
        let mut usage: Option<Usage> = None;
        let mut pumped = self
            .pump(stream, &mut text, &mut thought, &mut usage, &events)
            .await;
        // A reply cut at the output limit is asked to go on, so long tables are not silently
        // cut; what the continuations write is streamed as part of the same reply.
        let mut continuations = 0;
        while pumped.finish == Some(FinishReason::Length)
            && pumped.failure.is_none()
            && !pumped.listener_gone
            && continuations < self.state.config.chat.max_continuations
        {
            continuations += 1;
            let mut next = request.clone();
            next.messages.push(ChatMessage {
                role: Role::Assistant,
                content: text.clone(),
            });
            next.messages.push(ChatMessage {
                role: Role::User,
                content: CONTINUE_PROMPT.to_owned(),
            });
            match self.entry.model.stream(next).await {
                Ok(stream) => {
                    pumped = self
                        .pump(stream, &mut text, &mut thought, &mut usage, &events)
                        .await;
                }
                Err(err) => {
                    pumped.failure = Some(err.to_string());
                    let _ = events
                        .send(ChatEvent::Error {
                            message: err.to_string(),
                        })
                        .await;
                }
            }
        }
        let Pumped {
            finish,
            failure,
            listener_gone,
        } = pumped;
        let estimated = usage.is_none();
        // Thinking is part of what the model wrote: it counts in the completion.
        let mut usage = usage.unwrap_or(Usage {
            prompt_tokens: self.prompt_estimate,
            completion_tokens: context::estimate_tokens(&text).saturating_sub(4)
                + if thought.text.is_empty() {
                    0
                } else {
                    context::estimate_tokens(&thought.text).saturating_sub(4)
                },
        });
        let complete = finish.is_some() && failure.is_none() && !listener_gone;
        let mut tables = if complete {
            self.tables_from_reply(&text, continuations > 0, &request, &mut usage)
                .await
        } else {
            TableOutcome::default()
        };
        self.add_pasted(&mut tables);
        if self.context_report.trimmed()
            && let Some(meta) = tables.meta.as_object_mut()
        {
            meta.insert(
                "context".to_owned(),
                serde_json::to_value(&self.context_report).unwrap_or_default(),
            );
        }
        // What was done with the reply is said in the reply itself, so that neither the user
        // nor the model later takes a change that failed for one that was made.
        if !tables.appendix.is_empty() && !listener_gone {
            let extra = format!("\n\n{}", tables.appendix.join("\n\n"));
            let _ = events
                .send(ChatEvent::Delta {
                    text: extra.clone(),
                })
                .await;
            text.push_str(&extra);
        }
        if continuations > 0 || finish == Some(FinishReason::Length) {
            let cut = finish == Some(FinishReason::Length);
            if let Some(meta) = tables.meta.as_object_mut() {
                meta.insert("continuations".to_owned(), continuations.into());
                meta.insert("cut_at_output_limit".to_owned(), cut.into());
            }
            if cut {
                for event in &mut tables.events {
                    if let ChatEvent::Table { complete, .. } = event {
                        *complete = false;
                    }
                }
            }
        }
        for event in &tables.events {
            let _ = events.send(event.clone()).await;
        }
        let status = if complete && tables.failure.is_none() {
            "complete"
        } else if complete || failure.as_deref().is_some_and(|f| f != "cancelled") {
            // A change or a pasted table that failed, or the model failing mid-stream.
            "error"
        } else {
            "incomplete"
        };
        let finish_text = finish.as_ref().map(|f| match f {
            FinishReason::Stop => "stop".to_owned(),
            FinishReason::Length => "length".to_owned(),
            FinishReason::ContentFilter => "content_filter".to_owned(),
            FinishReason::Other(o) => o.clone(),
        });
        let cost = self
            .entry
            .cost_micros(usage.prompt_tokens, usage.completion_tokens);
        let _ = events
            .send(ChatEvent::Usage {
                prompt_tokens: usage.prompt_tokens,
                completion_tokens: usage.completion_tokens,
                estimated,
                cost_micros: cost,
            })
            .await;
        let error = failure.clone().or_else(|| tables.failure.clone());
        self.store(
            &text,
            &thought,
            status,
            usage,
            finish_text.as_deref(),
            error.as_deref(),
            tables,
        )
        .await;
        let _ = events
            .send(ChatEvent::Done {
                message_id: self.message_id,
                status: status.to_owned(),
                finish_reason: finish_text,
                error: (status == "error").then_some(error).flatten(),
                context: self
                    .context_report
                    .trimmed()
                    .then(|| self.context_report.clone()),
            })
            .await;
        self.state.runs.remove(self.message_id);
    }

    /// Forwards one model stream's events, appending its text and adding up its usage.
    async fn pump(
        &mut self,
        mut stream: crate::llm::EventStream,
        text: &mut String,
        thought: &mut Thought,
        usage: &mut Option<Usage>,
        events: &mpsc::Sender<ChatEvent>,
    ) -> Pumped {
        let mut out = Pumped::default();
        loop {
            let next = tokio::select! {
                next = stream.next() => next,
                _ = self.cancel.changed() => {
                    out.failure = Some("cancelled".to_owned());
                    break;
                }
            };
            match next {
                None => break,
                Some(Ok(StreamEvent::Thinking(delta))) => {
                    thought.started.get_or_insert_with(std::time::Instant::now);
                    thought.text.push_str(&delta);
                    if events
                        .send(ChatEvent::Thinking { text: delta })
                        .await
                        .is_err()
                    {
                        out.listener_gone = true;
                        break;
                    }
                }
                Some(Ok(StreamEvent::Structured(form))) => self.structured_form = Some(form),
                Some(Ok(StreamEvent::Delta(delta))) => {
                    if thought.started.is_some() && thought.ended.is_none() {
                        thought.ended = Some(std::time::Instant::now());
                    }
                    text.push_str(&delta);
                    if events.send(ChatEvent::Delta { text: delta }).await.is_err() {
                        out.listener_gone = true;
                        break;
                    }
                }
                Some(Ok(StreamEvent::Usage(u))) => {
                    let total = usage.get_or_insert_with(Usage::default);
                    total.prompt_tokens += u.prompt_tokens;
                    total.completion_tokens += u.completion_tokens;
                }
                Some(Ok(StreamEvent::Done(reason))) => {
                    out.finish = Some(reason);
                    break;
                }
                Some(Err(err)) => {
                    out.failure = Some(err.to_string());
                    let _ = events
                        .send(ChatEvent::Error {
                            message: err.to_string(),
                        })
                        .await;
                    break;
                }
            }
        }
        // Dropping the stream cancels the upstream request if it is still running.
        drop(stream);
        out
    }

    #[expect(clippy::too_many_arguments, reason = "the parts of one stored reply")]
    async fn store(
        &self,
        text: &str,
        thought: &Thought,
        status: &str,
        usage: Usage,
        finish: Option<&str>,
        error: Option<&str>,
        tables: TableOutcome,
    ) {
        let result = store::finish_message(
            &self.state.db,
            self.message_id,
            Finished {
                content: text,
                status,
                prompt_tokens: i64::from(usage.prompt_tokens),
                completion_tokens: i64::from(usage.completion_tokens),
                cost_micros: self
                    .entry
                    .cost_micros(usage.prompt_tokens, usage.completion_tokens),
                finish_reason: finish,
                error,
                table_id: tables.table_id,
                table_version: tables.version,
                thinking: (!thought.text.is_empty()).then_some(thought.text.as_str()),
                thinking_ms: thought.millis(),
                meta: &tables.meta,
            },
        )
        .await;
        if let Err(err) = result {
            tracing::error!(error = %err, message.id = %self.message_id, "could not store the reply");
        }
        metrics::counter!("sheetgpt_llm_tokens_total", "model" => self.entry.name.clone(), "kind" => "prompt")
            .increment(u64::from(usage.prompt_tokens));
        metrics::counter!("sheetgpt_llm_tokens_total", "model" => self.entry.name.clone(), "kind" => "completion")
            .increment(u64::from(usage.completion_tokens));
    }

    /// Operations for the current table, or tables found in the reply.
    async fn tables_from_reply(
        &self,
        text: &str,
        continued: bool,
        request: &ChatRequest,
        usage: &mut Usage,
    ) -> TableOutcome {
        let mut out = TableOutcome {
            meta: serde_json::json!({}),
            ..TableOutcome::default()
        };
        if let Some(block) = ops_block(text) {
            self.apply_ops(block, &mut out).await;
            return out;
        }
        let mut found = extract::extract_tables_reading(text, self.dates);
        if continued {
            found = merge_continued(found);
        }
        let mut structured_meta = None;
        if let Some(target) = &self.target {
            let (table, meta) = self
                .structured_table(text, found, target, request, usage)
                .await;
            if table.is_none() && meta["no_rows"] == true {
                out.appendix.push(
                    "**No table:** the model answered with no rows for the target columns."
                        .to_owned(),
                );
            }
            structured_meta = Some(meta);
            found = table
                .map(|table| {
                    vec![extract::Extracted {
                        table,
                        format: extract::Format::Json,
                        span: 0..text.len(),
                    }]
                })
                .unwrap_or_default();
        }
        let mut created = Vec::new();
        // A model that repeats the table the user pasted does not make a second copy of it.
        found.retain(|item| {
            let print = fingerprint(&item.table);
            !self.pasted.iter().any(|p| p.fingerprint == Some(print))
        });
        for (i, item) in found.into_iter().enumerate() {
            let base = if self.conversation.title.is_empty() {
                "Table from chat".to_owned()
            } else {
                self.conversation.title.clone()
            };
            // Numbered after the tables pasted in the user's message.
            let n = i + self.pasted.len();
            let name = if n == 0 {
                base
            } else {
                format!("{base} ({})", n + 1)
            };
            match tables::create(
                &self.state,
                self.user,
                &name,
                item.table,
                "created from a reply",
            )
            .await
            {
                Ok(record) => {
                    created.push(serde_json::json!({"table_id": record.id, "format": item.format}));
                    out.table_id = Some(record.id);
                    out.version = Some(1);
                    out.events.push(ChatEvent::Table {
                        table_id: record.id,
                        version: 1,
                        kind: "created",
                        source: "reply",
                        name: record.name.clone(),
                        row_count: record.row_count,
                        complete: true,
                    });
                }
                Err(e) => created.push(serde_json::json!({"error": problem_text(&e)})),
            }
        }
        if let Some(id) = out.table_id {
            let _ = store::update(
                &self.state.db,
                self.user,
                self.conversation.id,
                store::Update {
                    current_table_id: Some(Some(id)),
                    ..store::Update::default()
                },
            )
            .await;
        }
        if !created.is_empty() {
            out.meta = serde_json::json!({"tables": created});
        }
        if let (Some(meta), Some(obj)) = (structured_meta, out.meta.as_object_mut()) {
            obj.insert("structured".to_owned(), meta);
        }
        out
    }

    /// Applies the operations of a reply's `sheetgpt-ops` block to the table it names (or the
    /// conversation's current table), and says in the reply what was changed, or why nothing was.
    async fn apply_ops(&self, block: Result<OpsBlock, String>, out: &mut TableOutcome) {
        let fail = |out: &mut TableOutcome, reason: String| {
            out.appendix.push(format!("**Not applied:** {reason}"));
            out.meta = serde_json::json!({"ops_error": reason});
            out.failure = Some(reason);
        };
        let block = match block {
            Ok(block) => block,
            Err(e) => {
                return fail(
                    out,
                    format!("the operations could not be read ({e}); nothing was changed."),
                );
            }
        };
        let table = match &block.table {
            Some(name) => match table_store::find_by_name(&self.state.db, self.user, name).await {
                Ok(Some(t)) => Some(t),
                Ok(None) => {
                    return fail(
                        out,
                        format!("you have no table named “{name}”; nothing was changed."),
                    );
                }
                Err(e) => return fail(out, format!("the table could not be read ({e}).")),
            },
            None => match self.conversation.current_table_id {
                Some(id) => table_store::find(&self.state.db, self.user, id)
                    .await
                    .ok()
                    .flatten(),
                None => None,
            },
        };
        let Some(table) = table else {
            return fail(
                out,
                "the conversation has no current table to change: paste one or ask for one first."
                    .to_owned(),
            );
        };
        if block.table.is_some() && self.conversation.current_table_id != Some(table.id) {
            let _ = store::update(
                &self.state.db,
                self.user,
                self.conversation.id,
                store::Update {
                    current_table_id: Some(Some(table.id)),
                    ..store::Update::default()
                },
            )
            .await;
        }
        if block.ops.is_empty() && block.table.is_some() {
            out.table_id = Some(table.id);
            out.version = Some(table.current_version);
            out.meta = serde_json::json!({"current_table": table.id});
            out.appendix.push(format!(
                "Now working on “{}” (version {}, {} rows).",
                table.name, table.current_version, table.row_count
            ));
            return;
        }
        let submitted = tables::submit_change(
            &self.state,
            self.user,
            table.id,
            None,
            block.ops,
            None,
            None,
        )
        .await;
        match submitted {
            Ok(tables::Submitted::Queued { job, .. }) => {
                // Too large to change while the reply is written: a job applies it.
                out.table_id = Some(table.id);
                out.version = Some(table.current_version);
                out.meta = serde_json::json!({"ops_job": job.id, "current_table": table.id});
                out.appendix.push(format!(
                    "“{}” has {} rows: the change is being applied by job `{}` (follow it at \
                     /api/v1/jobs/{}); the table stays at version {} until it is done.",
                    table.name, table.row_count, job.id, job.id, table.current_version
                ));
                out.events.push(ChatEvent::Job {
                    job_id: job.id,
                    table_id: table.id,
                    kind: "change",
                });
            }
            Ok(tables::Submitted::Applied(result)) => {
                out.table_id = Some(table.id);
                out.version = Some(result.version);
                out.meta = serde_json::json!({"ops_applied": true, "version": result.version});
                out.appendix.push(format!(
                    "Changed “{}”: now version {}, {} rows.",
                    table.name, result.version, result.row_count
                ));
                out.events.push(ChatEvent::Table {
                    table_id: table.id,
                    version: result.version,
                    kind: "changed",
                    source: "reply",
                    name: table.name,
                    row_count: result.row_count,
                    complete: true,
                });
            }
            Err(e) => fail(
                out,
                format!(
                    "“{}” was not changed: {}. It is still version {}.",
                    table.name,
                    problem_text(&e).trim_end_matches('.'),
                    table.current_version
                ),
            ),
        }
    }

    /// Adds the tables pasted in the user's message to the reply's outcome: their events (when
    /// stored for this reply), the reply's table when it made none of its own, and a sentence
    /// for each one that could not be stored.
    fn add_pasted(&self, out: &mut TableOutcome) {
        if !out.meta.is_object() {
            out.meta = serde_json::json!({});
        }
        if self.pasted.is_empty() {
            return;
        }
        let mut events = Vec::new();
        for p in &self.pasted {
            match (p.table_id, &p.error) {
                (Some(id), _) if self.pasted_now => events.push(ChatEvent::Table {
                    table_id: id,
                    version: 1,
                    kind: "created",
                    source: "message",
                    name: p.name.clone(),
                    row_count: p.rows as i64,
                    complete: true,
                }),
                (None, Some(error)) if self.pasted_now => {
                    let reason = format!("your pasted table “{}” was not stored: {error}", p.name);
                    out.appendix.push(format!("**Not stored:** {reason}"));
                    out.failure.get_or_insert(reason);
                }
                _ => {}
            }
        }
        events.append(&mut out.events);
        out.events = events;
        if out.table_id.is_none()
            && let Some(id) = self.pasted.iter().rev().find_map(|p| p.table_id)
        {
            out.table_id = Some(id);
            out.version = self.pasted_now.then_some(1);
        }
        if let Some(meta) = out.meta.as_object_mut() {
            let list: Vec<serde_json::Value> = self
                .pasted
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "table_id": p.table_id, "name": p.name, "rows": p.rows,
                        "columns": p.columns, "format": p.format, "error": p.error,
                    })
                })
                .collect();
            meta.insert("pasted_tables".to_owned(), list.into());
        }
    }

    /// The reply's table in the target schema. Structured JSON is validated against the
    /// schema; when it does not validate, a remote model is asked once more with the errors;
    /// when that fails too, the tables found in other formats are conformed to the schema.
    /// What happened goes into the message's `meta.structured`.
    async fn structured_table(
        &self,
        text: &str,
        found: Vec<extract::Extracted>,
        target: &Target,
        request: &ChatRequest,
        usage: &mut Usage,
    ) -> (Option<sheetgpt_core::table::Table>, serde_json::Value) {
        use sheetgpt_core::target;
        let schema = target::json_schema(&target.columns, target.bounds);
        let no_rows = |candidate: &str| {
            json_candidate(candidate)
                .and_then(|v| v.get("rows").and_then(|r| r.as_array()).map(Vec::is_empty))
                .unwrap_or(false)
        };
        let target = target.columns.as_slice();
        let check = |candidate: &str| -> Result<serde_json::Value, Vec<String>> {
            let Some(value) = json_candidate(candidate) else {
                return Err(vec!["the reply holds no JSON object".to_owned()]);
            };
            match jsonschema::validator_for(&schema) {
                Ok(validator) => {
                    let errors: Vec<String> = validator
                        .iter_errors(&value)
                        .take(20)
                        .map(|e| format!("{}: {e}", e.instance_path()))
                        .collect();
                    if errors.is_empty() {
                        Ok(value)
                    } else {
                        Err(errors)
                    }
                }
                Err(e) => Err(vec![format!("schema: {e}")]),
            }
        };
        let form = self
            .structured_form
            .map_or("prompt", crate::llm::StructuredForm::as_str);
        let mut meta = serde_json::json!({"schema_columns": target.len(), "form": form});
        if no_rows(text) {
            meta["no_rows"] = true.into();
        }
        let first = check(text);
        let valid = match first {
            Ok(v) => {
                meta["valid"] = true.into();
                Some(v)
            }
            Err(errors) => {
                meta["valid"] = false.into();
                meta["errors"] = errors.clone().into();
                // The offline model cannot do better on a second try.
                if self.entry.provider == crate::config::Provider::Offline {
                    None
                } else {
                    meta["retried"] = true.into();
                    let retry = self.retry_structured(text, &errors, request, usage).await;
                    meta["no_rows"] = retry.as_deref().is_some_and(no_rows).into();
                    match retry.as_deref().map(check) {
                        Some(Ok(v)) => {
                            meta["valid_after_retry"] = true.into();
                            Some(v)
                        }
                        Some(Err(e)) => {
                            meta["valid_after_retry"] = false.into();
                            meta["retry_errors"] = e.into();
                            None
                        }
                        None => {
                            meta["valid_after_retry"] = false.into();
                            None
                        }
                    }
                }
            }
        };
        if let Some(value) = valid
            && let Some((table, issues)) = target::table_from_structured(&value, target)
        {
            if !issues.is_empty() {
                meta["issues"] = issues.into();
            }
            return (Some(table), meta);
        }
        match found.into_iter().next() {
            Some(item) => {
                let (table, issues) = target::conform(&item.table, target);
                meta["fallback"] = serde_json::to_value(item.format).unwrap_or_default();
                if !issues.is_empty() {
                    meta["issues"] = issues.into();
                }
                (Some(table), meta)
            }
            // The table the user pasted in this message stands for the reply's.
            None => match self.pasted.iter().rev().find(|p| p.table_id.is_some()) {
                Some(pasted) => {
                    meta["fallback"] = "pasted".into();
                    if !pasted.issues.is_empty() {
                        meta["issues"] = pasted.issues.clone().into();
                    }
                    (None, meta)
                }
                None => (None, meta),
            },
        }
    }

    /// Asks the model once more for JSON that validates, with the validation errors; the
    /// answer is collected, not streamed (the user already saw the first reply).
    async fn retry_structured(
        &self,
        text: &str,
        errors: &[String],
        request: &ChatRequest,
        usage: &mut Usage,
    ) -> Option<String> {
        let mut retry = request.clone();
        retry.messages.push(ChatMessage {
            role: Role::Assistant,
            content: text.to_owned(),
        });
        retry.messages.push(ChatMessage {
            role: Role::User,
            content: format!(
                "Your answer does not match the required JSON schema:\n- {}\nAnswer again with only \
                 the corrected JSON object, nothing else.",
                errors.join("\n- ")
            ),
        });
        let mut stream = self.entry.model.stream(retry).await.ok()?;
        let mut out = String::new();
        while let Some(event) = stream.next().await {
            match event {
                Ok(StreamEvent::Delta(d)) => out.push_str(&d),
                Ok(StreamEvent::Usage(u)) => {
                    usage.prompt_tokens += u.prompt_tokens;
                    usage.completion_tokens += u.completion_tokens;
                }
                Ok(StreamEvent::Done(_)) => break,
                // Thinking is not the answer; the form is already known.
                Ok(StreamEvent::Thinking(_) | StreamEvent::Structured(_)) => {}
                Err(_) => return None,
            }
        }
        Some(out)
    }
}

/// A continued reply may repeat the header: consecutive tables with the same columns are
/// one table split across continuations.
fn merge_continued(found: Vec<extract::Extracted>) -> Vec<extract::Extracted> {
    let mut out: Vec<extract::Extracted> = Vec::new();
    for item in found {
        if let Some(last) = out.last_mut() {
            let same = last.table.columns.len() == item.table.columns.len()
                && last
                    .table
                    .columns
                    .iter()
                    .zip(&item.table.columns)
                    .all(|(a, b)| a.name.eq_ignore_ascii_case(&b.name));
            if same {
                let columns = last.table.columns.clone();
                for row in item.table.rows {
                    // Cells are re-read for the first part's types; text where they differ.
                    let cells = row
                        .into_iter()
                        .zip(&columns)
                        .map(|(v, c)| v.convert(c.ty).unwrap_or(v))
                        .collect();
                    last.table.rows.push(cells);
                }
                last.span.end = item.span.end;
                continue;
            }
        }
        out.push(item);
    }
    out
}

fn problem_text(e: &Error) -> String {
    match e {
        Error::Validation(errors) => errors
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; "),
        Error::Internal(_) => "internal error".to_owned(),
        other => other.to_string(),
    }
}

/// How one model stream ended.
#[derive(Default)]
struct Pumped {
    finish: Option<FinishReason>,
    failure: Option<String>,
    listener_gone: bool,
}

const CONTINUE_PROMPT: &str = "Your reply was cut at the output limit. Continue exactly where you \
stopped, without repeating anything already written and without any introduction: the next \
characters you write are appended to your previous reply.";

#[derive(Default)]
struct TableOutcome {
    table_id: Option<Uuid>,
    version: Option<i32>,
    events: Vec<ChatEvent>,
    meta: serde_json::Value,
    /// Sentences added to the end of the reply: what was changed, or why not.
    appendix: Vec<String>,
    /// Why what the reply asked for was not done; the reply's status is then `error`.
    failure: Option<String>,
}

/// The JSON object of a structured reply: the whole text, or its first ```json block.
fn json_candidate(text: &str) -> Option<serde_json::Value> {
    let trimmed = text.trim();
    if let Ok(v @ serde_json::Value::Object(_)) = serde_json::from_str(trimmed) {
        return Some(v);
    }
    let start = trimmed.find("```json")? + "```json".len();
    let body = &trimmed[start..];
    let end = body.find("```").unwrap_or(body.len());
    match serde_json::from_str(body[..end].trim()) {
        Ok(v @ serde_json::Value::Object(_)) => Some(v),
        _ => None,
    }
}

/// The operations of a reply's ```sheetgpt-ops block, and the table they are for when the
/// block names one (`{"table": "Sales", "ops": [...]}`; with no operations it only makes
/// that table the conversation's current one).
#[derive(Debug, Default)]
struct OpsBlock {
    table: Option<String>,
    ops: Vec<Op>,
}

/// The reply's ```sheetgpt-ops block, if it has one.
fn ops_block(text: &str) -> Option<Result<OpsBlock, String>> {
    let start = text.find("```sheetgpt-ops")?;
    let body = &text[start + "```sheetgpt-ops".len()..];
    let end = body.find("```").unwrap_or(body.len());
    let json = body[..end].trim();
    let parsed: Result<serde_json::Value, _> = serde_json::from_str(json);
    Some(match parsed {
        Ok(serde_json::Value::Object(mut o)) => {
            let table = match o.remove("table") {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::String(t)) if !t.trim().is_empty() => Some(t),
                Some(_) => return Some(Err("`table` must be a table's name".to_owned())),
            };
            let ops = match o.remove("ops") {
                Some(ops) => serde_json::from_value(ops).map_err(|e| e.to_string()),
                None if table.is_some() => Ok(Vec::new()),
                None => Err("the block holds no `ops`".to_owned()),
            };
            ops.map(|ops| OpsBlock { table, ops })
        }
        Ok(v) => serde_json::from_value(v)
            .map(|ops| OpsBlock { table: None, ops })
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ops_block_is_found_in_prose() {
        let text =
            "Sorted.\n```sheetgpt-ops\n[{\"op\": \"sort\", \"by\": [{\"column\": \"a\"}]}]\n```\n";
        let block = ops_block(text).and_then(Result::ok).unwrap_or_default();
        assert_eq!(block.ops.len(), 1);
        assert!(block.table.is_none());
        let named = ops_block("```sheetgpt-ops\n{\"table\": \"Sales\"}\n```")
            .and_then(Result::ok)
            .unwrap_or_default();
        assert_eq!(named.table.as_deref(), Some("Sales"));
        assert!(named.ops.is_empty());
        assert!(ops_block("no block here").is_none());
        assert!(ops_block("```sheetgpt-ops\nnot json\n```").is_some_and(|r| r.is_err()));
    }

    #[test]
    fn titles_come_from_the_first_line_and_are_cut() {
        assert_eq!(auto_title("\n  List airports\nmore"), "List airports");
        assert_eq!(auto_title(&"a".repeat(100)).chars().count(), 61);
    }
}
