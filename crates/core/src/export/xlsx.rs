//! XLSX export with rust_xlsxwriter in constant-memory mode: a "Data" sheet with a bold, frozen
//! header and typed cells, and an "About" sheet with the export's metadata and the columns.
//!
//! Memory stays flat for any number of rows, with two bounded exceptions:
//! - **The Excel table object.** `Worksheet::add_table` keeps one `HashMap` entry per cell of
//!   the table's range (its overlap check), even in constant-memory mode: about 400 MB for
//!   1,000,000 × 10 cells. So a table (banded rows, filter buttons, structured references) is
//!   added only when rows × columns ≤ [`XlsxOptions::table_cell_limit`]; above it the sheet
//!   gets a plain autofilter, which costs nothing per cell.
//! - **The look-ahead buffer.** `add_table` must run before the rows are written: it writes
//!   the header cells, and in constant-memory mode a row once passed cannot be written again
//!   (rust_xlsxwriter drops such writes with a message on stderr). So the writer first buffers
//!   up to `table_cell_limit / columns + 1` rows (at least [`WIDTH_SAMPLE_ROWS`], which also
//!   give the column widths): if the iterator ends within the limit, the exact range is known
//!   and the table goes first; otherwise the buffered rows are written and the autofilter,
//!   which writes no cells, is set after the last row. The buffer is bounded by the same limit
//!   as the table's own map.
//!
//! Hyperlinks are kept in memory by rust_xlsxwriter until the file is closed, and Excel
//! accepts at most 65,530 per sheet: URLs past that number are written as plain text.

use std::collections::HashMap;
use std::io::Write;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use rust_xlsxwriter::{
    DataValidation, DataValidationRule, Format, Table, TableColumn, Url, Workbook, Worksheet,
};

use crate::table::{Column, ColumnType, Money, Value};

use super::{ExportError, check_width};

/// rows × columns above which no Excel table object is added (see the module docs).
pub const DEFAULT_TABLE_CELL_LIMIT: u64 = 200_000;
/// Rows read to size the columns.
pub const WIDTH_SAMPLE_ROWS: usize = 1000;
const MIN_WIDTH: usize = 8;
const MAX_WIDTH: usize = 60;
/// Excel's limits: rows per sheet (one is the header), columns, characters per cell,
/// hyperlinks per sheet.
const MAX_DATA_ROWS: u32 = 1_048_575;
const MAX_COLUMNS: u16 = 16_384;
const MAX_CELL_CHARS: usize = 32_767;
const MAX_HYPERLINKS: u32 = 65_530;
/// Excel keeps 15 significant digits: larger integers are written as text to stay exact.
const MAX_EXACT_INTEGER: i64 = 999_999_999_999_999;
/// Distinct currency formats before falling back to a plain amount format.
const MAX_CURRENCY_FORMATS: usize = 64;

/// What the "About" sheet says about the export.
#[derive(Clone, Debug, PartialEq)]
pub struct XlsxMeta {
    pub title: String,
    /// Where the data came from (a document name, a URL, a prompt summary).
    pub source: String,
    pub version: Option<i32>,
    pub exported_at: DateTime<Utc>,
}

/// How to write an XLSX file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XlsxOptions {
    /// Add an Excel table object only when rows × columns is at most this (see the module docs).
    pub table_cell_limit: u64,
    /// Name of the data sheet (Excel: at most 31 characters, none of `[]:*?/\`).
    pub sheet_name: String,
}

impl Default for XlsxOptions {
    fn default() -> Self {
        Self {
            table_cell_limit: DEFAULT_TABLE_CELL_LIMIT,
            sheet_name: "Data".to_owned(),
        }
    }
}

