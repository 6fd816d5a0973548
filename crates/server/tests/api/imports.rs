//! Uploads that try the bounds: hostile workbooks (a cell at XFD1048576, a huge shared
//! string, parts that inflate too far), cells past `tables.max_cell_chars` and NUL bytes, on
//! every way in. Each refusal is a problem+json answer, stores nothing, and the server keeps
//! serving (a later request succeeds).

use std::io::{Cursor, Write};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem};

fn form(bytes: Vec<u8>, file_name: &str) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name(file_name.to_owned()),
    )
}

async fn upload(
    app: &TestApp,
    token: &str,
    bytes: Vec<u8>,
    file_name: &str,
) -> (StatusCode, Value) {
    let resp = app
        .client
        .post(app.url("/api/v1/tables/import"))
        .bearer_auth(token)
        .multipart(form(bytes, file_name))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

async fn table_count(app: &TestApp, token: &str) -> usize {
    let (_, list) = app.get("/api/v1/tables", Some(token)).await;
    list["items"].as_array().unwrap().len()
}

/// The server still answers, and still imports: the refused upload harmed nothing.
async fn still_serving(app: &TestApp, token: &str) {
    let (status, body) = upload(app, token, b"a,b\n1,2\n".to_vec(), "after.csv").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn rows(app: &TestApp, token: &str, id: &str) -> Value {
    let (status, body) = app
        .get(&format!("/api/v1/tables/{id}/rows"), Some(token))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn workbook(build: impl FnOnce(&mut rust_xlsxwriter::Worksheet)) -> Vec<u8> {
    let mut book = rust_xlsxwriter::Workbook::new();
    build(book.add_worksheet());
    book.save_to_buffer().unwrap()
}

const NS: &str = "http://schemas.openxmlformats.org/spreadsheetml/2006/main";
const REL: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";
const PKG: &str = "http://schemas.openxmlformats.org/package/2006/relationships";

/// A workbook written by hand (what no spreadsheet program writes): one sheet with `rows` as
/// its `<sheetData>`, and shared strings that `shared` streams into the zip.
fn hand_made_xlsx(
    rows: &str,
    shared: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Vec<u8> {
    use zip::write::SimpleFileOptions;
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let parts = [
        (
            "[Content_Types].xml",
            "<Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\"/>"
                .to_owned(),
        ),
        (
            "_rels/.rels",
            format!(
                "<Relationships xmlns=\"{PKG}\"><Relationship Id=\"rId1\" \
                 Type=\"{REL}/officeDocument\" Target=\"xl/workbook.xml\"/></Relationships>"
            ),
        ),
        (
            "xl/workbook.xml",
            format!(
                "<workbook xmlns=\"{NS}\" xmlns:r=\"{REL}\"><sheets>\
                 <sheet name=\"Data\" sheetId=\"1\" r:id=\"rId1\"/></sheets></workbook>"
            ),
        ),
        (
            "xl/_rels/workbook.xml.rels",
            format!(
                "<Relationships xmlns=\"{PKG}\"><Relationship Id=\"rId1\" \
                 Type=\"{REL}/worksheet\" Target=\"worksheets/sheet1.xml\"/></Relationships>"
            ),
        ),
        (
            "xl/worksheets/sheet1.xml",
            format!("<worksheet xmlns=\"{NS}\"><sheetData>{rows}</sheetData></worksheet>"),
        ),
    ];
    for (name, body) in parts {
        zip.start_file(name, opts).unwrap();
        zip.write_all(body.as_bytes()).unwrap();
    }
    zip.start_file("xl/sharedStrings.xml", opts).unwrap();
    shared(&mut zip).unwrap();
    zip.finish().unwrap().into_inner()
}

fn shared_cell(at: &str, index: usize) -> String {
    format!("<c r=\"{at}\" t=\"s\"><v>{index}</v></c>")
}

#[tokio::test]
async fn a_5_kb_workbook_with_cells_at_a1_and_xfd1048576_is_refused_and_the_server_stays_up() {
    let app = TestApp::spawn().await;
    let token = app.user("i1@example.com").await;
    let bytes = workbook(|s| {
        s.write_string(0, 0, "name").unwrap();
        s.write_number(1_048_575, 16_383, 1.0).unwrap();
    });
    assert!(bytes.len() < 10_000);
    let (status, body) = upload(&app, &token, bytes, "corner.xlsx").await;
    assert_problem(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload-too-large",
    );
    assert!(
        body["detail"].as_str().unwrap().contains("16384 columns"),
        "{body}"
    );
    assert_eq!(table_count(&app, &token).await, 0);
    still_serving(&app, &token).await;
}

#[tokio::test]
async fn a_workbook_with_a_wide_sparse_bounding_box_is_imported_cell_by_cell() {
    let app = TestApp::spawn().await;
    let token = app.user("i2@example.com").await;
    let bytes = workbook(|s| {
        s.write_string(0, 0, "first").unwrap();
        s.write_string(0, 999, "last").unwrap();
        s.write_number(19_999, 0, 7.0).unwrap();
        s.write_number(19_999, 999, 2.5).unwrap();
    });
    let (status, body) = upload(&app, &token, bytes, "sparse.xlsx").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["row_count"], 1);
    assert_eq!(body["columns"].as_array().unwrap().len(), 1000);
    let r = rows(&app, &token, body["id"].as_str().unwrap()).await;
    assert_eq!(r["rows"][0]["cells"][0], 7);
    assert_eq!(r["rows"][0]["cells"][999], "2.5");
}

#[tokio::test]
async fn a_huge_shared_string_is_refused_before_it_is_inflated() {
    let app = TestApp::spawn_with(|c| c.tables.max_cell_chars = 1_000).await;
    let token = app.user("i3@example.com").await;
    let rows = format!(
        "<row r=\"1\">{}</row><row r=\"2\">{}</row>",
        shared_cell("A1", 0),
        shared_cell("A2", 0)
    );
    // 64 MB of one string, a few dozen kilobytes zipped.
    let bytes = hand_made_xlsx(&rows, |w| {
        w.write_all(b"<sst uniqueCount=\"1\"><si><t>")?;
        let chunk = vec![b'a'; 1 << 20];
        for _ in 0..64 {
            w.write_all(&chunk)?;
        }
        w.write_all(b"</t></si></sst>")
    });
    assert!(bytes.len() < 500_000, "{}", bytes.len());
    let (status, body) = upload(&app, &token, bytes, "bomb.xlsx").await;
    assert_problem(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload-too-large",
    );
    assert_eq!(table_count(&app, &token).await, 0);
    still_serving(&app, &token).await;
}

/// The bytes that the parts calamine reads (`.xml`, `.rels`) declare, and the shared strings.
fn inflated(bytes: &[u8]) -> (u64, u64) {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    let (mut total, mut shared) = (0, 0);
    for i in 0..zip.len() {
        let f = zip.by_index_raw(i).unwrap();
        let name = f.name().unwrap().to_ascii_lowercase();
        if name.ends_with(".xml") || name.ends_with(".rels") {
            total += f.size();
        }
        if name.ends_with("sharedstrings.xml") {
            shared = f.size();
        }
    }
    (total, shared)
}

#[tokio::test]
async fn what_a_workbook_inflates_to_is_bounded_by_configuration_at_and_past_the_limit() {
    let bytes = workbook(|s| {
        s.write_string(0, 0, "city").unwrap();
        for r in 1..200 {
            s.write_string(r, 0, format!("town {r}")).unwrap();
        }
    });
    let (total, shared) = inflated(&bytes);
    for (inflated, strings, want) in [
        (total, shared, StatusCode::CREATED),
        (total - 1, shared, StatusCode::PAYLOAD_TOO_LARGE),
        (total, shared - 1, StatusCode::PAYLOAD_TOO_LARGE),
    ] {
        let app = TestApp::spawn_with(|c| {
            c.tables.max_spreadsheet_inflated_bytes = inflated;
            c.tables.max_shared_strings_bytes = strings;
        })
        .await;
        let token = app.user("i4@example.com").await;
        let (status, body) = upload(&app, &token, bytes.clone(), "towns.xlsx").await;
        assert_eq!(status, want, "{inflated} / {strings}: {body}");
        if want == StatusCode::CREATED {
            assert_eq!(body["row_count"], 199);
        } else {
            assert_problem(status, &body, want, "payload-too-large");
            assert_eq!(table_count(&app, &token).await, 0);
        }
    }
}

#[tokio::test]
async fn an_ods_whose_repeats_expand_past_the_cell_bound_is_refused() {
    use zip::write::SimpleFileOptions;
    let app = TestApp::spawn().await;
    let token = app.user("i5@example.com").await;
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let stored = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("mimetype", stored).unwrap();
    zip.write_all(b"application/vnd.oasis.opendocument.spreadsheet")
        .unwrap();
    zip.start_file("content.xml", SimpleFileOptions::default())
        .unwrap();
    // A million rows of a thousand numbers, in a few hundred bytes.
    zip.write_all(
        b"<office:document-content xmlns:office=\"urn:oasis:names:tc:opendocument:xmlns:office:1.0\" \
          xmlns:table=\"urn:oasis:names:tc:opendocument:xmlns:table:1.0\" \
          xmlns:text=\"urn:oasis:names:tc:opendocument:xmlns:text:1.0\"><office:body><office:spreadsheet>\
          <table:table table:name=\"S\"><table:table-row table:number-rows-repeated=\"1000000\">\
          <table:table-cell office:value-type=\"float\" office:value=\"1\" table:number-columns-repeated=\"1000\">\
          <text:p>1</text:p></table:table-cell></table:table-row></table:table>\
          </office:spreadsheet></office:body></office:document-content>",
    )
    .unwrap();
    let bytes = zip.finish().unwrap().into_inner();
    let (status, body) = upload(&app, &token, bytes, "bomb.ods").await;
    assert_problem(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload-too-large",
    );
    assert_eq!(table_count(&app, &token).await, 0);
    still_serving(&app, &token).await;
}

const LIMIT: usize = 10;

async fn limited_app() -> TestApp {
    TestApp::spawn_with(|c| c.tables.max_cell_chars = LIMIT).await
}

fn at_limit() -> String {
    "é".repeat(LIMIT)
}

fn past_limit() -> String {
    "é".repeat(LIMIT + 1)
}

#[tokio::test]
async fn a_csv_cell_at_the_limit_is_stored_and_one_past_it_is_refused_naming_its_line() {
    let app = limited_app().await;
    let token = app.user("i6@example.com").await;
    let ok = format!("a,b\n1,{}\n", at_limit());
    let (status, body) = upload(&app, &token, ok.into_bytes(), "ok.csv").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let r = rows(&app, &token, body["id"].as_str().unwrap()).await;
    assert_eq!(r["rows"][0]["cells"][1], at_limit());

    let bad = format!("a,b\n1,x\n2,{}\n", past_limit());
    let (status, body) = upload(&app, &token, bad.into_bytes(), "bad.csv").await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "cell-too-large",
    );
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("Line 3, column 2 holds more than 10"),
        "{body}"
    );
    assert_eq!(table_count(&app, &token).await, 1);
}

#[tokio::test]
async fn a_spreadsheet_cell_past_the_limit_is_refused_naming_the_cell() {
    let app = limited_app().await;
    let token = app.user("i7@example.com").await;
    let book = |text: String| {
        workbook(move |s| {
            s.write_string(0, 0, "a").unwrap();
            s.write_string(0, 1, "b").unwrap();
            s.write_number(1, 0, 1.0).unwrap();
            s.write_string(1, 1, text).unwrap();
        })
    };
    let (status, body) = upload(&app, &token, book(at_limit()), "ok.xlsx").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = upload(&app, &token, book(past_limit()), "bad.xlsx").await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "cell-too-large",
    );
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("Cell B2 holds more than 10"),
        "{body}"
    );
    assert_eq!(table_count(&app, &token).await, 1);
}

