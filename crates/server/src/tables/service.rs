//! Table operations: create (from rows or an upload), change, diff, revert, read.

use std::collections::HashMap;

use sea_orm::{DatabaseTransaction, TransactionTrait};
use serde::Serialize;
use std::ops::ControlFlow;

use sheetgpt_core::formula::{self, FormulaError};
use sheetgpt_core::import::{Import, ImportError, Scan, Source};
use sheetgpt_core::table::{ColumnType, Table, Value};
use sheetgpt_core::version::{self, Diff, Op, OpError, POSITION_STEP, Row, RowId, Schema, Working};
use uuid::Uuid;

use super::bulk;
use crate::db::tables::{self as store, NewVersion, TableRecord};
use crate::error::{Error, FieldError, OrNotFound};
use crate::quotas::RowQuota;
use crate::state::AppState;

/// A version's columns and the table it belongs to.
pub struct Loaded {
    pub table: TableRecord,
    pub version: i32,
    pub schema: Schema,
}

pub async fn load(
    state: &AppState,
    owner: Uuid,
    table_id: Uuid,
    version: Option<i32>,
) -> Result<Loaded, Error> {
    let table = store::find(&state.db, owner, table_id)
        .await?
        .or_not_found("table")?;
    let version = version.unwrap_or(table.current_version);
    let record = store::version(&state.db, table.id, version)
        .await?
        .or_not_found("version")?;
    let schema = store::parse_schema(&record)?;
    Ok(Loaded {
        table,
        version,
        schema,
    })
}

pub(super) fn check_limits(state: &AppState, columns: usize, rows: u64) -> Result<(), Error> {
    let limits = &state.config.tables;
    if columns == 0 {
        return Err(Error::field("columns", "a table needs at least one column"));
    }
    if columns > limits.max_columns {
        return Err(Error::PayloadTooLarge {
            detail: format!(
                "The table has {columns} columns; at most {} are allowed.",
                limits.max_columns
            ),
        });
    }
    if rows > limits.max_rows {
        return Err(Error::PayloadTooLarge {
            detail: format!(
                "The table has {rows} rows; at most {} are allowed.",
                limits.max_rows
            ),
        });
    }
    Ok(())
}

pub fn check_name(name: &str) -> Result<String, Error> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::field("name", "must not be blank"));
    }
    if name.contains('\0') {
        return Err(Error::field(
            "name",
            "must not contain a NUL character (U+0000)",
        ));
    }
    if name.chars().count() > 200 {
        return Err(Error::field("name", "must be at most 200 characters long"));
    }
    Ok(name.to_owned())
}

/// Brings a deleted table back from the trash, if the user's stored-rows quota has room for
/// its rows (counted under the user's quota lock, like any other change of their rows).
#[tracing::instrument(skip_all, fields(user.id = %owner, table.id = %table_id))]
pub async fn restore(state: &AppState, owner: Uuid, table_id: Uuid) -> Result<(), Error> {
    let quota = RowQuota::of(state.quotas(), owner).await?;
    let turn = state.writes.turn().await?;
    let txn = state.db.begin().await?;
    quota.lock(&txn).await?;
    // Restored first (a write, which also takes SQLite's write lock before any read), then
    // counted: the transaction rolls back when the rows do not fit.
    if !store::set_deleted(&txn, owner, table_id, false).await? {
        return Err(Error::NotFound("deleted table"));
    }
    let table = store::find(&txn, owner, table_id)
        .await?
        .or_not_found("deleted table")?;
    quota.check_written(&txn, table.row_count).await?;
    txn.commit().await?;
    // Others' writes need not wait for what follows.
    drop(turn);
    Ok(())
}

/// Stores an in-memory table as version 1 of a new table.
#[tracing::instrument(skip_all, fields(user.id = %owner, rows = table.rows.len()))]
pub async fn create(
    state: &AppState,
    owner: Uuid,
    name: &str,
    table: Table,
    summary: &str,
) -> Result<TableRecord, Error> {
    let name = check_name(name)?;
    check_limits(state, table.columns.len(), table.rows.len() as u64)?;
    check_cell_sizes(
        state,
        table.rows.iter().enumerate().flat_map(|(r, row)| {
            row.iter()
                .enumerate()
                .map(move |(c, v)| (format!("rows[{r}][{c}]"), v))
        }),
    )?;
    let quota = RowQuota::of(state.quotas(), owner).await?;
    let schema = Schema::new(table.columns.clone());
    let rows: Vec<Row> = table
        .rows
        .into_iter()
        .enumerate()
        .map(|(i, cells)| Row {
            id: i as i64 + 1,
            position: (i as i64 + 1) * POSITION_STEP,
            cells: schema
                .columns
                .iter()
                .zip(cells)
                .map(|(c, v)| (c.id.clone(), v))
                .collect(),
        })
        .collect();
    let turn = state.writes.turn().await?;
    let txn = state.db.begin().await?;
    quota.lock(&txn).await?;
    quota.check(&txn, rows.len() as i64).await?;
    let record = store::create(&txn, owner, &name).await?;
    store::insert_rows(&txn, record.id, 1, &rows).await?;
    let count = rows.len() as i64;
    finish_create(&txn, &record, &schema, count, summary, owner).await?;
    txn.commit().await?;
    // Others' writes need not wait for what follows.
    drop(turn);
    Ok(TableRecord {
        current_version: 1,
        next_row_id: count + 1,
        row_count: count,
        ..record
    })
}

