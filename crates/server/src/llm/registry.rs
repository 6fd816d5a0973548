//! The models offered by name: those configured, plus the built-in `offline` model.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

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
}

impl ModelEntry {
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
            },
        );
        for (name, m) in &config.models {
            let client = &super::http_client(&limits(m))?;
            let model: Arc<dyn ChatModel> = match m.provider {
                Provider::Offline => Arc::new(super::offline::OfflineModel),
                Provider::Openai => Arc::new(super::openai::OpenAiModel::new(
                    super::openai::OpenAiConfig {
                        api_key: m.api_key.clone(),
                        structured_output: m.structured_output,
                        limits: limits(m),
                        ..super::openai::OpenAiConfig::new(
                            m.base_url.clone().unwrap_or_default(),
                            m.model.clone().unwrap_or_default(),
                        )
                    },
                    client.clone(),
                )),
                Provider::Anthropic => Arc::new(super::anthropic::AnthropicModel::new(
                    super::anthropic::AnthropicConfig {
                        api_key: m.api_key.clone(),
                        limits: limits(m),
                        ..super::anthropic::AnthropicConfig::new(
                            m.base_url.clone().unwrap_or_default(),
                            m.model.clone().unwrap_or_default(),
                        )
                    },
                    client.clone(),
                )),
            };
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

    pub fn list(&self) -> Vec<ModelInfo> {
        self.entries
            .values()
            .map(|e| ModelInfo {
                name: e.name.clone(),
                provider: e.provider,
                context_window: e.context_window,
                structured_output: e.structured_output,
                default: e.name == self.default,
                price_input_per_mtok: e.price_input_per_mtok,
                price_output_per_mtok: e.price_output_per_mtok,
            })
            .collect()
    }
}
