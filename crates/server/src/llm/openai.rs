//! Any server speaking the OpenAI Chat Completions API: OpenAI itself, and the local servers
//! (Ollama, vLLM, llama.cpp, LM Studio) and gateways that copy it.
//!
//! The wire types are our own and lenient on purpose: local servers leave out `id`, `created`
//! and `usage`, send `content: null`, put usage in the last chunk or nowhere, and some end the
//! stream without `data: [DONE]`. Everything not needed is ignored.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use eventsource_stream::Event;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::sse::{self, parse_json};
use super::thinking::ThinkSplitter;
use super::{
    ChatMessage, ChatModel, ChatRequest, EventStream, FinishReason, Limits, LlmError, StreamEvent,
    StructuredForm, Usage, retry, schema_in_prompt, sensitive, wire_f32,
};
use crate::config::StructuredOutput;

/// Which request field carries the reply's token limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxTokensField {
    /// `max_tokens`: what Ollama, vLLM, llama.cpp and most gateways read, and what OpenAI still
    /// accepts for its chat models.
    #[default]
    MaxTokens,
    /// `max_completion_tokens`: required by OpenAI's reasoning models (o1, o3, …), which
    /// refuse `max_tokens`; not read by every local server.
    MaxCompletionTokens,
}

/// How to reach one OpenAI-compatible model. `Debug` shows no key.
#[derive(Clone, Debug)]
pub struct OpenAiConfig {
    /// Up to and including the version, e.g. `https://api.openai.com/v1` or
    /// `http://127.0.0.1:11434/v1`; `/chat/completions` is appended.
    pub base_url: String,
    pub model: String,
    /// Sent as `Authorization: Bearer …`; local servers usually need none.
    pub api_key: Option<SecretString>,
    /// How a JSON Schema for the reply is sent: negotiated (`Auto`) or one form.
    pub structured_output: StructuredOutput,
    pub limits: Limits,
}

/// The structured-output form a server was found to accept, shared by every copy of a model
/// (a user's own key makes a copy) for the life of the process.
#[derive(Debug, Default)]
pub struct Learned(Mutex<Option<StructuredForm>>);

impl Learned {
    fn get(&self) -> Option<StructuredForm> {
        self.0.lock().ok().and_then(|g| *g)
    }

    /// Records `form`; true when it is news (to log it once).
    fn set(&self, form: StructuredForm) -> bool {
        match self.0.lock() {
            Ok(mut g) if *g != Some(form) => {
                *g = Some(form);
                true
            }
            _ => false,
        }
    }
}

impl OpenAiConfig {
    /// A config with no key, no structured output and the default limits.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            structured_output: StructuredOutput::default(),
            limits: Limits::default(),
        }
    }
}

/// A model behind an OpenAI-compatible `/chat/completions`.
#[derive(Clone, Debug)]
pub struct OpenAiModel {
    config: OpenAiConfig,
    url: String,
    max_tokens_field: MaxTokensField,
    /// Marked sensitive, so `Debug` shows their names only.
    extra_headers: HeaderMap,
    /// Send the key in this header as it is (Azure OpenAI: `api-key`) instead of
    /// `Authorization: Bearer`.
    key_header: Option<axum::http::HeaderName>,
    learned: Arc<Learned>,
    client: reqwest::Client,
}

impl OpenAiModel {
    /// `client` should come from [`super::http_client`] (for the connect timeout); the
    /// first-token and idle timeouts apply whatever the client.
    pub fn new(config: OpenAiConfig, client: reqwest::Client) -> Self {
        // A query in the base URL (Azure's `?api-version=…`) stays after the path.
        let (path, query) = match config.base_url.split_once('?') {
            Some((path, query)) => (path, format!("?{query}")),
            None => (config.base_url.as_str(), String::new()),
        };
        let url = format!("{}/chat/completions{query}", path.trim_end_matches('/'));
        Self {
            config,
            url,
            max_tokens_field: MaxTokensField::default(),
            extra_headers: HeaderMap::new(),
            key_header: None,
            learned: Arc::default(),
            client,
        }
    }

    /// Shares what was learned of the server's structured output with other copies.
    pub fn with_learned(mut self, learned: Arc<Learned>) -> Self {
        self.learned = learned;
        self
    }

