//! Uploads: `core::import` on any bytes, as `POST /tables/import` and `sheetgpt convert` read
//! them — delimited text with the delimiter sniffed, and, when the bytes start like one, a
//! spreadsheet (XLSX, XLSB, ODS, XLS). The limits are small so that an input that slips past
//! a bound shows as a row or cell over it (asserted) or as memory over libFuzzer's limit.
#![no_main]

use std::io::Cursor;
use std::ops::ControlFlow;

use libfuzzer_sys::fuzz_target;
use sheetgpt_core::import::{Import, Limits, Source, looks_like_spreadsheet, text_over};
use sheetgpt_core::table::DateOrder;

fn limits() -> Limits {
    Limits {
        max_columns: 200,
        max_rows: 20_000,
        max_cell_chars: 2_000,
        max_inflated_bytes: 64 * 1024 * 1024,
        max_shared_strings_bytes: 16 * 1024 * 1024,
        max_sheet_cells: 1_000_000,
        dates: DateOrder::MonthFirst,
    }
}

fn read(data: &[u8], source: Source) {
    let mut limits = limits();
    // Both ways of reading dates that read both ways.
    if data.len() % 2 == 0 {
        limits.dates = DateOrder::DayFirst;
    }
    let Ok(import) = Import::open(Cursor::new(data), &source, &limits) else {
        return;
    };
    let scan = import.scan().clone();
    assert!(scan.columns.len() <= limits.max_columns);
    assert!(scan.rows <= limits.max_rows);
    let width = scan.columns.len();
    let mut seen = 0u64;
    let read = import.rows(|row| {
        assert_eq!(row.len(), width, "a row aligned with the columns");
        assert!(row.iter().all(|v| !text_over(v, limits.max_cell_chars)));
        seen += 1;
        ControlFlow::Continue(())
    });
    if let Ok(count) = read {
        assert_eq!(count, seen);
        assert_eq!(count, scan.rows, "the second pass hands over the rows the first counted");
    }
}

fuzz_target!(|data: &[u8]| {
    read(data, Source::Delimited { delimiter: None });
    if looks_like_spreadsheet(data) {
        read(data, Source::Spreadsheet { sheet: None });
    }
});
