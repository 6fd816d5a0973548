//! Changes as clients and models send them: any JSON that deserializes as operations is
//! planned and applied to a small table (with the default limits), as the server does.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use sheetgpt_core::table::Table;
use sheetgpt_core::version::{self, Limits, Op, POSITION_STEP, Row, Schema, Working};

fuzz_target!(|data: &[u8]| {
    let Ok(ops) = serde_json::from_slice::<Vec<Op>>(data) else {
        return;
    };
    let table = Table::from_text(
        &[
            "city".into(),
            "population".into(),
            "share".into(),
            "price".into(),
        ],
        &[
            vec![
                "Paris".into(),
                "2102650".into(),
                "3.1%".into(),
                "$1.50".into(),
            ],
            vec!["Lyon".into(), "522250".into(), "0.8%".into(), "€2".into()],
            vec!["Nice".into(), "".into(), "".into(), "".into()],
        ],
    );
    let schema = Schema::new(table.columns.clone());
    let mut rows = HashMap::new();
    for (i, cells) in table.rows.iter().enumerate() {
        let id = i as i64 + 1;
        let cells = table
            .columns
            .iter()
            .zip(cells)
            .map(|(c, v)| (c.id.clone(), v.clone()))
            .collect();
        rows.insert(
            id,
            Row {
                id,
                position: id * POSITION_STEP,
                cells,
            },
        );
    }
    let needs = version::plan(&ops);
    let successors = needs
        .successors_of
        .iter()
        .map(|id| (*id, rows.get(&(id + 1)).map(|r| r.position)))
        .collect();
    let working = Working {
        rows,
        successors,
        max_position: 3 * POSITION_STEP,
        next_row_id: 4,
    };
    if let Ok(out) = version::apply(&schema, &ops, working, &Limits::default()) {
        // Every row written has a cell only for columns the schema knows or knew.
        assert!(out.next_row_id >= 4);
        for row in out.upserted.values() {
            let _ = row.data_json();
        }
    }
});
