//! XLSX export with rust_xlsxwriter in constant-memory mode: a data sheet with a bold, frozen
//! header and typed cells, and an "About" sheet with the export's metadata and the columns.
//! A template's styles and layout ([`XlsxOptions::for_template`]) add title rows, a start cell
//! other than A1, header colours, number formats, widths, alignment, conditional formats and a
//! totals row; without one the output is the plain layout.
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
//! The rows are written strictly top-down: title rows, header, data, totals. The totals row of
//! a table is the table's own (its `totalsRowFunction`s, so Excel's drop-down works): the table
//! puts its formulas in rust_xlsxwriter's write-ahead buffer, and the writer writes them again
//! with the column's number format once the data has reached that row. In a table they are
//! `SUBTOTAL(109,Table1[Net])`: the table named, as LibreOffice needs (it answers `#NAME?` to
//! the bare `[Net]` Excel writes); without a table, `SUBTOTAL` over the data range.
//!
//! Every total carries its value as the formula's cached result, computed from the numbers the
//! writer put in the cells while the rows streamed past: LibreOffice does not
//! recalculate an XLSX file on opening by default, and previewers never do, so a formula
//! without a result shows 0 there.
//!
//! Hyperlinks are kept in memory by rust_xlsxwriter until the file is closed, and Excel
//! accepts at most 65,530 per sheet: URLs past that number are written as plain text.

use std::collections::HashMap;
use std::io::Write;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use rust_xlsxwriter::{
    Color, ConditionalFormatBlank, ConditionalFormatCell, ConditionalFormatCellRule,
    ConditionalFormatText, ConditionalFormatTextRule, ConditionalFormatValue, DataValidation,
    DataValidationRule, Format, FormatAlign, Formula, IntoExcelDateTime, Table, TableColumn,
    TableFunction, Url, Workbook, Worksheet,
};

use crate::table::{Column, ColumnType, Money, Value};
use crate::template::{
    ABOUT_SHEET_NAME, Align, CellStyle, ColumnStyle, CompareValue, Condition, HeaderStyle, Layout,
    Resolved, SHEET_COLUMNS, SHEET_ROWS, TotalFunction, parse_color,
};

use super::{ExportError, check_width};

/// rows × columns above which no Excel table object is added (see the module docs).
pub const DEFAULT_TABLE_CELL_LIMIT: u64 = 200_000;
/// Rows read to size the columns.
pub const WIDTH_SAMPLE_ROWS: usize = 1000;
const MIN_WIDTH: usize = 8;
const MAX_WIDTH: usize = 60;
/// Excel's limits: characters per cell, hyperlinks per sheet.
const MAX_CELL_CHARS: usize = 32_767;
const MAX_HYPERLINKS: u32 = 65_530;
/// Excel keeps 15 significant digits: larger integers are written as text to stay exact.
const MAX_EXACT_INTEGER: i64 = 999_999_999_999_999;
/// Distinct currency formats before falling back to a plain amount format.
const MAX_CURRENCY_FORMATS: usize = 64;
/// The label of the totals row, in the first column without a total.
const TOTAL_LABEL: &str = "Total";
/// The name of the Excel table, which its totals name in their references.
const TABLE_NAME: &str = "Table1";
const TITLE_FONT_SIZE: u8 = 14;

/// What the "About" sheet says about the export.
#[derive(Clone, Debug, PartialEq)]
pub struct XlsxMeta {
    pub title: String,
    /// Where the data came from (a document name, a URL, a prompt summary).
    pub source: String,
    pub version: Option<i32>,
    pub exported_at: DateTime<Utc>,
}

/// How to write an XLSX file. The default is the plain layout: a "Data" sheet from A1 with a
/// bold frozen header, a filter and an About sheet.
#[derive(Clone, Debug, PartialEq)]
pub struct XlsxOptions {
    /// Add an Excel table object only when rows × columns is at most this (see the module docs).
    pub table_cell_limit: u64,
    /// Name of the data sheet (Excel: at most 31 characters, none of `[]:*?/\`), unless
    /// `layout.sheet_name` gives one.
    pub sheet_name: String,
    /// Title rows, start cell, header style, frozen panes, filter, About sheet.
    pub layout: Layout,
    /// Number formats, widths, alignment, totals and conditional formats, one per column (in
    /// the order of the `columns` given to [`write_xlsx`]); empty: the types' defaults.
    pub column_styles: Vec<ColumnStyle>,
    /// Deflate level of the zip container, 1 (fastest) to 9 (smallest); see
    /// [`DEFAULT_COMPRESSION_LEVEL`].
    pub compression_level: u8,
}

