//! The export writers, read back with real readers: calamine for XLSX, the `csv` crate for CSV
//! and serde_json for JSON.

#![expect(clippy::unwrap_used, reason = "test helpers and fixtures fail loudly")]

use std::io::{Cursor, Read};
use std::str::FromStr;

use calamine::{Data, Reader, Xlsx};
use chrono::{NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;
use sheetgpt_core::export::{
    CsvOptions, ExportError, JsonLayout, JsonOptions, XlsxMeta, XlsxOptions, write_csv, write_json,
    write_xlsx,
};
use sheetgpt_core::table::Money;
use sheetgpt_core::{Column, ColumnType, Value};

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// One column of every type, a row of values, a row of nulls and a row with tricky text.
fn every_type() -> (Vec<Column>, Vec<Vec<Value>>) {
    let columns: Vec<Column> = ColumnType::ALL
        .iter()
        .map(|ty| Column::new(ty.as_str(), format!("{} col", ty.as_str()), *ty))
        .collect();
    let date = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
    let first = vec![
        Value::Integer(-1234),
        Value::Decimal(dec("1234.5")),
        Value::Float(0.25),
        Value::Boolean(true),
        Value::Date(date),
        Value::Datetime(date.and_hms_opt(13, 45, 30).unwrap()),
        Value::Currency(Money {
            amount: dec("99.99"),
            currency: "EUR".into(),
        }),
        Value::Percent(dec("12.5")),
        Value::Url("https://example.com/a?b=c".into()),
        Value::Email("ann@example.com".into()),
        Value::Text("=SUM(A1)".into()),
    ];
    let nulls = vec![Value::Null; columns.len()];
    let mut third = first.clone();
    third[0] = Value::Integer(7);
    third[3] = Value::Boolean(false);
    third[10] = Value::Text("Zoë, \"quoted\"\nline".into());
    (columns, vec![first, nulls, third])
}

fn meta() -> XlsxMeta {
    XlsxMeta {
        title: "Invoices".into(),
        source: "invoices.pdf".into(),
        version: Some(3),
        exported_at: Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap(),
    }
}

fn xlsx_bytes(columns: &[Column], rows: Vec<Vec<Value>>, options: &XlsxOptions) -> Vec<u8> {
    let mut out = Vec::new();
    let written = write_xlsx(
        &mut out,
        columns,
        rows.clone().into_iter(),
        &meta(),
        options,
    )
    .unwrap();
    assert_eq!(written, rows.len() as u64);
    out
}

fn zip_entry(bytes: &[u8], name: &str) -> String {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    let mut text = String::new();
    archive
        .by_name(name)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    text
}

#[test]
fn xlsx_keeps_the_header_and_the_type_of_every_cell() {
    let (columns, rows) = every_type();
    let bytes = xlsx_bytes(&columns, rows, &XlsxOptions::default());

    let mut book = Xlsx::new(Cursor::new(bytes)).unwrap();
    assert_eq!(
        book.sheet_names(),
        vec!["Data".to_owned(), "About".to_owned()]
    );
    let data = book.worksheet_range("Data").unwrap();
    assert_eq!(data.get_size(), (4, 11));

    let header: Vec<_> = data.rows().next().unwrap().to_vec();
    let names: Vec<Data> = columns
        .iter()
        .map(|c| Data::String(c.name.clone()))
        .collect();
    assert_eq!(header, names);

    let row = |r: usize, c: usize| data.get((r, c)).unwrap().clone();
    assert_eq!(row(1, 0), Data::Float(-1234.0));
    assert_eq!(row(1, 1), Data::Float(1234.5));
    assert_eq!(row(1, 2), Data::Float(0.25));
    assert_eq!(row(1, 3), Data::Bool(true));
    let Data::DateTime(d) = row(1, 4) else {
        panic!("date cell is {:?}", row(1, 4))
    };
    assert_eq!(
        d.as_datetime().unwrap(),
        NaiveDate::from_ymd_opt(2024, 2, 29)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
    );
    let Data::DateTime(dt) = row(1, 5) else {
        panic!("datetime cell is {:?}", row(1, 5))
    };
    assert_eq!(
        dt.as_datetime().unwrap(),
        NaiveDate::from_ymd_opt(2024, 2, 29)
            .unwrap()
            .and_hms_opt(13, 45, 30)
            .unwrap()
    );
    assert_eq!(row(1, 6), Data::Float(99.99));
    assert_eq!(row(1, 7), Data::Float(0.125));
    assert_eq!(row(1, 8), Data::String("https://example.com/a?b=c".into()));
    assert_eq!(row(1, 9), Data::String("ann@example.com".into()));
    // Strings in a workbook are never formulas: no escaping needed or wanted.
    assert_eq!(row(1, 10), Data::String("=SUM(A1)".into()));

    for c in 0..11 {
        assert_eq!(row(2, c), Data::Empty, "null in column {c}");
    }
    assert_eq!(row(3, 3), Data::Bool(false));
    assert_eq!(row(3, 10), Data::String("Zoë, \"quoted\"\nline".into()));
}

#[test]
fn xlsx_cells_carry_number_formats_and_the_sheet_a_frozen_header_and_validations() {
    let (mut columns, rows) = every_type();
    columns[0].rules.min = Some(dec("0"));
    columns[0].rules.max = Some(dec("100"));
    columns[10].rules.one_of = Some(vec!["open".into(), "closed".into()]);
    let bytes = xlsx_bytes(&columns, rows, &XlsxOptions::default());

    let styles = zip_entry(&bytes, "xl/styles.xml");
    for format in [
        "#,##0",
        "#,##0.00",
        "0.00%",
        "yyyy-mm-dd",
        "yyyy-mm-dd hh:mm:ss",
        "#,##0.00 &quot;EUR&quot;",
    ] {
        assert!(
            styles.contains(&format!("formatCode=\"{format}\"")),
            "missing number format {format}"
        );
    }
    let sheet = zip_entry(&bytes, "xl/worksheets/sheet1.xml");
    assert!(sheet.contains("ySplit=\"1\""), "header row is not frozen");
    assert!(sheet.contains("<dataValidation type=\"list\""));
    assert!(sheet.contains("\"open,closed\""));
    assert!(sheet.contains("<dataValidation type=\"decimal\""));
    assert!(sheet.contains("<hyperlink "));
    assert!(sheet.contains("<cols>"));
}

#[test]
fn xlsx_small_tables_get_an_excel_table_and_large_ones_an_autofilter() {
    let (columns, rows) = every_type();

    let small = xlsx_bytes(&columns, rows.clone(), &XlsxOptions::default());
    let mut book = Xlsx::new(Cursor::new(small.clone())).unwrap();
    book.load_tables().unwrap();
    assert_eq!(book.table_names().len(), 1);
    assert!(!zip_entry(&small, "xl/worksheets/sheet1.xml").contains("<autoFilter"));

    let limit = XlsxOptions {
        table_cell_limit: 20,
        ..XlsxOptions::default()
    };
    let large = xlsx_bytes(&columns, rows, &limit);
    let mut book = Xlsx::new(Cursor::new(large.clone())).unwrap();
    book.load_tables().unwrap();
    assert!(book.table_names().is_empty());
    assert!(zip_entry(&large, "xl/worksheets/sheet1.xml").contains("<autoFilter ref=\"A1:K4\""));
    // The data is the same either way.
    assert_eq!(book.worksheet_range("Data").unwrap().get_size(), (4, 11));
}

#[test]
fn xlsx_about_sheet_describes_the_export() {
    let (mut columns, rows) = every_type();
    columns[0].description = Some("how many".into());
    let bytes = xlsx_bytes(&columns, rows, &XlsxOptions::default());

    let mut book = Xlsx::new(Cursor::new(bytes)).unwrap();
    let about = book.worksheet_range("About").unwrap();
    let cell = |r: usize, c: usize| about.get((r, c)).cloned().unwrap_or(Data::Empty);
    assert_eq!(cell(0, 1), Data::String("Invoices".into()));
    assert_eq!(cell(1, 1), Data::String("invoices.pdf".into()));
    assert_eq!(cell(2, 1), Data::Float(3.0));
    let Data::DateTime(at) = cell(3, 1) else {
        panic!("exported at is {:?}", cell(3, 1))
    };
    assert_eq!(at.as_datetime().unwrap(), meta().exported_at.naive_utc());
    assert_eq!(cell(4, 1), Data::Float(3.0));
    assert_eq!(cell(5, 1), Data::Float(11.0));
    assert_eq!(cell(8, 0), Data::String("integer col".into()));
    assert_eq!(cell(8, 1), Data::String("integer".into()));
    assert_eq!(cell(8, 2), Data::String("how many".into()));
}

#[test]
fn xlsx_with_no_rows_still_has_its_header() {
    let (columns, _) = every_type();
    let bytes = xlsx_bytes(&columns, Vec::new(), &XlsxOptions::default());
    let mut book = Xlsx::new(Cursor::new(bytes)).unwrap();
    assert_eq!(book.worksheet_range("Data").unwrap().get_size(), (1, 11));
}

#[test]
fn a_row_with_the_wrong_number_of_cells_is_an_error() {
    let (columns, _) = every_type();
    let rows = vec![vec![Value::Integer(1)]];
    let err = write_xlsx(
        Vec::new(),
        &columns,
        rows.clone().into_iter(),
        &meta(),
        &XlsxOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(
        err,
        ExportError::RowWidth {
            row: 0,
            expected: 11,
            found: 1
        }
    ));
    let err = write_csv(
        Vec::new(),
        &columns,
        rows.into_iter(),
        &CsvOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, ExportError::RowWidth { .. }));
}

