//! CSV export: RFC 4180 (CRLF line ends, quotes doubled), UTF-8 with an optional BOM so that
//! Excel detects the encoding, and cells that a spreadsheet would run as a formula escaped.

use std::io::Write;

use crate::table::{Column, Value};

use super::{ExportError, check_width};

/// How to write a CSV file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CsvOptions {
    /// Start the file with a UTF-8 byte order mark. Excel needs it to read UTF-8 (otherwise it
    /// assumes the local code page); most other readers accept it.
    pub bom: bool,
    /// The field separator, `b','` by default (`b';'` suits Excel in comma-decimal locales).
    pub delimiter: u8,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            bom: false,
            delimiter: b',',
        }
    }
}

const BOM: &[u8] = "\u{feff}".as_bytes();

/// Writes a header row with the column names, then one record per row. Returns the number of
/// data rows written.
pub fn write_csv<W: Write>(
    mut out: W,
    columns: &[Column],
    rows: impl Iterator<Item = Vec<Value>>,
    options: &CsvOptions,
) -> Result<u64, ExportError> {
    if options.bom {
        out.write_all(BOM)?;
    }
    let mut writer = ::csv::WriterBuilder::new()
        .delimiter(options.delimiter)
        .terminator(::csv::Terminator::CRLF)
        .from_writer(out);

    // Names are free text too: a column named `=cmd|…` must not run either.
    writer.write_record(columns.iter().map(|c| escape_formula(&c.name).into_owned()))?;

    let mut count = 0u64;
    let mut record: Vec<String> = Vec::with_capacity(columns.len());
    for row in rows {
        check_width(columns, &row, count)?;
        record.clear();
        record.extend(row.iter().map(cell_text));
        writer.write_record(&record)?;
        count += 1;
    }
    writer.flush()?;
    Ok(count)
}

/// The text of one cell. Typed numbers, dates and booleans are written as `Value`'s display
/// form, which `Value::parse` reads back; a negative number stays `-5` (a number, not a
/// formula). Free text is escaped.
fn cell_text(value: &Value) -> String {
    match value {
        Value::Text(s) | Value::Url(s) | Value::Email(s) => escape_formula(s).into_owned(),
        // The currency is free text after a number (`-5 =1+cmd|…`): escape unless it is a
        // plain code or symbol.
        Value::Currency(m) if !is_plain_currency(&m.currency) => {
            format!("'{value}")
        }
        other => other.to_string(),
    }
}

fn is_plain_currency(currency: &str) -> bool {
    currency
        .chars()
        .all(|c| c.is_alphanumeric() || "$€£¥₹₩₽₺".contains(c))
}

/// Prefixes `'` to text that a spreadsheet would read as a formula (OWASP "CSV injection"):
/// text starting with `=`, `+`, `-`, `@`, a tab or a carriage return.
fn escape_formula(text: &str) -> std::borrow::Cow<'_, str> {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}").into(),
        _ => text.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_that_starts_like_a_formula_is_prefixed_with_a_quote() {
        for t in ["=SUM(A1)", "+1", "-1+2", "@cmd", "\tx", "\rx"] {
            assert_eq!(escape_formula(t), format!("'{t}"));
        }
        assert_eq!(escape_formula("plain"), "plain");
    }

    #[test]
    fn negative_numbers_are_not_escaped_but_negative_text_is() {
        assert_eq!(cell_text(&Value::Integer(-5)), "-5");
        assert_eq!(cell_text(&Value::Text("-5".into())), "'-5");
    }
}