/// The deflate level files are written with unless told otherwise. Measured on 1,000,000
/// rows × 10 columns (`bench/xlsx.sh`): level 3 writes the file in about two thirds of level
/// 6's time for a file about 10 % larger; level 1 is faster still but larger again.
pub const DEFAULT_COMPRESSION_LEVEL: u8 = 3;

impl Default for XlsxOptions {
    fn default() -> Self {
        Self {
            table_cell_limit: DEFAULT_TABLE_CELL_LIMIT,
            sheet_name: "Data".to_owned(),
            layout: Layout::default(),
            column_styles: Vec::new(),
            compression_level: DEFAULT_COMPRESSION_LEVEL,
        }
    }
}

impl XlsxOptions {
    /// The styles and layout of a resolved template; write `resolved.columns` with it.
    pub fn for_template(resolved: &Resolved) -> Self {
        Self {
            sheet_name: resolved.layout.sheet_name().to_owned(),
            layout: resolved.layout.clone(),
            column_styles: resolved.styles.clone(),
            ..Self::default()
        }
    }
}

/// Where the block of header, data and totals sits.
struct Block {
    header_row: u32,
    first_col: u16,
    width: u16,
    /// Data rows that fit between the header and the sheet's end (less one for the totals).
    max_rows: u32,
}

impl Block {
    fn new(columns: usize, layout: &Layout, totals: bool) -> Result<Self, ExportError> {
        let start = layout.start().map_err(ExportError::Layout)?;
        let room = SHEET_COLUMNS - start.col;
        let width = u16::try_from(columns).ok().filter(|w| *w <= room).ok_or(
            ExportError::TooLargeForXlsx {
                max_rows: 0,
                max_columns: room,
            },
        )?;
        let header_row = start.row.saturating_add(layout.header_offset());
        let max_rows = SHEET_ROWS
            .saturating_sub(header_row)
            .saturating_sub(1 + u32::from(totals));
        let block = Self {
            header_row,
            first_col: start.col,
            width,
            max_rows,
        };
        if header_row >= SHEET_ROWS {
            return Err(block.too_large());
        }
        Ok(block)
    }

    fn col(&self, index: u16) -> u16 {
        self.first_col + index
    }

    fn last_col(&self) -> u16 {
        self.first_col + self.width.saturating_sub(1)
    }

    fn first_data_row(&self) -> u32 {
        self.header_row + 1
    }

