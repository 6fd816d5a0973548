//! File writers for exports: CSV, JSON and XLSX over typed columns and cells, and the Google
//! Sheets encoding of the same (`sheets`).
//!
//! Every writer takes the rows as an iterator and writes them to any `std::io::Write` as they
//! come, so a caller can stream a large table from storage without holding it in memory. Each
//! returns the number of data rows written. The writers are blocking: an async caller runs them
//! on `spawn_blocking` (or a worker) and pipes the output where it needs to go.

mod csv;
mod json;
pub mod sheets;
mod xlsx;

pub use self::csv::{CsvOptions, write_csv};
pub use self::json::{JsonLayout, JsonOptions, write_json};
pub use self::xlsx::{
    DEFAULT_COMPRESSION_LEVEL, DEFAULT_TABLE_CELL_LIMIT, XlsxMeta, XlsxOptions, write_xlsx,
};

use crate::table::{Column, Value};

/// Why an export could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("could not write the export")]
    Io(#[from] std::io::Error),
    #[error("could not write the CSV export")]
    Csv(#[from] ::csv::Error),
    #[error("could not write the JSON export")]
    Json(#[from] serde_json::Error),
    #[error("could not write the XLSX export")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
    /// A row does not have one cell per column: the caller's rows and columns disagree.
    #[error("row {row} has {found} cells but the table has {expected} columns")]
    RowWidth {
        row: u64,
        expected: usize,
        found: usize,
    },
    /// The table does not fit in one worksheet (1,048,575 data rows, 16,384 columns).
    #[error(
        "the table is too large for an XLSX worksheet (at most {max_rows} rows and {max_columns} columns)"
    )]
    TooLargeForXlsx { max_rows: u32, max_columns: u16 },
    /// The XLSX options cannot be applied (a start cell that is not a cell, styles that do not
    /// match the columns): a template that was not checked, or a caller's mistake.
    #[error("the sheet layout cannot be applied: {0}")]
    Layout(String),
}

/// Checks that a row has one cell per column; `index` is the 0-based data row.
fn check_width(columns: &[Column], row: &[Value], index: u64) -> Result<(), ExportError> {
    if row.len() == columns.len() {
        Ok(())
    } else {
        Err(ExportError::RowWidth {
            row: index,
            expected: columns.len(),
            found: row.len(),
        })
    }
}
