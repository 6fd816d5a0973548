//! XLSX written through a template, read back with calamine, and where calamine does not look
//! (panes, widths, formats, conditional formats, validations, tables) with the sheet's XML
//! parsed element by element.

#![expect(clippy::unwrap_used, reason = "test helpers and fixtures fail loudly")]

use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::str::FromStr;

use calamine::{Data, Reader, Xlsx};
use chrono::{NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;
use sheetgpt_core::export::{ExportError, XlsxMeta, XlsxOptions, write_xlsx};
use sheetgpt_core::template::{Resolved, Template};
use sheetgpt_core::{Column, ColumnType, Value};

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 3, d).unwrap()
}

/// Five source columns, four rows.
fn invoices() -> (Vec<Column>, Vec<Vec<Value>>) {
    let columns = vec![
        Column::new("c1", "name", ColumnType::Text),
        Column::new("c2", "amount", ColumnType::Decimal),
        Column::new("c3", "internal id", ColumnType::Integer),
        Column::new("c4", "due", ColumnType::Date),
        Column::new("c5", "qty", ColumnType::Integer),
    ];
    let row = |name: &str, amount: &str, id: i64, due: u32, qty: i64| {
        vec![
            Value::Text(name.into()),
            Value::Decimal(dec(amount)),
            Value::Integer(id),
            Value::Date(day(due)),
            Value::Integer(qty),
        ]
    };
    let rows = vec![
        row("Ann", "120.5", 901, 1, 3),
        row("Bob", "80", 902, 15, 1),
        row("Cid", "1500.25", 903, 31, 7),
        vec![
            Value::Text("Dee".into()),
            Value::Null,
            Value::Integer(904),
            Value::Null,
            Value::Integer(2),
        ],
    ];
    (columns, rows)
}

/// Every feature at once. The block starts at B3: titles in rows 3–4, a blank row 5, the
/// header in row 6, data in rows 7–10, totals in row 11; columns B–G.
fn full_template() -> Template {
    let template: Template = serde_json::from_value(serde_json::json!({
        "columns": [
            {"source": "Name", "header": "Customer", "format": {"width": 30, "wrap": true}},
            {"source": "amount", "header": "Net",
             "format": {"number_format": "#,##0.000", "align": "right"},
             "rules": {"min": "0", "max": "10000"},
             "total": "sum",
             "conditional": [
                {"when": {"op": "greater_than", "value": 1000},
                 "style": {"bold": true, "font_color": "#9C0006", "background": "#FFC7CE"}},
                {"when": {"op": "between", "min": 50, "max": 100}, "style": {"italic": true}},
                {"when": {"op": "blank"}, "style": {"background": "#EEEEEE"}}
             ]},
            {"source": "due", "header": "Due date", "format": {"number_format": "dd/mm/yyyy"},
             "total": "max"},
            {"source": "qty", "total": "count_nums",
             "conditional": [{"when": {"op": "less_than_or_equal", "value": "2"},
                              "style": {"bold": true}}]},
            {"header": "Region", "constant": "EMEA", "total": "count",
             "conditional": [{"when": {"op": "contains", "text": "EM"}, "style": {"italic": true}}]},
            {"header": "Year", "constant": 2024, "rules": {"one_of": ["2024", "2025"]}}
        ],
        "exclude": ["internal id"],
        "layout": {
            "sheet_name": "Invoices",
            "title_rows": ["Invoices 2024", "Net amounts in EUR"],
            "start_cell": "B3",
            "header": {"background": "#1F4E78", "font_color": "#FFFFFF", "wrap": true},
            "freeze_columns": 1
        }
    }))
    .unwrap();
    assert_eq!(template.check(), Ok(()));
    template
}

fn meta() -> XlsxMeta {
    XlsxMeta {
        title: "Invoices".into(),
        source: "invoices.pdf".into(),
        version: Some(1),
        exported_at: Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap(),
    }
}