    fn too_large(&self) -> ExportError {
        ExportError::TooLargeForXlsx {
            max_rows: self.max_rows,
            max_columns: SHEET_COLUMNS - self.first_col,
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
    let layout = &options.layout;
    let plain = ColumnStyle::default();
    if !options.column_styles.is_empty() && options.column_styles.len() != columns.len() {
        return Err(ExportError::Layout(format!(
            "{} column styles for {} columns",
            options.column_styles.len(),
            columns.len()
        )));
    }
    let styles: Vec<&ColumnStyle> = (0..columns.len())
        .map(|i| options.column_styles.get(i).unwrap_or(&plain))
        .collect();
    let has_totals = styles.iter().any(|s| s.total.is_some());
    let block = Block::new(columns.len(), layout, has_totals)?;
    let width = block.width;

    let mut workbook = Workbook::new();
    workbook.set_zip_compression_level(options.compression_level.clamp(1, 9));
    let mut sheet = workbook.new_worksheet_with_constant_memory()?;
    sheet.set_name(layout.sheet_name.as_deref().unwrap_or(&options.sheet_name))?;

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

    set_widths(&mut sheet, &block, columns, &styles, &buffered)?;
    write_titles(&mut sheet, layout)?;

    // No rows, no totals: there is nothing to add up.
    let totals = has_totals && !buffered.is_empty();
    // The first column without a function carries the label.
    let label_col = styles.iter().position(|s| s.total.is_none());
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
            .zip(&styles)
            .enumerate()
            .map(|(i, (c, style))| {
                let column = TableColumn::new().set_header(&c.name);
                match style.total {
                    Some(f) => column.set_total_function(table_function(f)),
                    None if totals && label_col == Some(i) => column.set_total_label(TOTAL_LABEL),
                    None => column,
                }
            })
            .collect();
        let mut table = Table::new()
            .set_name(TABLE_NAME)
            .set_columns(&table_columns);
        if totals {
            table = table.set_total_row(true);
        }
        if !layout.autofilter {
            table = table.set_autofilter(false);
        }
        let data_rows = u32::try_from(buffered.len()).map_err(|_| block.too_large())?;
        let last_row = block
            .header_row
            .saturating_add(data_rows)
            .saturating_add(u32::from(totals));
        // Excel refuses some header sets (names equal but for case): fall back to a filter.
        has_table = sheet
            .add_table(
                block.header_row,
                block.first_col,
                last_row,
                block.last_col(),
                &table,
            )
            .is_ok();
    }

    // After add_table, which wrote the same names without a format.
    let header_format = header_format(&layout.header);
    for (i, column) in (0u16..).zip(columns) {
        sheet.write_string_with_format(
            block.header_row,
            block.col(i),
            truncate(&column.name),
            &header_format,
        )?;
    }
    let freeze_row = if layout.freeze_header {
        block.first_data_row()
    } else {
        0
    };
    let freeze_col = if layout.freeze_columns > 0 {
        block
            .first_col
            .saturating_add(layout.freeze_columns)
            .min(SHEET_COLUMNS - 1)
    } else {
        0
    };
    if freeze_row > 0 || freeze_col > 0 {
        sheet.set_freeze_panes(freeze_row, freeze_col)?;
    }

    let column_formats: Vec<Option<Box<ColumnFormats>>> =
        styles.iter().map(|s| ColumnFormats::new(s)).collect();
    let defaults = Formats::new();
    let mut carried = Vec::with_capacity(columns.len());
    for (i, (column, styled)) in (0u16..).zip(columns.iter().zip(&column_formats)) {
        let carry = Carried::of(column.ty, styled.is_some());
        if let Some(kind) = carry {
            let typed = styled.as_deref().map_or(&defaults, |s| &s.typed);
            let format = match kind {
                Carried::Integer => &typed.integer,
                Carried::Decimal => &typed.decimal,
                Carried::Percent => &typed.percent,
                Carried::Date => &typed.date,
                Carried::Datetime => &typed.datetime,
                Carried::Plain => styled.as_deref().map_or(&defaults.integer, |s| &s.plain),
            };
            sheet.set_column_format(block.col(i), format)?;
        }
        carried.push(carry);
    }
    let mut writer = CellWriter {
        defaults,
        carried,
        columns: column_formats,
        currency_formats: HashMap::new(),
        hyperlinks: 0,
        block: &block,
        totals: styles
            .iter()
            .map(|s| s.total.map(|_| Totals::default()))
            .collect(),
    };
    let mut count: u32 = 0;
    for row in buffered {
        writer.write_row(&mut sheet, &mut count, &row)?;
    }
    for row in rows {
        check_width(columns, &row, u64::from(count))?;
        writer.write_row(&mut sheet, &mut count, &row)?;
    }
    let last_data_row = block.header_row + count;

    if totals {
        write_totals(
            &mut sheet,
            &block,
            columns,
            &styles,
            &writer.totals,
            label_col,
            count,
            has_table,
        )?;
    }
    if !has_table && layout.autofilter && width > 0 {
        sheet.autofilter(
            block.header_row,
            block.first_col,
            last_data_row,
            block.last_col(),
        )?;
    }
    // Whole columns below the header, so that rows added in Excel are checked too; only the
    // data when a totals row sits under it.
    let validated_to = if totals {
        last_data_row
    } else {
        SHEET_ROWS - 1
    };
    add_validations(&mut sheet, &block, columns, validated_to)?;
    if count > 0 {
        add_conditional_formats(&mut sheet, &block, columns, &styles, last_data_row)?;
    }

    workbook.push_worksheet(sheet);
    if layout.about_sheet {
        workbook.push_worksheet(about_sheet(columns, meta, u64::from(count))?);
    }
    workbook.save_to_writer(out)?;
    Ok(u64::from(count))
}

/// The title rows above the header, from the start cell: the first bold and larger.
fn write_titles(sheet: &mut Worksheet, layout: &Layout) -> Result<(), ExportError> {
    let Ok(start) = layout.start() else {
        return Ok(());
    };
    let first = Format::new().set_bold().set_font_size(TITLE_FONT_SIZE);
    for (row, title) in (start.row..).zip(&layout.title_rows) {
        if row == start.row {
            sheet.write_string_with_format(row, start.col, truncate(title), &first)?;
        } else {
            sheet.write_string(row, start.col, truncate(title))?;
        }
    }
    Ok(())
}

fn header_format(style: &HeaderStyle) -> Format {
    let mut format = with_style(
        Format::new(),
        &CellStyle {
            bold: style.bold,
            italic: style.italic,
            font_color: style.font_color.clone(),
            background: style.background.clone(),
        },
    );
    if style.wrap {
        format = format.set_text_wrap();
    }
    format
}

/// Font and fill added to a format; colours that do not parse are left out (a checked
/// template has none).
fn with_style(mut format: Format, style: &CellStyle) -> Format {
    if style.bold {
        format = format.set_bold();
    }
    if style.italic {
        format = format.set_italic();
    }
    if let Some(rgb) = style.font_color.as_deref().and_then(parse_color) {
        format = format.set_font_color(Color::RGB(rgb));
    }
    if let Some(rgb) = style.background.as_deref().and_then(parse_color) {
        format = format.set_background_color(Color::RGB(rgb));
    }
    format
}

/// Alignment and wrapping of a column, without a number format.
fn aligned(style: &ColumnStyle) -> Format {
    let mut format = Format::new();
    if let Some(align) = style.format.align {
        format = format.set_align(match align {
            Align::Left => FormatAlign::Left,
            Align::Center => FormatAlign::Center,
            Align::Right => FormatAlign::Right,
        });
    }
    if style.format.wrap {
        format = format.set_text_wrap();
    }
    format
}

fn table_function(function: TotalFunction) -> TableFunction {
    match function {
        TotalFunction::Sum => TableFunction::Sum,
        TotalFunction::Average => TableFunction::Average,
        TotalFunction::Count => TableFunction::Count,
        TotalFunction::CountNums => TableFunction::CountNumbers,
        TotalFunction::Min => TableFunction::Min,
        TotalFunction::Max => TableFunction::Max,
    }
}

/// What a column's cells add up to, as a spreadsheet computes its `SUBTOTAL`s: over the
/// numbers written (dates as their serial numbers, percents as fractions; text, booleans and
/// integers written as text left out), and counting every non-empty cell for `count`.
#[derive(Clone, Debug, Default, PartialEq)]
struct Totals {
    sum: f64,
    numbers: u64,
    non_empty: u64,
    min: Option<f64>,
    max: Option<f64>,
}

impl Totals {
    fn add(&mut self, written: Written) {
        match written {
            Written::Empty => {}
            Written::Other => self.non_empty += 1,
            Written::Number(x) => {
                self.non_empty += 1;
                self.numbers += 1;
                self.sum += x;
                self.min = Some(self.min.map_or(x, |m| m.min(x)));
                self.max = Some(self.max.map_or(x, |m| m.max(x)));
            }
        }
    }

