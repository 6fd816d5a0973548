//! Configuration: built-in defaults < `sheetgpt.toml` (or `--config FILE`) < `SHEETGPT_*`
//! environment variables. Nested keys use a double underscore in the environment
//! (`SHEETGPT_HTTP__BODY_LIMIT_BYTES`).
//!
//! The configuration is a value built once in `main` (or by a test) and passed down; nothing
//! below this module reads the environment.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// Keys whose environment values are taken verbatim, never parsed as numbers or booleans
/// (a secret made only of digits is still a string).
const STRING_KEYS: &[&str] = &[
    "jwt_secret",
    "encryption_key",
    "database_url",
    "redis_url",
    "log_level",
    "auth.issuer",
    "auth.audience",
    "google.client_id",
    "google.client_secret_env",
];

/// The file read when neither `--config` nor `SHEETGPT_CONFIG` names one.
pub const DEFAULT_CONFIG_FILE: &str = "sheetgpt.toml";

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// Directory for the SQLite file, generated secrets and artifacts.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; defaults to a SQLite file in `data_dir`.
    pub database_url: Option<String>,
    /// HS256 signing secret for access tokens; generated into `data_dir` when unset.
    #[serde(serialize_with = "serialize_redacted")]
    pub jwt_secret: Option<SecretString>,
    /// Key (32 bytes, as 64 hex digits or base64) encrypting secrets kept in the database,
    /// such as users' own provider keys; generated into `data_dir` when unset.
    #[serde(serialize_with = "serialize_redacted")]
    pub encryption_key: Option<SecretString>,
    /// Shared rate limits across instances (used by later features).
    pub redis_url: Option<String>,
    pub log_format: LogFormat,
    /// A `tracing` filter directive, e.g. `info` or `sheetgpt=debug,tower_http=info`.
    pub log_level: String,
    pub database: DatabaseConfig,
    pub http: HttpConfig,
    pub auth: AuthConfig,
    pub tables: TablesConfig,
    pub chat: ChatConfig,
    pub exports: ExportsConfig,
    pub google: GoogleConfig,
    pub quotas: QuotasConfig,
    pub rate_limits: RateLimitsConfig,
    pub retention: RetentionConfig,
    /// The model used when a conversation names none; the built-in `offline` model when unset.
    pub default_model: Option<String>,
    /// Models offered by name (`[models.NAME]` in the file).
    pub models: BTreeMap<String, ModelConfig>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChatConfig {
    /// Longest message a user may send, in characters.
    pub max_message_chars: usize,
    /// Tokens reserved for the reply when trimming the context.
    pub reply_max_tokens: u32,
    /// Model tokens (prompt + completion) a user may spend per UTC day; 0 = no limit.
    pub daily_token_quota: u64,
    /// Rows of the current table shown to the model with its columns.
    pub table_sample_rows: usize,
    /// Times a reply cut at the output limit is asked to continue.
    pub max_continuations: u32,
    /// A conversation's WebSocket is closed after this long with no frame from the client and
    /// no reply running; 0 = never.
    pub ws_idle_secs: u64,
    /// A reply still `streaming` that no server has marked as being written for this long
    /// (its server died mid-reply) is ended as `incomplete`. A server writing a reply marks
    /// it every quarter of this.
    pub abandoned_reply_secs: u64,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Openai,
    Anthropic,
    Offline,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub provider: Provider,
    /// e.g. `https://api.openai.com/v1`, `http://127.0.0.1:11434/v1`, `https://api.anthropic.com`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// The provider's model id (`gpt-4o-mini`, `llama3.1`, `claude-sonnet-4-5`).
    #[serde(default)]
    pub model: Option<String>,
    /// Name of the environment variable holding the key; the key is never in the file.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Send the key in this header instead of `Authorization: Bearer` (Azure OpenAI:
    /// `api-key`).
    #[serde(default)]
    pub api_key_header: Option<String>,
    #[serde(default = "default_context_window")]
    pub context_window: u32,
    /// How a JSON Schema for the reply is sent (OpenAI-compatible servers): `auto` (or `true`)
    /// tries `json_schema`, then `json_object` with the schema, then the prompt, as the server
    /// refuses them, and remembers what it took; `json_schema`, `json_object` or `prompt` (or
    /// `false`, the default) pins one.
    #[serde(default)]
    pub structured_output: StructuredOutput,
    /// Also offer every model the server lists (`GET {base_url}/models`) as `NAME/<id>`,
    /// with this entry's settings (OpenAI-compatible servers).
    #[serde(default)]
    pub discover: bool,
    /// How long a discovered list of models is kept before the server is asked again.
    #[serde(default = "default_discover_cache")]
    pub discover_cache_secs: u64,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    #[serde(default = "default_first_token_timeout")]
    pub first_token_timeout_secs: u64,
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_secs: u64,
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// Price in US dollars per million prompt tokens (for usage costs).
    #[serde(default)]
    pub price_input_per_mtok: f64,
    /// Price in US dollars per million completion tokens.
    #[serde(default)]
    pub price_output_per_mtok: f64,
    /// The key read from `api_key_env` at start-up.
    #[serde(skip)]
    pub api_key: Option<SecretString>,
}

