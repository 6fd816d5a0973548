//! Anthropic's Messages API (`POST /v1/messages`), streamed.
//!
//! The stream is a sequence of named events: `message_start` (input token count),
//! `content_block_start` / `content_block_delta` / `content_block_stop` (the text),
//! `message_delta` (stop reason, output token count), `message_stop`, with `ping`s in between
//! and possibly an `error`. Unknown events are ignored, as Anthropic asks of clients.

use std::collections::VecDeque;

use eventsource_stream::Event;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::sse::{self, parse_json};
use super::{
    ChatMessage, ChatModel, ChatRequest, EventStream, FinishReason, Limits, LlmError, Role,
    StreamEvent, Usage, retry, schema_in_prompt, sensitive, wire_f32,
};

pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// The API version this code speaks (`anthropic-version`).
pub const API_VERSION: &str = "2023-06-01";
/// `max_tokens` is required by the API; used when a request sets none.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// How to reach one Anthropic model. `Debug` shows no key.
#[derive(Clone, Debug)]
pub struct AnthropicConfig {
    /// Without the version path, e.g. `https://api.anthropic.com`; `/v1/messages` is appended.
    pub base_url: String,
    pub model: String,
    /// Sent as `x-api-key`.
    pub api_key: Option<SecretString>,
    pub limits: Limits,
}

impl AnthropicConfig {
    /// A config for `model` at `base_url` with no key and the default limits.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            limits: Limits::default(),
        }
    }
}

/// A model behind Anthropic's Messages API.
#[derive(Clone, Debug)]
pub struct AnthropicModel {
    config: AnthropicConfig,
    url: String,
    default_max_tokens: u32,
    /// Marked sensitive, so `Debug` shows their names only.
    extra_headers: HeaderMap,
    client: reqwest::Client,
}

impl AnthropicModel {
    /// `client` should come from [`super::http_client`] (for the connect timeout); the
    /// first-token and idle timeouts apply whatever the client.
    pub fn new(config: AnthropicConfig, client: reqwest::Client) -> Self {
        let url = format!("{}/v1/messages", config.base_url.trim_end_matches('/'));
        Self {
            config,
            url,
            default_max_tokens: DEFAULT_MAX_TOKENS,
            extra_headers: HeaderMap::new(),
            client,
        }
    }

    /// `max_tokens` for requests that set none (the API requires one); default
    /// [`DEFAULT_MAX_TOKENS`].
    pub fn with_default_max_tokens(mut self, max_tokens: u32) -> Self {
        self.default_max_tokens = max_tokens;
        self
    }

    /// Sends `headers` with every request (`anthropic-beta`, a gateway's key, …). Their
    /// values are treated as secrets.
    pub fn with_headers(mut self, headers: HeaderMap) -> Self {
        self.extra_headers = sensitive(headers);
        self
    }

    fn headers(&self) -> Result<HeaderMap, LlmError> {
        let mut headers = self.extra_headers.clone();
        headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            HeaderName::from_static("anthropic-version"),
            HeaderValue::from_static(API_VERSION),
        );
        if let Some(key) = &self.config.api_key {
            // The header error is not passed on, as it could quote the key.
            let mut value =
                HeaderValue::from_str(key.expose_secret()).map_err(|_| LlmError::Unauthorized)?;
            value.set_sensitive(true);
            headers.insert(HeaderName::from_static("x-api-key"), value);
        }
        Ok(headers)
    }

    fn body(&self, request: &ChatRequest) -> Result<Vec<u8>, LlmError> {
        // No structured output here: a schema goes into the system prompt.
        let messages = match &request.response_schema {
            Some(schema) => schema_in_prompt(&request.messages, schema),
            None => request.messages.clone(),
        };
        let (system, turns): (Vec<&ChatMessage>, Vec<&ChatMessage>) =
            messages.iter().partition(|m| m.role == Role::System);
        let system = system
            .iter()
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>()
            .join("\n\n");
        let body = WireRequest {
            model: &self.config.model,
            max_tokens: request.max_tokens.unwrap_or(self.default_max_tokens),
            system: (!system.is_empty()).then_some(system),
            messages: turns,
            stream: true,
            // Anthropic's range is 0..=1 (OpenAI's is 0..=2).
            temperature: request.temperature.map(|t| wire_f32(t.clamp(0.0, 1.0))),
        };
        serde_json::to_vec(&body)
            .map_err(|e| LlmError::Protocol(format!("cannot encode the request: {e}")))
    }

    async fn attempt(&self, headers: &HeaderMap, body: &[u8]) -> Result<EventStream, LlmError> {
        let request = self
            .client
            .post(&self.url)
            .headers(headers.clone())
            .body(body.to_vec());
        let response = sse::send(request, self.config.api_key.as_ref()).await?;
        Ok(sse::decode(response, EventDecoder::default()))
    }
}

