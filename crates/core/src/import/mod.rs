//! Reading uploads: one reader for delimited text (CSV, TSV, semicolons, pipes) and one for
//! spreadsheets (XLSX, XLSM, XLSB, XLS, ODS), used by the upload route, `sheetgpt convert`
//! and (for the delimiter) the paste extractor, so that one file is read one way everywhere.
//!
//! Both read in two passes over a seekable input (a file, or bytes in memory): the first
//! checks every bound and decides each column's type from all of its cells, the second turns
//! the rows into values and hands them over one by one, so a caller can store a million rows
//! without holding them. Nothing is handed over before the whole input has been checked.
//!
//! Every bound is given in [`Limits`] and every refusal is an [`ImportError`] that says where
//! (a line and column, or a cell such as `B7`) and why:
//! - columns, rows and characters per cell (`max_cell_chars`);
//! - a NUL character (U+0000) anywhere in a cell, which PostgreSQL cannot store;
//! - for spreadsheets, what the file would inflate to, checked before calamine opens it
//!   (see [`bounds`]): zip entries' declared and actual sizes, the shared strings that
//!   calamine keeps in memory, the longest piece of XML its parser buffers, and for XLS and
//!   ODS (which calamine reads whole, into a dense grid) the cells that grid would have.
//!   XLSX and XLSB sheets are read sparsely, cell by cell, never as a grid.
//!
//! Typing: delimited cells are text and go through inference. A spreadsheet cell is typed as
//! it is held: a number is a number, a date a date, a boolean a boolean; text cells go
//! through inference like delimited ones; a column mixing kinds is text (see [`typing`]).

mod bounds;
mod delimited;
pub mod json;
mod sniff;
mod spreadsheet;
mod typing;

use std::fmt;
use std::io::{Read, Seek};
use std::ops::ControlFlow;

use crate::table::{Column, DateOrder, Table, Value};

pub use sniff::{DELIMITERS, sniff};

/// The bounds an import is held to. The server takes them from its `tables` configuration;
/// the defaults are the server's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_columns: usize,
    pub max_rows: u64,
    /// Characters (Unicode scalar values) one cell may hold.
    pub max_cell_chars: usize,
    /// Bytes the parts of a zipped workbook (XLSX, XLSB, ODS) that are read may inflate to,
    /// all together.
    pub max_inflated_bytes: u64,
    /// Bytes of the shared strings part, which calamine holds in memory while it reads.
    pub max_shared_strings_bytes: u64,
    /// Cells of the grids calamine builds for XLS and ODS workbooks (every sheet's bounding
    /// box, empty cells in it included).
    pub max_sheet_cells: u64,
    /// Not a bound: how a column of dates that all read both ways (`03/04/2024`) is read,
    /// from the user's locale.
    pub dates: DateOrder,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_columns: 1_000,
            max_rows: 5_000_000,
            max_cell_chars: DEFAULT_MAX_CELL_CHARS,
            max_inflated_bytes: 2 * 1024 * 1024 * 1024,
            max_shared_strings_bytes: 512 * 1024 * 1024,
            max_sheet_cells: 5_000_000,
            dates: DateOrder::MonthFirst,
        }
    }
}

/// Excel's own limit on a cell (32,767 characters): no spreadsheet holds a longer one, and a
/// longer "cell" is almost always a file read the wrong way or an attack.
pub const DEFAULT_MAX_CELL_CHARS: usize = 32_767;

/// Where a cell is, as a person would look for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// A delimited file: the line the record starts on and the field (both from 1).
    Line { line: u64, column: usize },
    /// A spreadsheet cell (row and column from 0), shown as `B7`.
    Cell { row: u32, column: u32 },
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Line { line, column } => write!(f, "line {line}, column {column}"),
            Self::Cell { row, column } => {
                write!(f, "cell {}{}", column_letters(*column), u64::from(*row) + 1)
            }
        }
    }
}