/// How a JSON Schema for the reply is sent to an OpenAI-compatible server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StructuredForm {
    /// `response_format: {"type": "json_schema", "json_schema": {…}}` (OpenAI, vLLM,
    /// llama.cpp's server, LM Studio, Ollama ≥ 0.5).
    JsonSchema,
    /// `response_format: {"type": "json_object", "schema": {…}}` (llama-cpp-python).
    JsonObject,
    /// The schema in the system prompt, for servers that take neither.
    Prompt,
}

impl StructuredForm {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::JsonSchema => "json_schema",
            Self::JsonObject => "json_object",
            Self::Prompt => "prompt",
        }
    }

    /// The form to try after a server refused this one.
    pub fn next(self) -> Option<Self> {
        match self {
            Self::JsonSchema => Some(Self::JsonObject),
            Self::JsonObject => Some(Self::Prompt),
            Self::Prompt => None,
        }
    }
}

/// `structured_output` of a model: negotiated, or pinned to one form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StructuredOutput {
    Auto,
    Pinned(StructuredForm),
}

impl Default for StructuredOutput {
    fn default() -> Self {
        Self::Pinned(StructuredForm::Prompt)
    }
}

impl StructuredOutput {
    /// `auto`, `json_schema`, `json_object` or `prompt`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Pinned(form) => form.as_str(),
        }
    }
}

impl<'de> Deserialize<'de> for StructuredOutput {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Flag(bool),
            Name(String),
        }
        match Raw::deserialize(d)? {
            Raw::Flag(true) => Ok(Self::Auto),
            Raw::Flag(false) => Ok(Self::Pinned(StructuredForm::Prompt)),
            Raw::Name(name) => match name.as_str() {
                "auto" => Ok(Self::Auto),
                "json_schema" => Ok(Self::Pinned(StructuredForm::JsonSchema)),
                "json_object" => Ok(Self::Pinned(StructuredForm::JsonObject)),
                "prompt" => Ok(Self::Pinned(StructuredForm::Prompt)),
                other => Err(serde::de::Error::custom(format!(
                    "structured_output `{other}`: expected auto, json_schema, json_object, prompt, true or false"
                ))),
            },
        }
    }
}

