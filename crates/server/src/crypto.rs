//! Encryption of secrets kept in the database (users' own provider keys): AES-256-GCM with
//! a random 96-bit nonce per value, under the key from `encryption_key`.
//!
//! A stored value reads `v1:<base64(nonce ‖ ciphertext ‖ tag)>`; the version leaves room to
//! change the scheme (or rotate the key) later without guessing what a row holds. The caller
//! passes associated data naming the row the value belongs to (its owner and purpose), so a
//! ciphertext copied into another row does not decrypt.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use rand::RngCore as _;
use secrecy::SecretString;
use secrecy::zeroize::Zeroizing;
use sha2::{Digest, Sha256};

const VERSION: &str = "v1:";
const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 12;
const TAG_BYTES: usize = 16;

/// Why a configured key was refused. The messages never quote the key.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "must be 32 bytes written as 64 hex digits or in base64 (for example the output of \
         `openssl rand -base64 32`)"
    )]
    Malformed,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncryptError {
    #[error("the value is too long to encrypt")]
    TooLong,
}

/// A stored value that cannot be read: not ours, damaged, moved to another row, or written
/// under another key. Deliberately says no more.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    #[error("the stored secret is not in a format this version knows")]
    Format,
    #[error("the stored secret cannot be decrypted (wrong key, or it was changed or moved)")]
    Invalid,
}

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
/// Encrypts and decrypts values under one key. `Debug` shows no key.
#[derive(Clone)]
pub struct Cipher {
    aead: Aes256Gcm,
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cipher([redacted])")
    }
}

impl Cipher {
    /// A key written as 64 hex digits or as base64 (standard or URL-safe, with or without
    /// padding) of exactly 32 bytes.
    pub fn from_text(text: &str) -> Result<Self, KeyError> {
        let bytes = decode_key(text.trim()).ok_or(KeyError::Malformed)?;
        let aead = Aes256Gcm::new_from_slice(&bytes).map_err(|_| KeyError::Malformed)?;
        Ok(Self { aead })
    }

    /// `plaintext` encrypted with a fresh random nonce and bound to `aad`.
    pub fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Result<String, EncryptError> {
        let mut nonce = [0u8; NONCE_BYTES];
        // ThreadRng is a CSPRNG seeded from the OS. With random 96-bit nonces one key is good
        // for about 2^32 values, far more than there will ever be keys to store.
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .aead
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            // Only inputs over 64 GiB fail.
            .map_err(|_| EncryptError::TooLong)?;
        let mut out = Vec::with_capacity(NONCE_BYTES + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(format!("{VERSION}{}", STANDARD.encode(out)))
    }

    /// The plaintext of a value from [`Cipher::encrypt`] with the same `aad`.
    pub fn decrypt(&self, stored: &str, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
        let encoded = stored.strip_prefix(VERSION).ok_or(DecryptError::Format)?;
        let raw = STANDARD.decode(encoded).map_err(|_| DecryptError::Format)?;
        if raw.len() < NONCE_BYTES + TAG_BYTES {
            return Err(DecryptError::Format);
        }
        let (nonce, sealed) = raw.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| DecryptError::Format)?;
        self.aead
            .decrypt(&Nonce::from(nonce), Payload { msg: sealed, aad })
            .map(Zeroizing::new)
            .map_err(|_| DecryptError::Invalid)
    }

    /// Like [`Cipher::decrypt`], for a value that was text.
    pub fn decrypt_text(&self, stored: &str, aad: &[u8]) -> Result<SecretString, DecryptError> {
        let plain = self.decrypt(stored, aad)?;
        let text = std::str::from_utf8(&plain).map_err(|_| DecryptError::Invalid)?;
        Ok(SecretString::from(text))
    }
}

/// A new random key as standard base64 (what is written to the data dir when none is set).
pub fn generate_key_text() -> String {
    let mut key = Zeroizing::new([0u8; KEY_BYTES]);
    rand::rng().fill_bytes(key.as_mut());
    STANDARD.encode(key.as_ref())
}

