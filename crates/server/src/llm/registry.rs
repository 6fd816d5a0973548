//! The models offered by name: those configured, plus the built-in `offline` model.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde::Serialize;
use utoipa::ToSchema;

use super::{ChatModel, Limits};
use crate::config::{Config, ModelConfig, Provider};

/// One model as the rest of the system sees it.
#[derive(Clone)]
pub struct ModelEntry {
    pub name: String,
    pub provider: Provider,
    pub context_window: u32,
    pub structured_output: bool,
    pub price_input_per_mtok: f64,
    pub price_output_per_mtok: f64,
    pub model: Arc<dyn ChatModel>,
    /// Counts tokens for the context window.
    pub tokenizer: Arc<super::tokens::Tokenizer>,
    /// What a remote model was built from, to build it again with a user's own key; `None`
    /// for the offline model.
    source: Option<Source>,
}

/// A configured model and the HTTP client it was built with.
#[derive(Clone)]
struct Source {
    config: ModelConfig,
    client: reqwest::Client,
}

impl ModelEntry {
    /// Whether users may bring their own key for this model (remote providers only).
    pub fn takes_own_key(&self) -> bool {
        matches!(self.provider, Provider::Openai | Provider::Anthropic) && self.source.is_some()
    }

    /// This model with `key` in place of the configured one: for one user's requests. The
    /// offline model takes no key and comes back unchanged.
    pub fn with_api_key(&self, key: SecretString) -> ModelEntry {
        match &self.source {
            Some(source) => ModelEntry {
                model: build(&source.config, Some(key), &source.client),
                ..self.clone()
            },
            None => self.clone(),
        }
    }

    /// Cost in millionths of a dollar: tokens × dollars per million tokens.
    pub fn cost_micros(&self, prompt: u32, completion: u32) -> i64 {
        let micros = f64::from(prompt) * self.price_input_per_mtok
            + f64::from(completion) * self.price_output_per_mtok;
        micros.round() as i64
    }
}

#[derive(Clone)]
pub struct Models {
    entries: BTreeMap<String, ModelEntry>,
    default: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelInfo {
    pub name: String,
    #[schema(value_type = String, example = "openai")]
    pub provider: Provider,
    pub context_window: u32,
    pub structured_output: bool,
    pub default: bool,
    /// The caller has saved their own key for this model (`PUT /models/{name}/key`), which
    /// their requests use instead of the configured one.
    pub own_key: bool,
    /// US dollars per million prompt / completion tokens.
    pub price_input_per_mtok: f64,
    pub price_output_per_mtok: f64,
}

pub fn limits(m: &ModelConfig) -> Limits {
    Limits {
        connect_timeout: Duration::from_secs(m.connect_timeout_secs),
        first_token_timeout: Duration::from_secs(m.first_token_timeout_secs),
        idle_timeout: Duration::from_secs(m.idle_timeout_secs),
        max_retries: m.max_retries,
        ..Limits::default()
    }
}

impl Models {
    /// Builds every configured model, each with an HTTP client honouring its connect timeout.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let mut entries = BTreeMap::new();
        entries.insert(
            "offline".to_owned(),
            ModelEntry {
                name: "offline".to_owned(),
                provider: Provider::Offline,
                context_window: 32_768,
                structured_output: false,
                price_input_per_mtok: 0.0,
                price_output_per_mtok: 0.0,
                model: Arc::new(super::offline::OfflineModel),
                tokenizer: Arc::new(super::tokens::Tokenizer::estimate()),
                source: None,
            },
        );
        for (name, m) in &config.models {
            let client = super::http_client(&limits(m))?;
            let model = build(m, m.api_key.clone(), &client);
            entries.insert(
                name.clone(),
                ModelEntry {
                    name: name.clone(),
                    provider: m.provider,
                    context_window: m.context_window,
                    structured_output: m.structured_output,
                    price_input_per_mtok: m.price_input_per_mtok,
                    price_output_per_mtok: m.price_output_per_mtok,
                    model,
                    tokenizer: Arc::new(super::tokens::Tokenizer::for_model(
                        m.provider,
                        m.model.as_deref().unwrap_or_default(),
                    )),
                    source: (m.provider != Provider::Offline).then(|| Source {
                        config: m.clone(),
                        client,
                    }),
                },
            );
        }
        let default = config
            .default_model
            .clone()
            .unwrap_or_else(|| "offline".to_owned());
        Ok(Self { entries, default })
    }

    pub fn get(&self, name: &str) -> Option<&ModelEntry> {
        self.entries.get(name)
    }

    pub fn default_name(&self) -> &str {
        &self.default
    }

    /// Every model; `own_keys` names those the caller has their own key for.
    pub fn list(&self, own_keys: &BTreeSet<String>) -> Vec<ModelInfo> {
        self.entries
            .values()
            .map(|e| ModelInfo {
                name: e.name.clone(),
                provider: e.provider,
                context_window: e.context_window,
                structured_output: e.structured_output,
                default: e.name == self.default,
                own_key: own_keys.contains(&e.name),
                price_input_per_mtok: e.price_input_per_mtok,
                price_output_per_mtok: e.price_output_per_mtok,
            })
            .collect()
    }
}

/// The model `m` describes, sending `api_key`.
fn build(
    m: &ModelConfig,
    api_key: Option<SecretString>,
    client: &reqwest::Client,
) -> Arc<dyn ChatModel> {
    match m.provider {
        Provider::Offline => Arc::new(super::offline::OfflineModel),
        Provider::Openai => {
            let model = super::openai::OpenAiModel::new(
                super::openai::OpenAiConfig {
                    api_key,
                    structured_output: m.structured_output,
                    limits: limits(m),
                    ..super::openai::OpenAiConfig::new(
                        m.base_url.clone().unwrap_or_default(),
                        m.model.clone().unwrap_or_default(),
                    )
                },
                client.clone(),
            );
            let header = m
                .api_key_header
                .as_deref()
                .and_then(|h| axum::http::HeaderName::from_bytes(h.as_bytes()).ok());
            Arc::new(match header {
                Some(name) => model.with_key_header(name),
                None => model,
            })
        }
        Provider::Anthropic => Arc::new(super::anthropic::AnthropicModel::new(
            super::anthropic::AnthropicConfig {
                api_key,
                limits: limits(m),
                ..super::anthropic::AnthropicConfig::new(
                    m.base_url.clone().unwrap_or_default(),
                    m.model.clone().unwrap_or_default(),
                )
            },
            client.clone(),
        )),
    }
}