impl Serialize for StructuredOutput {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

fn default_context_window() -> u32 {
    8192
}
fn default_discover_cache() -> u64 {
    60
}
fn default_connect_timeout() -> u64 {
    10
}
fn default_first_token_timeout() -> u64 {
    60
}
fn default_idle_timeout() -> u64 {
    30
}
fn default_retries() -> u32 {
    2
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TablesConfig {
    /// Largest upload (CSV, TSV) accepted, in bytes.
    pub max_upload_bytes: usize,
    /// Most columns a table may have.
    pub max_columns: usize,
    /// Most rows a table may have.
    pub max_rows: u64,
    /// Longest formula of an `add_column`, in characters.
    pub max_formula_chars: usize,
    /// Parentheses a formula may have open at once.
    pub max_formula_depth: usize,
    /// Most characters one cell may hold, on every way in (uploads, JSON rows, changes,
    /// chat). Excel's own limit: no real cell is longer.
    pub max_cell_chars: usize,
    /// Bytes the parts of an uploaded XLSX, XLSB or ODS file may inflate to, all together.
    pub max_spreadsheet_inflated_bytes: u64,
    /// Bytes of a workbook's shared strings, which are held in memory while it is read.
    pub max_shared_strings_bytes: u64,
    /// Cells of the grid an XLS or ODS workbook is read into (every sheet's bounding box).
    pub max_sheet_cells: u64,
    /// Bytes of sort keys a `sort` change holds in memory; past it, sorted runs are written
    /// to the data directory's `tmp` and merged from there.
    pub sort_memory_bytes: u64,
    /// Bytes of row orders kept for the deep pages of sorted and filtered views (8 bytes a
    /// row; least recently used first out). 0 keeps none: each such page sorts again.
    pub order_cache_bytes: u64,
    /// Uploads up to this many bytes are imported within the request (201 with the table);
    /// larger ones are imported by a job (202 with the job to follow). 0: every import is a job.
    pub import_sync_bytes: u64,
    /// A change that touches every row (`sort`, `filter_delete`, `change_type`, `trim`,
    /// `add_column` with a default or formula) or a revert, on a table of more rows than this,
    /// runs as a job (202 with the job to follow); such a change must then be one operation.
    /// 0: every such change is a job.
    pub max_sync_rows: u64,
}

impl TablesConfig {
    /// The bounds an import is held to.
    pub fn import_limits(&self) -> sheetgpt_core::import::Limits {
        sheetgpt_core::import::Limits {
            max_columns: self.max_columns,
            max_rows: self.max_rows,
            max_cell_chars: self.max_cell_chars,
            max_inflated_bytes: self.max_spreadsheet_inflated_bytes,
            max_shared_strings_bytes: self.max_shared_strings_bytes,
            max_sheet_cells: self.max_sheet_cells,
            dates: sheetgpt_core::table::DateOrder::MonthFirst,
        }
    }
}

/// A rate: so many requests per so many seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limit {
    /// Requests allowed …
    pub requests: u32,
    /// … per this many seconds.
    pub per_secs: u64,
}

/// Request rate limits per route class; keyed by user, or by client address before sign-in.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitsConfig {
    pub enabled: bool,
    /// Sign-up, sign-in and token refresh, per client address.
    pub auth: Limit,
    /// Sending messages and regenerating replies.
    pub chat: Limit,
    /// Creating exports and downloading files.
    pub export: Limit,
    /// Every other API request.
    pub default: Limit,
    /// Prefix of the Redis keys (with `redis_url`).
    pub redis_prefix: String,
}

/// How long deleted things and records are kept.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// Days a deleted record (table, conversation, template, account…) stays restorable
    /// before it is purged for good.
    pub soft_deleted_days: u64,
    /// Days audit events are kept.
    pub audit_days: u64,
    /// How often each server sweeps.
    pub sweep_interval_secs: u64,
}

