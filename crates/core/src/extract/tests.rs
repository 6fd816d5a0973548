//! Examples of replies and what is extracted from them.

use rust_decimal::Decimal;

use super::*;
use crate::table::{ColumnType, Value};

fn names(t: &Table) -> Vec<&str> {
    t.columns.iter().map(|c| c.name.as_str()).collect()
}

fn types(t: &Table) -> Vec<ColumnType> {
    t.columns.iter().map(|c| c.ty).collect()
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn only(text: &str) -> Extracted {
    let mut found = extract_tables(text);
    assert_eq!(
        found.len(),
        1,
        "expected one table in {text:?}, found {found:#?}"
    );
    found.remove(0)
}

#[test]
fn a_markdown_table_between_paragraphs_is_found_with_its_span() {
    let reply = "Here are the cities you asked for:\n\n\
                 | City | Population | Capital |\n\
                 |:-----|-----------:|:-------:|\n\
                 | Paris | 2,102,650 | yes |\n\
                 | Lyon | 522,250 | no |\n\n\
                 Let me know if you need more.";
    let e = only(reply);
    assert_eq!(e.format, Format::Markdown);
    assert_eq!(names(&e.table), ["City", "Population", "Capital"]);
    assert_eq!(
        types(&e.table),
        [ColumnType::Text, ColumnType::Integer, ColumnType::Boolean]
    );
    assert_eq!(
        e.table.rows[1],
        [text("Lyon"), Value::Integer(522_250), Value::Boolean(false)]
    );
    assert!(reply[e.span.clone()].starts_with("| City"));
    assert!(reply[e.span].ends_with("| no |"));
}

#[test]
fn ragged_markdown_rows_are_padded_or_cut_and_outer_pipes_are_optional() {
    let e = only("a | b | c\n--- | --- | ---\n1 | 2\n3 | 4 | 5 | 6\n");
    assert_eq!(names(&e.table), ["a", "b", "c"]);
    assert_eq!(
        e.table.rows[0],
        [Value::Integer(1), Value::Integer(2), Value::Null]
    );
    assert_eq!(
        e.table.rows[1],
        [Value::Integer(3), Value::Integer(4), Value::Integer(5)]
    );
}

#[test]
fn escaped_pipes_and_formatting_in_markdown_cells_come_out_as_read() {
    let e = only(
        "| Expr | Meaning |\n|---|---|\n| `a \\| b` | **either** a *or* b |\n\
         | x \\| y | see [docs](https://x.io)<br>and ~~old~~ _new_ |\n",
    );
    assert_eq!(e.table.rows[0], [text("a | b"), text("either a or b")]);
    assert_eq!(
        e.table.rows[1],
        [text("x | y"), text("see docs\nand old new")]
    );
}

/// The examples of the GFM spec's *Tables* section (github/cmark-gfm, test/spec.txt), read as
/// GitHub renders them.
#[test]
fn markdown_tables_follow_the_gfm_spec_examples() {
    let e = only("| foo | bar |\n| --- | --- |\n| baz | bim |\n");
    assert_eq!(names(&e.table), ["foo", "bar"]);
    assert_eq!(e.table.rows, [[text("baz"), text("bim")]]);

    let e = only("| abc | defghi |\n:-: | -----------:\nbar | baz\n");
    assert_eq!(names(&e.table), ["abc", "defghi"]);
    assert_eq!(e.table.rows, [[text("bar"), text("baz")]]);

    let e = only("| f\\|oo  |\n| ------ |\n| b `\\|` az |\n| b **\\|** im |\n");
    assert_eq!(names(&e.table), ["f|oo"]);
    assert_eq!(e.table.rows, [[text("b | az")], [text("b | im")]]);

    // Broken by another block: the quote is not a row.
    let reply = "| abc | def |\n| --- | --- |\n| bar | baz |\n> bar\n";
    let e = only(reply);
    assert_eq!(e.table.rows, [[text("bar"), text("baz")]]);
    assert!(reply[e.span].ends_with("| bar | baz |"));

    // A line without a pipe is a row until the blank line.
    let e = only("| abc | def |\n| --- | --- |\n| bar | baz |\nbar\n\nbar\n");
    assert_eq!(
        e.table.rows,
        [[text("bar"), text("baz")], [text("bar"), Value::Null]]
    );

    // A header wider than its delimiter row is not a table.
    assert_eq!(extract_tables("| abc | def |\n| --- |\n| bar |\n"), []);

    let e = only("| abc | def |\n| --- | --- |\n| bar |\n| bar | baz | boo |\n");
    assert_eq!(
        e.table.rows,
        [[text("bar"), Value::Null], [text("bar"), text("baz")]]
    );
}

#[test]
fn html_links_and_references_in_markdown_cells_become_their_text() {
    let e = only(
        "| Company | Site | Note |\n|---|---|---|\n\
         | AT&amp;T | <https://att.com> | <b>big</b> &amp; <i>old</i> |\n\
         | Ben &amp; Jerry&#39;s | [site](https://x.io) | 3 &lt; 4 |\n\
         - and a list after it\n",
    );
    assert_eq!(
        e.table.rows,
        [
            [text("AT&T"), text("https://att.com"), text("big & old")],
            [text("Ben & Jerry's"), text("site"), text("3 < 4")],
        ]
    );
}

#[test]
fn dates_that_read_both_ways_are_read_in_the_order_asked_for_in_every_format() {
    use crate::table::DateOrder;
    use chrono::NaiveDate;
    let day = |y, m, d| Value::Date(NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default());
    for reply in [
        "| when | n |\n|---|---|\n| 03/04/2024 | 1 |\n| 05/06/2024 | 2 |\n",
        "when,n\n03/04/2024,1\n05/06/2024,2\n",
        "```csv\nwhen,n\n03/04/2024,1\n05/06/2024,2\n```",
        "[{\"when\": \"03/04/2024\", \"n\": 1}, {\"when\": \"05/06/2024\", \"n\": 2}]",
    ] {
        let found = extract_tables_reading(reply, DateOrder::DayFirst);
        assert_eq!(found.len(), 1, "{reply}");
        let t = &found[0].table;
        assert_eq!(t.columns[0].ty, ColumnType::Date, "{reply}");
        assert_eq!(t.rows[0][0], day(2024, 4, 3), "{reply}");
        assert_eq!(t.rows[1][0], day(2024, 6, 5), "{reply}");
        let us = only(reply);
        assert_eq!(us.table.rows[0][0], day(2024, 3, 4), "{reply}");
        // A value that reads one way settles the column whatever the order asked for.
        let settled = reply.replace("05/06/2024", "05/16/2024");
        let found = extract_tables_reading(&settled, DateOrder::DayFirst);
        assert_eq!(found[0].table.rows[0][0], day(2024, 3, 4), "{settled}");
    }
}

#[test]
fn a_row_of_dashes_inside_a_markdown_table_is_a_row() {
    let e = only("| a | b |\n|---|---|\n| 1 | x |\n| - | - |\n| 3 | y |\n");
    assert_eq!(e.table.rows.len(), 3);
    assert_eq!(e.table.rows[1], [Value::Null, Value::Null]);
}

#[test]
fn several_tables_in_one_reply_come_out_in_order() {
    let reply = "First the totals:\n\n| Region | Total |\n|---|---|\n| North | 10 |\n\n\
                 Then the raw data:\n\nid,amount\n1,2.5\n2,3.5\n\n\
                 And as JSON:\n\n```json\n{\"columns\": [\"k\"], \"rows\": [[\"v\"]]}\n```\n\n\
                 | Other | Table |\n|---|---|\n| x | y |\n";
    let found = extract_tables(reply);
    let formats: Vec<Format> = found.iter().map(|e| e.format).collect();
    assert_eq!(
        formats,
        [
            Format::Markdown,
            Format::Csv,
            Format::FencedJson,
            Format::Markdown
        ]
    );
    assert_eq!(names(&found[1].table), ["id", "amount"]);
    assert_eq!(
        found[1].table.rows[1][1],
        Value::Decimal(Decimal::new(35, 1))
    );
    assert_eq!(found[2].table.rows, [[text("v")]]);
    assert!(found.windows(2).all(|w| w[0].span.end <= w[1].span.start));
}

#[test]
fn quoted_csv_with_embedded_newlines_and_delimiters_is_read_from_prose() {
    let reply = "Sure! Here is the CSV:\n\
                 name,address,visits\n\
                 \"Smith, John\",\"12 High St\nFlat 3\",4\n\
                 \"O'Neil \"\"Jr\"\"\",  \"1 Low Rd\"  ,2\n\
                 Hope this helps.";
    let e = only(reply);
    assert_eq!(e.format, Format::Csv);
    assert_eq!(
        e.table.rows[0],
        [
            text("Smith, John"),
            text("12 High St\nFlat 3"),
            Value::Integer(4)
        ]
    );
    assert_eq!(e.table.rows[1][0], text("O'Neil \"Jr\""));
    assert_eq!(e.table.rows[1][1], text("1 Low Rd"));
    assert_eq!(
        &reply[e.span],
        "name,address,visits\n\"Smith, John\",\"12 High St\nFlat 3\",4\n\"O'Neil \"\"Jr\"\"\",  \"1 Low Rd\"  ,2"
    );
}

#[test]
fn sentences_with_commas_are_not_tables() {
    for prose in [
        "I went to the store, and then I went home.",
        "First, we load the data, then we clean it.\nNext, we fit the model, and we check it.",
        "Hello, world\nThis is fine, really",
        "- Paris, France\n- Lyon, France\n- Nice, France",
        "1. Apples, pears\n2. Plums, figs",
        "The totals, by region:\nNorth, of course, leads.",
        "We sold 1,000 units\nand then 2,000 more",
        "He said \"hi, there\" and left,\nshe stayed, quietly",
        "I like red, green, and blue\nYou like cats, dogs, or fish",
        "Red, green, blue are colours.\nCats, dogs, fish are pets.",
        "We tried A; it failed.\nWe tried B; it worked.",
    ] {
        assert_eq!(extract_tables(prose), [], "{prose}");
    }
}

#[test]
fn csv_cells_that_are_sentences_are_read_when_quoted() {
    let e = only(
        "sku,description\nA1,\"A small widget for the kitchen.\"\nB2,\"Spare parts, assorted.\"\n",
    );
    assert_eq!(e.table.rows[0][1], text("A small widget for the kitchen."));
}

#[test]
fn two_column_csv_is_a_table_when_written_like_data() {
    let e = only("Name,City\nBob,Paris\nAl,Lyon\n");
    assert_eq!(e.table.rows[1], [text("Al"), text("Lyon")]);
    let e = only("Item, Price\nTea, 3.50\nCake, 4\n");
    assert_eq!(e.table.columns[1].ty, ColumnType::Decimal);
}

#[test]
fn a_stray_quote_in_prose_does_not_swallow_the_table_after_it() {
    for reply in [
        "She said, \"wait\nsku,qty\nA1,3\nB2,4\n",
        "He wrote \"wait, then\nsku,qty\nA1,3\nB2,4\n",
    ] {
        let e = only(reply);
        assert_eq!(names(&e.table), ["sku", "qty"], "{reply}");
        assert_eq!(e.table.rows.len(), 2);
    }
}

#[test]
fn tsv_semicolon_and_pipe_separated_text_is_found() {
    let e = only("Data:\nname\tscore\nann\t3\nbo\t4\n\nDone.");
    assert_eq!(e.format, Format::Tsv);
    assert_eq!(e.table.rows[1], [text("bo"), Value::Integer(4)]);

    let e = only("Name;Preis\nTee;1,5\nKuchen;2,5\n");
    assert_eq!(e.format, Format::Csv);
    assert_eq!(names(&e.table), ["Name", "Preis"]);

    let e = only("| name | qty |\n| pen | 3 |\n| ink | 4 |\n");
    assert_eq!(names(&e.table), ["name", "qty"]);
    assert_eq!(e.table.rows[0], [text("pen"), Value::Integer(3)]);
}

#[test]
fn fenced_json_inside_prose_spans_the_whole_block() {
    let reply = "Here you go:\n\n```json\n{\n  \"columns\": [{\"name\": \"when\", \"type\": \"date\"}, \
                 {\"name\": \"qty\", \"type\": \"integer\"}],\n  \"rows\": [[\"2024-03-01\", 3], \
                 [\"2024-03-02\", null]]\n}\n```\n\nAnything else?";
    let e = only(reply);
    assert_eq!(e.format, Format::FencedJson);
    assert!(reply[e.span.clone()].starts_with("```json"));
    assert!(reply[e.span].ends_with("```"));
    assert_eq!(types(&e.table), [ColumnType::Date, ColumnType::Integer]);
    assert_eq!(e.table.rows[1][1], Value::Null);
}

#[test]
fn a_reply_that_is_only_json_is_one_table_per_entry_of_tables() {
    let reply = r#"  {"tables": [
        {"columns": ["a"], "rows": [[1]]},
        [{"b": "x", "c": true}]
    ]}  "#;
    let found = extract_tables(reply);
    assert_eq!(found.len(), 2);
    assert!(
        found
            .iter()
            .all(|e| e.format == Format::Json && reply[e.span.clone()].starts_with('{'))
    );
    assert_eq!(names(&found[1].table), ["b", "c"]);
    assert_eq!(found[1].table.rows[0][1], Value::Boolean(true));
}

