//! The shape every user-owned resource shares: rows carry `id` (UUID v7), `owner_id`,
//! `updated_at` and `deleted_at`; a user sees only their own live rows, newest first, paged by
//! id. Repositories build on these instead of repeating the filters.

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select,
    UpdateMany,
};
use uuid::Uuid;

use super::entity::{job, schema_preset, sheet_link, template};

/// An entity with the owner-scoped columns.
pub trait Owned: EntityTrait {
    fn id_column() -> Self::Column;
    fn owner_column() -> Self::Column;
    fn updated_column() -> Self::Column;
    fn deleted_column() -> Self::Column;
}

macro_rules! owned {
    ($($module:ident),* $(,)?) => {$(
        impl Owned for $module::Entity {
            fn id_column() -> Self::Column { $module::Column::Id }
            fn owner_column() -> Self::Column { $module::Column::OwnerId }
            fn updated_column() -> Self::Column { $module::Column::UpdatedAt }
            fn deleted_column() -> Self::Column { $module::Column::DeletedAt }
        }
    )*};
}

owned!(schema_preset, template, job, sheet_link);

/// The live rows of one owner.
pub fn live<E: Owned>(owner_id: Uuid) -> Select<E> {
    E::find()
        .filter(E::owner_column().eq(owner_id))
        .filter(E::deleted_column().is_null())
}

/// One live row of the owner; someone else's id reads as absent.
pub async fn find<E: Owned>(
    db: &impl ConnectionTrait,
    owner_id: Uuid,
    id: Uuid,
) -> Result<Option<E::Model>, DbErr> {
    live::<E>(owner_id)
        .filter(E::id_column().eq(id))
        .one(db)
        .await
}

/// A page of `select`, newest first: `limit` rows with ids below the cursor `before`.
pub async fn page<E: Owned>(
    db: &impl ConnectionTrait,
    select: Select<E>,
    before: Option<Uuid>,
    limit: u64,
) -> Result<Vec<E::Model>, DbErr> {
    let mut q = select.order_by_desc(E::id_column()).limit(limit);
    if let Some(before) = before {
        q = q.filter(E::id_column().lt(before));
    }
    q.all(db).await
}

/// An update of one live row of the owner that also stamps `updated_at`; add the columns to
/// set and execute it (one row affected: it was there).
pub fn update<E: Owned>(owner_id: Uuid, id: Uuid) -> UpdateMany<E> {
    E::update_many()
        .col_expr(E::updated_column(), Expr::value(Utc::now()))
        .filter(E::id_column().eq(id))
        .filter(E::owner_column().eq(owner_id))
        .filter(E::deleted_column().is_null())
}

/// Marks one live row of the owner deleted; false when there was none.
pub async fn soft_delete<E: Owned>(
    db: &impl ConnectionTrait,
    owner_id: Uuid,
    id: Uuid,
) -> Result<bool, DbErr> {
    let r = update::<E>(owner_id, id)
        .col_expr(E::deleted_column(), Expr::value(Utc::now()))
        .exec(db)
        .await?;
    Ok(r.rows_affected == 1)
}
