//! Templates: how a table becomes a sheet. A template maps the table's columns to output
//! columns (order, renames, constants, exclusions), formats them (number formats, widths,
//! alignment, conditional formats, totals), sets their validation rules and lays out the sheet
//! (name, title rows, start cell, header style, frozen panes, filter, About sheet).
//!
//! Templates are JSON written by users, stored by the server and read from files by the CLI:
//! unknown fields are rejected, everything optional has a default, and [`Template::check`]
//! reports every static problem with sizes bounded. Styling is kept in terms both the XLSX
//! writer and Google Sheets can express: `#RRGGBB` colours, Excel-style number format codes,
//! widths in characters, left/center/right alignment.
//!
//! Use: `check` the template, [`Template::resolve`] it against the table's columns, then give
//! a writer `resolved.columns` and the rows mapped by [`Resolved::map_row`]. CSV and JSON apply
//! only that mapping; the XLSX writer also applies `resolved.styles` and `resolved.layout`
//! (`export::XlsxOptions::for_template`).
//!
//! A full template:
//!
//! ```json
//! {
//!   "columns": [
//!     {"source": "name", "header": "Customer", "format": {"width": 30}},
//!     {"source": "amount", "format": {"number_format": "#,##0.00", "align": "right"},
//!      "rules": {"min": "0"}, "total": "sum",
//!      "conditional": [{"when": {"op": "greater_than", "value": 1000},
//!                       "style": {"bold": true, "background": "#FFC7CE"}}]},
//!     {"header": "Region", "constant": "EMEA"}
//!   ],
//!   "exclude": ["internal id"],
//!   "layout": {"sheet_name": "Invoices", "title_rows": ["Invoices 2024"], "start_cell": "B2",
//!              "header": {"background": "#1F4E78", "font_color": "#FFFFFF"},
//!              "freeze_columns": 1}
//! }
//! ```

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::table::{Column, ColumnType, Rules, Value, find_column, normalize_name};

/// Output columns a template may list.
pub const MAX_COLUMNS: usize = 1000;
/// Entries of `exclude`.
pub const MAX_EXCLUDED: usize = 1000;
pub const MAX_TITLE_ROWS: usize = 10;
pub const MAX_CONDITIONAL_FORMATS: usize = 20;
/// Characters in any free text of a template (names, titles, constants, patterns…).
pub const MAX_TEXT_CHARS: usize = 1000;
/// Characters in an output header: Excel's limit for a table column name.
pub const MAX_HEADER_CHARS: usize = 255;
/// Characters in a number format code: Excel's limit.
pub const MAX_NUMBER_FORMAT_CHARS: usize = 255;
/// Entries of a `one_of` rule.
pub const MAX_ONE_OF: usize = 1000;
/// Column width in characters: Excel's limit.
pub const MAX_WIDTH: f64 = 255.0;
/// Rows and columns of a worksheet (Excel's limits; Google Sheets' are lower in total cells).
pub const SHEET_ROWS: u32 = 1_048_576;
pub const SHEET_COLUMNS: u16 = 16_384;
pub const DEFAULT_SHEET_NAME: &str = "Data";
/// The sheet with the export's metadata, written when `layout.about_sheet` is on.
pub const ABOUT_SHEET_NAME: &str = "About";

/// A template: which columns go out, in which order, how they look, and the sheet's layout.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Template {
    /// Output columns in order. Empty: every source column, in table order, unchanged.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<TemplateColumn>,
    /// With a non-empty `columns`: append the source columns not mentioned, after the listed
    /// ones, in table order.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub include_unmapped: bool,
    /// Source column names to leave out of the unmapped ones (with an empty `columns` or
    /// `include_unmapped`). A name the table lacks is ignored.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    pub layout: Layout,
}

/// One output column: a source column of the table or a constant, with its formatting.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TemplateColumn {
    /// Name of the source column: matched as written first, then ignoring case, spaces and
    /// underscores (`table::find_column`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Output header; defaults to the source column's name. Required with `constant`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// The same value on every row: a string, a number or a boolean (`""` gives empty cells).
    /// Give exactly one of `source` and `constant`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub constant: Option<serde_json::Value>,
    /// Type of a constant column (otherwise inferred from the JSON value: strings are text,
    /// whole numbers integers, other numbers decimals, booleans booleans). A source column
    /// keeps its own type: values are never converted.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub ty: Option<ColumnType>,
    #[serde(skip_serializing_if = "ColumnFormat::is_default")]
    pub format: ColumnFormat,
    /// Validation rules of the output column; when given they replace the source column's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules: Option<Rules>,
    /// A totals row under the data gets this function for the column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<TotalFunction>,
    /// Styles applied to the data cells that meet a condition, first match first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditional: Vec<ConditionalFormat>,
}

/// How the cells of a column look.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ColumnFormat {
    /// An Excel-style number format code (`#,##0.00`, `0.0%`, `yyyy-mm-dd`, `@`); replaces
    /// the type's default. Percent cells hold fractions (12.5 % is 0.125), as in both Excel
    /// and Sheets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number_format: Option<String>,
    /// Width in characters (0 hides the column); default: fitted to the first rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub align: Option<Align>,
    /// Wrap long text onto several lines.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub wrap: bool,
}

impl ColumnFormat {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Align {
    Left,
    Center,
    Right,
}

/// The function of a column's cell in the totals row. Spreadsheets compute it with
/// `SUBTOTAL`, so rows hidden by a filter are left out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TotalFunction {
    Sum,
    Average,
    /// Non-empty cells (`COUNTA`).
    Count,
    /// Cells holding numbers (`COUNT`).
    CountNums,
    Min,
    Max,
}

impl TotalFunction {
    /// The `SUBTOTAL` function number that ignores hidden rows (Excel and Google Sheets).
    pub fn subtotal_code(self) -> u16 {
        match self {
            Self::Average => 101,
            Self::CountNums => 102,
            Self::Count => 103,
            Self::Max => 104,
            Self::Min => 105,
            Self::Sum => 109,
        }
    }
}

/// A style applied to the data cells of the column that meet `when`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionalFormat {
    pub when: Condition,
    pub style: CellStyle,
}