#[test]
fn arrays_of_objects_in_replies_keep_their_key_order() {
    let e =
        only("Result:\n[{\"zeta\": 1, \"alpha\": {\"x\": 1}}, {\"alpha\": null, \"beta\": 2.5}]\n");
    assert_eq!(e.format, Format::Json);
    assert_eq!(names(&e.table), ["zeta", "alpha", "beta"]);
    assert_eq!(e.table.rows[0][1], text("{\"x\":1}"));
}

#[test]
fn declared_json_types_are_honoured() {
    let e = only(
        r#"{"columns": [{"name": "zip", "type": "text"}, {"name": "share", "type": "percent"}], "rows": [["02134", "12.5"]]}"#,
    );
    assert_eq!(
        e.table.rows[0],
        [text("02134"), Value::Percent(Decimal::new(125, 1))]
    );
}

#[test]
fn json_that_is_not_a_table_is_neither_a_table_nor_csv() {
    assert_eq!(
        extract_tables("Config:\n{\n  \"name\": \"Bob\",\n  \"age\": 3\n}\n"),
        []
    );
}

#[test]
fn code_blocks_are_not_searched_but_data_blocks_are() {
    assert_eq!(extract_tables("```python\nf(a, b)\ng(c, d)\n```"), []);
    let e = only("```csv\nx,y\n1,2\n```");
    assert_eq!(e.format, Format::Csv);
    assert_eq!(e.span, 0..18);
    let e = only("```\n| a |\n|---|\n| 1 |\n```");
    assert_eq!(e.format, Format::Markdown);
    assert_eq!(e.span, 4..21);
    let e = only("```tsv\nx\ty\n1\t2\n```");
    assert_eq!(e.format, Format::Tsv);
}

