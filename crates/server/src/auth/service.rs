//! Account operations: what the HTTP handlers and the command line call.

use chrono::{DateTime, Utc};
use sea_orm::TransactionTrait;
use uuid::Uuid;

use super::cache::CurrentUser;
use super::email::Email;
use super::extract::ClientInfo;
use super::password::Password;
use super::throttle::Held;
use super::tokens::{self, digest, random_token};
use crate::audit;
use crate::db::entity::api_key::Scope;
use crate::db::entity::user::Role;
use crate::db::sessions::NewSession;
use crate::db::{self, api_keys, sessions, users};
use crate::error::{Error, FieldError, OrNotFound};
use crate::state::AppState;

/// What login and refresh hand out.
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
    /// When the session, and so the refresh token, ends (the web page's cookie lifetime).
    pub refresh_expires_at: DateTime<Utc>,
}

/// Parses a new account's email and password, reporting both fields' problems at once.
pub fn parse_credentials(email: &str, password: &str) -> Result<(Email, Password), Error> {
    let email = Email::parse(email);
    let password = Password::parse(password, email.as_ref().ok().map(Email::as_str));
    match (email, password) {
        (Ok(e), Ok(p)) => Ok((e, p)),
        (e, p) => {
            let mut errors = Vec::new();
            if let Err(msg) = e {
                errors.push(FieldError::new("email", msg));
            }
            if let Err(msg) = p {
                errors.push(FieldError::new("password", msg));
            }
            Err(Error::Validation(errors))
        }
    }
}

#[tracing::instrument(skip_all)]
pub async fn register(
    state: &AppState,
    email: &Email,
    password: &Password,
    role: Role,
) -> Result<users::User, Error> {
    let hash = state.hasher.hash(password).await?;
    match users::insert(&state.db, email.as_str(), hash, role).await {
        Ok(user) => {
            tracing::info!(user.id = %user.id, "user registered");
            Ok(user)
        }
        Err(err) if db::is_unique_violation(&err) => Err(Error::conflict(
            "email-taken",
            "An account with this email address already exists.",
        )),
        Err(err) => Err(err.into()),
    }
}

/// Sets the user's locale after checking it is a BCP 47 tag (stored normalised, `de-DE`).
pub async fn set_locale(
    state: &AppState,
    mut user: CurrentUser,
    locale: Option<&str>,
) -> Result<CurrentUser, Error> {
    let locale = locale
        .map(sheetgpt_core::locale::Locale::parse)
        .transpose()
        .map_err(|msg| Error::field("locale", &msg))?;
    let locale = locale.map(|l| l.as_str().to_owned());
    users::set_locale(&state.db, user.id, locale.as_deref()).await?;
    // Cached sessions carry the user: the next request must see the new locale.
    state.sessions.forget_user(user.id);
    user.locale = locale;
    Ok(user)
}

fn invalid_credentials() -> Error {
    Error::unauthorized("invalid-credentials", "The email or password is incorrect.")
}

fn throttled(wait: std::time::Duration) -> Error {
    let secs = wait.as_secs().max(1);
    Error::TooManyRequests {
        retry_after_secs: secs,
        detail: format!("Too many failed sign-ins; try again in {secs} seconds."),
    }
}

/// Whether the sign-in brake lets this attempt through: a hold on the account alone is
/// lifted for an address the account signed in from before (see `auth::throttle`).
async fn brake(
    state: &AppState,
    held: Held,
    user: Option<&users::User>,
    ip: &str,
) -> Result<(), Error> {
    if held.account_only {
        // Asked for unknown accounts too (with an id nobody has), so that the answer's timing
        // says nothing about which accounts exist.
        let id = user.map_or(Uuid::nil(), |u| u.id);
        if sessions::signed_in_from(&state.db, id, ip).await? {
            return Ok(());
        }
    }
    Err(throttled(held.wait))
}