/// A condition on a cell's value, tagged by `op`:
/// `{"op": "greater_than", "value": 100}`, `{"op": "between", "min": 1, "max": 9}`,
/// `{"op": "contains", "text": "late"}`, `{"op": "blank"}`.
///
/// Values are in the column's own terms: a number for numeric columns (percent columns in
/// percent: `12.5` is 12.5 %), a date as `"2024-01-31"` for date columns, text otherwise.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    GreaterThan {
        value: CompareValue,
    },
    GreaterThanOrEqual {
        value: CompareValue,
    },
    LessThan {
        value: CompareValue,
    },
    LessThanOrEqual {
        value: CompareValue,
    },
    EqualTo {
        value: CompareValue,
    },
    NotEqualTo {
        value: CompareValue,
    },
    /// Inclusive at both ends.
    Between {
        min: CompareValue,
        max: CompareValue,
    },
    /// The cell's text contains `text`, ignoring case.
    Contains {
        text: String,
    },
    // Empty braces rather than unit variants: serde ignores unknown fields on unit variants
    // of a tagged enum, and `{"op": "blank", "value": 3}` is a mistake worth reporting.
    Blank {},
    NotBlank {},
}

/// A value to compare cells with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CompareValue {
    Boolean(bool),
    Number(f64),
    Text(String),
}

/// Font and fill of a cell.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CellStyle {
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub bold: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub italic: bool,
    /// `#RRGGBB`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub font_color: Option<String>,
    /// `#RRGGBB`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub background: Option<String>,
}

/// Style of the header row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeaderStyle {
    /// On by default.
    pub bold: bool,
    pub italic: bool,
    /// `#RRGGBB`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub font_color: Option<String>,
    /// `#RRGGBB`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub background: Option<String>,
    /// Wrap long headers onto several lines.
    pub wrap: bool,
}

impl Default for HeaderStyle {
    fn default() -> Self {
        Self {
            bold: true,
            italic: false,
            font_color: None,
            background: None,
            wrap: false,
        }
    }
}

/// Where the block (title rows, header, data, totals) sits and how the sheet behaves.
///
/// From the start cell down: the title rows (the first bold and larger), one blank row when
/// there are titles, the header, the data, and the totals row when a column has a total.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Layout {
    /// Name of the data sheet; default `Data`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sheet_name: Option<String>,
    /// Lines written above the header.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub title_rows: Vec<String>,
    /// Top-left cell of the block, `A1` style; default `A1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_cell: Option<String>,
    pub header: HeaderStyle,
    /// Keep everything down to the header in view when scrolling (default on).
    pub freeze_header: bool,
    /// Keep this many of the block's first columns (and the columns left of the block) in
    /// view when scrolling sideways (default 0).
    pub freeze_columns: u16,
    /// Filter buttons on the header (default on).
    pub autofilter: bool,
    /// A second sheet with the export's metadata and the columns (default on).
    pub about_sheet: bool,
}

impl Default for Layout {
    fn default() -> Self {
        Self {
            sheet_name: None,
            title_rows: Vec::new(),
            start_cell: None,
            header: HeaderStyle::default(),
            freeze_header: true,
            freeze_columns: 0,
            autofilter: true,
            about_sheet: true,
        }
    }
}

impl Layout {
    pub fn sheet_name(&self) -> &str {
        self.sheet_name.as_deref().unwrap_or(DEFAULT_SHEET_NAME)
    }

    /// The start cell (`A1` when none is given).
    pub fn start(&self) -> Result<CellRef, String> {
        match &self.start_cell {
            None => Ok(CellRef { row: 0, col: 0 }),
            Some(cell) => cell.parse(),
        }
    }

    /// Rows from the start cell to the header: the title rows and a blank row after them.
    pub fn header_offset(&self) -> u32 {
        match u32::try_from(self.title_rows.len()) {
            Ok(0) => 0,
            Ok(n) => n.saturating_add(1),
            Err(_) => u32::MAX,
        }
    }
}

/// A cell position, 0-based, parsed from `A1` notation (`B3` is row 2, column 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CellRef {
    pub row: u32,
    pub col: u16,
}

impl FromStr for CellRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not a cell like A1 within A1:XFD1048576");
        let split = s.find(|c: char| !c.is_ascii_alphabetic()).ok_or_else(bad)?;
        let (letters, digits) = s.split_at(split);
        if letters.is_empty()
            || letters.len() > 3
            || digits.is_empty()
            || digits.len() > 7
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let col = letters
            .bytes()
            .map(|b| u32::from(b.to_ascii_uppercase() - b'A') + 1)
            .fold(0u32, |n, d| n * 26 + d);
        let row: u32 = digits.parse().map_err(|_| bad())?;
        if col > u32::from(SHEET_COLUMNS) || row == 0 || row > SHEET_ROWS {
            return Err(bad());
        }
        let col = u16::try_from(col - 1).map_err(|_| bad())?;
        Ok(Self { row: row - 1, col })
    }
}

/// `#RRGGBB` as a 24-bit RGB number.
pub fn parse_color(hex: &str) -> Option<u32> {
    let digits = hex.strip_prefix('#')?;
    if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}

