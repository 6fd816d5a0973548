//! Users' own keys for configured models ("bring your own key"): `PUT` and `DELETE
//! /models/{name}/key`. A saved key is encrypted at rest (see [`crate::crypto`]), bound to its
//! owner and model, used only for its owner's requests to that model, and never shown again;
//! answers carry its last characters at most.

pub mod routes;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use garde::Validate;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::registry::ModelEntry;
use crate::db::user_model_keys::{self as store, UserModelKey};
use crate::error::{Error, OrNotFound};
use crate::state::AppState;

/// Longest key accepted; real provider keys are a few hundred characters at most.
const MAX_KEY_CHARS: usize = 1024;
/// Keys shorter than this get no hint: their last characters would give too much away.
const MIN_KEY_CHARS_FOR_HINT: usize = 16;
const HINT_CHARS: usize = 4;

#[derive(Deserialize, Validate, ToSchema)]
pub struct PutModelKey {
    /// Your key for this model's provider. It is stored encrypted and never shown again.
    #[garde(skip)]
    #[schema(value_type = String, format = Password, example = "sk-proj-…")]
    pub api_key: SecretString,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelKeyResponse {
    pub model: String,
    /// The key's last characters, to tell which key is saved (`…` alone for short keys).
    #[schema(example = "…x7Qa")]
    pub key_hint: String,
    pub updated_at: DateTime<Utc>,
}

impl From<UserModelKey> for ModelKeyResponse {
    fn from(k: UserModelKey) -> Self {
        Self {
            key_hint: format!("…{}", k.key_hint),
            model: k.model,
            updated_at: k.updated_at,
        }
    }
}

/// A provider key as a user gave it: trimmed, not empty, at most [`MAX_KEY_CHARS`] visible
/// ASCII characters (anything else cannot travel in an HTTP header).
struct OwnKey(SecretString);

impl OwnKey {
    fn parse(key: &SecretString) -> Result<Self, Error> {
        // The messages describe the key, never quote it.
        let text = key.expose_secret().trim();
        if text.is_empty() {
            return Err(Error::field("api_key", "must not be empty"));
        }
        if text.len() > MAX_KEY_CHARS {
            return Err(Error::field(
                "api_key",
                format!("must be at most {MAX_KEY_CHARS} characters long"),
            ));
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::field(
                "api_key",
                "must be printable ASCII without spaces",
            ));
        }
        Ok(Self(SecretString::from(text)))
    }

    fn hint(&self) -> String {
        let text = self.0.expose_secret();
        if text.len() < MIN_KEY_CHARS_FOR_HINT {
            return String::new();
        }
        text[text.len() - HINT_CHARS..].to_owned()
    }
}

/// What the ciphertext is bound to: a value copied to another user's or model's row does
/// not decrypt there.
fn associated_data(user: Uuid, model: &str) -> Vec<u8> {
    format!("sheetgpt/user_model_keys/v1/{user}/{model}").into_bytes()
}

#[tracing::instrument(skip_all, fields(user.id = %user, model = %model))]
pub(crate) async fn save(
    state: &AppState,
    user: Uuid,
    model: &str,
    key: &SecretString,
) -> Result<UserModelKey, Error> {
    let entry = state.models.get(model).or_not_found("model")?;
    if !entry.takes_own_key() {
        return Err(Error::field(
            "model",
            format!("`{model}` runs on this server and takes no key"),
        ));
    }
    let key = OwnKey::parse(key)?;
    let encrypted = state
        .cipher
        .encrypt(
            key.0.expose_secret().as_bytes(),
            &associated_data(user, model),
        )
        .map_err(|err| Error::Internal(err.into()))?;
    let saved = store::save(&state.db, user, model, encrypted, key.hint()).await?;
    tracing::info!("saved the user's own model key");
    Ok(saved)
}

#[tracing::instrument(skip_all, fields(user.id = %user, model = %model))]
pub(crate) async fn remove(state: &AppState, user: Uuid, model: &str) -> Result<(), Error> {
    // No check that the model is still configured: a key for a model taken out of the
    // configuration can still be deleted.
    if !store::delete(&state.db, user, model).await? {
        return Err(Error::NotFound("model key"));
    }
    tracing::info!("deleted the user's own model key");
    Ok(())
}

/// Names of the models `user` has their own key for.
pub async fn models_with_own_key(state: &AppState, user: Uuid) -> Result<BTreeSet<String>, Error> {
    Ok(store::models(&state.db, user).await?.into_iter().collect())
}

/// `entry` as `user` uses it: with their own key when they saved one, else as configured.
pub async fn model_for_user(
    state: &AppState,
    user: Uuid,
    entry: &ModelEntry,
) -> Result<ModelEntry, Error> {
    if !entry.takes_own_key() {
        return Ok(entry.clone());
    }
    let Some(saved) = store::find(&state.db, user, &entry.name).await? else {
        return Ok(entry.clone());
    };
    match state
        .cipher
        .decrypt_text(&saved.encrypted_key, &associated_data(user, &entry.name))
    {
        Ok(key) => Ok(entry.with_api_key(key)),
        Err(err) => {
            // Not silently the configured key: the user asked for theirs to be used.
            tracing::warn!(user.id = %user, model = %entry.name, error = %err, "own model key unreadable");
            Err(Error::conflict(
                "own-key-unreadable",
                format!(
                    "Your own key for `{}` can no longer be read (the server's encryption key \
                     changed); save it again, or delete it to use the configured key.",
                    entry.name
                ),
            ))
        }
    }
}
