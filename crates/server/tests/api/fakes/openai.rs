//! A fake OpenAI Chat Completions server (`POST /v1/chat/completions`, streaming only).
//!
//! By default it answers like OpenAI: chunks with `id`, `created`, `model`,
//! `system_fingerprint`, a first chunk with the role, `usage: null` on each chunk and a last
//! usage chunk with `choices: []` when the request asks for `stream_options.include_usage`,
//! then `data: [DONE]`. [`FakeOpenAi::start_local`] answers like a local server instead.
//!
//! ```ignore
//! let fake = FakeOpenAi::start().await;
//! fake.push(Behaviour::text(&["Hel", "lo"]));
//! fake.push(Behaviour::rate_limited(1));
//! let model = OpenAiModel::new(OpenAiConfig::new(fake.base_url(), "gpt-test"), client);
//! assert_eq!(fake.requests()[0].body["model"], "gpt-test");
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::{Recorded, Running, Shared, Tail, json_error, sse_response};

pub const MODEL: &str = "gpt-fake";

/// What the fake does with one request.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// Streams each chunk as a content delta (`delay` before each), then a chunk with
    /// `finish_reason: finish`, then the usage chunk (when `usage` is set and the request asked
    /// for it), then `data: [DONE]`.
    Stream {
        chunks: Vec<String>,
        delay: Duration,
        /// (prompt tokens, completion tokens)
        usage: Option<(u32, u32)>,
        finish: &'static str,
    },
    /// Answers `status` with an OpenAI error body, and `Retry-After` when given.
    Error {
        status: u16,
        message: String,
        retry_after: Option<u64>,
    },
    /// Sends the role chunk and `chunks`, then nothing more, keeping the connection open.
    Stall { chunks: Vec<String> },
    /// Sends the role chunk and `chunks`, then a `data:` line that is not JSON.
    Malformed { chunks: Vec<String> },
    /// Reads the request and never answers, not even with headers.
    Hang,
    /// Answers `status` with `body` as it is (the error shapes of llama.cpp, vLLM, …).
    Body { status: u16, body: Value },
    /// A reasoning model's answer: each of `thinking` as a delta in `field`
    /// (`reasoning_content` or `reasoning`), then `chunks` as content.
    Reasoning {
        field: &'static str,
        thinking: Vec<String>,
        chunks: Vec<String>,
    },
}

impl Behaviour {
    /// A reply of `chunks`, at once, with usage (10 prompt tokens, one per chunk) and `stop`.
    pub fn text(chunks: &[&str]) -> Self {
        Self::Stream {
            chunks: owned(chunks),
            delay: Duration::ZERO,
            usage: Some((10, u32::try_from(chunks.len()).unwrap())),
            finish: "stop",
        }
    }

    /// 429 with `Retry-After: secs`.
    pub fn rate_limited(secs: u64) -> Self {
        Self::Error {
            status: 429,
            message: "Rate limit reached for requests".into(),
            retry_after: Some(secs),
        }
    }