#[tracing::instrument(skip_all, fields(ip = %client.ip))]
pub async fn login(
    state: &AppState,
    email: &str,
    password: &str,
    client: &ClientInfo,
) -> Result<TokenPair, Error> {
    // A malformed address cannot name an account; it takes the same path as an unknown one
    // so that the answer and its timing say nothing about which accounts exist.
    let email = Email::parse(email)
        .map(|e| e.as_str().to_owned())
        .unwrap_or_else(|_| email.trim().to_lowercase());
    let held = match state.login_throttle.check(&email, &client.ip) {
        Ok(()) => None,
        Err(held) if !held.account_only => return Err(throttled(held.wait)),
        Err(held) => Some(held),
    };
    let user = users::find_by_email(&state.db, &email).await?;
    if let Some(held) = held {
        brake(state, held, user.as_ref(), &client.ip).await?;
    }
    let verified = state
        .hasher
        .verify(password, user.as_ref().map(|u| u.password_hash.as_str()))
        .await?;
    let user = match user {
        Some(user) if verified => user,
        _ => {
            tracing::info!("failed sign-in");
            audit::record(
                &state.db,
                Some(client),
                audit::Event::new("auth.login_failed", user.as_ref().map(|u| u.id))
                    .details(serde_json::json!({"email": email})),
            )
            .await;
            if let Some(held) = state.login_throttle.record_failure(&email, &client.ip) {
                brake(state, held, user.as_ref(), &client.ip).await?;
            }
            return Err(invalid_credentials());
        }
    };
    if user.disabled_at.is_some() {
        audit::record(
            &state.db,
            Some(client),
            audit::Event::new("auth.login_refused", Some(user.id))
                .details(serde_json::json!({"reason": "disabled"})),
        )
        .await;
        return Err(Error::forbidden(
            "account-disabled",
            "This account has been disabled; contact an administrator.",
        ));
    }
    let expires_at = Utc::now()
        + chrono::Duration::days(i64::try_from(state.config.auth.session_ttl_days).unwrap_or(30));
    let turn = state.writes.turn().await?;
    let txn = state.db.begin().await?;
    let session = sessions::insert(
        &txn,
        NewSession {
            user_id: user.id,
            user_agent: client.user_agent.as_deref(),
            ip: Some(&client.ip),
            expires_at,
        },
    )
    .await?;
    let refresh_token = random_token(32);
    sessions::insert_refresh_token(&txn, session.id, digest(&refresh_token), expires_at).await?;
    txn.commit().await?;
    // Others' writes need not wait for what follows.
    drop(turn);
    tracing::info!(user.id = %user.id, session.id = %session.id, "signed in");
    audit::record(
        &state.db,
        Some(client),
        audit::Event::new("auth.login", Some(user.id)).target("session", session.id),
    )
    .await;
    Ok(TokenPair {
        access_token: state.jwt.issue(user.id, session.id)?,
        refresh_token,
        expires_in: state.jwt.ttl_secs(),
        refresh_expires_at: expires_at,
    })
}

fn refresh_refused() -> Error {
    Error::unauthorized(
        "invalid-refresh-token",
        "The refresh token is not valid, has expired or its session has ended; sign in again.",
    )
}

/// Exchanges a refresh token for a new pair. Each refresh token works once; presenting a
/// spent one means it was copied, so the whole session (the login family) is revoked.
///
/// With a `grace` (the web page's cookie refresh), a spent token presented again within
/// `grace` of its exchange, while it is the session's last exchange and the token that exchange
/// made is still unused, is exchanged again in that token's place: the browser lost the answer
/// (a reload mid-refresh, two tabs refreshing at once). The session keeps one live token.
#[tracing::instrument(skip_all)]
pub async fn refresh(
    state: &AppState,
    refresh_token: &str,
    client: &ClientInfo,
    grace: Option<chrono::Duration>,
) -> Result<TokenPair, Error> {
    let token = sessions::find_refresh_token(&state.db, &digest(refresh_token))
        .await?
        .ok_or_else(refresh_refused)?;
    let session = sessions::find(&state.db, token.session_id)
        .await?
        .ok_or_else(refresh_refused)?;
    if session.revoked_at.is_some() || session.expires_at <= Utc::now() {
        return Err(refresh_refused());
    }
    // The token this exchange spends: the one presented, or in the grace case its successor.
    let mut spend = token.id;
    if let Some(used_at) = token.used_at {
        let Some(successor) = lost_answer(state, &token, used_at, &session, grace).await? else {
            return Err(reuse_detected(state, &session, client).await);
        };
        tracing::info!(session.id = %session.id, "refresh token presented again within the grace; exchanged in its successor's place");
        spend = successor;
    }
    if token.expires_at <= Utc::now() {
        return Err(refresh_refused());
    }
    let user = users::find_by_id(&state.db, session.user_id)
        .await?
        .filter(|u| u.disabled_at.is_none())
        .ok_or_else(refresh_refused)?;

    let turn = state.writes.turn().await?;
    let txn = state.db.begin().await?;
    if !sessions::spend_refresh_token(&txn, spend).await? {
        // Spent by a concurrent exchange between our read and this write: also reuse.
        txn.rollback().await?;
        return Err(reuse_detected(state, &session, client).await);
    }
    let new_token = random_token(32);
    sessions::insert_refresh_token(&txn, session.id, digest(&new_token), session.expires_at)
        .await?;
    sessions::touch(&txn, session.id).await?;
    txn.commit().await?;
    // Others' writes need not wait for what follows.
    drop(turn);
    Ok(TokenPair {
        access_token: state.jwt.issue(user.id, session.id)?,
        refresh_token: new_token,
        expires_in: state.jwt.ttl_secs(),
        refresh_expires_at: session.expires_at,
    })
}