    /// The function's value, as the text of a cached formula result (`#DIV/0!` for the average
    /// of no numbers, as Excel and LibreOffice show it).
    fn result(&self, function: TotalFunction) -> String {
        let number = match function {
            TotalFunction::Sum => self.sum,
            TotalFunction::Average if self.numbers == 0 => return "#DIV/0!".to_owned(),
            TotalFunction::Average => self.sum / self.numbers as f64,
            TotalFunction::Count => self.non_empty as f64,
            TotalFunction::CountNums => self.numbers as f64,
            TotalFunction::Min => self.min.unwrap_or(0.0),
            TotalFunction::Max => self.max.unwrap_or(0.0),
        };
        if number.is_finite() {
            number.to_string()
        } else {
            "#NUM!".to_owned()
        }
    }
}

/// What one cell received, for the totals.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Written {
    Empty,
    Number(f64),
    /// Text, a boolean, a link: counted by `count` only.
    Other,
}

/// The totals row, right under the data, each formula with its value as the cached result. In
/// a table the formulas are the table's functions over structured references naming the table
/// (escaped as rust_xlsxwriter escapes them), written again here with a number format;
/// elsewhere `SUBTOTAL` over the column's data range.
#[expect(
    clippy::too_many_arguments,
    reason = "the parts of one block, passed as they are"
)]
fn write_totals(
    sheet: &mut Worksheet,
    block: &Block,
    columns: &[Column],
    styles: &[&ColumnStyle],
    totals: &[Option<Totals>],
    label_col: Option<usize>,
    count: u32,
    in_table: bool,
) -> Result<(), ExportError> {
    let row = block.header_row + count + 1;
    let label = Format::new().set_bold();
    for (i, (column, style)) in (0u16..).zip(columns.iter().zip(styles)) {
        let col = block.col(i);
        match style.total {
            Some(function) => {
                let range = if in_table {
                    format!("{TABLE_NAME}[{}]", structured_name(&column.name))
                } else {
                    rust_xlsxwriter::utility::cell_range(
                        block.first_data_row(),
                        col,
                        block.header_row + count,
                        col,
                    )
                };
                let result = totals
                    .get(usize::from(i))
                    .and_then(Option::as_ref)
                    .map_or_else(|| "0".to_owned(), |t| t.result(function));
                let formula =
                    Formula::new(format!("SUBTOTAL({},{range})", function.subtotal_code()))
                        .set_result(result);
                let format = total_format(column.ty, function, style);
                sheet.write_formula_with_format(row, col, formula, &format)?;
            }
            None if label_col == Some(usize::from(i)) => {
                sheet.write_string_with_format(row, col, TOTAL_LABEL, &label)?;
            }
            None => {}
        }
    }
    Ok(())
}