    /// `status` with a generic message and no `Retry-After`.
    pub fn status(status: u16) -> Self {
        Self::Error {
            status,
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

    pub fn body(status: u16, body: Value) -> Self {
        Self::Body { status, body }
    }

    pub fn reasoning(field: &'static str, thinking: &[&str], chunks: &[&str]) -> Self {
        Self::Reasoning {
            field,
            thinking: owned(thinking),
            chunks: owned(chunks),
        }
    }
}

fn owned(chunks: &[&str]) -> Vec<String> {
    chunks.iter().map(|c| (*c).to_owned()).collect()
}

/// How the fake behaves beyond its script.
#[derive(Clone, Debug)]
pub struct Options {
    /// Answer 401 unless `Authorization: Bearer <key>` is sent.
    pub api_key: Option<String>,
    /// Answer like a local server (llama.cpp, Ollama): chunks without `id`, `created` or
    /// `system_fingerprint`, `content: null` in the finish chunk, and no usage at all.
    pub local: bool,
    /// End the stream with `data: [DONE]` (some servers just close it).
    pub done_marker: bool,
    /// The `response_format` types the server takes; a request with another is refused the
    /// way `refusal` says. `None`: any.
    pub response_formats: Option<Vec<&'static str>>,
    /// How a refused `response_format` is answered: (status, OpenAI-shaped error message).
    pub refusal: (u16, &'static str),
    /// `GET /v1/models`: these entries under `data` (404 when `None`).
    pub models: Option<Arc<std::sync::Mutex<Vec<Value>>>>,
    /// `GET /props` (llama.cpp's server) answers this `n_ctx` (404 when `None`).
    pub props_n_ctx: Option<u32>,
    /// `POST /api/show` (Ollama) answers this body (404 when `None`).
    pub ollama_show: Option<Value>,
}

/// How llama-cpp-python refuses `json_schema`: a 500 with pydantic's validation error.
pub const LLAMA_CPP_PYTHON_REFUSAL: (u16, &str) = (
    500,
    "[{'type': 'literal_error', 'loc': ('body', 'response_format', 'type'), 'msg': \"Input should be 'text' or 'json_object'\", 'input': 'json_schema'}]",
);

impl Default for Options {
    fn default() -> Self {
        Self {
            api_key: None,
            local: false,
            done_marker: true,
            response_formats: None,
            refusal: (400, "response_format is not supported by this server"),
            models: None,
            props_n_ctx: None,
            ollama_show: None,
        }
    }
}

struct FakeState {
    shared: Arc<Shared<Behaviour>>,
    options: Options,
}

pub struct FakeOpenAi {
    state: Arc<FakeState>,
    server: Running,
}

impl FakeOpenAi {
    /// Answers like OpenAI, with no key required.
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    /// Answers like a local server: no `id`/`created`, no usage.
    pub async fn start_local() -> Self {
        Self::start_with(Options {
            local: true,
            ..Options::default()
        })
        .await
    }

    pub async fn start_with(options: Options) -> Self {
        let state = Arc::new(FakeState {
            shared: Shared::new(Behaviour::text(&["Hello", " from the fake."])),
            options,
        });
        let router = Router::new()
            .route("/v1/chat/completions", post(chat_completions))
            .route("/v1/models", axum::routing::get(list_models))
            .route("/props", axum::routing::get(props))
            .route("/api/show", post(ollama_show))
            // Azure OpenAI's shape: a deployment in the path, the API version in the query.
            .route(
                "/openai/deployments/{deployment}/chat/completions",
                post(chat_completions),
            )
            .with_state(state.clone());
        Self {
            state,
            server: Running::serve(router).await,
        }
    }

    /// What to configure as `base_url` (`http://127.0.0.1:PORT/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.server.addr)
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

async fn chat_completions(
    State(state): State<Arc<FakeState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.shared.record(peer, uri.path(), &headers, &body);
    if let Some(key) = &state.options.api_key {
        let sent = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if sent != Some(key.as_str()) {
            return error_response(401, "Incorrect API key provided.", None);
        }
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error_response(
            400,
            "We could not parse the JSON body of your request.",
            None,
        );
    };
    if request["stream"] != json!(true) {
        return error_response(400, "The fake only streams; send \"stream\": true.", None);
    }
    if let (Some(accepted), Some(kind)) = (
        &state.options.response_formats,
        request["response_format"]["type"].as_str(),
    ) && !accepted.contains(&kind)
    {
        let (status, message) = state.options.refusal;
        return error_response(status, message, None);
    }
    let wire = Wire {
        options: state.options.clone(),
        model: request["model"].as_str().unwrap_or(MODEL).to_owned(),
        include_usage: request["stream_options"]["include_usage"] == json!(true),
    };
    let shared = state.shared.clone();
    match state.shared.next() {
        Behaviour::Stream {
            chunks,
            delay,
            usage,
            finish,
        } => {
            let mut frames = wire.start(&chunks, delay);
            frames.push((delay, wire.chunk(json!({}), Some(finish))));
            if let Some((prompt, completion)) = usage.filter(|_| wire.sends_usage()) {
                frames.push((Duration::ZERO, wire.usage_chunk(prompt, completion)));
            }
            if wire.options.done_marker {
                frames.push((Duration::ZERO, "data: [DONE]\n\n".to_owned()));
            }
            sse_response(frames, Tail::Close, shared)
        }
        Behaviour::Error {
            status,
            message,
            retry_after,
        } => error_response(status, &message, retry_after),
        Behaviour::Stall { chunks } => {
            sse_response(wire.start(&chunks, Duration::ZERO), Tail::Stall, shared)
        }
        Behaviour::Malformed { chunks } => {
            let mut frames = wire.start(&chunks, Duration::ZERO);
            frames.push((
                Duration::ZERO,
                "data: {\"choices\": [{\"delta\": \n\n".to_owned(),
            ));
            sse_response(frames, Tail::Close, shared)
        }
        Behaviour::Hang => std::future::pending().await,
        Behaviour::Body { status, body } => json_error(status, body, None),
        Behaviour::Reasoning {
            field,
            thinking,
            chunks,
        } => {
            let mut frames = vec![(
                Duration::ZERO,
                wire.chunk(json!({"role": "assistant", "content": ""}), None),
            )];
            for t in &thinking {
                frames.push((Duration::ZERO, wire.chunk(json!({ field: t }), None)));
            }
            for c in &chunks {
                frames.push((Duration::ZERO, wire.chunk(json!({"content": c}), None)));
            }
            frames.push((Duration::ZERO, wire.chunk(json!({}), Some("stop"))));
            frames.push((Duration::ZERO, "data: [DONE]\n\n".to_owned()));
            sse_response(frames, Tail::Close, shared)
        }
    }
}

/// `GET /v1/models`, as OpenAI (and vLLM, with `max_model_len`) lists them.
async fn list_models(State(state): State<Arc<FakeState>>) -> Response {
    match &state.options.models {
        Some(models) => {
            let data = models.lock().unwrap().clone();
            axum::Json(json!({"object": "list", "data": data})).into_response()
        }
        None => error_response(404, "Not found", None),
    }
}

/// llama.cpp's server `GET /props`.
async fn props(State(state): State<Arc<FakeState>>) -> Response {
    match state.options.props_n_ctx {
        Some(n_ctx) => axum::Json(json!({
            "default_generation_settings": {"n_ctx": n_ctx, "model": "/models/x.gguf"},
            "total_slots": 1
        }))
        .into_response(),
        None => error_response(404, "File Not Found", None),
    }
}

/// Ollama's `POST /api/show`.
async fn ollama_show(State(state): State<Arc<FakeState>>) -> Response {
    match &state.options.ollama_show {
        Some(body) => axum::Json(body.clone()).into_response(),
        None => error_response(404, "404 page not found", None),
    }
}

/// OpenAI's error body.
fn error_response(status: u16, message: &str, retry_after: Option<u64>) -> Response {
    let kind = match status {
        401 => "invalid_request_error",
        429 => "requests",
        400..500 => "invalid_request_error",
        _ => "server_error",
    };
    json_error(
        status,
        json!({"error": {"message": message, "type": kind, "param": null, "code": null}}),
        retry_after,
    )
}

/// Builds the frames of one answer.
struct Wire {
    options: Options,
    model: String,
    include_usage: bool,
}

impl Wire {
    fn sends_usage(&self) -> bool {
        self.include_usage && !self.options.local
    }

    /// The role chunk, then one chunk per piece of text.
    fn start(&self, chunks: &[String], delay: Duration) -> Vec<(Duration, String)> {
        let role = if self.options.local {
            json!({"role": "assistant", "content": ""})
        } else {
            json!({"role": "assistant", "content": "", "refusal": null})
        };
        let mut frames = vec![(Duration::ZERO, self.chunk(role, None))];
        frames.extend(
            chunks
                .iter()
                .map(|text| (delay, self.chunk(json!({"content": text}), None))),
        );
        frames
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> String {
        let delta = match (finish, self.options.local) {
            (Some(_), true) => json!({"content": null}),
            _ => delta,
        };
        let choices =
            json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]);
        let chunk = if self.options.local {
            json!({"object": "chat.completion.chunk", "model": self.model, "choices": choices})
        } else {
            let mut chunk = self.envelope();
            chunk["choices"] = choices;
            if self.include_usage {
                chunk["usage"] = Value::Null;
            }
            chunk
        };
        format!("data: {chunk}\n\n")
    }

    fn usage_chunk(&self, prompt: u32, completion: u32) -> String {
        let mut chunk = self.envelope();
        chunk["choices"] = json!([]);
        chunk["usage"] = json!({
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        });
        format!("data: {chunk}\n\n")
    }

    fn envelope(&self) -> Value {
        json!({
            "id": "chatcmpl-fake0001",
            "object": "chat.completion.chunk",
            "created": 1_764_000_000,
            "model": self.model,
            "system_fingerprint": "fp_fake",
        })
    }
}
