//! The import reader on real and hostile files, built here: workbooks written by
//! rust_xlsxwriter, and zips written by hand for what no spreadsheet program writes (a huge
//! shared string, a part that lies about its size, repeats that expand to billions of cells).
//! Every reader is also fed arbitrary bytes: it may refuse them, never panic.

use std::io::{Cursor, Write};

use proptest::prelude::*;
use sheetgpt_core::import::{ImportError, Limits, Place, Source, read_table};
use sheetgpt_core::table::{ColumnType, Table, Value};
use zip::write::SimpleFileOptions;

const NS: &str = "http://schemas.openxmlformats.org/spreadsheetml/2006/main";
const REL: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";

fn sheet_source() -> Source {
    Source::Spreadsheet { sheet: None }
}

fn read(bytes: &[u8], limits: &Limits) -> Result<Table, ImportError> {
    read_table(Cursor::new(bytes), &sheet_source(), limits).map(|(t, _)| t)
}

type Zip = zip::ZipWriter<Cursor<Vec<u8>>>;

fn add(zip: &mut Zip, name: &str, body: &str) {
    let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    if let Err(e) = zip
        .start_file(name, opts)
        .and_then(|()| Ok(zip.write_all(body.as_bytes())?))
    {
        panic!("cannot build the test zip: {e}");
    }
}

fn finished(zip: Zip) -> Vec<u8> {
    match zip.finish() {
        Ok(c) => c.into_inner(),
        Err(e) => panic!("cannot finish the test zip: {e}"),
    }
}

/// A minimal XLSX: one sheet whose `<sheetData>` is `rows`, and a shared string table that
/// `shared` writes into the zip (so a test can stream a huge one).
fn xlsx(rows: &str, shared: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    add(
        &mut zip,
        "[Content_Types].xml",
        "<Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\">\
         <Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/>\
         <Default Extension=\"xml\" ContentType=\"application/xml\"/></Types>",
    );
    add(
        &mut zip,
        "_rels/.rels",
        &format!(
            "<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">\
             <Relationship Id=\"rId1\" Type=\"{REL}/officeDocument\" Target=\"xl/workbook.xml\"/></Relationships>"
        ),
    );
    add(
        &mut zip,
        "xl/workbook.xml",
        &format!(
            "<workbook xmlns=\"{NS}\" xmlns:r=\"{REL}\"><sheets>\
             <sheet name=\"Data\" sheetId=\"1\" r:id=\"rId1\"/></sheets></workbook>"
        ),
    );
    add(
        &mut zip,
        "xl/_rels/workbook.xml.rels",
        &format!(
            "<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">\
             <Relationship Id=\"rId1\" Type=\"{REL}/worksheet\" Target=\"worksheets/sheet1.xml\"/></Relationships>"
        ),
    );
    add(
        &mut zip,
        "xl/worksheets/sheet1.xml",
        &format!("<worksheet xmlns=\"{NS}\"><sheetData>{rows}</sheetData></worksheet>"),
    );
    add(&mut zip, "xl/sharedStrings.xml", "");
    if let Err(e) = shared(&mut zip) {
        panic!("cannot write the shared strings: {e}");
    }
    finished(zip)
}

fn strings(list: &[&str]) -> impl FnOnce(&mut dyn Write) -> std::io::Result<()> {
    let body: String = list
        .iter()
        .map(|s| format!("<si><t>{s}</t></si>"))
        .collect();
    let xml = format!(
        "<sst xmlns=\"{NS}\" count=\"{n}\" uniqueCount=\"{n}\">{body}</sst>",
        n = list.len()
    );
    move |w| w.write_all(xml.as_bytes())
}

fn text_cell(r: &str, index: usize) -> String {
    format!("<c r=\"{r}\" t=\"s\"><v>{index}</v></c>")
}

#[test]
fn cells_at_a1_and_xfd1048576_are_refused_for_their_columns_without_a_grid() {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    sheet
        .write_string(0, 0, "name")
        .unwrap_or_else(|e| panic!("{e}"));
    sheet
        .write_number(1_048_575, 16_383, 1.0)
        .unwrap_or_else(|e| panic!("{e}"));
    let bytes = book.save_to_buffer().unwrap_or_else(|e| panic!("{e}"));
    assert!(bytes.len() < 10_000, "a few kilobytes: {}", bytes.len());
    assert_eq!(
        read(&bytes, &Limits::default()),
        Err(ImportError::TooManyColumns {
            found: 16_384,
            max: 1_000,
            at: Some(Place::Cell {
                row: 1_048_575,
                column: 16_383
            }),
        })
    );
}