/// A column name inside a structured reference (`[Name]`), escaped as rust_xlsxwriter does
/// for a table's total functions.
fn structured_name(name: &str) -> String {
    name.replace('\'', "''")
        .replace('#', "'#")
        .replace(']', "']")
        .replace('[', "'[")
}

/// The number format of a total: counts are whole numbers, the rest take the column's format
/// (a currency column's plain amount format, as the currencies of its cells may differ).
fn total_format(ty: ColumnType, function: TotalFunction, style: &ColumnStyle) -> Format {
    let by_type = match (ty, function) {
        (_, TotalFunction::Count | TotalFunction::CountNums) => Some("#,##0"),
        (ColumnType::Integer, TotalFunction::Average) => Some("#,##0.00"),
        (ColumnType::Integer, _) => Some("#,##0"),
        (ColumnType::Decimal | ColumnType::Currency, _) => Some("#,##0.00"),
        (ColumnType::Percent, _) => Some("0.00%"),
        (ColumnType::Date, _) => Some("yyyy-mm-dd"),
        (ColumnType::Datetime, _) => Some("yyyy-mm-dd hh:mm:ss"),
        _ => None,
    };
    let code = match function {
        TotalFunction::Count | TotalFunction::CountNums => by_type,
        _ => style.format.number_format.as_deref().or(by_type),
    };
    let format = aligned(style).set_bold();
    match code {
        Some(code) => format.set_num_format(code),
        None => format,
    }
}

/// Each column's conditional formats over its data cells, in the template's order (Excel
/// gives the first its highest priority).
fn add_conditional_formats(
    sheet: &mut Worksheet,
    block: &Block,
    columns: &[Column],
    styles: &[&ColumnStyle],
    last_row: u32,
) -> Result<(), ExportError> {
    let first_row = block.first_data_row();
    for (i, (column, style)) in (0u16..).zip(columns.iter().zip(styles)) {
        let col = block.col(i);
        for conditional in &style.conditional {
            let format = with_style(Format::new(), &conditional.style);
            let value = |v: &CompareValue| condition_value(column.ty, v);
            let cell = |rule: ConditionalFormatCellRule<ConditionalFormatValue>| {
                ConditionalFormatCell::new()
                    .set_rule(rule)
                    .set_format(&format)
            };
            match &conditional.when {
                Condition::GreaterThan { value: v } => {
                    let cf = cell(ConditionalFormatCellRule::GreaterThan(value(v)));
                    sheet.add_conditional_format(first_row, col, last_row, col, &cf)?;
                }
                Condition::GreaterThanOrEqual { value: v } => {
                    let cf = cell(ConditionalFormatCellRule::GreaterThanOrEqualTo(value(v)));
                    sheet.add_conditional_format(first_row, col, last_row, col, &cf)?;
                }
                Condition::LessThan { value: v } => {
                    let cf = cell(ConditionalFormatCellRule::LessThan(value(v)));
                    sheet.add_conditional_format(first_row, col, last_row, col, &cf)?;
                }
                Condition::LessThanOrEqual { value: v } => {
                    let cf = cell(ConditionalFormatCellRule::LessThanOrEqualTo(value(v)));
                    sheet.add_conditional_format(first_row, col, last_row, col, &cf)?;
                }
                Condition::EqualTo { value: v } => {
                    let cf = cell(ConditionalFormatCellRule::EqualTo(value(v)));
                    sheet.add_conditional_format(first_row, col, last_row, col, &cf)?;
                }
                Condition::NotEqualTo { value: v } => {
                    let cf = cell(ConditionalFormatCellRule::NotEqualTo(value(v)));
                    sheet.add_conditional_format(first_row, col, last_row, col, &cf)?;
                }
                Condition::Between { min, max } => {
                    let cf = cell(ConditionalFormatCellRule::Between(value(min), value(max)));
                    sheet.add_conditional_format(first_row, col, last_row, col, &cf)?;
                }
                Condition::Contains { text } => {
                    let cf = ConditionalFormatText::new()
                        .set_rule(ConditionalFormatTextRule::Contains(text.clone()))
                        .set_format(&format);
                    sheet.add_conditional_format(first_row, col, last_row, col, &cf)?;
                }
                Condition::Blank {} => {
                    let cf = ConditionalFormatBlank::new().set_format(&format);
                    sheet.add_conditional_format(first_row, col, last_row, col, &cf)?;
                }
                Condition::NotBlank {} => {
                    let cf = ConditionalFormatBlank::new().invert().set_format(&format);
                    sheet.add_conditional_format(first_row, col, last_row, col, &cf)?;
                }
            }
        }
    }
    Ok(())
}

