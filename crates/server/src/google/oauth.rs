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
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq as _;
use uuid::Uuid;

use super::client::GoogleError;
use crate::auth::tokens::{digest, random_token};
use crate::db::entity::{google_account, google_authorization};
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
    let now = Utc::now();
    google_authorization::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        session_id: Set(session_id),
        state_hash: Set(digest(csrf.secret())),
        browser_hash: Set(Some(digest(browser))),
        encrypted_verifier: Set(verifier),
        expires_at: Set(now + Duration::minutes(AUTHORIZATION_TTL_MINUTES)),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
    }
    .insert(&state.db)
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
    let pending = google_authorization::Entity::find()
        .filter(google_authorization::Column::StateHash.eq(digest(csrf_state)))
        .filter(google_authorization::Column::DeletedAt.is_null())
        .one(&state.db)
        .await?
        .ok_or_else(invalid)?;
    // Single use: whoever deletes it first completes it.
    let taken = google_authorization::Entity::delete_many()
        .filter(google_authorization::Column::Id.eq(pending.id))
        .exec(&state.db)
        .await?;
    if taken.rows_affected != 1 || pending.expires_at < Utc::now() {
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
    let now = Utc::now();
    // One grant per user: a new connection replaces the old one.
    google_account::Entity::delete_many()
        .filter(google_account::Column::UserId.eq(user_id))
        .exec(&state.db)
        .await?;
    google_account::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        status: Set(CONNECTED.to_owned()),
        scopes: Set(scopes),
        encrypted_refresh_token: Set(encrypt(refresh.secret(), "refresh")?),
        encrypted_access_token: Set(Some(encrypt(token.access_token().secret(), "access")?)),
        access_expires_at: Set(Some(expires)),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
    }
    .insert(&state.db)
    .await?;
    tracing::info!(user.id = %user_id, "Google account connected");
    Ok(user_id)
}

fn short(err: &dyn std::fmt::Display) -> String {
    err.to_string().chars().take(200).collect()
}

pub async fn account(
    db: &impl ConnectionTrait,
    user_id: Uuid,
) -> Result<Option<google_account::Model>, sea_orm::DbErr> {
    google_account::Entity::find()
        .filter(google_account::Column::UserId.eq(user_id))
        .filter(google_account::Column::DeletedAt.is_null())
        .one(db)
        .await
}

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
            set_status(state, account.id, RECONNECT_REQUIRED)
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
    let mut update = google_account::Entity::update_many()
        .col_expr(
            google_account::Column::EncryptedAccessToken,
            Expr::value(encrypted),
        )
        .col_expr(
            google_account::Column::AccessExpiresAt,
            Expr::value(expires),
        )
        .col_expr(google_account::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(google_account::Column::Id.eq(account.id));
    // Google may rotate the refresh token.
    if let Some(new_refresh) = token.refresh_token() {
        let encrypted = state
            .cipher
            .encrypt(new_refresh.secret().as_bytes(), &aad(user_id, "refresh"))
            .map_err(|e| GoogleError::Transient(format!("encrypt: {e}")))?;
        update = update.col_expr(
            google_account::Column::EncryptedRefreshToken,
            Expr::value(encrypted),
        );
    }
    update.exec(&state.db).await.map_err(db_err)?;
    Ok(SecretString::from(access))
}

async fn set_status(state: &AppState, id: Uuid, status: &str) -> Result<(), sea_orm::DbErr> {
    google_account::Entity::update_many()
        .col_expr(google_account::Column::Status, Expr::value(status))
        .col_expr(google_account::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(google_account::Column::Id.eq(id))
        .exec(&state.db)
        .await?;
    Ok(())
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
    google_account::Entity::delete_many()
        .filter(google_account::Column::UserId.eq(user_id))
        .exec(&state.db)
        .await?;
    tracing::info!(user.id = %user_id, revoked, "Google account disconnected");
    Ok(Some(revoked))
}