#[test]
fn a_wide_sparse_sheet_is_read_cell_by_cell() {
    // Bounding box 1000 × 20,000 with four cells: calamine's grid would be 20 million cells.
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    let ok = |r: Result<&mut rust_xlsxwriter::Worksheet, rust_xlsxwriter::XlsxError>| {
        r.unwrap_or_else(|e| panic!("{e}"));
    };
    ok(sheet.write_string(0, 0, "first"));
    ok(sheet.write_string(0, 999, "last"));
    ok(sheet.write_number(19_999, 0, 1.0));
    ok(sheet.write_number(19_999, 999, 2.5));
    let bytes = book.save_to_buffer().unwrap_or_else(|e| panic!("{e}"));
    let (table, scan) = read_table(Cursor::new(&bytes), &sheet_source(), &Limits::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(table.columns.len(), 1000);
    assert_eq!(table.columns[999].name, "last");
    assert_eq!(table.columns[1].name, "Column 2");
    assert_eq!(table.rows.len(), 1);
    assert_eq!(table.rows[0][0], Value::Integer(1));
    assert_eq!(table.rows[0][500], Value::Null);
    assert_eq!(
        scan.empty_rows_skipped, 0,
        "missing rows are not empty rows"
    );
}

#[test]
fn spreadsheet_cells_are_typed_as_they_are_held() {
    use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};
    let mut book = Workbook::new();
    let sheet = book.add_worksheet();
    let date = Format::new().set_num_format("yyyy-mm-dd");
    let put = |r: Result<&mut rust_xlsxwriter::Worksheet, rust_xlsxwriter::XlsxError>| {
        r.unwrap_or_else(|e| panic!("{e}"));
    };
    for (c, h) in ["zip", "price", "big", "when", "ok", "mixed"]
        .iter()
        .enumerate()
    {
        put(sheet.write_string(0, c as u16, *h));
    }
    put(sheet.write_string(1, 0, "08123"));
    put(sheet.write_number(1, 1, 0.1));
    put(sheet.write_number(1, 2, 1e300));
    let day = ExcelDateTime::from_ymd(2024, 3, 4).unwrap_or_else(|e| panic!("{e}"));
    put(sheet.write_datetime_with_format(1, 3, &day, &date));
    put(sheet.write_boolean(1, 4, true));
    put(sheet.write_number(1, 5, 12.0));
    put(sheet.write_string(2, 0, "00042"));
    put(sheet.write_number(2, 1, 19.99));
    put(sheet.write_number(2, 2, 0.5));
    put(sheet.write_string(2, 4, "N/A"));
    put(sheet.write_string(2, 5, "twelve"));
    let bytes = book.save_to_buffer().unwrap_or_else(|e| panic!("{e}"));
    let t = read(&bytes, &Limits::default()).unwrap_or_else(|e| panic!("{e}"));
    let types: Vec<ColumnType> = t.columns.iter().map(|c| c.ty).collect();
    assert_eq!(
        types[1..],
        [
            ColumnType::Decimal,
            ColumnType::Float,
            ColumnType::Date,
            ColumnType::Boolean,
            ColumnType::Text,
        ]
    );
    assert_eq!(t.rows[0][1].to_string(), "0.1", "not 0.1000000000000000055");
    assert_eq!(t.rows[0][2], Value::Float(1e300));
    assert_eq!(t.rows[1][5], Value::Text("twelve".into()));
    assert_eq!(t.rows[0][5], Value::Text("12".into()));
    assert_eq!(t.rows[1][4], Value::Null);
}

#[test]
fn a_shared_string_at_the_cell_limit_is_read_and_one_past_it_is_refused_naming_the_cell() {
    let limits = Limits {
        max_cell_chars: 100,
        ..Limits::default()
    };
    let rows = format!(
        "<row r=\"1\">{}{}</row><row r=\"2\">{}{}</row>",
        text_cell("A1", 0),
        text_cell("B1", 1),
        text_cell("A2", 2),
        text_cell("B2", 3)
    );
    let at_limit = "é".repeat(100);
    let t = read(&xlsx(&rows, strings(&["a", "b", "x", &at_limit])), &limits)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t.rows[0][1], Value::Text(at_limit));
    let past = "é".repeat(101);
    assert_eq!(
        read(&xlsx(&rows, strings(&["a", "b", "x", &past])), &limits),
        Err(ImportError::CellTooLong {
            at: Place::Cell { row: 1, column: 1 },
            max: 100
        })
    );
}

