//! Work that touches every row of a table, page by page, so that its memory is bounded by
//! configuration (`PAGE_ROWS` rows at a time, `tables.sort_memory_bytes` of sort keys), not
//! by the table's size: validation, and the whole-table changes (`sort`, `filter_delete`,
//! `change_type`, `add_column` with a default or a formula).
//!
//! A change reads the rows of the version it is based on (`valid_from <= base < valid_to`),
//! which its own writes (row versions closed or written at `base + 1`) do not alter, so pages
//! can be read and written in one transaction. Each page is changed by `version::apply`, the
//! same function an in-memory change uses, so both give the same rows.

use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::Ordering;

use sea_orm::DatabaseTransaction;
use serde::{Deserialize, Serialize};
use sheetgpt_core::table::{MarkGuess, Reading, RowChecker, Value, Violation as CellViolation};
use sheetgpt_core::version::{self, Op, OpError, POSITION_STEP, RowId, Schema, SortKey, Working};
use utoipa::ToSchema;
use uuid::Uuid;

use super::service::{self, Applied};
use super::spill::{Entry, Order, Sorter};
use crate::db::tables::{self as store, RawRow, TableRecord};
use crate::error::Error;
use crate::exports::render::Control;
use crate::state::AppState;

/// Rows read (and written) at a time by whole-table work.
pub const PAGE_ROWS: u64 = 1_000;

/// Violations listed at most; the total counts them all.
pub const MAX_VIOLATIONS: usize = 1_000;

/// Cells listed at most when a change is refused for its cells (the rest are counted).
const MAX_FAILED_CELLS: usize = 100;

/// A version's rule violations: the first [`MAX_VIOLATIONS`] in row order, and how many.
pub struct Validation {
    pub version: i32,
    /// Row id and violation (its `row` the index in position order).
    pub violations: Vec<(RowId, CellViolation)>,
    pub total: u64,
}

/// One rule violation, as the API answers it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Violation {
    /// Row id.
    pub row: RowId,
    pub column: String,
    /// `required`, `unique`, `min`, `max`, `pattern` or `one_of`.
    pub rule: String,
    pub value: String,
    pub message: String,
}

/// A version's rule violations, as the API answers them.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ValidationResponse {
    pub version: i32,
    /// Every bad cell (the first 1000 when there are more).
    pub violations: Vec<Violation>,
    pub total: u64,
}

impl From<Validation> for ValidationResponse {
    fn from(found: Validation) -> Self {
        Self {
            version: found.version,
            violations: found
                .violations
                .into_iter()
                .map(|(row, v)| Violation {
                    row,
                    column: v.column,
                    rule: v.rule.to_owned(),
                    value: v.value,
                    message: v.message,
                })
                .collect(),
            total: found.total,
        }
    }
}

/// Checks every cell of a version against its columns' rules, a page of rows at a time;
/// `unique` is checked by the database, which returns only the duplicates listed. `control`
/// (a job's) counts the rows checked and stops the work when cancelled.
pub async fn validate(
    state: &AppState,
    owner: Uuid,
    table_id: Uuid,
    version: Option<i32>,
    control: Option<&Control>,
) -> Result<Validation, Error> {
    let loaded = service::load(state, owner, table_id, version).await?;
    let schema = &loaded.schema;
    let mut out = Validation {
        version: loaded.version,
        violations: Vec::new(),
        total: 0,
    };
    if schema.columns.iter().all(|c| c.rules.is_empty()) {
        return Ok(out);
    }
    let mut duplicates: Vec<HashMap<u64, u64>> = vec![HashMap::new(); schema.columns.len()];
    for (ci, col) in schema.columns.iter().enumerate() {
        if col.rules.unique {
            let (found, count) = store::duplicates(
                &state.db,
                table_id,
                loaded.version,
                &col.id,
                MAX_VIOLATIONS as u64,
            )
            .await?;
            out.total += count;
            duplicates[ci] = found.into_iter().map(|d| (d.index, d.previous)).collect();
        }
    }
    let checker = RowChecker::new(&schema.columns);
    let mut after = None;
    let mut index: u64 = 0;
    loop {
        let page =
            store::rows_after(&state.db, table_id, loaded.version, false, after, PAGE_ROWS).await?;
        let Some(last) = page.last() else { break };
        after = Some((last.position, last.id));
        if let Some(control) = control {
            control.rows.fetch_add(page.len() as u64, Ordering::Relaxed);
            if control.cancelled.load(Ordering::Relaxed) {
                return Err(service::job_stopped());
            }
        }
        for raw in page {
            let row = raw.into_row(schema);
            let (violations, total) = (&mut out.violations, &mut out.total);
            checker.check(
                index as usize,
                |ci| row.get(&schema.columns[ci]),
                |ci, _| duplicates[ci].get(&index).map(|p| *p as usize),
                &mut |v| {
                    // Duplicates were counted by the database.
                    if v.rule != "unique" {
                        *total += 1;
                    }
                    if violations.len() < MAX_VIOLATIONS {
                        violations.push((row.id, v));
                    }
                },
            );
            index += 1;
        }
    }
    Ok(out)
}

