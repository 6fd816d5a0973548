//! The models offered by name: those configured, plus the built-in `offline` model.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde::Serialize;
use utoipa::ToSchema;

use super::discovery::{Listed, Server, Window};
use super::{ChatModel, Limits};
use crate::config::{Config, ModelConfig, Provider, StructuredOutput};

/// One model as the rest of the system sees it.
#[derive(Clone)]
pub struct ModelEntry {
    pub name: String,
    pub provider: Provider,
    pub context_window: u32,
    pub structured_output: StructuredOutput,
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
    /// What the server was found to take, shared with the copies made for users' keys.
    learned: Arc<super::openai::Learned>,
}

impl Source {
    fn server(&self) -> Server {
        Server {
            base_url: self.config.base_url.clone().unwrap_or_default(),
            api_key: self.config.api_key.clone(),
            key_header: self
                .config
                .api_key_header
                .as_deref()
                .and_then(|h| axum::http::HeaderName::from_bytes(h.as_bytes()).ok()),
            client: self.client.clone(),
        }
    }
}

impl ModelEntry {
    /// Whether its server's models are offered too (`discover = true`).
    fn discovers(&self) -> bool {
        self.provider == Provider::Openai && self.source.as_ref().is_some_and(|s| s.config.discover)
    }

    /// Whether users may bring their own key for this model (remote providers only).
    pub fn takes_own_key(&self) -> bool {
        matches!(self.provider, Provider::Openai | Provider::Anthropic) && self.source.is_some()
    }

