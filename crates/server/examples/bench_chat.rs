//! Conversations benchmark: how much SheetGPT adds to a model's time to first token, and how
//! much memory the server needs with 1,000 reply streams open at once.
//!
//! The bench starts its own fake OpenAI-compatible provider (in this process, on
//! 127.0.0.1:0) and the real release binary as a child process (SQLite in a temporary data
//! dir, the fake configured as the default model), then:
//!
//! 1. **TTFT**: `BENCH_TTFT_REQUESTS` (200) sequential replies after `BENCH_TTFT_WARMUP` (20).
//!    Each round times one request straight to the fake (sent → first content chunk) and one
//!    message through SheetGPT (sent → first `delta` event), alternating which goes first so
//!    that drift and noise hit both sides alike. A conversation holds
//!    `BENCH_TTFT_PER_CONVERSATION` (10) messages, then a new one starts (its creation is not
//!    timed). Every reply is read to its end before the next request.
//! 2. **Memory**: `BENCH_STREAMS` (1000) streaming replies, spread over `BENCH_USERS` (10)
//!    users with one conversation per stream. The fake answers each with a first chunk at once,
//!    then one chunk a second for `BENCH_STREAM_SECS` (60) seconds. SQLite has one writer, so
//!    starts are staggered: at most `BENCH_START_CONCURRENCY` (32) requests are between
//!    "sent" and "first delta" at any time. Once every stream has had its first delta, the
//!    server's VmRSS and VmHWM are read from `/proc/<pid>/status`.
//!
//! Other settings: `SHEETGPT_BIN` (the server binary; default `target/release/sheetgpt`),
//! `BENCH_TTFT_CHUNKS` (5) and `BENCH_TTFT_CHUNK_MS` (1): the rest of a TTFT reply,
//! `BENCH_LOG_LEVEL` (`info`): the server's log level (its log goes to a file),
//! `BENCH_ONLY` (`ttft` or `memory`).
//!
//! Run `bench/chat.sh` (builds both, raises the open-file limit), or
//! `cargo build --release && cargo run --release -p sheetgpt --example bench_chat`.

#![expect(
    clippy::print_stdout,
    reason = "a benchmark reports on standard output"
)]

use std::convert::Infallible;
use std::fmt::Display;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::ListenerExt;
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use serde_json::{Value, json};
use sheetgpt::chat::context::BASE_PROMPT;
use tokio::sync::{Semaphore, mpsc, watch};

const MIB: f64 = 1024.0 * 1024.0;

#[tokio::main]
async fn main() -> Result<()> {
    let settings = Settings::from_env()?;
    if settings.only.as_deref() != Some("ttft") {
        check_open_files(settings.streams)?;
    }
    let fake = Fake::start().await?;
    let client = reqwest::Client::builder().tcp_nodelay(true).build()?;
    let server = Server::start(&settings, &client, &fake.base_url()).await?;
    let api = Api {
        client,
        base: format!("http://{}", server.addr),
    };
    println!(
        "SheetGPT conversations benchmark: {} (pid {}), SQLite, log level {}, {} CPUs, open-file limit {}",
        settings.bin.display(),
        server.pid,
        settings.log_level,
        std::thread::available_parallelism().map_or(0, usize::from),
        open_files_limit().map_or_else(|_| "?".to_owned(), |n| n.to_string()),
    );
    let at_ready = read_status(server.pid)?;
    println!("server RSS when ready: {}", at_ready.rss());

    if settings.only.as_deref() != Some("memory") {
        let ttft = ttft(&api, &fake, &settings).await?;
        ttft.print(&settings);
        println!(
            "   server after this part: {}",
            read_status(server.pid)?.rss()
        );
    }
    if settings.only.as_deref() != Some("ttft") {
        let memory = memory(&api, &fake, &server, &settings).await?;
        memory.print(&settings);
    }
    server.stop();
    Ok(())
}

struct Settings {
    bin: PathBuf,
    ttft_requests: usize,
    ttft_warmup: usize,
    ttft_per_conversation: usize,
    ttft_chunks: usize,
    ttft_chunk_delay: Duration,
    streams: usize,
    stream_secs: usize,
    start_concurrency: usize,
    users: usize,
    log_level: String,
    only: Option<String>,
}

