//! What an OpenAI-compatible server says about itself: the models it serves (`GET /v1/models`,
//! for `discover = true`) and the context window it really has, read where each server
//! documents it — vLLM's `max_model_len` in `/v1/models`, llama.cpp's server `GET /props`
//! (`default_generation_settings.n_ctx`), Ollama's `POST /api/show` (`num_ctx` in
//! `parameters`, else the model's `<arch>.context_length`). A server that answers none of
//! them is simply not checked.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Each probe's own timeout: these run beside the service, never in a user's request path
/// for long.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Where and how to ask one server.
#[derive(Clone)]
pub struct Server {
    /// The configured `base_url` (`http://127.0.0.1:8080/v1`).
    pub base_url: String,
    pub api_key: Option<SecretString>,
    pub key_header: Option<HeaderName>,
    pub client: reqwest::Client,
}

/// One model a server lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub id: String,
    /// vLLM's `max_model_len`.
    pub max_model_len: Option<u32>,
}

/// A context window a server reported, and where it said so.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    pub tokens: u32,
    pub source: &'static str,
}

impl Server {
    fn with_key(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let Some(key) = &self.api_key else {
            return request;
        };
        let (name, text) = match &self.key_header {
            Some(name) => (name.clone(), key.expose_secret().to_owned()),
            None => (AUTHORIZATION, format!("Bearer {}", key.expose_secret())),
        };
        match HeaderValue::from_str(&text) {
            Ok(mut value) => {
                value.set_sensitive(true);
                request.header(name, value)
            }
            Err(_) => request,
        }
    }

    /// `base_url` without a query and a trailing `/v1`: where llama.cpp and Ollama serve
    /// their own endpoints.
    fn root(&self) -> String {
        let path = self.base_url.split('?').next().unwrap_or_default();
        let path = path.trim_end_matches('/');
        path.strip_suffix("/v1").unwrap_or(path).to_owned()
    }

    fn models_url(&self) -> String {
        let (path, query) = match self.base_url.split_once('?') {
            Some((p, q)) => (p, format!("?{q}")),
            None => (self.base_url.as_str(), String::new()),
        };
        format!("{}/models{query}", path.trim_end_matches('/'))
    }

    /// The models the server lists (`GET {base_url}/models`), as a sentence on failure.
    pub async fn list(&self) -> Result<Vec<Listed>, String> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            data: Vec<Entry>,
        }
        #[derive(Deserialize)]
        struct Entry {
            id: String,
            #[serde(default)]
            max_model_len: Option<u32>,
        }
        let response = self
            .with_key(self.client.get(self.models_url()))
            .timeout(PROBE_TIMEOUT)
            .send()
            .await
            .map_err(|e| format!("the server did not answer: {}", e.without_url()))?;
        if !response.status().is_success() {
            return Err(format!(
                "the server answered {} to GET /models",
                response.status().as_u16()
            ));
        }
        let page: Page = response
            .json()
            .await
            .map_err(|_| "the server's model list is not the OpenAI shape".to_owned())?;
        Ok(page
            .data
            .into_iter()
            .map(|e| Listed {
                id: e.id,
                max_model_len: e.max_model_len,
            })
            .collect())
    }

    /// The context window the server reports for `model`, from the first endpoint that says.
    pub async fn window(&self, model: &str) -> Option<Window> {
        if let Ok(listed) = self.list().await
            && let Some(tokens) = listed
                .iter()
                .find(|l| l.id == model)
                .and_then(|l| l.max_model_len)
        {
            return Some(Window {
                tokens,
                source: "max_model_len in /v1/models (vLLM)",
            });
        }
        if let Some(tokens) = self.llama_cpp_props().await {
            return Some(Window {
                tokens,
                source: "n_ctx in /props (llama.cpp)",
            });
        }
        self.ollama_show(model).await.map(|tokens| Window {
            tokens,
            source: "/api/show (Ollama)",
        })
    }

    async fn get_json(&self, request: reqwest::RequestBuilder) -> Option<serde_json::Value> {
        let response = self
            .with_key(request)
            .timeout(PROBE_TIMEOUT)
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.json().await.ok()
    }

    async fn llama_cpp_props(&self) -> Option<u32> {
        let props = self
            .get_json(self.client.get(format!("{}/props", self.root())))
            .await?;
        props
            .pointer("/default_generation_settings/n_ctx")
            .or_else(|| props.get("n_ctx"))
            .and_then(serde_json::Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
    }

    async fn ollama_show(&self, model: &str) -> Option<u32> {
        let show = self
            .get_json(
                self.client
                    .post(format!("{}/api/show", self.root()))
                    .json(&serde_json::json!({ "model": model })),
            )
            .await?;
        // `num_ctx` set for the model (a Modelfile's PARAMETER) is what Ollama runs it with.
        let configured = show
            .get("parameters")
            .and_then(serde_json::Value::as_str)
            .and_then(|p| {
                p.lines().find_map(|l| {
                    let mut parts = l.split_whitespace();
                    (parts.next() == Some("num_ctx"))
                        .then(|| parts.next()?.parse::<u32>().ok())
                        .flatten()
                })
            });
        configured.or_else(|| {
            show.get("model_info")?
                .as_object()?
                .iter()
                .find(|(k, _)| k.ends_with(".context_length"))
                .and_then(|(_, v)| v.as_u64())
                .and_then(|n| u32::try_from(n).ok())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(base: &str) -> Server {
        Server {
            base_url: base.to_owned(),
            api_key: None,
            key_header: None,
            client: reqwest::Client::new(),
        }
    }

    #[test]
    fn the_root_drops_the_version_and_the_query() {
        assert_eq!(server("http://h:8080/v1").root(), "http://h:8080");
        assert_eq!(server("http://h:8080/v1/").root(), "http://h:8080");
        assert_eq!(server("http://h/x?api-version=1").root(), "http://h/x");
        assert_eq!(
            server("http://h/openai/v1?k=v").models_url(),
            "http://h/openai/v1/models?k=v"
        );
    }
}