#[test]
fn a_huge_shared_string_is_refused_before_it_is_inflated() {
    let limits = Limits {
        max_cell_chars: 1_000,
        ..Limits::default()
    };
    let rows = format!("<row r=\"1\">{}</row>", text_cell("A1", 0));
    // 20 MB of one string compresses to a few kilobytes.
    let bytes = xlsx(&rows, |w| {
        w.write_all(b"<sst uniqueCount=\"1\"><si><t>")?;
        let chunk = vec![b'a'; 1 << 20];
        for _ in 0..20 {
            w.write_all(&chunk)?;
        }
        w.write_all(b"</t></si></sst>")
    });
    assert!(bytes.len() < 200_000, "{}", bytes.len());
    assert!(matches!(
        read(&bytes, &limits),
        Err(ImportError::TooLarge(_))
    ));
}

#[test]
fn what_a_workbook_inflates_to_is_bounded_at_and_past_the_limit() {
    let rows = format!(
        "<row r=\"1\">{}</row><row r=\"2\"><c r=\"A2\"><v>1</v></c></row>",
        text_cell("A1", 0)
    );
    let bytes = xlsx(&rows, strings(&["n"]));
    let mut zip = zip::ZipArchive::new(Cursor::new(&bytes)).unwrap_or_else(|e| panic!("{e}"));
    let (mut total, mut shared) = (0u64, 0u64);
    for i in 0..zip.len() {
        let f = zip.by_index_raw(i).unwrap_or_else(|e| panic!("{e}"));
        total += f.size();
        if f.name()
            .map(|n| n.ends_with("sharedStrings.xml"))
            .unwrap_or(false)
        {
            shared = f.size();
        }
    }
    let at = |inflated: u64, strings: u64| Limits {
        max_inflated_bytes: inflated,
        max_shared_strings_bytes: strings,
        ..Limits::default()
    };
    assert!(read(&bytes, &at(total, shared)).is_ok());
    assert!(matches!(
        read(&bytes, &at(total - 1, shared)),
        Err(ImportError::TooLarge(_))
    ));
    assert!(matches!(
        read(&bytes, &at(total, shared - 1)),
        Err(ImportError::TooLarge(_))
    ));
}

/// Rewrites the uncompressed size that the local and central headers of `name` declare.
fn declare_size(bytes: &mut [u8], name: &str, size: u32) {
    let name = name.as_bytes();
    let mut patched = 0;
    for i in 0..bytes.len().saturating_sub(46) {
        let local = bytes[i..].starts_with(b"PK\x03\x04") && bytes[i + 30..].starts_with(name);
        let central = bytes[i..].starts_with(b"PK\x01\x02") && bytes[i + 46..].starts_with(name);
        if local {
            bytes[i + 22..i + 26].copy_from_slice(&size.to_le_bytes());
            patched += 1;
        } else if central {
            bytes[i + 24..i + 28].copy_from_slice(&size.to_le_bytes());
            patched += 1;
        }
    }
    assert_eq!(patched, 2, "both headers of the part");
}

#[test]
fn a_part_that_inflates_past_its_declared_size_is_refused() {
    let rows = format!(
        "<row r=\"1\">{}</row><row r=\"2\"><c r=\"A2\"><v>1</v></c></row>",
        text_cell("A1", 0)
    );
    let mut bytes = xlsx(&rows, strings(&["n"]));
    declare_size(&mut bytes, "xl/worksheets/sheet1.xml", 10);
    // The zip reader stops at the declared size too; either way nothing more is inflated.
    let got = read(&bytes, &Limits::default());
    assert!(
        matches!(got, Err(ImportError::NotASpreadsheet(ref m)) if m.contains("declare")),
        "{got:?}"
    );
}

#[test]
fn a_shared_string_table_declaring_billions_of_strings_is_refused() {
    let rows = format!("<row r=\"1\">{}</row>", text_cell("A1", 0));
    let bytes = xlsx(&rows, |w| {
        w.write_all(b"<sst uniqueCount=\"4000000000\"><si><t>n</t></si></sst>")
    });
    assert!(matches!(
        read(&bytes, &Limits::default()),
        Err(ImportError::NotASpreadsheet(_))
    ));
}