    /// Sends the reply's token limit in `field` (default `max_tokens`).
    pub fn with_max_tokens_field(mut self, field: MaxTokensField) -> Self {
        self.max_tokens_field = field;
        self
    }

    /// Sends `headers` with every request (`OpenAI-Organization`, a gateway's key, …). Their
    /// values are treated as secrets.
    /// Sends the key in `name` (e.g. `api-key` for Azure OpenAI) instead of as a bearer token.
    pub fn with_key_header(mut self, name: axum::http::HeaderName) -> Self {
        self.key_header = Some(name);
        self
    }

    pub fn with_headers(mut self, headers: HeaderMap) -> Self {
        self.extra_headers = sensitive(headers);
        self
    }

    fn headers(&self) -> Result<HeaderMap, LlmError> {
        let mut headers = self.extra_headers.clone();
        headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(key) = &self.config.api_key {
            // A key with characters a header cannot hold cannot be right; the header error
            // is not passed on, as it could quote the key.
            let (name, text) = match &self.key_header {
                Some(name) => (name.clone(), key.expose_secret().to_owned()),
                None => (AUTHORIZATION, format!("Bearer {}", key.expose_secret())),
            };
            let mut value = HeaderValue::from_str(&text).map_err(|_| LlmError::Unauthorized)?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        Ok(headers)
    }

    fn body(&self, request: &ChatRequest, form: StructuredForm) -> Result<Vec<u8>, LlmError> {
        let (messages, response_format) = match (&request.response_schema, form) {
            (Some(schema), StructuredForm::JsonSchema) => (
                request.messages.clone(),
                Some(serde_json::json!({
                    "type": "json_schema",
                    // Not strict: strict mode rejects schemas with optional properties or
                    // open objects, which table schemas have.
                    "json_schema": {"name": "table", "schema": schema, "strict": false},
                })),
            ),
            // llama-cpp-python's JSON mode with a schema (it refuses `json_schema`).
            (Some(schema), StructuredForm::JsonObject) => (
                request.messages.clone(),
                Some(serde_json::json!({"type": "json_object", "schema": schema})),
            ),
            (Some(schema), StructuredForm::Prompt) => {
                (schema_in_prompt(&request.messages, schema), None)
            }
            (None, _) => (request.messages.clone(), None),
        };
        let (max_tokens, max_completion_tokens) = match self.max_tokens_field {
            MaxTokensField::MaxTokens => (request.max_tokens, None),
            MaxTokensField::MaxCompletionTokens => (None, request.max_tokens),
        };
        let body = WireRequest {
            model: &self.config.model,
            messages: &messages,
            stream: true,
            stream_options: StreamOptions {
                include_usage: true,
            },
            max_tokens,
            max_completion_tokens,
            temperature: request.temperature.map(wire_f32),
            response_format,
        };
        serde_json::to_vec(&body)
            .map_err(|e| LlmError::Protocol(format!("cannot encode the request: {e}")))
    }

    async fn attempt(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        form: Option<StructuredForm>,
    ) -> Result<EventStream, LlmError> {
        let request = self
            .client
            .post(&self.url)
            .headers(headers.clone())
            .body(body.to_vec());
        match sse::send(request, self.config.api_key.as_ref()).await {
            Ok(response) => Ok(sse::decode(response, ChunkDecoder::default())),
            Err(LlmError::Upstream { status, message })
                if matches!(
                    form,
                    Some(StructuredForm::JsonSchema | StructuredForm::JsonObject)
                ) && refuses_response_format(status, &message) =>
            {
                Err(LlmError::Unsupported(message))
            }
            Err(e) => Err(e),
        }
    }

    /// The forms to try, in order, for a request with a schema.
    fn forms(&self) -> Vec<StructuredForm> {
        match self.config.structured_output {
            StructuredOutput::Pinned(form) => vec![form],
            StructuredOutput::Auto => {
                let mut form = Some(self.learned.get().unwrap_or(StructuredForm::JsonSchema));
                std::iter::from_fn(|| {
                    let f = form?;
                    form = f.next();
                    Some(f)
                })
                .collect()
            }
        }
    }
}

/// A refusal of the `response_format` sent, as servers word it: llama-cpp-python answers 500
/// "Input should be 'text' or 'json_object'"; others 400/422 naming `response_format` or
/// `json_schema`.
fn refuses_response_format(status: u16, message: &str) -> bool {
    let m = message.to_lowercase();
    matches!(status, 400 | 415 | 422 | 500 | 501)
        && (m.contains("response_format")
            || m.contains("json_schema")
            || m.contains("json_object")
            || m.contains("response format"))
}

#[async_trait::async_trait]
impl ChatModel for OpenAiModel {
    #[tracing::instrument(skip_all, fields(model = %self.config.model))]
    async fn stream(&self, request: ChatRequest) -> Result<EventStream, LlmError> {
        let headers = self.headers()?;
        if request.response_schema.is_none() {
            let body = self.body(&request, StructuredForm::Prompt)?;
            return retry::start(
                "openai",
                &self.config.limits,
                self.config.api_key.as_ref(),
                || self.attempt(&headers, &body, None),
            )
            .await;
        }
        // With a schema: the forms this server may take, each tried once it refused the one
        // before (negotiation happens before any text reaches the user).
        let forms = self.forms();
        let mut last = None;
        for form in forms {
            let body = self.body(&request, form)?;
            let started = retry::start(
                "openai",
                &self.config.limits,
                self.config.api_key.as_ref(),
                || self.attempt(&headers, &body, Some(form)),
            )
            .await;
            match started {
                Ok(stream) => {
                    if self.config.structured_output == StructuredOutput::Auto
                        && self.learned.set(form)
                    {
                        tracing::info!(
                            model = %self.config.model,
                            form = form.as_str(),
                            "the model's server takes structured output in this form"
                        );
                    }
                    let first =
                        futures_util::stream::once(
                            async move { Ok(StreamEvent::Structured(form)) },
                        );
                    return Ok(Box::pin(futures_util::StreamExt::chain(first, stream)));
                }
                Err(LlmError::Unsupported(message)) => {
                    tracing::info!(
                        model = %self.config.model,
                        form = form.as_str(),
                        %message,
                        "the model's server refused this form of structured output"
                    );
                    last = Some(LlmError::Unsupported(message));
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| LlmError::Protocol("no form of structured output".into())))
    }
}

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    messages: &'a [ChatMessage],
    stream: bool,
    stream_options: StreamOptions,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct StreamOptions {
    /// Ask for a last chunk with the token counts (ignored by servers that do not know it).
    include_usage: bool,
}

/// `chat.completion.chunk`, with only what we read; every field may be missing or null.
#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Option<Vec<Choice>>,
    #[serde(default)]
    usage: Option<WireUsage>,
    /// Some servers (vLLM, gateways) report a failure inside the stream.
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    /// The thinking of reasoning models: vLLM, DeepSeek's API and llama.cpp's server
    /// (`--reasoning-format deepseek`) send `reasoning_content`; OpenRouter and Ollama
    /// `reasoning`.
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    reasoning: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u32>,
    #[serde(default)]
    completion_tokens: Option<u32>,
}

/// Text as it comes; usage and the finish reason are held back so that the stream always
/// ends `Usage`, `Done` (the finish reason arrives before the usage chunk).
#[derive(Default)]
struct ChunkDecoder {
    finish: Option<FinishReason>,
    usage: Option<Usage>,
    /// `<think>…</think>` in the content.
    think: ThinkSplitter,
}

impl ChunkDecoder {
    fn finish(&mut self, out: &mut VecDeque<StreamEvent>) {
        self.think.finish(out);
        if let Some(usage) = self.usage.take() {
            out.push_back(StreamEvent::Usage(usage));
        }
        let reason = self.finish.take().unwrap_or(FinishReason::Stop);
        out.push_back(StreamEvent::Done(reason));
    }
}

impl sse::Decoder for ChunkDecoder {
    fn event(&mut self, event: &Event, out: &mut VecDeque<StreamEvent>) -> Result<(), LlmError> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(());
        }
        if data == "[DONE]" {
            self.finish(out);
            return Ok(());
        }
        let chunk: Chunk = parse_json("chunk", data)?;
        if let Some(error) = chunk.error {
            return Err(in_stream_error(&error));
        }
        if let Some(usage) = chunk.usage {
            self.usage = Some(Usage {
                prompt_tokens: usage.prompt_tokens.unwrap_or(0),
                completion_tokens: usage.completion_tokens.unwrap_or(0),
            });
        }
        // We ask for one choice (`n` unset); any others are not ours to show.
        for choice in chunk.choices.into_iter().flatten().filter(|c| c.index == 0) {
            if let Some(delta) = choice.delta {
                if let Some(thought) = delta.reasoning_content.or(delta.reasoning)
                    && !thought.is_empty()
                {
                    out.push_back(StreamEvent::Thinking(thought));
                }
                if let Some(text) = delta.content
                    && !text.is_empty()
                {
                    self.think.push(&text, out);
                }
            }
            if let Some(reason) = choice.finish_reason {
                self.finish = Some(finish_reason(&reason));
            }
        }
        Ok(())
    }

    fn end(&mut self, out: &mut VecDeque<StreamEvent>) -> Result<(), LlmError> {
        // Some servers close the stream after the finish reason without `[DONE]`.
        if self.finish.is_some() {
            self.finish(out);
            Ok(())
        } else {
            Err(LlmError::Protocol(
                "the stream ended before the reply was complete".into(),
            ))
        }
    }
}

fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "stop" | "eos" | "end_turn" => FinishReason::Stop,
        "length" | "max_tokens" => FinishReason::Length,
        "content_filter" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_owned()),
    }
}

/// `{"error": {"message": …, "code": 400}}` inside the stream; the status is the numeric code
/// when there is one (vLLM), else 500.
fn in_stream_error(error: &serde_json::Value) -> LlmError {
    let status = error
        .get("code")
        .and_then(serde_json::Value::as_u64)
        .and_then(|code| u16::try_from(code).ok())
        .filter(|code| (400..600).contains(code))
        .unwrap_or(500);
    if status == 429 {
        return LlmError::RateLimited { retry_after: None };
    }
    let message = error
        .get("message")
        .and_then(serde_json::Value::as_str)
        .or_else(|| error.as_str())
        .unwrap_or("error in the stream")
        .to_owned();
    LlmError::Upstream { status, message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::sse::Decoder as _;

    fn decode(lines: &[&str]) -> Result<Vec<StreamEvent>, LlmError> {
        let mut decoder = ChunkDecoder::default();
        let mut out = VecDeque::new();
        for data in lines {
            let event = Event {
                data: (*data).to_owned(),
                ..Event::default()
            };
            decoder.event(&event, &mut out)?;
            // As in `sse::decode`: nothing is read after `Done`.
            if matches!(out.back(), Some(StreamEvent::Done(_))) {
                return Ok(out.into_iter().collect());
            }
        }
        decoder.end(&mut out)?;
        Ok(out.into_iter().collect())
    }

    #[test]
    fn usage_comes_before_done_whatever_the_wire_order() {
        let events = decode(&[
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}],"usage":null}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#,
            "[DONE]",
        ])
        .unwrap();
        assert_eq!(
            events,
            vec![
                StreamEvent::Delta("Hi".into()),
                StreamEvent::Usage(Usage {
                    prompt_tokens: 3,
                    completion_tokens: 1
                }),
                StreamEvent::Done(FinishReason::Length),
            ]
        );
    }

    #[test]
    fn a_stream_cut_before_the_finish_is_a_protocol_error() {
        let result = decode(&[r#"{"choices":[{"index":0,"delta":{"content":"Hi"}}]}"#]);
        assert!(matches!(result, Err(LlmError::Protocol(_))));
    }

    #[test]
    fn an_error_inside_the_stream_keeps_its_status() {
        let result = decode(&[r#"{"error":{"message":"bad","code":400}}"#]);
        assert_eq!(
            result,
            Err(LlmError::Upstream {
                status: 400,
                message: "bad".into()
            })
        );
    }

    #[test]
    fn debug_output_hides_the_key_and_header_values() {
        let mut config = OpenAiConfig::new("http://x/v1", "m");
        config.api_key = Some(SecretString::from("sk-hidden-1"));
        let mut headers = HeaderMap::new();
        headers.insert("x-gateway-key", HeaderValue::from_static("gw-hidden-2"));
        let model = OpenAiModel::new(config, reqwest::Client::new()).with_headers(headers);
        let debug = format!("{model:?}");
        assert!(!debug.contains("sk-hidden-1") && !debug.contains("gw-hidden-2"));
        assert!(debug.contains("x-gateway-key"));
    }
}
