//! Export templates: owned by a user, optionally shared read-only with every user.

use chrono::Utc;
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set,
};
use uuid::Uuid;

use super::entity::template;
use super::owned;

pub use template::Model as TemplateRecord;

pub struct NewTemplate<'a> {
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub body: &'a str,
    pub shared: bool,
}

pub async fn create(
    db: &impl ConnectionTrait,
    owner_id: Uuid,
    new: NewTemplate<'_>,
) -> Result<TemplateRecord, DbErr> {
    let now = Utc::now();
    template::ActiveModel {
        id: Set(Uuid::now_v7()),
        owner_id: Set(owner_id),
        name: Set(new.name.to_owned()),
        description: Set(new.description.map(str::to_owned)),
        body: Set(new.body.to_owned()),
        shared: Set(new.shared),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
    }
    .insert(db)
    .await
}

/// Live templates the user may read: their own and the shared ones.
fn readable(user_id: Uuid) -> sea_orm::Select<template::Entity> {
    template::Entity::find()
        .filter(template::Column::DeletedAt.is_null())
        .filter(
            Condition::any()
                .add(template::Column::OwnerId.eq(user_id))
                .add(template::Column::Shared.eq(true)),
        )
}

/// A template the user may read (own or shared).
pub async fn find_readable(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    id: Uuid,
) -> Result<Option<TemplateRecord>, DbErr> {
    readable(user_id)
        .filter(template::Column::Id.eq(id))
        .one(db)
        .await
}

pub async fn list(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    before: Option<Uuid>,
    limit: u64,
) -> Result<Vec<TemplateRecord>, DbErr> {
    owned::page(db, readable(user_id), before, limit).await
}

pub struct TemplateUpdate<'a> {
    pub name: Option<&'a str>,
    /// `Some(None)` clears the description.
    pub description: Option<Option<&'a str>>,
    pub body: Option<&'a str>,
    pub shared: Option<bool>,
}

/// Changes one of the owner's templates; false when the owner has no such template.
pub async fn update(
    db: &impl ConnectionTrait,
    owner_id: Uuid,
    id: Uuid,
    change: TemplateUpdate<'_>,
) -> Result<bool, DbErr> {
    let mut q = owned::update::<template::Entity>(owner_id, id);
    if let Some(name) = change.name {
        q = q.col_expr(template::Column::Name, Expr::value(name));
    }
    if let Some(description) = change.description {
        q = q.col_expr(
            template::Column::Description,
            Expr::value(description.map(str::to_owned)),
        );
    }
    if let Some(body) = change.body {
        q = q.col_expr(template::Column::Body, Expr::value(body));
    }
    if let Some(shared) = change.shared {
        q = q.col_expr(template::Column::Shared, Expr::value(shared));
    }
    Ok(q.exec(db).await?.rows_affected == 1)
}

pub async fn soft_delete(
    db: &impl ConnectionTrait,
    owner_id: Uuid,
    id: Uuid,
) -> Result<bool, DbErr> {
    owned::soft_delete::<template::Entity>(db, owner_id, id).await
}
