//! Google Sheets encoding of tables: cells as the Sheets API takes them with `RAW` (numbers,
//! booleans, text; dates as serial numbers), A1 references, and the `batchUpdate` requests that
//! give a written block a template's look (header style, freeze, number formats, widths,
//! alignment, validation, conditional formats, filter). Pure: the server sends what this
//! builds.

use chrono::{NaiveDate, NaiveDateTime};
use rust_decimal::Decimal;
use serde_json::{Value as Json, json};

use crate::table::{Column, ColumnType, Value};
use crate::template::{
    Align, CellStyle, CompareValue, Condition, Resolved, TotalFunction, parse_color,
};

/// The spreadsheet id from an id or a `…/spreadsheets/d/<id>/…` URL.
pub fn spreadsheet_id(text: &str) -> Option<String> {
    let text = text.trim();
    let id = match text.find("/d/") {
        Some(at) => text[at + 3..]
            .split(['/', '?', '#'])
            .next()
            .unwrap_or_default(),
        None => text,
    };
    let ok = !id.is_empty()
        && id.len() <= 200
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    ok.then(|| id.to_owned())
}

pub fn spreadsheet_url(id: &str) -> String {
    format!("https://docs.google.com/spreadsheets/d/{id}/edit")
}

/// `'Tab name'!B5`
pub fn a1(title: &str, row: u32, col: u32) -> String {
    format!(
        "'{}'!{}{}",
        title.replace('\'', "''"),
        column_letters(col),
        row + 1
    )
}