#[test]
#[ignore = "timing only: cargo test -p sheetgpt-core --test export_roundtrip -- --ignored --nocapture"]
fn xlsx_of_100_000_rows_by_10_typed_columns() {
    let types = [
        ColumnType::Integer,
        ColumnType::Decimal,
        ColumnType::Float,
        ColumnType::Boolean,
        ColumnType::Date,
        ColumnType::Datetime,
        ColumnType::Currency,
        ColumnType::Percent,
        ColumnType::Email,
        ColumnType::Text,
    ];
    let columns: Vec<Column> = types
        .iter()
        .enumerate()
        .map(|(i, ty)| Column::new(format!("c{i}"), format!("col {i}"), *ty))
        .collect();
    let day = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
    let rows = (0..100_000i64).map(move |i| {
        vec![
            Value::Integer(i),
            Value::Decimal(Decimal::new(i * 7, 2)),
            Value::Float(i as f64 / 3.0),
            Value::Boolean(i % 2 == 0),
            Value::Date(day + chrono::Days::new((i % 3000) as u64)),
            Value::Datetime(day.and_hms_opt(12, 0, 0).unwrap()),
            Value::Currency(Money {
                amount: Decimal::new(i, 2),
                currency: "USD".into(),
            }),
            Value::Percent(Decimal::new(i % 1000, 1)),
            Value::Email(format!("user{i}@example.com")),
            Value::Text(format!("row number {i}")),
        ]
    });
    let start = std::time::Instant::now();
    let mut out = Vec::new();
    let n = write_xlsx(&mut out, &columns, rows, &meta(), &XlsxOptions::default()).unwrap();
    eprintln!(
        "wrote {n} rows x 10 columns in {:?}, {} bytes",
        start.elapsed(),
        out.len()
    );
    assert_eq!(n, 100_000);
}

