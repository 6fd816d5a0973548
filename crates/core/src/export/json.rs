//! JSON export, streamed: each cell goes to the writer as it is produced, so the document is
//! never whole in memory. Cells use the canonical form of `Value::to_json`.

use std::io::{BufWriter, Write};

use serde_json::json;

use crate::table::{Column, Value};

use super::{ExportError, check_width};

/// The shape of the JSON document.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JsonLayout {
    /// `[{"column name": cell, …}, …]`: one object per row.
    #[default]
    Records,
    /// `{"columns": [{"name", "type"}, …], "rows": [[cell, …], …]}`: keeps the types and the
    /// column order, smaller for wide tables.
    Columns,
}

/// How to write a JSON file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JsonOptions {
    pub layout: JsonLayout,
}

/// Writes the rows as one JSON document, one row per line. Returns the number of rows written.
pub fn write_json<W: Write>(
    out: W,
    columns: &[Column],
    rows: impl Iterator<Item = Vec<Value>>,
    options: &JsonOptions,
) -> Result<u64, ExportError> {
    let mut out = BufWriter::new(out);
    let count = match options.layout {
        JsonLayout::Records => write_records(&mut out, columns, rows)?,
        JsonLayout::Columns => write_columns(&mut out, columns, rows)?,
    };
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(count)
}

fn write_records<W: Write>(
    out: &mut W,
    columns: &[Column],
    rows: impl Iterator<Item = Vec<Value>>,
) -> Result<u64, ExportError> {
    // Keys are escaped once, not once per row.
    let keys = columns
        .iter()
        .map(|c| serde_json::to_string(&c.name))
        .collect::<Result<Vec<_>, _>>()?;
    out.write_all(b"[")?;
    let mut count = 0u64;
    for row in rows {
        check_width(columns, &row, count)?;
        out.write_all(if count == 0 { b"\n{" } else { b",\n{" })?;
        for (i, (key, cell)) in keys.iter().zip(&row).enumerate() {
            if i > 0 {
                out.write_all(b",")?;
            }
            out.write_all(key.as_bytes())?;
            out.write_all(b":")?;
            serde_json::to_writer(&mut *out, &cell.to_json())?;
        }
        out.write_all(b"}")?;
        count += 1;
    }
    out.write_all(if count == 0 { b"]" } else { b"\n]" })?;
    Ok(count)
}

fn write_columns<W: Write>(
    out: &mut W,
    columns: &[Column],
    rows: impl Iterator<Item = Vec<Value>>,
) -> Result<u64, ExportError> {
    let header: Vec<_> = columns
        .iter()
        .map(|c| json!({"name": c.name, "type": c.ty.as_str()}))
        .collect();
    out.write_all(b"{\"columns\":")?;
    serde_json::to_writer(&mut *out, &header)?;
    out.write_all(b",\n\"rows\":[")?;
    let mut count = 0u64;
    for row in rows {
        check_width(columns, &row, count)?;
        out.write_all(if count == 0 { b"\n[" } else { b",\n[" })?;
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                out.write_all(b",")?;
            }
            serde_json::to_writer(&mut *out, &cell.to_json())?;
        }
        out.write_all(b"]")?;
        count += 1;
    }
    out.write_all(if count == 0 { b"]}" } else { b"\n]}" })?;
    Ok(count)
}