/// Writes the workbook. Returns the number of data rows written.
///
/// Constant-memory mode spills rows to a temporary file, so the process needs a writable
/// temporary directory.
pub fn write_xlsx<W: Write + Send>(
    out: W,
    columns: &[Column],
    rows: impl Iterator<Item = Vec<Value>>,
    meta: &XlsxMeta,
    options: &XlsxOptions,
) -> Result<u64, ExportError> {
    let width = u16::try_from(columns.len())
        .ok()
        .filter(|w| *w <= MAX_COLUMNS)
        .ok_or_else(too_large_error)?;

    let mut workbook = Workbook::new();
    let mut sheet = workbook.new_worksheet_with_constant_memory()?;
    sheet.set_name(&options.sheet_name)?;
    let formats = Formats::new();

    // Look ahead: enough rows to size the columns and to know whether the table fits.
    let mut rows = rows.peekable();
    let table_rows = usize::try_from(options.table_cell_limit / u64::from(width.max(1)))
        .unwrap_or(usize::MAX)
        .saturating_add(1);
    let look_ahead = table_rows.max(WIDTH_SAMPLE_ROWS);
    let mut buffered: Vec<Vec<Value>> = Vec::new();
    while buffered.len() < look_ahead {
        match rows.next() {
            Some(row) => {
                check_width(columns, &row, buffered.len() as u64)?;
                buffered.push(row);
            }
            None => break,
        }
    }
    let all_buffered = rows.peek().is_none();
    let cells = (buffered.len() as u64).saturating_mul(u64::from(width));
    let last_col = width.saturating_sub(1);

    set_widths(&mut sheet, columns, &buffered)?;

    let mut has_table = false;
    // Excel requires every table header to be a non-empty name of at most 255 characters,
    // equal to its cell's text; other headers get the autofilter.
    let table_headers_ok = columns
        .iter()
        .all(|c| !c.name.trim().is_empty() && c.name.chars().count() <= 255);
    if all_buffered
        && table_headers_ok
        && width > 0
        && !buffered.is_empty()
        && cells <= options.table_cell_limit
    {
        let table_columns: Vec<TableColumn> = columns
            .iter()
            .map(|c| TableColumn::new().set_header(&c.name))
            .collect();
        let table = Table::new().set_columns(&table_columns);
        let last_row = u32::try_from(buffered.len()).map_err(|_| too_large_error())?;
        // Excel refuses some header sets (names equal but for case): fall back to a filter.
        has_table = sheet.add_table(0, 0, last_row, last_col, &table).is_ok();
    }

    // After add_table, which wrote the same names without a format.
    for (col, column) in (0u16..).zip(columns) {
        sheet.write_string_with_format(0, col, truncate(&column.name), &formats.header)?;
    }
    sheet.set_freeze_panes(1, 0)?;
    add_validations(&mut sheet, columns)?;

    let mut writer = CellWriter {
        formats,
        currency_formats: HashMap::new(),
        hyperlinks: 0,
    };
    let mut count: u32 = 0;
    for row in buffered {
        writer.write_row(&mut sheet, &mut count, &row)?;
    }
    for row in rows {
        check_width(columns, &row, u64::from(count))?;
        writer.write_row(&mut sheet, &mut count, &row)?;
    }

    if !has_table && width > 0 {
        sheet.autofilter(0, 0, count, last_col)?;
    }

    let about = about_sheet(columns, meta, u64::from(count))?;
    workbook.push_worksheet(sheet);
    workbook.push_worksheet(about);
    workbook.save_to_writer(out)?;
    Ok(u64::from(count))
}

fn too_large_error() -> ExportError {
    ExportError::TooLargeForXlsx {
        max_rows: MAX_DATA_ROWS,
        max_columns: MAX_COLUMNS,
    }
}

struct Formats {
    header: Format,
    integer: Format,
    decimal: Format,
    percent: Format,
    date: Format,
    datetime: Format,
}

impl Formats {
    fn new() -> Self {
        Self {
            header: Format::new().set_bold(),
            integer: Format::new().set_num_format("#,##0"),
            decimal: Format::new().set_num_format("#,##0.00"),
            percent: Format::new().set_num_format("0.00%"),
            date: Format::new().set_num_format("yyyy-mm-dd"),
            datetime: Format::new().set_num_format("yyyy-mm-dd hh:mm:ss"),
        }
    }
}

struct CellWriter {
    formats: Formats,
    currency_formats: HashMap<String, Format>,
    hyperlinks: u32,
}

impl CellWriter {
    /// Writes the next data row; `count` is the number of data rows already written.
    fn write_row(
        &mut self,
        sheet: &mut Worksheet,
        count: &mut u32,
        row: &[Value],
    ) -> Result<(), ExportError> {
        if *count >= MAX_DATA_ROWS {
            return Err(too_large_error());
        }
        *count += 1;
        for (col, cell) in (0u16..).zip(row) {
            self.write(sheet, *count, col, cell)?;
        }
        Ok(())
    }

