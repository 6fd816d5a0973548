//! A page of a version's rows as `GET /tables/{id}/rows` asks for it: sorted, filtered and
//! cut where its cursor says (a keyset position in position order, or an offset into a view).

use sheetgpt_core::query::{QueryError, parse_filter, parse_sort};
use sheetgpt_core::table::Column;
use sheetgpt_core::version::RowId;
use uuid::Uuid;

use super::order::{self, Start, View};
use crate::error::Error;
use crate::state::AppState;

/// The page asked for, in the words of the query (`sort=name:desc`, `filter=col:gt:3`).
pub struct Request {
    pub version: Option<i32>,
    pub limit: u64,
    pub cursor: Option<String>,
    pub sort: Vec<String>,
    pub filters: Vec<String>,
}

/// The rows of the page, each with its cells in the order of `columns` (canonical JSON).
pub struct Page {
    pub version: i32,
    pub columns: Vec<Column>,
    pub rows: Vec<(RowId, Vec<serde_json::Value>)>,
    pub next_cursor: Option<String>,
}

pub async fn page(state: &AppState, owner: Uuid, id: Uuid, req: Request) -> Result<Page, Error> {
    let loaded = super::service::load(state, owner, id, req.version).await?;
    let schema = &loaded.schema;
    let query_error = |e: QueryError| Error::field(e.field, e.message);
    let sort = req
        .sort
        .iter()
        .map(|s| parse_sort(s, schema).map_err(query_error))
        .collect::<Result<Vec<_>, _>>()?;
    let filters = req
        .filters
        .iter()
        .map(|f| parse_filter(f, schema).map_err(query_error))
        .collect::<Result<Vec<_>, _>>()?;
    let start = match req.cursor.as_deref() {
        None | Some("") => Start::After(None),
        Some(c) => {
            let bad = || Error::field("cursor", "is not a cursor this API returned");
            match c.split_at_checked(1) {
                Some(("p", n)) if sort.is_empty() => {
                    Start::After(Some(n.parse::<i64>().map_err(|_| bad())?))
                }
                // An offset works in any order: a grid that jumps asks for the rows there.
                Some(("o", n)) => Start::Offset(n.parse::<u64>().map_err(|_| bad())?),
                _ => return Err(bad()),
            }
        }
    };
    let offset = match start {
        Start::Offset(n) => n,
        Start::After(_) => 0,
    };
    let view = View {
        table_id: id,
        version: loaded.version,
        current: loaded.version == loaded.table.current_version,
        sort: &sort,
        filters: &filters,
        rows: u64::try_from(loaded.table.row_count).unwrap_or(0),
    };
    let mut raw = order::page(&state.db, &state.orders, &view, start, req.limit).await?;
    let more = raw.len() as u64 > req.limit;
    raw.truncate(usize::try_from(req.limit).unwrap_or(usize::MAX));
    let next_cursor = more.then(|| {
        if sort.is_empty() && offset == 0 {
            format!("p{}", raw.last().map_or(0, |r| r.position))
        } else {
            format!("o{}", offset + req.limit)
        }
    });
    let rows = raw
        .into_iter()
        .map(|r| {
            let row = r.into_row(schema);
            let cells = schema
                .columns
                .iter()
                .map(|c| row.get(c).to_json())
                .collect();
            (row.id, cells)
        })
        .collect();
    Ok(Page {
        version: loaded.version,
        columns: loaded.schema.columns,
        rows,
        next_cursor,
    })
}
