//! What the quotas read and lock: a user's overrides, rows stored, the quota lock.

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseTransaction, DbErr,
    EntityTrait, QueryFilter, QuerySelect, Set,
};
use uuid::Uuid;

use crate::entity::{table, user_quota};

/// A user's stored overrides (None: the configured default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    pub tokens_per_day: Option<i64>,
    pub exports_per_day: Option<i64>,
    pub max_stored_rows: Option<i64>,
}

pub async fn overrides(db: &impl ConnectionTrait, user_id: Uuid) -> Result<Overrides, DbErr> {
    let row = user_quota::Entity::find()
        .filter(user_quota::Column::UserId.eq(user_id))
        .one(db)
        .await?;
    Ok(row.map_or_else(Overrides::default, |r| Overrides {
        tokens_per_day: r.tokens_per_day,
        exports_per_day: r.exports_per_day,
        max_stored_rows: r.max_stored_rows,
    }))
}

/// Replaces a user's overrides.
pub async fn set_overrides(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    o: Overrides,
) -> Result<(), DbErr> {
    let now = Utc::now();
    let updated = user_quota::Entity::update_many()
        .col_expr(
            user_quota::Column::TokensPerDay,
            Expr::value(o.tokens_per_day),
        )
        .col_expr(
            user_quota::Column::ExportsPerDay,
            Expr::value(o.exports_per_day),
        )
        .col_expr(
            user_quota::Column::MaxStoredRows,
            Expr::value(o.max_stored_rows),
        )
        .col_expr(user_quota::Column::UpdatedAt, Expr::value(now))
        .filter(user_quota::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    if updated.rows_affected == 0 {
        user_quota::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(user_id),
            tokens_per_day: Set(o.tokens_per_day),
            exports_per_day: Set(o.exports_per_day),
            max_stored_rows: Set(o.max_stored_rows),
            created_at: Set(now),
            updated_at: Set(now),
            deleted_at: Set(None),
        }
        .insert(db)
        .await?;
    }
    Ok(())
}

/// Serializes the quota checks of one user until the transaction ends. Call it as the
/// transaction's first statement: on PostgreSQL it locks the user's row (`FOR NO KEY UPDATE`,
/// which leaves the foreign-key checks of other inserts alone); on SQLite a write takes the
/// database's one write lock at once (a read first would let another writer in between, and
/// the later write would fail instead of waiting).
pub async fn lock_user(txn: &DatabaseTransaction, user_id: Uuid) -> Result<(), DbErr> {
    let backend = txn.get_database_backend();
    let sql = if backend == DatabaseBackend::Postgres {
        "SELECT id FROM users WHERE id = ? FOR NO KEY UPDATE"
    } else {
        "UPDATE users SET updated_at = updated_at WHERE id = ?"
    };
    txn.execute_raw(crate::stmt(backend, sql, vec![user_id.into()]))
        .await?;
    Ok(())
}

/// Rows the user's live tables hold now.
pub async fn stored_rows(db: &impl ConnectionTrait, user_id: Uuid) -> Result<u64, DbErr> {
    let sum: Option<Option<i64>> = table::Entity::find()
        .select_only()
        // PostgreSQL sums BIGINT as NUMERIC: cast back.
        .column_as(Expr::cust("CAST(SUM(row_count) AS BIGINT)"), "rows")
        .filter(table::Column::OwnerId.eq(user_id))
        .filter(table::Column::DeletedAt.is_null())
        .into_tuple()
        .one(db)
        .await?;
    Ok(sum
        .flatten()
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0))
}