    fn write(
        &mut self,
        sheet: &mut Worksheet,
        row: u32,
        col: u16,
        value: &Value,
    ) -> Result<(), ExportError> {
        let f = &self.formats;
        match value {
            Value::Null => {}
            Value::Integer(i) if i.unsigned_abs() <= MAX_EXACT_INTEGER.unsigned_abs() => {
                sheet.write_number_with_format(row, col, *i as f64, &f.integer)?;
            }
            Value::Integer(i) => {
                sheet.write_string(row, col, i.to_string())?;
            }
            Value::Decimal(d) => write_decimal(sheet, row, col, *d, &f.decimal)?,
            Value::Float(x) if x.is_finite() => {
                // No fixed decimals: a float's scale is unknown (1e-9 and 1e9 both happen).
                sheet.write_number(row, col, *x)?;
            }
            Value::Float(x) => {
                sheet.write_string(row, col, x.to_string())?;
            }
            Value::Percent(p) => match p.checked_div(Decimal::ONE_HUNDRED) {
                Some(fraction) => write_decimal(sheet, row, col, fraction, &f.percent)?,
                None => {
                    sheet.write_string(row, col, value.to_string())?;
                }
            },
            Value::Currency(m) => {
                let format = self.currency_format(m);
                write_decimal(sheet, row, col, m.amount, &format)?;
            }
            Value::Boolean(b) => {
                sheet.write_boolean(row, col, *b)?;
            }
            Value::Date(d) if excel_year(*d) => {
                sheet.write_datetime_with_format(row, col, d, &f.date)?;
            }
            Value::Datetime(dt) if excel_year(dt.date()) => {
                sheet.write_datetime_with_format(row, col, dt, &f.datetime)?;
            }
            // Excel dates start in 1900: earlier ones stay readable as ISO text.
            Value::Date(_) | Value::Datetime(_) => {
                sheet.write_string(row, col, value.to_string())?;
            }
            Value::Url(s) => {
                let linked = self.hyperlinks < MAX_HYPERLINKS
                    && sheet.write_url(row, col, Url::new(s.as_str())).is_ok();
                if linked {
                    self.hyperlinks += 1;
                } else {
                    // Not a link Excel accepts (scheme, length) or over the sheet's limit.
                    sheet.write_string(row, col, truncate(s))?;
                }
            }
            Value::Email(s) | Value::Text(s) => {
                sheet.write_string(row, col, truncate(s))?;
            }
        }
        Ok(())
    }

    fn currency_format(&mut self, money: &Money) -> Format {
        if let Some(format) = self.currency_formats.get(&money.currency) {
            return format.clone();
        }
        // The code or symbol as a quoted literal after the amount: `#,##0.00 "EUR"`.
        let label: String = money
            .currency
            .chars()
            .filter(|c| !matches!(c, '"' | '\\'))
            .take(16)
            .collect();
        let format = if label.is_empty() {
            self.formats.decimal.clone()
        } else {
            Format::new().set_num_format(format!("#,##0.00 \"{label}\""))
        };
        if self.currency_formats.len() < MAX_CURRENCY_FORMATS {
            self.currency_formats
                .insert(money.currency.clone(), format.clone());
        }
        format
    }
}

fn write_decimal(
    sheet: &mut Worksheet,
    row: u32,
    col: u16,
    value: Decimal,
    format: &Format,
) -> Result<(), ExportError> {
    match value.to_f64() {
        Some(x) => sheet.write_number_with_format(row, col, x, format)?,
        None => sheet.write_string(row, col, value.to_string())?,
    };
    Ok(())
}

fn excel_year(date: NaiveDate) -> bool {
    (1900..=9999).contains(&date.year())
}