async fn finish_create(
    txn: &DatabaseTransaction,
    record: &TableRecord,
    schema: &Schema,
    rows: i64,
    summary: &str,
    owner: Uuid,
) -> Result<(), Error> {
    store::insert_version(
        txn,
        NewVersion {
            table_id: record.id,
            version: 1,
            schema,
            ops: serde_json::json!([]),
            summary: summary.to_owned(),
            row_count: rows,
            author_id: Some(owner),
        },
    )
    .await?;
    store::set_current(txn, record.id, 1, rows + 1, rows).await?;
    Ok(())
}

/// Builds a table from JSON rows (arrays or objects), with declared columns or inferred ones
/// (`sheetgpt_core::import::json`), its refusals as the service's errors.
pub fn table_from_json(
    columns: Option<Vec<ColumnSpec>>,
    rows: Vec<serde_json::Value>,
    max_columns: usize,
    dates: sheetgpt_core::table::DateOrder,
) -> Result<Table, Error> {
    use sheetgpt_core::import::json::{self, Declared, JsonRowsError};
    let declared = columns.map(|cols| {
        cols.into_iter()
            .map(|c| Declared {
                name: c.name,
                ty: c.ty,
                description: c.description,
                rules: c.rules,
            })
            .collect()
    });
    json::table(declared, rows, max_columns, dates).map_err(|err| match err {
        JsonRowsError::TooWide { .. } => Error::PayloadTooLarge {
            detail: err.to_string(),
        },
        JsonRowsError::NotARow { index } => Error::field(
            &format!("rows[{index}]"),
            "must be an array of values or an object keyed by column name",
        ),
        JsonRowsError::Cells(cells) => Error::Validation(
            cells
                .into_iter()
                .map(|(field, message)| FieldError::new(field, message))
                .collect(),
        ),
    })
}

#[derive(Clone, Debug, serde::Deserialize, utoipa::ToSchema, garde::Validate)]
pub struct ColumnSpec {
    #[schema(min_length = 1, max_length = 200)]
    #[garde(length(chars, min = 1, max = 200))]
    pub name: String,
    /// Inferred from the values when absent.
    #[serde(rename = "type", default)]
    #[garde(skip)]
    #[schema(value_type = Option<String>, example = "integer")]
    pub ty: Option<ColumnType>,
    #[serde(default)]
    #[schema(max_length = 1000)]
    #[garde(length(chars, max = 1000))]
    pub description: Option<String>,
    #[serde(default)]
    #[garde(skip)]
    #[schema(value_type = Option<Object>)]
    pub rules: Option<sheetgpt_core::table::Rules>,
}

/// Imports delimited text (CSV, TSV…) from a file: see [`import`].
#[tracing::instrument(skip_all, fields(user.id = %owner))]
pub async fn import_delimited(
    state: &AppState,
    owner: Uuid,
    name: &str,
    path: std::path::PathBuf,
    delimiter: Option<u8>,
) -> Result<TableRecord, Error> {
    import(
        state,
        owner,
        name,
        path,
        Source::Delimited { delimiter },
        None,
    )
    .await
}

/// Imports one sheet (the first unless named) of a spreadsheet file: see [`import`].
#[tracing::instrument(skip_all, fields(user.id = %owner))]
pub async fn import_spreadsheet(
    state: &AppState,
    owner: Uuid,
    name: &str,
    path: std::path::PathBuf,
    sheet: Option<String>,
) -> Result<TableRecord, Error> {
    import(
        state,
        owner,
        name,
        path,
        Source::Spreadsheet { sheet },
        None,
    )
    .await
}

/// Work run by a job worker (an import, a change): rows done so far are counted in `control`
/// (and the total once known), `control.cancelled` stops it, and the job is recorded as
/// succeeded in the work's own transaction, so that the table or version exists exactly when
/// its job says so (a worker that lost its lease commits nothing).
pub struct JobRun<'a> {
    pub control: &'a crate::exports::render::Control,
    pub job_id: Uuid,
    pub worker: Uuid,
}

impl JobRun<'_> {
    /// Records the job's success in `txn`; [`JOB_STOPPED`] when the worker no longer holds it.
    async fn succeed(
        &self,
        txn: &DatabaseTransaction,
        result: &serde_json::Value,
        rows: i64,
    ) -> Result<(), Error> {
        let held = crate::db::jobs::succeed(
            txn,
            self.job_id,
            self.worker,
            &result.to_string(),
            rows,
            None,
        )
        .await?;
        if held { Ok(()) } else { Err(job_stopped()) }
    }
}

/// Why a job's work stopped without an error of its input: cancelled, or the worker lost it.
pub use crate::jobs::worker::JOB_STOPPED;

/// The error that ends a job's work when it was cancelled or lost (the worker records nothing).
pub fn job_stopped() -> Error {
    Error::conflict(JOB_STOPPED, "The job was cancelled.")
}

