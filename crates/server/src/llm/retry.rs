//! Starting a reply and guarding it, the same way for every remote provider.
//!
//! An attempt is one request up to its first [`StreamEvent`]. Until then nothing has reached
//! the user, so a retryable failure (connection, timeout, 429, 5xx) is retried after a wait:
//! the server's `Retry-After` if it gave one, else exponential backoff with jitter. Once the
//! first event is there the reply is handed over, wrapped so that a silence longer than the
//! idle timeout ends it with `Timeout("idle")` instead of hanging.

use std::future::Future;
use std::time::Duration;

use futures_util::{StreamExt, stream};
use rand::Rng;
use secrecy::SecretString;

use super::sse::clean;
use super::{EventStream, Limits, LlmError, StreamEvent};

/// Longest wait between two attempts. A server asking for more (`Retry-After`) is not waited
/// for: the caller gets `RateLimited` with the wait and can tell the user.
const MAX_WAIT: Duration = Duration::from_secs(30);
/// Longest wait for the end of the body after `Done`.
const DRAIN: Duration = Duration::from_secs(1);

/// Runs `attempt` until it yields a first event, retrying as `limits` allow, and returns the
/// whole reply guarded by the idle timeout. Errors are cleaned of `secret` (see [`clean`]).
pub(crate) async fn start<F, Fut>(
    provider: &'static str,
    limits: &Limits,
    secret: Option<&SecretString>,
    mut attempt: F,
) -> Result<EventStream, LlmError>
where
    F: FnMut() -> Fut + Send,
    Fut: Future<Output = Result<EventStream, LlmError>> + Send,
{
    let mut retries = 0;
    loop {
        // From sending the request to the first event: a server that accepts the connection
        // and then says nothing must not hold the user forever.
        let started = tokio::time::timeout(limits.first_token_timeout, first_event(attempt()))
            .await
            .unwrap_or(Err(LlmError::Timeout("first token")));
        let error = match started {
            Ok((first, rest)) => {
                return Ok(guard(first, rest, limits.idle_timeout, secret.cloned()));
            }
            Err(error) => clean(error, secret),
        };
        if !error.is_retryable() || retries >= limits.max_retries {
            return Err(error);
        }
        let Some(wait) = wait_before_retry(&error, retries, limits.backoff) else {
            return Err(error);
        };
        retries += 1;
        tracing::warn!(
            provider,
            retry = retries,
            wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            error = %error,
            "model request failed; retrying"
        );
        tokio::time::sleep(wait).await;
    }
}

/// Waits for the attempt's first event; the stream comes back with it.
async fn first_event(
    attempt: impl Future<Output = Result<EventStream, LlmError>>,
) -> Result<(StreamEvent, EventStream), LlmError> {
    let mut stream = attempt.await?;
    match stream.next().await {
        Some(Ok(event)) => Ok((event, stream)),
        Some(Err(error)) => Err(error),
        None => Err(LlmError::Protocol("the reply ended before it began".into())),
    }
}

/// The wait before retry number `retries + 1`, or `None` when the server asks for longer
/// than [`MAX_WAIT`].
fn wait_before_retry(error: &LlmError, retries: u32, backoff: Duration) -> Option<Duration> {
    if let LlmError::RateLimited {
        retry_after: Some(wait),
    } = error
    {
        return (*wait <= MAX_WAIT).then_some(*wait);
    }
    let full = backoff
        .saturating_mul(2u32.saturating_pow(retries))
        .min(MAX_WAIT);
    // Jitter in [half, full] keeps clients that failed together from retrying together.
    let factor: f64 = rand::rng().random_range(0.5..=1.0);
    Some(full.mul_f64(factor))
}

struct Guarded {
    first: Option<StreamEvent>,
    rest: EventStream,
    idle: Duration,
    secret: Option<SecretString>,
    done: bool,
}

/// The reply: `first`, then `rest`, ending with `Timeout("idle")` when `rest` is silent for
/// longer than `idle`. Ends after `Done` or an error. After `Done`, `rest` is polled once more
/// (briefly) so that it can finish reading the body and keep the connection for reuse.
fn guard(
    first: StreamEvent,
    rest: EventStream,
    idle: Duration,
    secret: Option<SecretString>,
) -> EventStream {
    let state = Guarded {
        first: Some(first),
        rest,
        idle,
        secret,
        done: false,
    };
    Box::pin(stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        if state.done {
            // Briefly: the end of the body follows `Done` at once, or not at all.
            let _ = tokio::time::timeout(state.idle.min(DRAIN), state.rest.next()).await;
            return None;
        }
        let next = match state.first.take() {
            Some(first) => Some(Ok(first)),
            None => match tokio::time::timeout(state.idle, state.rest.next()).await {
                Ok(next) => next,
                Err(_) => Some(Err(LlmError::Timeout("idle"))),
            },
        };
        match next? {
            Ok(event) => {
                state.done = matches!(event, StreamEvent::Done(_));
                Some((Ok(event), Some(state)))
            }
            Err(error) => Some((Err(clean(error, state.secret.as_ref())), None)),
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let backoff = Duration::from_millis(100);
        let error = LlmError::Upstream {
            status: 500,
            message: String::new(),
        };
        for retries in 0..3 {
            let full = backoff * 2u32.pow(retries);
            let wait = wait_before_retry(&error, retries, backoff).unwrap();
            assert!(wait >= full / 2 && wait <= full, "{retries}: {wait:?}");
        }
        assert!(wait_before_retry(&error, 20, backoff).unwrap() <= MAX_WAIT);
    }

    #[test]
    fn retry_after_is_honoured_unless_it_is_too_long() {
        let asked = |secs| LlmError::RateLimited {
            retry_after: Some(Duration::from_secs(secs)),
        };
        let backoff = Duration::from_millis(100);
        assert_eq!(
            wait_before_retry(&asked(3), 0, backoff),
            Some(Duration::from_secs(3))
        );
        assert_eq!(wait_before_retry(&asked(120), 0, backoff), None);
    }
}
