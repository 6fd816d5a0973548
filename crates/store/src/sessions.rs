//! Login sessions and their refresh tokens.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use uuid::Uuid;

use super::entity::{refresh_token, session};

pub use refresh_token::Model as RefreshToken;
pub use session::Model as Session;

pub struct NewSession<'a> {
    pub user_id: Uuid,
    pub user_agent: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub expires_at: DateTime<Utc>,
}

pub async fn insert(db: &impl ConnectionTrait, new: NewSession<'_>) -> Result<Session, DbErr> {
    let now = Utc::now();
    session::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(new.user_id),
        user_agent: Set(new.user_agent.map(|ua| ua.chars().take(300).collect())),
        ip: Set(new.ip.map(str::to_owned)),
        last_used_at: Set(now),
        expires_at: Set(new.expires_at),
        revoked_at: Set(None),
        revoked_reason: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
    }
    .insert(db)
    .await
}

pub async fn find(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<Session>, DbErr> {
    session::Entity::find_by_id(id)
        .filter(session::Column::DeletedAt.is_null())
        .one(db)
        .await
}

/// Sessions of a user that are neither revoked nor expired, newest first: `limit` of them
/// older than the cursor `before` (a session id).
pub async fn list_active(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    before: Option<Uuid>,
    limit: u64,
) -> Result<Vec<Session>, DbErr> {
    let mut query = session::Entity::find()
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::DeletedAt.is_null())
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(Utc::now()))
        .order_by_desc(session::Column::Id)
        .limit(limit);
    if let Some(before) = before {
        query = query.filter(session::Column::Id.lt(before));
    }
    query.all(db).await
}

pub async fn touch(db: &impl ConnectionTrait, id: Uuid) -> Result<(), DbErr> {
    let now = Utc::now();
    session::Entity::update_many()
        .col_expr(session::Column::LastUsedAt, Expr::value(now))
        .col_expr(session::Column::UpdatedAt, Expr::value(now))
        .filter(session::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Revokes one session of a user; false when it does not exist, is not theirs, or is
/// already revoked.
pub async fn revoke(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    id: Uuid,
    reason: &str,
) -> Result<bool, DbErr> {
    let now = Utc::now();
    let result = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(now))
        .col_expr(session::Column::RevokedReason, Expr::value(reason))
        .col_expr(session::Column::UpdatedAt, Expr::value(now))
        .filter(session::Column::Id.eq(id))
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::DeletedAt.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Whether the user ever signed in from this client address (a session from it, live or
/// ended, not yet purged): the sign-in brake's "familiar address".
pub async fn signed_in_from(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    ip: &str,
) -> Result<bool, DbErr> {
    Ok(session::Entity::find()
        .select_only()
        .column(session::Column::Id)
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::Ip.eq(ip))
        .into_tuple::<Uuid>()
        .one(db)
        .await?
        .is_some())
}

/// Revokes every live session of a user except `keep`; returns the ids revoked.
pub async fn revoke_all_except(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    keep: Option<Uuid>,
    reason: &str,
) -> Result<Vec<Uuid>, DbErr> {
    let ids: Vec<Uuid> = session::Entity::find()
        .select_only()
        .column(session::Column::Id)
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::DeletedAt.is_null())
        .into_tuple::<Uuid>()
        .all(db)
        .await?
        .into_iter()
        .filter(|id| Some(*id) != keep)
        .collect();
    if ids.is_empty() {
        return Ok(ids);
    }
    let now = Utc::now();
    session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(now))
        .col_expr(session::Column::RevokedReason, Expr::value(reason))
        .col_expr(session::Column::UpdatedAt, Expr::value(now))
        .filter(session::Column::Id.is_in(ids.clone()))
        .filter(session::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(ids)
}

pub async fn insert_refresh_token(
    db: &impl ConnectionTrait,
    session_id: Uuid,
    token_hash: String,
    expires_at: DateTime<Utc>,
) -> Result<RefreshToken, DbErr> {
    let now = Utc::now();
    refresh_token::ActiveModel {
        id: Set(Uuid::now_v7()),
        session_id: Set(session_id),
        token_hash: Set(token_hash),
        expires_at: Set(expires_at),
        used_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
    }
    .insert(db)
    .await
}

pub async fn find_refresh_token(
    db: &impl ConnectionTrait,
    token_hash: &str,
) -> Result<Option<RefreshToken>, DbErr> {
    refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(token_hash))
        .filter(refresh_token::Column::DeletedAt.is_null())
        .one(db)
        .await
}

/// Records a WebSocket ticket as redeemed. True the first time, on whichever instance; false
/// ever after.
pub async fn spend_ws_ticket(
    db: &impl ConnectionTrait,
    jti: Uuid,
    refused_after: i64,
) -> Result<bool, DbErr> {
    let backend = db.get_database_backend();
    let result = db
        .execute_raw(super::stmt(
            backend,
            "INSERT INTO ws_tickets_spent (jti, refused_after) VALUES (?, ?) \
             ON CONFLICT (jti) DO NOTHING",
            vec![jti.into(), refused_after.into()],
        ))
        .await?;
    Ok(result.rows_affected() == 1)
}

/// Forgets redeemed tickets that would be refused for their age anyway.
pub async fn sweep_ws_tickets(db: &impl ConnectionTrait) -> Result<u64, DbErr> {
    let backend = db.get_database_backend();
    let result = db
        .execute_raw(super::stmt(
            backend,
            "DELETE FROM ws_tickets_spent WHERE refused_after < ?",
            vec![Utc::now().timestamp().into()],
        ))
        .await?;
    Ok(result.rows_affected())
}

/// The session's most recently spent refresh token.
pub async fn last_spent_refresh_token(
    db: &impl ConnectionTrait,
    session_id: Uuid,
) -> Result<Option<RefreshToken>, DbErr> {
    refresh_token::Entity::find()
        .filter(refresh_token::Column::SessionId.eq(session_id))
        .filter(refresh_token::Column::UsedAt.is_not_null())
        .order_by_desc(refresh_token::Column::UsedAt)
        .one(db)
        .await
}

/// The session's refresh token that has not been spent yet (a session has one at a time).
pub async fn live_refresh_token(
    db: &impl ConnectionTrait,
    session_id: Uuid,
) -> Result<Option<RefreshToken>, DbErr> {
    refresh_token::Entity::find()
        .filter(refresh_token::Column::SessionId.eq(session_id))
        .filter(refresh_token::Column::UsedAt.is_null())
        .filter(refresh_token::Column::DeletedAt.is_null())
        .order_by_desc(refresh_token::Column::CreatedAt)
        .one(db)
        .await
}

/// Marks a refresh token spent. Returns false when it was already spent, so that two
/// concurrent exchanges of one token cannot both succeed.
pub async fn spend_refresh_token(db: &impl ConnectionTrait, id: Uuid) -> Result<bool, DbErr> {
    let now = Utc::now();
    let result = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::UsedAt, Expr::value(now))
        .col_expr(refresh_token::Column::UpdatedAt, Expr::value(now))
        .filter(refresh_token::Column::Id.eq(id))
        .filter(refresh_token::Column::UsedAt.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}
