//! What a type change of one column would do, without doing it: the decimal mark its numbers
//! would be read with, and the cells that would not convert (refused, or emptied with
//! `invalid: "null"`). The page's *Edit column* dialog shows this before the user saves, so
//! that neither the mark nor an emptied cell is a surprise.
//!
//! The rows are read a page at a time (`bulk::PAGE_ROWS`), as the change itself reads them,
//! and each page is converted by `version::apply`, the function the change uses, so the
//! preview and the change cannot disagree about a cell.

use std::collections::{BinaryHeap, HashMap};

use sheetgpt_core::table::{ColumnType, MarkGuess, Reading, Value};
use sheetgpt_core::version::{self, InvalidCells, Op, RowId, Working};
use uuid::Uuid;

use super::bulk::PAGE_ROWS;
use super::service;
use crate::db::tables as store;
use crate::error::Error;
use crate::state::AppState;

/// Cells listed at most; the total counts them all.
pub const MAX_LISTED: usize = 100;

pub struct TypeChangePreview {
    pub version: i32,
    /// The column's name.
    pub column: String,
    pub to: ColumnType,
    /// The reading the column would record (numbers only; `None` when no value chose a mark).
    pub reading: Option<Reading>,
    /// The first cells by row id that would not convert: `(row id, text)`.
    pub unconvertible: Vec<(RowId, String)>,
    pub unconvertible_total: u64,
}

/// Previews `change_type` of `column` to `to` on the current version, with the decimal mark
/// `reading` when given, else the one the change would choose from every value.
pub async fn type_change(
    state: &AppState,
    owner: Uuid,
    table_id: Uuid,
    column: &str,
    to: ColumnType,
    reading: Option<Reading>,
) -> Result<TypeChangePreview, Error> {
    let loaded = service::load(state, owner, table_id, None).await?;
    let (schema, version) = (&loaded.schema, loaded.version);
    let col = schema
        .column(column)
        .ok_or_else(|| Error::field("column", format!("the table has no column `{column}`")))?
        .clone();
    let pages = |after| store::rows_after(&state.db, table_id, version, false, after, PAGE_ROWS);

    // The mark as the change decides it (`bulk::decide_mark`, `version::apply`): from every
    // text value that is a number, else what the column had.
    let recorded = match reading {
        _ if !to.is_numeric() => None,
        Some(given) => Some(given),
        None => {
            let mut guess = MarkGuess::new(to);
            let mut after = None;
            loop {
                let page = pages(after).await?;
                let Some(last) = page.last() else { break };
                after = Some((last.position, last.id));
                for raw in page {
                    if let Value::Text(t) = raw.into_row(schema).get(&col) {
                        guess.push(t);
                    }
                }
            }
            guess.finish().or(col.reading)
        }
    };
    let op = Op::ChangeType {
        column: col.id.clone(),
        to,
        invalid: InvalidCells::Null,
        reading: to.is_numeric().then(|| recorded.unwrap_or_default()),
    };
    let limits = service::change_limits(state);
    let mut listed: BinaryHeap<(RowId, String)> = BinaryHeap::new();
    let mut total = 0u64;
    let mut after = None;
    loop {
        let page = pages(after).await?;
        let Some(last) = page.last() else { break };
        after = Some((last.position, last.id));
        let working = Working {
            rows: page
                .into_iter()
                .map(|raw| {
                    let row = raw.into_row(schema);
                    (row.id, row)
                })
                .collect::<HashMap<_, _>>(),
            next_row_id: loaded.table.next_row_id,
            ..Working::default()
        };
        let out = version::apply(schema, std::slice::from_ref(&op), working, &limits)
            .map_err(service::op_error)?;
        total += out.nulled.len() as u64;
        for cell in out.nulled {
            listed.push(cell);
            if listed.len() > MAX_LISTED {
                listed.pop(); // the highest row id
            }
        }
    }
    Ok(TypeChangePreview {
        version,
        column: col.name,
        to,
        reading: recorded,
        unconvertible: listed.into_sorted_vec(),
        unconvertible_total: total,
    })
}
