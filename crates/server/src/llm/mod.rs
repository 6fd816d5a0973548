//! Language models behind one trait. Streaming first: a non-streamed reply is the collected
//! stream. Providers: `openai` (any server speaking the OpenAI Chat Completions API),
//! `anthropic` (the Messages API) and `offline` (in-process, no key, no network).

use std::pin::Pin;
use std::time::Duration;

use futures_util::Stream;
use serde::{Deserialize, Serialize};

pub mod anthropic;
pub mod discovery;
pub mod keys;
pub mod offline;
pub mod openai;
pub mod registry;
pub mod retry;
pub mod sse;
pub mod thinking;
pub mod tokens;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

/// One request to a model.
#[derive(Clone, Debug)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    /// Most tokens of the reply.
    pub max_tokens: Option<u32>,
    pub temperature: Option<f32>,
    /// A JSON Schema the reply must follow (structured output), for providers configured to
    /// support it; others get the schema in the prompt.
    pub response_schema: Option<serde_json::Value>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model ended its reply.
    Stop,
    /// The reply hit the output token limit (`length`, `max_tokens`).
    Length,
    ContentFilter,
    Other(String),
}

/// What a reply stream yields: any number of `Delta`s, at most one `Usage`, then exactly one
/// `Done`, after which the stream ends. An `Err` item also ends the stream.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamEvent {
    /// Text to append to the reply.
    Delta(String),
    /// Token counts (some servers send them at the end, some never).
    Usage(Usage),
    /// The model's thinking (reasoning models), kept apart from the reply: `<think>…</think>`
    /// in the content, or `reasoning_content` / `reasoning` / Anthropic `thinking` deltas.
    Thinking(String),
    /// The form the reply's structured output was asked in, when a schema was sent; comes
    /// first.
    Structured(StructuredForm),
    /// The reply is complete.
    Done(FinishReason),
}

pub use crate::config::StructuredForm;

/// What can go wrong talking to a model. Messages are safe to show a user: they never hold
/// keys, and upstream bodies are cut short.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum LlmError {
    #[error("cannot reach the model provider: {0}")]
    Connect(String),
    #[error("the model provider did not answer in time ({0})")]
    Timeout(&'static str),
    #[error("the model provider is rate limiting requests")]
    RateLimited { retry_after: Option<Duration> },
    #[error("the model provider refused the credentials")]
    Unauthorized,
    #[error("the model provider answered {status}: {message}")]
    Upstream { status: u16, message: String },
    #[error("the model provider sent something unreadable: {0}")]
    Protocol(String),
    /// The prompt is longer than the model's context window, says the provider.
    #[error(
        "the conversation is too long for this model's context window (the provider said: {0})"
    )]
    ContextTooLong(String),
    /// The provider refused a request form it does not support (a `response_format`).
    #[error("the model provider does not support this request: {0}")]
    Unsupported(String),
}

impl LlmError {
    /// Worth another try (before the first token reaches the user)?
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect(_) | Self::Timeout(_) | Self::RateLimited { .. } => true,
            Self::Upstream { status, .. } => *status >= 500,
            Self::Unauthorized
            | Self::Protocol(_)
            | Self::ContextTooLong(_)
            | Self::Unsupported(_) => false,
        }
    }
}

pub type EventStream = Pin<Box<dyn Stream<Item = Result<StreamEvent, LlmError>> + Send>>;

/// A chat model. `stream` returns once the reply has started (the first event is ready), so
/// retries happen inside it and never after the user has seen text.
#[async_trait::async_trait]
pub trait ChatModel: Send + Sync {
    async fn stream(&self, request: ChatRequest) -> Result<EventStream, LlmError>;
}

/// Timeouts and retries shared by the remote providers.
#[derive(Clone, Debug)]
pub struct Limits {
    pub connect_timeout: Duration,
    /// From sending the request to the first event of the reply, per attempt.
    pub first_token_timeout: Duration,
    /// Longest wait between two events of a streaming reply (a provider's keep-alive pings
    /// are not events: a model that only pings is stalled).
    pub idle_timeout: Duration,
    /// Extra attempts on connection errors, 429 and 5xx, before the first token.
    pub max_retries: u32,
    /// First backoff; doubled each retry (with jitter), unless `Retry-After` says otherwise.
    pub backoff: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            first_token_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(30),
            max_retries: 2,
            backoff: Duration::from_millis(500),
        }
    }
}

/// An HTTP client for the remote providers: `connect_timeout` applies to each new connection.
/// No overall timeout, since a streamed reply may run for minutes; the first-token and idle
/// timeouts of [`Limits`] bound it instead.
pub fn http_client(limits: &Limits) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(limits.connect_timeout)
        .tcp_nodelay(true)
        .user_agent(concat!("sheetgpt/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// For providers (or configurations) without structured output: the messages with an
/// instruction to answer in JSON following `schema`, added to the system prompt.
pub(crate) fn schema_in_prompt(
    messages: &[ChatMessage],
    schema: &serde_json::Value,
) -> Vec<ChatMessage> {
    let instruction = format!(
        "Answer with a single JSON document, and nothing else, that follows this JSON \
         Schema:\n{schema}"
    );
    let mut messages = messages.to_vec();
    match messages.iter_mut().rev().find(|m| m.role == Role::System) {
        Some(system) => {
            system.content.push_str("\n\n");
            system.content.push_str(&instruction);
        }
        None => messages.insert(
            0,
            ChatMessage {
                role: Role::System,
                content: instruction,
            },
        ),
    }
    messages
}

/// An `f32` as the JSON number it was written as (`0.2`, not `0.20000000298023224`).
pub(crate) fn wire_f32(value: f32) -> f64 {
    value.to_string().parse().unwrap_or(f64::from(value))
}

/// `headers` with every value marked sensitive: kept out of `Debug` output (and so out of
/// logs) and out of HTTP/2 header compression tables.
pub(crate) fn sensitive(headers: reqwest::header::HeaderMap) -> reqwest::header::HeaderMap {
    headers
        .into_iter()
        .scan(None, |name, (next, mut value)| {
            // `into_iter` names a header only on its first value.
            if next.is_some() {
                *name = next;
            }
            value.set_sensitive(true);
            Some(name.clone().map(|n| (n, value)))
        })
        .flatten()
        .collect()
}
