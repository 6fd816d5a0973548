//! `[google]`: OAuth, the service account, the Sheets and Drive endpoints and pacing.

use std::path::PathBuf;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};

/// Google Sheets: OAuth2 for users (needs `client_id` and the secret from `client_secret_env`)
/// and/or a service account key file. Every endpoint can be pointed elsewhere (proxies, tests).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GoogleConfig {
    /// OAuth2 client id (`….apps.googleusercontent.com`); empty: users cannot connect.
    pub client_id: String,
    /// Environment variable holding the OAuth2 client secret.
    pub client_secret_env: String,
    /// Where Google sends the user back; must be registered with the client.
    pub redirect_url: String,
    /// Where the browser goes after the callback (`?google=connected|error`).
    pub after_connect_url: String,
    /// A service account's JSON key file, for writing into spreadsheets shared with it.
    pub service_account_key_file: Option<PathBuf>,
    /// The spreadsheets the service account may write into, and for whom. A spreadsheet
    /// shared with the service account is reachable by everyone who can name it, so an
    /// export through the service account goes only into one listed here for its user.
    pub service_account_spreadsheets: Vec<ServiceAccountSpreadsheet>,
    pub auth_url: String,
    pub token_url: String,
    pub revoke_url: String,
    pub sheets_api_url: String,
    pub drive_api_url: String,
    /// Write requests per minute per Google account (Google's quota is 60).
    pub writes_per_minute: u32,
    /// Writes that may go at once before pacing starts.
    pub write_burst: u32,
    /// Attempts of one request answered 429 or 5xx before giving up.
    pub max_retries: u32,
    /// Longest wait between retries (a longer `Retry-After` fails the attempt instead).
    pub max_retry_wait_secs: u64,
    /// Cells per values write request.
    pub cells_per_request: u32,
    /// Changed rows up to which a sync updates those rows only (more: the tab is rewritten).
    pub sync_max_changed_rows: u32,
    pub request_timeout_secs: u64,
    /// The client secret read from `client_secret_env` at start-up.
    #[serde(skip)]
    pub client_secret: Option<SecretString>,
}

/// One spreadsheet the service account may write into (`[[google.service_account_spreadsheets]]`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccountSpreadsheet {
    /// Its id, or its URL.
    pub spreadsheet: String,
    /// The SheetGPT accounts (email addresses) that may export into it; `"*"`: every user.
    pub users: Vec<String>,
}

impl Default for GoogleConfig {
    fn default() -> Self {
        Self {
            client_id: String::new(),
            client_secret_env: "GOOGLE_CLIENT_SECRET".to_owned(),
            redirect_url: "http://127.0.0.1:8080/api/v1/integrations/google/callback".to_owned(),
            after_connect_url: "/".to_owned(),
            service_account_spreadsheets: Vec::new(),
            service_account_key_file: None,
            auth_url: "https://accounts.google.com/o/oauth2/v2/auth".to_owned(),
            token_url: "https://oauth2.googleapis.com/token".to_owned(),
            revoke_url: "https://oauth2.googleapis.com/revoke".to_owned(),
            sheets_api_url: "https://sheets.googleapis.com".to_owned(),
            drive_api_url: "https://www.googleapis.com".to_owned(),
            writes_per_minute: 60,
            write_burst: 10,
            max_retries: 5,
            max_retry_wait_secs: 120,
            cells_per_request: 100_000,
            sync_max_changed_rows: 500,
            request_timeout_secs: 60,
            client_secret: None,
        }
    }
}

impl GoogleConfig {
    /// Whether the user with this email may have the service account write into the
    /// spreadsheet with this id.
    pub fn service_account_may_write(&self, spreadsheet_id: &str, email: &str) -> bool {
        self.service_account_spreadsheets.iter().any(|grant| {
            sheetgpt_core::export::sheets::spreadsheet_id(&grant.spreadsheet).as_deref()
                == Some(spreadsheet_id)
                && grant
                    .users
                    .iter()
                    .any(|u| u == "*" || u.trim().eq_ignore_ascii_case(email))
        })
    }

    pub fn oauth_enabled(&self) -> bool {
        !self.client_id.is_empty()
    }

    pub fn enabled(&self) -> bool {
        self.oauth_enabled() || self.service_account_key_file.is_some()
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.oauth_enabled() && self.client_secret.is_none() {
            return Err(invalid(
                "google.client_secret_env",
                format!(
                    "google.client_id is set but the environment variable {} is not",
                    self.client_secret_env
                ),
            ));
        }
        for (key, url) in [
            ("google.redirect_url", &self.redirect_url),
            ("google.auth_url", &self.auth_url),
            ("google.token_url", &self.token_url),
            ("google.revoke_url", &self.revoke_url),
            ("google.sheets_api_url", &self.sheets_api_url),
            ("google.drive_api_url", &self.drive_api_url),
        ] {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(invalid(key, "must be an http:// or https:// URL"));
            }
        }
        if let Some(file) = &self.service_account_key_file
            && !file.is_file()
        {
            return Err(invalid(
                "google.service_account_key_file",
                format!("{} does not exist", file.display()),
            ));
        }
        for grant in &self.service_account_spreadsheets {
            if sheetgpt_core::export::sheets::spreadsheet_id(&grant.spreadsheet).is_none() {
                return Err(invalid(
                    "google.service_account_spreadsheets",
                    format!("`{}` is not a spreadsheet id or URL", grant.spreadsheet),
                ));
            }
            if grant.users.is_empty() || grant.users.iter().any(|u| u != "*" && !u.contains('@')) {
                return Err(invalid(
                    "google.service_account_spreadsheets",
                    format!(
                        "the users of `{}` must be email addresses or \"*\"",
                        grant.spreadsheet
                    ),
                ));
            }
        }
        if self.writes_per_minute == 0 || self.write_burst == 0 {
            return Err(invalid(
                "google.writes_per_minute",
                "writes_per_minute and write_burst must be at least 1",
            ));
        }
        if self.cells_per_request < 100 {
            return Err(invalid("google.cells_per_request", "must be at least 100"));
        }
        Ok(())
    }
}