impl Settings {
    fn from_env() -> Result<Self> {
        let default_bin =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/release/sheetgpt");
        let settings = Self {
            bin: std::env::var_os("SHEETGPT_BIN").map_or(default_bin, PathBuf::from),
            ttft_requests: var("BENCH_TTFT_REQUESTS", 200)?,
            ttft_warmup: var("BENCH_TTFT_WARMUP", 20)?,
            ttft_per_conversation: var("BENCH_TTFT_PER_CONVERSATION", 10)?,
            ttft_chunks: var("BENCH_TTFT_CHUNKS", 5)?,
            ttft_chunk_delay: Duration::from_millis(var("BENCH_TTFT_CHUNK_MS", 1)?),
            streams: var("BENCH_STREAMS", 1000)?,
            stream_secs: var("BENCH_STREAM_SECS", 60)?,
            start_concurrency: var("BENCH_START_CONCURRENCY", 32)?,
            users: var("BENCH_USERS", 10)?,
            log_level: var("BENCH_LOG_LEVEL", "info".to_owned())?,
            only: std::env::var("BENCH_ONLY").ok().filter(|s| !s.is_empty()),
        };
        if settings.ttft_requests == 0
            || settings.ttft_per_conversation == 0
            || settings.streams == 0
            || settings.start_concurrency == 0
            || settings.users == 0
        {
            bail!("request, stream, user and concurrency counts must be at least 1");
        }
        if let Some(only) = &settings.only
            && only != "ttft"
            && only != "memory"
        {
            bail!("BENCH_ONLY must be `ttft` or `memory`, not `{only}`");
        }
        Ok(settings)
    }
}

fn var<T: FromStr>(name: &str, default: T) -> Result<T>
where
    T::Err: Display,
{
    match std::env::var(name) {
        Ok(text) if !text.is_empty() => text
            .parse()
            .map_err(|e| anyhow::anyhow!("{name}={text}: {e}")),
        _ => Ok(default),
    }
}

/// The soft limit on open files of this process (the server inherits it).
fn open_files_limit() -> Result<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits")?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .context("no open-files line in /proc/self/limits")?;
    match line.split_whitespace().nth(3) {
        Some("unlimited") => Ok(u64::MAX),
        Some(n) => Ok(n.parse()?),
        None => bail!("cannot read the open-files limit"),
    }
}