fn decode_key(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let bytes = if text.len() == 2 * KEY_BYTES && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        Zeroizing::new(
            (0..KEY_BYTES)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .ok()?,
        )
    } else {
        [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())
            .map(Zeroizing::new)?
    };
    (bytes.len() == KEY_BYTES).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    const HEX_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn cipher() -> Cipher {
        Cipher::from_text(HEX_KEY).unwrap()
    }

    /// Flips one bit of the decoded payload at `index` and encodes it again.
    fn flip(stored: &str, index: usize) -> String {
        let mut raw = STANDARD.decode(&stored[VERSION.len()..]).unwrap();
        raw[index] ^= 0x01;
        format!("{VERSION}{}", STANDARD.encode(raw))
    }

    #[test]
    fn a_value_round_trips_and_each_encryption_differs() {
        let c = cipher();
        let a = c.encrypt(b"sk-secret-value", b"user:model").unwrap();
        let b = c.encrypt(b"sk-secret-value", b"user:model").unwrap();
        assert!(a.starts_with("v1:"));
        assert_ne!(a, b, "a fresh nonce per value");
        assert!(!a.contains("sk-secret-value"));
        assert_eq!(
            c.decrypt_text(&a, b"user:model").unwrap().expose_secret(),
            "sk-secret-value"
        );
        assert_eq!(
            &c.decrypt(&b, b"user:model").unwrap()[..],
            b"sk-secret-value"
        );
    }

    #[test]
    fn tampering_with_nonce_ciphertext_or_tag_is_detected() {
        let c = cipher();
        let stored = c.encrypt(b"sk-secret-value", b"aad").unwrap();
        let len = STANDARD.decode(&stored[3..]).unwrap().len();
        for index in [0, NONCE_BYTES, NONCE_BYTES + 3, len - 1] {
            assert_eq!(
                c.decrypt(&flip(&stored, index), b"aad").err(),
                Some(DecryptError::Invalid),
                "byte {index}"
            );
        }
        // Cut short: the tag no longer matches, or there is too little left to hold one.
        assert_eq!(
            c.decrypt(&stored[..stored.len() - 8], b"aad").err(),
            Some(DecryptError::Invalid)
        );
        assert_eq!(
            c.decrypt(&stored[..20], b"aad").err(),
            Some(DecryptError::Format)
        );
        assert_eq!(
            c.decrypt("v2:AAAA", b"aad").err(),
            Some(DecryptError::Format)
        );
        assert_eq!(
            c.decrypt("sk-plain", b"aad").err(),
            Some(DecryptError::Format)
        );
    }

    #[test]
    fn other_associated_data_is_refused() {
        let c = cipher();
        let stored = c.encrypt(b"sk-secret-value", b"user-a:gpt").unwrap();
        assert_eq!(
            c.decrypt(&stored, b"user-b:gpt").err(),
            Some(DecryptError::Invalid)
        );
        assert_eq!(
            c.decrypt(&stored, b"user-a:claude").err(),
            Some(DecryptError::Invalid)
        );
    }

    #[test]
    fn another_key_cannot_decrypt() {
        let stored = cipher().encrypt(b"sk-secret-value", b"aad").unwrap();
        let other = Cipher::from_text(&generate_key_text()).unwrap();
        assert_eq!(
            other.decrypt(&stored, b"aad").err(),
            Some(DecryptError::Invalid)
        );
    }

    #[test]
    fn keys_are_read_as_hex_or_base64_of_32_bytes_only() {
        let raw: Vec<u8> = (0u8..32).collect();
        let stored = cipher().encrypt(b"x", b"").unwrap();
        for text in [
            HEX_KEY.to_owned(),
            HEX_KEY.to_ascii_uppercase(),
            STANDARD.encode(&raw),
            STANDARD_NO_PAD.encode(&raw),
            URL_SAFE_NO_PAD.encode(&raw),
            format!("  {}\n", STANDARD.encode(&raw)),
        ] {
            let c = Cipher::from_text(&text).unwrap();
            assert_eq!(&c.decrypt(&stored, b"").unwrap()[..], b"x", "{text}");
        }
        for bad in [
            "",
            &HEX_KEY[..62],
            &STANDARD.encode(&raw[..31]),
            &STANDARD.encode([0u8; 33]),
            "not a key at all, just words",
        ] {
            assert_eq!(
                Cipher::from_text(bad).err(),
                Some(KeyError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_generated_key_is_base64_of_32_random_bytes() {
        let a = generate_key_text();
        assert_eq!(STANDARD.decode(&a).unwrap().len(), 32);
        assert_ne!(a, generate_key_text());
        assert!(Cipher::from_text(&a).is_ok());
    }

    #[test]
    fn debug_shows_no_key() {
        assert_eq!(format!("{:?}", cipher()), "Cipher([redacted])");
    }
}
