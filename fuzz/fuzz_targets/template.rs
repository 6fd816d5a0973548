//! Templates as users send them: any JSON that deserializes is checked, and a template that
//! passes the check is resolved against a table and maps its rows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sheetgpt_core::table::{Column, ColumnType, Value};
use sheetgpt_core::template::Template;

fuzz_target!(|data: &[u8]| {
    let Ok(template) = serde_json::from_slice::<Template>(data) else {
        return;
    };
    if template.check().is_err() {
        return;
    }
    let columns = vec![
        Column::new("c1", "name", ColumnType::Text),
        Column::new("c2", "amount", ColumnType::Decimal),
        Column::new("c3", "due", ColumnType::Date),
    ];
    let Ok(resolved) = template.resolve(&columns) else {
        return;
    };
    assert_eq!(resolved.columns.len(), resolved.styles.len());
    let row = vec![Value::Text("Ann".into()), Value::Integer(3), Value::Null];
    assert_eq!(resolved.map_row(&row).len(), resolved.columns.len());
    let _ = resolved.layout.start();
});
