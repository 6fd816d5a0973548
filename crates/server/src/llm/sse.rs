//! The HTTP side of a streamed reply, shared by the remote providers: sending the request,
//! turning a refusal (4xx, 5xx) into an [`LlmError`], and decoding a Server-Sent Events body
//! into [`StreamEvent`]s with a provider-specific [`Decoder`].
//!
//! Error messages built here are shown to users, so they are cut short and scrubbed of the
//! API key, in case a server echoes it back.

use std::collections::VecDeque;
use std::time::Duration;

use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures_util::{StreamExt, stream};
use reqwest::{RequestBuilder, Response, StatusCode, header::HeaderMap};
use secrecy::{ExposeSecret, SecretString};

use super::{EventStream, LlmError, StreamEvent};

/// Longest upstream message kept in an error, in characters.
const MESSAGE_CHARS: usize = 300;
/// Most bytes of an error body read to find its message.
const ERROR_BODY_BYTES: usize = 16 * 1024;

/// Turns a provider's SSE events into stream events.
pub(crate) trait Decoder: Send + 'static {
    /// One SSE event arrived; push what it means to `out` (possibly nothing).
    fn event(&mut self, event: &Event, out: &mut VecDeque<StreamEvent>) -> Result<(), LlmError>;
    /// The body ended. Push the final events (ending with `Done`), or fail if the reply was
    /// cut short.
    fn end(&mut self, out: &mut VecDeque<StreamEvent>) -> Result<(), LlmError>;
}

/// Sends `request` and returns the response if it is a success; otherwise the error it means.
/// Messages taken from a body are kept whole here: [`clean`] scrubs and cuts them.
/// The whole error body (capped, scrubbed of `secret`) goes to the log for the operator; the
/// error keeps a sentence fit for the user.
pub(crate) async fn send(
    request: RequestBuilder,
    secret: Option<&SecretString>,
) -> Result<Response, LlmError> {
    let response = request.send().await.map_err(transport_error)?;
    if response.status().is_success() {
        Ok(response)
    } else {
        Err(error_from_response(response, secret).await)
    }
}

/// A refusal as an error: 401/403 → `Unauthorized`, 429 → `RateLimited` (unless the account
/// is out of quota, which waiting does not fix), others → `Upstream` with the body's message.
async fn error_from_response(response: Response, secret: Option<&SecretString>) -> LlmError {
    let status = response.status();
    let retry_after = retry_after(response.headers());
    let body = read_capped(response, ERROR_BODY_BYTES).await;
    tracing::warn!(
        status = status.as_u16(),
        body = %scrub(&String::from_utf8_lossy(&body), secret),
        "the model provider answered with an error"
    );
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return LlmError::Unauthorized;
    }
    let parsed: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    if status == StatusCode::TOO_MANY_REQUESTS && !is_quota_exhausted(parsed.as_ref()) {
        return LlmError::RateLimited { retry_after };
    }
    let message = parsed
        .as_ref()
        .and_then(error_message)
        .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_owned());
    let message = if message.is_empty() {
        status.canonical_reason().unwrap_or("no message").to_owned()
    } else {
        message
    };
    if is_context_too_long(status, parsed.as_ref(), &message) {
        return LlmError::ContextTooLong(message);
    }
    LlmError::Upstream {
        status: status.as_u16(),
        message,
    }
}

/// A refusal because the prompt does not fit the model's window, as each server says it:
/// OpenAI `code: context_length_exceeded`; llama.cpp's server `type:
/// exceed_context_size_error` ("the request exceeds the available context size"); vLLM "This
/// model's maximum context length is N tokens"; Anthropic "prompt is too long: N tokens > M
/// maximum"; Ollama and others "context length" / "context window".
fn is_context_too_long(
    status: StatusCode,
    body: Option<&serde_json::Value>,
    message: &str,
) -> bool {
    if !(status.is_client_error() || status == StatusCode::INTERNAL_SERVER_ERROR) {
        return false;
    }
    let error = body.and_then(|b| b.get("error"));
    let code_says = ["code", "type"].iter().any(|key| {
        error
            .and_then(|e| e.get(key))
            .and_then(|v| v.as_str())
            .is_some_and(|v| matches!(v, "context_length_exceeded" | "exceed_context_size_error"))
    });
    let m = message.to_lowercase();
    code_says
        || m.contains("maximum context length")
        || m.contains("context length exceeded")
        || m.contains("exceeds the available context size")
        || m.contains("exceeds the context window")
        || m.contains("context window")
        || m.contains("prompt is too long")
        || (m.contains("context") && m.contains("too long"))
}

/// The message of an error body: `{"error": {"message": …}}` (OpenAI, Anthropic),
/// `{"error": "…"}` (Ollama) or `{"message"|"detail": …}` (others).
fn error_message(body: &serde_json::Value) -> Option<String> {
    let error = body.get("error").unwrap_or(body);
    if let Some(text) = error.as_str() {
        return Some(text.to_owned());
    }
    ["message", "detail"]
        .iter()
        .find_map(|key| error.get(key).and_then(|v| v.as_str()))
        .map(str::to_owned)
}