#[async_trait::async_trait]
impl ChatModel for AnthropicModel {
    #[tracing::instrument(skip_all, fields(model = %self.config.model))]
    async fn stream(&self, request: ChatRequest) -> Result<EventStream, LlmError> {
        let headers = self.headers()?;
        let body = self.body(&request)?;
        retry::start(
            "anthropic",
            &self.config.limits,
            self.config.api_key.as_ref(),
            || self.attempt(&headers, &body),
        )
        .await
    }
}

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    messages: Vec<&'a ChatMessage>,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
}

/// Any event's data, with only what we read.
#[derive(Deserialize)]
struct WireEvent {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    /// `message_start`
    #[serde(default)]
    message: Option<WireMessage>,
    /// `content_block_start`
    #[serde(default)]
    content_block: Option<WireBlock>,
    /// `content_block_delta` (text) and `message_delta` (stop reason)
    #[serde(default)]
    delta: Option<WireDelta>,
    /// `message_delta`
    #[serde(default)]
    usage: Option<WireUsage>,
    /// `error`
    #[serde(default)]
    error: Option<WireError>,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireBlock {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
struct WireDelta {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    text: Option<String>,
    /// `thinking_delta` (extended thinking)
    #[serde(default)]
    thinking: Option<String>,
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u32>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u32>,
    #[serde(default)]
    cache_read_input_tokens: Option<u32>,
    #[serde(default)]
    output_tokens: Option<u32>,
}

#[derive(Deserialize)]
struct WireError {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Default)]
struct EventDecoder {
    usage: Option<Usage>,
    stop: Option<FinishReason>,
}

impl EventDecoder {
    fn add_usage(&mut self, wire: WireUsage) {
        let usage = self.usage.get_or_insert_with(Usage::default);
        // Cached prompt tokens are prompt tokens too (billed differently, counted the same).
        if wire.input_tokens.is_some()
            || wire.cache_creation_input_tokens.is_some()
            || wire.cache_read_input_tokens.is_some()
        {
            usage.prompt_tokens = [
                wire.input_tokens,
                wire.cache_creation_input_tokens,
                wire.cache_read_input_tokens,
            ]
            .into_iter()
            .flatten()
            .fold(0u32, u32::saturating_add);
        }
        // Cumulative: the latest count is the count.
        if let Some(output) = wire.output_tokens {
            usage.completion_tokens = output;
        }
    }

    fn finish(&mut self, out: &mut VecDeque<StreamEvent>) {
        if let Some(usage) = self.usage.take() {
            out.push_back(StreamEvent::Usage(usage));
        }
        let reason = self.stop.take().unwrap_or(FinishReason::Stop);
        out.push_back(StreamEvent::Done(reason));
    }
}

impl sse::Decoder for EventDecoder {
    fn event(&mut self, event: &Event, out: &mut VecDeque<StreamEvent>) -> Result<(), LlmError> {
        if event.event == "ping" || event.data.trim().is_empty() {
            return Ok(());
        }
        let data: WireEvent = parse_json(&format!("{} event", event.event), &event.data)?;
        // The data names its type too; it wins over the SSE event name.
        let kind = data.kind.as_deref().unwrap_or(event.event.as_str());
        match kind {
            "message_start" => {
                if let Some(usage) = data.message.and_then(|m| m.usage) {
                    self.add_usage(usage);
                }
            }
            "content_block_start" => {
                if let Some(block) = data.content_block
                    && block.kind.as_deref() == Some("text")
                {
                    push_text(out, block.text);
                }
            }
            "content_block_delta" => match data.delta {
                Some(delta) if delta.kind.as_deref() == Some("text_delta") => {
                    push_text(out, delta.text);
                }
                // Extended thinking: kept apart from the reply.
                Some(delta) if delta.kind.as_deref() == Some("thinking_delta") => {
                    if let Some(thought) = delta.thinking.filter(|t| !t.is_empty()) {
                        out.push_back(StreamEvent::Thinking(thought));
                    }
                }
                _ => {}
            },
            "message_delta" => {
                if let Some(reason) = data.delta.and_then(|d| d.stop_reason) {
                    self.stop = Some(stop_reason(&reason));
                }
                if let Some(usage) = data.usage {
                    self.add_usage(usage);
                }
            }
            "message_stop" => self.finish(out),
            "error" => return Err(stream_error(data.error)),
            // content_block_stop, ping, and whatever is added later.
            _ => {}
        }
        Ok(())
    }