/// The operation of a change that is done page by page: a change of one operation that
/// needs every row.
pub fn streamed(ops: &[Op]) -> Option<&Op> {
    match ops {
        [op] if version::plan(ops).all_rows => Some(op),
        _ => None,
    }
}

/// Where a change is written: the table, the version it is based on, the one it writes.
pub struct Target<'a> {
    pub table: &'a TableRecord,
    pub base: i32,
    pub schema: &'a Schema,
    /// A job's progress and cancel flag, when a job worker runs the change.
    pub control: Option<&'a Control>,
}

/// How many times a whole-table operation goes over the rows (a job's progress counts rows
/// once per pass): a sort reads them and writes them in order, a type change to a number
/// without a decimal mark first reads every value to choose the mark.
pub fn passes(op: &Op) -> i64 {
    match op {
        Op::Sort { .. } => 2,
        Op::ChangeType {
            to, reading: None, ..
        } if to.is_numeric() => 2,
        _ => 1,
    }
}

impl Target<'_> {
    fn next(&self) -> i32 {
        self.base + 1
    }

    /// Counts `rows` done for a job, and stops the work when the job was cancelled or lost.
    fn done(&self, rows: usize) -> Result<(), Error> {
        if let Some(control) = self.control {
            control.rows.fetch_add(rows as u64, Ordering::Relaxed);
            if control.cancelled.load(Ordering::Relaxed) {
                return Err(service::job_stopped()); // the change's transaction rolls back
            }
        }
        Ok(())
    }
}

/// Applies one whole-table operation page by page, writing each page's rows as it goes.
pub async fn apply(
    state: &AppState,
    txn: &DatabaseTransaction,
    target: &Target<'_>,
    op: &Op,
) -> Result<Applied, Error> {
    match op {
        Op::Sort { by } => sort(state, txn, target, by).await,
        _ => rowwise(state, txn, target, op).await,
    }
}

/// Rows of the base version in position order, a page at a time.
struct Pages<'a> {
    target: &'a Target<'a>,
    after: Option<(i64, RowId)>,
}

impl<'a> Pages<'a> {
    fn new(target: &'a Target<'a>) -> Self {
        Self {
            target,
            after: None,
        }
    }

    async fn next(&mut self, txn: &DatabaseTransaction) -> Result<Vec<RawRow>, Error> {
        let page = store::rows_after(
            txn,
            self.target.table.id,
            self.target.base,
            false,
            self.after,
            PAGE_ROWS,
        )
        .await?;
        if let Some(last) = page.last() {
            self.after = Some((last.position, last.id));
        }
        self.target.done(page.len())?;
        Ok(page)
    }
}

/// The cells a change is refused for, kept as `version::apply` reports them: the lowest row
/// ids first; only the first [`MAX_FAILED_CELLS`] are kept.
#[derive(Default)]
struct Failed {
    error: Option<OpError>,
    cells: BinaryHeap<(RowId, String)>,
}

impl Failed {
    fn add(&mut self, error: OpError) -> Result<(), Error> {
        let cells = match &error {
            OpError::Unconvertible { cells, .. } | OpError::FormulaCells { cells, .. } => {
                cells.clone()
            }
            _ => return Err(service::op_error(error)),
        };
        for cell in cells {
            self.cells.push(cell);
            if self.cells.len() > MAX_FAILED_CELLS {
                self.cells.pop();
            }
        }
        self.error.get_or_insert(error);
        Ok(())
    }