/// The workbook for `template` over the invoices, with `table_cell_limit`.
fn write(template: &Template, table_cell_limit: u64) -> Vec<u8> {
    let (columns, rows) = invoices();
    let resolved = template.resolve(&columns).unwrap();
    let options = XlsxOptions {
        table_cell_limit,
        ..XlsxOptions::for_template(&resolved)
    };
    let mut out = Vec::new();
    let written = write_xlsx(
        &mut out,
        &resolved.columns,
        rows.iter().map(|r| resolved.map_row(r)),
        &meta(),
        &options,
    )
    .unwrap();
    assert_eq!(written, 4);
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

fn zip_names(bytes: &[u8]) -> Vec<String> {
    let archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    let mut names: Vec<String> = archive
        .file_names()
        .map(|name| name.unwrap().into_owned())
        .collect();
    names.sort();
    names
}

/// One XML element: its attributes and the text up to its closing tag (empty when it closes
/// itself).
#[derive(Debug)]
struct Element {
    attrs: HashMap<String, String>,
    inner: String,
}

/// Every `<tag …>` element of `xml`, in document order. Enough XML for files rust_xlsxwriter
/// writes (no comments, no CDATA, attributes in double quotes).
fn elements(xml: &str, tag: &str) -> Vec<Element> {
    let open = format!("<{tag}");
    let close = format!("</{tag}>");
    let mut found = Vec::new();
    let mut rest = xml;
    while let Some(at) = rest.find(&open) {
        let after = &rest[at + open.len()..];
        // `<col` must not match `<cols`.
        if !after.starts_with([' ', '>', '/']) {
            rest = after;
            continue;
        }
        let end = after.find('>').unwrap();
        let head = &after[..end];
        let self_closing = head.ends_with('/');
        let mut attrs = HashMap::new();
        let mut text = head.trim_end_matches('/');
        while let Some(eq) = text.find("=\"") {
            let name = text[..eq].trim().to_owned();
            let value_start = eq + 2;
            let value_end = value_start + text[value_start..].find('"').unwrap();
            attrs.insert(name, text[value_start..value_end].to_owned());
            text = &text[value_end + 1..];
        }
        let body = &after[end + 1..];
        let inner = if self_closing {
            String::new()
        } else {
            body[..body.find(&close).unwrap()].to_owned()
        };
        found.push(Element { attrs, inner });
        rest = body;
    }
    found
}

fn attr<'a>(element: &'a Element, name: &str) -> &'a str {
    element
        .attrs
        .get(name)
        .map(String::as_str)
        .unwrap_or_else(|| panic!("no {name} in {element:?}"))
}

/// The number format code of the cell at `cell` (`C11`) in the first sheet.
fn number_format_of(bytes: &[u8], cell: &str) -> String {
    let sheet = zip_entry(bytes, "xl/worksheets/sheet1.xml");
    let styles = zip_entry(bytes, "xl/styles.xml");
    let c = elements(&sheet, "c")
        .into_iter()
        .find(|c| c.attrs.get("r").map(String::as_str) == Some(cell))
        .unwrap_or_else(|| panic!("no cell {cell}"));
    let xf_index: usize = attr(&c, "s").parse().unwrap();
    let cell_xfs = &elements(&styles, "cellXfs")[0].inner;
    let xf = &elements(cell_xfs, "xf")[xf_index];
    let id = attr(xf, "numFmtId");
    elements(&styles, "numFmt")
        .into_iter()
        .find(|f| attr(f, "numFmtId") == id)
        .map(|f| attr(&f, "formatCode").to_owned())
        .unwrap_or_else(|| format!("builtin {id}"))
}

fn cell(range: &calamine::Range<Data>, row: u32, col: u32) -> Data {
    range.get_value((row, col)).cloned().unwrap_or(Data::Empty)
}

fn text(s: &str) -> Data {
    Data::String(s.into())
}

#[test]
fn the_data_sheet_has_the_template_name_titles_and_renamed_ordered_headers_from_the_start_cell() {
    let bytes = write(&full_template(), 200_000);
    let mut book = Xlsx::new(Cursor::new(bytes)).unwrap();
    assert_eq!(book.sheet_names(), ["Invoices", "About"]);
    let data = book.worksheet_range("Invoices").unwrap();

    // Nothing left of column B or above row 3.
    assert_eq!(data.start(), Some((2, 1)));
    assert_eq!(cell(&data, 2, 1), text("Invoices 2024"));
    assert_eq!(cell(&data, 3, 1), text("Net amounts in EUR"));
    assert_eq!(
        cell(&data, 4, 1),
        Data::Empty,
        "a blank row after the titles"
    );
    let header: Vec<Data> = (1..=6).map(|c| cell(&data, 5, c)).collect();
    assert_eq!(
        header,
        ["Customer", "Net", "Due date", "qty", "Region", "Year"].map(text)
    );
    assert_eq!(
        cell(&data, 5, 7),
        Data::Empty,
        "the excluded column is not there"
    );
}