/// Per-user quotas (0 = no limit); admins can override them per user. The model token quota
/// is `chat.daily_token_quota`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QuotasConfig {
    /// Export jobs a user may create per UTC day.
    pub exports_per_day: u64,
    /// Rows a user's tables may hold in all.
    pub max_stored_rows: u64,
}

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
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExportsConfig {
    /// Export jobs this process runs at once (0: this process runs none, others do).
    pub workers: usize,
    /// How long a claimed job is reserved for its worker without a heartbeat; a job whose
    /// worker died is taken up again after this time. Heartbeats come every third of it.
    pub lease_secs: u64,
    /// How often idle workers look for jobs queued by other processes.
    pub poll_ms: u64,
    /// Attempts before a job fails for good.
    pub max_attempts: i32,
    /// Wait before the first retry; it doubles with each further attempt …
    pub retry_base_secs: u64,
    /// … up to this.
    pub retry_max_secs: u64,
    /// Export jobs one user may have queued or running at once.
    pub max_active_per_user: u64,
    /// Hours an export's file is kept for download.
    pub retention_hours: u64,
    /// Rows read from the database per query while writing a file.
    pub page_rows: u64,
    /// `GET /account/export` writes the archive within the request while the account holds at
    /// most this many table rows; above, it answers 202 with an `account_archive` job.
    pub archive_sync_rows: u64,
    /// Tables with more rows than this go into the account archive as CSV instead of .xlsx
    /// (an Excel sheet holds 1,048,575 rows under its header).
    pub archive_xlsx_max_rows: u64,
    /// Deflate level of .xlsx files (downloads, export jobs, archives, `convert`): 1 (fastest)
    /// to 9 (smallest).
    pub xlsx_compression: u8,
    /// How often an open `/jobs/{id}/events` stream looks at its job.
    pub events_poll_ms: u64,
    /// Job event streams one user may have open at once on this process.
    pub max_event_streams_per_user: usize,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    pub max_connections: u32,
    pub min_connections: u32,
    pub connect_timeout_secs: u64,
    pub acquire_timeout_secs: u64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Largest request body accepted, in bytes.
    pub body_limit_bytes: usize,
    /// Time a request may take before it is answered with 503.
    pub request_timeout_secs: u64,
    /// Origins allowed by CORS; empty means same-origin only.
    pub cors_allowed_origins: Vec<String>,
    /// Behind a reverse proxy: take the client address, scheme and host from the
    /// `X-Forwarded-For`/`-Proto`/`-Host` entries the trusted proxies appended (see
    /// `trusted_proxy_hops`), never from what the client wrote there itself.
    pub trust_forwarded_for: bool,
    /// How many proxies in front of the server append to `X-Forwarded-For`: the client address
    /// is the entry this many from the right (1: the rightmost, the one the nearest proxy
    /// added). Only with `trust_forwarded_for`.
    pub trusted_proxy_hops: u32,
    /// Time in-flight requests get to finish after SIGINT/SIGTERM.
    pub shutdown_grace_secs: u64,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub issuer: String,
    pub audience: String,
    /// Lifetime of an access token (JWT).
    pub access_token_ttl_secs: u64,
    /// Lifetime of a login session and so of its refresh tokens.
    pub session_ttl_days: u64,
    /// How long a checked session is trusted before the database is asked again. Revocations
    /// made through this instance take effect at once; those made elsewhere within this time.
    pub session_cache_secs: u64,
    /// Failed sign-ins allowed for one account from one client address before that address
    /// is refused for this account (the tight brake against guessing).
    pub login_failures_per_account_and_ip: u32,
    /// Failed sign-ins allowed for one account from all addresses together before sign-ins
    /// from addresses that never signed in to it are slowed down (guessing from many
    /// addresses). Addresses the account signed in from before are not slowed by it, so that
    /// strangers cannot lock the owner out.
    pub login_failures_per_account: u32,
    /// Failed sign-ins allowed from one client address, whatever the account.
    pub login_failures_per_ip: u32,
    /// Time over which each of the allowances above is restored.
    pub login_failure_window_secs: u64,
    /// The web page's refresh (cookie) only: a spent refresh token presented again within this
    /// many seconds of its exchange, while that exchange's new token is still unused, is taken
    /// for a lost answer (a reload mid-refresh, two tabs at once) and exchanged again instead
    /// of ending the session. 0 turns this off.
    pub web_refresh_grace_secs: u64,
    /// Argon2id memory cost in KiB.
    pub argon2_memory_kib: u32,
    /// Argon2id passes.
    pub argon2_iterations: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./sheetgpt-data"),
            database_url: None,
            jwt_secret: None,
            encryption_key: None,
            redis_url: None,
            log_format: LogFormat::Text,
            log_level: "info".to_owned(),
            database: DatabaseConfig {
                max_connections: 16,
                min_connections: 1,
                connect_timeout_secs: 5,
                acquire_timeout_secs: 5,
            },
            http: HttpConfig {
                body_limit_bytes: 2 * 1024 * 1024,
                request_timeout_secs: 30,
                cors_allowed_origins: Vec::new(),
                trust_forwarded_for: false,
                trusted_proxy_hops: 1,
                shutdown_grace_secs: 20,
            },
            auth: AuthConfig {
                issuer: "sheetgpt".to_owned(),
                audience: "sheetgpt-api".to_owned(),
                access_token_ttl_secs: 15 * 60,
                session_ttl_days: 30,
                session_cache_secs: 5,
                login_failures_per_account_and_ip: 5,
                login_failures_per_account: 100,
                login_failures_per_ip: 20,
                login_failure_window_secs: 15 * 60,
                web_refresh_grace_secs: 10,
                argon2_memory_kib: 19 * 1024,
                argon2_iterations: 2,
            },
            tables: TablesConfig {
                max_upload_bytes: 256 * 1024 * 1024,
                max_columns: 1_000,
                max_rows: 5_000_000,
                max_formula_chars: sheetgpt_core::formula::Limits::default().max_chars,
                max_formula_depth: sheetgpt_core::formula::Limits::default().max_depth,
                max_cell_chars: sheetgpt_core::import::DEFAULT_MAX_CELL_CHARS,
                max_spreadsheet_inflated_bytes: 2 * 1024 * 1024 * 1024,
                max_shared_strings_bytes: 512 * 1024 * 1024,
                max_sheet_cells: 5_000_000,
                sort_memory_bytes: 64 * 1024 * 1024,
                order_cache_bytes: 128 * 1024 * 1024,
                import_sync_bytes: 8 * 1024 * 1024,
                max_sync_rows: 100_000,
            },
            chat: ChatConfig {
                max_message_chars: 200_000,
                reply_max_tokens: 4096,
                daily_token_quota: 0,
                table_sample_rows: 20,
                max_continuations: 3,
                ws_idle_secs: 300,
                abandoned_reply_secs: 60,
            },
            google: GoogleConfig {
                client_id: String::new(),
                client_secret_env: "GOOGLE_CLIENT_SECRET".to_owned(),
                redirect_url: "http://127.0.0.1:8080/api/v1/integrations/google/callback"
                    .to_owned(),
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
            },
            rate_limits: RateLimitsConfig {
                enabled: true,
                auth: Limit {
                    requests: 60,
                    per_secs: 60,
                },
                chat: Limit {
                    requests: 60,
                    per_secs: 60,
                },
                export: Limit {
                    requests: 60,
                    per_secs: 60,
                },
                default: Limit {
                    requests: 1200,
                    per_secs: 60,
                },
                redis_prefix: "sheetgpt".to_owned(),
            },
            retention: RetentionConfig {
                soft_deleted_days: 30,
                audit_days: 365,
                sweep_interval_secs: 3600,
            },
            quotas: QuotasConfig {
                exports_per_day: 0,
                max_stored_rows: 0,
            },
            exports: ExportsConfig {
                workers: 2,
                lease_secs: 60,
                poll_ms: 1000,
                max_attempts: 5,
                retry_base_secs: 2,
                retry_max_secs: 300,
                max_active_per_user: 5,
                retention_hours: 7 * 24,
                page_rows: 2000,
                archive_sync_rows: 100_000,
                archive_xlsx_max_rows: 1_048_575,
                xlsx_compression: sheetgpt_core::export::DEFAULT_COMPRESSION_LEVEL,
                events_poll_ms: 500,
                max_event_streams_per_user: 8,
            },
            default_model: None,
            models: BTreeMap::new(),
        }
    }
}