/// Imports a file with the core reader, in its two passes: the first (which checks every
/// bound of `tables` and decides each column's type from all of its cells) before anything is
/// stored, the second streaming rows into the table in batches, so memory stays flat whatever
/// the number of rows. A refused file stores nothing.
pub async fn import(
    state: &AppState,
    owner: Uuid,
    name: &str,
    path: std::path::PathBuf,
    source: Source,
    job: Option<JobRun<'_>>,
) -> Result<TableRecord, Error> {
    use std::sync::atomic::Ordering;
    let stopped = job_stopped;
    let name = check_name(name)?;
    let mut limits = state.config.tables.import_limits();
    // Dates that read both ways are read as the owner's locale writes them.
    let locale = crate::db::users::find_by_id(&state.db, owner)
        .await?
        .and_then(|u| u.locale);
    limits.dates = sheetgpt_core::locale::date_order(locale.as_deref());
    let opened = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path).map_err(|e| Error::Internal(e.into()))?;
        Import::open(std::io::BufReader::new(file), &source, &limits).map_err(import_error)
    })
    .await
    .map_err(|e| Error::Internal(e.into()))??;
    let scan = opened.scan().clone();
    check_limits(state, scan.columns.len(), scan.rows)?;
    if let Some(job) = &job {
        job.control.total.store(scan.rows, Ordering::Relaxed);
        if job.control.cancelled.load(Ordering::Relaxed) {
            return Err(stopped());
        }
    }
    let quota = RowQuota::of(state.quotas(), owner).await?;
    let schema = Schema::new(scan.columns.clone());

    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Vec<Row>, Error>>(4);
    let ids: Vec<String> = schema.columns.iter().map(|c| c.id.clone()).collect();
    let reader = tokio::task::spawn_blocking(move || {
        let mut next_id: RowId = 1;
        let mut batch = Vec::with_capacity(IMPORT_BATCH);
        let read = opened.rows(|values| {
            let cells = ids
                .iter()
                .zip(values)
                .filter(|(_, v)| !v.is_null())
                .map(|(id, v)| (id.clone(), v))
                .collect();
            batch.push(Row {
                id: next_id,
                position: next_id * POSITION_STEP,
                cells,
            });
            next_id += 1;
            if batch.len() == IMPORT_BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(IMPORT_BATCH));
                if tx.blocking_send(Ok(full)).is_err() {
                    return ControlFlow::Break(()); // the receiver gave up (an insert failed)
                }
            }
            ControlFlow::Continue(())
        });
        let last = match read {
            Ok(_) if batch.is_empty() => return,
            Ok(_) => Ok(batch),
            Err(e) => Err(import_error(e)),
        };
        let _ = tx.blocking_send(last);
    });

    let turn = state.writes.turn().await?;
    let txn = state.db.begin().await?;
    // Under the user's quota lock until the import commits: a concurrent import of theirs
    // waits, then counts these rows.
    quota.lock(&txn).await?;
    quota
        .check(&txn, i64::try_from(scan.rows).unwrap_or(i64::MAX))
        .await?;
    let record = store::create(&txn, owner, &name).await?;
    let mut count: i64 = 0;
    while let Some(batch) = rx.recv().await {
        let batch = batch?;
        count += batch.len() as i64;
        store::insert_rows(&txn, record.id, 1, &batch).await?;
        if let Some(job) = &job {
            job.control
                .rows
                .store(u64::try_from(count).unwrap_or(0), Ordering::Relaxed);
            if job.control.cancelled.load(Ordering::Relaxed) {
                // The reader stops at its next send; the transaction rolls back.
                drop(rx);
                let _ = reader.await;
                return Err(stopped());
            }
        }
    }
    reader.await.map_err(|e| Error::Internal(e.into()))?;
    let summary = import_summary(&scan, count);
    finish_create(&txn, &record, &schema, count, &summary, owner).await?;
    if let Some(job) = &job {
        let result = serde_json::json!({"table_id": record.id, "name": record.name, "rows": count});
        job.succeed(&txn, &result, count).await?;
    }
    txn.commit().await?;
    // Others' writes need not wait for what follows.
    drop(turn);
    tracing::info!(table.id = %record.id, rows = count, "table imported");
    Ok(TableRecord {
        current_version: 1,
        next_row_id: count + 1,
        row_count: count,
        ..record
    })
}

/// The first version's summary: what was read, and what was left out (blank rows).
fn import_summary(scan: &Scan, rows: i64) -> String {
    let mut summary = format!("imported {rows} rows × {} columns", scan.columns.len());
    if let Some(sheet) = &scan.sheet {
        summary.push_str(&format!(" from sheet `{sheet}`"));
    }
    match scan.empty_rows_skipped {
        0 => {}
        1 => summary.push_str("; 1 empty row skipped"),
        n => summary.push_str(&format!("; {n} empty rows skipped")),
    }
    summary
}

const IMPORT_BATCH: usize = 5_000;

/// Sentence case and a full stop, for the problem's `detail`.
fn sentence(text: impl std::fmt::Display) -> String {
    let text = text.to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => format!("{}{}.", first.to_uppercase(), chars.as_str()),
        None => text,
    }
}

/// The problem for a refused import: 413 for what is too large (columns, rows, what a
/// workbook inflates to), 422 for a cell that cannot be stored as given (too long, NUL),
/// 400 for a file that is not what it claims to be.
pub fn import_error(err: ImportError) -> Error {
    let detail = sentence(&err);
    match err {
        ImportError::TooManyColumns { .. }
        | ImportError::TooManyRows { .. }
        | ImportError::TooLarge(_) => Error::PayloadTooLarge { detail },
        ImportError::CellTooLong { .. } => Error::Unprocessable {
            code: "cell-too-large",
            detail,
            errors: Vec::new(),
        },
        ImportError::Nul { .. } => Error::Unprocessable {
            code: "nul-character",
            detail,
            errors: Vec::new(),
        },
        ImportError::NoSuchSheet(_) => Error::field("sheet", err.to_string()),
        ImportError::Delimiter(_) => Error::field("delimiter", err.to_string()),
        ImportError::Io(_) => Error::Internal(anyhow::Error::new(err)),
        ImportError::Empty
        | ImportError::NoRows
        | ImportError::NotUtf8 { .. }
        | ImportError::Malformed(_)
        | ImportError::NotASpreadsheet(_)
        | ImportError::NoSheets
        | ImportError::OutOfOrder { .. } => Error::BadRequest {
            code: "bad-upload",
            detail,
        },
    }
}

