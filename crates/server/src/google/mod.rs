//! Google Sheets: users connect their Google account once (OAuth2 authorization code with
//! PKCE), or the deployment uses a service account; exports write tables into spreadsheets
//! through the Sheets v4 API, and linked sheets follow later versions of their table.

pub mod client;
pub mod links;
pub mod oauth;
pub mod routes;
pub mod sheets;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
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

/// What the service holds for Google: an HTTP client, the OAuth client, the service account
/// and the write pacer. Built once at start-up.
pub struct Google {
    pub http: reqwest::Client,
    pub oauth: Option<OAuthClient>,
    pub service_account: Option<ServiceAccount>,
    /// Write requests per Google account (user id or service account), paced to the quota.
    pub pacer: DefaultKeyedRateLimiter<String>,
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
        let per_minute = NonZeroU32::new(config.writes_per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(config.write_burst).unwrap_or(NonZeroU32::MIN);
        Ok(Self {
            http,
            oauth,
            service_account,
            pacer: RateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst)),
        })
    }

    pub fn enabled(&self) -> bool {
        self.oauth.is_some() || self.service_account.is_some()
    }
}