/// A configuration that failed to load or to validate; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(String),
    #[error("configuration key `{key}`: {problem}")]
    Invalid { key: &'static str, problem: String },
}

impl From<figment::Error> for ConfigError {
    fn from(err: figment::Error) -> Self {
        // figment's messages already name the key and the source (file or variable); join
        // all of them so that every problem is reported at once.
        let all: Vec<String> = err.into_iter().map(|e| e.to_string()).collect();
        Self::Load(all.join("; "))
    }
}

impl Config {
    /// Loads defaults < config file < environment. `file` is `--config`; `env` is the process
    /// environment (passed in so that tests can build their own).
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = env.into_iter().collect();
        let env_file = env
            .iter()
            .find(|(k, _)| k == "SHEETGPT_CONFIG")
            .map(|(_, v)| PathBuf::from(v));
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file.map(Path::to_path_buf).or(env_file) {
            Some(path) => {
                if !path.is_file() {
                    return Err(ConfigError::Load(format!(
                        "config file {} does not exist",
                        path.display()
                    )));
                }
                figment = figment.merge(Toml::file_exact(path));
            }
            None if Path::new(DEFAULT_CONFIG_FILE).is_file() => {
                figment = figment.merge(Toml::file_exact(DEFAULT_CONFIG_FILE));
            }
            None => {}
        }
        // Environment last: SHEETGPT_HTTP__BODY_LIMIT_BYTES -> http.body_limit_bytes. Values
        // are parsed like figment's Env provider does (numbers, booleans, [lists]).
        for (name, value) in env.iter().cloned() {
            let Some(key) = name.strip_prefix("SHEETGPT_") else {
                continue;
            };
            if key.is_empty() || key == "CONFIG" {
                continue;
            }
            let key = key.to_ascii_lowercase().replace("__", ".");
            let value: figment::value::Value = if STRING_KEYS.contains(&key.as_str()) {
                value.into()
            } else {
                match value.parse() {
                    Ok(parsed) => parsed,
                    Err(never) => match never {},
                }
            };
            figment = figment.merge(Serialized::default(&key, value));
        }
        let mut config: Config = figment.extract()?;
        // Model keys come from the variables the file names, read here once.
        for model in config.models.values_mut() {
            if let Some(var) = &model.api_key_env {
                model.api_key = env
                    .iter()
                    .find(|(k, _)| k == var)
                    .map(|(_, v)| SecretString::from(v.clone()))
                    .filter(|v| !v.expose_secret().is_empty());
            }
        }
        if config.google.oauth_enabled() {
            let var = &config.google.client_secret_env;
            config.google.client_secret = env
                .iter()
                .find(|(k, _)| k == var)
                .map(|(_, v)| SecretString::from(v.clone()))
                .filter(|v| !v.expose_secret().is_empty());
        }
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        fn invalid(key: &'static str, problem: impl Into<String>) -> ConfigError {
            ConfigError::Invalid {
                key,
                problem: problem.into(),
            }
        }
        if let Some(url) = &self.database_url
            && !(url.starts_with("sqlite:")
                || url.starts_with("postgres://")
                || url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "database_url",
                "must start with sqlite:, postgres:// or postgresql://",
            ));
        }
        if let Some(secret) = &self.jwt_secret
            && secret.expose_secret().len() < 32
        {
            return Err(invalid("jwt_secret", "must be at least 32 bytes long"));
        }
        if let Some(key) = &self.encryption_key
            && let Err(err) = crate::crypto::Cipher::from_text(key.expose_secret())
        {
            return Err(invalid("encryption_key", err.to_string()));
        }
        if self.database.max_connections == 0 {
            return Err(invalid("database.max_connections", "must be at least 1"));
        }
        if self.database.min_connections > self.database.max_connections {
            return Err(invalid(
                "database.min_connections",
                "must not exceed database.max_connections",
            ));
        }
        if self.http.body_limit_bytes < 1024 {
            return Err(invalid("http.body_limit_bytes", "must be at least 1024"));
        }
        if self.http.request_timeout_secs == 0 {
            return Err(invalid("http.request_timeout_secs", "must be at least 1"));
        }
        for origin in &self.http.cors_allowed_origins {
            if origin != "*" && !(origin.starts_with("http://") || origin.starts_with("https://")) {
                return Err(invalid(
                    "http.cors_allowed_origins",
                    format!("`{origin}` is not an origin like https://app.example.com"),
                ));
            }
        }
        if !(60..=24 * 3600).contains(&self.auth.access_token_ttl_secs) {
            return Err(invalid(
                "auth.access_token_ttl_secs",
                "must be between 60 and 86400",
            ));
        }
        let google = &self.google;
        if google.oauth_enabled() && google.client_secret.is_none() {
            return Err(invalid(
                "google.client_secret_env",
                format!(
                    "google.client_id is set but the environment variable {} is not",
                    google.client_secret_env
                ),
            ));
        }
        for (key, url) in [
            ("google.redirect_url", &google.redirect_url),
            ("google.auth_url", &google.auth_url),
            ("google.token_url", &google.token_url),
            ("google.revoke_url", &google.revoke_url),
            ("google.sheets_api_url", &google.sheets_api_url),
            ("google.drive_api_url", &google.drive_api_url),
        ] {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(invalid(key, "must be an http:// or https:// URL"));
            }
        }
        if let Some(file) = &google.service_account_key_file
            && !file.is_file()
        {
            return Err(invalid(
                "google.service_account_key_file",
                format!("{} does not exist", file.display()),
            ));
        }
        for grant in &google.service_account_spreadsheets {
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
        if google.writes_per_minute == 0 || google.write_burst == 0 {
            return Err(invalid(
                "google.writes_per_minute",
                "writes_per_minute and write_burst must be at least 1",
            ));
        }
        if google.cells_per_request < 100 {
            return Err(invalid("google.cells_per_request", "must be at least 100"));
        }
        for (key, limit) in [
            ("rate_limits.auth", self.rate_limits.auth),
            ("rate_limits.chat", self.rate_limits.chat),
            ("rate_limits.export", self.rate_limits.export),
            ("rate_limits.default", self.rate_limits.default),
        ] {
            if limit.requests == 0 || limit.per_secs == 0 {
                return Err(invalid(key, "requests and per_secs must be at least 1"));
            }
        }
        if self.exports.lease_secs < 2 {
            return Err(invalid("exports.lease_secs", "must be at least 2"));
        }
        if self.exports.poll_ms == 0 {
            return Err(invalid("exports.poll_ms", "must be at least 1"));
        }
        if self.exports.max_attempts < 1 {
            return Err(invalid("exports.max_attempts", "must be at least 1"));
        }
        if !(50..=60_000).contains(&self.exports.events_poll_ms) {
            return Err(invalid(
                "exports.events_poll_ms",
                "must be between 50 and 60000",
            ));
        }
        if !(1..=1000).contains(&self.exports.max_event_streams_per_user) {
            return Err(invalid(
                "exports.max_event_streams_per_user",
                "must be between 1 and 1000",
            ));
        }
        if !(1..=9).contains(&self.exports.xlsx_compression) {
            return Err(invalid(
                "exports.xlsx_compression",
                "must be between 1 and 9",
            ));
        }
        if !(1..=100_000).contains(&self.exports.page_rows) {
            return Err(invalid("exports.page_rows", "must be between 1 and 100000"));
        }
        if !(2..=7 * 24 * 3600).contains(&self.chat.abandoned_reply_secs) {
            return Err(invalid(
                "chat.abandoned_reply_secs",
                "must be between 2 and 604800 (a week)",
            ));
        }
        if self.exports.retention_hours == 0 {
            return Err(invalid("exports.retention_hours", "must be at least 1"));
        }
        if self.auth.session_ttl_days == 0 {
            return Err(invalid("auth.session_ttl_days", "must be at least 1"));
        }
        for (key, allowance) in [
            (
                "auth.login_failures_per_account_and_ip",
                self.auth.login_failures_per_account_and_ip,
            ),
            (
                "auth.login_failures_per_account",
                self.auth.login_failures_per_account,
            ),
            (
                "auth.login_failures_per_ip",
                self.auth.login_failures_per_ip,
            ),
        ] {
            if allowance == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if !(1..=32).contains(&self.http.trusted_proxy_hops) {
            return Err(invalid(
                "http.trusted_proxy_hops",
                "must be between 1 and 32",
            ));
        }
        if self.auth.login_failure_window_secs == 0 {
            return Err(invalid(
                "auth.login_failure_window_secs",
                "must be at least 1",
            ));
        }
        if self.auth.argon2_memory_kib < 8 * 1024 {
            return Err(invalid("auth.argon2_memory_kib", "must be at least 8192"));
        }
        if self.auth.argon2_iterations == 0 {
            return Err(invalid("auth.argon2_iterations", "must be at least 1"));
        }
        if self.auth.issuer.is_empty() || self.auth.audience.is_empty() {
            return Err(invalid(
                "auth.issuer",
                "issuer and audience must not be empty",
            ));
        }
        for (name, model) in &self.models {
            let bad = |problem: &str| {
                ConfigError::Load(format!("configuration key `models.{name}`: {problem}"))
            };
            if name == "offline" && model.provider != Provider::Offline {
                return Err(bad(
                    "the name `offline` is reserved for the built-in offline model",
                ));
            }
            if model.provider != Provider::Offline {
                let url = model.base_url.as_deref().unwrap_or_default();
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(bad("base_url must be an http:// or https:// address"));
                }
                if model.model.as_deref().is_none_or(str::is_empty) {
                    return Err(bad("model (the provider's model id) is required"));
                }
            }
            if let Some(header) = &model.api_key_header
                && axum::http::HeaderName::from_bytes(header.as_bytes()).is_err()
            {
                return Err(bad("api_key_header is not a valid header name"));
            }
            if model.context_window < 512 {
                return Err(bad("context_window must be at least 512"));
            }
            if let Some(var) = &model.api_key_env
                && model.api_key.is_none()
            {
                return Err(bad(&format!(
                    "the environment variable {var} (api_key_env) is not set"
                )));
            }
        }
        if let Some(default) = &self.default_model
            && default != "offline"
            && !self.models.contains_key(default)
        {
            return Err(invalid(
                "default_model",
                format!("no model named `{default}` is configured"),
            ));
        }
        if self.tables.max_columns == 0 || self.tables.max_rows == 0 {
            return Err(invalid(
                "tables.max_columns",
                "table limits must be at least 1",
            ));
        }
        if self.tables.max_formula_chars == 0 || self.tables.max_formula_depth == 0 {
            return Err(invalid(
                "tables.max_formula_chars",
                "max_formula_chars and max_formula_depth must be at least 1",
            ));
        }
        if self.exports.archive_xlsx_max_rows == 0 || self.exports.archive_xlsx_max_rows > 1_048_575
        {
            return Err(invalid(
                "exports.archive_xlsx_max_rows",
                "must be between 1 and 1048575 (the rows of an Excel sheet under its header)",
            ));
        }
        if self.tables.max_upload_bytes < 1024 {
            return Err(invalid("tables.max_upload_bytes", "must be at least 1024"));
        }
        for (name, value) in [
            ("tables.max_cell_chars", self.tables.max_cell_chars as u64),
            (
                "tables.max_spreadsheet_inflated_bytes",
                self.tables.max_spreadsheet_inflated_bytes,
            ),
            (
                "tables.max_shared_strings_bytes",
                self.tables.max_shared_strings_bytes,
            ),
            ("tables.max_sheet_cells", self.tables.max_sheet_cells),
            ("tables.sort_memory_bytes", self.tables.sort_memory_bytes),
        ] {
            if value == 0 {
                return Err(invalid(name, "must be at least 1"));
            }
        }
        Ok(())
    }

    /// The database URL in effect: the configured one or the SQLite file in the data dir.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("sheetgpt.db").display()
            ),
        }
    }
}

fn serialize_redacted<S: serde::Serializer>(
    value: &Option<SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    // Only the defaults are ever serialized (as figment's base layer), and they hold no
    // secret; should a secret get here, it is not written out.
    match value {
        Some(_) => serializer.serialize_str("[redacted]"),
        None => serializer.serialize_none(),
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Text => "text",
            Self::Json => "json",
        })
    }
}