#[test]
fn a_nul_in_a_spreadsheet_cell_is_refused_naming_the_cell() {
    let rows = format!(
        "<row r=\"1\">{}</row><row r=\"2\"><c r=\"A2\" t=\"inlineStr\"><is><t>a&#0;b</t></is></c></row>",
        text_cell("A1", 0)
    );
    // `&#0;` is not XML; a file can still hold the byte itself.
    let rows = rows.replace("&#0;", "\0");
    assert_eq!(
        read(&xlsx(&rows, strings(&["n"])), &Limits::default()),
        Err(ImportError::Nul {
            at: Place::Cell { row: 1, column: 0 }
        })
    );
}

#[test]
fn rows_that_go_back_are_refused() {
    let rows = format!(
        "<row r=\"1\">{}</row><row r=\"3\"><c r=\"A3\"><v>1</v></c></row><row r=\"2\"><c r=\"A2\"><v>2</v></c></row>",
        text_cell("A1", 0)
    );
    assert_eq!(
        read(&xlsx(&rows, strings(&["n"])), &Limits::default()),
        Err(ImportError::OutOfOrder { row: 2, after: 3 })
    );
}

fn ods(content: &str) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let stored = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let deflated =
        SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let built = (|| -> zip::result::ZipResult<()> {
        zip.start_file("mimetype", stored)?;
        zip.write_all(b"application/vnd.oasis.opendocument.spreadsheet")?;
        zip.start_file("META-INF/manifest.xml", deflated)?;
        zip.write_all(
            b"<manifest:manifest xmlns:manifest=\"urn:oasis:names:tc:opendocument:xmlns:manifest:1.0\">\
              <manifest:file-entry manifest:full-path=\"/\" manifest:media-type=\"application/vnd.oasis.opendocument.spreadsheet\"/>\
              <manifest:file-entry manifest:full-path=\"content.xml\" manifest:media-type=\"text/xml\"/>\
              </manifest:manifest>",
        )?;
        zip.start_file("content.xml", deflated)?;
        zip.write_all(
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
                 <office:document-content xmlns:office=\"urn:oasis:names:tc:opendocument:xmlns:office:1.0\" \
                 xmlns:table=\"urn:oasis:names:tc:opendocument:xmlns:table:1.0\" \
                 xmlns:text=\"urn:oasis:names:tc:opendocument:xmlns:text:1.0\">\
                 <office:body><office:spreadsheet>{content}</office:spreadsheet></office:body>\
                 </office:document-content>"
            )
            .as_bytes(),
        )?;
        Ok(())
    })();
    if let Err(e) = built {
        panic!("cannot build the test ODS: {e}");
    }
    finished(zip)
}

fn ods_cell(value: &str, repeat: u64) -> String {
    format!(
        "<table:table-cell office:value-type=\"float\" office:value=\"{value}\" \
         table:number-columns-repeated=\"{repeat}\"><text:p>{value}</text:p></table:table-cell>"
    )
}

#[test]
fn an_ods_sheet_is_read_and_its_repeats_are_bounded() {
    let header = "<table:table-row><table:table-cell office:value-type=\"string\"><text:p>n</text:p></table:table-cell>\
                  <table:table-cell office:value-type=\"string\"><text:p>m</text:p></table:table-cell></table:table-row>";
    let small = format!(
        "<table:table table:name=\"S\">{header}<table:table-row table:number-rows-repeated=\"3\">{}</table:table-row></table:table>",
        ods_cell("1.5", 2)
    );
    let t = read(&ods(&small), &Limits::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t.rows.len(), 3);
    assert_eq!(t.columns[1].ty, ColumnType::Decimal);
    // 2 columns × 4 rows = 8 cells: at the bound it is read, one under it is refused.
    let cells = |max| Limits {
        max_sheet_cells: max,
        ..Limits::default()
    };
    assert!(read(&ods(&small), &cells(8)).is_ok());
    assert!(matches!(
        read(&ods(&small), &cells(7)),
        Err(ImportError::TooLarge(_))
    ));
    // A million rows of a thousand columns in a few hundred bytes.
    let bomb = format!(
        "<table:table table:name=\"S\">{header}<table:table-row table:number-rows-repeated=\"1000000\">{}</table:table-row></table:table>",
        ods_cell("1", 1000)
    );
    assert!(matches!(
        read(&ods(&bomb), &Limits::default()),
        Err(ImportError::TooLarge(_))
    ));
}