/// Each stream holds two sockets in this process (to SheetGPT, and the fake's side of
/// SheetGPT's upstream request) and two in the server.
fn check_open_files(streams: usize) -> Result<()> {
    let needed = 2 * streams as u64 + 256;
    let limit = open_files_limit()?;
    if limit < needed {
        bail!(
            "the open-file limit is {limit}; {streams} streams need about {needed}. \
             Run `ulimit -n {}` first (bench/chat.sh does).",
            needed.next_power_of_two()
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The fake provider

/// How the fake answers: a first content chunk at once, then `chunks` more, `delay` apart.
#[derive(Clone, Copy)]
struct Script {
    chunks: usize,
    delay: Duration,
}

struct FakeState {
    script: Mutex<Script>,
    /// Answers whose body is still being sent (dropped when the client goes away).
    open: AtomicUsize,
}

struct Fake {
    addr: SocketAddr,
    state: Arc<FakeState>,
    task: tokio::task::JoinHandle<()>,
}

impl Fake {
    async fn start() -> Result<Self> {
        let state = Arc::new(FakeState {
            script: Mutex::new(Script {
                chunks: 5,
                delay: Duration::ZERO,
            }),
            open: AtomicUsize::new(0),
        });
        let router = Router::new()
            .route("/v1/chat/completions", post(completions))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        // Without TCP_NODELAY a chunk written right after another can wait for an ACK.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, router).await {
                eprintln!("fake provider stopped: {err}");
            }
        });
        Ok(Self { addr, state, task })
    }

    fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    fn set_script(&self, script: Script) {
        *self
            .state
            .script
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = script;
    }

    fn open(&self) -> usize {
        self.state.open.load(Ordering::SeqCst)
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Counts an answer as open while its body lives.
struct OpenGuard(Arc<FakeState>);

impl OpenGuard {
    fn new(state: Arc<FakeState>) -> Self {
        state.open.fetch_add(1, Ordering::SeqCst);
        Self(state)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `POST /v1/chat/completions`, streaming, in OpenAI's wire format (as the test fake in
/// `tests/api/fakes/openai.rs`): a role chunk, content chunks, a finish chunk, a usage chunk
/// (when asked for), `data: [DONE]`.
async fn completions(State(state): State<Arc<FakeState>>, body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    if request["stream"] != json!(true) {
        return (StatusCode::BAD_REQUEST, "the fake only streams").into_response();
    }
    let script = *state.script.lock().unwrap_or_else(PoisonError::into_inner);
    let wire = Wire {
        model: request["model"].as_str().unwrap_or("m").to_owned(),
        include_usage: request["stream_options"]["include_usage"] == json!(true),
    };
    let guard = OpenGuard::new(state);
    let frames = futures_util::stream::unfold(
        (0usize, wire, script, guard),
        |(i, wire, script, guard)| async move {
            let frame = if i == 0 {
                // The role chunk and the first text at once: the first token is immediate.
                let role = json!({"role": "assistant", "content": "", "refusal": null});
                format!(
                    "{}{}",
                    wire.chunk(role, None),
                    wire.chunk(json!({"content": "Hello"}), None)
                )
            } else if i <= script.chunks {
                if !script.delay.is_zero() {
                    tokio::time::sleep(script.delay).await;
                }
                wire.chunk(json!({"content": format!(" token{i}")}), None)
            } else if i == script.chunks + 1 {
                let mut end = wire.chunk(json!({}), Some("stop"));
                if wire.include_usage {
                    end.push_str(&wire.usage_chunk(50, i as u64));
                }
                end.push_str("data: [DONE]\n\n");
                end
            } else {
                return None;
            };
            Some((
                Ok::<_, Infallible>(Bytes::from(frame)),
                (i + 1, wire, script, guard),
            ))
        },
    );
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(frames),
    )
        .into_response()
}

struct Wire {
    model: String,
    include_usage: bool,
}

impl Wire {
    fn envelope(&self) -> Value {
        json!({
            "id": "chatcmpl-bench0001",
            "object": "chat.completion.chunk",
            "created": 1_764_000_000,
            "model": self.model,
            "system_fingerprint": "fp_bench",
        })
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> String {
        let mut chunk = self.envelope();
        chunk["choices"] =
            json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]);
        if self.include_usage {
            chunk["usage"] = Value::Null;
        }
        format!("data: {chunk}\n\n")
    }

    fn usage_chunk(&self, prompt: u64, completion: u64) -> String {
        let mut chunk = self.envelope();
        chunk["choices"] = json!([]);
        chunk["usage"] = json!({
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        });
        format!("data: {chunk}\n\n")
    }
}

// ---------------------------------------------------------------------------------------
// The server under test

struct Server {
    child: Child,
    pid: u32,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Server {
    async fn start(settings: &Settings, client: &reqwest::Client, fake_url: &str) -> Result<Self> {
        if !settings.bin.is_file() {
            bail!(
                "no server binary at {}; run `cargo build --release` or set SHEETGPT_BIN",
                settings.bin.display()
            );
        }
        let dir = tempfile::tempdir()?;
        let addr = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
            probe.local_addr()?
        };
        let log = std::fs::File::create(dir.path().join("server.log"))?;
        let mut command = Command::new(&settings.bin);
        command.arg("serve");
        // The server refuses SHEETGPT_* variables it does not know (SHEETGPT_BIN is ours), and
        // one meant for another setup (a database URL) must not leak in.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("SHEETGPT_") {
                command.env_remove(name);
            }
        }
        command
            .env("SHEETGPT_LISTEN", addr.to_string())
            .env("SHEETGPT_DATA_DIR", dir.path())
            .env("SHEETGPT_LOG_LEVEL", &settings.log_level)
            .env("SHEETGPT_MODELS__FAKE__PROVIDER", "openai")
            .env("SHEETGPT_MODELS__FAKE__BASE_URL", fake_url)
            .env("SHEETGPT_MODELS__FAKE__MODEL", "m")
            .env("SHEETGPT_DEFAULT_MODEL", "fake")
            // Not the working directory of the bench: a sheetgpt.toml there would be read.
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {}", settings.bin.display()))?;
        let mut server = Self {
            pid: child.id(),
            child,
            addr,
            dir,
        };
        server.wait_ready(client).await?;
        Ok(server)
    }

    async fn wait_ready(&mut self, client: &reqwest::Client) -> Result<()> {
        let url = format!("http://{}/readyz", self.addr);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!("the server exited ({status}):\n{}", self.log_tail());
            }
            if let Ok(r) = client.get(&url).send().await
                && r.status() == StatusCode::OK
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("the server was not ready in 30 s:\n{}", self.log_tail())
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// SIGTERM (graceful shutdown), then SIGKILL if it is not gone in 10 s.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("the server did not stop on SIGTERM; killing it");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Memory of a process, from `/proc/<pid>/status`, in KiB.
#[derive(Clone, Copy)]
struct Status {
    rss: u64,
    hwm: u64,
    anon: u64,
    threads: u64,
    fds: usize,
}

impl Status {
    fn rss(&self) -> String {
        format!(
            "VmRSS {} (anon {}), VmHWM {}, {} threads, {} fds",
            size(self.rss),
            size(self.anon),
            size(self.hwm),
            self.threads,
            self.fds
        )
    }
}

fn read_status(pid: u32) -> Result<Status> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |key: &str| -> Result<u64> {
        let line = text
            .lines()
            .find(|l| l.starts_with(key))
            .with_context(|| format!("no {key} in /proc/{pid}/status"))?;
        let value = line
            .split_whitespace()
            .nth(1)
            .with_context(|| format!("empty {key}"))?;
        Ok(value.parse()?)
    };
    Ok(Status {
        rss: field("VmRSS:")?,
        hwm: field("VmHWM:")?,
        anon: field("RssAnon:")?,
        threads: field("Threads:")?,
        fds: std::fs::read_dir(format!("/proc/{pid}/fd"))?.count(),
    })
}