impl Template {
    /// Every static problem of the template, each a sentence naming the field; the table is
    /// not needed (see [`Template::resolve`] for what depends on it).
    pub fn check(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if self.columns.len() > MAX_COLUMNS {
            problems.push(format!(
                "columns: at most {MAX_COLUMNS} columns (found {})",
                self.columns.len()
            ));
        }
        if self.exclude.len() > MAX_EXCLUDED {
            problems.push(format!(
                "exclude: at most {MAX_EXCLUDED} names (found {})",
                self.exclude.len()
            ));
        }
        // Past the limits the rest is not checked: the sizes bound the work.
        if !problems.is_empty() {
            return Err(problems);
        }

        let mut headers: HashMap<String, usize> = HashMap::new();
        let mut sources: HashMap<String, usize> = HashMap::new();
        for (i, column) in self.columns.iter().enumerate() {
            check_column(&format!("columns[{i}]"), column, &mut problems);
            if let Some(source) = &column.source {
                sources.entry(normalize_name(source)).or_insert(i);
            }
            let header = column.header.as_ref().or(column.source.as_ref());
            if let Some(header) = header.filter(|h| !h.trim().is_empty()) {
                let key = header.trim().to_lowercase();
                if let Some(first) = headers.get(&key) {
                    problems.push(format!(
                        "columns[{i}].header: `{header}` is already the header of columns[{first}] \
                         (headers must differ other than in case)"
                    ));
                } else {
                    headers.insert(key, i);
                }
            }
        }
        for (i, name) in self.exclude.iter().enumerate() {
            check_text(
                &format!("exclude[{i}]"),
                name,
                MAX_TEXT_CHARS,
                &mut problems,
            );
            if let Some(mapped) = sources.get(&normalize_name(name)) {
                problems.push(format!(
                    "exclude[{i}]: `{name}` is the source of columns[{mapped}]; remove one of them"
                ));
            }
        }
        check_layout(&self.layout, &mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// The output columns for a table with `columns`, or every mapped source column the table
    /// lacks. Meant for a checked template: problems `check` reports are not errors here (a
    /// column with neither source nor constant is skipped, a constant that does not convert is
    /// written as text). Output names are made unique (`Name 2`), as are ids (`c1.2`).
    pub fn resolve(&self, columns: &[Column]) -> Result<Resolved, MissingColumns> {
        let excluded: HashSet<usize> = self
            .exclude
            .iter()
            .filter_map(|name| find_column(columns, name))
            .collect();
        let mut out = Resolved {
            columns: Vec::new(),
            styles: Vec::new(),
            layout: self.layout.clone(),
            sources: Vec::new(),
        };
        if self.columns.is_empty() {
            for (i, column) in columns.iter().enumerate() {
                if !excluded.contains(&i) {
                    out.push(column.clone(), ColumnStyle::default(), Source::Column(i));
                }
            }
            out.make_unique();
            return Ok(out);
        }

        let mut missing = Vec::new();
        let mut mapped = vec![false; columns.len()];
        for (k, t) in self.columns.iter().enumerate() {
            let style = ColumnStyle {
                format: t.format.clone(),
                total: t.total,
                conditional: t.conditional.clone(),
            };
            if let Some(name) = &t.source {
                let Some(i) = find_column(columns, name) else {
                    missing.push(name.clone());
                    continue;
                };
                mapped[i] = true;
                let mut column = columns[i].clone();
                if let Some(header) = &t.header {
                    column.name.clone_from(header);
                }
                if let Some(rules) = &t.rules {
                    column.rules = rules.clone();
                }
                out.push(column, style, Source::Column(i));
            } else if let Some(json) = &t.constant {
                let (value, ty) = constant_value(json, t.ty)
                    .unwrap_or_else(|_| (Value::Text(json.to_string()), ColumnType::Text));
                let mut column = Column::new(
                    format!("const_{k}"),
                    t.header
                        .clone()
                        .unwrap_or_else(|| format!("Column {}", k + 1)),
                    ty,
                );
                column.rules = t.rules.clone().unwrap_or_default();
                out.push(column, style, Source::Constant(value));
            }
        }
        if !missing.is_empty() {
            return Err(MissingColumns { missing });
        }
        if self.include_unmapped {
            for (i, column) in columns.iter().enumerate() {
                if !mapped[i] && !excluded.contains(&i) {
                    out.push(column.clone(), ColumnStyle::default(), Source::Column(i));
                }
            }
        }
        out.make_unique();
        Ok(out)
    }
}

fn check_column(at: &str, c: &TemplateColumn, problems: &mut Vec<String>) {
    match (&c.source, &c.constant) {
        (Some(_), Some(_)) => {
            problems.push(format!("{at}: give either source or constant, not both"));
        }
        (None, None) => problems.push(format!("{at}: give a source column or a constant")),
        _ => {}
    }
    if let Some(source) = &c.source {
        check_text(&format!("{at}.source"), source, MAX_TEXT_CHARS, problems);
        if c.ty.is_some() {
            problems.push(format!(
                "{at}.type: only a constant column takes a type (a source column keeps its own)"
            ));
        }
    }
    if let Some(header) = &c.header {
        check_text(&format!("{at}.header"), header, MAX_HEADER_CHARS, problems);
    }
    let mut constant_type = None;
    if let Some(json) = &c.constant {
        if c.header.is_none() {
            problems.push(format!("{at}.header: required for a constant column"));
        }
        if json
            .as_str()
            .is_some_and(|s| s.chars().count() > MAX_TEXT_CHARS)
        {
            problems.push(format!(
                "{at}.constant: at most {MAX_TEXT_CHARS} characters"
            ));
        } else {
            match constant_value(json, c.ty) {
                Ok((_, ty)) => constant_type = Some(ty),
                Err(e) => problems.push(format!("{at}.constant: {e}")),
            }
        }
    }

    let f = &c.format;
    if let Some(code) = &f.number_format {
        check_text(
            &format!("{at}.format.number_format"),
            code,
            MAX_NUMBER_FORMAT_CHARS,
            problems,
        );
    }
    if let Some(width) = f.width
        && !(0.0..=MAX_WIDTH).contains(&width)
    {
        problems.push(format!(
            "{at}.format.width: must be between 0 and {MAX_WIDTH} characters (found {width})"
        ));
    }

    if let Some(rules) = &c.rules {
        check_rules(&format!("{at}.rules"), rules, problems);
    }

    if let (Some(total), Some(ty)) = (c.total, constant_type) {
        let fits = match total {
            TotalFunction::Count | TotalFunction::CountNums => true,
            TotalFunction::Sum | TotalFunction::Average => ty.is_numeric(),
            TotalFunction::Min | TotalFunction::Max => {
                ty.is_numeric() || matches!(ty, ColumnType::Date | ColumnType::Datetime)
            }
        };
        if !fits {
            problems.push(format!(
                "{at}.total: {} of a {ty} constant means nothing; use count",
                serde_name(&total)
            ));
        }
    }

    if c.conditional.len() > MAX_CONDITIONAL_FORMATS {
        problems.push(format!(
            "{at}.conditional: at most {MAX_CONDITIONAL_FORMATS} conditional formats per column (found {})",
            c.conditional.len()
        ));
    } else {
        for (j, cf) in c.conditional.iter().enumerate() {
            let at = format!("{at}.conditional[{j}]");
            check_condition(&format!("{at}.when"), &cf.when, problems);
            check_style(&format!("{at}.style"), &cf.style, problems);
        }
    }
}

fn check_rules(at: &str, rules: &Rules, problems: &mut Vec<String>) {
    if let Some(pattern) = &rules.pattern
        && pattern.chars().count() > MAX_TEXT_CHARS
    {
        // Not compiled: a long pattern is a costly one.
        problems.push(format!("{at}.pattern: at most {MAX_TEXT_CHARS} characters"));
        return;
    }
    if let Some(options) = &rules.one_of {
        if options.len() > MAX_ONE_OF {
            problems.push(format!(
                "{at}.one_of: at most {MAX_ONE_OF} values (found {})",
                options.len()
            ));
        } else if options.iter().any(|o| o.chars().count() > MAX_TEXT_CHARS) {
            problems.push(format!(
                "{at}.one_of: each value at most {MAX_TEXT_CHARS} characters"
            ));
        }
    }
    if let Err(e) = rules.check() {
        problems.push(format!("{at}: {e}"));
    }
}

fn check_condition(at: &str, condition: &Condition, problems: &mut Vec<String>) {
    let mut value = |name: &str, v: &CompareValue| {
        if let CompareValue::Text(t) = v {
            check_text(&format!("{at}.{name}"), t, MAX_TEXT_CHARS, problems);
        }
    };
    match condition {
        Condition::GreaterThan { value: v }
        | Condition::GreaterThanOrEqual { value: v }
        | Condition::LessThan { value: v }
        | Condition::LessThanOrEqual { value: v }
        | Condition::EqualTo { value: v }
        | Condition::NotEqualTo { value: v } => value("value", v),
        Condition::Between { min, max } => {
            value("min", min);
            value("max", max);
            if let (CompareValue::Number(a), CompareValue::Number(b)) = (min, max)
                && a > b
            {
                problems.push(format!("{at}: min ({a}) is greater than max ({b})"));
            }
        }
        Condition::Contains { text } => {
            check_text(&format!("{at}.text"), text, MAX_TEXT_CHARS, problems)
        }
        Condition::Blank {} | Condition::NotBlank {} => {}
    }
}

fn check_style(at: &str, style: &CellStyle, problems: &mut Vec<String>) {
    if *style == CellStyle::default() {
        problems.push(format!(
            "{at}: give at least one of bold, italic, font_color, background"
        ));
    }
    check_color(
        &format!("{at}.font_color"),
        style.font_color.as_deref(),
        problems,
    );
    check_color(
        &format!("{at}.background"),
        style.background.as_deref(),
        problems,
    );
}

fn check_color(at: &str, color: Option<&str>, problems: &mut Vec<String>) {
    if let Some(color) = color
        && parse_color(color).is_none()
    {
        let shown: String = color.chars().take(20).collect();
        problems.push(format!("{at}: `{shown}` is not a colour like #1F4E78"));
    }
}

fn check_layout(layout: &Layout, problems: &mut Vec<String>) {
    if let Some(name) = &layout.sheet_name {
        if let Err(e) = check_sheet_name(name) {
            problems.push(format!("layout.sheet_name: {e}"));
        } else if layout.about_sheet && name.eq_ignore_ascii_case(ABOUT_SHEET_NAME) {
            problems.push(format!(
                "layout.sheet_name: `{name}` is the name of the About sheet; choose another or turn about_sheet off"
            ));
        }
    }
    if layout.title_rows.len() > MAX_TITLE_ROWS {
        problems.push(format!(
            "layout.title_rows: at most {MAX_TITLE_ROWS} rows (found {})",
            layout.title_rows.len()
        ));
    } else {
        for (i, title) in layout.title_rows.iter().enumerate() {
            if title.chars().count() > MAX_TEXT_CHARS {
                problems.push(format!(
                    "layout.title_rows[{i}]: at most {MAX_TEXT_CHARS} characters"
                ));
            }
        }
    }
    match layout.start() {
        Err(e) => problems.push(format!("layout.start_cell: {e}")),
        Ok(start) => {
            // Room for the titles, the header and one data row below the start cell.
            let rows_needed = layout.header_offset().saturating_add(2);
            if start.row.saturating_add(rows_needed) > SHEET_ROWS {
                problems.push(format!(
                    "layout.start_cell: no room below it for the title rows, the header and the data (the sheet has {SHEET_ROWS} rows)"
                ));
            }
            if u32::from(start.col) + u32::from(layout.freeze_columns) > u32::from(SHEET_COLUMNS) {
                problems.push(format!(
                    "layout.freeze_columns: {} columns right of the start cell pass the sheet's last column",
                    layout.freeze_columns
                ));
            }
        }
    }
    let h = &layout.header;
    check_color(
        "layout.header.font_color",
        h.font_color.as_deref(),
        problems,
    );
    check_color(
        "layout.header.background",
        h.background.as_deref(),
        problems,
    );
}

/// Excel's rules for sheet names, which Google Sheets accepts too.
fn check_sheet_name(name: &str) -> Result<(), String> {
    let len = name.encode_utf16().count();
    if name.trim().is_empty() {
        return Err("must not be empty".to_owned());
    }
    if len > 31 {
        return Err(format!("at most 31 characters (found {len})"));
    }
    if let Some(c) = name.chars().find(|c| "[]:*?/\\".contains(*c)) {
        return Err(format!(
            "`{c}` is not allowed in a sheet name (none of [ ] : * ? / \\)"
        ));
    }
    if name.starts_with('\'') || name.ends_with('\'') {
        return Err("must not start or end with an apostrophe".to_owned());
    }
    if name.eq_ignore_ascii_case("History") {
        return Err("`History` is reserved by Excel".to_owned());
    }
    Ok(())
}

fn check_text(at: &str, text: &str, max: usize, problems: &mut Vec<String>) {
    if text.trim().is_empty() {
        problems.push(format!("{at}: must not be empty"));
    } else if text.chars().count() > max {
        problems.push(format!("{at}: at most {max} characters"));
    }
}

/// The name serde gives a unit variant (`count_nums`), for messages.
fn serde_name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A constant's value and type: converted to `ty` when given, inferred from the JSON
/// otherwise.
fn constant_value(
    json: &serde_json::Value,
    ty: Option<ColumnType>,
) -> Result<(Value, ColumnType), String> {
    use serde_json::Value as J;
    if !matches!(json, J::String(_) | J::Number(_) | J::Bool(_)) {
        return Err("must be a string, a number or a boolean".to_owned());
    }
    if let Some(ty) = ty {
        return Value::from_json(json, ty)
            .map(|v| (v, ty))
            .map_err(|e| e.to_string());
    }
    Ok(match json {
        J::Bool(b) => (Value::Boolean(*b), ColumnType::Boolean),
        J::String(s) if s.is_empty() => (Value::Null, ColumnType::Text),
        J::String(s) => (Value::Text(s.clone()), ColumnType::Text),
        J::Number(n) => match n.as_i64() {
            Some(i) => (Value::Integer(i), ColumnType::Integer),
            // The number as written (`19.99`), exactly; floats only past Decimal's range.
            None => match Decimal::from_str(&n.to_string()) {
                Ok(d) => (Value::Decimal(d), ColumnType::Decimal),
                Err(_) => (
                    Value::Float(n.as_f64().unwrap_or(f64::NAN)),
                    ColumnType::Float,
                ),
            },
        },
        _ => return Err("must be a string, a number or a boolean".to_owned()),
    })
}

/// Mapped source columns the table does not have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingColumns {
    /// Every missing name, in template order, as the template writes it.
    pub missing: Vec<String>,
}

impl fmt::Display for MissingColumns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the table has no column named {}",
            self.missing.join(", ")
        )
    }
}