#[tokio::test]
async fn json_rows_past_the_cell_limit_are_refused_and_at_it_are_stored() {
    let app = limited_app().await;
    let token = app.user("i8@example.com").await;
    let (status, body) = app
        .post(
            "/api/v1/tables",
            Some(&token),
            json!({"name": "ok", "rows": [["a", at_limit()]]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app
        .post(
            "/api/v1/tables",
            Some(&token),
            json!({"name": "bad", "rows": [["a", "b"], ["c", past_limit()]]}),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "cell-too-large",
    );
    assert_eq!(body["errors"][0]["field"], "rows[1][1]", "{body}");
    assert_eq!(table_count(&app, &token).await, 1);
}

#[tokio::test]
async fn changes_past_the_cell_limit_are_refused_and_leave_the_version_as_it_was() {
    let app = limited_app().await;
    let token = app.user("i9@example.com").await;
    let (_, table) = app
        .post(
            "/api/v1/tables",
            Some(&token),
            json!({"name": "t", "rows": [{"name": "a"}, {"name": "b"}]}),
        )
        .await;
    let id = table["id"].as_str().unwrap();
    let change = |ops: Value| {
        let app = &app;
        let token = &token;
        async move {
            app.post(
                &format!("/api/v1/tables/{id}/changes"),
                Some(token),
                json!({ "ops": ops }),
            )
            .await
        }
    };
    let refused = [
        json!([{"op": "set_cells", "cells": [{"row": 2, "column": "name", "value": past_limit()}]}]),
        json!([{"op": "insert_rows", "rows": [{"name": past_limit()}]}]),
        json!([{"op": "add_column", "name": "note", "type": "text", "default": past_limit()}]),
    ];
    for ops in refused {
        let (status, body) = change(ops.clone()).await;
        assert_problem(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "cell-too-large",
        );
        assert!(
            body["errors"][0]["field"]
                .as_str()
                .unwrap()
                .starts_with("rows["),
            "{ops}: {body}"
        );
    }
    let (_, t) = app.get(&format!("/api/v1/tables/{id}"), Some(&token)).await;
    assert_eq!(t["version"], 1, "nothing was stored");
    let (status, body) = change(json!([
        {"op": "set_cells", "cells": [{"row": 2, "column": "name", "value": at_limit()}]},
        {"op": "insert_rows", "rows": [{"name": at_limit()}]},
        {"op": "add_column", "name": "note", "type": "text", "default": at_limit()}
    ]))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let r = rows(&app, &token, id).await;
    assert_eq!(r["rows"][1]["cells"][0], at_limit());
}

#[tokio::test]
async fn a_table_pasted_in_chat_past_the_cell_limit_is_not_created() {
    let app = limited_app().await;
    let token = app.user("i10@example.com").await;
    let (_, conv) = app
        .post("/api/v1/conversations", Some(&token), json!({}))
        .await;
    let id = conv["id"].as_str().unwrap();
    let say = |text: String| {
        let app = &app;
        let token = &token;
        async move {
            app.post(
                &format!("/api/v1/conversations/{id}/messages"),
                Some(token),
                json!({ "content": text }),
            )
            .await
        }
    };
    let (status, reply) = say(format!("Data:\ncity,code\nParis,{}\nLyon,x\n", at_limit())).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert!(reply["message"]["table_id"].is_string(), "{reply}");
    let (_, reply) = say(format!(
        "More:\ncity,code\nParis,{}\nLyon,x\n",
        past_limit()
    ))
    .await;
    // The answer says why the pasted table was not stored.
    assert!(
        reply.to_string().contains("more than 10 characters"),
        "{reply}"
    );
    assert_eq!(table_count(&app, &token).await, 1);
}

#[tokio::test]
async fn a_nul_byte_in_an_upload_is_refused_with_422_naming_where_it_is() {
    let app = TestApp::spawn().await;
    let token = app.user("i11@example.com").await;
    let (status, body) = upload(&app, &token, b"a,b\n1,x\x00y\n".to_vec(), "nul.csv").await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "nul-character",
    );
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("Line 2, column 2 holds a NUL"),
        "{body}"
    );
    let rows = format!(
        "<row r=\"1\">{}</row><row r=\"2\"><c r=\"B2\" t=\"inlineStr\"><is><t>a\u{0}b</t></is></c></row>",
        shared_cell("A1", 0)
    );
    let bytes = hand_made_xlsx(&rows, |w| w.write_all(b"<sst><si><t>n</t></si></sst>"));
    let (status, body) = upload(&app, &token, bytes, "nul.xlsx").await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "nul-character",
    );
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("Cell B2 holds a NUL"),
        "{body}"
    );
    assert_eq!(table_count(&app, &token).await, 0);
    still_serving(&app, &token).await;
}

#[tokio::test]
async fn an_upload_is_split_by_the_one_sniffer_that_respects_quotes() {
    // Counting semicolons per line (the old upload sniffer) split this at `;`.
    let app = TestApp::spawn().await;
    let token = app.user("i12@example.com").await;
    let csv = b"id,codes\nx,\"1;2;3\"\ny,\"4;5;6\"\n".to_vec();
    let (status, body) = upload(&app, &token, csv, "codes.csv").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let names: Vec<&str> = body["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["id", "codes"]);
    let r = rows(&app, &token, body["id"].as_str().unwrap()).await;
    assert_eq!(r["rows"][0]["cells"], json!(["x", "1;2;3"]));
}

#[tokio::test]
async fn a_workbook_named_csv_is_read_as_a_workbook() {
    let app = TestApp::spawn().await;
    let token = app.user("i13@example.com").await;
    let bytes = workbook(|s| {
        s.write_string(0, 0, "n").unwrap();
        s.write_number(1, 0, 3.0).unwrap();
    });
    let (status, body) = upload(&app, &token, bytes, "export.csv").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["columns"][0]["type"], "integer");
}