/// `0` → `A`, `25` → `Z`, `26` → `AA`, as spreadsheets name columns.
pub fn column_letters(column: u32) -> String {
    let mut n = u64::from(column) + 1;
    let mut out = Vec::new();
    while n > 0 {
        let rem = ((n - 1) % 26) as u8;
        out.push(b'A' + rem);
        n = (n - 1) / 26;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// Why an input was refused. Messages are sentences without the final full stop, so that a
/// caller can add context.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("the file is empty")]
    Empty,
    #[error("the file has a header row but no data rows")]
    NoRows,
    #[error("line {line} is not valid UTF-8 text; save the file as UTF-8 (CSV UTF-8 in Excel)")]
    NotUtf8 { line: u64 },
    #[error("the file is not valid delimited text: {0}")]
    Malformed(String),
    #[error("`{0:?}` cannot separate fields; use a comma, tab, semicolon or pipe")]
    Delimiter(char),
    #[error("{at} holds a NUL character (U+0000), which cannot be stored; remove it and try again")]
    Nul { at: Place },
    #[error("{at} holds more than {max} characters; a cell may hold at most {max}")]
    CellTooLong { at: Place, max: usize },
    #[error("{} {found} columns; at most {max} are allowed", columns_place(at.as_ref()))]
    TooManyColumns {
        found: u64,
        max: usize,
        at: Option<Place>,
    },
    #[error("the file has more than {max} rows; at most {max} are allowed")]
    TooManyRows { max: u64 },
    /// A bound on what a workbook inflates to; the text says which.
    #[error("{0}")]
    TooLarge(String),
    #[error("the file is not a readable spreadsheet: {0}")]
    NotASpreadsheet(String),
    #[error("the workbook has no sheet named `{0}`")]
    NoSuchSheet(String),
    #[error("the workbook has no sheets")]
    NoSheets,
    #[error("the sheet lists row {row} after row {after}; its rows are out of order")]
    OutOfOrder { row: u64, after: u64 },
    /// Reading the input failed (the file, not its content).
    #[error("the file could not be read: {0}")]
    Io(String),
}

impl From<std::io::Error> for ImportError {
    fn from(err: std::io::Error) -> Self {
        Self::Io(err.to_string())
    }
}

fn columns_place(at: Option<&Place>) -> String {
    match at {
        Some(Place::Line { line, .. }) => format!("line {line} has"),
        Some(cell @ Place::Cell { .. }) => format!("the sheet (at {cell}) spans"),
        None => "the sheet has".to_owned(),
    }
}

/// What the input is and how to read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Delimited text; the delimiter is sniffed when `None`.
    Delimited { delimiter: Option<u8> },
    /// A spreadsheet (the format is told by its content); the first sheet when `None`.
    Spreadsheet { sheet: Option<String> },
}

/// What the first pass found.
#[derive(Clone, Debug, PartialEq)]
pub struct Scan {
    /// Columns `c1`, `c2`… with unique names and the type every cell of each parses as.
    pub columns: Vec<Column>,
    /// Data rows (the header and empty rows not counted).
    pub rows: u64,
    /// Rows after the header whose cells are all empty, which are not data and not stored.
    pub empty_rows_skipped: u64,
    /// The delimiter used (delimited input).
    pub delimiter: Option<u8>,
    /// The sheet read (spreadsheets).
    pub sheet: Option<String>,
}

/// An input that passed the first pass: its columns are known and every bound was checked.
pub struct Import<R: Read + Seek> {
    scan: Scan,
    reader: Reader<R>,
}

enum Reader<R: Read + Seek> {
    Delimited(delimited::Delimited<R>),
    Sheet(Box<spreadsheet::Sheet<R>>),
}

