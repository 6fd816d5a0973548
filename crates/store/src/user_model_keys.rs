//! Users' own keys for configured models. Only ciphertext is stored (the service encrypts);
//! every query is by owner, so a user can only ever reach their own keys.

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use uuid::Uuid;

use super::entity::user_model_key;
use super::is_unique_violation;

pub use user_model_key::Model as UserModelKey;

/// The user's live key for `model`.
pub async fn find(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    model: &str,
) -> Result<Option<UserModelKey>, DbErr> {
    user_model_key::Entity::find()
        .filter(user_model_key::Column::UserId.eq(user_id))
        .filter(user_model_key::Column::Model.eq(model))
        .filter(user_model_key::Column::DeletedAt.is_null())
        .one(db)
        .await
}

/// Names of the models the user has a live key for.
pub async fn models(db: &impl ConnectionTrait, user_id: Uuid) -> Result<Vec<String>, DbErr> {
    user_model_key::Entity::find()
        .select_only()
        .column(user_model_key::Column::Model)
        .filter(user_model_key::Column::UserId.eq(user_id))
        .filter(user_model_key::Column::DeletedAt.is_null())
        .order_by_asc(user_model_key::Column::Model)
        .into_tuple()
        .all(db)
        .await
}

/// Saves the user's key for `model`, replacing the one saved before.
pub async fn save(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    model: &str,
    encrypted_key: String,
    key_hint: String,
) -> Result<UserModelKey, DbErr> {
    if !replace(db, user_id, model, &encrypted_key, &key_hint).await? {
        let now = Utc::now();
        let inserted = user_model_key::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(user_id),
            model: Set(model.to_owned()),
            encrypted_key: Set(encrypted_key.clone()),
            key_hint: Set(key_hint.clone()),
            created_at: Set(now),
            updated_at: Set(now),
            deleted_at: Set(None),
        }
        .insert(db)
        .await;
        match inserted {
            Ok(row) => return Ok(row),
            // Another request saved a key for this model in between: this one replaces it.
            Err(err) if is_unique_violation(&err) => {
                replace(db, user_id, model, &encrypted_key, &key_hint).await?;
            }
            Err(err) => return Err(err),
        }
    }
    find(db, user_id, model)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("user_model_keys".to_owned()))
}

/// Replaces the live key's value; false when there is none.
async fn replace(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    model: &str,
    encrypted_key: &str,
    key_hint: &str,
) -> Result<bool, DbErr> {
    let r = user_model_key::Entity::update_many()
        .col_expr(
            user_model_key::Column::EncryptedKey,
            Expr::value(encrypted_key),
        )
        .col_expr(user_model_key::Column::KeyHint, Expr::value(key_hint))
        .col_expr(user_model_key::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(user_model_key::Column::UserId.eq(user_id))
        .filter(user_model_key::Column::Model.eq(model))
        .filter(user_model_key::Column::DeletedAt.is_null())
        .exec(db)
        .await?;
    Ok(r.rows_affected > 0)
}

/// Deletes the user's key for `model`; false when there is none. The row stays until the
/// purge, but without its ciphertext: a deleted key is gone at once.
pub async fn delete(db: &impl ConnectionTrait, user_id: Uuid, model: &str) -> Result<bool, DbErr> {
    let now = Utc::now();
    let r = user_model_key::Entity::update_many()
        .col_expr(user_model_key::Column::EncryptedKey, Expr::value(""))
        .col_expr(user_model_key::Column::KeyHint, Expr::value(""))
        .col_expr(user_model_key::Column::DeletedAt, Expr::value(now))
        .col_expr(user_model_key::Column::UpdatedAt, Expr::value(now))
        .filter(user_model_key::Column::UserId.eq(user_id))
        .filter(user_model_key::Column::Model.eq(model))
        .filter(user_model_key::Column::DeletedAt.is_null())
        .exec(db)
        .await?;
    Ok(r.rows_affected > 0)
}
