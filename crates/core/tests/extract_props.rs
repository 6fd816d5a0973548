//! Properties of extraction: it never panics, whatever the text, and what the writers write
//! reads back to the same table.
//!
//! What text cannot carry, and so what the generated tables avoid:
//! - a float column: `Value::Float`'s display is an ordinary decimal number, so from CSV or
//!   Markdown it comes back as a decimal (or an integer). JSON declares the type and keeps it.
//! - a column of only nulls has no value to infer a type from and comes back as text (JSON
//!   keeps its declared type, but the tables here have a value in every column);
//! - a row of only nulls is a blank line, or `,,,`, which readers skip as spacing;
//! - text cells that read as another type (`12`, `yes`, `2024-01-01`) or as a null marker
//!   (`N/A`, `-`), text with whitespace at either end (trimmed), and `\r` (a Markdown `<br>`
//!   reads back as `\n`);
//! - decimals written without a fraction (`5` reads as an integer): every decimal has one.
//!
//! Delimited text found in prose (not in a fence) must also get past the heuristics that tell
//! tables from sentences, so that round trip uses a few plain capitalised words for text and
//! has two or more columns (one column of lines is not recognisable as a table).

use chrono::NaiveDate;
use proptest::prelude::*;
use proptest::sample::select;
use rust_decimal::Decimal;
use sheetgpt_core::extract::{
    Format, extract_tables, parse_delimited, parse_json_table, to_csv, to_json, to_markdown,
};
use sheetgpt_core::table::{
    Column, ColumnType, Money, Table, Value, infer_column_type, is_null_token,
};

/// The table's values and types: how the text was written (a column's decimal mark, its
/// order of dates) is reported with the columns read back, and is not what is compared.
fn plain(t: &Table) -> Table {
    let mut t = t.clone();
    for c in &mut t.columns {
        c.reading = None;
        c.dates = None;
    }
    t
}

/// How text cells are drawn.
#[derive(Clone, Copy, Debug)]
enum Words {
    /// Anything a cell may hold, Markdown and CSV specials included.
    Any,
    /// No delimiter characters, so that sniffing cannot be fooled.
    NoDelimiters,
    /// A few plain words, as tables in prose hold.
    Plain,
}

fn text_cell(words: Words) -> BoxedStrategy<String> {
    let pattern = match words {
        Words::Any => "[a-zA-Z0-9 |,;\t\"'*_~\\[\\]()<>\\\\`!:.#é漢🙂\n-]{1,12}",
        Words::NoDelimiters => "[a-zA-Z0-9 \"'*_~\\[\\]()<>\\\\`!:.#é漢🙂\n-]{1,12}",
        // Capitalised: a field starting "and …" or "or …" reads as the end of a sentence.
        Words::Plain => "[A-Z][a-zA-Z]{0,7}( [a-zA-Z]{1,8}){0,2}",
    };
    pattern
        .prop_filter("a cell's text is kept as written", |s| {
            s.trim() == s && !s.is_empty() && !is_null_token(s)
        })
        .boxed()
}

fn decimal(max_scale: u32, min_scale: u32) -> impl Strategy<Value = Decimal> {
    (-1_000_000_000i64..1_000_000_000, min_scale..=max_scale).prop_map(|(m, s)| Decimal::new(m, s))
}

fn date() -> impl Strategy<Value = NaiveDate> {
    (1900i32..2100, 1u32..=12, 1u32..=28)
        .prop_map(|(y, m, d)| NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default())
}

/// A value of `ty` whose display text parses back to it.
fn cell(ty: ColumnType, words: Words) -> BoxedStrategy<Value> {
    match ty {
        ColumnType::Integer => any::<i64>().prop_map(Value::Integer).boxed(),
        ColumnType::Decimal => decimal(6, 1).prop_map(Value::Decimal).boxed(),
        // Eighths are exact in binary and short in decimal: they survive any JSON parser.
        ColumnType::Float => (-8_000_000i32..8_000_000)
            .prop_map(|n| Value::Float(f64::from(n) / 8.0))
            .boxed(),
        ColumnType::Boolean => any::<bool>().prop_map(Value::Boolean).boxed(),
        ColumnType::Date => date().prop_map(Value::Date).boxed(),
        ColumnType::Datetime => (
            date(),
            0u32..24,
            0u32..60,
            0u32..60,
            prop_oneof![Just(0u32), 1u32..1000],
        )
            .prop_map(|(d, h, m, s, ms)| {
                Value::Datetime(d.and_hms_milli_opt(h, m, s, ms).unwrap_or_default())
            })
            .boxed(),
        ColumnType::Currency => (
            decimal(2, 0),
            select(vec!["USD", "EUR", "GBP", "JPY", "CHF", "SEK"]),
        )
            .prop_map(|(amount, code)| {
                Value::Currency(Money {
                    amount,
                    currency: code.to_owned(),
                })
            })
            .boxed(),
        ColumnType::Percent => decimal(3, 0).prop_map(Value::Percent).boxed(),
        ColumnType::Url => (
            "[a-z0-9]{1,10}",
            select(vec!["com", "io", "fr"]),
            "[a-z0-9_/-]{0,10}",
        )
            .prop_map(|(host, tld, path)| Value::Url(format!("https://{host}.{tld}/{path}")))
            .boxed(),
        ColumnType::Email => (
            "[a-z0-9][a-z0-9._]{0,7}",
            "[a-z]{1,8}",
            select(vec!["com", "io"]),
        )
            .prop_map(|(user, host, tld)| Value::Email(format!("{user}@{host}.{tld}")))
            .boxed(),
        ColumnType::Text => text_cell(words).prop_map(Value::Text).boxed(),
    }
}