#[test]
fn data_rows_carry_mapped_values_and_constants_under_the_header() {
    let bytes = write(&full_template(), 200_000);
    let mut book = Xlsx::new(Cursor::new(bytes)).unwrap();
    let data = book.worksheet_range("Invoices").unwrap();

    assert_eq!(cell(&data, 6, 1), text("Ann"));
    assert_eq!(cell(&data, 6, 2), Data::Float(120.5));
    let Data::DateTime(due) = cell(&data, 6, 3) else {
        panic!("due is {:?}", cell(&data, 6, 3))
    };
    assert_eq!(due.as_datetime().unwrap().date(), day(1));
    assert_eq!(cell(&data, 6, 4), Data::Float(3.0));
    assert_eq!(cell(&data, 9, 1), text("Dee"));
    assert_eq!(cell(&data, 9, 2), Data::Empty);
    for row in 6..=9 {
        assert_eq!(cell(&data, row, 5), text("EMEA"), "row {row}");
        assert_eq!(cell(&data, row, 6), Data::Float(2024.0), "row {row}");
    }
}

#[test]
fn a_small_table_gets_a_table_object_whose_own_totals_row_sits_under_the_data() {
    let bytes = write(&full_template(), 200_000);

    let mut book = Xlsx::new(Cursor::new(bytes.clone())).unwrap();
    book.load_tables().unwrap();
    assert_eq!(book.table_names().len(), 1);
    let data = book.worksheet_range("Invoices").unwrap();
    let formulas = book.worksheet_formula("Invoices").unwrap();
    let formula = |col: u32| formulas.get_value((10, col)).cloned().unwrap_or_default();
    assert_eq!(cell(&data, 10, 1), text("Total"));
    // The table named: LibreOffice answers `#NAME?` to the bare `[Net]`.
    assert_eq!(formula(2), "SUBTOTAL(109,Table1[Net])");
    assert_eq!(formula(3), "SUBTOTAL(104,Table1[Due date])");
    assert_eq!(formula(4), "SUBTOTAL(102,Table1[qty])");
    assert_eq!(formula(5), "SUBTOTAL(103,Table1[Region])");
    assert_eq!(formula(6), "");
    for col in 1..=6 {
        assert_eq!(
            formulas.get_value((9, col)).cloned().unwrap_or_default(),
            "",
            "no formula in the last data row"
        );
    }

    let table_xml = zip_entry(&bytes, "xl/tables/table1.xml");
    let table = &elements(&table_xml, "table")[0];
    assert_eq!(attr(table, "ref"), "B6:G11");
    assert_eq!(attr(table, "totalsRowCount"), "1");
    let functions: Vec<Option<String>> = elements(&table_xml, "tableColumn")
        .into_iter()
        .map(|c| c.attrs.get("totalsRowFunction").cloned())
        .collect();
    assert_eq!(
        functions,
        [
            None,
            Some("sum"),
            Some("max"),
            Some("countNums"),
            Some("count"),
            None
        ]
        .map(|f| f.map(str::to_owned))
    );
    // The totals take the column's number format (written over the table's own formula).
    assert_eq!(number_format_of(&bytes, "C11"), "#,##0.000");
    assert_eq!(number_format_of(&bytes, "D11"), "dd/mm/yyyy");
    assert_eq!(number_format_of(&bytes, "E11"), "#,##0");
}