/// Refuses rows holding a cell longer than `tables.max_cell_chars` (422 `cell-too-large`),
/// naming each such cell by its place (`name(row, column)`); nothing is stored.
fn check_cell_sizes<'a>(
    state: &AppState,
    rows: impl Iterator<Item = (String, &'a Value)>,
) -> Result<(), Error> {
    let max = state.config.tables.max_cell_chars;
    let errors: Vec<FieldError> = rows
        .filter(|(_, v)| sheetgpt_core::import::text_over(v, max))
        .take(100)
        .map(|(field, _)| FieldError::new(field, format!("holds more than {max} characters")))
        .collect();
    if errors.is_empty() {
        return Ok(());
    }
    Err(Error::Unprocessable {
        code: "cell-too-large",
        detail: format!(
            "{} cell(s) hold more than {max} characters; a cell may hold at most {max}.",
            errors.len()
        ),
        errors,
    })
}

/// The result of a change.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChangeResult {
    pub version: i32,
    pub row_count: i64,
    pub rows_written: usize,
    pub rows_deleted: usize,
    /// Cells set to null by a type change with `invalid: "null"`: `[row id, old text]`, the
    /// first 1,000 by row id (`nulled_total` counts them all).
    #[schema(value_type = Vec<Object>)]
    pub nulled_cells: Vec<(RowId, String)>,
    /// How many cells the type change set to null.
    pub nulled_total: u64,
    /// Cells whose leading and trailing spaces a `trim` removed.
    pub trimmed_cells: u64,
}

/// Nulled cells listed at most in a change's answer; `nulled_total` counts them all.
pub const MAX_NULLED_LISTED: usize = 1_000;

/// How a change was taken: applied within the request, or queued as a job (a change of every
/// row of a table past `tables.max_sync_rows`); `created` is false when an earlier request
/// with the same idempotency key queued it.
pub enum Submitted {
    Applied(ChangeResult),
    Queued {
        job: Box<crate::db::jobs::JobRecord>,
        created: bool,
    },
}

/// Whether a table is past `tables.max_sync_rows`: work on all its rows runs as a job.
fn needs_job(state: &AppState, table: &TableRecord) -> bool {
    u64::try_from(table.row_count).unwrap_or(0) > state.config.tables.max_sync_rows
}

/// Applies a change within the request, or queues it as a `change` job when it touches every
/// row of a table past `tables.max_sync_rows`. Such a change must be one operation (422
/// `change-too-large` otherwise), since a change of several is worked out in memory.
pub async fn submit_change(
    state: &AppState,
    owner: Uuid,
    table_id: Uuid,
    expected: Option<i32>,
    ops: Vec<Op>,
    summary: Option<String>,
    key: Option<&str>,
) -> Result<Submitted, Error> {
    if ops.is_empty() {
        return Err(no_ops());
    }
    let table = store::find(&state.db, owner, table_id)
        .await?
        .or_not_found("table")?;
    if !(needs_job(state, &table) && version::plan(&ops).all_rows) {
        return change(state, owner, table_id, expected, ops, summary, None)
            .await
            .map(Submitted::Applied);
    }
    let Some(op) = bulk::streamed(&ops) else {
        return Err(Error::Unprocessable {
            code: "change-too-large",
            detail: format!(
                "The table has {} rows, more than tables.max_sync_rows ({}): an operation on \
                 every row ({}) must be sent as a change of its own, without other operations.",
                table.row_count,
                state.config.tables.max_sync_rows,
                whole_table_ops(&ops).join(", ")
            ),
            errors: Vec::new(),
        });
    };
    let base = expected.unwrap_or(table.current_version);
    if base != table.current_version {
        return Err(stale(table.current_version));
    }
    let passes = bulk::passes(op);
    let payload = crate::tables::jobs::ChangePayload {
        table_id,
        base,
        work: crate::tables::jobs::Work::Ops { ops, summary },
    };
    let total = table.row_count.saturating_mul(passes);
    let (job, created) = crate::tables::jobs::queue(state, owner, key, &payload, total).await?;
    Ok(Submitted::Queued {
        job: Box::new(job),
        created,
    })
}

/// [`revert`] within the request, or as a `change` job for a table (now or at the target
/// version) past `tables.max_sync_rows`.
pub async fn submit_revert(
    state: &AppState,
    owner: Uuid,
    table_id: Uuid,
    target: i32,
    expected: Option<i32>,
    key: Option<&str>,
) -> Result<Submitted, Error> {
    let table = store::find(&state.db, owner, table_id)
        .await?
        .or_not_found("table")?;
    if target < 1 || target > table.current_version {
        return Err(Error::NotFound("version"));
    }
    let target_rows = store::version(&state.db, table.id, target)
        .await?
        .map_or(0, |v| v.row_count);
    let big = needs_job(state, &table)
        || u64::try_from(target_rows).unwrap_or(0) > state.config.tables.max_sync_rows;
    if !big {
        return revert(state, owner, table_id, target, expected, None)
            .await
            .map(Submitted::Applied);
    }
    let base = expected.unwrap_or(table.current_version);
    if base != table.current_version {
        return Err(stale(table.current_version));
    }
    let payload = crate::tables::jobs::ChangePayload {
        table_id,
        base,
        work: crate::tables::jobs::Work::Revert { to: target },
    };
    let (job, created) = crate::tables::jobs::queue(state, owner, key, &payload, 0).await?;
    Ok(Submitted::Queued {
        job: Box::new(job),
        created,
    })
}

