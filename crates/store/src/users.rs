//! Users. Every query skips soft-deleted rows.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use uuid::Uuid;

use super::entity::user::{self, Role};

pub use user::Model as User;

pub async fn insert(
    db: &impl ConnectionTrait,
    email: &str,
    password_hash: String,
    role: Role,
) -> Result<User, DbErr> {
    let now = Utc::now();
    user::ActiveModel {
        id: Set(Uuid::now_v7()),
        email: Set(email.to_owned()),
        password_hash: Set(password_hash),
        role: Set(role),
        disabled_at: Set(None),
        locale: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
    }
    .insert(db)
    .await
}

/// Sets the user's locale (already validated and normalised).
pub async fn set_locale(
    db: &impl ConnectionTrait,
    id: Uuid,
    locale: Option<&str>,
) -> Result<(), DbErr> {
    user::Entity::update_many()
        .col_expr(user::Column::Locale, Expr::value(locale.map(str::to_owned)))
        .col_expr(user::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(user::Column::Id.eq(id))
        .filter(user::Column::DeletedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

pub async fn find_by_email(db: &impl ConnectionTrait, email: &str) -> Result<Option<User>, DbErr> {
    user::Entity::find()
        .filter(user::Column::Email.eq(email))
        .filter(user::Column::DeletedAt.is_null())
        .one(db)
        .await
}

pub async fn find_by_id(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<User>, DbErr> {
    user::Entity::find_by_id(id)
        .filter(user::Column::DeletedAt.is_null())
        .one(db)
        .await
}

/// Users in creation order, `limit` after the cursor (an id).
pub async fn list(
    db: &impl ConnectionTrait,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<User>, DbErr> {
    let mut query = user::Entity::find()
        .filter(user::Column::DeletedAt.is_null())
        .order_by_asc(user::Column::Id)
        .limit(limit);
    if let Some(after) = after {
        query = query.filter(user::Column::Id.gt(after));
    }
    query.all(db).await
}

/// What an admin searches users by.
#[derive(Default)]
pub struct Search {
    /// Part of the (normalised, lower-case) email.
    pub email_contains: Option<String>,
    pub role: Option<Role>,
    /// Some(true): only disabled users; Some(false): only enabled ones.
    pub disabled: Option<bool>,
}

/// Users newest first, `limit` of them with ids below `before`.
pub async fn search(
    db: &impl ConnectionTrait,
    search: &Search,
    before: Option<Uuid>,
    limit: u64,
) -> Result<Vec<User>, DbErr> {
    let mut select = user::Entity::find()
        .filter(user::Column::DeletedAt.is_null())
        .order_by_desc(user::Column::Id)
        .limit(limit);
    if let Some(text) = &search.email_contains {
        select = select.filter(user::Column::Email.contains(text.to_lowercase()));
    }
    if let Some(role) = search.role {
        select = select.filter(user::Column::Role.eq(role));
    }
    match search.disabled {
        None => {}
        Some(true) => select = select.filter(user::Column::DisabledAt.is_not_null()),
        Some(false) => select = select.filter(user::Column::DisabledAt.is_null()),
    }
    if let Some(before) = before {
        select = select.filter(user::Column::Id.lt(before));
    }
    select.all(db).await
}

async fn update_live(
    db: &impl ConnectionTrait,
    id: Uuid,
    column: user::Column,
    value: Expr,
) -> Result<bool, DbErr> {
    let result = user::Entity::update_many()
        .col_expr(column, value)
        .col_expr(user::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(user::Column::Id.eq(id))
        .filter(user::Column::DeletedAt.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

pub async fn set_password_hash(
    db: &impl ConnectionTrait,
    id: Uuid,
    hash: String,
) -> Result<bool, DbErr> {
    update_live(db, id, user::Column::PasswordHash, Expr::value(hash)).await
}

pub async fn set_role(db: &impl ConnectionTrait, id: Uuid, role: Role) -> Result<bool, DbErr> {
    update_live(db, id, user::Column::Role, Expr::value(role.as_str())).await
}

pub async fn set_disabled(
    db: &impl ConnectionTrait,
    id: Uuid,
    disabled_at: Option<DateTime<Utc>>,
) -> Result<bool, DbErr> {
    update_live(db, id, user::Column::DisabledAt, Expr::value(disabled_at)).await
}

/// Deletes the user and, through the foreign keys, everything they own.
pub async fn delete_for_good(db: &impl ConnectionTrait, id: Uuid) -> Result<bool, DbErr> {
    let r = user::Entity::delete_by_id(id).exec(db).await?;
    Ok(r.rows_affected == 1)
}