#[test]
fn a_large_table_gets_subtotal_formulas_over_the_data_and_a_filter_over_the_block() {
    let bytes = write(&full_template(), 1);

    let mut book = Xlsx::new(Cursor::new(bytes.clone())).unwrap();
    book.load_tables().unwrap();
    assert!(book.table_names().is_empty());
    let data = book.worksheet_range("Invoices").unwrap();
    let formulas = book.worksheet_formula("Invoices").unwrap();
    let formula = |col: u32| formulas.get_value((10, col)).cloned().unwrap_or_default();
    assert_eq!(cell(&data, 10, 1), text("Total"));
    assert_eq!(formula(2), "SUBTOTAL(109,C7:C10)");
    assert_eq!(formula(3), "SUBTOTAL(104,D7:D10)");
    assert_eq!(formula(4), "SUBTOTAL(102,E7:E10)");
    assert_eq!(formula(5), "SUBTOTAL(103,F7:F10)");
    assert_eq!(formula(6), "");
    assert_eq!(number_format_of(&bytes, "C11"), "#,##0.000");

    let sheet = zip_entry(&bytes, "xl/worksheets/sheet1.xml");
    let filter = elements(&sheet, "autoFilter");
    assert_eq!(filter.len(), 1);
    assert_eq!(attr(&filter[0], "ref"), "B6:G10");
}

#[test]
fn the_header_and_first_column_are_frozen_and_columns_have_their_widths() {
    let bytes = write(&full_template(), 200_000);
    let sheet = zip_entry(&bytes, "xl/worksheets/sheet1.xml");

    let pane = &elements(&sheet, "pane")[0];
    assert_eq!(attr(pane, "ySplit"), "6");
    assert_eq!(
        attr(pane, "xSplit"),
        "2",
        "column A and the block's first column"
    );
    assert_eq!(attr(pane, "topLeftCell"), "C7");
    assert_eq!(attr(pane, "state"), "frozen");

    let widths: HashMap<String, f64> = elements(&sheet, "col")
        .iter()
        .map(|c| (attr(c, "min").to_owned(), attr(c, "width").parse().unwrap()))
        .collect();
    // Excel stores a width of n characters as n plus its cell padding (30 → 30.71).
    let customer = widths["2"];
    assert!(
        (30.0..31.0).contains(&customer),
        "Customer width {customer}"
    );
    assert!(
        !widths.contains_key("1"),
        "column A keeps the default width"
    );
    assert!(widths.contains_key("7"), "every block column is sized");
}

#[test]
fn number_formats_header_style_and_alignment_are_in_the_styles() {
    let bytes = write(&full_template(), 200_000);
    let styles = zip_entry(&bytes, "xl/styles.xml");

    let codes: Vec<String> = elements(&styles, "numFmt")
        .iter()
        .map(|f| attr(f, "formatCode").to_owned())
        .collect();
    assert!(codes.contains(&"#,##0.000".to_owned()), "{codes:?}");
    assert!(codes.contains(&"dd/mm/yyyy".to_owned()), "{codes:?}");
    // Data cells use them: an amount and a date.
    assert_eq!(number_format_of(&bytes, "C7"), "#,##0.000");
    assert_eq!(number_format_of(&bytes, "D7"), "dd/mm/yyyy");
    assert_eq!(
        number_format_of(&bytes, "E7"),
        "#,##0",
        "qty keeps its default"
    );

    let fills: Vec<String> = elements(&styles, "fgColor")
        .iter()
        .filter_map(|c| c.attrs.get("rgb").cloned())
        .collect();
    assert!(fills.contains(&"FF1F4E78".to_owned()), "{fills:?}");
    let font_colors: Vec<String> = elements(&styles, "color")
        .iter()
        .filter_map(|c| c.attrs.get("rgb").cloned())
        .collect();
    assert!(font_colors.contains(&"FFFFFFFF".to_owned()));
    let alignments: Vec<HashMap<String, String>> = elements(&styles, "alignment")
        .into_iter()
        .map(|a| a.attrs)
        .collect();
    assert!(
        alignments
            .iter()
            .any(|a| a.get("horizontal").map(String::as_str) == Some("right"))
    );
    assert!(
        alignments
            .iter()
            .any(|a| a.get("wrapText").map(String::as_str) == Some("1"))
    );
}

