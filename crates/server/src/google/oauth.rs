//! Users' Google grants: the authorization (state bound to the user and session, and to the
//! browser that started it; PKCE), the tokens kept encrypted at rest, refreshing before
//! expiry, and revoking on disconnect.
//!
//! The browser binding (RFC 9700 §4.7.1): `state` alone says which SheetGPT user started the
//! authorization, not who comes back with it. Without more, an attacker could start one,
//! send the consent URL to a victim, and receive the victim's Google grant in their own
//! account. So `connect` also sets a random value as a cookie in the browser that asked, and
//! keeps its hash with the state; the callback completes only when that browser returns.

use chrono::{DateTime, Duration, Utc};
use oauth2::basic::BasicErrorResponseType;
use oauth2::{
    AuthorizationCode, CsrfToken, PkceCodeChallenge, PkceCodeVerifier, RefreshToken,
    RequestTokenError, Scope, TokenResponse,
};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq as _;
use uuid::Uuid;

use super::client::GoogleError;
use crate::auth::tokens::{digest, random_token};
use crate::db::google as store;
use crate::error::Error;
use crate::state::AppState;

pub const CONNECTED: &str = "connected";
pub const RECONNECT_REQUIRED: &str = "reconnect_required";

/// How long a started authorization may take.
const AUTHORIZATION_TTL_MINUTES: i64 = 10;
/// Access tokens are refreshed this long before they expire.
const REFRESH_MARGIN_SECS: i64 = 120;

fn aad(user_id: Uuid, purpose: &str) -> Vec<u8> {
    format!("google:{purpose}:{user_id}").into_bytes()
}

fn not_configured() -> Error {
    Error::NotFound("Google integration")
}

/// Starts an authorization: the consent URL to send the user to.
pub async fn start(
    state: &AppState,
    user_id: Uuid,
    session_id: Option<Uuid>,
    browser: &str,
) -> Result<String, Error> {
    let client = state.google.oauth.as_ref().ok_or_else(not_configured)?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let csrf = CsrfToken::new(random_token(32));
    let (url, csrf) = client
        .authorize_url(|| csrf)
        .add_scopes(super::SCOPES.iter().map(|s| Scope::new((*s).to_owned())))
        .set_pkce_challenge(challenge)
        // A refresh token, every time (Google sends one only with consent).
        .add_extra_param("access_type", "offline")
        .add_extra_param("prompt", "consent")
        .add_extra_param("include_granted_scopes", "true")
        .url();
    let verifier = state
        .cipher
        .encrypt(verifier.secret().as_bytes(), &aad(user_id, "pkce"))
        .map_err(|e| Error::Internal(anyhow::anyhow!("encrypt: {e}")))?;
    store::insert_authorization(
        &state.db,
        store::NewAuthorization {
            user_id,
            session_id,
            state_hash: digest(csrf.secret()),
            browser_hash: digest(browser),
            encrypted_verifier: verifier,
            expires_at: Utc::now() + Duration::minutes(AUTHORIZATION_TTL_MINUTES),
        },
    )
    .await?;
    Ok(url.to_string())
}