/// For a spent token presented again: the id of the live token its exchange made, when the
/// grace applies (see [`refresh`]).
async fn lost_answer(
    state: &AppState,
    token: &sessions::RefreshToken,
    used_at: DateTime<Utc>,
    session: &sessions::Session,
    grace: Option<chrono::Duration>,
) -> Result<Option<Uuid>, Error> {
    let Some(grace) = grace.filter(|g| *g > chrono::Duration::zero()) else {
        return Ok(None);
    };
    if Utc::now() - used_at > grace {
        return Ok(None);
    }
    let last = sessions::last_spent_refresh_token(&state.db, session.id).await?;
    if last.map(|t| t.id) != Some(token.id) {
        return Ok(None);
    }
    Ok(sessions::live_refresh_token(&state.db, session.id)
        .await?
        .filter(|live| live.created_at >= used_at - chrono::Duration::seconds(1))
        .map(|live| live.id))
}

async fn reuse_detected(
    state: &AppState,
    session: &sessions::Session,
    client: &ClientInfo,
) -> Error {
    tracing::warn!(user.id = %session.user_id, session.id = %session.id, "refresh token reused; session revoked");
    audit::record(
        &state.db,
        Some(client),
        audit::Event::new("auth.refresh_token_reused", Some(session.user_id))
            .target("session", session.id),
    )
    .await;
    if let Err(err) = sessions::revoke(
        &state.db,
        session.user_id,
        session.id,
        "refresh_token_reuse",
    )
    .await
    {
        return err.into();
    }
    state.sessions.forget_session(session.id);
    Error::unauthorized(
        "refresh-token-reused",
        "This refresh token was already used, so the session has been ended for safety; sign in again.",
    )
}

pub async fn logout(state: &AppState, user: &CurrentUser, session_id: Uuid) -> Result<(), Error> {
    sessions::revoke(&state.db, user.id, session_id, "logout").await?;
    state.sessions.forget_session(session_id);
    Ok(())
}

/// Sign-out by refresh token (the web page's cookie, when its access token may be gone): ends
/// the token's session. An unknown token is already signed out.
#[tracing::instrument(skip_all)]
pub async fn logout_by_refresh_token(state: &AppState, refresh_token: &str) -> Result<(), Error> {
    let Some(token) = sessions::find_refresh_token(&state.db, &digest(refresh_token)).await? else {
        return Ok(());
    };
    if let Some(session) = sessions::find(&state.db, token.session_id).await? {
        sessions::revoke(&state.db, session.user_id, session.id, "logout").await?;
        state.sessions.forget_session(session.id);
        tracing::info!(user.id = %session.user_id, session.id = %session.id, "signed out");
    }
    Ok(())
}

pub async fn revoke_session(
    state: &AppState,
    user: &CurrentUser,
    session_id: Uuid,
) -> Result<(), Error> {
    if !sessions::revoke(&state.db, user.id, session_id, "user").await? {
        return Err(Error::NotFound("session"));
    }
    state.sessions.forget_session(session_id);
    Ok(())
}

