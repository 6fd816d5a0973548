//! Calls to the Sheets v4 and Drive v3 APIs: bearer tokens (refreshed before they expire, and
//! once more on a 401), writes paced to the per-account quota, and 429/5xx answers retried
//! after `Retry-After` or an exponential back-off.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use uuid::Uuid;

use super::oauth;
use crate::state::AppState;

/// Whose Google access a request uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential {
    /// The user's connected Google account.
    User(Uuid),
    /// The deployment's service account.
    ServiceAccount,
}

impl Credential {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User(_) => "oauth",
            Self::ServiceAccount => "service_account",
        }
    }
}

/// Why a Google call failed, in terms a job can act on.
#[derive(Debug, thiserror::Error)]
pub enum GoogleError {
    #[error("Google is not connected")]
    NotConnected,
    /// Google refused the stored grant (revoked, expired): the user must connect again.
    #[error("Google access was revoked")]
    Reconnect,
    /// Google answered with an error that another attempt will not fix.
    #[error("Google answered {status}: {message}")]
    Api { status: u16, message: String },
    /// The network or Google failed in a way that may pass.
    #[error("Google is unavailable: {0}")]
    Transient(String),
}

impl GoogleError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Transient(_))
    }

    /// A sentence for the user.
    pub fn public_message(&self) -> String {
        match self {
            Self::NotConnected => {
                "Google is not connected; connect your Google account first.".to_owned()
            }
            Self::Reconnect => {
                "Google access was revoked or has expired; connect your Google account again."
                    .to_owned()
            }
            Self::Api { status: 404, .. } => {
                "The spreadsheet or tab was not found, or this account cannot open it.".to_owned()
            }
            Self::Api { status: 403, .. } => {
                "Google refused access to the spreadsheet (share it with this account).".to_owned()
            }
            Self::Api { status, message } => {
                let message: String = message.chars().take(300).collect();
                format!("Google refused the request ({status}): {message}")
            }
            Self::Transient(_) => "Google did not answer; the export will be retried.".to_owned(),
        }
    }
}

/// A series of calls made with one credential; counts them.
pub struct Session<'a> {
    pub state: &'a AppState,
    pub credential: Credential,
    calls: AtomicU32,
}

impl<'a> Session<'a> {
    pub fn new(state: &'a AppState, credential: Credential) -> Self {
        Self {
            state,
            credential,
            calls: AtomicU32::new(0),
        }
    }

    /// API requests made so far (retries included).
    pub fn calls(&self) -> u32 {
        self.calls.load(Ordering::Relaxed)
    }

    async fn token(&self, force_refresh: bool) -> Result<SecretString, GoogleError> {
        match self.credential {
            Credential::User(user_id) => {
                oauth::access_token(self.state, user_id, force_refresh).await
            }
            Credential::ServiceAccount => {
                let sa = self
                    .state
                    .google
                    .service_account
                    .as_ref()
                    .ok_or(GoogleError::NotConnected)?;
                let token = gcp_auth::TokenProvider::token(&*sa.provider, &super::SCOPES)
                    .await
                    .map_err(|e| GoogleError::Transient(format!("service account token: {e}")))?;
                Ok(SecretString::from(token.as_str().to_owned()))
            }
        }
    }

    fn pace_key(&self) -> String {
        match self.credential {
            Credential::User(id) => id.to_string(),
            Credential::ServiceAccount => "service-account".to_owned(),
        }
    }

    /// Sends a request to `url` with an optional JSON body and returns the JSON answer (Null
    /// for an empty one). `write` requests wait for the account's write quota.
    pub async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        write: bool,
    ) -> Result<Value, GoogleError> {
        let config = &self.state.config.google;
        let google = &self.state.google;
        let mut refreshed = false;
        let mut failures: u32 = 0;
        loop {
            if write {
                match super::write_slot(&self.state.db, &self.pace_key(), config).await {
                    Ok(wait) if !wait.is_zero() => tokio::time::sleep(wait).await,
                    Ok(_) => {}
                    // Unpaced, Google's own 429 and the retries below still hold the line.
                    Err(err) => tracing::warn!(error = %err, "could not pace a Google write"),
                }
            }
            let token = self.token(refreshed).await?;
            let mut req = google
                .http
                .request(method.clone(), url)
                .bearer_auth(token.expose_secret());
            if let Some(body) = body {
                req = req.json(body);
            }
            self.calls.fetch_add(1, Ordering::Relaxed);
            let wait = match req.send().await {
                Err(err) => {
                    tracing::warn!(error = %err, "Google request failed");
                    None
                }
                Ok(resp) => {
                    let status = resp.status();
                    if status.is_success() {
                        let bytes = resp
                            .bytes()
                            .await
                            .map_err(|e| GoogleError::Transient(e.to_string()))?;
                        if bytes.is_empty() {
                            return Ok(Value::Null);
                        }
                        return serde_json::from_slice(&bytes).map_err(|e| {
                            GoogleError::Transient(format!("Google answered non-JSON: {e}"))
                        });
                    }
                    if status == StatusCode::UNAUTHORIZED && !refreshed {
                        // The token expired early or was revoked: refresh once.
                        refreshed = true;
                        continue;
                    }
                    let retry_after = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let retryable = matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504);
                    let message = error_message(resp).await;
                    if status == StatusCode::UNAUTHORIZED {
                        return Err(match self.credential {
                            Credential::User(_) => GoogleError::Reconnect,
                            Credential::ServiceAccount => GoogleError::Api {
                                status: 401,
                                message,
                            },
                        });
                    }
                    if !retryable {
                        return Err(GoogleError::Api {
                            status: status.as_u16(),
                            message,
                        });
                    }
                    tracing::info!(
                        status = status.as_u16(),
                        "Google asked to slow down or failed; retrying"
                    );
                    retry_after
                }
            };
            failures += 1;
            if failures > config.max_retries {
                return Err(GoogleError::Transient(format!(
                    "no answer after {failures} attempts"
                )));
            }
            let backoff = Duration::from_millis(500u64.saturating_mul(1 << failures.min(8)));
            let wait = wait.unwrap_or(backoff);
            if wait > Duration::from_secs(config.max_retry_wait_secs) {
                return Err(GoogleError::Transient(format!(
                    "Google asked to wait {} s",
                    wait.as_secs()
                )));
            }
            tokio::time::sleep(wait).await;
        }
    }
}

/// Google's error text (`{"error": {"message": …}}`), without echoing anything else.
async fn error_message(resp: reqwest::Response) -> String {
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    body["error"]["message"]
        .as_str()
        .or_else(|| body["error_description"].as_str())
        .or_else(|| body["error"].as_str())
        .unwrap_or("no details")
        .chars()
        .take(500)
        .collect()
}
