//! `[models.NAME]`: the model providers offered by name.

use std::collections::BTreeMap;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::ConfigError;

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

/// Every configured model is complete and its name is not the built-in one's.
pub(super) fn validate(models: &BTreeMap<String, ModelConfig>) -> Result<(), ConfigError> {
    for (name, model) in models {
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
    Ok(())
}