#[test]
fn conditional_formats_cover_the_data_of_their_column_with_their_operator() {
    let bytes = write(&full_template(), 200_000);
    let sheet = zip_entry(&bytes, "xl/worksheets/sheet1.xml");

    /// A rule's type, operator and formulas.
    type Rule = (String, String, Vec<String>);
    let found: Vec<(String, Vec<Rule>)> = elements(&sheet, "conditionalFormatting")
        .iter()
        .map(|cf| {
            let rules = elements(&cf.inner, "cfRule")
                .iter()
                .map(|r| {
                    let formulas = elements(&r.inner, "formula")
                        .into_iter()
                        .map(|f| f.inner)
                        .collect();
                    (
                        attr(r, "type").to_owned(),
                        r.attrs.get("operator").cloned().unwrap_or_default(),
                        formulas,
                    )
                })
                .collect();
            (attr(cf, "sqref").to_owned(), rules)
        })
        .collect();
    let rule = |t: &str, op: &str, f: &[&str]| {
        (
            t.to_owned(),
            op.to_owned(),
            f.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        found,
        [
            (
                "C7:C10".to_owned(),
                vec![
                    rule("cellIs", "greaterThan", &["1000"]),
                    rule("cellIs", "between", &["50", "100"]),
                    rule("containsBlanks", "", &["LEN(TRIM(C7))=0"]),
                ]
            ),
            // "2" on an integer column compares as the number 2.
            (
                "E7:E10".to_owned(),
                vec![rule("cellIs", "lessThanOrEqual", &["2"])]
            ),
            (
                "F7:F10".to_owned(),
                vec![rule(
                    "containsText",
                    "containsText",
                    &["NOT(ISERROR(SEARCH(\"EM\",F7)))"]
                )]
            ),
        ]
    );

    let styles = zip_entry(&bytes, "xl/styles.xml");
    let dxfs = &elements(&styles, "dxfs")[0].inner;
    let first = &elements(dxfs, "dxf")[0].inner;
    assert_eq!(elements(first, "b").len(), 1);
    let colors: Vec<String> = elements(first, "color")
        .into_iter()
        .map(|c| c.attrs["rgb"].clone())
        .collect();
    assert_eq!(colors, ["FF9C0006"], "font colour of the first rule");
    assert_eq!(elements(first, "bgColor")[0].attrs["rgb"], "FFFFC7CE");
}

#[test]
fn validations_cover_the_data_rows_of_their_output_columns() {
    let bytes = write(&full_template(), 200_000);
    let sheet = zip_entry(&bytes, "xl/worksheets/sheet1.xml");

    let validations: Vec<(String, String)> = elements(&sheet, "dataValidation")
        .iter()
        .map(|v| (attr(v, "type").to_owned(), attr(v, "sqref").to_owned()))
        .collect();
    // Under a totals row only the data is validated.
    assert_eq!(
        validations,
        [
            ("decimal".to_owned(), "C7:C10".to_owned()),
            ("list".to_owned(), "G7:G10".to_owned())
        ]
    );
}

#[test]
fn without_totals_validations_run_to_the_end_of_the_sheet() {
    let mut template = full_template();
    for column in &mut template.columns {
        column.total = None;
    }
    let bytes = write(&template, 200_000);
    let sheet = zip_entry(&bytes, "xl/worksheets/sheet1.xml");
    let sqrefs: Vec<String> = elements(&sheet, "dataValidation")
        .iter()
        .map(|v| attr(v, "sqref").to_owned())
        .collect();
    assert_eq!(sqrefs, ["C7:C1048576", "G7:G1048576"]);

    let mut book = Xlsx::new(Cursor::new(bytes.clone())).unwrap();
    book.load_tables().unwrap();
    let table_xml = zip_entry(&bytes, "xl/tables/table1.xml");
    assert_eq!(attr(&elements(&table_xml, "table")[0], "ref"), "B6:G10");
    let data = book.worksheet_range("Invoices").unwrap();
    assert_eq!(cell(&data, 10, 1), Data::Empty, "no totals row");
}

#[test]
fn layout_switches_turn_off_the_filter_the_frozen_header_and_the_about_sheet() {
    let mut template = full_template();
    template.layout.autofilter = false;
    template.layout.freeze_header = false;
    template.layout.freeze_columns = 0;
    template.layout.about_sheet = false;

    for limit in [200_000, 1] {
        let bytes = write(&template, limit);
        let book = Xlsx::new(Cursor::new(bytes.clone())).unwrap();
        assert_eq!(book.sheet_names(), ["Invoices"]);
        let sheet = zip_entry(&bytes, "xl/worksheets/sheet1.xml");
        assert!(elements(&sheet, "pane").is_empty());
        assert!(elements(&sheet, "autoFilter").is_empty());
        if limit > 1 {
            let table_xml = zip_entry(&bytes, "xl/tables/table1.xml");
            assert!(elements(&table_xml, "autoFilter").is_empty());
        }
    }
}

#[test]
fn the_identity_template_writes_exactly_what_no_template_writes() {
    let (columns, rows) = invoices();
    let plain = |options: &XlsxOptions, limit: u64| {
        let options = XlsxOptions {
            table_cell_limit: limit,
            ..options.clone()
        };
        let mut out = Vec::new();
        write_xlsx(
            &mut out,
            &columns,
            rows.clone().into_iter(),
            &meta(),
            &options,
        )
        .unwrap();
        out
    };
    let through = |resolved: &Resolved, limit: u64| {
        let options = XlsxOptions {
            table_cell_limit: limit,
            ..XlsxOptions::for_template(resolved)
        };
        let mut out = Vec::new();
        write_xlsx(
            &mut out,
            &resolved.columns,
            rows.iter().map(|r| resolved.map_row(r)),
            &meta(),
            &options,
        )
        .unwrap();
        out
    };
    let identity = Resolved::identity(&columns);
    let empty = Template::default().resolve(&columns).unwrap();
    for limit in [200_000, 1] {
        let before = plain(&XlsxOptions::default(), limit);
        for after in [through(&identity, limit), through(&empty, limit)] {
            let names = zip_names(&before);
            assert_eq!(names, zip_names(&after));
            // docProps carry the time of writing.
            for name in names.iter().filter(|n| !n.starts_with("docProps/")) {
                assert_eq!(
                    zip_entry(&before, name),
                    zip_entry(&after, name),
                    "{name}, limit {limit}"
                );
            }
        }
    }
}

#[test]
fn a_start_cell_that_is_not_a_cell_or_styles_for_other_columns_are_errors() {
    let (columns, rows) = invoices();
    let mut options = XlsxOptions::default();
    options.layout.start_cell = Some("B0".into());
    let err = write_xlsx(
        Vec::new(),
        &columns,
        rows.clone().into_iter(),
        &meta(),
        &options,
    )
    .unwrap_err();
    assert!(matches!(err, ExportError::Layout(_)), "{err:?}");

    let resolved = full_template().resolve(&columns).unwrap();
    let err = write_xlsx(
        Vec::new(),
        &columns,
        rows.into_iter(),
        &meta(),
        &XlsxOptions::for_template(&resolved),
    )
    .unwrap_err();
    assert!(matches!(err, ExportError::Layout(_)), "{err:?}");
}

#[test]
fn a_block_that_starts_near_the_bottom_of_the_sheet_is_too_large() {
    let (columns, rows) = invoices();
    let mut options = XlsxOptions::default();
    options.layout.start_cell = Some("A1048574".into());
    let err = write_xlsx(Vec::new(), &columns, rows.into_iter(), &meta(), &options).unwrap_err();
    assert!(
        matches!(err, ExportError::TooLargeForXlsx { max_rows: 2, .. }),
        "{err:?}"
    );
}

#[test]
fn condition_values_are_compared_in_the_terms_cells_are_stored_in() {
    let columns = vec![
        Column::new("c1", "share", ColumnType::Percent),
        Column::new("c2", "due", ColumnType::Date),
        Column::new("c3", "note", ColumnType::Text),
    ];
    let rows = [vec![
        Value::Percent(dec("12.5")),
        Value::Date(day(1)),
        Value::Text("12".into()),
    ]];
    let template: Template = serde_json::from_value(serde_json::json!({"columns": [
        {"source": "share", "conditional": [
            {"when": {"op": "greater_than", "value": 50}, "style": {"bold": true}},
            {"when": {"op": "less_than", "value": "5%"}, "style": {"bold": true}}]},
        {"source": "due", "conditional": [
            {"when": {"op": "less_than", "value": "2024-03-15"}, "style": {"bold": true}}]},
        {"source": "note", "conditional": [
            {"when": {"op": "equal_to", "value": "12"}, "style": {"bold": true}}]}
    ]}))
    .unwrap();
    assert_eq!(template.check(), Ok(()));
    let resolved = template.resolve(&columns).unwrap();
    let mut bytes = Vec::new();
    write_xlsx(
        &mut bytes,
        &resolved.columns,
        rows.iter().map(|r| resolved.map_row(r)),
        &meta(),
        &XlsxOptions::for_template(&resolved),
    )
    .unwrap();

    let sheet = zip_entry(&bytes, "xl/worksheets/sheet1.xml");
    let formulas: Vec<String> = elements(&sheet, "formula")
        .into_iter()
        .map(|f| f.inner)
        .collect();
    // 50 % is 0.5 in a cell; 2024-03-15 is Excel day 45366; text stays quoted text.
    assert_eq!(formulas, ["0.5", "0.05", "45366", "\"12\""]);
}

/// Every total function once, over a header that structured references must escape.
fn totals_template() -> Template {
    let template: Template = serde_json::from_value(serde_json::json!({
        "columns": [
            {"source": "name", "header": "Customer"},
            {"source": "amount", "header": "Net [EUR] #1's", "total": "sum"},
            {"source": "amount", "header": "Mean", "total": "average"},
            {"source": "due", "header": "Due date", "total": "max"},
            {"source": "qty", "total": "count_nums"},
            {"source": "qty", "header": "Least", "total": "min"},
            {"header": "Region", "constant": "EMEA", "total": "count"}
        ],
        "layout": {"start_cell": "B2"}
    }))
    .unwrap();
    assert_eq!(template.check(), Ok(()));
    template
}

/// The totals of the invoices under `totals_template`, from column C of row 7 on: sum,
/// average, the latest due date (as Excel's serial number), count of numbers, least, count.
const EXPECTED_TOTALS: [f64; 6] = [
    1700.75,
    1700.75 / 3.0,
    45382.0, // 2024-03-31
    4.0,
    1.0,
    4.0,
];

/// The numbers of the totals row (row 7, columns C to H) of the sheet named `sheet`.
fn totals_row(bytes: Vec<u8>, sheet: &str) -> Vec<Data> {
    let mut book = Xlsx::new(Cursor::new(bytes)).unwrap();
    let data = book.worksheet_range(sheet).unwrap();
    assert_eq!(cell(&data, 6, 1), text("Total"), "the label");
    (2..8).map(|col| cell(&data, 6, col)).collect()
}

fn assert_totals(found: &[Data], what: &str) {
    assert_eq!(found.len(), EXPECTED_TOTALS.len());
    for (i, (data, want)) in found.iter().zip(EXPECTED_TOTALS).enumerate() {
        let got = match data {
            Data::Float(x) => *x,
            Data::Int(x) => *x as f64,
            Data::DateTime(d) => d.as_f64(),
            other => panic!("{what}: total {i} is {other:?}, not {want}"),
        };
        assert!(
            (got - want).abs() < 1e-9,
            "{what}: total {i} is {got}, not {want}"
        );
    }
}

#[test]
fn every_total_carries_its_value_as_the_cached_result_with_and_without_a_table() {
    for (limit, what) in [(200_000, "a table"), (1, "plain formulas")] {
        let bytes = write(&totals_template(), limit);
        assert_totals(&totals_row(bytes.clone(), "Data"), what);
        let mut book = Xlsx::new(Cursor::new(bytes)).unwrap();
        let formulas = book.worksheet_formula("Data").unwrap();
        let formula = |col: u32| formulas.get_value((6, col)).cloned().unwrap_or_default();
        if limit == 1 {
            assert_eq!(formula(2), "SUBTOTAL(109,C3:C6)");
        } else {
            assert_eq!(formula(2), "SUBTOTAL(109,Table1[Net '[EUR'] '#1''s])");
        }
        assert_eq!(formula(3).split(',').next(), Some("SUBTOTAL(101"));
    }
}

#[test]
fn the_average_of_no_numbers_is_cached_as_the_error_a_spreadsheet_shows() {
    let columns = vec![
        Column::new("c1", "name", ColumnType::Text),
        Column::new("c2", "amount", ColumnType::Decimal),
    ];
    let template: Template = serde_json::from_value(serde_json::json!({
        "columns": [{"source": "name"}, {"source": "amount", "total": "average"}]
    }))
    .unwrap();
    let resolved = template.resolve(&columns).unwrap();
    let mut out = Vec::new();
    let rows = [vec![Value::Text("a".into()), Value::Null]];
    write_xlsx(
        &mut out,
        &resolved.columns,
        rows.iter().map(|r| resolved.map_row(r)),
        &meta(),
        &XlsxOptions::for_template(&resolved),
    )
    .unwrap();
    let sheet = zip_entry(&out, "xl/worksheets/sheet1.xml");
    let total = elements(&sheet, "c")
        .into_iter()
        .find(|c| attr(c, "r") == "B3")
        .unwrap();
    assert_eq!(attr(&total, "t"), "e");
    assert!(total.inner.contains("<v>#DIV/0!</v>"), "{}", total.inner);
}

/// Runs LibreOffice headless (Debian's `libreoffice-calc-nogui`) on `files`, saving each as
/// XLSX in `out`, with its own profile in which formulas are recalculated on loading or not.
/// `false` when `soffice` is missing, which fails the test when `SHEETGPT_LIBREOFFICE_TESTS=1`.
fn libreoffice(files: &[std::path::PathBuf], out: &std::path::Path, recalculate: bool) -> bool {
    use std::process::{Command, Stdio};
    let required = std::env::var("SHEETGPT_LIBREOFFICE_TESTS").is_ok_and(|v| v == "1");
    if Command::new("soffice")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        assert!(
            !required,
            "soffice is not installed (SHEETGPT_LIBREOFFICE_TESTS=1)"
        );
        eprintln!("skipped: soffice (LibreOffice) is not installed");
        return false;
    }
    // 0: always recalculate an OOXML file on loading; 1: never (LibreOffice's default).
    let mode = if recalculate { 0 } else { 1 };
    let profile = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(profile.path().join("user")).unwrap();
    std::fs::write(
        profile.path().join("user/registrymodifications.xcu"),
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="OOXMLRecalcMode" oor:op="fuse"><value>{mode}</value></prop></item>
</oor:items>
"#
        ),
    )
    .unwrap();
    let mut child = Command::new("soffice")
        .arg(format!(
            "-env:UserInstallation=file://{}",
            profile.path().display()
        ))
        .args([
            "--headless",
            "--norestore",
            "--convert-to",
            "xlsx",
            "--outdir",
        ])
        .arg(out)
        .args(files)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "soffice failed: {status}");
            return true;
        }
        if started.elapsed() > std::time::Duration::from_secs(180) {
            let _ = child.kill();
            panic!("soffice did not finish within 180 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// What a person sees in LibreOffice, which by default shows the cached results of an XLSX
/// file, and after a recalculation (or in a previewer that does compute): the same totals,
/// with the Excel table and with plain formulas.
#[test]
fn libreoffice_shows_the_totals_as_written_and_computes_the_same_after_recalculating() {
    let dir = tempfile::tempdir().unwrap();
    let mut files: Vec<std::path::PathBuf> = [(200_000, "table"), (1, "plain")]
        .into_iter()
        .map(|(limit, name)| {
            let path = dir.path().join(format!("{name}.xlsx"));
            std::fs::write(&path, write(&totals_template(), limit)).unwrap();
            path
        })
        .collect();
    // A control whose cached result is wrong on purpose: it shows whether LibreOffice did
    // recalculate (2) or showed what the file holds (0).
    let mut control = rust_xlsxwriter::Workbook::new();
    control
        .add_worksheet()
        .write_formula(0, 0, rust_xlsxwriter::Formula::new("1+1").set_result("0"))
        .unwrap();
    let control_path = dir.path().join("control.xlsx");
    control.save(&control_path).unwrap();
    files.push(control_path);
    for recalculate in [false, true] {
        let out = dir.path().join(if recalculate {
            "recalculated"
        } else {
            "opened"
        });
        if !libreoffice(&files, &out, recalculate) {
            return;
        }
        let mut book = Xlsx::new(Cursor::new(
            std::fs::read(out.join("control.xlsx")).unwrap(),
        ))
        .unwrap();
        let sheet = book.worksheet_range("Sheet1").unwrap();
        let want = if recalculate { 2.0 } else { 0.0 };
        assert_eq!(
            cell(&sheet, 0, 0),
            Data::Float(want),
            "recalculated: {recalculate}"
        );
        for name in ["table", "plain"] {
            let bytes = std::fs::read(out.join(format!("{name}.xlsx"))).unwrap();
            assert_totals(
                &totals_row(bytes, "Data"),
                &format!("{name}, recalculated: {recalculate}"),
            );
        }
    }
}