fn read_csv(bytes: &[u8]) -> Vec<Vec<String>> {
    let body = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(body)
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

#[test]
fn csv_escapes_formulas_in_text_but_not_negative_numbers() {
    let (columns, rows) = every_type();
    let mut out = Vec::new();
    let n = write_csv(&mut out, &columns, rows.into_iter(), &CsvOptions::default()).unwrap();
    assert_eq!(n, 3);

    let records = read_csv(&out);
    assert_eq!(records.len(), 4);
    assert_eq!(records[0][0], "integer col");
    assert_eq!(records[1][10], "'=SUM(A1)");
    assert_eq!(records[1][0], "-1234");
    assert_eq!(records[3][10], "Zoë, \"quoted\"\nline");
    assert!(records[2].iter().all(String::is_empty));
    assert!(!out.starts_with("\u{feff}".as_bytes()));
    assert!(out.ends_with(b"\r\n"));
}

#[test]
fn csv_values_parse_back_to_the_same_values() {
    let (columns, rows) = every_type();
    let mut out = Vec::new();
    write_csv(
        &mut out,
        &columns,
        rows.clone().into_iter(),
        &CsvOptions::default(),
    )
    .unwrap();
    let records = read_csv(&out);
    for (c, column) in columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.ty != ColumnType::Text)
    {
        for (r, row) in rows.iter().enumerate() {
            let back = Value::parse(&records[r + 1][c], column.ty).unwrap();
            assert_eq!(back, row[c], "row {r}, column {}", column.name);
        }
    }
}

