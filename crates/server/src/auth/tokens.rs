//! Opaque random tokens (refresh tokens, API keys) and their stored digests.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use sha2::{Digest, Sha256};

/// `bytes` of OS randomness, base64url without padding.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // ThreadRng is a CSPRNG (ChaCha12) seeded from the OS and reseeded periodically.
    rand::rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// Hex SHA-256: what is stored for a refresh token or API key. The tokens carry 256 bits of
/// randomness, so a fast hash cannot be brute-forced and lookups stay one index probe.
pub fn digest(token: &str) -> String {
    let hash = Sha256::digest(token.as_bytes());
    let mut out = String::with_capacity(64);
    for byte in hash {
        out.push(char::from_digit(u32::from(byte >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(byte & 0xf), 16).unwrap_or('0'));
    }
    out
}

/// API keys read `sgk_<8 chars>_<43 chars>`: the prefix tells a key apart from a JWT and is
/// shown in lists; the rest is the secret.
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