fn size(kib: u64) -> String {
    let bytes = kib as f64 * 1024.0;
    format!("{:.1} MiB ({:.1} MB)", bytes / MIB, bytes / 1e6)
}

// ---------------------------------------------------------------------------------------
// The API as a client sees it

#[derive(Clone)]
struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    /// Registers `email` and signs in; the access token.
    async fn sign_up(&self, email: &str) -> Result<String> {
        let creds = json!({"email": email, "password": "bench-password-4821"});
        let r = self
            .client
            .post(format!("{}/api/v1/auth/register", self.base))
            .json(&creds)
            .send()
            .await?;
        if r.status() != StatusCode::CREATED {
            bail!("register {email}: {} {}", r.status(), r.text().await?);
        }
        let r = self
            .client
            .post(format!("{}/api/v1/auth/login", self.base))
            .json(&creds)
            .send()
            .await?;
        if r.status() != StatusCode::OK {
            bail!("login {email}: {} {}", r.status(), r.text().await?);
        }
        let body: Value = r.json().await?;
        body["access_token"]
            .as_str()
            .map(str::to_owned)
            .context("no access_token in the login answer")
    }

    async fn conversation(&self, token: &str) -> Result<String> {
        let r = self
            .client
            .post(format!("{}/api/v1/conversations", self.base))
            .bearer_auth(token)
            .json(&json!({}))
            .send()
            .await?;
        if r.status() != StatusCode::CREATED {
            bail!("create a conversation: {} {}", r.status(), r.text().await?);
        }
        let body: Value = r.json().await?;
        body["id"]
            .as_str()
            .map(str::to_owned)
            .context("no id in the conversation")
    }

    /// Sends a message asking for the reply as Server-Sent Events.
    async fn send(&self, token: &str, conversation: &str, text: &str) -> Result<reqwest::Response> {
        let r = self
            .client
            .post(format!(
                "{}/api/v1/conversations/{conversation}/messages",
                self.base
            ))
            .bearer_auth(token)
            .header(header::ACCEPT, "text/event-stream")
            .json(&json!({"content": text}))
            .send()
            .await?;
        if r.status() != StatusCode::OK {
            bail!("send a message: {} {}", r.status(), r.text().await?);
        }
        Ok(r)
    }
}