#[test]
fn a_byte_order_mark_and_crlf_line_ends_are_not_part_of_cells() {
    let e = only("\u{feff}| a | b |\r\n|---|---|\r\n| 1 | x |\r\n");
    assert_eq!(names(&e.table), ["a", "b"]);
    assert_eq!(e.table.rows[0], [Value::Integer(1), text("x")]);
    let e = only("a,b\r\n1,x\r\n");
    assert_eq!(e.table.rows[0], [Value::Integer(1), text("x")]);
    assert_eq!(e.span, 0..8);
}

#[test]
fn text_without_tables_gives_nothing() {
    assert_eq!(extract_tables(""), []);
    assert_eq!(extract_tables("No tables here. Just | one pipe."), []);
    assert_eq!(extract_tables("[not json\n{also not"), []);
}

#[test]
fn the_writers_output_reads_back_to_the_same_table() {
    let e = only(
        "| name | price | when | link |\n|---|---|---|---|\n| a*b | $3 | 2024-01-02 | https://x.io/_a |\n\
         | c\\|d | 4 EUR | | https://y.io |\n",
    );
    let t = e.table;
    assert_eq!(only(&to_markdown(&t)).table, t);
    assert_eq!(only(&to_csv(&t, b',')).table, t);
    assert_eq!(only(&to_csv(&t, b'\t')).table, t);
    assert_eq!(only(&to_json(&t).to_string()).table, t);
}

