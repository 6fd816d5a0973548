//! What a model is told about a table the user pasted.
//!
//! A table in the user's own message is stored whole, straight from the message (the model's
//! reply never decides what the user's data was). The model only needs to know what the table
//! is: when the message does not fit the model's window, each pasted table in it is replaced by
//! a summary (its name, size, columns with their types and its first rows), never cut mid-row.
//! The summary has a fixed shape so that the offline model can read it back.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

use crate::extract::to_markdown;
use crate::table::Table;

/// How every summary starts.
pub const MARK: &str = "[SheetGPT summary of a table the user pasted: ";
/// How every summary ends.
pub const END: &str = "[end of the summary]";

/// The text sent to the model in place of a pasted table: its name, size, columns with their
/// types and its first rows as Markdown: at most `sample_rows` rows, fewer when they would
/// take more than about `max_chars` characters (the first row is always shown).
pub fn summarize(name: &str, table: &Table, sample_rows: usize, max_chars: usize) -> String {
    let columns: Vec<String> = table
        .columns
        .iter()
        .map(|c| format!("{} ({})", c.name, c.ty))
        .collect();
    let mut sample = Table {
        columns: table.columns.clone(),
        rows: Vec::new(),
    };
    let mut markdown = to_markdown(&sample);
    for row in table.rows.iter().take(sample_rows) {
        sample.rows.push(row.clone());
        let next = to_markdown(&sample);
        if next.len() > max_chars && sample.rows.len() > 1 {
            sample.rows.pop();
            break;
        }
        markdown = next;
    }
    let shown = sample.rows.len();
    let rows = table.rows.len();
    format!(
        "{MARK}“{}” — {rows} rows × {} columns: {}. SheetGPT stored the whole table as “{}”, \
         the conversation's current table; {} below.]\n{}{END}",
        name.replace('”', "\""),
        table.columns.len(),
        columns.join(", "),
        name.replace('”', "\""),
        if shown == rows {
            "all its rows are".to_owned()
        } else {
            format!("its first {shown} rows are")
        },
        markdown,
    )
}

/// `text` with each range replaced by its text. Ranges are byte ranges on char boundaries,
/// in order and not overlapping (as `extract_tables` gives them).
pub fn replace_spans(text: &str, replacements: &[(Range<usize>, String)]) -> String {
    let mut out = String::with_capacity(text.len().min(1 << 16));
    let mut last = 0;
    for (span, with) in replacements {
        if span.start < last || span.end > text.len() {
            continue;
        }
        out.push_str(&text[last..span.start]);
        out.push_str(with);
        last = span.end;
    }
    out.push_str(&text[last..]);
    out
}

/// A summary found in a text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summarised {
    /// Byte range of the whole summary, its end mark included.
    pub span: Range<usize>,
    pub name: String,
    pub rows: usize,
    pub columns: usize,
    /// The columns as the summary lists them: `name (type), …`.
    pub described_columns: String,
}

static HEAD: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"^“(.*?)” — (\d+) rows × (\d+) columns: (.*?)\. SheetGPT stored").ok()
});

/// The summaries in a text, in order (what the offline model reads back).
pub fn find_summaries(text: &str) -> Vec<Summarised> {
    let mut out = Vec::new();
    let Some(head) = HEAD.as_ref() else {
        return out;
    };
    let mut from = 0;
    while let Some(at) = text[from..].find(MARK) {
        let start = from + at;
        let body = &text[start + MARK.len()..];
        let Some(end) = body.find(END) else {
            break;
        };
        let end = start + MARK.len() + end + END.len();
        let line = body.lines().next().unwrap_or_default();
        if let Some(c) = head.captures(line) {
            out.push(Summarised {
                span: start..end,
                name: c[1].to_owned(),
                rows: c[2].parse().unwrap_or(0),
                columns: c[3].parse().unwrap_or(0),
                described_columns: c[4].to_owned(),
            });
        }
        from = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::extract_tables;

    fn table(rows: usize) -> Table {
        let csv: String = std::iter::once("city,population\n".to_owned())
            .chain((0..rows).map(|i| format!("City {i},{}\n", 1000 + i)))
            .collect();
        extract_tables(&csv).remove(0).table
    }

    #[test]
    fn a_summary_names_the_size_the_columns_and_shows_the_first_rows() {
        let s = summarize("Cities", &table(3000), 20, 4000);
        assert!(s.starts_with(MARK) && s.ends_with(END), "{s}");
        assert!(s.contains("3000 rows × 2 columns: city (text), population (integer)"));
        assert!(s.contains("its first 20 rows are below"), "{s}");
        assert!(
            s.contains("| City 19 |") && !s.contains("| City 20 |"),
            "{s}"
        );
    }

    #[test]
    fn the_sample_stops_before_the_character_budget_but_keeps_one_row() {
        let s = summarize("Cities", &table(3000), 20, 120);
        let shown = s.matches("| City ").count();
        assert!((1..5).contains(&shown), "{s}");
        assert!(s.contains(&format!("its first {shown} rows")), "{s}");
        let tiny = summarize("Cities", &table(3000), 20, 1);
        assert!(tiny.contains("| City 0 |"), "{tiny}");
    }

    #[test]
    fn a_small_table_is_shown_whole() {
        let s = summarize("Cities", &table(2), 20, 4000);
        assert!(s.contains("all its rows are below"), "{s}");
    }

    #[test]
    fn summaries_are_read_back_with_their_spans() {
        let a = summarize("Cities", &table(3000), 5, 4000);
        let b = summarize("Towns “north”", &table(7), 5, 4000);
        let text = format!("Here you go:\n{a}\nand\n{b}\nsort by population");
        let found = find_summaries(&text);
        assert_eq!(found.len(), 2);
        assert_eq!((found[0].rows, found[0].columns), (3000, 2));
        assert_eq!(found[0].name, "Cities");
        assert_eq!(&text[found[0].span.clone()], a);
        assert_eq!(found[1].rows, 7);
        assert_eq!(&text[found[1].span.clone()], b);
    }

    #[test]
    fn spans_are_replaced_in_order() {
        let text = "aaa TABLE1 bbb TABLE2 ccc";
        let out = replace_spans(
            text,
            &[(4..10, "one".to_owned()), (15..21, "two".to_owned())],
        );
        assert_eq!(out, "aaa one bbb two ccc");
    }
}