/// OpenAI answers 429 `insufficient_quota` when the account has no credit left.
fn is_quota_exhausted(body: Option<&serde_json::Value>) -> bool {
    let Some(error) = body.and_then(|b| b.get("error")) else {
        return false;
    };
    ["code", "type"]
        .iter()
        .any(|key| error.get(key).and_then(|v| v.as_str()) == Some("insufficient_quota"))
}

/// Reads at most `cap` bytes of the body (an error page can be large, or never end).
async fn read_capped(mut response: Response, cap: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    while buf.len() < cap {
        match response.chunk().await {
            Ok(Some(chunk)) => buf.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    buf.truncate(cap);
    buf
}

/// The wait a server asks for: `retry-after-ms` (OpenAI), else `Retry-After` in seconds or as
/// an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return Duration::try_from_secs_f64(ms / 1000.0).ok();
    }
    let value = header("retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).ok();
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = date.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// A transport failure (no answer at all) as an error. The URL is left out: it is
/// configuration, not something to show a user.
pub(crate) fn transport_error(error: reqwest::Error) -> LlmError {
    if error.is_timeout() {
        return LlmError::Timeout("connect");
    }
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    LlmError::Connect(cut(&text))
}

/// The error fit to show: its message with `secret` replaced (in case a server echoed the
/// key back), then cut to [`MESSAGE_CHARS`]. In that order, so that a cut never leaves half a
/// key behind.
pub(crate) fn clean(error: LlmError, secret: Option<&SecretString>) -> LlmError {
    match error {
        LlmError::Connect(message) => LlmError::Connect(clean_message(&message, secret)),
        LlmError::Upstream { status, message } => LlmError::Upstream {
            status,
            message: clean_message(&message, secret),
        },
        LlmError::Protocol(message) => LlmError::Protocol(clean_message(&message, secret)),
        LlmError::ContextTooLong(message) => {
            LlmError::ContextTooLong(clean_message(&message, secret))
        }
        LlmError::Unsupported(message) => LlmError::Unsupported(clean_message(&message, secret)),
        other @ (LlmError::Timeout(_) | LlmError::RateLimited { .. } | LlmError::Unauthorized) => {
            other
        }
    }
}

fn clean_message(message: &str, secret: Option<&SecretString>) -> String {
    cut(&presentable(&scrub(message, secret)))
}

/// `text` with `secret` replaced, in case a server echoed the key back.
fn scrub(text: &str, secret: Option<&SecretString>) -> String {
    match secret.map(|s| s.expose_secret()).filter(|s| !s.is_empty()) {
        Some(secret) if text.contains(secret) => text.replace(secret, "[redacted]"),
        _ => text.to_owned(),
    }
}

/// A provider's message as a user may read it: its first line before any stack trace, with
/// file paths of the server left out (the log keeps the whole body).
fn presentable(message: &str) -> String {
    let first = message
        .split("Traceback (most recent call last)")
        .next()
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_default();
    let words: Vec<&str> = first
        .split(' ')
        .map(|w| {
            let bare = w.trim_matches(|c: char| "\"'()[],:;".contains(c));
            let unix = bare.starts_with('/') && bare[1..].contains('/');
            let windows =
                bare.len() > 3 && bare.as_bytes()[1] == b':' && bare[2..].starts_with('\\');
            if unix || windows { "…" } else { w }
        })
        .collect();
    let out = words.join(" ").trim_end_matches(':').trim().to_owned();
    if out.is_empty() {
        message.trim().chars().take(MESSAGE_CHARS).collect()
    } else {
        out
    }
}

fn cut(text: &str) -> String {
    if text.chars().count() <= MESSAGE_CHARS {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(MESSAGE_CHARS - 1).collect();
    short.push('…');
    short
}

struct Decoding<D> {
    events: std::pin::Pin<
        Box<
            dyn futures_util::Stream<Item = Result<Event, EventStreamError<reqwest::Error>>> + Send,
        >,
    >,
    decoder: D,
    pending: VecDeque<StreamEvent>,
    body_ended: bool,
    done: bool,
}

/// The events of an SSE response body, as decoded by `decoder`. The stream ends after `Done`
/// (polled once more, it reads the end of the body) or the first error; dropping it drops the
/// response, which closes the connection.
pub(crate) fn decode<D: Decoder>(response: Response, decoder: D) -> EventStream {
    let state = Decoding {
        events: Box::pin(response.bytes_stream().eventsource()),
        decoder,
        pending: VecDeque::new(),
        body_ended: false,
        done: false,
    };
    Box::pin(stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        if state.done {
            // Polled once more after `Done`: read the end of the body (it follows at once), so
            // that the connection goes back to the pool instead of being closed. Anything
            // else a server sends after the end is dropped with it.
            if !state.body_ended {
                let _ = state.events.next().await;
            }
            return None;
        }
        loop {
            if let Some(event) = state.pending.pop_front() {
                state.done = matches!(event, StreamEvent::Done(_));
                return Some((Ok(event), Some(state)));
            }
            if state.body_ended {
                // The decoder ended without `Done`; nothing more will come.
                return None;
            }
            let step = match state.events.next().await {
                Some(Ok(event)) => state.decoder.event(&event, &mut state.pending),
                Some(Err(error)) => Err(sse_error(error)),
                None => {
                    state.body_ended = true;
                    state.decoder.end(&mut state.pending)
                }
            };
            if let Err(error) = step {
                return Some((Err(error), None));
            }
        }
    }))
}

fn sse_error(error: EventStreamError<reqwest::Error>) -> LlmError {
    match error {
        EventStreamError::Transport(error) => transport_error(error),
        EventStreamError::Utf8(_) => LlmError::Protocol("the stream is not valid UTF-8".into()),
        EventStreamError::Parser(_) => LlmError::Protocol("the stream is not valid SSE".into()),
    }
}

/// Parses the JSON of one event, as a `Protocol` error if it does not fit `T`. The message
/// names the position only, never the content.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    what: &str,
    data: &str,
) -> Result<T, LlmError> {
    serde_json::from_str(data)
        .map_err(|error| LlmError::Protocol(cut(&format!("malformed {what}: {error}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_milliseconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert("retry-after-ms", "1500".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(1500)));

        let mut headers = HeaderMap::new();
        let soon = chrono::Utc::now() + chrono::Duration::seconds(30);
        let date = soon.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        headers.insert("retry-after", date.parse().unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(wait > Duration::from_secs(25) && wait <= Duration::from_secs(30));

        let mut headers = HeaderMap::new();
        headers.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
    }

    #[test]
    fn messages_are_cut_and_scrubbed_of_the_key() {
        let key = SecretString::from("sk-very-secret");
        let long = format!("bad key sk-very-secret {}", "x".repeat(1000));
        let message = clean_message(&long, Some(&key));
        assert!(!message.contains("sk-very-secret"));
        assert!(message.starts_with("bad key [redacted] "));
        assert_eq!(message.chars().count(), MESSAGE_CHARS);
    }

    #[test]
    fn a_message_loses_its_stack_trace_and_server_paths() {
        let raw = "Input should be 'text' or 'json_object' /opt/app/llama_cpp/server/app.py:123\nTraceback (most recent call last):\n  File \"/usr/lib/python3/x.py\"";
        let shown = clean_message(raw, None);
        assert_eq!(shown, "Input should be 'text' or 'json_object' …");
        let windows = clean_message("failed at C:\\models\\x.gguf: out of memory", None);
        assert_eq!(windows, "failed at … out of memory");
    }

    #[test]
    fn context_length_refusals_are_recognised_in_each_providers_words() {
        let yes = |status: u16, body: serde_json::Value| {
            let message = error_message(&body).unwrap_or_default();
            is_context_too_long(StatusCode::from_u16(status).unwrap(), Some(&body), &message)
        };
        assert!(yes(
            400,
            serde_json::json!({"error": {"message": "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.", "type": "invalid_request_error", "code": "context_length_exceeded"}})
        ));
        assert!(yes(
            400,
            serde_json::json!({"error": {"code": 400, "message": "request (9000 tokens) exceeds the available context size (4096 tokens), try increasing it", "type": "exceed_context_size_error"}})
        ));
        assert!(yes(
            400,
            serde_json::json!({"object": "error", "message": "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens (4000 in the messages, 1000 in the completion).", "type": "BadRequestError"})
        ));
        assert!(yes(
            400,
            serde_json::json!({"type": "error", "error": {"type": "invalid_request_error", "message": "prompt is too long: 210000 tokens > 200000 maximum"}})
        ));
        assert!(!yes(
            400,
            serde_json::json!({"error": {"message": "model not found"}})
        ));
        assert!(!yes(
            503,
            serde_json::json!({"error": {"message": "context window full, busy"}})
        ));
    }

    #[test]
    fn error_messages_are_found_in_the_usual_shapes() {
        let of = |v: serde_json::Value| error_message(&v);
        assert_eq!(
            of(serde_json::json!({"error": {"message": "bad model"}})).as_deref(),
            Some("bad model")
        );
        assert_eq!(
            of(serde_json::json!({"error": "model not found"})).as_deref(),
            Some("model not found")
        );
        assert_eq!(
            of(serde_json::json!({"detail": "no"})).as_deref(),
            Some("no")
        );
        assert_eq!(of(serde_json::json!({"x": 1})), None);
    }
}