fn names(count: usize, words: Words) -> impl Strategy<Value = Vec<String>> {
    let name = match words {
        Words::Any => "[A-Za-z][A-Za-z0-9 _|*,;\"`]{0,8}[A-Za-z0-9]",
        Words::NoDelimiters => "[A-Za-z][A-Za-z0-9 _*\"`]{0,8}[A-Za-z0-9]",
        Words::Plain => "[A-Z][A-Za-z]{0,7}( [A-Za-z0-9]{1,4})?",
    };
    prop::collection::vec(name, count).prop_filter("names are unique ignoring case", |names| {
        let mut lower: Vec<String> = names.iter().map(|n| n.to_lowercase()).collect();
        lower.sort();
        lower.dedup();
        lower.len() == names.len()
    })
}

/// A table of 1..6 columns (at least `min_columns`) and 1..20 rows with a value in every row
/// and every column; for text formats, each column's type is what its text infers.
fn table(
    types: Vec<ColumnType>,
    words: Words,
    min_columns: usize,
    from_text: bool,
) -> impl Strategy<Value = Table> {
    (min_columns..6usize, 1usize..20)
        .prop_flat_map(move |(width, height)| {
            let types = prop::collection::vec(select(types.clone()), width);
            (types, names(width, words), Just(height))
        })
        .prop_flat_map(move |(types, names, height)| {
            let columns: Vec<BoxedStrategy<Vec<(Value, bool)>>> = types
                .iter()
                .map(|&ty| {
                    prop::collection::vec((cell(ty, words), prop::bool::weighted(0.15)), height)
                        .boxed()
                })
                .collect();
            (Just(types), Just(names), columns)
        })
        .prop_map(|(types, names, mut columns)| {
            let height = columns.first().map_or(0, Vec::len);
            // No row and no column of only nulls (see the module docs).
            for r in 0..height {
                if columns.iter().all(|c| c[r].1) {
                    columns[0][r].1 = false;
                }
            }
            for column in &mut columns {
                if column.iter().all(|(_, null)| *null) {
                    column[0].1 = false;
                }
            }
            let rows = (0..height)
                .map(|r| {
                    columns
                        .iter()
                        .map(|c| if c[r].1 { Value::Null } else { c[r].0.clone() })
                        .collect()
                })
                .collect();
            let columns = types
                .into_iter()
                .zip(names)
                .enumerate()
                .map(|(i, (ty, name))| Column::new(format!("c{}", i + 1), name, ty))
                .collect();
            Table { columns, rows }
        })
        .prop_filter("each column's text infers its type", move |t| {
            !from_text
                || t.columns.iter().enumerate().all(|(i, c)| {
                    let texts: Vec<String> = t.rows.iter().map(|r| r[i].to_string()).collect();
                    infer_column_type(texts.iter().map(String::as_str)) == c.ty
                })
        })
}

fn text_types() -> Vec<ColumnType> {
    ColumnType::ALL
        .into_iter()
        .filter(|&t| t != ColumnType::Float)
        .collect()
}

/// Checks what every extraction must give, whatever the input: spans inside the text, on
/// character boundaries, in order and apart.
fn check_spans(text: &str) -> Result<(), TestCaseError> {
    let found = extract_tables(text);
    for e in &found {
        prop_assert!(e.span.start <= e.span.end && e.span.end <= text.len());
        prop_assert!(text.is_char_boundary(e.span.start) && text.is_char_boundary(e.span.end));
    }
    for pair in found.windows(2) {
        prop_assert!(pair[0].span.end <= pair[1].span.start);
    }
    Ok(())
}

