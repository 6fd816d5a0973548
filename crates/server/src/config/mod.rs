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

mod chat;
mod exports;
mod google;
mod limits;
mod models;
mod server;
mod tables;

pub use chat::ChatConfig;
pub use exports::ExportsConfig;
pub use google::{GoogleConfig, ServiceAccountSpreadsheet};
pub use limits::{Limit, QuotasConfig, RateLimitsConfig, RetentionConfig};
pub use models::{ModelConfig, Provider, StructuredForm, StructuredOutput};
pub use server::{AuthConfig, DatabaseConfig, HttpConfig};
pub use tables::TablesConfig;

/// The error of a key with a bad value.
fn invalid(key: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        problem: problem.into(),
    }
}

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

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
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
            database: DatabaseConfig::default(),
            http: HttpConfig::default(),
            auth: AuthConfig::default(),
            tables: TablesConfig::default(),
            chat: ChatConfig::default(),
            google: GoogleConfig::default(),
            rate_limits: RateLimitsConfig::default(),
            retention: RetentionConfig::default(),
            quotas: QuotasConfig::default(),
            exports: ExportsConfig::default(),
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
        self.database.validate()?;
        self.http.validate()?;
        self.auth.validate()?;
        self.google.validate()?;
        self.rate_limits.validate()?;
        self.exports.validate()?;
        self.chat.validate()?;
        models::validate(&self.models)?;
        if let Some(default) = &self.default_model
            && default != "offline"
            && !self.models.contains_key(default)
        {
            return Err(invalid(
                "default_model",
                format!("no model named `{default}` is configured"),
            ));
        }
        self.tables.validate()?;
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