// ---------------------------------------------------------------------------------------
// 1. Time to first token

struct Ttft {
    direct: Vec<Duration>,
    through: Vec<Duration>,
}

async fn ttft(api: &Api, fake: &Fake, settings: &Settings) -> Result<Ttft> {
    fake.set_script(Script {
        chunks: settings.ttft_chunks,
        delay: settings.ttft_chunk_delay,
    });
    let token = api.sign_up("ttft@bench.example").await?;
    let mut conversation = String::new();
    let mut direct = Vec::with_capacity(settings.ttft_requests);
    let mut through = Vec::with_capacity(settings.ttft_requests);
    for i in 0..settings.ttft_warmup + settings.ttft_requests {
        if i % settings.ttft_per_conversation == 0 {
            conversation = api.conversation(&token).await?;
        }
        let prompt = format!(
            "Question {i}: list the ten largest European airports with passengers in 2023."
        );
        let (d, t) = if i % 2 == 0 {
            let d = direct_ttft(api, fake, &prompt).await?;
            (d, sheetgpt_ttft(api, &token, &conversation, &prompt).await?)
        } else {
            let t = sheetgpt_ttft(api, &token, &conversation, &prompt).await?;
            (direct_ttft(api, fake, &prompt).await?, t)
        };
        if i >= settings.ttft_warmup {
            direct.push(d);
            through.push(t);
        }
    }
    Ok(Ttft { direct, through })
}

