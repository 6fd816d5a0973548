//! For any table of typed values, a CSV export read back by the import gives the same values
//! and the same types: identifiers with leading zeros, digit strings too long for a float,
//! text with spaces at either end and numbers written the European way stay text where they
//! were text, and numbers, dates and booleans come back as they were.
//!
//! What CSV cannot carry, and so what the tables here avoid: text that starts like a formula
//! (`=`, `+`, `-`, `@`: the writer escapes it with `'`), text that is blank or a null marker,
//! and a text column every value of which reads as another type (each text column here has a
//! word in it, as a column of names or notes does).

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

use std::io::Cursor;

use chrono::NaiveDate;
use proptest::prelude::*;
use rust_decimal::Decimal;
use sheetgpt_core::export::{CsvOptions, write_csv};
use sheetgpt_core::import::{Limits, Source, read_table};
use sheetgpt_core::table::is_null_token;
use sheetgpt_core::{Column, ColumnType, Value};

/// Text that a person keeps as text: ids, long digit strings, spaced text, European numbers.
fn text_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "0[0-9]{1,6}",
        "[1-9][0-9]{15,24}",
        "( {1,2})?[A-Za-zé]{1,8}( [a-z]{1,6})?( {1,2})?",
        "[1-9]{1,3}(\\.[0-9]{3}){1,3},[0-9]{2}",
        "[1-9]{1,3}( [0-9]{3}){1,2},[0-9]{1,2}",
        "\\(555\\) [0-9]{3}-[0-9]{4}",
    ]
    .prop_filter("not blank or a null marker", |s| {
        !s.trim().is_empty() && !is_null_token(s)
    })
}

/// Identifiers alone: a column of only these is text, every digit kept.
fn identifier() -> impl Strategy<Value = String> {
    prop_oneof![
        "0[0-9]{1,6}",
        "[1-9][0-9]{15,24}",
        "\\(555\\) [0-9]{3}-[0-9]{4}",
    ]
}

/// `Email` stands for a text column of identifiers only (drawn as text).
fn column_values(ty: ColumnType, rows: usize) -> BoxedStrategy<Vec<Value>> {
    match ty {
        ColumnType::Email => {
            prop::collection::vec(identifier().prop_map(Value::Text), rows).boxed()
        }
        ColumnType::Integer => prop::collection::vec(
            (-999_999_999_999_999i64..999_999_999_999_999).prop_map(Value::Integer),
            rows,
        )
        .boxed(),
        ColumnType::Decimal => prop::collection::vec(
            (-1_000_000_000i64..1_000_000_000, 1u32..6)
                .prop_map(|(m, s)| Value::Decimal(Decimal::new(m, s))),
            rows,
        )
        .boxed(),
        ColumnType::Date => prop::collection::vec(
            (1900i32..2100, 1u32..=12, 1u32..=28)
                .prop_map(|(y, m, d)| Value::Date(NaiveDate::from_ymd_opt(y, m, d).unwrap())),
            rows,
        )
        .boxed(),
        ColumnType::Boolean => {
            prop::collection::vec(any::<bool>().prop_map(Value::Boolean), rows).boxed()
        }
        _ => (
            prop::collection::vec(text_value().prop_map(Value::Text), rows),
            0..rows,
            "[A-Z][a-z]{2,8}",
        )
            .prop_map(|(mut values, at, word)| {
                values[at] = Value::Text(word);
                values
            })
            .boxed(),
    }
}

fn table() -> impl Strategy<Value = (Vec<Column>, Vec<Vec<Value>>)> {
    let types = prop::collection::vec(
        prop::sample::select(vec![
            ColumnType::Integer,
            ColumnType::Decimal,
            ColumnType::Date,
            ColumnType::Boolean,
            ColumnType::Text,
            ColumnType::Email,
        ]),
        1..5,
    );
    (types, 1usize..6).prop_flat_map(|(types, rows)| {
        let columns: Vec<BoxedStrategy<Vec<Value>>> =
            types.iter().map(|ty| column_values(*ty, rows)).collect();
        (Just(types), columns).prop_map(move |(types, values)| {
            let columns = types
                .iter()
                .enumerate()
                .map(|(i, ty)| {
                    let ty = if *ty == ColumnType::Email {
                        ColumnType::Text
                    } else {
                        *ty
                    };
                    Column::new(format!("c{}", i + 1), format!("col {}", i + 1), ty)
                })
                .collect();
            let rows = (0..rows)
                .map(|r| values.iter().map(|col| col[r].clone()).collect())
                .collect();
            (columns, rows)
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_csv_export_imports_back_to_the_same_values_and_types((columns, rows) in table()) {
        let mut csv = Vec::new();
        write_csv(&mut csv, &columns, rows.clone().into_iter(), &CsvOptions::default()).unwrap();
        let (back, _) = read_table(
            Cursor::new(csv.clone()),
            &Source::Delimited { delimiter: None },
            &Limits::default(),
        )
        .unwrap();
        let text = String::from_utf8_lossy(&csv);
        let types: Vec<ColumnType> = back.columns.iter().map(|c| c.ty).collect();
        let want: Vec<ColumnType> = columns.iter().map(|c| c.ty).collect();
        prop_assert_eq!(types, want, "{}", text);
        prop_assert_eq!(back.rows, rows, "{}", text);
    }
}
