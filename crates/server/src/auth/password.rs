//! Passwords: the policy a new password must meet, and Argon2id hashing off the async runtime.

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use secrecy::{ExposeSecret, SecretString};

/// A password that meets the policy. Its `Debug` never shows it.
pub struct Password(SecretString);

pub const MIN_CHARS: usize = 10;
pub const MAX_CHARS: usize = 256;

/// A few of the most used passwords of at least `MIN_CHARS` characters, refused outright.
const COMMON: &[&str] = &[
    "1234567890",
    "12345678910",
    "123456789012",
    "0123456789",
    "qwertyuiop",
    "1q2w3e4r5t",
    "password123",
    "password1234",
    "passw0rd123",
    "iloveyou123",
    "qwerty123456",
    "1qaz2wsx3edc",
    "abcdefghij",
    "abc1234567",
    "letmein1234",
    "welcome1234",
    "administrator",
    "changeme123",
    "sheetgpt123",
];

impl Password {
    /// Checks the policy: 10 to 256 characters, not one character repeated, not a common
    /// password, not the email address. Length is what makes a password strong; composition
    /// rules (a digit, a symbol…) are not required (NIST SP 800-63B).
    pub fn parse(raw: &str, email: Option<&str>) -> Result<Self, String> {
        let chars = raw.chars().count();
        if chars < MIN_CHARS {
            return Err(format!("must be at least {MIN_CHARS} characters long"));
        }
        if chars > MAX_CHARS {
            return Err(format!("must be at most {MAX_CHARS} characters long"));
        }
        let mut it = raw.chars();
        let first = it.next();
        if it.all(|c| Some(c) == first) {
            return Err("must not be one character repeated".to_owned());
        }
        let lower = raw.to_lowercase();
        if COMMON.contains(&lower.as_str()) {
            return Err("is one of the most common passwords; choose another".to_owned());
        }
        if let Some(email) = email {
            let local = email.split('@').next().unwrap_or_default();
            if lower == email || lower == local {
                return Err("must not be your email address".to_owned());
            }
        }
        Ok(Self(SecretString::from(raw.to_owned())))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// Argon2id with the configured cost. Hashing and verifying run on the blocking pool: each
/// takes tens of milliseconds of CPU and memory-hard work.
///
/// The memory Argon2 works in (19 MiB by default) comes from a small pool of buffers, one per
/// core, reused from one hash to the next. Allocating it per hash made the allocator keep
/// every freed 19 MiB block in per-thread arenas: a burst of sign-ups left the process
/// hundreds of MiB larger for good. The pool also caps how many hashes run at once, so a
/// login storm queues instead of exhausting memory.
#[derive(Clone)]
pub struct Hasher {
    params: Params,
    pool: std::sync::Arc<BlockPool>,
    /// A hash of a random password, verified against when the email is unknown so that an
    /// unknown email and a wrong password take the same time.
    dummy_hash: std::sync::Arc<str>,
}

struct BlockPool {
    permits: tokio::sync::Semaphore,
    free: std::sync::Mutex<Vec<Vec<Block>>>,
}

impl BlockPool {
    /// Runs `f` with a buffer of at least `blocks` blocks, returning the buffer afterwards.
    fn with_blocks<T>(&self, blocks: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
        let mut buffer = self
            .free
            .lock()
            .ok()
            .and_then(|mut free| free.pop())
            .unwrap_or_default();
        if buffer.len() < blocks {
            buffer.resize(blocks, Block::default());
        }
        let result = f(&mut buffer[..blocks]);
        if let Ok(mut free) = self.free.lock() {
            free.push(buffer);
        }
        result
    }
}

impl Hasher {
    pub fn new(memory_kib: u32, iterations: u32) -> anyhow::Result<Self> {
        let params = Params::new(memory_kib, iterations, 1, None)
            .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
        let parallel = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 8));
        let pool = std::sync::Arc::new(BlockPool {
            permits: tokio::sync::Semaphore::new(parallel),
            free: std::sync::Mutex::new(Vec::new()),
        });
        // The dummy hash is made with a throw-away pool, so that an idle server holds no
        // Argon2 memory until its first sign-in.
        let random = crate::auth::tokens::random_token(32);
        let scratch = BlockPool {
            permits: tokio::sync::Semaphore::new(1),
            free: std::sync::Mutex::new(Vec::new()),
        };
        let dummy_hash = hash_with(&scratch, &params, &random)?;
        drop(scratch);
        Ok(Self {
            params,
            pool,
            dummy_hash: dummy_hash.into(),
        })
    }

    pub async fn hash(&self, password: &Password) -> anyhow::Result<String> {
        let _permit = self.pool.permits.acquire().await?;
        let (params, pool) = (self.params.clone(), self.pool.clone());
        let secret = password.0.clone();
        tokio::task::spawn_blocking(move || hash_with(&pool, &params, secret.expose_secret()))
            .await?
    }

