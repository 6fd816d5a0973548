//! The formula language: any text is compiled against a few columns of every numeric type
//! and, when it compiles, evaluated on rows with values, nulls and zeros. The limits are open
//! wide (the input length, `-max_len`, bounds the work): what is checked is that nothing
//! panics or recurses, whatever the nesting.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sheetgpt_core::formula::{self, Limits};
use sheetgpt_core::table::{Column, ColumnType, Value};

fn columns() -> Vec<Column> {
    vec![
        Column::new("c1", "price", ColumnType::Decimal),
        Column::new("c2", "qty", ColumnType::Integer),
        Column::new("c3", "Revenue", ColumnType::Currency),
        Column::new("c4", "Growth", ColumnType::Percent),
        Column::new("c5", "ratio", ColumnType::Float),
        Column::new("c6", "Cost", ColumnType::Currency),
        Column::new("c7", "city", ColumnType::Text),
    ]
}

fn rows() -> Vec<Vec<Value>> {
    let money = |text: &str| Value::parse(text, ColumnType::Currency).unwrap_or(Value::Null);
    vec![
        vec![
            Value::parse("1.10", ColumnType::Decimal).unwrap_or(Value::Null),
            Value::Integer(3),
            money("$1,234,567.89"),
            Value::parse("38%", ColumnType::Percent).unwrap_or(Value::Null),
            Value::Float(0.5),
            money("€10"),
            Value::Text("Paris".into()),
        ],
        vec![
            Value::Null,
            Value::Integer(0),
            money("$0"),
            Value::Null,
            Value::Float(f64::MAX),
            money("$1"),
            Value::Null,
        ],
        vec![
            Value::parse("-79228162514264337593543950335", ColumnType::Decimal)
                .unwrap_or(Value::Null),
            Value::Integer(i64::MIN),
            money("¥7"),
            Value::parse("-100%", ColumnType::Percent).unwrap_or(Value::Null),
            Value::Float(-0.0),
            money("¥3"),
            Value::Text(String::new()),
        ],
    ]
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let columns = columns();
    let limits = Limits {
        max_chars: usize::MAX,
        max_depth: usize::MAX,
    };
    let Ok(f) = formula::compile(text, &columns, &limits) else {
        return;
    };
    let ty = f.result_type();
    for row in rows() {
        if let Ok(value) = f.eval(|i| &row[i]) {
            // A result is null or of the announced type, and converts to any numeric type
            // or text without panicking.
            assert!(
                value.is_null() || Value::parse(&value.to_string(), ty).is_ok(),
                "{value:?} is not a {ty}"
            );
            for to in [ColumnType::Integer, ColumnType::Percent, ColumnType::Text] {
                let _ = formula::convert_result(value.clone(), to);
            }
        }
    }
});
