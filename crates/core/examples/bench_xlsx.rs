//! Writes a typed table of N rows × 10 columns (int, text, date, float, bool, decimal,
//! percent, email, datetime, text) to an .xlsx file with `sheetgpt_core::export::write_xlsx`
//! and prints the time. Compare with `bench/xlsx_python.py` (Python's XlsxWriter in
//! constant_memory mode) on the same data: `bench/xlsx.sh`.
//!
//! Usage: cargo run --release -p sheetgpt-core --example bench_xlsx -- ROWS OUT.xlsx [TEMPLATE.json]
//!
//! With a template (a `sheetgpt_core::template::Template` as JSON), the rows go through its
//! mapping and the sheet gets its styles and layout.

#![expect(clippy::print_stdout, reason = "a benchmark prints its result")]

use std::time::Instant;

use chrono::{NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;
use sheetgpt_core::export::{XlsxMeta, XlsxOptions, write_xlsx};
use sheetgpt_core::table::{Column, ColumnType, Value};
use sheetgpt_core::template::{Resolved, Template};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let rows: i64 = args.next().unwrap_or_else(|| "1000000".into()).parse()?;
    let out = args.next().unwrap_or_else(|| "bench.xlsx".into());
    let template: Option<Template> = match args.next() {
        Some(path) => Some(serde_json::from_str(&std::fs::read_to_string(path)?)?),
        None => None,
    };
    if let Some(Err(problems)) = template.as_ref().map(Template::check) {
        return Err(problems.join("; ").into());
    }
    let types = [
        ("id", ColumnType::Integer),
        ("name", ColumnType::Text),
        ("signup", ColumnType::Date),
        ("score", ColumnType::Float),
        ("active", ColumnType::Boolean),
        ("balance", ColumnType::Decimal),
        ("share", ColumnType::Percent),
        ("email", ColumnType::Email),
        ("seen", ColumnType::Datetime),
        ("notes", ColumnType::Text),
    ];
    let columns: Vec<Column> = types
        .iter()
        .enumerate()
        .map(|(i, (n, t))| Column::new(format!("c{}", i + 1), *n, *t))
        .collect();
    let d0 = NaiveDate::from_ymd_opt(2000, 1, 1).ok_or("date")?;
    let data = (1..=rows).map(move |i| {
        let day = d0 + chrono::Duration::days(i % 9000);
        vec![
            Value::Integer(i),
            Value::Text(format!("user {i}")),
            Value::Date(day),
            Value::Float((i % 1000) as f64 * 1.25),
            Value::Boolean(i % 2 == 0),
            Value::Decimal(Decimal::new(i * 7 % 1_000_000, 2)),
            Value::Percent(Decimal::from(i % 100)),
            Value::Email(format!("u{i}@example.com")),
            Value::Datetime(day.and_hms_opt(12, 30, 0).unwrap_or_default()),
            Value::Text(format!("note {}", i % 7)),
        ]
    });
    let started = Instant::now();
    let file = std::io::BufWriter::new(std::fs::File::create(&out)?);
    let meta = XlsxMeta {
        title: "bench".into(),
        source: "bench_xlsx".into(),
        version: None,
        exported_at: Utc.timestamp_opt(0, 0).single().ok_or("time")?,
    };
    let written = match &template {
        None => write_xlsx(file, &columns, data, &meta, &XlsxOptions::default())?,
        Some(template) => {
            let resolved: Resolved = template.resolve(&columns)?;
            let options = XlsxOptions::for_template(&resolved);
            let rows = data.map(|row| resolved.map_row(&row));
            write_xlsx(file, &resolved.columns, rows, &meta, &options)?
        }
    };
    println!(
        "rust sheetgpt-core write_xlsx: {written} rows in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
