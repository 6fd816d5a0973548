//! API keys. Only the SHA-256 of a key is stored.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};
use uuid::Uuid;

use super::entity::api_key::{self, Scope};

pub use api_key::Model as ApiKey;

pub struct NewApiKey<'a> {
    pub user_id: Uuid,
    pub name: &'a str,
    pub prefix: &'a str,
    pub key_hash: String,
    pub scope: Scope,
    pub expires_at: Option<DateTime<Utc>>,
}

pub async fn insert(db: &impl ConnectionTrait, new: NewApiKey<'_>) -> Result<ApiKey, DbErr> {
    let now = Utc::now();
    api_key::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(new.user_id),
        name: Set(new.name.to_owned()),
        prefix: Set(new.prefix.to_owned()),
        key_hash: Set(new.key_hash),
        scope: Set(new.scope),
        last_used_at: Set(None),
        expires_at: Set(new.expires_at),
        revoked_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
    }
    .insert(db)
    .await
}

/// A key that is usable now: not revoked, not expired, not deleted.
pub async fn find_usable_by_hash(
    db: &impl ConnectionTrait,
    key_hash: &str,
) -> Result<Option<ApiKey>, DbErr> {
    let key = api_key::Entity::find()
        .filter(api_key::Column::KeyHash.eq(key_hash))
        .filter(api_key::Column::DeletedAt.is_null())
        .filter(api_key::Column::RevokedAt.is_null())
        .one(db)
        .await?;
    Ok(key.filter(|k| k.expires_at.is_none_or(|at| at > Utc::now())))
}

/// The user's keys that are not revoked, newest first: `limit` older than `before`.
pub async fn list(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    before: Option<Uuid>,
    limit: u64,
) -> Result<Vec<ApiKey>, DbErr> {
    let mut query = api_key::Entity::find()
        .filter(api_key::Column::UserId.eq(user_id))
        .filter(api_key::Column::DeletedAt.is_null())
        .filter(api_key::Column::RevokedAt.is_null())
        .order_by_desc(api_key::Column::Id)
        .limit(limit);
    if let Some(before) = before {
        query = query.filter(api_key::Column::Id.lt(before));
    }
    query.all(db).await
}

pub async fn count_live(db: &impl ConnectionTrait, user_id: Uuid) -> Result<u64, DbErr> {
    api_key::Entity::find()
        .filter(api_key::Column::UserId.eq(user_id))
        .filter(api_key::Column::DeletedAt.is_null())
        .filter(api_key::Column::RevokedAt.is_null())
        .count(db)
        .await
}

pub async fn find(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    id: Uuid,
) -> Result<Option<ApiKey>, DbErr> {
    api_key::Entity::find_by_id(id)
        .filter(api_key::Column::UserId.eq(user_id))
        .filter(api_key::Column::DeletedAt.is_null())
        .filter(api_key::Column::RevokedAt.is_null())
        .one(db)
        .await
}

/// Revokes a key and soft-deletes it (it stays, invisible, until purged).
pub async fn revoke(db: &impl ConnectionTrait, user_id: Uuid, id: Uuid) -> Result<bool, DbErr> {
    let now = Utc::now();
    let result = api_key::Entity::update_many()
        .col_expr(api_key::Column::RevokedAt, Expr::value(now))
        .col_expr(api_key::Column::DeletedAt, Expr::value(now))
        .col_expr(api_key::Column::UpdatedAt, Expr::value(now))
        .filter(api_key::Column::Id.eq(id))
        .filter(api_key::Column::UserId.eq(user_id))
        .filter(api_key::Column::RevokedAt.is_null())
        .filter(api_key::Column::DeletedAt.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Revokes every live key of a user (disabling them); returns how many.
pub async fn revoke_all(db: &impl ConnectionTrait, user_id: Uuid) -> Result<u64, DbErr> {
    let now = Utc::now();
    let result = api_key::Entity::update_many()
        .col_expr(api_key::Column::RevokedAt, Expr::value(now))
        .col_expr(api_key::Column::DeletedAt, Expr::value(now))
        .col_expr(api_key::Column::UpdatedAt, Expr::value(now))
        .filter(api_key::Column::UserId.eq(user_id))
        .filter(api_key::Column::RevokedAt.is_null())
        .filter(api_key::Column::DeletedAt.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

pub async fn touch(db: &impl ConnectionTrait, id: Uuid) -> Result<(), DbErr> {
    let now = Utc::now();
    api_key::Entity::update_many()
        .col_expr(api_key::Column::LastUsedAt, Expr::value(now))
        .filter(api_key::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}