/// The names of the operations of `ops` that touch every row (`sort`, `trim`, ...).
fn whole_table_ops(ops: &[Op]) -> Vec<String> {
    ops.iter()
        .filter(|op| version::plan(std::slice::from_ref(*op)).all_rows)
        .filter_map(|op| {
            let json = serde_json::to_value(op).ok()?;
            Some(json.get("op")?.as_str()?.to_owned())
        })
        .collect()
}

fn no_ops() -> Error {
    Error::field("ops", "a change needs at least one operation")
}

/// What a change may ask for, from `[tables]`.
pub(super) fn change_limits(state: &AppState) -> version::Limits {
    let tables = &state.config.tables;
    version::Limits {
        formula: formula::Limits {
            max_chars: tables.max_formula_chars,
            max_depth: tables.max_formula_depth,
        },
    }
}

pub(super) fn op_error(err: OpError) -> Error {
    match err {
        OpError::BadFormula {
            column,
            error: FormulaError::TooLong { chars, max },
        } => Error::Unprocessable {
            code: "formula-too-long",
            detail: format!(
                "The formula for `{column}` has {chars} characters; at most {max} are allowed \
                 (tables.max_formula_chars)."
            ),
            errors: Vec::new(),
        },
        OpError::BadFormula {
            column,
            error: FormulaError::TooDeep { max },
        } => Error::Unprocessable {
            code: "formula-too-deep",
            detail: format!(
                "The formula for `{column}` nests parentheses more than {max} deep \
                 (tables.max_formula_depth)."
            ),
            errors: Vec::new(),
        },
        OpError::FormulaCells { column, cells } => Error::Validation(
            cells
                .into_iter()
                .take(100)
                .map(|(row, why)| FieldError::new(format!("rows[{row}].{column}"), why))
                .collect(),
        ),
        OpError::Unconvertible { column, to, cells } => Error::Validation(
            cells
                .into_iter()
                .take(100)
                .map(|(row, text)| {
                    FieldError::new(
                        format!("rows[{row}].{column}"),
                        format!("`{text}` cannot become {to}"),
                    )
                })
                .collect(),
        ),
        other => Error::Validation(vec![FieldError::new("ops", other.to_string())]),
    }
}

fn stale(current: i32) -> Error {
    Error::conflict(
        "stale-version",
        format!("The table has changed: its current version is {current}. Reload and try again."),
    )
}

/// Loads the rows a change needs, from the version it is based on.
async fn working_set(
    txn: &DatabaseTransaction,
    table: &TableRecord,
    base: i32,
    schema: &Schema,
    ops: &[Op],
) -> Result<Working, Error> {
    let needs = version::plan(ops);
    let raw = if needs.all_rows {
        store::rows_at(txn, table.id, base, true, None).await?
    } else {
        let ids: Vec<RowId> = needs.rows.iter().copied().collect();
        store::rows_at(txn, table.id, base, true, Some(&ids)).await?
    };
    let mut working = Working {
        next_row_id: table.next_row_id,
        max_position: store::max_position(txn, table.id, base, true).await?,
        ..Working::default()
    };
    for r in raw {
        let row = r.into_row(schema);
        working.rows.insert(row.id, row);
    }
    for id in needs.successors_of {
        if let Some(row) = working.rows.get(&id) {
            let next = store::next_position(txn, table.id, base, true, row.position).await?;
            working.successors.insert(id, next);
        }
    }
    Ok(working)
}

/// Applies operations as a new version. `expected` is the version the client saw (`If-Match`);
/// when it is no longer current the change is refused with 409.
#[tracing::instrument(skip_all, fields(table.id = %table_id))]
pub async fn change(
    state: &AppState,
    owner: Uuid,
    table_id: Uuid,
    expected: Option<i32>,
    ops: Vec<Op>,
    summary: Option<String>,
    job: Option<JobRun<'_>>,
) -> Result<ChangeResult, Error> {
    if ops.is_empty() {
        return Err(no_ops());
    }
    let table = store::find(&state.db, owner, table_id)
        .await?
        .or_not_found("table")?;
    let base = expected.unwrap_or(table.current_version);
    let quota = RowQuota::of(state.quotas(), owner).await?;
    let turn = state.writes.turn().await?;
    let txn = state.db.begin().await?;
    // The user's lock before the table's (the claim): the order every writer takes them in.
    quota.lock(&txn).await?;
    if !store::claim_next_version(&txn, owner, table_id, base).await? {
        txn.rollback().await?;
        let current = store::find(&state.db, owner, table_id)
            .await?
            .or_not_found("table")?;
        return Err(stale(current.current_version));
    }
    // Re-read under the claim: the row ids and counts are now stable.
    let table = store::find(&txn, owner, table_id)
        .await?
        .or_not_found("table")?;
    let record = store::version(&txn, table.id, base)
        .await?
        .or_not_found("version")?;
    let schema = store::parse_schema(&record)?;
    let applied = match bulk::streamed(&ops) {
        Some(op) => {
            let target = bulk::Target {
                table: &table,
                base,
                schema: &schema,
                control: job.as_ref().map(|j| j.control),
            };
            bulk::apply(state, &txn, &target, op).await?
        }
        None => in_memory(state, &txn, &table, base, &schema, &ops).await?,
    };
    check_limits(
        state,
        applied.schema.columns.len(),
        applied.row_count.max(0) as u64,
    )?;
    quota
        .check(&txn, applied.row_count - table.row_count)
        .await?;
    let new_version = base + 1;
    let ops_json = serde_json::to_value(&ops).map_err(|e| Error::Internal(e.into()))?;
    store::insert_version(
        &txn,
        NewVersion {
            table_id: table.id,
            version: new_version,
            schema: &applied.schema,
            ops: ops_json,
            summary: summary.unwrap_or_else(|| summarize(&ops)),
            row_count: applied.row_count,
            author_id: Some(owner),
        },
    )
    .await?;
    store::set_current(
        &txn,
        table.id,
        new_version,
        applied.next_row_id,
        applied.row_count,
    )
    .await?;
    let result = ChangeResult {
        version: new_version,
        row_count: applied.row_count,
        rows_written: applied.rows_written,
        rows_deleted: applied.rows_deleted,
        nulled_cells: applied.nulled,
        nulled_total: applied.nulled_total,
        trimmed_cells: applied.trimmed,
    };
    commit_version(state, txn, turn, job.as_ref(), owner, table.id, &result).await?;
    Ok(result)
}