#[test]
fn text_built_to_make_json_attempts_fail_late_still_yields_its_markdown_table() {
    let reply = format!("{}| a |\n|---|\n| 1 |\n", "[\n".repeat(50_000));
    let e = only(&reply);
    assert_eq!(e.format, Format::Markdown);
    assert_eq!(e.table.rows, [[Value::Integer(1)]]);
}

#[test]
fn a_json_table_cut_short_still_yields_the_tables_written_before_the_cut() {
    let reply = "{\"tables\": [\n{\"columns\": [\"a\"], \"rows\": [[1]]},\n{\"columns\": [\"b\"], \"rows\": [[";
    let e = only(reply);
    assert_eq!(e.format, Format::Json);
    assert_eq!(names(&e.table), ["a"]);
}

#[test]
fn pasted_csv_keeps_the_spaces_of_text_cells_and_reads_numbers_trimmed() {
    let e = only("name,city,n\n Ann ,Paris ,1\nBob, Lyon , 2\n");
    assert_eq!(e.table.columns[2].ty, ColumnType::Integer);
    assert_eq!(
        e.table.rows[0],
        [text(" Ann "), text("Paris "), Value::Integer(1)]
    );
    assert_eq!(
        e.table.rows[1],
        [text("Bob"), text(" Lyon "), Value::Integer(2)]
    );
    let t = parse_delimited("a;b\n x ;1\n", None).unwrap_or_default();
    assert_eq!(t.rows[0][0], text(" x "));
}