    fn end(&mut self, out: &mut VecDeque<StreamEvent>) -> Result<(), LlmError> {
        if self.stop.is_some() {
            self.finish(out);
            Ok(())
        } else {
            Err(LlmError::Protocol(
                "the stream ended before the reply was complete".into(),
            ))
        }
    }
}

fn push_text(out: &mut VecDeque<StreamEvent>, text: Option<String>) {
    if let Some(text) = text.filter(|t| !t.is_empty()) {
        out.push_back(StreamEvent::Delta(text));
    }
}

fn stop_reason(reason: &str) -> FinishReason {
    match reason {
        "end_turn" | "stop_sequence" => FinishReason::Stop,
        "max_tokens" => FinishReason::Length,
        "refusal" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_owned()),
    }
}

/// An `error` event, by its documented type.
fn stream_error(error: Option<WireError>) -> LlmError {
    let (kind, message) = match error {
        Some(e) => (e.kind.unwrap_or_default(), e.message.unwrap_or_default()),
        None => (String::new(), String::new()),
    };
    let status = match kind.as_str() {
        "overloaded_error" | "rate_limit_error" => {
            return LlmError::RateLimited { retry_after: None };
        }
        "authentication_error" | "permission_error" => return LlmError::Unauthorized,
        "invalid_request_error" => 400,
        "not_found_error" => 404,
        "request_too_large" => 413,
        _ => 500,
    };
    let message = if message.is_empty() { kind } else { message };
    LlmError::Upstream { status, message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::sse::Decoder as _;

    fn event(name: &str, data: &str) -> Event {
        Event {
            event: name.into(),
            data: data.into(),
            ..Event::default()
        }
    }

    #[test]
    fn cached_prompt_tokens_count_as_prompt_tokens() {
        let mut decoder = EventDecoder::default();
        let mut out = VecDeque::new();
        let start = r#"{"type":"message_start","message":{"usage":{"input_tokens":5,"cache_read_input_tokens":100,"output_tokens":1}}}"#;
        let delta = r#"{"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"output_tokens":7}}"#;
        decoder
            .event(&event("message_start", start), &mut out)
            .unwrap();
        decoder
            .event(&event("message_delta", delta), &mut out)
            .unwrap();
        decoder.end(&mut out).unwrap();
        assert_eq!(
            Vec::from(out),
            vec![
                StreamEvent::Usage(Usage {
                    prompt_tokens: 105,
                    completion_tokens: 7
                }),
                StreamEvent::Done(FinishReason::Length)
            ]
        );
    }

    #[test]
    fn error_events_map_by_type() {
        assert_eq!(
            stream_error(Some(WireError {
                kind: Some("overloaded_error".into()),
                message: Some("Overloaded".into())
            })),
            LlmError::RateLimited { retry_after: None }
        );
        assert_eq!(
            stream_error(Some(WireError {
                kind: Some("invalid_request_error".into()),
                message: Some("bad".into())
            })),
            LlmError::Upstream {
                status: 400,
                message: "bad".into()
            }
        );
    }

    #[test]
    fn system_messages_become_the_system_field() {
        let model = AnthropicModel::new(
            AnthropicConfig::new("http://x", "claude"),
            reqwest::Client::new(),
        );
        let request = ChatRequest {
            messages: vec![
                ChatMessage {
                    role: Role::System,
                    content: "a".into(),
                },
                ChatMessage {
                    role: Role::User,
                    content: "hi".into(),
                },
                ChatMessage {
                    role: Role::System,
                    content: "b".into(),
                },
            ],
            max_tokens: None,
            temperature: Some(1.5),
            response_schema: None,
        };
        let body: serde_json::Value =
            serde_json::from_slice(&model.body(&request).unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "model": "claude",
                "max_tokens": 4096,
                "system": "a\n\nb",
                "messages": [{"role": "user", "content": "hi"}],
                "stream": true,
                "temperature": 1.0,
            })
        );
    }
}
