//! Storage of tables, their versions and their row versions.
//!
//! A row version is valid from the table version that wrote it (`valid_from`) until the one
//! that replaced or deleted it (`valid_to`, null while current). Row queries are written in
//! SQL here (batched inserts, JSON extraction for sort and filter) because they are the hot
//! path of large tables; both backends get the same statements with their own placeholders
//! and JSON operators.

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set, Value,
};
use sheetgpt_core::table::ColumnType;
use sheetgpt_core::version::{Row, RowId, Schema};
use uuid::Uuid;

use super::entity::{table, table_version};
use super::stmt;

pub use table::Model as TableRecord;
pub use table_version::Model as VersionRecord;

/// Rows per INSERT statement: 6 parameters a row stays under SQLite's 32,766 limit.
const INSERT_BATCH: usize = 5_000;
/// Ids per `IN (…)` list.
const ID_BATCH: usize = 1_000;

/// Condition selecting the row versions that make up table version `version`.
fn at_version(version: i32, current: bool) -> (String, Vec<Value>) {
    if current {
        ("valid_to IS NULL".to_owned(), vec![])
    } else {
        (
            "valid_from <= ? AND (valid_to IS NULL OR valid_to > ?)".to_owned(),
            vec![version.into(), version.into()],
        )
    }
}