/// A value to compare a column's cells with, as the cells hold it: percent as a fraction,
/// dates as serial numbers, numbers written as text as numbers; other text as a string.
fn condition_value(ty: ColumnType, value: &CompareValue) -> ConditionalFormatValue {
    let number = |x: f64| ConditionalFormatValue::from(x);
    match value {
        CompareValue::Boolean(b) => ConditionalFormatValue::from(*b),
        CompareValue::Number(x) if ty == ColumnType::Percent => number(x / 100.0),
        CompareValue::Number(x) => number(*x),
        // An empty string compares with empty cells.
        CompareValue::Text(s) if s.is_empty() => ConditionalFormatValue::from("\"\""),
        CompareValue::Text(s) => match Value::parse(s, ty) {
            Ok(Value::Date(d)) if excel_year(d) => ConditionalFormatValue::from(d),
            Ok(Value::Datetime(dt)) if excel_year(dt.date()) => ConditionalFormatValue::from(dt),
            Ok(Value::Boolean(b)) => ConditionalFormatValue::from(b),
            Ok(Value::Percent(p)) => {
                match p.checked_div(Decimal::ONE_HUNDRED).and_then(|x| x.to_f64()) {
                    Some(x) => number(x),
                    None => ConditionalFormatValue::from(s.as_str()),
                }
            }
            Ok(
                v @ (Value::Integer(_) | Value::Decimal(_) | Value::Float(_) | Value::Currency(_)),
            ) => match v.as_f64() {
                Some(x) => number(x),
                None => ConditionalFormatValue::from(s.as_str()),
            },
            _ => ConditionalFormatValue::from(s.as_str()),
        },
    }
}

/// The type defaults of an unstyled column.
struct Formats {
    integer: Format,
    decimal: Format,
    percent: Format,
    date: Format,
    datetime: Format,
}

impl Formats {
    fn new() -> Self {
        Self {
            integer: Format::new().set_num_format("#,##0"),
            decimal: Format::new().set_num_format("#,##0.00"),
            percent: Format::new().set_num_format("0.00%"),
            date: Format::new().set_num_format("yyyy-mm-dd"),
            datetime: Format::new().set_num_format("yyyy-mm-dd hh:mm:ss"),
        }
    }
}

/// The formats of a column with a number format, alignment or wrapping, built once.
struct ColumnFormats {
    typed: Formats,
    /// Floats, booleans, text, e-mails and integers too large for a number.
    plain: Format,
    /// Hyperlinks keep the link style.
    link: Format,
    /// With a number format, every currency's amount takes it; otherwise each currency gets
    /// its own format, built on `aligned`.
    currency: Option<Format>,
    aligned: Format,
}

impl ColumnFormats {
    /// `None` for a column without a number format, alignment or wrapping: it uses the shared
    /// defaults (and so costs nothing for tables that are thousands of columns wide).
    fn new(style: &ColumnStyle) -> Option<Box<Self>> {
        let f = &style.format;
        if f.number_format.is_none() && f.align.is_none() && !f.wrap {
            return None;
        }
        let aligned = aligned(style);
        let custom = f.number_format.as_deref();
        let with = |default: &str| aligned.clone().set_num_format(custom.unwrap_or(default));
        Some(Box::new(Self {
            typed: Formats {
                integer: with("#,##0"),
                decimal: with("#,##0.00"),
                percent: with("0.00%"),
                date: with("yyyy-mm-dd"),
                datetime: with("yyyy-mm-dd hh:mm:ss"),
            },
            plain: match custom {
                Some(code) => aligned.clone().set_num_format(code),
                None => aligned.clone(),
            },
            link: aligned.clone().set_hyperlink(),
            currency: custom.map(|code| aligned.clone().set_num_format(code)),
            aligned,
        }))
    }
}

/// The one of a column's formats that its column carries (`set_column_format`), so that its
/// cells are written without a format of their own and get the column's: rust_xlsxwriter
/// hashes every cell's `Format` to find its index, a tenth of a large export's time. The cells'
/// XML is the same (each names the column's style).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Carried {
    Integer,
    Decimal,
    Percent,
    Date,
    Datetime,
    Plain,
}