fn tableish() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            "[|,;\t\n\"\\\\:` *_~\\[\\]()<>{}a1é-]{0,6}",
            select(vec![
                "|",
                "---",
                "|---|---|",
                ":--:",
                "\n",
                "\r\n",
                "```",
                "```json\n",
                "```csv\n",
                "~~~",
                "{\"columns\": [",
                "{\"rows\": [",
                "{\"tables\": [",
                "[{\"a\": 1}",
                "]}",
                "\"",
                "\"\"",
                "<br>",
                "\\|",
                "**",
                "[x](",
                "\u{feff}",
                "1,000",
                "- ",
                "# ",
            ])
            .prop_map(str::to_owned),
        ],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn extraction_never_panics_on_arbitrary_text(text in "\\PC*") {
        check_spans(&text)?;
        let _ = parse_delimited(&text, None);
        let _ = parse_json_table(&text);
    }

    #[test]
    fn extraction_never_panics_on_text_made_of_table_characters(text in tableish()) {
        check_spans(&text)?;
        for delimiter in [None, Some(b','), Some(b'\t'), Some(b'|'), Some(b'"'), Some(0xff)] {
            let _ = parse_delimited(&text, delimiter);
        }
        let _ = parse_json_table(&text);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn markdown_written_into_a_reply_reads_back_to_the_same_table(
        t in table(text_types(), Words::Any, 1, true),
    ) {
        let reply = format!("Here is the table you asked for:\n\n{}\nAnything else?", to_markdown(&t));
        let found = extract_tables(&reply);
        prop_assert_eq!(found.len(), 1, "{}", reply);
        prop_assert_eq!(found[0].format, Format::Markdown);
        prop_assert_eq!(&plain(&found[0].table), &t, "{}", reply);
    }

    #[test]
    fn csv_of_any_delimiter_reads_back_as_an_upload(
        t in table(text_types(), Words::Any, 1, true),
        delimiter in select(vec![b',', b'\t', b';', b'|']),
    ) {
        let csv = to_csv(&t, delimiter);
        prop_assert_eq!(parse_delimited(&csv, Some(delimiter)).map(|t| plain(&t)), Ok(t), "{}", csv);
    }

    #[test]
    fn csv_reads_back_with_a_sniffed_delimiter(
        t in table(text_types(), Words::NoDelimiters, 1, true),
        delimiter in select(vec![b',', b'\t', b';']),
    ) {
        let csv = to_csv(&t, delimiter);
        prop_assert_eq!(parse_delimited(&csv, None).map(|t| plain(&t)), Ok(t), "{}", csv);
    }

    #[test]
    fn csv_in_a_fenced_block_reads_back_from_a_reply(
        t in table(text_types(), Words::NoDelimiters, 1, true),
        (delimiter, lang, format) in select(vec![(b',', "csv", Format::Csv), (b'\t', "tsv", Format::Tsv)]),
    ) {
        let reply = format!("Sure:\n\n```{lang}\n{}```\n\nDone.", to_csv(&t, delimiter));
        let found = extract_tables(&reply);
        prop_assert_eq!(found.len(), 1, "{}", reply);
        prop_assert_eq!(found[0].format, format);
        prop_assert_eq!(&plain(&found[0].table), &t, "{}", reply);
    }

    #[test]
    fn csv_in_plain_prose_reads_back_when_it_has_two_columns_or_more(
        t in table(text_types(), Words::Plain, 2, true),
        (delimiter, format) in select(vec![(b',', Format::Csv), (b'\t', Format::Tsv), (b';', Format::Csv)]),
    ) {
        let reply = format!("Here is the data:\n{}\nThat is all.", to_csv(&t, delimiter));
        let found = extract_tables(&reply);
        prop_assert_eq!(found.len(), 1, "{}", reply);
        prop_assert_eq!(found[0].format, format);
        prop_assert_eq!(&plain(&found[0].table), &t, "{}", reply);
    }

    #[test]
    fn json_reads_back_bare_fenced_and_as_an_upload(
        t in table(ColumnType::ALL.to_vec(), Words::Any, 1, false),
    ) {
        let json = serde_json::to_string_pretty(&to_json(&t)).unwrap_or_default();
        prop_assert_eq!(parse_json_table(&json).map(|t| plain(&t)), Ok(t.clone()));

        let found = extract_tables(&json);
        prop_assert_eq!(found.len(), 1);
        prop_assert_eq!(found[0].format, Format::Json);
        prop_assert_eq!(&plain(&found[0].table), &t);

        let reply = format!("The result:\n```json\n{json}\n```\nBye.");
        let found = extract_tables(&reply);
        prop_assert_eq!(found.len(), 1);
        prop_assert_eq!(found[0].format, Format::FencedJson);
        prop_assert_eq!(&plain(&found[0].table), &t);
    }
}
