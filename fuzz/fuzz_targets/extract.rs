//! Tables out of text: `extract_tables` on anything (Markdown, fenced and bare JSON, CSV/TSV
//! and other delimited pastes, prose), then the offline model on the same text, which extracts
//! too and otherwise parses its command language.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sheetgpt_core::extract::{extract_tables, to_csv, to_markdown};
use sheetgpt_core::offline;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for found in extract_tables(&text) {
        assert!(found.span.start <= found.span.end && found.span.end <= text.len());
        let t = &found.table;
        assert!(t.rows.iter().all(|r| r.len() == t.columns.len()));
        // The writers take whatever was extracted.
        let _ = to_markdown(t);
        let _ = to_csv(t, b',');
    }
    let _ = offline::reply(&text);
});
