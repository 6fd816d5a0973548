//! Google Sheets: users connect their Google account once (OAuth2 authorization code with
//! PKCE), or the deployment uses a service account; exports write tables into spreadsheets
//! through the Sheets v4 API, and linked sheets follow later versions of their table.
//!
//! The service account writes wherever it has been given access, whoever asks: a spreadsheet
//! shared with it for one user is open to every user who learns its id. So it writes into a
//! spreadsheet only when an admin has listed it for that user
//! (`google.service_account_spreadsheets`), checked when the export is asked for, again when
//! its job runs, and at every sync of a link made that way.

pub mod client;
pub mod links;
pub mod oauth;
pub mod routes;
pub mod sheets;

use sea_orm::{ConnectionTrait, DbErr};
use std::sync::Arc;
use std::time::Duration;

use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, ClientId, ClientSecret, EndpointNotSet, EndpointSet, RedirectUrl, RevocationUrl,
    TokenUrl,
};
use secrecy::ExposeSecret;

use crate::config::GoogleConfig;

/// Scopes asked of users: their spreadsheets, and the Drive files this app creates (to share
/// them).
pub const SCOPES: [&str; 2] = [
    "https://www.googleapis.com/auth/spreadsheets",
    "https://www.googleapis.com/auth/drive.file",
];

pub type OAuthClient =
    BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointSet, EndpointSet>;

/// What the service holds for Google: an HTTP client, the OAuth client and the service
/// account. Built once at start-up. (Writes are paced through the database: [`write_slot`].)
pub struct Google {
    pub http: reqwest::Client,
    pub oauth: Option<OAuthClient>,
    pub service_account: Option<ServiceAccount>,
}

pub struct ServiceAccount {
    pub email: String,
    pub provider: Arc<gcp_auth::CustomServiceAccount>,
}

impl Google {
    pub fn from_config(config: &GoogleConfig) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            // Never follow a redirect with a bearer token or a client secret.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(config.request_timeout_secs))
            .connect_timeout(Duration::from_secs(10))
            .build()?;
        let oauth = match (&config.client_secret, config.oauth_enabled()) {
            (Some(secret), true) => Some(
                BasicClient::new(ClientId::new(config.client_id.clone()))
                    .set_client_secret(ClientSecret::new(secret.expose_secret().to_owned()))
                    .set_auth_uri(AuthUrl::new(config.auth_url.clone())?)
                    .set_token_uri(TokenUrl::new(config.token_url.clone())?)
                    .set_revocation_url(RevocationUrl::new(config.revoke_url.clone())?)
                    .set_redirect_uri(RedirectUrl::new(config.redirect_url.clone())?),
            ),
            _ => None,
        };
        let service_account = match &config.service_account_key_file {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    anyhow::anyhow!("google.service_account_key_file {}: {e}", path.display())
                })?;
                let key: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                    anyhow::anyhow!("google.service_account_key_file is not JSON: {e}")
                })?;
                let email = key["client_email"].as_str().unwrap_or_default().to_owned();
                let provider = gcp_auth::CustomServiceAccount::from_json(&text).map_err(|e| {
                    anyhow::anyhow!(
                        "google.service_account_key_file is not a service account key: {e}"
                    )
                })?;
                Some(ServiceAccount {
                    email,
                    provider: Arc::new(provider),
                })
            }
        };
        Ok(Self {
            http,
            oauth,
            service_account,
        })
    }

    pub fn enabled(&self) -> bool {
        self.oauth.is_some() || self.service_account.is_some()
    }
}

/// Whether the service account may write into this spreadsheet for the user with this email.
pub fn service_account_may_write(config: &GoogleConfig, spreadsheet_id: &str, email: &str) -> bool {
    config.service_account_may_write(spreadsheet_id, email)
}

/// The refusal of a service-account write into a spreadsheet not listed for the user.
pub fn not_allowed_message(spreadsheet_id: &str) -> String {
    format!(
        "SheetGPT's service account may not write into spreadsheet {spreadsheet_id} for you: an administrator must list it for your account (google.service_account_spreadsheets)."
    )
}

/// [`service_account_may_write`] as a request's answer: 403 `spreadsheet-not-allowed`.
pub fn check_service_account_spreadsheet(
    config: &GoogleConfig,
    spreadsheet_id: &str,
    email: &str,
) -> Result<(), crate::error::Error> {
    if service_account_may_write(config, spreadsheet_id, email) {
        return Ok(());
    }
    Err(crate::error::Error::forbidden(
        "spreadsheet-not-allowed",
        not_allowed_message(spreadsheet_id),
    ))
}

/// Claims a Google account's next write slot and says how long to wait for it. The slots are
/// kept in the database (`google_pacing`), so every instance paces one account against the same
/// clock: `google.writes_per_minute` evenly spaced, the first `google.write_burst` at once (the
/// generic cell rate algorithm, with the theoretical arrival time in the row).
pub async fn write_slot(
    db: &impl ConnectionTrait,
    account: &str,
    config: &GoogleConfig,
) -> Result<Duration, DbErr> {
    let interval = 60_000 / i64::from(config.writes_per_minute.max(1));
    let tolerance = interval * (i64::from(config.write_burst.max(1)) - 1);
    let now = chrono::Utc::now().timestamp_millis();
    let slot = crate::db::google::pacing_slot(db, account, interval, tolerance, now).await?;
    Ok(Duration::from_millis(
        u64::try_from(slot - now).unwrap_or(0),
    ))
}
