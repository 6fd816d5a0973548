//! Opaque random tokens (refresh tokens, API keys) and their stored digests.

pub use crate::crypto::{digest, random_token};

pub const API_KEY_PREFIX: &str = "sgk_";

pub struct NewApiKeySecret {
    pub key: String,
    pub prefix: String,
}

pub fn new_api_key() -> NewApiKeySecret {
    let id = random_token(6);
    let secret = random_token(32);
    let prefix = format!("{API_KEY_PREFIX}{id}");
    NewApiKeySecret {
        key: format!("{prefix}_{secret}"),
        prefix,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_url_safe() {
        let a = random_token(32);
        let b = random_token(32);
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }

    #[test]
    fn digest_is_hex_sha256() {
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn api_keys_start_with_their_shown_prefix() {
        let k = new_api_key();
        assert!(k.key.starts_with(&k.prefix));
        assert!(k.prefix.starts_with(API_KEY_PREFIX));
        assert_eq!(k.prefix.len(), 12);
    }
}