    fn into_error(self) -> Option<Error> {
        let cells = self.cells.into_sorted_vec();
        Some(service::op_error(match self.error? {
            OpError::Unconvertible { column, to, .. } => {
                OpError::Unconvertible { column, to, cells }
            }
            OpError::FormulaCells { column, .. } => OpError::FormulaCells { column, cells },
            other => other,
        }))
    }
}

async fn rowwise(
    state: &AppState,
    txn: &DatabaseTransaction,
    target: &Target<'_>,
    op: &Op,
) -> Result<Applied, Error> {
    let limits = service::change_limits(state);
    let decided = decide_mark(txn, target, op).await?;
    let ops = std::slice::from_ref(decided.as_ref().map_or(op, |d| &d.op));
    let working = |rows: HashMap<RowId, version::Row>| Working {
        rows,
        next_row_id: target.table.next_row_id,
        ..Working::default()
    };
    // On no rows first: the new schema, and every refusal that is not about cells.
    let shape = version::apply(target.schema, ops, working(HashMap::new()), &limits)
        .map_err(service::op_error)?;
    service::check_limits(
        state,
        shape.schema.columns.len(),
        target.table.row_count.max(0) as u64,
    )?;
    let mut schema = shape.schema;
    if let Some(d) = &decided
        && let Some(i) = schema.columns.iter().position(|c| c.id == d.column)
    {
        // As the in-memory path records it: no mark when no value chose one.
        schema.columns[i].reading = d.recorded;
    }
    let mut applied = Applied {
        schema,
        next_row_id: target.table.next_row_id,
        row_count: target.table.row_count,
        ..Applied::default()
    };
    let mut failed = Failed::default();
    // The first nulled cells by row id (the largest on top, to drop), as in memory.
    let mut nulled: BinaryHeap<(RowId, String)> = BinaryHeap::new();
    let mut pages = Pages::new(target);
    loop {
        let page = pages.next(txn).await?;
        if page.is_empty() {
            break;
        }
        let rows = page
            .into_iter()
            .map(|r| {
                let row = r.into_row(target.schema);
                (row.id, row)
            })
            .collect();
        let out = match version::apply(target.schema, ops, working(rows), &limits) {
            Ok(out) => out,
            Err(e) => {
                failed.add(e)?;
                continue;
            }
        };
        if failed.error.is_some() {
            continue; // refused already: only the failing cells are still looked for
        }
        service::check_cell_sizes_of(state, &applied.schema, out.upserted.values())?;
        let mut to_close: Vec<RowId> = out.deleted.iter().copied().collect();
        to_close.extend(out.upserted.keys());
        to_close.sort_unstable();
        store::close_rows(txn, target.table.id, target.next(), &to_close).await?;
        let written: Vec<version::Row> = out.upserted.into_values().collect();
        store::insert_rows(txn, target.table.id, target.next(), &written).await?;
        applied.rows_written += written.len();
        applied.rows_deleted += out.deleted.len();
        applied.row_count -= out.deleted.len() as i64;
        applied.nulled_total += out.nulled.len() as u64;
        for cell in out.nulled {
            nulled.push(cell);
            if nulled.len() > service::MAX_NULLED_LISTED {
                nulled.pop();
            }
        }
        applied.trimmed += out.trimmed;
    }
    if let Some(err) = failed.into_error() {
        return Err(err);
    }
    applied.nulled = nulled.into_sorted_vec();
    Ok(applied)
}