#[test]
fn a_delimited_file_and_a_spreadsheet_name_their_sheet_and_delimiter() {
    let (_, scan) = read_table(
        Cursor::new(b"a;b\n1;2\n".as_slice()),
        &Source::Delimited { delimiter: None },
        &Limits::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(scan.delimiter, Some(b';'));
    let rows = format!(
        "<row r=\"1\">{}</row><row r=\"2\"><c r=\"A2\"><v>1</v></c></row>",
        text_cell("A1", 0)
    );
    let bytes = xlsx(&rows, strings(&["n"]));
    let (_, scan) = read_table(Cursor::new(&bytes), &sheet_source(), &Limits::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(scan.sheet.as_deref(), Some("Data"));
    assert_eq!(
        read_table(
            Cursor::new(&bytes),
            &Source::Spreadsheet {
                sheet: Some("Nope".into())
            },
            &Limits::default()
        )
        .map(|_| ()),
        Err(ImportError::NoSuchSheet("Nope".into()))
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_delimited_reader_never_panics_on_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..2000),
        delimiter in prop::option::of(prop::sample::select(vec![b',', b'\t', b';', b'|', b'"', 0xff])),
    ) {
        let limits = Limits { max_cell_chars: 50, max_columns: 20, max_rows: 50, ..Limits::default() };
        let _ = read_table(Cursor::new(&bytes), &Source::Delimited { delimiter }, &limits);
    }

    #[test]
    fn the_spreadsheet_reader_never_panics_on_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..2000),
    ) {
        let _ = read(&bytes, &Limits::default());
    }

    #[test]
    fn the_spreadsheet_reader_never_panics_on_corrupted_workbooks(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let rows = format!(
            "<row r=\"1\">{}{}</row><row r=\"2\"><c r=\"A2\"><v>1</v></c><c r=\"B2\" t=\"b\"><v>1</v></c></row>",
            text_cell("A1", 0),
            text_cell("B1", 1)
        );
        let mut bytes = xlsx(&rows, strings(&["n", "m"]));
        for (at, byte) in flips {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        let _ = read(&bytes, &Limits::default());
    }

    /// What the delimited reader reads is what was written: cells kept as given.
    #[test]
    fn a_written_csv_reads_back_cell_for_cell(
        // `x` first: a cell that reads as another type (`n` is a boolean) is not text.
        cells in prop::collection::vec(prop::collection::vec("x[a-z ,\"\n]{0,5}", 2), 1..6),
    ) {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(["x", "y"]).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for row in &cells {
            w.write_record(row).map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        let bytes = w.into_inner().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let (t, _) = read_table(Cursor::new(&bytes), &Source::Delimited { delimiter: Some(b',') }, &Limits::default())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let kept: Vec<&Vec<String>> = cells.iter().filter(|r| r.iter().any(|c| !c.trim().is_empty())).collect();
        prop_assert_eq!(t.rows.len(), kept.len());
        for (row, want) in t.rows.iter().zip(kept) {
            for (value, text) in row.iter().zip(want) {
                match value {
                    Value::Null => prop_assert!(text.trim().is_empty()),
                    v => prop_assert_eq!(&v.to_string(), text),
                }
            }
        }
    }
}

/// One BIFF8 record: type, length, data.
fn record(out: &mut Vec<u8>, typ: u16, data: &[u8]) {
    out.extend(typ.to_le_bytes());
    out.extend((data.len() as u16).to_le_bytes());
    out.extend(data);
}

/// An XLS workbook (BIFF8 in a compound file) with one sheet: `dims` as its DIMENSIONS
/// record (first row, row after the last, first column, column after the last) and
/// `cells` (row, column, a number or a text).
fn xls(dims: (u32, u32, u16, u16), cells: &[(u16, u16, Result<f64, &str>)]) -> Vec<u8> {
    let bof = |kind: u16| {
        let mut d = vec![0u8; 16];
        d[0..2].copy_from_slice(&0x0600u16.to_le_bytes());
        d[2..4].copy_from_slice(&kind.to_le_bytes());
        d
    };
    let name = b"Data";
    let mut globals = Vec::new();
    record(&mut globals, 0x0809, &bof(0x0005));
    // BoundSheet8: where the sheet's BOF is, visible worksheet, its name (8-bit chars).
    let boundsheet_len = 8 + name.len();
    // After this record and the globals' EOF.
    let sheet_at = (globals.len() + 4 + boundsheet_len + 4) as u32;
    let mut bs = sheet_at.to_le_bytes().to_vec();
    bs.extend([0, 0, name.len() as u8, 0]);
    bs.extend(name);
    record(&mut globals, 0x0085, &bs);
    record(&mut globals, 0x000A, &[]);
    let mut sheet = Vec::new();
    record(&mut sheet, 0x0809, &bof(0x0010));
    let mut d = Vec::new();
    d.extend(dims.0.to_le_bytes());
    d.extend(dims.1.to_le_bytes());
    d.extend(dims.2.to_le_bytes());
    d.extend(dims.3.to_le_bytes());
    d.extend([0, 0]);
    record(&mut sheet, 0x0200, &d);
    for (r, c, value) in cells {
        let mut d = Vec::new();
        d.extend(r.to_le_bytes());
        d.extend(c.to_le_bytes());
        d.extend(0u16.to_le_bytes());
        match value {
            Ok(n) => {
                d.extend(n.to_le_bytes());
                record(&mut sheet, 0x0203, &d);
            }
            Err(text) => {
                d.extend((text.len() as u16).to_le_bytes());
                d.push(0);
                d.extend(text.as_bytes());
                record(&mut sheet, 0x0204, &d);
            }
        }
    }
    record(&mut sheet, 0x000A, &[]);
    globals.extend(sheet);
    // Version 3 (512-byte sectors), as Excel writes; calamine reads no other.
    let mut file =
        cfb::CompoundFile::create_with_version(cfb::Version::V3, Cursor::new(Vec::new()))
            .unwrap_or_else(|e| panic!("{e}"));
    {
        let mut stream = file
            .create_stream("/Workbook")
            .unwrap_or_else(|e| panic!("{e}"));
        // Padded past the 4 KiB mini-stream cutoff, as Excel's workbooks are.
        globals.resize(globals.len().max(8192), 0);
        stream.write_all(&globals).unwrap_or_else(|e| panic!("{e}"));
    }
    file.flush().unwrap_or_else(|e| panic!("{e}"));
    file.into_inner().into_inner()
}

#[test]
fn an_xls_sheet_is_read_with_its_numbers_and_texts() {
    let bytes = xls(
        (0, 3, 0, 2),
        &[
            (0, 0, Err("city")),
            (0, 1, Err("n")),
            (1, 0, Err("Paris")),
            (1, 1, Ok(1.0)),
            (2, 0, Err("Lyon")),
            (2, 1, Ok(2.5)),
        ],
    );
    let t = read(&bytes, &Limits::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t.columns[1].ty, ColumnType::Decimal);
    assert_eq!(t.rows[1][0], Value::Text("Lyon".into()));
    assert_eq!(t.rows[1][1].to_string(), "2.5");
}

#[test]
fn an_xls_grid_past_the_cell_bound_is_refused_before_calamine_builds_it() {
    // Two cells at the corners of the BIFF8 grid: calamine's grid would be 16.7 million cells.
    let corners = xls(
        (0, 65_536, 0, 256),
        &[(0, 0, Err("n")), (65_535, 255, Ok(1.0))],
    );
    assert!(matches!(
        read(&corners, &Limits::default()),
        Err(ImportError::TooLarge(_))
    ));
    // Declared dimensions alone: calamine reserves room for rows × columns cells.
    let declared = xls((0, u32::MAX, 0, 256), &[(0, 0, Err("n")), (1, 0, Ok(1.0))]);
    assert!(matches!(
        read(&declared, &Limits::default()),
        Err(ImportError::TooLarge(_))
    ));
    let backwards = xls((10, 5, 0, 1), &[(0, 0, Err("n")), (1, 0, Ok(1.0))]);
    assert!(matches!(
        read(&backwards, &Limits::default()),
        Err(ImportError::NotASpreadsheet(_))
    ));
    // At the bound (2 rows × 1 column) it is read; one under, refused.
    let small = xls((0, 2, 0, 1), &[(0, 0, Err("n")), (1, 0, Ok(1.0))]);
    let cells = |max| Limits {
        max_sheet_cells: max,
        ..Limits::default()
    };
    assert!(read(&small, &cells(2)).is_ok());
    assert!(matches!(
        read(&small, &cells(1)),
        Err(ImportError::TooLarge(_))
    ));
}
