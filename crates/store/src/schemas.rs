//! Target schema presets, owned by a user.

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DbErr, Set};
use sheetgpt_core::table::Column;
use uuid::Uuid;

use super::entity::schema_preset;
use super::owned;

pub use schema_preset::Model as SchemaPreset;

pub fn columns(preset: &SchemaPreset) -> Result<Vec<Column>, DbErr> {
    serde_json::from_str(&preset.columns).map_err(|e| DbErr::Custom(format!("stored schema: {e}")))
}

fn to_text(columns: &[Column]) -> Result<String, DbErr> {
    serde_json::to_string(columns).map_err(|e| DbErr::Custom(e.to_string()))
}

/// The rows a preset asks for.
pub fn bounds(preset: &SchemaPreset) -> sheetgpt_core::target::RowBounds {
    sheetgpt_core::target::RowBounds {
        min: preset
            .min_rows
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(1),
        max: preset.max_rows.and_then(|n| usize::try_from(n).ok()),
    }
}

pub async fn create(
    db: &impl ConnectionTrait,
    owner_id: Uuid,
    name: &str,
    columns: &[Column],
    rows: (Option<i32>, Option<i32>),
) -> Result<SchemaPreset, DbErr> {
    let now = Utc::now();
    schema_preset::ActiveModel {
        id: Set(Uuid::now_v7()),
        owner_id: Set(owner_id),
        name: Set(name.to_owned()),
        columns: Set(to_text(columns)?),
        min_rows: Set(rows.0),
        max_rows: Set(rows.1),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
    }
    .insert(db)
    .await
}

pub async fn find(
    db: &impl ConnectionTrait,
    owner_id: Uuid,
    id: Uuid,
) -> Result<Option<SchemaPreset>, DbErr> {
    owned::find::<schema_preset::Entity>(db, owner_id, id).await
}

pub async fn list(
    db: &impl ConnectionTrait,
    owner_id: Uuid,
    before: Option<Uuid>,
    limit: u64,
) -> Result<Vec<SchemaPreset>, DbErr> {
    owned::page(
        db,
        owned::live::<schema_preset::Entity>(owner_id),
        before,
        limit,
    )
    .await
}

pub async fn update(
    db: &impl ConnectionTrait,
    owner_id: Uuid,
    id: Uuid,
    name: Option<&str>,
    columns: Option<&[Column]>,
    rows: Option<(Option<i32>, Option<i32>)>,
) -> Result<bool, DbErr> {
    let mut q = owned::update::<schema_preset::Entity>(owner_id, id);
    if let Some((min, max)) = rows {
        q = q
            .col_expr(schema_preset::Column::MinRows, Expr::value(min))
            .col_expr(schema_preset::Column::MaxRows, Expr::value(max));
    }
    if let Some(name) = name {
        q = q.col_expr(schema_preset::Column::Name, Expr::value(name));
    }
    if let Some(columns) = columns {
        q = q.col_expr(
            schema_preset::Column::Columns,
            Expr::value(to_text(columns)?),
        );
    }
    Ok(q.exec(db).await?.rows_affected == 1)
}

pub async fn soft_delete(
    db: &impl ConnectionTrait,
    owner_id: Uuid,
    id: Uuid,
) -> Result<bool, DbErr> {
    owned::soft_delete::<schema_preset::Entity>(db, owner_id, id).await
}