/// A type change of a text column to a number type, without a decimal mark, reads every
/// value with one mark chosen from all of them (as in memory), not with one chosen per page.
async fn decide_mark(
    txn: &DatabaseTransaction,
    target: &Target<'_>,
    op: &Op,
) -> Result<Option<Decided>, Error> {
    let Op::ChangeType {
        column,
        to,
        invalid,
        reading: None,
    } = op
    else {
        return Ok(None);
    };
    let Some(col) = target.schema.column(column) else {
        return Ok(None); // the op itself reports the unknown column
    };
    if !to.is_numeric() {
        return Ok(None);
    }
    let mut guess = MarkGuess::new(*to);
    let mut pages = Pages::new(target);
    loop {
        let page = pages.next(txn).await?;
        if page.is_empty() {
            break;
        }
        for raw in page {
            if let Value::Text(t) = raw.into_row(target.schema).get(col) {
                guess.push(t);
            }
        }
    }
    let recorded = guess.finish().or(col.reading);
    let op = Op::ChangeType {
        column: column.clone(),
        to: *to,
        invalid: *invalid,
        reading: Some(recorded.unwrap_or_default()),
    };
    Ok(Some(Decided {
        op,
        column: col.id.clone(),
        recorded,
    }))
}

/// A type change with its decimal mark made explicit, the column's id, and the mark the
/// column records (`None` when no value chose one and the column had none).
struct Decided {
    op: Op,
    column: String,
    recorded: Option<Reading>,
}

async fn sort(
    state: &AppState,
    txn: &DatabaseTransaction,
    target: &Target<'_>,
    by: &[SortKey],
) -> Result<Applied, Error> {
    let keys = version::sort_columns(target.schema, by).map_err(service::op_error)?;
    // This process's own temporary directory: what a crash leaves there is swept (scratch.rs).
    let dir = state.scratch.path();
    crate::secrets::ensure_data_dir(dir)?;
    let order = Order(keys.iter().map(|(_, desc)| *desc).collect());
    let mut sorter = Sorter::new(dir, state.config.tables.sort_memory_bytes, order);
    let mut pages = Pages::new(target);
    loop {
        let page = pages.next(txn).await?;
        if page.is_empty() {
            break;
        }
        for raw in page {
            let data = raw.data.clone();
            let row = raw.into_row(target.schema);
            sorter.push(Entry {
                keys: keys.iter().map(|(c, _)| row.get(c).clone()).collect(),
                position: row.position,
                id: row.id,
                data,
            });
            if sorter.full() {
                sorter = blocking(move || {
                    sorter.spill()?;
                    Ok(sorter)
                })
                .await?;
            }
        }
    }
    let runs = sorter.runs();
    if runs > 0 {
        metrics::counter!("sheetgpt_sort_runs_total").increment(runs as u64);
    }
    let mut sorted = blocking(move || sorter.finish()).await?;
    let mut applied = Applied {
        schema: target.schema.clone(),
        next_row_id: target.table.next_row_id,
        row_count: target.table.row_count,
        ..Applied::default()
    };
    let mut placed: i64 = 0;
    loop {
        let (rest, batch) = blocking(move || {
            let batch = sorted.take(PAGE_ROWS as usize)?;
            Ok((sorted, batch))
        })
        .await?;
        sorted = rest;
        if batch.is_empty() {
            break;
        }
        let placed_now = batch.len();
        let mut moves: Vec<RawRow> = Vec::new();
        for entry in batch {
            placed += 1;
            let position = placed * POSITION_STEP;
            if entry.position != position {
                moves.push(RawRow {
                    id: entry.id,
                    position,
                    data: entry.data,
                });
            }
        }
        applied.rows_written += moves.len();
        move_rows(txn, target, moves).await?;
        target.done(placed_now)?;
    }
    drop(sorted);
    tracing::debug!(rows = placed, runs, "sorted");
    Ok(applied)
}

/// Writes these rows again at their new positions, their cells as stored (carried by the
/// sort: nothing is read back).
async fn move_rows(
    txn: &DatabaseTransaction,
    target: &Target<'_>,
    mut rows: Vec<RawRow>,
) -> Result<(), Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut ids: Vec<RowId> = rows.iter().map(|r| r.id).collect();
    // In key order, so that the closing updates walk the table's index forwards.
    ids.sort_unstable();
    store::close_rows(txn, target.table.id, target.next(), &ids).await?;
    rows.sort_by_key(|r| (r.position, r.id));
    store::insert_raw_rows(txn, target.table.id, target.next(), &rows).await?;
    Ok(())
}

/// Runs file work of the sorter off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(e.into()))?
        .map_err(|e| Error::Internal(e.into()))
}
