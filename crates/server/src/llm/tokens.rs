//! Counting tokens for the context window: OpenAI's own tokenizer (tiktoken's BPE files, as
//! the `tiktoken-rs` crate ships them) for the OpenAI models it knows, and a documented
//! estimate for every other model: 1 token per 4 characters, rounded up. Each message also
//! costs 4 tokens for its role and separators.

use std::sync::OnceLock;

use tiktoken_rs::CoreBPE;

use crate::config::Provider;

/// How a model's tokens are counted. The BPE tables are built on first use (a few hundred
/// milliseconds), not at start-up.
pub struct Tokenizer {
    bpe_model: Option<String>,
    bpe: OnceLock<Option<&'static CoreBPE>>,
}

impl Tokenizer {
    pub fn estimate() -> Self {
        Self {
            bpe_model: None,
            bpe: OnceLock::new(),
        }
    }

    pub fn for_model(provider: Provider, model: &str) -> Self {
        // tiktoken-rs knows OpenAI's model names (gpt-4o, gpt-4.1, o1, gpt-3.5-turbo…);
        // servers that merely speak OpenAI's API (Ollama, vLLM) run other tokenizers.
        let known =
            provider == Provider::Openai && tiktoken_rs::tokenizer::get_tokenizer(model).is_some();
        Self {
            bpe_model: known.then(|| model.to_owned()),
            bpe: OnceLock::new(),
        }
    }

    /// True when counts come from the model's real tokenizer.
    pub fn is_exact(&self) -> bool {
        self.bpe_model.is_some()
    }

    /// Tokens of one message's content, plus its overhead.
    pub fn count(&self, text: &str) -> u32 {
        let bpe = self.bpe.get_or_init(|| {
            let model = self.bpe_model.as_deref()?;
            match tiktoken_rs::bpe_for_model(model) {
                Ok(bpe) => Some(bpe),
                Err(err) => {
                    tracing::warn!(model, error = %err, "tokenizer unavailable; estimating");
                    None
                }
            }
        });
        let content = match bpe {
            Some(bpe) => u32::try_from(bpe.encode_ordinary(text).len()).unwrap_or(u32::MAX),
            None => (text.chars().count() as u32).div_ceil(4),
        };
        content.saturating_add(4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_models_are_counted_with_their_tokenizer() {
        let t = Tokenizer::for_model(Provider::Openai, "gpt-4o");
        assert!(t.is_exact());
        // "hello world" is two tokens in o200k_base, plus 4 for the message.
        assert_eq!(t.count("hello world"), 6);
    }

    #[test]
    fn other_models_are_estimated_at_four_characters_a_token() {
        let t = Tokenizer::for_model(Provider::Openai, "llama3.1");
        assert!(!t.is_exact());
        assert_eq!(t.count("abcdefgh"), 2 + 4);
        assert_eq!(Tokenizer::estimate().count("abcdefghi"), 3 + 4);
    }
}