impl std::error::Error for MissingColumns {}

/// How an output column looks; the writers apply it (CSV and JSON ignore it).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ColumnStyle {
    pub format: ColumnFormat,
    pub total: Option<TotalFunction>,
    pub conditional: Vec<ConditionalFormat>,
}

#[derive(Clone, Debug, PartialEq)]
enum Source {
    /// Index into the source columns.
    Column(usize),
    /// Converted once, cloned per row.
    Constant(Value),
}

/// A template applied to a table's columns: the output columns, their styles and the layout,
/// and how to build an output row from a source row.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    /// Output columns: header as name, type, rules (source columns keep their id and
    /// description; constants get `const_<index in template.columns>`).
    pub columns: Vec<Column>,
    /// One per output column.
    pub styles: Vec<ColumnStyle>,
    pub layout: Layout,
    sources: Vec<Source>,
}

impl Resolved {
    /// No template: every column as it is, the plain layout.
    pub fn identity(columns: &[Column]) -> Self {
        Self {
            columns: columns.to_vec(),
            styles: vec![ColumnStyle::default(); columns.len()],
            layout: Layout::default(),
            sources: (0..columns.len()).map(Source::Column).collect(),
        }
    }

    /// The output row for a source row (aligned with the columns given to `resolve`). A cell
    /// the source row lacks is null: the writers check widths on the output, not here.
    pub fn map_row(&self, row: &[Value]) -> Vec<Value> {
        self.sources
            .iter()
            .map(|source| match source {
                Source::Column(i) => row.get(*i).cloned().unwrap_or(Value::Null),
                Source::Constant(value) => value.clone(),
            })
            .collect()
    }

