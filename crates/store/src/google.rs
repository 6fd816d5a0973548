//! Google connections: pending authorizations (single use), the one grant per user with its
//! encrypted tokens, and the write pacing shared by every instance.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait,
    QueryFilter, Set,
};
use uuid::Uuid;

use crate::entity::{google_account, google_authorization};

pub use google_account::Model as GoogleAccount;
pub use google_authorization::Model as Authorization;

pub struct NewAuthorization {
    pub user_id: Uuid,
    pub session_id: Option<Uuid>,
    pub state_hash: String,
    pub browser_hash: String,
    pub encrypted_verifier: String,
    pub expires_at: DateTime<Utc>,
}

pub async fn insert_authorization(
    db: &impl ConnectionTrait,
    new: NewAuthorization,
) -> Result<(), DbErr> {
    let now = Utc::now();
    google_authorization::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(new.user_id),
        session_id: Set(new.session_id),
        state_hash: Set(new.state_hash),
        browser_hash: Set(Some(new.browser_hash)),
        encrypted_verifier: Set(new.encrypted_verifier),
        expires_at: Set(new.expires_at),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(())
}

/// The pending authorization of this state, removed: whoever takes it first completes it
/// (None when it is unknown or another request took it). Expiry is the caller's check.
pub async fn take_authorization(
    db: &impl ConnectionTrait,
    state_hash: &str,
) -> Result<Option<Authorization>, DbErr> {
    let Some(pending) = google_authorization::Entity::find()
        .filter(google_authorization::Column::StateHash.eq(state_hash))
        .filter(google_authorization::Column::DeletedAt.is_null())
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let taken = google_authorization::Entity::delete_many()
        .filter(google_authorization::Column::Id.eq(pending.id))
        .exec(db)
        .await?;
    Ok((taken.rows_affected == 1).then_some(pending))
}

pub struct NewAccount {
    pub user_id: Uuid,
    pub status: String,
    pub scopes: String,
    pub encrypted_refresh_token: String,
    pub encrypted_access_token: String,
    pub access_expires_at: DateTime<Utc>,
}

/// Stores a user's grant, replacing the one they had (one per user).
pub async fn replace_account(db: &impl ConnectionTrait, new: NewAccount) -> Result<(), DbErr> {
    delete_accounts(db, new.user_id).await?;
    let now = Utc::now();
    google_account::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(new.user_id),
        status: Set(new.status),
        scopes: Set(new.scopes),
        encrypted_refresh_token: Set(new.encrypted_refresh_token),
        encrypted_access_token: Set(Some(new.encrypted_access_token)),
        access_expires_at: Set(Some(new.access_expires_at)),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(())
}

pub async fn account(
    db: &impl ConnectionTrait,
    user_id: Uuid,
) -> Result<Option<GoogleAccount>, DbErr> {
    google_account::Entity::find()
        .filter(google_account::Column::UserId.eq(user_id))
        .filter(google_account::Column::DeletedAt.is_null())
        .one(db)
        .await
}

/// A refreshed access token (and the refresh token, when Google rotated it).
pub async fn save_tokens(
    db: &impl ConnectionTrait,
    account_id: Uuid,
    encrypted_access: String,
    expires_at: DateTime<Utc>,
    encrypted_refresh: Option<String>,
) -> Result<(), DbErr> {
    let mut update = google_account::Entity::update_many()
        .col_expr(
            google_account::Column::EncryptedAccessToken,
            Expr::value(encrypted_access),
        )
        .col_expr(
            google_account::Column::AccessExpiresAt,
            Expr::value(expires_at),
        )
        .col_expr(google_account::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(google_account::Column::Id.eq(account_id));
    if let Some(refresh) = encrypted_refresh {
        update = update.col_expr(
            google_account::Column::EncryptedRefreshToken,
            Expr::value(refresh),
        );
    }
    update.exec(db).await?;
    Ok(())
}

pub async fn set_status(
    db: &impl ConnectionTrait,
    account_id: Uuid,
    status: &str,
) -> Result<(), DbErr> {
    google_account::Entity::update_many()
        .col_expr(google_account::Column::Status, Expr::value(status))
        .col_expr(google_account::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(google_account::Column::Id.eq(account_id))
        .exec(db)
        .await?;
    Ok(())
}

pub async fn delete_accounts(db: &impl ConnectionTrait, user_id: Uuid) -> Result<(), DbErr> {
    google_account::Entity::delete_many()
        .filter(google_account::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    Ok(())
}

/// Claims the next write slot of a Google account under the generic cell rate algorithm
/// (`interval` ms apart, `tolerance` ms of burst), with the theoretical arrival time kept in
/// `google_pacing` so that every instance paces the account against the same row. Returns
/// the slot's time in ms since the epoch (it may be in the past: write at once).
pub async fn pacing_slot(
    db: &impl ConnectionTrait,
    account: &str,
    interval: i64,
    tolerance: i64,
    now: i64,
) -> Result<i64, DbErr> {
    let floor = now - tolerance;
    let backend = db.get_database_backend();
    let greatest = match backend {
        DatabaseBackend::Postgres => "GREATEST",
        _ => "MAX",
    };
    let sql = format!(
        "INSERT INTO google_pacing (account, next_at) VALUES (?, ?) \
         ON CONFLICT (account) DO UPDATE SET next_at = {greatest}(google_pacing.next_at, ?) + ? \
         RETURNING next_at"
    );
    let row = db
        .query_one_raw(crate::stmt(
            backend,
            &sql,
            vec![
                account.into(),
                (floor + interval).into(),
                floor.into(),
                interval.into(),
            ],
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("google_pacing".to_owned()))?;
    let next_at: i64 = row.try_get_by_index(0)?;
    Ok(next_at - interval)
}