#[test]
fn a_pasted_german_table_reads_its_numbers_and_keeps_its_zip_codes() {
    let e = only(
        "PLZ;Einwohner;Umsatz;Anteil\n08123;59.359.536;3.998.000.000,00 €;21,2 %\n01067;556.780;1.234,50 €;3,5 %\n",
    );
    let types: Vec<ColumnType> = e.table.columns.iter().map(|c| c.ty).collect();
    assert_eq!(
        types,
        [
            ColumnType::Text,
            ColumnType::Integer,
            ColumnType::Currency,
            ColumnType::Percent
        ]
    );
    assert_eq!(e.table.rows[0][0], text("08123"));
    assert_eq!(e.table.rows[0][1], Value::Integer(59_359_536));
    assert_eq!(
        e.table.rows[1][2].as_decimal(),
        Some(Decimal::new(123_450, 2))
    );
    assert_eq!(e.table.rows[0][3], Value::Percent(Decimal::new(212, 1)));
}

#[test]
fn json_numbers_a_float_cannot_hold_keep_their_digits() {
    let e =
        only("```json\n[{\"id\": 123456789012345678901234, \"x\": 0.1000000000000000055}]\n```");
    assert_eq!(e.table.columns[0].ty, ColumnType::Text);
    assert_eq!(e.table.rows[0][0], text("123456789012345678901234"));
    assert_eq!(e.table.rows[0][1].to_string(), "0.1000000000000000055");
}