pub fn column_letters(mut col: u32) -> String {
    let mut out = Vec::new();
    loop {
        out.push(b'A' + (col % 26) as u8);
        if col < 26 {
            break;
        }
        col = col / 26 - 1;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// Days since 1899-12-30, the spreadsheet epoch.
pub fn serial_date(date: NaiveDate) -> f64 {
    let epoch = NaiveDate::from_ymd_opt(1899, 12, 30).unwrap_or_default();
    (date - epoch).num_days() as f64
}

pub fn serial_datetime(dt: NaiveDateTime) -> f64 {
    let seconds = f64::from(
        dt.time()
            .signed_duration_since(chrono::NaiveTime::MIN)
            .num_seconds() as i32,
    );
    serial_date(dt.date()) + seconds / 86_400.0
}

fn decimal(d: Decimal) -> Json {
    // RAW takes a string as text: a decimal that Sheets' f64 would round stays as written.
    crate::exact::spreadsheet_number(d)
        .and_then(serde_json::Number::from_f64)
        .map_or_else(|| Json::String(d.to_string()), Json::Number)
}

/// A cell as Sheets takes it with `RAW`: numbers, booleans and strings; "" empties a cell.
pub fn cell(value: &Value) -> Json {
    match value {
        Value::Null => Json::String(String::new()),
        Value::Integer(i) if crate::exact::spreadsheet_integer(*i) => json!(i),
        Value::Integer(i) => Json::String(i.to_string()),
        Value::Decimal(d) => decimal(*d),
        Value::Float(x) => serde_json::Number::from_f64(*x)
            .map_or_else(|| Json::String(x.to_string()), Json::Number),
        Value::Percent(p) => p
            .checked_div(Decimal::ONE_HUNDRED)
            .map_or_else(|| Json::String(value.to_string()), decimal),
        Value::Currency(m) => decimal(m.amount),
        Value::Boolean(b) => Json::Bool(*b),
        Value::Date(d) => json!(serial_date(*d)),
        Value::Datetime(dt) => json!(serial_datetime(*dt)),
        Value::Url(s) | Value::Email(s) | Value::Text(s) => Json::String(s.clone()),
    }
}

pub fn row_cells(row: &[Value]) -> Json {
    Json::Array(row.iter().map(cell).collect())
}

/// Where the block (titles, header, data) sits on the tab.
pub struct Block {
    pub start_row: u32,
    pub start_col: u32,
    pub header_row: u32,
    pub columns: u32,
}

impl Block {
    pub fn of(resolved: &Resolved) -> Self {
        let start = resolved
            .layout
            .start()
            .unwrap_or(crate::template::CellRef { row: 0, col: 0 });
        Self {
            start_row: start.row,
            start_col: u32::from(start.col),
            header_row: start.row + resolved.layout.header_offset(),
            columns: u32::try_from(resolved.columns.len()).unwrap_or(u32::MAX),
        }
    }

    pub fn first_data_row(&self) -> u32 {
        self.header_row + 1
    }
}

pub fn subtotal(f: TotalFunction) -> u16 {
    f.subtotal_code()
}

fn color(hex: &str) -> Option<Json> {
    let rgb = parse_color(hex)?;
    let part = |shift: u32| f64::from((rgb >> shift) & 0xff) / 255.0;
    Some(json!({"red": part(16), "green": part(8), "blue": part(0)}))
}

fn text_style(style: &CellStyle) -> Json {
    let mut text = json!({"bold": style.bold, "italic": style.italic});
    if let Some(c) = style.font_color.as_deref().and_then(color) {
        text["foregroundColor"] = c;
    }
    let mut format = json!({"textFormat": text});
    if let Some(c) = style.background.as_deref().and_then(color) {
        format["backgroundColor"] = c;
    }
    format
}

/// The number format of a column: the template's, or one for its type.
fn number_format(column: &Column, custom: Option<&str>, currency: Option<&str>) -> Option<Json> {
    let (kind, default) = match column.ty {
        ColumnType::Integer => ("NUMBER", "#,##0".to_owned()),
        ColumnType::Decimal => ("NUMBER", "#,##0.00".to_owned()),
        ColumnType::Float => ("NUMBER", "General".to_owned()),
        ColumnType::Percent => ("PERCENT", "0.00%".to_owned()),
        ColumnType::Currency => (
            "CURRENCY",
            match currency {
                Some(code) => format!("#,##0.00 \"{}\"", code.replace('"', "")),
                None => "#,##0.00".to_owned(),
            },
        ),
        ColumnType::Date => ("DATE", "yyyy-mm-dd".to_owned()),
        ColumnType::Datetime => ("DATE_TIME", "yyyy-mm-dd hh:mm:ss".to_owned()),
        ColumnType::Boolean | ColumnType::Url | ColumnType::Email | ColumnType::Text => {
            return custom.map(|p| json!({"type": "TEXT", "pattern": p}));
        }
    };
    if default == "General" && custom.is_none() {
        return None;
    }
    Some(json!({"type": kind, "pattern": custom.map_or(default, str::to_owned)}))
}

pub fn grid_range(sheet_id: i64, rows: (u32, u32), cols: (u32, u32)) -> Json {
    json!({
        "sheetId": sheet_id,
        "startRowIndex": rows.0, "endRowIndex": rows.1,
        "startColumnIndex": cols.0, "endColumnIndex": cols.1,
    })
}

fn compare(value: &CompareValue, ty: ColumnType) -> Json {
    let text = match value {
        CompareValue::Boolean(b) => b.to_string().to_uppercase(),
        CompareValue::Number(n) if ty == ColumnType::Percent => (n / 100.0).to_string(),
        CompareValue::Number(n) => n.to_string(),
        CompareValue::Text(t) => t.clone(),
    };
    json!({"userEnteredValue": text})
}

fn condition(when: &Condition, ty: ColumnType, first_cell: &str) -> Json {
    let numeric = ty.is_numeric() || matches!(ty, ColumnType::Date | ColumnType::Datetime);
    let one = |kind: &str, v: &CompareValue| json!({"type": kind, "values": [compare(v, ty)]});
    match when {
        Condition::GreaterThan { value } => one("NUMBER_GREATER", value),
        Condition::GreaterThanOrEqual { value } => one("NUMBER_GREATER_THAN_EQ", value),
        Condition::LessThan { value } => one("NUMBER_LESS", value),
        Condition::LessThanOrEqual { value } => one("NUMBER_LESS_THAN_EQ", value),
        Condition::EqualTo { value } if numeric => one("NUMBER_EQ", value),
        Condition::EqualTo { value } => one("TEXT_EQ", value),
        Condition::NotEqualTo { value } if numeric => one("NUMBER_NOT_EQ", value),
        Condition::NotEqualTo { value } => {
            // No TEXT_NOT_EQ in Sheets: a formula relative to the range's first cell.
            let text = compare(value, ty)["userEnteredValue"]
                .as_str()
                .unwrap_or_default()
                .replace('"', "\"\"");
            json!({"type": "CUSTOM_FORMULA", "values": [{"userEnteredValue": format!("={first_cell}<>\"{text}\"")}]})
        }
        Condition::Between { min, max } => {
            json!({"type": "NUMBER_BETWEEN", "values": [compare(min, ty), compare(max, ty)]})
        }
        Condition::Contains { text } => {
            json!({"type": "TEXT_CONTAINS", "values": [{"userEnteredValue": text}]})
        }
        Condition::Blank {} => json!({"type": "BLANK"}),
        Condition::NotBlank {} => json!({"type": "NOT_BLANK"}),
    }
}

/// The `batchUpdate` requests that give the written block the template's look.
pub fn formatting(
    sheet_id: i64,
    block: &Block,
    resolved: &Resolved,
    rows: u32,
    totals: bool,
    currencies: &[Option<String>],
) -> Vec<Json> {
    let layout = &resolved.layout;
    let start_col = block.start_col;
    let end_col = block.start_col + block.columns;
    let data = (block.first_data_row(), block.first_data_row() + rows.max(1));
    let mut requests = Vec::new();

    // Frozen header and columns.
    let frozen_rows = if layout.freeze_header {
        block.header_row + 1
    } else {
        0
    };
    let frozen_cols = if layout.freeze_columns > 0 {
        start_col + u32::from(layout.freeze_columns)
    } else {
        0
    };
    requests.push(json!({"updateSheetProperties": {
        "properties": {"sheetId": sheet_id, "gridProperties": {"frozenRowCount": frozen_rows, "frozenColumnCount": frozen_cols}},
        "fields": "gridProperties(frozenRowCount,frozenColumnCount)"
    }}));
    // Title rows: the first bold and larger.
    if !layout.title_rows.is_empty() {
        requests.push(json!({"repeatCell": {
            "range": grid_range(sheet_id, (block.start_row, block.start_row + 1), (start_col, start_col + 1)),
            "cell": {"userEnteredFormat": {"textFormat": {"bold": true, "fontSize": 14}}},
            "fields": "userEnteredFormat.textFormat"
        }}));
    }
    // Header.
    let h = &layout.header;
    let mut header_format = text_style(&CellStyle {
        bold: h.bold,
        italic: h.italic,
        font_color: h.font_color.clone(),
        background: h.background.clone(),
    });
    if h.wrap {
        header_format["wrapStrategy"] = json!("WRAP");
    }
    requests.push(json!({"repeatCell": {
        "range": grid_range(sheet_id, (block.header_row, block.header_row + 1), (start_col, end_col)),
        "cell": {"userEnteredFormat": header_format},
        "fields": "userEnteredFormat(textFormat,backgroundColor,wrapStrategy)"
    }}));
    for (i, (column, style)) in resolved.columns.iter().zip(&resolved.styles).enumerate() {
        let col = start_col + i as u32;
        let cols = (col, col + 1);
        let mut format = json!({});
        let mut fields = Vec::new();
        let currency = currencies.get(i).and_then(|c| c.as_deref());
        if let Some(nf) = number_format(column, style.format.number_format.as_deref(), currency) {
            format["numberFormat"] = nf;
            fields.push("numberFormat");
        }
        if let Some(align) = style.format.align {
            format["horizontalAlignment"] = json!(match align {
                Align::Left => "LEFT",
                Align::Center => "CENTER",
                Align::Right => "RIGHT",
            });
            fields.push("horizontalAlignment");
        }
        if style.format.wrap {
            format["wrapStrategy"] = json!("WRAP");
            fields.push("wrapStrategy");
        }
        if !fields.is_empty() {
            let end = data.1 + u32::from(totals);
            requests.push(json!({"repeatCell": {
                "range": grid_range(sheet_id, (data.0, end), cols),
                "cell": {"userEnteredFormat": format},
                "fields": format!("userEnteredFormat({})", fields.join(","))
            }}));
        }
        let width = style
            .format
            .width
            .unwrap_or_else(|| (column.name.chars().count() as f64 + 3.0).clamp(8.0, 40.0));
        requests.push(json!({"updateDimensionProperties": {
            "range": {"sheetId": sheet_id, "dimension": "COLUMNS", "startIndex": col, "endIndex": col + 1},
            "properties": {"pixelSize": (width * 7.0 + 10.0).round() as u32},
            "fields": "pixelSize"
        }}));
        if let Some(rule) = validation(column) {
            requests.push(
                json!({"setDataValidation": {"range": grid_range(sheet_id, data, cols), "rule": rule}}),
            );
        }
        let first_cell = format!("{}{}", column_letters(col), data.0 + 1);
        for (index, conditional) in style.conditional.iter().enumerate() {
            requests.push(json!({"addConditionalFormatRule": {
                "index": index,
                "rule": {
                    "ranges": [grid_range(sheet_id, data, cols)],
                    "booleanRule": {"condition": condition(&conditional.when, column.ty, &first_cell), "format": text_style(&conditional.style)}
                }
            }}));
        }
    }
    if totals {
        requests.push(json!({"repeatCell": {
            "range": grid_range(sheet_id, (data.1, data.1 + 1), (start_col, end_col)),
            "cell": {"userEnteredFormat": {"textFormat": {"bold": true}}},
            "fields": "userEnteredFormat.textFormat.bold"
        }}));
    }
    if layout.autofilter && block.columns > 0 {
        requests.push(json!({"setBasicFilter": {"filter": {"range": grid_range(sheet_id, (block.header_row, data.1), (start_col, end_col))}}}));
    }
    requests
}

/// Sheets data validation for a column's rules: a list for `one_of`, a number range for
/// `min`/`max` on numeric columns.
fn validation(column: &Column) -> Option<Json> {
    let rules = &column.rules;
    if let Some(options) = rules.one_of.as_ref().filter(|o| !o.is_empty()) {
        let values: Vec<Json> = options
            .iter()
            .map(|o| json!({"userEnteredValue": o}))
            .collect();
        return Some(
            json!({"condition": {"type": "ONE_OF_LIST", "values": values}, "strict": true, "showCustomUi": true}),
        );
    }
    if !column.ty.is_numeric() {
        return None;
    }
    let scale = |d: Decimal| {
        if column.ty == ColumnType::Percent {
            d.checked_div(Decimal::ONE_HUNDRED).unwrap_or(d)
        } else {
            d
        }
        .to_string()
    };
    let condition = match (rules.min, rules.max) {
        (Some(min), Some(max)) => {
            json!({"type": "NUMBER_BETWEEN", "values": [{"userEnteredValue": scale(min)}, {"userEnteredValue": scale(max)}]})
        }
        (Some(min), None) => {
            json!({"type": "NUMBER_GREATER_THAN_EQ", "values": [{"userEnteredValue": scale(min)}]})
        }
        (None, Some(max)) => {
            json!({"type": "NUMBER_LESS_THAN_EQ", "values": [{"userEnteredValue": scale(max)}]})
        }
        (None, None) => return None,
    };
    Some(json!({"condition": condition, "strict": true}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_from_urls_or_ids() {
        assert_eq!(
            spreadsheet_id("https://docs.google.com/spreadsheets/d/1AbC-d_9/edit#gid=0").as_deref(),
            Some("1AbC-d_9")
        );
        assert_eq!(spreadsheet_id(" 1AbC ").as_deref(), Some("1AbC"));
        assert_eq!(spreadsheet_id("../etc"), None);
        assert_eq!(spreadsheet_id(""), None);
    }

    #[test]
    fn a1_names_quote_the_tab_and_count_columns_like_sheets() {
        assert_eq!(column_letters(0), "A");
        assert_eq!(column_letters(25), "Z");
        assert_eq!(column_letters(26), "AA");
        assert_eq!(column_letters(701), "ZZ");
        assert_eq!(column_letters(702), "AAA");
        assert_eq!(a1("Bob's data", 4, 1), "'Bob''s data'!B5");
    }

    #[test]
    fn dates_are_serial_numbers() {
        let d = NaiveDate::from_ymd_opt(2024, 1, 31).unwrap_or_default();
        assert_eq!(cell(&Value::Date(d)), json!(45322.0));
        let dt = d.and_hms_opt(12, 0, 0).unwrap_or_default();
        assert_eq!(cell(&Value::Datetime(dt)), json!(45322.5));
        assert_eq!(cell(&Value::Null), json!(""));
        assert_eq!(cell(&Value::Text("=1+1".into())), json!("=1+1"));
        assert_eq!(cell(&Value::Percent(Decimal::new(125, 1))), json!(0.125));
    }
}