    /// [`Resolved::map_row`] of a row the caller gives away: its cells are moved, not
    /// cloned (the identity mapping returns the row itself).
    pub fn map_row_owned(&self, mut row: Vec<Value>) -> Vec<Value> {
        let identity = self.sources.len() == row.len()
            && self
                .sources
                .iter()
                .enumerate()
                .all(|(i, s)| matches!(s, Source::Column(c) if *c == i));
        if identity {
            return row;
        }
        // A source cell used by several outputs is cloned for all but its last use.
        let mut last_use = vec![usize::MAX; row.len()];
        for (j, source) in self.sources.iter().enumerate() {
            if let Source::Column(i) = source
                && let Some(last) = last_use.get_mut(*i)
            {
                *last = j;
            }
        }
        self.sources
            .iter()
            .enumerate()
            .map(|(j, source)| match source {
                Source::Column(i) => match row.get_mut(*i) {
                    Some(cell) if last_use[*i] == j => std::mem::replace(cell, Value::Null),
                    Some(cell) => cell.clone(),
                    None => Value::Null,
                },
                Source::Constant(value) => value.clone(),
            })
            .collect()
    }

    /// Whether any output column has a total (the sheet then gets a totals row).
    pub fn has_totals(&self) -> bool {
        self.styles.iter().any(|s| s.total.is_some())
    }

    fn push(&mut self, column: Column, style: ColumnStyle, source: Source) {
        self.columns.push(column);
        self.styles.push(style);
        self.sources.push(source);
    }

