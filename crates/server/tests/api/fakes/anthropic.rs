//! A fake Anthropic Messages API (`POST /v1/messages`, streaming only), answering with the
//! documented event sequence: `message_start`, `content_block_start`, `ping`,
//! `content_block_delta`…, `content_block_stop`, `message_delta`, `message_stop`.
//!
//! It checks what the real API checks first: `x-api-key` (when a key is set),
//! `anthropic-version` and `max_tokens`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::routing::post;
use serde_json::{Value, json};

use super::{Recorded, Running, Shared, Tail, json_error, sse_response};

/// What the fake does with one request.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// Streams each chunk as a `text_delta` (`delay` before each), then `message_delta` with
    /// `stop_reason` and the output tokens, then `message_stop`.
    Stream {
        chunks: Vec<String>,
        delay: Duration,
        /// (input tokens, output tokens)
        usage: (u32, u32),
        stop_reason: &'static str,
    },
    /// Answers `status` with an Anthropic error body of `error_type`, and `retry-after` when
    /// given.
    Error {
        status: u16,
        error_type: &'static str,
        message: String,
        retry_after: Option<u64>,
    },
    /// Starts the message, sends `chunks`, then an `error` event of `error_type`
    /// (`overloaded_error`, `api_error`, …).
    StreamError {
        chunks: Vec<String>,
        error_type: &'static str,
    },
    /// Starts the message and sends `chunks`, then nothing more, keeping the connection open.
    Stall { chunks: Vec<String> },
    /// Starts the message and sends `chunks`, then an event whose data is not JSON.
    Malformed { chunks: Vec<String> },
    /// Reads the request and never answers, not even with headers.
    Hang,
    /// Extended thinking: a `thinking` block of `thinking_delta`s (index 0), then a text
    /// block of `chunks` (index 1), then `end_turn`.
    Thinking {
        thinking: Vec<String>,
        chunks: Vec<String>,
    },
}

impl Behaviour {
    /// A reply of `chunks`, at once, 10 input tokens, one output token per chunk, `end_turn`.
    pub fn text(chunks: &[&str]) -> Self {
        Self::Stream {
            chunks: owned(chunks),
            delay: Duration::ZERO,
            usage: (10, u32::try_from(chunks.len()).unwrap()),
            stop_reason: "end_turn",
        }
    }

    /// 429 `rate_limit_error` with `retry-after: secs`.
    pub fn rate_limited(secs: u64) -> Self {
        Self::Error {
            status: 429,
            error_type: "rate_limit_error",
            message: "Number of requests has exceeded your rate limit".into(),
            retry_after: Some(secs),
        }
    }

    /// `status` with the error type Anthropic uses for it.
    pub fn status(status: u16) -> Self {
        let error_type = match status {
            400 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            529 => "overloaded_error",
            _ => "api_error",
        };
        Self::Error {
            status,
            error_type,
            message: format!("The fake answers {status}"),
            retry_after: None,
        }
    }

    pub fn stall_after(chunks: &[&str]) -> Self {
        Self::Stall {
            chunks: owned(chunks),
        }
    }

    pub fn malformed_after(chunks: &[&str]) -> Self {
        Self::Malformed {
            chunks: owned(chunks),
        }
    }
}

fn owned(chunks: &[&str]) -> Vec<String> {
    chunks.iter().map(|c| (*c).to_owned()).collect()
}

struct FakeState {
    shared: Arc<Shared<Behaviour>>,
    api_key: Option<String>,
}

pub struct FakeAnthropic {
    state: Arc<FakeState>,
    server: Running,
}

impl FakeAnthropic {
    /// No key required.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// Answers 401 unless `x-api-key: <api_key>` is sent.
    pub async fn start_with(api_key: Option<String>) -> Self {
        let state = Arc::new(FakeState {
            shared: Shared::new(Behaviour::text(&["Hello", " from the fake."])),
            api_key,
        });
        let router = Router::new()
            .route("/v1/messages", post(messages))
            .with_state(state.clone());
        Self {
            state,
            server: Running::serve(router).await,
        }
    }

    /// What to configure as `base_url` (`http://127.0.0.1:PORT`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// Scripts the answer to the next request not yet scripted.
    pub fn push(&self, behaviour: Behaviour) -> &Self {
        self.state.shared.push(behaviour);
        self
    }

    /// The answer once the script is used up (at first: "Hello from the fake.").
    pub fn set_fallback(&self, behaviour: Behaviour) {
        self.state.shared.set_fallback(behaviour);
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.shared.requests()
    }

    /// Waits until a client has left in the middle of a streamed answer.
    pub async fn client_disconnected(&self, within: Duration) -> bool {
        self.state.shared.client_disconnected(within).await
    }

    pub fn disconnects(&self) -> usize {
        self.state.shared.disconnects()
    }
}