/// Ends the transaction of a new version: the job's success (a change job) and the change's
/// event for its sheet links (their syncs) are committed with it; the write turn goes back
/// at once.
async fn commit_version(
    state: &AppState,
    txn: DatabaseTransaction,
    turn: crate::db::WriteTurn<'_>,
    job: Option<&JobRun<'_>>,
    owner: Uuid,
    table_id: Uuid,
    result: &ChangeResult,
) -> Result<(), Error> {
    if let Some(job) = job {
        record_job(&txn, job, table_id, result).await?;
    }
    let syncs = crate::db::sheet_links::table_changed(
        &txn,
        owner,
        table_id,
        state.config.exports.max_attempts,
    )
    .await?;
    txn.commit().await?;
    drop(turn);
    if syncs > 0 {
        state.jobs_queued.notify_one();
    }
    Ok(())
}

/// Records a change job's success, with the change's answer and its table, in the change's
/// transaction.
async fn record_job(
    txn: &DatabaseTransaction,
    job: &JobRun<'_>,
    table_id: Uuid,
    result: &ChangeResult,
) -> Result<(), Error> {
    let mut json = serde_json::to_value(result).map_err(|e| Error::Internal(e.into()))?;
    if let Some(obj) = json.as_object_mut() {
        obj.insert("table_id".to_owned(), serde_json::json!(table_id));
    }
    // Progress ends at the rows gone over (once per pass), as it was counted while running.
    let done = job.control.rows.load(std::sync::atomic::Ordering::Relaxed);
    job.succeed(txn, &json, i64::try_from(done).unwrap_or(i64::MAX))
        .await
}

/// What a change wrote, before its version is recorded.
#[derive(Default)]
pub(crate) struct Applied {
    pub schema: Schema,
    pub row_count: i64,
    pub next_row_id: RowId,
    pub rows_written: usize,
    pub rows_deleted: usize,
    /// The first [`MAX_NULLED_LISTED`] cells set to null, by row id.
    pub nulled: Vec<(RowId, String)>,
    pub nulled_total: u64,
    /// Cells whose spaces a `trim` removed.
    pub trimmed: u64,
}

/// Applies a change to the rows it needs, loaded into memory (every row only for a change
/// that mixes a whole-table operation with others), and writes them.
async fn in_memory(
    state: &AppState,
    txn: &DatabaseTransaction,
    table: &TableRecord,
    base: i32,
    schema: &Schema,
    ops: &[Op],
) -> Result<Applied, Error> {
    let mut working = working_set(txn, table, base, schema, ops).await?;
    let first_new = working.next_row_id;
    let limits = change_limits(state);
    let mut outcome = version::apply(schema, ops, working.clone(), &limits).map_err(op_error)?;
    if outcome.renumber {
        // Positions ran out after an anchor: spread the rows after it, then apply again.
        let spread = make_room(txn, table, base, schema, ops, &mut working).await?;
        outcome = version::apply(schema, ops, working, &limits).map_err(op_error)?;
        if outcome.renumber {
            return Err(Error::Unprocessable {
                code: "insert-too-dense",
                detail: "Too many rows are inserted at one place in this change; insert them \
                         in separate changes."
                    .to_owned(),
                errors: Vec::new(),
            });
        }
        for row in spread {
            if !outcome.deleted.contains(&row.id) {
                outcome.upserted.entry(row.id).or_insert(row);
            }
        }
    }
    let new_version = base + 1;
    let rows_new = outcome
        .upserted
        .keys()
        .filter(|id| **id >= first_new)
        .count() as i64;
    let row_count = table.row_count + rows_new - outcome.deleted.len() as i64;
    check_limits(state, outcome.schema.columns.len(), row_count.max(0) as u64)?;
    check_cell_sizes_of(state, &outcome.schema, outcome.upserted.values())?;
    let mut to_close: Vec<RowId> = outcome.deleted.iter().copied().collect();
    to_close.extend(outcome.upserted.keys().filter(|id| **id < first_new));
    to_close.sort_unstable();
    store::close_rows(txn, table.id, new_version, &to_close).await?;
    let written: Vec<Row> = outcome.upserted.into_values().collect();
    store::insert_rows(txn, table.id, new_version, &written).await?;
    Ok(Applied {
        schema: outcome.schema,
        row_count,
        next_row_id: outcome.next_row_id,
        rows_written: written.len(),
        rows_deleted: outcome.deleted.len(),
        nulled_total: outcome.nulled.len() as u64,
        nulled: {
            let mut nulled = outcome.nulled;
            nulled.sort_by_key(|n| n.0);
            nulled.truncate(MAX_NULLED_LISTED);
            nulled
        },
        trimmed: outcome.trimmed,
    })
}