    /// Names unique ignoring case (`Name`, `Name 2`) and ids unique (`c1`, `c1.2`): a source
    /// mapped twice, or an unmapped column named like a renamed one, must not give a sheet
    /// two equal headers or a sync two equal ids.
    fn make_unique(&mut self) {
        let mut names = HashSet::new();
        let mut ids = HashSet::new();
        for column in &mut self.columns {
            let base = column.name.clone();
            let mut n = 2;
            while !names.insert(column.name.to_lowercase()) {
                column.name = format!("{base} {n}");
                n += 1;
            }
            let base = column.id.clone();
            let mut n = 2;
            while !ids.insert(column.id.clone()) {
                column.id = format!("{base}.{n}");
                n += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(value: serde_json::Value) -> Template {
        serde_json::from_value(value).unwrap_or_else(|e| panic!("{e}"))
    }

    fn problems(value: serde_json::Value) -> Vec<String> {
        parse(value).check().err().unwrap_or_default()
    }

    fn table() -> Vec<Column> {
        let mut amount = Column::new("c2", "Amount", ColumnType::Decimal);
        amount.rules.min = Some(Decimal::ZERO);
        amount.description = Some("net".into());
        vec![
            Column::new("c1", "Name", ColumnType::Text),
            amount,
            Column::new("c3", "internal id", ColumnType::Integer),
            Column::new("c4", "Due date", ColumnType::Date),
        ]
    }

    #[test]
    fn an_owned_row_maps_like_a_borrowed_one_with_repeated_sources_and_constants() {
        let columns = table();
        let mut resolved = Resolved::identity(&columns);
        let row = vec![
            Value::Text("a".into()),
            Value::Integer(2),
            Value::Null,
            Value::Text("d".into()),
        ];
        assert_eq!(resolved.map_row_owned(row.clone()), row, "identity");
        resolved.sources = vec![
            Source::Column(1),
            Source::Constant(Value::Text("k".into())),
            Source::Column(1),
            Source::Column(0),
            Source::Column(9),
        ];
        assert_eq!(resolved.map_row_owned(row.clone()), resolved.map_row(&row));
        assert_eq!(
            resolved.map_row_owned(row),
            vec![
                Value::Integer(2),
                Value::Text("k".into()),
                Value::Integer(2),
                Value::Text("a".into()),
                Value::Null
            ]
        );
    }

    fn names(resolved: &Resolved) -> Vec<&str> {
        resolved.columns.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn the_example_in_the_module_docs_passes_check() {
        let source = include_str!("template.rs");
        let json: String = source
            .lines()
            .skip_while(|l| *l != "//! ```json")
            .skip(1)
            .take_while(|l| *l != "//! ```")
            .map(|l| l.trim_start_matches("//!"))
            .collect::<Vec<_>>()
            .join("\n");
        let t: Template = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
        assert_eq!(t.check(), Ok(()));
        assert_eq!(t.columns.len(), 3);
    }

    #[test]
    fn an_empty_object_is_a_template_with_every_default() {
        let t = parse(json!({}));
        assert_eq!(t, Template::default());
        let layout = &t.layout;
        assert_eq!(layout.sheet_name(), "Data");
        assert_eq!(layout.start(), Ok(CellRef { row: 0, col: 0 }));
        assert!(layout.header.bold && layout.freeze_header && layout.autofilter);
        assert!(layout.about_sheet);
        assert_eq!(layout.freeze_columns, 0);
        assert_eq!(t.check(), Ok(()));
    }

    #[test]
    fn a_header_style_given_in_part_stays_bold() {
        let t = parse(json!({"layout": {"header": {"background": "#1F4E78"}}}));
        assert!(t.layout.header.bold);
        assert_eq!(t.layout.header.background.as_deref(), Some("#1F4E78"));
    }

    #[test]
    fn unknown_fields_are_rejected_at_every_level() {
        for bad in [
            json!({"colums": []}),
            json!({"columns": [{"source": "a", "heading": "A"}]}),
            json!({"columns": [{"source": "a", "format": {"colour": "red"}}]}),
            json!({"columns": [{"source": "a", "rules": {"minimum": 1}}]}),
            json!({"layout": {"sheet": "x"}}),
            json!({"layout": {"header": {"underline": true}}}),
            json!({"columns": [{"source": "a", "conditional": [
                {"when": {"op": "blank", "value": 3}, "style": {"bold": true}}]}]}),
            json!({"columns": [{"source": "a", "conditional": [
                {"when": {"op": "greater_than", "value": 3, "extra": 1}, "style": {"bold": true}}]}]}),
            json!({"columns": [{"source": "a", "conditional": [
                {"when": {"op": "bigger", "value": 3}, "style": {"bold": true}}]}]}),
        ] {
            assert!(
                serde_json::from_value::<Template>(bad.clone()).is_err(),
                "accepted {bad}"
            );
        }
    }

    #[test]
    fn a_full_template_round_trips_through_json() {
        let value = json!({
            "columns": [
                {"source": "name", "header": "Customer", "format": {"width": 30.0, "wrap": true}},
                {"source": "amount", "format": {"number_format": "#,##0.00", "align": "right"},
                 "rules": {"min": "0"}, "total": "sum",
                 "conditional": [
                    {"when": {"op": "greater_than", "value": 1000.0}, "style": {"bold": true, "background": "#FFC7CE"}},
                    {"when": {"op": "between", "min": 1.0, "max": 9.0}, "style": {"italic": true}},
                    {"when": {"op": "contains", "text": "late"}, "style": {"font_color": "#9C0006"}},
                    {"when": {"op": "equal_to", "value": "n/a"}, "style": {"italic": true}},
                    {"when": {"op": "not_blank"}, "style": {"bold": true}}
                 ]},
                {"header": "Region", "constant": "EMEA", "type": "text", "total": "count"}
            ],
            "include_unmapped": true,
            "exclude": ["internal id"],
            "layout": {
                "sheet_name": "Invoices",
                "title_rows": ["Invoices 2024", "Net amounts"],
                "start_cell": "B2",
                "header": {"bold": true, "italic": false, "background": "#1F4E78", "font_color": "#FFFFFF", "wrap": true},
                "freeze_header": true,
                "freeze_columns": 1,
                "autofilter": false,
                "about_sheet": false
            }
        });
        let t = parse(value.clone());
        assert_eq!(t.check(), Ok(()));
        assert_eq!(
            t.columns[1].conditional[0].when,
            Condition::GreaterThan {
                value: CompareValue::Number(1000.0)
            }
        );
        assert_eq!(t.columns[1].total, Some(TotalFunction::Sum));
        assert_eq!(t.columns[1].format.align, Some(Align::Right));
        assert_eq!(serde_json::to_value(&t).unwrap(), value);
    }

    #[test]
    fn check_names_the_field_of_each_column_problem() {
        let found = problems(json!({"columns": [
            {"source": "a", "constant": 1, "header": "A"},
            {"header": "B"},
            {"constant": 3},
            {"source": "d", "type": "integer"},
            {"header": "E", "constant": "x", "type": "integer"},
            {"header": "F", "constant": [1, 2]},
            {"source": "g", "format": {"width": 300.0}},
            {"source": "h", "rules": {"pattern": "("}},
            {"source": "i", "rules": {"min": "5", "max": "1"}},
            {"header": "J", "constant": "text", "total": "sum"},
            {"source": "k", "header": "  "}
        ]}));
        assert_eq!(
            found,
            [
                "columns[0]: give either source or constant, not both",
                "columns[1]: give a source column or a constant",
                "columns[2].header: required for a constant column",
                "columns[3].type: only a constant column takes a type (a source column keeps its own)",
                "columns[4].constant: `x` is not a valid integer",
                "columns[5].constant: must be a string, a number or a boolean",
                "columns[6].format.width: must be between 0 and 255 characters (found 300)",
                found[7].as_str(),
                "columns[8].rules: min is greater than max",
                "columns[9].total: sum of a text constant means nothing; use count",
                "columns[10].header: must not be empty",
            ]
        );
        assert!(
            found[7].starts_with("columns[7].rules: pattern: "),
            "{}",
            found[7]
        );
    }

    #[test]
    fn a_total_that_counts_a_text_constant_is_fine() {
        let t = parse(json!({"columns": [
            {"header": "J", "constant": "text", "total": "count"},
            {"header": "K", "constant": "2024-01-31", "type": "date", "total": "max"}
        ]}));
        assert_eq!(t.check(), Ok(()));
    }

    #[test]
    fn check_reports_duplicate_headers_ignoring_case_and_excluded_mapped_sources() {
        let found = problems(json!({
            "columns": [
                {"source": "Name"},
                {"source": "nickname", "header": "NAME"},
                {"header": "name ", "constant": 1}
            ],
            "exclude": ["name"]
        }));
        assert_eq!(
            found,
            [
                "columns[1].header: `NAME` is already the header of columns[0] (headers must differ other than in case)",
                "columns[2].header: `name ` is already the header of columns[0] (headers must differ other than in case)",
                "exclude[0]: `name` is the source of columns[0]; remove one of them",
            ]
        );
    }

    #[test]
    fn check_reports_layout_problems() {
        let bad_names = [
            ("", "must not be empty"),
            (
                "a name longer than thirty-one chars",
                "at most 31 characters (found 35)",
            ),
            (
                "Q1/Q2",
                "`/` is not allowed in a sheet name (none of [ ] : * ? / \\)",
            ),
            ("'quoted'", "must not start or end with an apostrophe"),
            ("history", "`History` is reserved by Excel"),
            (
                "About",
                "`About` is the name of the About sheet; choose another or turn about_sheet off",
            ),
        ];
        for (name, message) in bad_names {
            let found = problems(json!({"layout": {"sheet_name": name}}));
            assert_eq!(found, [format!("layout.sheet_name: {message}")], "{name}");
        }
        assert_eq!(
            problems(json!({"layout": {"sheet_name": "About", "about_sheet": false}})),
            Vec::<String>::new()
        );

        let found = problems(json!({"layout": {
            "start_cell": "XFE1",
            "header": {"background": "blue", "font_color": "#12345"},
            "title_rows": vec!["t"; 11]
        }}));
        assert_eq!(
            found,
            [
                "layout.title_rows: at most 10 rows (found 11)",
                "layout.start_cell: `XFE1` is not a cell like A1 within A1:XFD1048576",
                "layout.header.font_color: `#12345` is not a colour like #1F4E78",
                "layout.header.background: `blue` is not a colour like #1F4E78",
            ]
        );
        let found = problems(json!({"layout": {"start_cell": "A1048576"}}));
        assert_eq!(found.len(), 1);
        assert!(
            found[0].starts_with("layout.start_cell: no room below it"),
            "{found:?}"
        );
    }

    #[test]
    fn check_bounds_the_sizes_of_everything() {
        let long = "x".repeat(MAX_TEXT_CHARS + 1);
        let many: Vec<serde_json::Value> = (0..=MAX_COLUMNS)
            .map(|i| json!({"source": format!("c{i}")}))
            .collect();
        assert_eq!(
            problems(json!({"columns": many})),
            ["columns: at most 1000 columns (found 1001)"]
        );
        let conditions = vec![json!({"when": {"op": "blank"}, "style": {"bold": true}}); 21];
        let found = problems(json!({
            "columns": [
                {"source": long, "conditional": conditions},
                {"header": "H", "constant": long},
                {"source": "a", "format": {"number_format": "0".repeat(256)}},
                {"source": "b", "rules": {"one_of": vec!["v"; MAX_ONE_OF + 1]}},
                {"source": "c", "conditional": [
                    {"when": {"op": "contains", "text": long}, "style": {"background": "#FFFFFF"}},
                    {"when": {"op": "between", "min": 5.0, "max": 1.0}, "style": {"bold": true}},
                    {"when": {"op": "blank"}, "style": {}}
                ]}
            ],
            "layout": {"title_rows": [long]}
        }));
        assert_eq!(
            found,
            [
                "columns[0].source: at most 1000 characters",
                "columns[0].conditional: at most 20 conditional formats per column (found 21)",
                "columns[1].constant: at most 1000 characters",
                "columns[2].format.number_format: at most 255 characters",
                "columns[3].rules.one_of: at most 1000 values (found 1001)",
                "columns[4].conditional[0].when.text: at most 1000 characters",
                "columns[4].conditional[1].when: min (5) is greater than max (1)",
                "columns[4].conditional[2].style: give at least one of bold, italic, font_color, background",
                "layout.title_rows[0]: at most 1000 characters",
            ]
        );
    }

    #[test]
    fn cells_parse_in_a1_notation_within_excel_limits() {
        let cell = |s: &str| s.parse::<CellRef>();
        assert_eq!(cell("A1"), Ok(CellRef { row: 0, col: 0 }));
        assert_eq!(cell("c5"), Ok(CellRef { row: 4, col: 2 }));
        assert_eq!(cell("AA10"), Ok(CellRef { row: 9, col: 26 }));
        assert_eq!(
            cell("XFD1048576"),
            Ok(CellRef {
                row: 1_048_575,
                col: 16_383
            })
        );
        for bad in [
            "", "A", "1", "A0", "XFE1", "A1048577", "ABCD1", "A1B", " A1", "$A$1",
        ] {
            assert!(cell(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn resolve_orders_renames_and_keeps_ids_types_and_rules() {
        let t = parse(json!({"columns": [
            {"source": "Amount", "header": "Net", "rules": {"required": true}},
            {"source": "name"}
        ]}));
        let r = t.resolve(&table()).unwrap();
        assert_eq!(names(&r), ["Net", "Name"]);
        assert_eq!(r.columns[0].id, "c2");
        assert_eq!(r.columns[0].ty, ColumnType::Decimal);
        assert_eq!(r.columns[0].description.as_deref(), Some("net"));
        assert_eq!(
            r.columns[0].rules,
            Rules {
                required: true,
                ..Rules::default()
            },
            "given rules replace the source's"
        );
        assert_eq!(r.columns[1].id, "c1");
        let row = vec![
            Value::Text("Ann".into()),
            Value::Integer(5),
            Value::Integer(77),
            Value::Null,
        ];
        assert_eq!(
            r.map_row(&row),
            [Value::Integer(5), Value::Text("Ann".into())]
        );
    }

    #[test]
    fn resolve_matches_source_names_ignoring_case_and_spaces() {
        let t = parse(json!({"columns": [{"source": "DUE_DATE"}, {"source": "amount"}]}));
        let r = t.resolve(&table()).unwrap();
        assert_eq!(names(&r), ["Due date", "Amount"]);
    }

    #[test]
    fn resolve_appends_unmapped_columns_without_the_excluded_ones() {
        let t = parse(json!({
            "columns": [{"source": "Due date"}],
            "include_unmapped": true,
            "exclude": ["internal id", "not in the table"]
        }));
        let r = t.resolve(&table()).unwrap();
        assert_eq!(names(&r), ["Due date", "Name", "Amount"]);
        assert_eq!(r.styles.len(), 3);
    }

    #[test]
    fn no_columns_means_every_column_but_the_excluded() {
        let t = parse(json!({"exclude": ["internal id"]}));
        let r = t.resolve(&table()).unwrap();
        assert_eq!(names(&r), ["Name", "Amount", "Due date"]);
        let row = vec![
            Value::Text("Ann".into()),
            Value::Integer(5),
            Value::Integer(77),
            Value::Null,
        ];
        assert_eq!(
            r.map_row(&row),
            [Value::Text("Ann".into()), Value::Integer(5), Value::Null]
        );
    }

    #[test]
    fn constants_are_converted_once_with_their_type_or_an_inferred_one() {
        let t = parse(json!({"columns": [
            {"header": "Region", "constant": "EMEA"},
            {"header": "Year", "constant": 2024},
            {"header": "Rate", "constant": 19.99},
            {"header": "Paid", "constant": false},
            {"header": "Since", "constant": "2024-01-31", "type": "date"},
            {"header": "Share", "constant": 12.5, "type": "percent"},
            {"header": "Notes", "constant": ""},
            {"header": "Big", "constant": 1e300}
        ]}));
        assert_eq!(t.check(), Ok(()));
        let r = t.resolve(&table()).unwrap();
        let types: Vec<ColumnType> = r.columns.iter().map(|c| c.ty).collect();
        assert_eq!(
            types,
            [
                ColumnType::Text,
                ColumnType::Integer,
                ColumnType::Decimal,
                ColumnType::Boolean,
                ColumnType::Date,
                ColumnType::Percent,
                ColumnType::Text,
                ColumnType::Float
            ]
        );
        let ids: Vec<&str> = r.columns.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids[..3], ["const_0", "const_1", "const_2"]);
        let row = r.map_row(&[]);
        assert_eq!(
            row,
            [
                Value::Text("EMEA".into()),
                Value::Integer(2024),
                Value::Decimal(Decimal::new(1999, 2)),
                Value::Boolean(false),
                Value::Date(chrono::NaiveDate::from_ymd_opt(2024, 1, 31).unwrap()),
                Value::Percent(Decimal::new(125, 1)),
                Value::Null,
                Value::Float(1e300),
            ]
        );
    }

    #[test]
    fn every_missing_source_is_listed() {
        let t = parse(json!({"columns": [
            {"source": "a"}, {"source": "Name"}, {"source": "b"}
        ]}));
        let err = t.resolve(&table()).unwrap_err();
        assert_eq!(err.missing, ["a", "b"]);
        assert_eq!(err.to_string(), "the table has no column named a, b");
    }

    #[test]
    fn a_source_mapped_twice_and_clashing_names_are_made_unique() {
        let t = parse(json!({
            "columns": [
                {"source": "Amount"},
                {"source": "Amount", "header": "Amount (rounded)"},
                {"source": "Due date", "header": "name"}
            ],
            "include_unmapped": true
        }));
        let r = t.resolve(&table()).unwrap();
        assert_eq!(
            names(&r),
            [
                "Amount",
                "Amount (rounded)",
                "name",
                "Name 2",
                "internal id"
            ]
        );
        let ids: Vec<&str> = r.columns.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["c2", "c2.2", "c4", "c1", "c3"]);
    }

    #[test]
    fn identity_keeps_every_column_and_cell() {
        let columns = table();
        let r = Resolved::identity(&columns);
        assert_eq!(r.columns, columns);
        assert_eq!(r.layout, Layout::default());
        assert!(r.styles.iter().all(|s| *s == ColumnStyle::default()));
        let row = vec![
            Value::Text("Ann".into()),
            Value::Integer(5),
            Value::Integer(77),
            Value::Null,
        ];
        assert_eq!(r.map_row(&row), row);
        assert_eq!(Template::default().resolve(&columns), Ok(r));
    }

    #[test]
    fn colours_are_hash_and_six_hex_digits() {
        assert_eq!(parse_color("#1F4E78"), Some(0x1F4E78));
        assert_eq!(parse_color("#ffffff"), Some(0xFFFFFF));
        for bad in ["1F4E78", "#1F4E7", "#1F4E7G", "red", "#1F4E780"] {
            assert_eq!(parse_color(bad), None, "{bad}");
        }
    }
}