pub async fn create(
    db: &impl ConnectionTrait,
    owner_id: Uuid,
    name: &str,
) -> Result<TableRecord, DbErr> {
    let now = Utc::now();
    table::ActiveModel {
        id: Set(Uuid::now_v7()),
        owner_id: Set(owner_id),
        name: Set(name.to_owned()),
        current_version: Set(0),
        next_row_id: Set(1),
        row_count: Set(0),
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
) -> Result<Option<TableRecord>, DbErr> {
    table::Entity::find_by_id(id)
        .filter(table::Column::OwnerId.eq(owner_id))
        .filter(table::Column::DeletedAt.is_null())
        .one(db)
        .await
}

/// The owner's table of that name, compared ignoring case; the most recently changed one when
/// several share it.
pub async fn find_by_name(
    db: &impl ConnectionTrait,
    owner_id: Uuid,
    name: &str,
) -> Result<Option<TableRecord>, DbErr> {
    let candidates = table::Entity::find()
        .filter(table::Column::OwnerId.eq(owner_id))
        .filter(table::Column::DeletedAt.is_null())
        .filter(
            // SQLite's lower() folds ASCII only: the exact name is matched on its own.
            sea_orm::Condition::any()
                .add(table::Column::Name.eq(name.trim()))
                .add(sea_orm::sea_query::ExprTrait::eq(
                    sea_orm::sea_query::Func::lower(Expr::col(table::Column::Name)),
                    name.trim().to_lowercase(),
                )),
        )
        .order_by_desc(table::Column::UpdatedAt)
        .limit(20)
        .all(db)
        .await?;
    Ok(candidates
        .iter()
        .find(|t| t.name == name.trim())
        .or(candidates.first())
        .cloned())
}

pub async fn list(
    db: &impl ConnectionTrait,
    owner_id: Uuid,
    before: Option<Uuid>,
    limit: u64,
    deleted: bool,
) -> Result<Vec<TableRecord>, DbErr> {
    let mut q = table::Entity::find()
        .filter(table::Column::OwnerId.eq(owner_id))
        .order_by_desc(table::Column::Id)
        .limit(limit);
    q = if deleted {
        q.filter(table::Column::DeletedAt.is_not_null())
    } else {
        q.filter(table::Column::DeletedAt.is_null())
    };
    if let Some(before) = before {
        q = q.filter(table::Column::Id.lt(before));
    }
    q.all(db).await
}

pub async fn rename(
    db: &impl ConnectionTrait,
    owner_id: Uuid,
    id: Uuid,
    name: &str,
) -> Result<bool, DbErr> {
    let r = table::Entity::update_many()
        .col_expr(table::Column::Name, Expr::value(name))
        .col_expr(table::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(table::Column::Id.eq(id))
        .filter(table::Column::OwnerId.eq(owner_id))
        .filter(table::Column::DeletedAt.is_null())
        .exec(db)
        .await?;
    Ok(r.rows_affected == 1)
}

/// Soft-deletes (`deleted = true`) or restores a table of this owner.
pub async fn set_deleted(
    db: &impl ConnectionTrait,
    owner_id: Uuid,
    id: Uuid,
    deleted: bool,
) -> Result<bool, DbErr> {
    let now = Utc::now();
    let mut q = table::Entity::update_many()
        .col_expr(
            table::Column::DeletedAt,
            Expr::value(if deleted { Some(now) } else { None }),
        )
        .col_expr(table::Column::UpdatedAt, Expr::value(now))
        .filter(table::Column::Id.eq(id))
        .filter(table::Column::OwnerId.eq(owner_id));
    q = if deleted {
        q.filter(table::Column::DeletedAt.is_null())
    } else {
        q.filter(table::Column::DeletedAt.is_not_null())
    };
    Ok(q.exec(db).await?.rows_affected == 1)
}

/// Takes the right to write version `expected + 1`: succeeds for one writer only, and only
/// while `expected` is still the current version (optimistic concurrency, `If-Match`). Being
/// a write, it also takes SQLite's write lock first thing in the transaction.
pub async fn claim_next_version(
    db: &impl ConnectionTrait,
    owner_id: Uuid,
    id: Uuid,
    expected: i32,
) -> Result<bool, DbErr> {
    let r = table::Entity::update_many()
        .col_expr(table::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(table::Column::Id.eq(id))
        .filter(table::Column::OwnerId.eq(owner_id))
        .filter(table::Column::CurrentVersion.eq(expected))
        .filter(table::Column::DeletedAt.is_null())
        .exec(db)
        .await?;
    Ok(r.rows_affected == 1)
}

pub async fn set_current(
    db: &impl ConnectionTrait,
    id: Uuid,
    version: i32,
    next_row_id: RowId,
    row_count: i64,
) -> Result<(), DbErr> {
    table::Entity::update_many()
        .col_expr(table::Column::CurrentVersion, Expr::value(version))
        .col_expr(table::Column::NextRowId, Expr::value(next_row_id))
        .col_expr(table::Column::RowCount, Expr::value(row_count))
        .col_expr(table::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(table::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

pub struct NewVersion<'a> {
    pub table_id: Uuid,
    pub version: i32,
    pub schema: &'a Schema,
    pub ops: serde_json::Value,
    pub summary: String,
    pub row_count: i64,
    pub author_id: Option<Uuid>,
}

pub async fn insert_version(
    db: &impl ConnectionTrait,
    v: NewVersion<'_>,
) -> Result<VersionRecord, DbErr> {
    let now = Utc::now();
    let schema = serde_json::to_string(v.schema).map_err(|e| DbErr::Custom(e.to_string()))?;
    table_version::ActiveModel {
        id: Set(Uuid::now_v7()),
        table_id: Set(v.table_id),
        version: Set(v.version),
        schema: Set(schema),
        ops: Set(v.ops.to_string()),
        summary: Set(v.summary.chars().take(500).collect()),
        row_count: Set(v.row_count),
        author_id: Set(v.author_id),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
    }
    .insert(db)
    .await
}

pub async fn version(
    db: &impl ConnectionTrait,
    table_id: Uuid,
    version: i32,
) -> Result<Option<VersionRecord>, DbErr> {
    table_version::Entity::find()
        .filter(table_version::Column::TableId.eq(table_id))
        .filter(table_version::Column::Version.eq(version))
        .filter(table_version::Column::DeletedAt.is_null())
        .one(db)
        .await
}

/// Versions newest first, `limit` of them below `before`.
pub async fn versions(
    db: &impl ConnectionTrait,
    table_id: Uuid,
    before: Option<i32>,
    limit: u64,
) -> Result<Vec<VersionRecord>, DbErr> {
    let mut q = table_version::Entity::find()
        .filter(table_version::Column::TableId.eq(table_id))
        .filter(table_version::Column::DeletedAt.is_null())
        .order_by_desc(table_version::Column::Version)
        .limit(limit);
    if let Some(before) = before {
        q = q.filter(table_version::Column::Version.lt(before));
    }
    q.all(db).await
}

pub fn parse_schema(record: &VersionRecord) -> Result<Schema, DbErr> {
    serde_json::from_str(&record.schema).map_err(|e| DbErr::Custom(format!("stored schema: {e}")))
}

/// Writes row versions valid from `version`.
pub async fn insert_rows(
    db: &impl ConnectionTrait,
    table_id: Uuid,
    version: i32,
    rows: &[Row],
) -> Result<(), DbErr> {
    for chunk in rows.chunks(INSERT_BATCH) {
        let raw: Vec<RawRow> = chunk
            .iter()
            .map(|row| RawRow {
                id: row.id,
                position: row.position,
                data: row.data_json().to_string(),
            })
            .collect();
        insert_raw_rows(db, table_id, version, &raw).await?;
    }
    Ok(())
}

/// Writes row versions valid from `version`, their cells as stored JSON.
pub async fn insert_raw_rows(
    db: &impl ConnectionTrait,
    table_id: Uuid,
    version: i32,
    rows: &[RawRow],
) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    for chunk in rows.chunks(INSERT_BATCH) {
        let mut sql = String::with_capacity(64 + chunk.len() * 16);
        sql.push_str(
            "INSERT INTO table_rows (table_id, row_id, valid_from, valid_to, position, data) VALUES ",
        );
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 5);
        for (i, row) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push(',');
            }
            sql.push_str("(?, ?, ?, NULL, ?, ?)");
            values.push(table_id.into());
            values.push(row.id.into());
            values.push(version.into());
            values.push(row.position.into());
            values.push(row.data.clone().into());
        }
        db.execute_raw(stmt(backend, &sql, values)).await?;
    }
    Ok(())
}

/// Ends the current versions of these rows at `version`.
pub async fn close_rows(
    db: &impl ConnectionTrait,
    table_id: Uuid,
    version: i32,
    ids: &[RowId],
) -> Result<u64, DbErr> {
    let backend = db.get_database_backend();
    let mut closed = 0;
    for chunk in ids.chunks(ID_BATCH) {
        let marks = vec!["?"; chunk.len()].join(",");
        let sql = format!(
            "UPDATE table_rows SET valid_to = ? WHERE table_id = ? AND valid_to IS NULL AND row_id IN ({marks})"
        );
        let mut values: Vec<Value> = vec![version.into(), table_id.into()];
        values.extend(chunk.iter().map(|id| Value::from(*id)));
        closed += db
            .execute_raw(stmt(backend, &sql, values))
            .await?
            .rows_affected();
    }
    Ok(closed)
}

/// A stored row version, before its cells are read with a schema.
pub struct RawRow {
    pub id: RowId,
    pub position: i64,
    pub data: String,
}

impl RawRow {
    pub fn into_row(self, schema: &Schema) -> Row {
        let data: serde_json::Value = serde_json::from_str(&self.data).unwrap_or_default();
        Row::from_data(self.id, self.position, &data, schema)
    }
}

fn raw_rows(results: Vec<sea_orm::QueryResult>) -> Result<Vec<RawRow>, DbErr> {
    results
        .into_iter()
        .map(|r| {
            Ok(RawRow {
                id: r.try_get_by_index(0)?,
                position: r.try_get_by_index(1)?,
                data: r.try_get_by_index(2)?,
            })
        })
        .collect()
}

/// Rows of a version: all of them (`ids` None) or the given ones, in position order.
pub async fn rows_at(
    db: &impl ConnectionTrait,
    table_id: Uuid,
    version: i32,
    current: bool,
    ids: Option<&[RowId]>,
) -> Result<Vec<RawRow>, DbErr> {
    let backend = db.get_database_backend();
    let (cond, cond_values) = at_version(version, current);
    match ids {
        None => {
            let sql = format!(
                "SELECT row_id, position, data FROM table_rows WHERE table_id = ? AND {cond} ORDER BY position, row_id"
            );
            let mut values: Vec<Value> = vec![table_id.into()];
            values.extend(cond_values);
            raw_rows(db.query_all_raw(stmt(backend, &sql, values)).await?)
        }
        Some(ids) => {
            let mut out = Vec::with_capacity(ids.len());
            for chunk in ids.chunks(ID_BATCH) {
                let marks = vec!["?"; chunk.len()].join(",");
                let sql = format!(
                    "SELECT row_id, position, data FROM table_rows WHERE table_id = ? AND {cond} AND row_id IN ({marks})"
                );
                let mut values: Vec<Value> = vec![table_id.into()];
                values.extend(cond_values.iter().cloned());
                values.extend(chunk.iter().map(|id| Value::from(*id)));
                out.extend(raw_rows(
                    db.query_all_raw(stmt(backend, &sql, values)).await?,
                )?);
            }
            out.sort_by_key(|r| (r.position, r.id));
            Ok(out)
        }
    }
}

/// Up to `limit` rows of a version in position order, after the row `after` (position, id):
/// a keyset page, as cheap at the millionth row as at the first.
pub async fn rows_after(
    db: &impl ConnectionTrait,
    table_id: Uuid,
    version: i32,
    current: bool,
    after: Option<(i64, RowId)>,
    limit: u64,
) -> Result<Vec<RawRow>, DbErr> {
    let backend = db.get_database_backend();
    let (cond, cond_values) = at_version(version, current);
    let mut sql =
        format!("SELECT row_id, position, data FROM table_rows WHERE table_id = ? AND {cond}");
    let mut values: Vec<Value> = vec![table_id.into()];
    values.extend(cond_values);
    if let Some((position, id)) = after {
        // `position >= ?` first: a range of the index (a bare OR is a scan from the start,
        // which made each page of a million rows cost a third of a second).
        sql.push_str(" AND position >= ? AND (position > ? OR row_id > ?)");
        values.extend([position.into(), position.into(), id.into()]);
    }
    sql.push_str(" ORDER BY position, row_id LIMIT ?");
    values.push(i64::try_from(limit).unwrap_or(i64::MAX).into());
    raw_rows(db.query_all_raw(stmt(backend, &sql, values)).await?)
}

/// How many rows of the current version come before the row at (position, id).
pub async fn row_index(
    db: &impl ConnectionTrait,
    table_id: Uuid,
    position: i64,
    id: RowId,
) -> Result<i64, DbErr> {
    let backend = db.get_database_backend();
    let sql = "SELECT COUNT(*) FROM table_rows WHERE table_id = ? AND valid_to IS NULL \
               AND (position < ? OR (position = ? AND row_id < ?))";
    let values: Vec<Value> = vec![table_id.into(), position.into(), position.into(), id.into()];
    let row = db.query_one_raw(stmt(backend, sql, values)).await?;
    Ok(row
        .and_then(|r| r.try_get_by_index::<i64>(0).ok())
        .unwrap_or(0))
}

/// Position of the first row after `position` in a version (None: it is the last).
pub async fn next_position(
    db: &impl ConnectionTrait,
    table_id: Uuid,
    version: i32,
    current: bool,
    position: i64,
) -> Result<Option<i64>, DbErr> {
    let backend = db.get_database_backend();
    let (cond, cond_values) = at_version(version, current);
    let sql = format!(
        "SELECT MIN(position) FROM table_rows WHERE table_id = ? AND {cond} AND position > ?"
    );
    let mut values: Vec<Value> = vec![table_id.into()];
    values.extend(cond_values);
    values.push(position.into());
    let row = db.query_one_raw(stmt(backend, &sql, values)).await?;
    Ok(row.and_then(|r| r.try_get_by_index::<Option<i64>>(0).ok().flatten()))
}

pub async fn max_position(
    db: &impl ConnectionTrait,
    table_id: Uuid,
    version: i32,
    current: bool,
) -> Result<i64, DbErr> {
    let backend = db.get_database_backend();
    let (cond, cond_values) = at_version(version, current);
    let sql = format!("SELECT MAX(position) FROM table_rows WHERE table_id = ? AND {cond}");
    let mut values: Vec<Value> = vec![table_id.into()];
    values.extend(cond_values);
    let row = db.query_one_raw(stmt(backend, &sql, values)).await?;
    Ok(row
        .and_then(|r| r.try_get_by_index::<Option<i64>>(0).ok().flatten())
        .unwrap_or(0))
}

/// Ids of rows written or closed by versions in `(lo, hi]`.
pub async fn changed_between(
    db: &impl ConnectionTrait,
    table_id: Uuid,
    lo: i32,
    hi: i32,
) -> Result<Vec<RowId>, DbErr> {
    let backend = db.get_database_backend();
    let sql = "SELECT DISTINCT row_id FROM table_rows WHERE table_id = ? AND \
               ((valid_from > ? AND valid_from <= ?) OR (valid_to > ? AND valid_to <= ?)) \
               ORDER BY row_id";
    let values: Vec<Value> = vec![table_id.into(), lo.into(), hi.into(), lo.into(), hi.into()];
    db.query_all_raw(stmt(backend, sql, values))
        .await?
        .into_iter()
        .map(|r| r.try_get_by_index(0))
        .collect()
}

/// A SQL expression for a column's cell, typed for comparison and ordering.
fn cell_expr(backend: DatabaseBackend, column_id: &str, ty: ColumnType) -> String {
    // Column ids come from the schema (`c` + digits), never from the request.
    debug_assert!(column_id.starts_with('c') && column_id[1..].chars().all(|c| c.is_ascii_digit()));
    let numeric = matches!(
        ty,
        ColumnType::Integer | ColumnType::Decimal | ColumnType::Float | ColumnType::Percent
    );
    match backend {
        DatabaseBackend::Postgres => {
            let text = if ty == ColumnType::Currency {
                format!("(data::jsonb -> '{column_id}' ->> 'amount')")
            } else {
                format!("(data::jsonb ->> '{column_id}')")
            };
            if numeric || ty == ColumnType::Currency {
                format!("({text})::double precision")
            } else if ty == ColumnType::Boolean {
                format!("({text})::boolean")
            } else {
                text
            }
        }
        _ => {
            let path = if ty == ColumnType::Currency {
                format!("'$.{column_id}.amount'")
            } else {
                format!("'$.{column_id}'")
            };
            if numeric || ty == ColumnType::Currency {
                format!("CAST(json_extract(data, {path}) AS REAL)")
            } else {
                format!("json_extract(data, {path})")
            }
        }
    }
}

pub use sheetgpt_core::query::{FilterValue, RowFilter};

/// A filter's value as SQL sees it.
fn sql_value(value: &FilterValue) -> Value {
    match value {
        FilterValue::None => Value::from(0i64),
        FilterValue::Number(n) => (*n).into(),
        FilterValue::Bool(b) => (*b).into(),
        FilterValue::Text(t) => t.clone().into(),
    }
}

/// `FROM … WHERE …` of a version's rows that pass `filters`, and its values.
fn selection(
    backend: DatabaseBackend,
    table_id: Uuid,
    version: i32,
    current: bool,
    filters: &[RowFilter],
) -> (String, Vec<Value>) {
    use sheetgpt_core::version::Cmp;
    let (cond, cond_values) = at_version(version, current);
    let mut sql = format!("FROM table_rows WHERE table_id = ? AND {cond}");
    let mut values: Vec<Value> = vec![table_id.into()];
    values.extend(cond_values);
    for f in filters {
        let expr = cell_expr(backend, &f.column_id, f.ty);
        let text_expr = match backend {
            DatabaseBackend::Postgres => format!("(data::jsonb ->> '{}')", f.column_id),
            _ => format!("CAST(json_extract(data, '$.{}') AS TEXT)", f.column_id),
        };
        let clause = match f.cmp {
            Cmp::IsNull => format!(" AND {expr} IS NULL"),
            Cmp::NotNull => format!(" AND {expr} IS NOT NULL"),
            Cmp::Contains => {
                values.push(sql_value(&f.value));
                format!(" AND LOWER({text_expr}) LIKE ? ESCAPE '\\'")
            }
            cmp => {
                let op = match cmp {
                    Cmp::Eq => "=",
                    Cmp::Ne => "<>",
                    Cmp::Lt => "<",
                    Cmp::Lte => "<=",
                    Cmp::Gt => ">",
                    _ => ">=",
                };
                values.push(sql_value(&f.value));
                format!(" AND {expr} {op} ?")
            }
        };
        sql.push_str(&clause);
    }
    (sql, values)
}

/// ` ORDER BY …` of `sort`, nulls last in both directions (as the grid and `sort` changes
/// do), ties in position order.
fn sort_order(backend: DatabaseBackend, sort: &[(String, ColumnType, bool)]) -> String {
    let mut sql = " ORDER BY ".to_owned();
    for (column_id, ty, desc) in sort {
        let expr = cell_expr(backend, column_id, *ty);
        sql.push_str(&format!(
            "({expr} IS NULL), {expr} {}, ",
            if *desc { "DESC" } else { "ASC" }
        ));
    }
    sql.push_str("position, row_id");
    sql
}

/// A page of a version's rows in position order, after position `after`, under `filters`;
/// `limit + 1` are fetched so the caller knows whether more follow. A keyset page: as cheap
/// deep down as at the top.
pub async fn page(
    db: &impl ConnectionTrait,
    table_id: Uuid,
    version: i32,
    current: bool,
    filters: &[RowFilter],
    after: Option<i64>,
    limit: u64,
) -> Result<Vec<RawRow>, DbErr> {
    let backend = db.get_database_backend();
    let (from, mut values) = selection(backend, table_id, version, current, filters);
    let mut sql = format!("SELECT row_id, position, data {from}");
    if let Some(after) = after {
        sql.push_str(" AND position > ?");
        values.push(after.into());
    }
    sql.push_str(" ORDER BY position, row_id LIMIT ?");
    values.push(i64::try_from(limit + 1).unwrap_or(i64::MAX).into());
    raw_rows(db.query_all_raw(stmt(backend, &sql, values)).await?)
}

/// `limit + 1` rows of a version under `filters`, in the order of `sort`, from `offset`: the
/// database's top-N sort, for the first page of a view and views too large to keep their
/// order (see `tables::order`).
#[expect(clippy::too_many_arguments, reason = "the parts of a page's query")]
pub async fn sorted_page(
    db: &impl ConnectionTrait,
    table_id: Uuid,
    version: i32,
    current: bool,
    filters: &[RowFilter],
    sort: &[(String, ColumnType, bool)],
    offset: u64,
    limit: u64,
) -> Result<Vec<RawRow>, DbErr> {
    let backend = db.get_database_backend();
    let (from, mut values) = selection(backend, table_id, version, current, filters);
    let sql = format!(
        "SELECT row_id, position, data {from}{} LIMIT ? OFFSET ?",
        sort_order(backend, sort)
    );
    values.push(i64::try_from(limit + 1).unwrap_or(i64::MAX).into());
    values.push(i64::try_from(offset).unwrap_or(i64::MAX).into());
    raw_rows(db.query_all_raw(stmt(backend, &sql, values)).await?)
}

/// The ids of every row of version `version` that passes `filters`, in the order of `sort`
/// (position order without one): what the pages of a sorted or filtered view are cut from,
/// at any depth, without the database sorting the rows' data again for each page. Only ids
/// and sort keys go through the database's sorter.
pub async fn order(
    db: &impl ConnectionTrait,
    table_id: Uuid,
    version: i32,
    filters: &[RowFilter],
    sort: &[(String, ColumnType, bool)],
) -> Result<Vec<RowId>, DbErr> {
    let backend = db.get_database_backend();
    // The version by number, not `valid_to IS NULL`: a change committed meanwhile must not
    // end up in the order kept for this version.
    let (from, values) = selection(backend, table_id, version, false, filters);
    let sql = format!("SELECT row_id {from}{}", sort_order(backend, sort));
    db.query_all_raw(stmt(backend, &sql, values))
        .await?
        .into_iter()
        .map(|r| r.try_get_by_index(0))
        .collect()
}

/// The stored JSON of one cell, compared as stored (equal values, equal JSON): the key of a
/// `unique` check.
fn stored_cell(backend: DatabaseBackend, column_id: &str) -> String {
    // Column ids come from the schema (`c` + digits), never from the request.
    debug_assert!(column_id.starts_with('c') && column_id[1..].chars().all(|c| c.is_ascii_digit()));
    match backend {
        DatabaseBackend::Postgres => format!("(data::jsonb -> '{column_id}')"),
        _ => format!("json_extract(data, '$.{column_id}')"),
    }
}

/// A cell of a `unique` column that repeats an earlier row's value, by row index in the
/// version's position order (0-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Duplicate {
    pub index: u64,
    /// The nearest earlier row holding the same value.
    pub previous: u64,
}

