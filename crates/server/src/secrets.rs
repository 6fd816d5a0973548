//! Secrets that a fresh machine generates for itself: written once into the data directory
//! with mode 0600 and read back on every start. Production sets them in the environment.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;
use secrecy::SecretString;

use crate::crypto::random_token;

/// Creates the data directory (mode 0700: it holds the database and secrets) if missing.
pub fn ensure_data_dir(data_dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))
}

/// Warns when the data directory (the database, secrets, export files) can be entered or read
/// by other local users. It is the operator's directory, so its mode is left as it is.
pub fn warn_if_open(data_dir: &Path) {
    if let Ok(meta) = fs::metadata(data_dir)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            dir = %data_dir.display(),
            mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "the data directory is open to other users (it holds the database and secrets); chmod 700 it"
        );
    }
}

/// Creates an empty file readable by its owner only (0600), whatever the umask, unless it
/// exists: the SQLite database, before SQLite opens it (SQLite then gives its `-wal` and
/// `-shm` files the same mode). An existing file more open than that is warned about.
pub fn create_private(path: &Path) -> anyhow::Result<()> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == ErrorKind::AlreadyExists => {
            if let Ok(meta) = fs::metadata(path)
                && meta.permissions().mode() & 0o077 != 0
            {
                tracing::warn!(file = %path.display(), "the database file is readable by other users; chmod 600 it");
            }
            Ok(())
        }
        Err(err) => Err(err).with_context(|| format!("cannot create {}", path.display())),
    }
}

/// The secret in `SHEETGPT_<NAME>` if set, else the one in `<data_dir>/<name>`, generated on
/// first use (48 random bytes, for signing).
pub fn load_or_generate(
    configured: Option<&SecretString>,
    data_dir: &Path,
    name: &str,
) -> anyhow::Result<SecretString> {
    load_or_create(configured, data_dir, name, || random_token(48))
}

/// Like [`load_or_generate`], for an encryption key: 32 random bytes in base64.
pub fn load_or_generate_key(
    configured: Option<&SecretString>,
    data_dir: &Path,
    name: &str,
) -> anyhow::Result<SecretString> {
    load_or_create(configured, data_dir, name, crate::crypto::generate_key_text)
}

fn load_or_create(
    configured: Option<&SecretString>,
    data_dir: &Path,
    name: &str,
    generate: impl FnOnce() -> String,
) -> anyhow::Result<SecretString> {
    if let Some(secret) = configured {
        return Ok(secret.clone());
    }
    ensure_data_dir(data_dir)?;
    let path = data_dir.join(name);
    let generated = generate();
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
    {
        Ok(mut file) => {
            file.write_all(generated.as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("cannot write {}", path.display()))?;
            tracing::info!(file = %path.display(), "generated a new {name}; set it in the environment for production");
            Ok(SecretString::from(generated))
        }
        Err(err) if err.kind() == ErrorKind::AlreadyExists => {
            let mode = fs::metadata(&path)?.permissions().mode();
            if mode & 0o077 != 0 {
                tracing::warn!(file = %path.display(), "secret file is readable by others; chmod 600 it");
            }
            let secret = fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let secret = secret.trim().to_owned();
            anyhow::ensure!(
                secret.len() >= 32,
                "{} holds fewer than 32 characters; delete it to have a new one generated",
                path.display()
            );
            Ok(SecretString::from(secret))
        }
        Err(err) => Err(err).with_context(|| format!("cannot create {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn a_generated_secret_is_private_and_stable() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let first = load_or_generate(None, dir.path(), "jwt_secret")?;
        let second = load_or_generate(None, dir.path(), "jwt_secret")?;
        assert_eq!(first.expose_secret(), second.expose_secret());
        let mode = fs::metadata(dir.path().join("jwt_secret"))?
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        Ok(())
    }

    #[test]
    fn a_private_file_is_created_0600_whatever_the_directory_and_kept_if_present()
    -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))?;
        let path = dir.path().join("sheetgpt.db");
        create_private(&path)?;
        assert_eq!(fs::metadata(&path)?.permissions().mode() & 0o777, 0o600);
        fs::write(&path, b"data")?;
        create_private(&path)?;
        assert_eq!(
            fs::read(&path)?,
            b"data",
            "an existing file is left as it is"
        );
        Ok(())
    }

    #[test]
    fn a_configured_secret_wins_and_writes_nothing() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let configured = SecretString::from("x".repeat(40));
        let got = load_or_generate(Some(&configured), dir.path(), "jwt_secret")?;
        assert_eq!(got.expose_secret(), configured.expose_secret());
        assert!(!dir.path().join("jwt_secret").exists());
        Ok(())
    }

    #[test]
    fn a_generated_encryption_key_is_32_bytes_private_and_stable() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let first = load_or_generate_key(None, dir.path(), "encryption_key")?;
        let second = load_or_generate_key(None, dir.path(), "encryption_key")?;
        assert_eq!(first.expose_secret(), second.expose_secret());
        assert!(crate::crypto::Cipher::from_text(first.expose_secret()).is_ok());
        let mode = fs::metadata(dir.path().join("encryption_key"))?
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        Ok(())
    }
}