impl<R: Read + Seek> Import<R> {
    /// Runs the first pass: checks the input against `limits` and decides the columns.
    pub fn open(input: R, source: &Source, limits: &Limits) -> Result<Self, ImportError> {
        match source {
            Source::Delimited { delimiter } => {
                let (reader, scan) = delimited::Delimited::open(input, *delimiter, limits)?;
                Ok(Self {
                    scan,
                    reader: Reader::Delimited(reader),
                })
            }
            Source::Spreadsheet { sheet } => {
                let (reader, scan) = spreadsheet::Sheet::open(input, sheet.as_deref(), limits)?;
                Ok(Self {
                    scan,
                    reader: Reader::Sheet(Box::new(reader)),
                })
            }
        }
    }

    pub fn scan(&self) -> &Scan {
        &self.scan
    }

    /// The second pass: every data row, as values aligned with the columns, in order. `each`
    /// may stop early with `ControlFlow::Break`. Returns the rows handed over.
    pub fn rows(self, each: impl FnMut(Vec<Value>) -> ControlFlow<()>) -> Result<u64, ImportError> {
        match self.reader {
            Reader::Delimited(reader) => reader.rows(&self.scan.columns, each),
            Reader::Sheet(reader) => reader.rows(&self.scan.columns, each),
        }
    }
}

/// Reads a whole input into a table (both passes), for callers that want it in memory.
pub fn read_table<R: Read + Seek>(
    input: R,
    source: &Source,
    limits: &Limits,
) -> Result<(Table, Scan), ImportError> {
    let import = Import::open(input, source, limits)?;
    let scan = import.scan().clone();
    let mut rows = Vec::with_capacity(usize::try_from(scan.rows).unwrap_or(0).min(1 << 20));
    import.rows(|row| {
        rows.push(row);
        ControlFlow::Continue(())
    })?;
    Ok((
        Table {
            columns: scan.columns.clone(),
            rows,
        },
        scan,
    ))
}

/// Whether `head` (the first bytes of a file) starts like a spreadsheet: a zip (XLSX, XLSB,
/// ODS) or a compound file (XLS).
pub fn looks_like_spreadsheet(head: &[u8]) -> bool {
    head.starts_with(b"PK\x03\x04") || head.starts_with(&bounds::CFB_MAGIC)
}

/// The first cell of `values` holding more than `max_chars` characters, by index. Texts,
/// URLs and e-mail addresses are the values whose size the user decides; the others are
/// bounded by their types.
pub fn oversized_cell(values: &[Value], max_chars: usize) -> Option<usize> {
    values.iter().position(|v| text_over(v, max_chars))
}

/// Whether one value holds more than `max_chars` characters.
pub fn text_over(value: &Value, max_chars: usize) -> bool {
    match value {
        Value::Text(s) | Value::Url(s) | Value::Email(s) => chars_over(s, max_chars),
        Value::Currency(m) => chars_over(&m.currency, max_chars),
        _ => false,
    }
}

/// `s.chars().count() > max`, without counting when the byte length already decides.
pub(crate) fn chars_over(s: &str, max: usize) -> bool {
    // A character is 1 to 4 bytes.
    if s.len() <= max {
        return false;
    }
    if s.len() > max.saturating_mul(4) {
        return true;
    }
    s.chars().nth(max).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_named_with_letters_as_spreadsheets_do() {
        assert_eq!(column_letters(0), "A");
        assert_eq!(column_letters(25), "Z");
        assert_eq!(column_letters(26), "AA");
        assert_eq!(column_letters(16_383), "XFD");
        assert_eq!(Place::Cell { row: 6, column: 1 }.to_string(), "cell B7");
        assert_eq!(
            Place::Line { line: 4, column: 2 }.to_string(),
            "line 4, column 2"
        );
    }

    #[test]
    fn a_cell_is_over_the_limit_only_past_its_last_character() {
        assert!(!chars_over("abc", 3));
        assert!(chars_over("abcd", 3));
        assert!(!chars_over("ééé", 3), "characters, not bytes");
        assert!(chars_over("éééé", 3));
        assert!(!text_over(&Value::Integer(123_456), 3));
        assert_eq!(
            oversized_cell(&[Value::Text("ab".into()), Value::Text("abcd".into())], 3),
            Some(1)
        );
    }
}