/// The first `limit` cells of a column that repeat an earlier row's value in version
/// `version` (in position order), and how many there are in all. The database does the
/// grouping (window functions, spilling to its own temporary storage), so the server holds
/// no more than `limit` of them whatever the table's size.
pub async fn duplicates(
    db: &impl ConnectionTrait,
    table_id: Uuid,
    version: i32,
    column_id: &str,
    limit: u64,
) -> Result<(Vec<Duplicate>, u64), DbErr> {
    let backend = db.get_database_backend();
    let (cond, cond_values) = at_version(version, false);
    let cell = stored_cell(backend, column_id);
    let numbered = format!(
        "SELECT {cell} AS v, ROW_NUMBER() OVER (ORDER BY position, row_id) AS idx \
         FROM table_rows WHERE table_id = ? AND {cond}"
    );
    let sql = format!(
        "SELECT idx, prev FROM (SELECT idx, LAG(idx) OVER (PARTITION BY v ORDER BY idx) AS prev \
         FROM ({numbered}) n WHERE v IS NOT NULL) d WHERE prev IS NOT NULL ORDER BY idx LIMIT ?"
    );
    let mut values: Vec<Value> = vec![table_id.into()];
    values.extend(cond_values.iter().cloned());
    values.push(i64::try_from(limit).unwrap_or(i64::MAX).into());
    let found = db
        .query_all_raw(stmt(backend, &sql, values))
        .await?
        .into_iter()
        .map(|r| {
            let index: i64 = r.try_get_by_index(0)?;
            let previous: i64 = r.try_get_by_index(1)?;
            Ok(Duplicate {
                index: (index - 1).max(0) as u64,
                previous: (previous - 1).max(0) as u64,
            })
        })
        .collect::<Result<Vec<_>, DbErr>>()?;
    let total = if (found.len() as u64) < limit {
        found.len() as u64
    } else {
        let sql = format!(
            "SELECT COUNT(v) - COUNT(DISTINCT v) FROM (SELECT {cell} AS v FROM table_rows \
             WHERE table_id = ? AND {cond}) n"
        );
        let mut values: Vec<Value> = vec![table_id.into()];
        values.extend(cond_values);
        let row = db.query_one_raw(stmt(backend, &sql, values)).await?;
        row.and_then(|r| r.try_get_by_index::<i64>(0).ok())
            .unwrap_or(0)
            .max(0) as u64
    };
    Ok((found, total))
}

/// Ids of rows written or closed by versions in `(lo, hi]`, in id order, `limit` of them after
/// the id `after`: a keyset page of [`changed_between`].
pub async fn changed_between_page(
    db: &impl ConnectionTrait,
    table_id: Uuid,
    lo: i32,
    hi: i32,
    after: Option<RowId>,
    limit: u64,
) -> Result<Vec<RowId>, DbErr> {
    let backend = db.get_database_backend();
    let sql = "SELECT DISTINCT row_id FROM table_rows WHERE table_id = ? AND row_id > ? AND \
               ((valid_from > ? AND valid_from <= ?) OR (valid_to > ? AND valid_to <= ?)) \
               ORDER BY row_id LIMIT ?";
    let values: Vec<Value> = vec![
        table_id.into(),
        after.unwrap_or(i64::MIN).into(),
        lo.into(),
        hi.into(),
        lo.into(),
        hi.into(),
        i64::try_from(limit).unwrap_or(i64::MAX).into(),
    ];
    db.query_all_raw(stmt(backend, sql, values))
        .await?
        .into_iter()
        .map(|r| r.try_get_by_index(0))
        .collect()
}