async fn messages(
    State(state): State<Arc<FakeState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.shared.record(peer, uri.path(), &headers, &body);
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(key) = &state.api_key
        && header("x-api-key") != Some(key.as_str())
    {
        return error_response(401, "authentication_error", "invalid x-api-key", None);
    }
    if header("anthropic-version").is_none() {
        let message = "anthropic-version: header is required";
        return error_response(400, "invalid_request_error", message, None);
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error_response(400, "invalid_request_error", "invalid JSON body", None);
    };
    if !request["max_tokens"].is_u64() {
        let message = "max_tokens: Field required";
        return error_response(400, "invalid_request_error", message, None);
    }
    if request["stream"] != json!(true) {
        let message = "the fake only streams; send \"stream\": true";
        return error_response(400, "invalid_request_error", message, None);
    }
    let model = request["model"]
        .as_str()
        .unwrap_or("claude-fake")
        .to_owned();
    let shared = state.shared.clone();
    match state.shared.next() {
        Behaviour::Stream {
            chunks,
            delay,
            usage: (input, output),
            stop_reason,
        } => {
            let mut frames = start(&model, input, &chunks, delay);
            frames.push((Duration::ZERO, content_block_stop()));
            frames.push((
                Duration::ZERO,
                event(
                    "message_delta",
                    json!({
                        "type": "message_delta",
                        "delta": {"stop_reason": stop_reason, "stop_sequence": null},
                        "usage": {"output_tokens": output},
                    }),
                ),
            ));
            frames.push((
                Duration::ZERO,
                event("message_stop", json!({"type": "message_stop"})),
            ));
            sse_response(frames, Tail::Close, shared)
        }
        Behaviour::Error {
            status,
            error_type,
            message,
            retry_after,
        } => error_response(status, error_type, &message, retry_after),
        Behaviour::StreamError { chunks, error_type } => {
            let mut frames = start(&model, 10, &chunks, Duration::ZERO);
            frames.push((
                Duration::ZERO,
                event("error", error_body(error_type, "Overloaded")),
            ));
            sse_response(frames, Tail::Close, shared)
        }
        Behaviour::Stall { chunks } => sse_response(
            start(&model, 10, &chunks, Duration::ZERO),
            Tail::Stall,
            shared,
        ),
        Behaviour::Malformed { chunks } => {
            let mut frames = start(&model, 10, &chunks, Duration::ZERO);
            frames.push((
                Duration::ZERO,
                "event: content_block_delta\ndata: {\"type\": \"content_block_delta\", \"delta\n\n"
                    .to_owned(),
            ));
            sse_response(frames, Tail::Close, shared)
        }
        Behaviour::Hang => std::future::pending().await,
        Behaviour::Thinking { thinking, chunks } => {
            let mut frames = start(&model, 10, &[], Duration::ZERO);
            // `start` opened a text block at index 0; thinking comes first, so close it empty.
            frames.push((Duration::ZERO, content_block_stop()));
            for t in &thinking {
                let delta = json!({"type": "content_block_delta", "index": 1,
                    "delta": {"type": "thinking_delta", "thinking": t}});
                frames.push((Duration::ZERO, event("content_block_delta", delta)));
            }
            for c in &chunks {
                let delta = json!({"type": "content_block_delta", "index": 2,
                    "delta": {"type": "text_delta", "text": c}});
                frames.push((Duration::ZERO, event("content_block_delta", delta)));
            }
            frames.push((
                Duration::ZERO,
                event(
                    "message_delta",
                    json!({"type": "message_delta",
                        "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                        "usage": {"output_tokens": 5}}),
                ),
            ));
            frames.push((
                Duration::ZERO,
                event("message_stop", json!({"type": "message_stop"})),
            ));
            sse_response(frames, Tail::Close, shared)
        }
    }
}

fn error_body(error_type: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": error_type, "message": message}})
}

fn error_response(
    status: u16,
    error_type: &str,
    message: &str,
    retry_after: Option<u64>,
) -> Response {
    json_error(status, error_body(error_type, message), retry_after)
}

fn event(name: &str, data: Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// `message_start`, the text block's start, a ping, and one delta per chunk.
fn start(model: &str, input: u32, chunks: &[String], delay: Duration) -> Vec<(Duration, String)> {
    let message_start = json!({
        "type": "message_start",
        "message": {
            "id": "msg_fake0001",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": model,
            "stop_reason": null,
            "stop_sequence": null,
            "usage": {"input_tokens": input, "output_tokens": 1},
        },
    });
    let block_start = json!({
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    });
    let mut frames = vec![
        (Duration::ZERO, event("message_start", message_start)),
        (Duration::ZERO, event("content_block_start", block_start)),
        (Duration::ZERO, event("ping", json!({"type": "ping"}))),
    ];
    frames.extend(chunks.iter().map(|text| {
        let delta = json!({
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": text},
        });
        (delay, event("content_block_delta", delta))
    }));
    frames
}

fn content_block_stop() -> String {
    event(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    )
}