#[test]
fn csv_starts_with_a_bom_and_uses_the_delimiter_when_asked() {
    let (columns, rows) = every_type();
    let mut out = Vec::new();
    let options = CsvOptions {
        bom: true,
        delimiter: b';',
    };
    write_csv(&mut out, &columns, rows.into_iter(), &options).unwrap();
    assert!(out.starts_with("\u{feff}".as_bytes()));
    let body = &out[3..];
    let records: Vec<_> = csv::ReaderBuilder::new()
        .delimiter(b';')
        .from_reader(body)
        .records()
        .map(Result::unwrap)
        .collect();
    assert_eq!(records.len(), 3);
    assert_eq!(&records[0][6], "99.99 EUR");
}

#[test]
fn json_records_have_one_object_per_row_with_canonical_cells() {
    let (columns, rows) = every_type();
    let mut out = Vec::new();
    let n = write_json(
        &mut out,
        &columns,
        rows.clone().into_iter(),
        &JsonOptions::default(),
    )
    .unwrap();
    assert_eq!(n, 3);

    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let records = doc.as_array().unwrap();
    assert_eq!(records.len(), 3);
    for (record, row) in records.iter().zip(&rows) {
        let object = record.as_object().unwrap();
        let keys: Vec<_> = object.keys().cloned().collect();
        let names: Vec<_> = columns.iter().map(|c| c.name.clone()).collect();
        assert_eq!(keys, names);
        for (column, cell) in columns.iter().zip(row) {
            assert_eq!(object[&column.name], cell.to_json());
        }
    }
    assert_eq!(records[1]["integer col"], serde_json::Value::Null);
    assert_eq!(records[0]["currency col"]["currency"], "EUR");
}

#[test]
fn json_columns_layout_has_the_types_and_rows_as_arrays() {
    let (columns, rows) = every_type();
    let mut out = Vec::new();
    let options = JsonOptions {
        layout: JsonLayout::Columns,
    };
    write_json(&mut out, &columns, rows.clone().into_iter(), &options).unwrap();

    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let header = doc["columns"].as_array().unwrap();
    assert_eq!(header.len(), 11);
    assert_eq!(
        header[4],
        serde_json::json!({"name": "date col", "type": "date"})
    );
    let back: Vec<Vec<Value>> = doc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .zip(&columns)
                .map(|(cell, column)| Value::from_json(cell, column.ty).unwrap())
                .collect()
        })
        .collect();
    assert_eq!(back, rows);
}

#[test]
fn json_of_no_rows_is_still_a_valid_document() {
    let (columns, _) = every_type();
    for layout in [JsonLayout::Records, JsonLayout::Columns] {
        let mut out = Vec::new();
        write_json(
            &mut out,
            &columns,
            std::iter::empty(),
            &JsonOptions { layout },
        )
        .unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let rows = match layout {
            JsonLayout::Records => &doc,
            JsonLayout::Columns => &doc["rows"],
        };
        assert_eq!(rows.as_array().unwrap().len(), 0);
    }
}