impl Carried {
    fn of(ty: ColumnType, styled: bool) -> Option<Self> {
        match ty {
            ColumnType::Integer => Some(Self::Integer),
            ColumnType::Decimal => Some(Self::Decimal),
            ColumnType::Percent => Some(Self::Percent),
            ColumnType::Date => Some(Self::Date),
            ColumnType::Datetime => Some(Self::Datetime),
            // Amounts take a format per currency; unstyled plain cells have none to carry.
            ColumnType::Currency => None,
            ColumnType::Float
            | ColumnType::Boolean
            | ColumnType::Text
            | ColumnType::Url
            | ColumnType::Email => styled.then_some(Self::Plain),
        }
    }
}

struct CellWriter<'a> {
    defaults: Formats,
    /// One per column: the format its column carries.
    carried: Vec<Option<Carried>>,
    /// One per column; `None` uses `defaults`.
    columns: Vec<Option<Box<ColumnFormats>>>,
    /// By column (`None` for unstyled ones, which share them) and currency.
    currency_formats: HashMap<(Option<u16>, String), Format>,
    hyperlinks: u32,
    block: &'a Block,
    /// One per column: `Some` for the columns with a total.
    totals: Vec<Option<Totals>>,
}

impl CellWriter<'_> {
    /// Writes the next data row; `count` is the number of data rows already written.
    fn write_row(
        &mut self,
        sheet: &mut Worksheet,
        count: &mut u32,
        row: &[Value],
    ) -> Result<(), ExportError> {
        if *count >= self.block.max_rows {
            return Err(self.block.too_large());
        }
        *count += 1;
        let r = self.block.header_row + *count;
        for (i, cell) in (0u16..).zip(row) {
            let written = self.write(sheet, r, i, cell)?;
            if let Some(Some(totals)) = self.totals.get_mut(usize::from(i)) {
                totals.add(written);
            }
        }
        Ok(())
    }

    /// Writes a cell of column `index` (in the block) at sheet row `row`; says what the cell
    /// holds now, for the totals.
    fn write(
        &mut self,
        sheet: &mut Worksheet,
        row: u32,
        index: u16,
        value: &Value,
    ) -> Result<Written, ExportError> {
        let col = self.block.col(index);
        if let Value::Currency(m) = value {
            let format = self.currency_format(index, m);
            return write_decimal(sheet, row, col, m.amount, Some(&format));
        }
        let styled = self
            .columns
            .get(usize::from(index))
            .and_then(Option::as_deref);
        let f = styled.map_or(&self.defaults, |s| &s.typed);
        let carried = self.carried.get(usize::from(index)).copied().flatten();
        // The format to name in the cell: none when its column carries it.
        let own = |kind: Carried, format| (carried != Some(kind)).then_some(format);
        let plain = styled.and_then(|s| own(Carried::Plain, &s.plain));
        Ok(match value {
            Value::Null => Written::Empty,
            Value::Integer(i) if i.unsigned_abs() <= MAX_EXACT_INTEGER.unsigned_abs() => {
                write_number(
                    sheet,
                    row,
                    col,
                    *i as f64,
                    own(Carried::Integer, &f.integer),
                )?;
                Written::Number(*i as f64)
            }
            Value::Integer(i) => write_text(sheet, row, col, &i.to_string(), plain)?,
            Value::Decimal(d) => {
                write_decimal(sheet, row, col, *d, own(Carried::Decimal, &f.decimal))?
            }
            // No fixed decimals: a float's scale is unknown (1e-9 and 1e9 both happen).
            Value::Float(x) if x.is_finite() => {
                write_number(sheet, row, col, *x, plain)?;
                Written::Number(*x)
            }
            Value::Float(x) => write_text(sheet, row, col, &x.to_string(), plain)?,
            Value::Percent(p) => match p.checked_div(Decimal::ONE_HUNDRED) {
                Some(fraction) => {
                    write_decimal(sheet, row, col, fraction, own(Carried::Percent, &f.percent))?
                }
                None => write_text(sheet, row, col, &value.to_string(), plain)?,
            },
            Value::Boolean(b) => {
                match plain {
                    Some(format) => sheet.write_boolean_with_format(row, col, *b, format)?,
                    None => sheet.write_boolean(row, col, *b)?,
                };
                Written::Other
            }
            Value::Date(d) if excel_year(*d) => {
                match own(Carried::Date, &f.date) {
                    Some(format) => sheet.write_datetime_with_format(row, col, d, format)?,
                    None => sheet.write_datetime(row, col, d)?,
                };
                Written::Number(d.to_excel_serial_date())
            }
            Value::Datetime(dt) if excel_year(dt.date()) => {
                match own(Carried::Datetime, &f.datetime) {
                    Some(format) => sheet.write_datetime_with_format(row, col, dt, format)?,
                    None => sheet.write_datetime(row, col, dt)?,
                };
                Written::Number(dt.to_excel_serial_date())
            }
            // Excel dates start in 1900: earlier ones stay readable as ISO text.
            Value::Date(_) | Value::Datetime(_) => {
                write_text(sheet, row, col, &value.to_string(), plain)?
            }
            Value::Url(s) => {
                let linked = self.hyperlinks < MAX_HYPERLINKS
                    && match styled {
                        Some(styled) => sheet
                            .write_url_with_format(row, col, Url::new(s.as_str()), &styled.link)
                            .is_ok(),
                        None => sheet.write_url(row, col, Url::new(s.as_str())).is_ok(),
                    };
                if linked {
                    self.hyperlinks += 1;
                    Written::Other
                } else {
                    // Not a link Excel accepts (scheme, length) or over the sheet's limit.
                    write_text(sheet, row, col, s, plain)?
                }
            }
            Value::Email(s) | Value::Text(s) => write_text(sheet, row, col, s, plain)?,
            Value::Currency(_) => Written::Empty,
        })
    }

    fn currency_format(&mut self, index: u16, money: &Money) -> Format {
        let styled = self
            .columns
            .get(usize::from(index))
            .and_then(Option::as_deref);
        if let Some(format) = styled.and_then(|s| s.currency.as_ref()) {
            return format.clone();
        }
        let key = (styled.map(|_| index), money.currency.clone());
        if let Some(format) = self.currency_formats.get(&key) {
            return format.clone();
        }
        let base = styled.map_or_else(Format::new, |s| s.aligned.clone());
        // The code or symbol as a quoted literal after the amount: `#,##0.00 "EUR"`.
        let label: String = money
            .currency
            .chars()
            .filter(|c| !matches!(c, '"' | '\\'))
            .take(16)
            .collect();
        let format = if label.is_empty() {
            base.set_num_format("#,##0.00")
        } else {
            base.set_num_format(format!("#,##0.00 \"{label}\""))
        };
        if self.currency_formats.len() < MAX_CURRENCY_FORMATS {
            self.currency_formats.insert(key, format.clone());
        }
        format
    }
}