/// Completes an authorization from Google's redirect: checks the state (once, in time, for a
/// session still signed in, in the browser that started it: one of `browsers`, the values of
/// its binding cookie), exchanges the code with the PKCE verifier and stores the tokens.
pub async fn complete(
    state: &AppState,
    code: &str,
    csrf_state: &str,
    browsers: &[String],
) -> Result<Uuid, Error> {
    let client = state.google.oauth.as_ref().ok_or_else(not_configured)?;
    let invalid = || {
        Error::bad_request(
            "invalid-oauth-state",
            "This Google authorization is unknown, used or expired; connect again.",
        )
    };
    // Single use: whoever takes it first completes it.
    let pending = store::take_authorization(&state.db, &digest(csrf_state))
        .await?
        .ok_or_else(invalid)?;
    if pending.expires_at < Utc::now() {
        return Err(invalid());
    }
    let same_browser = pending.browser_hash.as_deref().is_some_and(|want| {
        browsers
            .iter()
            .any(|b| bool::from(digest(b).as_bytes().ct_eq(want.as_bytes())))
    });
    if !same_browser {
        tracing::warn!(user.id = %pending.user_id, "Google callback from another browser than the one that connected; refused");
        return Err(Error::bad_request(
            "oauth-browser-mismatch",
            "This Google authorization was started in another browser, or its cookie is gone; connect again from this browser.",
        ));
    }
    if code.is_empty() {
        return Err(invalid());
    }
    if let Some(session_id) = pending.session_id {
        let live = crate::db::sessions::find(&state.db, session_id)
            .await?
            .is_some_and(|s| s.revoked_at.is_none() && s.expires_at > Utc::now());
        if !live {
            return Err(invalid());
        }
    }
    let verifier = state
        .cipher
        .decrypt_text(&pending.encrypted_verifier, &aad(pending.user_id, "pkce"))
        .map_err(|e| Error::Internal(anyhow::anyhow!("decrypt: {e}")))?;
    let token = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .set_pkce_verifier(PkceCodeVerifier::new(verifier.expose_secret().to_owned()))
        .request_async(&state.google.http)
        .await
        .map_err(|err| match err {
            RequestTokenError::ServerResponse(resp) => Error::bad_request(
                "google-authorization-failed",
                format!(
                    "Google did not accept the authorization ({}); connect again.",
                    resp.error()
                ),
            ),
            other => Error::Gateway {
                timeout: false,
                detail: format!("Google's token endpoint failed: {}", short(&other)),
            },
        })?;
    let refresh = token.refresh_token().ok_or_else(|| {
        Error::bad_request(
            "google-authorization-failed",
            "Google sent no refresh token; connect again and allow offline access.",
        )
    })?;
    let scopes = token
        .scopes()
        .map(|s| {
            s.iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| super::SCOPES.join(" "));
    let user_id = pending.user_id;
    let expires = Utc::now()
        + token
            .expires_in()
            .and_then(|d| Duration::from_std(d).ok())
            .unwrap_or_else(|| Duration::seconds(3600));
    let encrypt = |text: &str, purpose: &str| {
        state
            .cipher
            .encrypt(text.as_bytes(), &aad(user_id, purpose))
            .map_err(|e| Error::Internal(anyhow::anyhow!("encrypt: {e}")))
    };
    // One grant per user: a new connection replaces the old one.
    store::replace_account(
        &state.db,
        store::NewAccount {
            user_id,
            status: CONNECTED.to_owned(),
            scopes,
            encrypted_refresh_token: encrypt(refresh.secret(), "refresh")?,
            encrypted_access_token: encrypt(token.access_token().secret(), "access")?,
            access_expires_at: expires,
        },
    )
    .await?;
    tracing::info!(user.id = %user_id, "Google account connected");
    Ok(user_id)
}

fn short(err: &dyn std::fmt::Display) -> String {
    err.to_string().chars().take(200).collect()
}

pub use crate::db::google::account;

/// A valid access token for the user's Google account, refreshed when it is about to expire
/// (or when `force`, after Google answered 401).
pub async fn access_token(
    state: &AppState,
    user_id: Uuid,
    force: bool,
) -> Result<SecretString, GoogleError> {
    let db_err = |e: sea_orm::DbErr| GoogleError::Transient(format!("database: {e}"));
    let account = account(&state.db, user_id)
        .await
        .map_err(db_err)?
        .ok_or(GoogleError::NotConnected)?;
    if account.status != CONNECTED {
        return Err(GoogleError::Reconnect);
    }
    let fresh = account
        .access_expires_at
        .is_some_and(|at| at > Utc::now() + Duration::seconds(REFRESH_MARGIN_SECS));
    if !force
        && fresh
        && let Some(stored) = &account.encrypted_access_token
        && let Ok(token) = state.cipher.decrypt_text(stored, &aad(user_id, "access"))
    {
        return Ok(token);
    }
    let client = state
        .google
        .oauth
        .as_ref()
        .ok_or(GoogleError::NotConnected)?;
    let refresh = state
        .cipher
        .decrypt_text(&account.encrypted_refresh_token, &aad(user_id, "refresh"))
        .map_err(|_| GoogleError::Reconnect)?;
    let refresh = RefreshToken::new(refresh.expose_secret().to_owned());
    let token = match client
        .exchange_refresh_token(&refresh)
        .request_async(&state.google.http)
        .await
    {
        Ok(token) => token,
        Err(RequestTokenError::ServerResponse(resp))
            if matches!(
                resp.error(),
                BasicErrorResponseType::InvalidGrant | BasicErrorResponseType::UnauthorizedClient
            ) =>
        {
            store::set_status(&state.db, account.id, RECONNECT_REQUIRED)
                .await
                .map_err(db_err)?;
            tracing::info!(user.id = %user_id, "Google refused the grant; reconnect required");
            return Err(GoogleError::Reconnect);
        }
        Err(err) => {
            return Err(GoogleError::Transient(format!(
                "token refresh: {}",
                short(&err)
            )));
        }
    };
    let expires: DateTime<Utc> = Utc::now()
        + token
            .expires_in()
            .and_then(|d| Duration::from_std(d).ok())
            .unwrap_or_else(|| Duration::seconds(3600));
    let access = token.access_token().secret().to_owned();
    let encrypted = state
        .cipher
        .encrypt(access.as_bytes(), &aad(user_id, "access"))
        .map_err(|e| GoogleError::Transient(format!("encrypt: {e}")))?;
    // Google may rotate the refresh token.
    let rotated = match token.refresh_token() {
        Some(new_refresh) => Some(
            state
                .cipher
                .encrypt(new_refresh.secret().as_bytes(), &aad(user_id, "refresh"))
                .map_err(|e| GoogleError::Transient(format!("encrypt: {e}")))?,
        ),
        None => None,
    };
    store::save_tokens(&state.db, account.id, encrypted, expires, rotated)
        .await
        .map_err(db_err)?;
    Ok(SecretString::from(access))
}

/// Revokes the grant at Google (best effort) and deletes it here. Returns whether Google
/// confirmed the revocation, or None when there was nothing connected.
pub async fn disconnect(state: &AppState, user_id: Uuid) -> Result<Option<bool>, Error> {
    let Some(account) = account(&state.db, user_id).await? else {
        return Ok(None);
    };
    let mut revoked = false;
    // Google's revocation endpoint (a form POST of the token). The oauth2 crate's revocation
    // refuses plain-http endpoints, which local proxies and the tests use.
    if let Ok(refresh) = state
        .cipher
        .decrypt_text(&account.encrypted_refresh_token, &aad(user_id, "refresh"))
    {
        let answer = state
            .google
            .http
            .post(&state.config.google.revoke_url)
            .form(&[("token", refresh.expose_secret())])
            .send()
            .await;
        match answer {
            Ok(resp) if resp.status().is_success() => revoked = true,
            Ok(resp) => {
                tracing::warn!(user.id = %user_id, status = resp.status().as_u16(), "Google did not confirm the revocation");
            }
            Err(err) => {
                tracing::warn!(user.id = %user_id, error = %short(&err), "Google's revocation endpoint failed");
            }
        }
    }
    store::delete_accounts(&state.db, user_id).await?;
    tracing::info!(user.id = %user_id, revoked, "Google account disconnected");
    Ok(Some(revoked))
}