/// Straight to the fake, with a body like SheetGPT's: sent → first chunk with text; the rest
/// of the answer is read (so that the connection is reused, as SheetGPT's is).
async fn direct_ttft(api: &Api, fake: &Fake, prompt: &str) -> Result<Duration> {
    let body = json!({
        "model": "m",
        "messages": [
            {"role": "system", "content": BASE_PROMPT},
            {"role": "user", "content": prompt},
        ],
        "stream": true,
        "stream_options": {"include_usage": true},
        "max_tokens": 4096,
    });
    let started = Instant::now();
    let r = api
        .client
        .post(format!("{}/chat/completions", fake.base_url()))
        .header(header::ACCEPT, "text/event-stream")
        .json(&body)
        .send()
        .await?;
    if r.status() != StatusCode::OK {
        bail!("the fake answered {}", r.status());
    }
    let mut events = r.bytes_stream().eventsource();
    let mut first = None;
    while let Some(event) = events.next().await {
        let event = event?;
        if first.is_none() && event.data != "[DONE]" {
            let chunk: Value = serde_json::from_str(&event.data)?;
            if chunk["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
            {
                first = Some(started.elapsed());
            }
        }
    }
    first.context("the fake sent no text")
}

/// Through SheetGPT: message sent → first `delta` event; read up to `done` and the end.
async fn sheetgpt_ttft(
    api: &Api,
    token: &str,
    conversation: &str,
    prompt: &str,
) -> Result<Duration> {
    let started = Instant::now();
    let r = api.send(token, conversation, prompt).await?;
    let mut events = r.bytes_stream().eventsource();
    let mut first = None;
    let mut done = false;
    while let Some(event) = events.next().await {
        let event = event?;
        match event.event.as_str() {
            "delta" if first.is_none() => first = Some(started.elapsed()),
            "error" => bail!("the reply failed: {}", event.data),
            "done" => {
                let data: Value = serde_json::from_str(&event.data)?;
                if data["status"] != "complete" {
                    bail!("the reply ended {}", data["status"]);
                }
                done = true;
            }
            _ => {}
        }
    }
    if !done {
        bail!("the reply stream ended without `done`");
    }
    first.context("the reply had no delta")
}

impl Ttft {
    fn print(&self, settings: &Settings) {
        let direct = Stats::of(&self.direct);
        let through = Stats::of(&self.through);
        let paired: Vec<f64> = self
            .direct
            .iter()
            .zip(&self.through)
            .map(|(d, t)| ms(*t) - ms(*d))
            .collect();
        let paired = Stats::of_ms(paired);
        let overhead = through.median - direct.median;
        println!();
        println!(
            "1. Time to first token: {} sequential requests after {} warm-up, {} messages per conversation",
            self.direct.len(),
            settings.ttft_warmup,
            settings.ttft_per_conversation
        );
        println!("                           median      p95      min      max");
        direct.print("straight from the fake");
        through.print("through SheetGPT");
        paired.print("paired difference");
        println!(
            "   overhead (difference of medians): {overhead:.2} ms, of p95s: {:.2} ms; target <= 5 ms: {}",
            through.p95 - direct.p95,
            verdict(overhead <= 5.0)
        );
    }
}

struct Stats {
    median: f64,
    p95: f64,
    min: f64,
    max: f64,
}

impl Stats {
    fn of(samples: &[Duration]) -> Self {
        Self::of_ms(samples.iter().map(|d| ms(*d)).collect())
    }

    fn of_ms(mut v: Vec<f64>) -> Self {
        v.sort_by(f64::total_cmp);
        let at = |q: f64| {
            if v.is_empty() {
                return f64::NAN;
            }
            // Nearest rank.
            let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
            v[rank - 1]
        };
        let median = if v.is_empty() {
            f64::NAN
        } else if v.len().is_multiple_of(2) {
            (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
        } else {
            v[v.len() / 2]
        };
        Self {
            median,
            p95: at(0.95),
            min: v.first().copied().unwrap_or(f64::NAN),
            max: v.last().copied().unwrap_or(f64::NAN),
        }
    }

    fn print(&self, label: &str) {
        println!(
            "   {label:<22} {:>7.2} ms {:>6.2} ms {:>6.2} ms {:>6.2} ms",
            self.median, self.p95, self.min, self.max
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

// ---------------------------------------------------------------------------------------
// 2. Memory with many open streams

struct Memory {
    users: usize,
    signed_up: Status,
    before: Status,
    open: Status,
    settled: Status,
    after: Status,
    start_time: Duration,
    first_delta: Vec<Duration>,
    failures: Vec<String>,
    open_at_fake: usize,
    open_at_client: usize,
}

/// What one stream reports: its time to first delta, or why it failed.
type Report = std::result::Result<Duration, String>;

async fn memory(api: &Api, fake: &Fake, server: &Server, settings: &Settings) -> Result<Memory> {
    fake.set_script(Script {
        chunks: settings.stream_secs,
        delay: Duration::from_secs(1),
    });
    let users = settings.users.min(settings.streams);
    let mut tokens = Vec::with_capacity(users);
    for u in 0..users {
        tokens.push(api.sign_up(&format!("memory{u}@bench.example")).await?);
    }
    let signed_up = read_status(server.pid)?;
    let mut conversations = Vec::with_capacity(settings.streams);
    for i in 0..settings.streams {
        let token = &tokens[i % users];
        conversations.push((token.clone(), api.conversation(token).await?));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = read_status(server.pid)?;

    let starting = Arc::new(Semaphore::new(settings.start_concurrency));
    let open = Arc::new(AtomicUsize::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (report_tx, mut reports) = mpsc::unbounded_channel::<Report>();
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(settings.streams);
    for (i, (token, conversation)) in conversations.into_iter().enumerate() {
        let stream = OpenStream {
            api: api.clone(),
            token,
            conversation,
            text: format!("Stream {i}: write a long story about spreadsheets."),
            starting: starting.clone(),
            open: open.clone(),
            stop: stop_rx.clone(),
            report: report_tx.clone(),
        };
        tasks.push(tokio::spawn(stream.run()));
    }
    drop(report_tx);

    let mut first_delta = Vec::with_capacity(settings.streams);
    let mut failures = Vec::new();
    let deadline = Duration::from_secs(settings.stream_secs as u64);
    while first_delta.len() + failures.len() < settings.streams {
        match tokio::time::timeout(deadline, reports.recv()).await {
            Ok(Some(Ok(latency))) => first_delta.push(latency),
            Ok(Some(Err(failure))) => failures.push(failure),
            Ok(None) => break,
            Err(_) => {
                failures.push("no first delta in time".to_owned());
                break;
            }
        }
    }
    let start_time = started.elapsed();
    let open_at_client = open.load(Ordering::SeqCst);
    let open_at_fake = fake.open();
    let open_status = read_status(server.pid)?;
    // A little later, with every stream receiving its chunk a second.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let settled = read_status(server.pid)?;

    let _ = stop_tx.send(true);
    for task in tasks {
        let _ = task.await;
    }
    // The server stores each cut reply as incomplete; give it time to.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = read_status(server.pid)?;
    Ok(Memory {
        users,
        signed_up,
        before,
        open: open_status,
        settled,
        after,
        start_time,
        first_delta,
        failures,
        open_at_fake,
        open_at_client,
    })
}

struct OpenStream {
    api: Api,
    token: String,
    conversation: String,
    text: String,
    starting: Arc<Semaphore>,
    open: Arc<AtomicUsize>,
    stop: watch::Receiver<bool>,
    report: mpsc::UnboundedSender<Report>,
}

impl OpenStream {
    /// Sends the message and reads the reply until told to stop (then drops it: the server
    /// sees the client leave) or until it ends.
    async fn run(mut self) {
        let Ok(permit) = self.starting.clone().acquire_owned().await else {
            return;
        };
        let started = Instant::now();
        let response = match self
            .api
            .send(&self.token, &self.conversation, &self.text)
            .await
        {
            Ok(r) => r,
            Err(err) => {
                let _ = self.report.send(Err(format!("{err:#}")));
                return;
            }
        };
        let mut events = response.bytes_stream().eventsource();
        let mut permit = Some(permit);
        loop {
            let event = tokio::select! {
                event = events.next() => event,
                _ = self.stop.wait_for(|stop| *stop) => break,
            };
            match event {
                Some(Ok(event)) if event.event == "delta" && permit.is_some() => {
                    permit = None;
                    self.open.fetch_add(1, Ordering::SeqCst);
                    let _ = self.report.send(Ok(started.elapsed()));
                }
                Some(Ok(event)) if event.event == "error" => {
                    if permit.is_some() {
                        let _ = self
                            .report
                            .send(Err(format!("error event: {}", event.data)));
                    }
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(err)) => {
                    if permit.is_some() {
                        let _ = self.report.send(Err(err.to_string()));
                    }
                    break;
                }
                None => {
                    if permit.is_some() {
                        let _ = self.report.send(Err("ended before a delta".to_owned()));
                    }
                    break;
                }
            }
        }
        if permit.is_none() {
            self.open.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Memory {
    fn print(&self, settings: &Settings) {
        let n = self.first_delta.len();
        println!();
        println!(
            "2. Memory: {} streaming replies ({} users, one conversation each; the fake sends a chunk a second for {} s)",
            settings.streams, self.users, settings.stream_secs
        );
        println!(
            "   all started in {:.1} s ({:.0}/s), at most {} starting at once; {} failed",
            self.start_time.as_secs_f64(),
            n as f64 / self.start_time.as_secs_f64(),
            settings.start_concurrency,
            self.failures.len()
        );
        for failure in self.failures.iter().take(5) {
            println!("     failure: {failure}");
        }
        let first = Stats::of(&self.first_delta);
        println!(
            "   first delta under this load: median {:.1} ms, p95 {:.1} ms, max {:.1} ms",
            first.median, first.p95, first.max
        );
        println!(
            "   open when measured: {} at the client, {} at the fake",
            self.open_at_client, self.open_at_fake
        );
        println!(
            "   server, users signed up:        {}",
            self.signed_up.rss()
        );
        println!("   server, conversations created:  {}", self.before.rss());
        println!("   server, all streams open:       {}", self.open.rss());
        println!("   server, 5 s later:              {}", self.settled.rss());
        println!("   server, streams closed:         {}", self.after.rss());
        let peak = self.open.rss.max(self.settled.rss);
        let per_stream = peak.saturating_sub(self.before.rss) as f64 / n.max(1) as f64;
        let peak_mb = peak as f64 * 1024.0 / 1e6;
        println!(
            "   RSS with {n} open: {:.1} MB ({per_stream:.1} KiB a stream over the idle server); target <= 200 MB: {}",
            peak_mb,
            verdict(peak_mb <= 200.0 && n == settings.streams)
        );
    }
}