fn write_text(
    sheet: &mut Worksheet,
    row: u32,
    col: u16,
    text: &str,
    format: Option<&Format>,
) -> Result<Written, ExportError> {
    match format {
        Some(format) => sheet.write_string_with_format(row, col, truncate(text), format)?,
        None => sheet.write_string(row, col, truncate(text))?,
    };
    Ok(Written::Other)
}

fn write_number(
    sheet: &mut Worksheet,
    row: u32,
    col: u16,
    x: f64,
    format: Option<&Format>,
) -> Result<(), ExportError> {
    match format {
        Some(format) => sheet.write_number_with_format(row, col, x, format)?,
        None => sheet.write_number(row, col, x)?,
    };
    Ok(())
}

fn write_decimal(
    sheet: &mut Worksheet,
    row: u32,
    col: u16,
    value: Decimal,
    format: Option<&Format>,
) -> Result<Written, ExportError> {
    // A decimal the sheet's f64 cannot hold as written (over 15 digits) is text, not rounded.
    Ok(match crate::exact::spreadsheet_number(value) {
        Some(x) => {
            write_number(sheet, row, col, x, format)?;
            Written::Number(x)
        }
        None => {
            sheet.write_string(row, col, value.to_string())?;
            Written::Other
        }
    })
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

/// Widths from the header and the sample rows' text, in characters, within 8..=60, unless
/// the column's style gives one.
fn set_widths(
    sheet: &mut Worksheet,
    block: &Block,
    columns: &[Column],
    styles: &[&ColumnStyle],
    sample: &[Vec<Value>],
) -> Result<(), ExportError> {
    for (col, (i, column)) in (0u16..).zip(columns.iter().enumerate()) {
        if let Some(width) = styles.get(i).and_then(|s| s.format.width) {
            sheet.set_column_width(block.col(col), width)?;
            continue;
        }
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
        sheet.set_column_width(block.col(col), width as f64)?;
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

/// Each column's validation from its rules, from the first data row to `last_row`.
fn add_validations(
    sheet: &mut Worksheet,
    block: &Block,
    columns: &[Column],
    last_row: u32,
) -> Result<(), ExportError> {
    for (col, column) in (0u16..).zip(columns) {
        let Some(validation) = validation_for(column) else {
            continue;
        };
        let col = block.col(col);
        sheet.add_data_validation(block.first_data_row(), col, last_row, col, &validation)?;
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
    sheet.set_name(ABOUT_SHEET_NAME)?;
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