/// [`check_cell_sizes`] for rows of a change, each cell named by its row id and column name.
pub(super) fn check_cell_sizes_of<'a>(
    state: &AppState,
    schema: &Schema,
    rows: impl Iterator<Item = &'a Row>,
) -> Result<(), Error> {
    let names: HashMap<&str, &str> = schema
        .columns
        .iter()
        .map(|c| (c.id.as_str(), c.name.as_str()))
        .collect();
    check_cell_sizes(
        state,
        rows.flat_map(|row| {
            let names = &names;
            row.cells.iter().map(move |(id, v)| {
                let column = names.get(id.as_str()).copied().unwrap_or(id.as_str());
                (format!("rows[{}].{column}", row.id), v)
            })
        }),
    )
}

/// Average room left between two rows of a spread window, so that later inserts there find
/// room again.
const SPREAD_GAP: i64 = 1 << 10;

/// Rows read at a time when looking for room after an anchor.
const SPREAD_PAGE: u64 = 64;

/// Positions ran out after the anchor of an `insert_rows`: the rows after it (a window just
/// long enough to hold them and the new rows with room to spare, or running to the table's
/// end) get new positions, spread evenly from the anchor to the first row past the window, so
/// that the new rows fit between the anchor and its successor. Only the window is read and
/// written again; the order of every row is kept. Returns the rows moved (to be written with
/// the change) and updates `working` (their positions, the anchors' successors).
async fn make_room(
    txn: &DatabaseTransaction,
    table: &TableRecord,
    base: i32,
    schema: &Schema,
    ops: &[Op],
    working: &mut Working,
) -> Result<Vec<Row>, Error> {
    let mut moved: HashMap<RowId, Row> = HashMap::new();
    for op in ops {
        let Op::InsertRows {
            rows,
            after: Some(anchor),
        } = op
        else {
            continue;
        };
        let Some(anchor_row) = working.rows.get(anchor) else {
            continue; // a row of this change: nothing stored after it yet
        };
        let start = anchor_row.position;
        let n = rows.len() as i64;
        let mut window: Vec<Row> = Vec::new();
        let mut after = Some((start, *anchor));
        let mut page_rows = SPREAD_PAGE;
        // The first row past the window (None: the window runs to the end).
        let end = loop {
            let page = store::rows_after(txn, table.id, base, true, after, page_rows).await?;
            let full = page.len() as u64 == page_rows;
            let mut found = None;
            for raw in page {
                let m = window.len() as i64;
                if raw.position - start >= (m + n + 1).saturating_mul(SPREAD_GAP) {
                    found = Some(raw.position);
                    break;
                }
                after = Some((raw.position, raw.id));
                window.push(raw.into_row(schema));
            }
            if found.is_some() || !full {
                break found;
            }
            page_rows = page_rows
                .saturating_mul(2)
                .min(crate::tables::bulk::PAGE_ROWS);
        };
        let slots = window.len() as i64 + n + 1;
        let gap = end.map_or(POSITION_STEP, |e| (e - start) / slots);
        for (i, mut row) in window.into_iter().enumerate() {
            row.position = start + (n + 1 + i as i64) * gap;
            // A row the change also edits keeps its edits from the working set.
            if let Some(current) = working.rows.get(&row.id) {
                let mut current = current.clone();
                current.position = row.position;
                row = current;
            }
            working.max_position = working.max_position.max(row.position);
            working.rows.insert(row.id, row.clone());
            moved.insert(row.id, row);
        }
    }
    // Every anchor's successor as the rows now stand: the nearest position after it among
    // the moved rows and the stored rows that did not move.
    let anchors: Vec<RowId> = working.successors.keys().copied().collect();
    for id in anchors {
        let Some(position) = working.rows.get(&id).map(|r| r.position) else {
            continue;
        };
        let stored = store::rows_after(
            txn,
            table.id,
            base,
            true,
            Some((position, RowId::MAX)),
            moved.len() as u64 + 1,
        )
        .await?
        .into_iter()
        .find(|r| !moved.contains_key(&r.id))
        .map(|r| r.position);
        let shifted = moved
            .values()
            .map(|r| r.position)
            .filter(|p| *p > position)
            .min();
        let next = match (stored, shifted) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        working.successors.insert(id, next);
    }
    Ok(moved.into_values().collect())
}