    /// This model with `key` in place of the configured one: for one user's requests. The
    /// offline model takes no key and comes back unchanged.
    pub fn with_api_key(&self, key: SecretString) -> ModelEntry {
        match &self.source {
            Some(source) => ModelEntry {
                model: build(&source.config, Some(key), &source.client, &source.learned),
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
    /// What each `discover = true` entry's server lists, with when it was asked.
    listings: Arc<Mutex<HashMap<String, Listing>>>,
    /// Models built for discovered names (`local/qwen3`), kept so that what they learn lasts.
    discovered: Arc<Mutex<HashMap<String, ModelEntry>>>,
    /// Context windows the servers reported at start-up.
    windows: Arc<Mutex<HashMap<String, Window>>>,
}

/// A server's list of models (or why it has none), and when it was asked.
type Listing = (Instant, Result<Vec<Listed>, String>);

/// Why a model name does not resolve.
#[derive(Debug, PartialEq, Eq)]
pub enum Unresolved {
    /// No such model configured, and no discovering entry of that name.
    Unknown,
    /// A discovered model its server no longer lists, or a server that cannot say.
    NotOffered(String),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelInfo {
    pub name: String,
    #[schema(value_type = String, example = "openai")]
    pub provider: Provider,
    pub context_window: u32,
    /// The window the model's server reported at start-up, where it says (vLLM, llama.cpp,
    /// Ollama); a `context_window` larger than this is logged as a warning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_context_window: Option<u32>,
    /// For a model listed by its server (`discover = true`): the configured entry it is
    /// offered through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discovered_from: Option<String>,
    /// For a `discover = true` entry whose server could not list its models: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discover_error: Option<String>,
    /// A schema is sent as structured output (not only in the prompt).
    pub structured_output: bool,
    /// `auto`, `json_schema`, `json_object` or `prompt` (see `structured_output` in the
    /// configuration).
    pub structured_form: String,
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
                structured_output: StructuredOutput::default(),
                price_input_per_mtok: 0.0,
                price_output_per_mtok: 0.0,
                model: Arc::new(super::offline::OfflineModel),
                tokenizer: Arc::new(super::tokens::Tokenizer::estimate()),
                source: None,
            },
        );
        for (name, m) in &config.models {
            let client = super::http_client(&limits(m))?;
            let learned = Arc::new(super::openai::Learned::default());
            let model = build(m, m.api_key.clone(), &client, &learned);
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
                        learned,
                    }),
                },
            );
        }
        let default = config
            .default_model
            .clone()
            .unwrap_or_else(|| "offline".to_owned());
        Ok(Self {
            entries,
            default,
            listings: Arc::default(),
            discovered: Arc::default(),
            windows: Arc::default(),
        })
    }

    /// A configured model (not a discovered one: see [`Models::resolve`]).
    pub fn get(&self, name: &str) -> Option<&ModelEntry> {
        self.entries.get(name)
    }

    /// The model a name stands for: a configured one, or `ENTRY/ID` for a model the server of
    /// a `discover = true` entry lists (asked at most once a minute).
    pub async fn resolve(&self, name: &str) -> Result<ModelEntry, Unresolved> {
        if let Some(entry) = self.entries.get(name) {
            return Ok(entry.clone());
        }
        let (base, id) = name.split_once('/').ok_or(Unresolved::Unknown)?;
        let Some(entry) = self.entries.get(base).filter(|e| e.discovers()) else {
            return Err(Unresolved::Unknown);
        };
        let listed = self.listing(base, entry).await.map_err(|why| {
            Unresolved::NotOffered(format!("{base}'s server cannot list its models: {why}"))
        })?;
        if !listed.iter().any(|l| l.id == id) {
            return Err(Unresolved::NotOffered(format!(
                "the model {name} is no longer offered by its server"
            )));
        }
        if let Ok(cache) = self.discovered.lock()
            && let Some(built) = cache.get(name)
        {
            return Ok(built.clone());
        }
        let source = entry.source.as_ref().ok_or(Unresolved::Unknown)?;
        let mut config = source.config.clone();
        config.model = Some(id.to_owned());
        let learned = Arc::new(super::openai::Learned::default());
        let built = ModelEntry {
            name: name.to_owned(),
            model: build(&config, config.api_key.clone(), &source.client, &learned),
            tokenizer: Arc::new(super::tokens::Tokenizer::for_model(config.provider, id)),
            source: Some(Source {
                config,
                client: source.client.clone(),
                learned,
            }),
            ..entry.clone()
        };
        if let Ok(mut cache) = self.discovered.lock() {
            cache.insert(name.to_owned(), built.clone());
        }
        Ok(built)
    }

    /// What a discovering entry's server lists, from the cache when it is fresh.
    async fn listing(&self, name: &str, entry: &ModelEntry) -> Result<Vec<Listed>, String> {
        let Some(source) = &entry.source else {
            return Err("it is not a remote model".to_owned());
        };
        let ttl = Duration::from_secs(source.config.discover_cache_secs);
        if let Ok(cache) = self.listings.lock()
            && let Some((at, result)) = cache.get(name)
            && at.elapsed() < ttl
        {
            return result.clone();
        }
        let result = source.server().list().await;
        if let Err(why) = &result {
            tracing::warn!(model = name, error = %why, "could not list the models of a server");
        }
        if let Ok(mut cache) = self.listings.lock() {
            cache.insert(name.to_owned(), (Instant::now(), result.clone()));
        }
        result
    }

    /// Asks each remote OpenAI-compatible model's server for its real context window, and
    /// warns when the configured one is larger (its long conversations would be refused).
    pub async fn check_windows(self) {
        for entry in self.entries.values() {
            let Some(source) = entry
                .source
                .as_ref()
                .filter(|_| entry.provider == Provider::Openai)
            else {
                continue;
            };
            let model = source.config.model.clone().unwrap_or_default();
            let Some(window) = source.server().window(&model).await else {
                tracing::debug!(model = %entry.name, "the server does not report its context window");
                continue;
            };
            if window.tokens < entry.context_window {
                tracing::warn!(
                    model = %entry.name,
                    configured = entry.context_window,
                    reported = window.tokens,
                    source = window.source,
                    "models.{}.context_window is {} tokens but the server reports {}: \
                     conversations longer than that will be refused; set context_window to {}",
                    entry.name,
                    entry.context_window,
                    window.tokens,
                    window.tokens
                );
            }
            if let Ok(mut windows) = self.windows.lock() {
                windows.insert(entry.name.clone(), window);
            }
        }
    }

    pub fn default_name(&self) -> &str {
        &self.default
    }

    /// Every model, discovered ones after their entry; `own_keys` names those the caller has
    /// their own key for.
    pub async fn list(&self, own_keys: &BTreeSet<String>) -> Vec<ModelInfo> {
        let windows = self.windows.lock().map(|w| w.clone()).unwrap_or_default();
        let mut out = Vec::new();
        for e in self.entries.values() {
            let mut info = self.info(e, own_keys, &windows);
            let listed = if e.discovers() {
                match self.listing(&e.name, e).await {
                    Ok(listed) => listed,
                    Err(why) => {
                        info.discover_error = Some(why);
                        Vec::new()
                    }
                }
            } else {
                Vec::new()
            };
            out.push(info);
            for l in listed {
                let mut found = self.info(e, own_keys, &windows);
                found.name = format!("{}/{}", e.name, l.id);
                found.discovered_from = Some(e.name.clone());
                found.default = found.name == self.default;
                found.own_key = false;
                found.server_context_window = l.max_model_len;
                out.push(found);
            }
        }
        out
    }

    fn info(
        &self,
        e: &ModelEntry,
        own_keys: &BTreeSet<String>,
        windows: &HashMap<String, Window>,
    ) -> ModelInfo {
        ModelInfo {
            name: e.name.clone(),
            provider: e.provider,
            context_window: e.context_window,
            server_context_window: windows.get(&e.name).map(|w| w.tokens),
            discovered_from: None,
            discover_error: None,
            structured_output: e.structured_output != StructuredOutput::default(),
            structured_form: e.structured_output.as_str().to_owned(),
            default: e.name == self.default,
            own_key: own_keys.contains(&e.name),
            price_input_per_mtok: e.price_input_per_mtok,
            price_output_per_mtok: e.price_output_per_mtok,
        }
    }
}

/// The model `m` describes, sending `api_key`.
fn build(
    m: &ModelConfig,
    api_key: Option<SecretString>,
    client: &reqwest::Client,
    learned: &Arc<super::openai::Learned>,
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
            )
            .with_learned(learned.clone());
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