    /// Verifies `password` against `hash`, or against the dummy hash when there is no user,
    /// in which case the answer is always false.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> anyhow::Result<bool> {
        let (hash, real) = match hash {
            Some(h) => (h.to_owned(), true),
            None => (self.dummy_hash.to_string(), false),
        };
        let _permit = self.pool.permits.acquire().await?;
        let pool = self.pool.clone();
        let password = SecretString::from(password.to_owned());
        let ok = tokio::task::spawn_blocking(move || {
            verify_with(&pool, password.expose_secret(), &hash)
        })
        .await??;
        Ok(ok && real)
    }
}

fn hash_with(pool: &BlockPool, params: &Params, password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt
        .decode_b64(&mut salt_buf)
        .map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let output = pool.with_blocks(params.block_count(), |blocks| {
        Output::init_with(Params::DEFAULT_OUTPUT_LEN, |out| {
            argon
                .hash_password_into_with_memory(password.as_bytes(), salt_bytes, out, blocks)
                .map_err(|_| argon2::password_hash::Error::Crypto)
        })
    });
    let output = output.map_err(|e| anyhow::anyhow!("hashing failed: {e}"))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| anyhow::anyhow!("params: {e}"))?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

fn verify_with(pool: &BlockPool, password: &str, stored: &str) -> anyhow::Result<bool> {
    let parsed = PasswordHash::new(stored).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
    let algorithm =
        Algorithm::try_from(parsed.algorithm).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(|e| anyhow::anyhow!("stored hash: {e}"))?
        .unwrap_or_default();
    let params = Params::try_from(&parsed).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(anyhow::anyhow!("stored hash: no salt or hash"));
    };
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt
        .decode_b64(&mut salt_buf)
        .map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
    let argon = Argon2::new(algorithm, version, params.clone());
    let computed = pool.with_blocks(params.block_count(), |blocks| {
        Output::init_with(expected.len(), |out| {
            argon
                .hash_password_into_with_memory(password.as_bytes(), salt_bytes, out, blocks)
                .map_err(|_| argon2::password_hash::Error::Crypto)
        })
    });
    // Output compares in constant time.
    Ok(computed.is_ok_and(|c| c == expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_passwords_are_refused_with_the_minimum_length() {
        let err = Password::parse("short", None).err();
        assert_eq!(err.as_deref(), Some("must be at least 10 characters long"));
    }

    #[test]
    fn a_repeated_character_is_refused() {
        assert!(Password::parse("aaaaaaaaaaaa", None).is_err());
    }

    #[test]
    fn common_passwords_are_refused_whatever_their_case() {
        assert!(Password::parse("PassWord123", None).is_err());
    }

    #[test]
    fn the_email_address_is_refused_as_password() {
        assert!(Password::parse("alice.smith", Some("alice.smith@example.com")).is_err());
        assert!(
            Password::parse("alice.smith@example.com", Some("alice.smith@example.com")).is_err()
        );
    }

    #[test]
    fn a_long_passphrase_is_accepted_and_never_printed() {
        let p = Password::parse("correct horse battery staple", None).ok();
        assert!(p.is_some());
        assert_eq!(format!("{p:?}"), "Some(Password([redacted]))");
    }

    #[tokio::test]
    async fn hash_verifies_only_the_right_password() -> anyhow::Result<()> {
        let hasher = Hasher::new(8192, 1)?;
        // A hash made by the argon2 crate's own API verifies too (hashes stored before
        // the pool existed, or by other tools).
        let standard = {
            use argon2::password_hash::PasswordHasher as _;
            let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
            Argon2::default()
                .hash_password(b"correct horse battery staple", &salt)
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .to_string()
        };
        assert!(
            hasher
                .verify("correct horse battery staple", Some(&standard))
                .await?
        );
        assert!(
            !hasher
                .verify("wrong horse battery staple", Some(&standard))
                .await?
        );
        let password =
            Password::parse("correct horse battery staple", None).map_err(anyhow::Error::msg)?;
        let hash = hasher.hash(&password).await?;
        assert!(hash.starts_with("$argon2id$v=19$m=8192,t=1,p=1$"));
        // And the argon2 crate's own verifier accepts our hashes.
        {
            use argon2::password_hash::PasswordVerifier as _;
            let parsed = PasswordHash::new(&hash).map_err(|e| anyhow::anyhow!("{e}"))?;
            assert!(
                Argon2::default()
                    .verify_password(b"correct horse battery staple", &parsed)
                    .is_ok()
            );
        }
        assert!(
            hasher
                .verify("correct horse battery staple", Some(&hash))
                .await?
        );
        assert!(
            !hasher
                .verify("correct horse battery stapl", Some(&hash))
                .await?
        );
        assert!(!hasher.verify("correct horse battery staple", None).await?);
        Ok(())
    }
}