fn summarize(ops: &[Op]) -> String {
    let parts: Vec<String> = ops
        .iter()
        .map(|op| match op {
            Op::SetCells { cells } => format!("{} cell(s) set", cells.len()),
            Op::InsertRows { rows, .. } => format!("{} row(s) inserted", rows.len()),
            Op::DeleteRows { rows } => format!("{} row(s) deleted", rows.len()),
            Op::AddColumn { name, .. } => format!("column {name} added"),
            Op::RenameColumn { column, to } => format!("column {column} renamed to {to}"),
            Op::DropColumn { column } => format!("column {column} removed"),
            Op::ReorderColumns { .. } => "columns reordered".to_owned(),
            Op::ChangeType { column, to, .. } => format!("column {column} changed to {to}"),
            Op::SetRules { column, .. } => format!("rules of {column} set"),
            Op::Sort { by } => format!(
                "sorted by {}",
                by.iter()
                    .map(|k| format!("{}{}", k.column, if k.desc { " desc" } else { "" }))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Op::FilterDelete { filter } => {
                format!("rows where {} {:?} deleted", filter.column, filter.cmp)
            }
            Op::Trim { columns: None } => "spaces trimmed in text columns".to_owned(),
            Op::Trim {
                columns: Some(columns),
            } => format!("spaces trimmed in {}", columns.join(", ")),
        })
        .collect();
    parts.join("; ")
}

async fn states(
    db: &impl sea_orm::ConnectionTrait,
    table_id: Uuid,
    version: i32,
    current: bool,
    schema: &Schema,
    ids: &[RowId],
) -> Result<HashMap<RowId, Row>, Error> {
    Ok(store::rows_at(db, table_id, version, current, Some(ids))
        .await?
        .into_iter()
        .map(|r| {
            let row = r.into_row(schema);
            (row.id, row)
        })
        .collect())
}

pub async fn diff(
    state: &AppState,
    owner: Uuid,
    table_id: Uuid,
    from: i32,
    to: i32,
) -> Result<Diff, Error> {
    let a = load(state, owner, table_id, Some(from)).await?;
    let b = load(state, owner, table_id, Some(to)).await?;
    let (lo, hi) = (from.min(to), from.max(to));
    // The rows that changed, a page of ids at a time: only the differences are held.
    let mut diff = Diff {
        schema: version::diff_schema(&a.schema, &b.schema),
        ..Diff::default()
    };
    let mut after_id = None;
    loop {
        let ids = store::changed_between_page(&state.db, table_id, lo, hi, after_id, CHANGED_PAGE)
            .await?;
        let Some(last) = ids.last() else { break };
        after_id = Some(*last);
        // Read by version (not as current): stable while other changes are written.
        let before = states(&state.db, table_id, from, false, &a.schema, &ids).await?;
        let after = states(&state.db, table_id, to, false, &b.schema, &ids).await?;
        let page = version::diff_rows(&a.schema, &b.schema, &before, &after);
        diff.rows_added.extend(page.rows_added);
        diff.rows_removed.extend(page.rows_removed);
        diff.cells_changed.extend(page.cells_changed);
        diff.rows_moved += page.rows_moved;
    }
    Ok(diff)
}

/// Row ids a diff or a revert works on at a time.
const CHANGED_PAGE: u64 = 1_000;

/// Makes a new version equal to `target`, writing only the rows that differ.
#[tracing::instrument(skip_all, fields(table.id = %table_id, target))]
pub async fn revert(
    state: &AppState,
    owner: Uuid,
    table_id: Uuid,
    target: i32,
    expected: Option<i32>,
    job: Option<JobRun<'_>>,
) -> Result<ChangeResult, Error> {
    use std::sync::atomic::Ordering;
    let table = store::find(&state.db, owner, table_id)
        .await?
        .or_not_found("table")?;
    let base = expected.unwrap_or(table.current_version);
    if target < 1 || target > table.current_version {
        return Err(Error::NotFound("version"));
    }
    let quota = RowQuota::of(state.quotas(), owner).await?;
    let turn = state.writes.turn().await?;
    let txn = state.db.begin().await?;
    quota.lock(&txn).await?;
    if !store::claim_next_version(&txn, owner, table_id, base).await? {
        txn.rollback().await?;
        return Err(stale(table.current_version));
    }
    let table = store::find(&txn, owner, table_id)
        .await?
        .or_not_found("table")?;
    let current_schema = store::parse_schema(
        &store::version(&txn, table.id, base)
            .await?
            .or_not_found("version")?,
    )?;
    let target_record = store::version(&txn, table.id, target)
        .await?
        .or_not_found("version")?;
    let mut schema = store::parse_schema(&target_record)?;
    schema.next_column = schema.next_column.max(current_schema.next_column);
    let new_version = base + 1;
    let (mut rows_written, mut rows_deleted) = (0, 0);
    // A page of changed row ids at a time: what is written goes out with each page. The
    // rows written here are valid from `new_version`, outside the range looked at.
    let mut after_id = None;
    loop {
        let ids = store::changed_between_page(&txn, table.id, target, base, after_id, CHANGED_PAGE)
            .await?;
        let Some(last) = ids.last() else { break };
        after_id = Some(*last);
        let old = states(&txn, table.id, target, false, &schema, &ids).await?;
        let now = states(&txn, table.id, base, true, &current_schema, &ids).await?;
        let mut to_close = Vec::new();
        let mut to_write = Vec::new();
        for id in &ids {
            match (old.get(id), now.get(id)) {
                (None, Some(_)) => {
                    to_close.push(*id);
                    rows_deleted += 1;
                }
                (Some(row), None) => to_write.push(row.clone()),
                (Some(row), Some(cur)) => {
                    if row.position != cur.position || row.data_json() != cur.data_json() {
                        to_close.push(*id);
                        to_write.push(row.clone());
                    }
                }
                (None, None) => {}
            }
        }
        store::close_rows(&txn, table.id, new_version, &to_close).await?;
        store::insert_rows(&txn, table.id, new_version, &to_write).await?;
        rows_written += to_write.len();
        if let Some(job) = &job {
            job.control
                .rows
                .fetch_add(ids.len() as u64, Ordering::Relaxed);
            if job.control.cancelled.load(Ordering::Relaxed) {
                return Err(job_stopped()); // the transaction rolls back
            }
        }
    }
    let row_count = target_record.row_count;
    quota.check(&txn, row_count - table.row_count).await?;
    store::insert_version(
        &txn,
        NewVersion {
            table_id: table.id,
            version: new_version,
            schema: &schema,
            ops: serde_json::json!([{"op": "revert", "to": target}]),
            summary: format!("reverted to version {target}"),
            row_count,
            author_id: Some(owner),
        },
    )
    .await?;
    store::set_current(&txn, table.id, new_version, table.next_row_id, row_count).await?;
    let result = ChangeResult {
        version: new_version,
        row_count,
        rows_written,
        rows_deleted,
        nulled_cells: Vec::new(),
        nulled_total: 0,
        trimmed_cells: 0,
    };
    commit_version(state, txn, turn, job.as_ref(), owner, table.id, &result).await?;
    Ok(result)
}