/// Checks a signed-in user's password before a sensitive action (password change, account
/// deletion), under the sign-in brake: wrong guesses count as failed sign-ins, so a stolen
/// access token cannot be used to guess the password. `wrong` is the field and message of
/// the 422.
pub async fn confirm_password(
    state: &AppState,
    user: &users::User,
    password: &str,
    client: &ClientInfo,
    wrong: (&str, &str),
) -> Result<(), Error> {
    if let Err(held) = state.login_throttle.check(&user.email, &client.ip) {
        brake(state, held, Some(user), &client.ip).await?;
    }
    if state
        .hasher
        .verify(password, Some(&user.password_hash))
        .await?
    {
        return Ok(());
    }
    if let Some(held) = state.login_throttle.record_failure(&user.email, &client.ip) {
        brake(state, held, Some(user), &client.ip).await?;
    }
    Err(Error::field(wrong.0, wrong.1))
}

#[tracing::instrument(skip_all, fields(user.id = %user.id))]
pub async fn change_password(
    state: &AppState,
    user: &CurrentUser,
    current_session: Uuid,
    current: &str,
    new: &str,
    client: &ClientInfo,
) -> Result<usize, Error> {
    let stored = users::find_by_id(&state.db, user.id)
        .await?
        .or_not_found("user")?;
    let new =
        Password::parse(new, Some(&user.email)).map_err(|msg| Error::field("new_password", msg))?;
    confirm_password(
        state,
        &stored,
        current,
        client,
        ("current_password", "is not your current password"),
    )
    .await?;
    let hash = state.hasher.hash(&new).await?;
    let turn = state.writes.turn().await?;
    let txn = state.db.begin().await?;
    users::set_password_hash(&txn, user.id, hash).await?;
    let revoked =
        sessions::revoke_all_except(&txn, user.id, Some(current_session), "password_change")
            .await?;
    txn.commit().await?;
    // Others' writes need not wait for what follows.
    drop(turn);
    state.sessions.forget_user(user.id);
    tracing::info!(revoked = revoked.len(), "password changed");
    audit::record(
        &state.db,
        Some(client),
        audit::Event::new("auth.password_changed", Some(user.id))
            .target("user", user.id)
            .details(serde_json::json!({"sessions_revoked": revoked.len()})),
    )
    .await;
    Ok(revoked.len())
}

/// Most keys one user may hold at once.
pub const MAX_API_KEYS: u64 = 50;

pub struct CreatedApiKey {
    pub key: String,
    pub record: api_keys::ApiKey,
}

#[tracing::instrument(skip_all, fields(user.id = %user.id))]
pub async fn create_api_key(
    state: &AppState,
    user: &CurrentUser,
    name: &str,
    scope: Scope,
    expires_at: Option<DateTime<Utc>>,
) -> Result<CreatedApiKey, Error> {
    if api_keys::count_live(&state.db, user.id).await? >= MAX_API_KEYS {
        return Err(Error::conflict(
            "too-many-api-keys",
            format!("You already have {MAX_API_KEYS} API keys; revoke one first."),
        ));
    }
    let secret = tokens::new_api_key();
    let record = api_keys::insert(
        &state.db,
        api_keys::NewApiKey {
            user_id: user.id,
            name: name.trim(),
            prefix: &secret.prefix,
            key_hash: digest(&secret.key),
            scope,
            expires_at,
        },
    )
    .await?;
    tracing::info!(api_key.id = %record.id, "API key created");
    Ok(CreatedApiKey {
        key: secret.key,
        record,
    })
}

/// What disabling a user ended.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Disabled {
    pub sessions_revoked: usize,
    pub api_keys_revoked: u64,
}

/// Disables a user and, in the same transaction, ends every session (and so its refresh
/// tokens and access tokens) and revokes every API key: enabling the user again later does
/// not bring any of them back. For the admin API and `sheetgpt user disable`.
#[tracing::instrument(skip_all, fields(user.id = %user_id))]
pub async fn disable_user(state: &AppState, user_id: Uuid) -> Result<Disabled, Error> {
    let turn = state.writes.turn().await?;
    let txn = state.db.begin().await?;
    users::set_disabled(&txn, user_id, Some(Utc::now())).await?;
    let sessions = sessions::revoke_all_except(&txn, user_id, None, "user_disabled").await?;
    let api_keys_revoked = api_keys::revoke_all(&txn, user_id).await?;
    txn.commit().await?;
    // Others' writes need not wait for what follows.
    drop(turn);
    // Access tokens are checked against their session; on this instance at once.
    state.sessions.forget_user(user_id);
    tracing::info!(
        sessions = sessions.len(),
        api_keys = api_keys_revoked,
        "user disabled"
    );
    Ok(Disabled {
        sessions_revoked: sessions.len(),
        api_keys_revoked,
    })
}