/// Excel cells hold at most 32,767 characters; longer text is cut rather than failing the
/// whole export.
fn truncate(text: &str) -> &str {
    match text.char_indices().nth(MAX_CELL_CHARS) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

/// Widths from the header and the sample rows' text, in characters, within 8..=60.
fn set_widths(
    sheet: &mut Worksheet,
    columns: &[Column],
    sample: &[Vec<Value>],
) -> Result<(), ExportError> {
    for (col, (i, column)) in (0u16..).zip(columns.iter().enumerate()) {
        // Room for the filter button next to the name.
        let header = column.name.chars().count() + 3;
        let cells = sample
            .iter()
            .take(WIDTH_SAMPLE_ROWS)
            .filter_map(|row| row.get(i))
            .map(display_len)
            .max()
            .unwrap_or(0);
        let width = header.max(cells + 1).clamp(MIN_WIDTH, MAX_WIDTH);
        sheet.set_column_width(col, width as f64)?;
    }
    Ok(())
}

/// Roughly the characters Excel shows for the cell with its number format.
fn display_len(value: &Value) -> usize {
    match value {
        Value::Null => 0,
        Value::Integer(i) => grouped_len(i.to_string().len()),
        Value::Decimal(d) | Value::Percent(d) => grouped_len(d.trunc().abs().to_string().len()) + 4,
        Value::Currency(m) => {
            grouped_len(m.amount.trunc().abs().to_string().len()) + 5 + m.currency.chars().count()
        }
        Value::Date(_) => 10,
        Value::Datetime(_) => 19,
        other => other.to_string().chars().count(),
    }
}

/// Length of an integer part once `#,##0` adds its thousands separators.
fn grouped_len(digits: usize) -> usize {
    digits + digits.saturating_sub(1) / 3
}

fn add_validations(sheet: &mut Worksheet, columns: &[Column]) -> Result<(), ExportError> {
    for (col, column) in (0u16..).zip(columns) {
        let Some(validation) = validation_for(column) else {
            continue;
        };
        // Whole columns below the header, so that rows added in Excel are checked too.
        sheet.add_data_validation(1, col, MAX_DATA_ROWS, col, &validation)?;
    }
    Ok(())
}

/// The Excel validation for a column's rules, where Excel has one: `one_of` becomes a
/// drop-down list, `min`/`max` on a numeric column a number range. Patterns, `required` and
/// `unique` have no Excel equivalent without formulas and are left out.
fn validation_for(column: &Column) -> Option<DataValidation> {
    let rules = &column.rules;
    if let Some(options) = rules.one_of.as_ref().filter(|o| !o.is_empty()) {
        // Excel caps the list at 255 characters; a longer list gets no validation.
        return DataValidation::new().allow_list_strings(options).ok();
    }
    if !column.ty.is_numeric() || (rules.min.is_none() && rules.max.is_none()) {
        return None;
    }
    // Percent cells hold the fraction (12.5 % is 0.125).
    let scale = |d: Decimal| {
        let d = if column.ty == ColumnType::Percent {
            d.checked_div(Decimal::ONE_HUNDRED)?
        } else {
            d
        };
        d.to_f64()
    };
    let rule = match (rules.min.map(scale), rules.max.map(scale)) {
        (Some(Some(min)), Some(Some(max))) => DataValidationRule::Between(min, max),
        (Some(Some(min)), None) => DataValidationRule::GreaterThanOrEqualTo(min),
        (None, Some(Some(max))) => DataValidationRule::LessThanOrEqualTo(max),
        _ => return None,
    };
    let message = match (rules.min, rules.max) {
        (Some(min), Some(max)) => format!("Between {min} and {max}"),
        (Some(min), None) => format!("At least {min}"),
        (None, Some(max)) => format!("At most {max}"),
        (None, None) => return None,
    };
    let validation = DataValidation::new()
        .allow_decimal_number(rule)
        .set_error_message(&message)
        .ok()?;
    Some(validation)
}

fn about_sheet(columns: &[Column], meta: &XlsxMeta, rows: u64) -> Result<Worksheet, ExportError> {
    let bold = Format::new().set_bold();
    let when = Format::new().set_num_format("yyyy-mm-dd hh:mm:ss \"UTC\"");
    let mut sheet = Worksheet::new();
    sheet.set_name("About")?;
    sheet.set_column_width(0, 16)?;
    sheet.set_column_width(1, 40)?;
    sheet.set_column_width(2, 50)?;
    sheet.set_column_width(3, 40)?;

    let labels = [
        "Title",
        "Source",
        "Version",
        "Exported at",
        "Rows",
        "Columns",
    ];
    for (row, label) in (0u32..).zip(labels) {
        sheet.write_string_with_format(row, 0, label, &bold)?;
    }
    sheet.write_string(0, 1, truncate(&meta.title))?;
    sheet.write_string(1, 1, truncate(&meta.source))?;
    if let Some(version) = meta.version {
        sheet.write_number(2, 1, f64::from(version))?;
    }
    sheet.write_datetime_with_format(3, 1, meta.exported_at.naive_utc(), &when)?;
    sheet.write_number(4, 1, rows as f64)?;
    sheet.write_number(5, 1, columns.len() as f64)?;

    let header_row = 7;
    for (col, label) in (0u16..).zip(["Column", "Type", "Description", "Rules"]) {
        sheet.write_string_with_format(header_row, col, label, &bold)?;
    }
    for (row, column) in (header_row + 1..).zip(columns) {
        sheet.write_string(row, 0, truncate(&column.name))?;
        sheet.write_string(row, 1, column.ty.as_str())?;
        if let Some(description) = &column.description {
            sheet.write_string(row, 2, truncate(description))?;
        }
        if !column.rules.is_empty() {
            let rules = serde_json::to_string(&column.rules)?;
            sheet.write_string(row, 3, truncate(&rules))?;
        }
    }
    Ok(sheet)
}
