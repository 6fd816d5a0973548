//! What goes in comes out: files as other programs write them (Excel in German and French,
//! LibreOffice, Google Sheets, pandas, R, PostgreSQL `COPY`), each imported, pasted into a
//! conversation and exported (XLSX read back with calamine, CSV read back through the import,
//! JSON), with every cell's value and type asserted. The fixtures are in
//! `tests/fixtures/fidelity/`, written by hand to match what each program writes (byte order
//! marks, semicolons, CRLF, no-break spaces as the programs put them).

use calamine::{Data, DataType, Reader};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::TestApp;

struct Case {
    file: &'static str,
    names: &'static [&'static str],
    types: &'static [&'static str],
    /// Every cell, in the API's canonical form.
    rows: Value,
    /// The decimal mark reported for each column (`None`: no reading).
    marks: &'static [Option<&'static str>],
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            file: "excel_de.csv",
            names: &[
                "PLZ",
                "Ort",
                "Einwohner",
                "Umsatz",
                "Anteil",
                "Stichtag",
                "Notiz",
            ],
            types: &[
                "text", "text", "integer", "currency", "percent", "date", "text",
            ],
            rows: json!([
                ["08123", "Zwickau", 59_359_536, {"amount": "3998000000.00", "currency": "EUR"}, "21.2", "2024-02-14", "Straße "],
                ["01067", "Dresden", 556_780, {"amount": "1234.50", "currency": "EUR"}, "3.5", "2024-04-03", "Süd; Nord"]
            ]),
            marks: &[None, None, Some(","), Some(","), Some(","), None, None],
        },
        Case {
            file: "excel_fr.csv",
            names: &[
                "Code postal",
                "Ville",
                "Population",
                "Chiffre d'affaires",
                "Part",
                "Date",
            ],
            types: &["text", "text", "integer", "currency", "percent", "date"],
            rows: json!([
                ["01000", "Bourg-en-Bresse", 41_365, {"amount": "1234.50", "currency": "EUR"}, "21.2", "2024-02-14"],
                ["75001", "Paris", 2_102_650, {"amount": "3998000000.00", "currency": "EUR"}, "3.5", "2024-04-03"]
            ]),
            // Grouped digits and no decimal mark read the same with either: the point, reported.
            marks: &[None, None, Some("."), Some(","), Some(","), None],
        },
        Case {
            file: "libreoffice.csv",
            names: &["id", "name", "phone", "amount", "when"],
            types: &["integer", "text", "text", "decimal", "date"],
            rows: json!([
                [1, "Smith, J", "+44 20 7946 0958", "1234.5", "2023-12-31"],
                [2, "Lee", "(555) 123-4567", "-0.25", "2024-01-02"]
            ]),
            marks: &[None, None, None, Some("."), None],
        },
        Case {
            file: "google_sheets.csv",
            names: &["Name", "Amount", "Price", "Share", "Date", "Done"],
            types: &["text", "decimal", "currency", "percent", "date", "boolean"],
            rows: json!([
                ["Ann", "1234.5", {"amount": "1234.50", "currency": "USD"}, "12.5", "2024-01-31", true],
                ["Bob", "7", {"amount": "3.00", "currency": "USD"}, "0", "2024-02-01", false]
            ]),
            marks: &[None, Some("."), Some("."), Some("."), None, None],
        },
        Case {
            file: "pandas.csv",
            names: &["Column 1", "zip", "score", "flag", "ts"],
            types: &["integer", "text", "decimal", "boolean", "datetime"],
            rows: json!([
                [0, "08123", "0.1", true, "2024-01-31T10:00:00"],
                [1, "75001", null, false, "2024-02-01T11:30:00"]
            ]),
            marks: &[None, None, Some("."), None, None],
        },
        Case {
            file: "r_write_csv.csv",
            names: &["Column 1", "id", "zip", "score", "city"],
            types: &["integer", "integer", "text", "decimal", "text"],
            rows: json!([[1, 1, "08123", "1.5", "Paris "], [2, 2, null, null, null]]),
            marks: &[None, None, None, Some("."), None],
        },
        Case {
            file: "postgres_copy.csv",
            names: &["id", "code", "amount", "active", "created_at", "note"],
            types: &["text", "text", "decimal", "boolean", "datetime", "text"],
            rows: json!([
                [
                    "1",
                    "007",
                    "12345678901234567890.12",
                    true,
                    "2024-01-31T10:00:00",
                    null
                ],
                [
                    "9007199254740993",
                    "042",
                    "0.1000000000000000055",
                    false,
                    "2024-02-01T11:30:00.500",
                    " two  spaces "
                ]
            ]),
            marks: &[None, None, Some("."), None, None, None],
        },
    ]
}

fn case_rows(file: &str) -> Value {
    cases()
        .into_iter()
        .find(|c| c.file == file)
        .map(|c| c.rows)
        .unwrap_or_default()
}

fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fidelity")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

async fn upload(app: &TestApp, token: &str, bytes: Vec<u8>, name: &str) -> Value {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned()),
    );
    let resp = app
        .client
        .post(app.url("/api/v1/tables/import"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{name}: {body}");
    body
}

async fn download(app: &TestApp, token: &str, table: &str, query: &str) -> Vec<u8> {
    let resp = app
        .client
        .get(app.url(&format!("/api/v1/tables/{table}/download?{query}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{query}");
    resp.bytes().await.unwrap().to_vec()
}

/// The table's columns and every row's cells.
async fn contents(app: &TestApp, token: &str, table: &str) -> (Vec<Value>, Value) {
    let (status, page) = app
        .get(
            &format!("/api/v1/tables/{table}/rows?limit=1000"),
            Some(token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let columns = page["columns"].as_array().unwrap().clone();
    let rows = page["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["cells"].clone())
        .collect();
    (columns, rows)
}

fn assert_case(case: &Case, columns: &[Value], rows: &Value, how: &str) {
    let names: Vec<&str> = columns
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    let types: Vec<&str> = columns
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(names, case.names, "{} {how}", case.file);
    assert_eq!(types, case.types, "{} {how}", case.file);
    assert_eq!(rows, &case.rows, "{} {how}", case.file);
}

fn assert_marks(case: &Case, columns: &[Value]) {
    let marks: Vec<Option<&str>> = columns
        .iter()
        .map(|c| c["reading"]["decimal"].as_str())
        .collect();
    assert_eq!(marks, case.marks, "{}: {columns:?}", case.file);
}

#[tokio::test]
async fn files_from_other_programs_import_with_every_cell_kept_and_typed() {
    let app = TestApp::spawn().await;
    let token = app.user("fidelity-import@example.com").await;
    for case in cases() {
        let table = upload(&app, &token, fixture(case.file), case.file).await;
        let (columns, rows) = contents(&app, &token, table["id"].as_str().unwrap()).await;
        assert_case(&case, &columns, &rows, "imported");
        assert_marks(&case, &columns);
        let reported: Vec<&Value> = table["columns"].as_array().unwrap().iter().collect();
        assert_eq!(
            reported.len(),
            case.names.len(),
            "the import answers with its columns"
        );
        assert_eq!(
            reported.iter().map(|c| &c["reading"]).collect::<Vec<_>>(),
            columns.iter().map(|c| &c["reading"]).collect::<Vec<_>>(),
            "{}: the import reports each column's reading",
            case.file
        );
    }
}

#[tokio::test]
async fn files_from_other_programs_pasted_into_chat_give_the_same_tables() {
    let app = TestApp::spawn().await;
    let token = app.user("fidelity-paste@example.com").await;
    for case in cases() {
        let (status, conversation) = app
            .post("/api/v1/conversations", Some(&token), json!({}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{conversation}");
        let id = conversation["id"].as_str().unwrap();
        // What a clipboard holds: the text, without the file's byte order mark.
        let text = String::from_utf8(fixture(case.file)).unwrap();
        let text = text.trim_start_matches('\u{feff}');
        let (status, reply) = app
            .post(
                &format!("/api/v1/conversations/{id}/messages"),
                Some(&token),
                json!({ "content": text }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{reply}");
        let table = reply["message"]["table_id"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: no table in {reply}", case.file));
        let (columns, rows) = contents(&app, &token, table).await;
        assert_case(&case, &columns, &rows, "pasted");
    }
}

/// What a spreadsheet cell read back by calamine must be for a cell of the API's form.
fn assert_xlsx_cell(file: &str, ty: &str, want: &Value, got: &Data) {
    let number = |text: &str| text.parse::<f64>().unwrap();
    let exact = |text: &str| {
        let digits = text.trim_start_matches('-').replace('.', "");
        digits.trim_start_matches('0').trim_end_matches('0').len() <= 15
    };
    match (ty, want) {
        (_, Value::Null) => assert_eq!(got, &Data::Empty, "{file}"),
        ("text", Value::String(s)) => assert_eq!(got, &Data::String(s.clone()), "{file}"),
        ("integer", Value::Number(n)) => {
            assert_eq!(got.as_f64(), n.as_f64(), "{file}: {got:?}");
        }
        ("decimal" | "percent", Value::String(s)) => {
            let value = if ty == "percent" {
                number(s) / 100.0
            } else {
                number(s)
            };
            if exact(s) {
                assert_eq!(got, &Data::Float(value), "{file}: {s}");
            } else {
                // More digits than a sheet's number keeps: text with every digit.
                assert_eq!(got, &Data::String(s.clone()), "{file}: {s}");
            }
        }
        ("currency", Value::Object(m)) => {
            let amount = m["amount"].as_str().unwrap();
            assert_eq!(got, &Data::Float(number(amount)), "{file}: {amount}");
        }
        ("boolean", Value::Bool(b)) => assert_eq!(got, &Data::Bool(*b), "{file}"),
        ("date" | "datetime", Value::String(s)) => {
            let Data::DateTime(dt) = got else {
                panic!("{file}: {got:?} for {s}");
            };
            let dt = dt.as_datetime().unwrap();
            let text = if ty == "date" {
                dt.format("%Y-%m-%d").to_string()
            } else {
                dt.format("%Y-%m-%dT%H:%M:%S%.3f").to_string()
            };
            assert!(
                s.starts_with(text.trim_end_matches(".000")),
                "{file}: {text} for {s}"
            );
        }
        other => panic!("{file}: no check for {other:?}"),
    }
}

#[tokio::test]
async fn files_from_other_programs_export_to_xlsx_csv_and_json_with_every_cell_kept() {
    let app = TestApp::spawn().await;
    let token = app.user("fidelity-export@example.com").await;
    for case in cases() {
        let table = upload(&app, &token, fixture(case.file), case.file).await;
        let id = table["id"].as_str().unwrap();

        // JSON: the canonical cells, every digit.
        let json: Value =
            serde_json::from_slice(&download(&app, &token, id, "format=json&layout=columns").await)
                .unwrap();
        assert_eq!(json["rows"], case.rows, "{} as JSON", case.file);

        // CSV, read back by the import: the same values and types, except that text a
        // spreadsheet would run as a formula (`+44 …`) is written with a leading `'`, as the
        // README says (OWASP CSV injection).
        let csv = download(&app, &token, id, "format=csv").await;
        let again = upload(&app, &token, csv, "again.csv").await;
        let (columns, rows) = contents(&app, &token, again["id"].as_str().unwrap()).await;
        let mut escaped = case.rows.clone();
        for cell in escaped
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .flat_map(|r| r.as_array_mut().unwrap())
        {
            if let Some(t) = cell
                .as_str()
                .filter(|t| t.starts_with(['=', '+', '-', '@']))
            {
                *cell = json!(format!("'{t}"));
            }
        }
        // Decimals and percents are numbers written as numbers: only text is escaped.
        for (r, row) in escaped.as_array_mut().unwrap().iter_mut().enumerate() {
            for (c, cell) in row.as_array_mut().unwrap().iter_mut().enumerate() {
                if case.types[c] != "text" {
                    *cell = case.rows[r][c].clone();
                }
            }
        }
        let escaped_case = Case {
            rows: escaped,
            ..case
        };
        assert_case(
            &escaped_case,
            &columns,
            &rows,
            "exported to CSV and imported again",
        );
        let case = escaped_case;
        let case = Case {
            rows: case_rows(case.file),
            ..case
        };

        // XLSX read with calamine: numbers as numbers where a sheet holds them exactly.
        let xlsx = download(&app, &token, id, "format=xlsx").await;
        let mut book = calamine::open_workbook_auto_from_rs(std::io::Cursor::new(xlsx)).unwrap();
        let sheet = book.worksheet_range_at(0).unwrap().unwrap();
        let cells: Vec<Vec<Data>> = sheet.rows().map(<[Data]>::to_vec).collect();
        let header: Vec<String> = cells[0].iter().map(ToString::to_string).collect();
        assert_eq!(header, case.names, "{}", case.file);
        for (r, row) in case.rows.as_array().unwrap().iter().enumerate() {
            for (c, want) in row.as_array().unwrap().iter().enumerate() {
                let got = cells[r + 1].get(c).cloned().unwrap_or(Data::Empty);
                assert_xlsx_cell(case.file, case.types[c], want, &got);
            }
        }
    }
}

#[tokio::test]
async fn json_numbers_a_float_cannot_hold_keep_their_digits_or_are_refused() {
    let app = TestApp::spawn().await;
    let token = app.user("fidelity-json@example.com").await;
    // Sent as written: serde_json would round both numbers of the second row.
    let body = r#"{"name": "Ids", "rows": [
        {"id": 12345678901234567890, "ratio": 0.5},
        {"id": 123456789012345678901234, "ratio": 0.1000000000000000055}
    ]}"#;
    let resp = app
        .client
        .post(app.url("/api/v1/tables"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let table: Value = resp.json().await.unwrap();
    let (columns, rows) = contents(&app, &token, table["id"].as_str().unwrap()).await;
    let types: Vec<&str> = columns
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["text", "decimal"]);
    assert_eq!(
        rows,
        json!([
            ["12345678901234567890", "0.5"],
            ["123456789012345678901234", "0.1000000000000000055"]
        ])
    );

    // Declared an integer, a number no integer holds is refused, not rounded.
    let body = r#"{"name": "Big", "columns": [{"name": "n", "type": "integer"}],
        "rows": [[123456789012345678901234]]}"#;
    let resp = app
        .client
        .post(app.url("/api/v1/tables"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let problem: Value = resp.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "rows[0][0]", "{problem}");

    // A cell set through a change keeps its digits too.
    let id = table["id"].as_str().unwrap();
    let rows_page = app
        .get(&format!("/api/v1/tables/{id}/rows"), Some(&token))
        .await
        .1;
    let row = rows_page["rows"][0]["id"].as_i64().unwrap();
    let change = format!(
        r#"{{"ops": [{{"op": "set_cells", "cells": [{{"row": {row}, "column": "ratio", "value": 0.3000000000000000444}}]}}]}}"#
    );
    let resp = app
        .client
        .post(app.url(&format!("/api/v1/tables/{id}/changes")))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(change)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let (_, rows) = contents(&app, &token, id).await;
    assert_eq!(rows[0][1], "0.3000000000000000444");
}

#[tokio::test]
async fn spaces_are_kept_until_a_trim_change_removes_them_and_says_how_many() {
    let app = TestApp::spawn().await;
    let token = app.user("fidelity-trim@example.com").await;
    let table = upload(
        &app,
        &token,
        b"name,address,n\n Ann ,\"1 Main St \",1\nBob,2 High St,2\n".to_vec(),
        "spaces.csv",
    )
    .await;
    let id = table["id"].as_str().unwrap();
    let (_, rows) = contents(&app, &token, id).await;
    assert_eq!(
        rows,
        json!([[" Ann ", "1 Main St ", 1], ["Bob", "2 High St", 2]])
    );

    let (status, result) = app
        .post(
            &format!("/api/v1/tables/{id}/changes"),
            Some(&token),
            json!({"ops": [{"op": "trim", "columns": ["address"]}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{result}");
    assert_eq!(result["trimmed_cells"], 1);
    let (_, rows) = contents(&app, &token, id).await;
    assert_eq!(
        rows,
        json!([[" Ann ", "1 Main St", 1], ["Bob", "2 High St", 2]])
    );

    let (status, result) = app
        .post(
            &format!("/api/v1/tables/{id}/changes"),
            Some(&token),
            json!({"ops": [{"op": "trim"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{result}");
    assert_eq!(result["trimmed_cells"], 1, "every text column: ` Ann `");

    let (status, problem) = app
        .post(
            &format!("/api/v1/tables/{id}/changes"),
            Some(&token),
            json!({"ops": [{"op": "trim", "columns": ["n"]}]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
}

#[tokio::test]
async fn a_text_column_of_european_numbers_changes_type_with_its_decimal_mark() {
    let app = TestApp::spawn().await;
    let token = app.user("fidelity-change@example.com").await;
    // A word among the numbers: the column is text.
    let table = upload(
        &app,
        &token,
        "Betrag;Anzahl\n1.234,5;1\n7,25;2\nviel;3\n"
            .as_bytes()
            .to_vec(),
        "betrag.csv",
    )
    .await;
    let id = table["id"].as_str().unwrap();
    assert_eq!(table["columns"][0]["type"], "text");
    let (status, problem) = app
        .post(
            &format!("/api/v1/tables/{id}/changes"),
            Some(&token),
            json!({"ops": [{"op": "change_type", "column": "Betrag", "to": "decimal"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(
        problem["errors"].as_array().unwrap().len(),
        1,
        "only `viel`: {problem}"
    );
    let (status, result) = app
        .post(
            &format!("/api/v1/tables/{id}/changes"),
            Some(&token),
            json!({"ops": [{"op": "change_type", "column": "Betrag", "to": "decimal", "invalid": "null"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{result}");
    assert_eq!(result["nulled_cells"].as_array().unwrap().len(), 1);
    let (columns, rows) = contents(&app, &token, id).await;
    assert_eq!(rows, json!([["1234.5", 1], ["7.25", 2], [null, 3]]));
    assert_eq!(columns[0]["reading"]["decimal"], ",");
}

#[tokio::test]
async fn dates_read_one_way_per_column_and_filters_read_them_the_same_way() {
    let app = TestApp::spawn().await;
    let token = app.user("fidelity-dates@example.com").await;
    let table = upload(
        &app,
        &token,
        b"day,n\n14/02/2024,1\n03/04/2024,2\n".to_vec(),
        "days.csv",
    )
    .await;
    let id = table["id"].as_str().unwrap();
    let (columns, rows) = contents(&app, &token, id).await;
    assert_eq!(
        rows,
        json!([["2024-02-14", 1], ["2024-04-03", 2]]),
        "3 April, not 4 March"
    );
    assert_eq!(
        columns[0]["dates"],
        json!({"order": "day_first", "decided_by": "values"})
    );
    for value in ["03/04/2024", "2024-04-03"] {
        let (status, page) = app
            .get(
                &format!("/api/v1/tables/{id}/rows?filter=day:eq:{value}"),
                Some(&token),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let found: Vec<&Value> = page["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["cells"][1])
            .collect();
        assert_eq!(found, [&json!(2)], "{value}");
    }

    // Every value reads both ways: month first, reported as the default's choice.
    let table = upload(
        &app,
        &token,
        b"day\n03/04/2024\n05/06/2024\n".to_vec(),
        "us.csv",
    )
    .await;
    assert_eq!(
        table["columns"][0]["dates"],
        json!({"order": "month_first", "decided_by": "locale"})
    );
}

async fn patch_me(app: &TestApp, token: &str, body: Value) -> (StatusCode, Value) {
    let resp = app
        .client
        .patch(app.url("/api/v1/auth/me"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn the_locale_comes_from_the_browser_at_registration_and_can_be_changed_or_refused() {
    let app = TestApp::spawn().await;
    let resp = app
        .client
        .post(app.url("/api/v1/auth/register"))
        .header("accept-language", "de-de,de;q=0.9,en;q=0.8")
        .json(&json!({"email": "locale@example.com", "password": crate::helpers::PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let user: Value = resp.json().await.unwrap();
    assert_eq!(user["locale"], "de-DE", "{user}");
    let (token, _) = app
        .login("locale@example.com", crate::helpers::PASSWORD)
        .await;
    let (_, me) = app.get("/api/v1/auth/me", Some(&token)).await;
    assert_eq!(me["locale"], "de-DE");

    let (status, me) = patch_me(&app, &token, json!({"locale": "en-us"})).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["locale"], "en-US", "normalised");
    let (_, me) = app.get("/api/v1/auth/me", Some(&token)).await;
    assert_eq!(me["locale"], "en-US", "seen by the next request");

    for bad in [
        json!({"locale": "klingon!"}),
        json!({"locale": "x".repeat(40)}),
    ] {
        let (status, problem) = patch_me(&app, &token, bad).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["errors"][0]["field"], "locale", "{problem}");
    }
    let (status, me) = patch_me(&app, &token, json!({"locale": null})).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert!(me["locale"].is_null());

    // Registered without a header: no locale.
    let other = app.register("nolocale@example.com").await;
    assert!(other["locale"].is_null(), "{other}");
}

#[tokio::test]
async fn dates_that_read_both_ways_follow_the_users_locale_and_say_so() {
    let app = TestApp::spawn().await;
    let token = app.user("locale-dates@example.com").await;
    let csv = b"day\n03/04/2024\n05/06/2024\n".to_vec();
    let (status, _) = patch_me(&app, &token, json!({"locale": "en-GB"})).await;
    assert_eq!(status, StatusCode::OK);
    let table = upload(&app, &token, csv.clone(), "gb.csv").await;
    assert_eq!(
        table["columns"][0]["dates"],
        json!({"order": "day_first", "decided_by": "locale"})
    );
    let (_, rows) = contents(&app, &token, table["id"].as_str().unwrap()).await;
    assert_eq!(rows, json!([["2024-04-03"], ["2024-06-05"]]));

    // JSON rows too.
    let (status, table) = app
        .post(
            "/api/v1/tables",
            Some(&token),
            json!({"name": "Days", "rows": [{"day": "03/04/2024"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{table}");
    let (_, rows) = contents(&app, &token, table["id"].as_str().unwrap()).await;
    assert_eq!(rows, json!([["2024-04-03"]]));

    let (status, _) = patch_me(&app, &token, json!({"locale": "en-US"})).await;
    assert_eq!(status, StatusCode::OK);
    let table = upload(&app, &token, csv, "us.csv").await;
    let (_, rows) = contents(&app, &token, table["id"].as_str().unwrap()).await;
    assert_eq!(rows, json!([["2024-03-04"], ["2024-05-06"]]));
}

#[tokio::test]
async fn dates_pasted_into_chat_that_read_both_ways_follow_the_users_locale() {
    let app = TestApp::spawn().await;
    let paste = "day,n\n03/04/2024,1\n05/06/2024,2\n";
    for (email, locale, want) in [
        (
            "paste-gb@example.com",
            "en-GB",
            json!([["2024-04-03", 1], ["2024-06-05", 2]]),
        ),
        (
            "paste-us@example.com",
            "en-US",
            json!([["2024-03-04", 1], ["2024-05-06", 2]]),
        ),
    ] {
        let token = app.user(email).await;
        let (status, _) = patch_me(&app, &token, json!({ "locale": locale })).await;
        assert_eq!(status, StatusCode::OK);
        let (status, conversation) = app
            .post("/api/v1/conversations", Some(&token), json!({}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{conversation}");
        let id = conversation["id"].as_str().unwrap();
        let (status, reply) = app
            .post(
                &format!("/api/v1/conversations/{id}/messages"),
                Some(&token),
                json!({ "content": paste }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{reply}");
        let table = reply["message"]["table_id"].as_str().expect("a table");
        let (columns, rows) = contents(&app, &token, table).await;
        assert_eq!(rows, want, "{locale}");
        let order = if locale == "en-GB" {
            "day_first"
        } else {
            "month_first"
        };
        assert_eq!(
            columns[0]["dates"],
            json!({"order": order, "decided_by": "locale"}),
            "{locale}"
        );
    }
}

/// A semicolon table of `rows` rows whose `amount` is `usual` in every row but row `at` (from
/// 1), which holds `odd`.
fn one_odd_value(rows: usize, at: usize, usual: &str, odd: &str) -> String {
    let mut out = String::from("name;amount\n");
    for i in 1..=rows {
        out.push_str("a;");
        out.push_str(if i == at { odd } else { usual });
        out.push('\n');
    }
    out
}

/// The type and reading of the column `amount`, and its cells in rows 1 and `at` (from 1).
async fn amount_at(app: &TestApp, token: &str, table: &str, at: usize) -> (Value, Value, Value) {
    let page = |cursor: String| async move {
        let (status, page) = app
            .get(
                &format!("/api/v1/tables/{table}/rows?limit=1{cursor}"),
                Some(token),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        page
    };
    let first = page(String::new()).await;
    let there = page(format!("&cursor=o{}", at - 1)).await;
    let column = first["columns"][1].clone();
    assert_eq!(column["name"], "amount");
    (
        json!({"type": column["type"], "reading": column["reading"]}),
        first["rows"][0]["cells"][1].clone(),
        there["rows"][0]["cells"][1].clone(),
    )
}

#[tokio::test]
async fn a_pasted_table_is_typed_from_every_row_at_and_past_ten_thousand() {
    let app = TestApp::spawn().await;
    let token = app.user("fidelity-every-row@example.com").await;
    let comma = json!({"decimal": ",", "grouping": "."});
    for (rows, at) in [(10_000, 10_000), (10_001, 10_001), (20_000, 20_000)] {
        for (usual, odd, want) in [
            // One word among numbers: the column is text, every cell as written.
            (
                "5",
                "about 7",
                (
                    json!({"type": "text", "reading": null}),
                    json!("5"),
                    json!("about 7"),
                ),
            ),
            // One value that reads only with a decimal comma: the whole column reads with it.
            (
                "1.234",
                "2,5",
                (
                    json!({"type": "decimal", "reading": comma}),
                    json!("1234"),
                    json!("2.5"),
                ),
            ),
        ] {
            let id = conversation_id(&app, &token).await;
            let (status, reply) = app
                .post(
                    &format!("/api/v1/conversations/{id}/messages"),
                    Some(&token),
                    json!({ "content": one_odd_value(rows, at, usual, odd) }),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{reply}");
            let table = reply["message"]["table_id"]
                .as_str()
                .unwrap_or_else(|| panic!("{rows} rows, `{odd}` at {at}: no table in {reply}"));
            assert_eq!(reply["tables"][0]["row_count"], rows, "{reply}");
            let got = amount_at(&app, &token, table, at).await;
            assert_eq!(got, want, "{rows} rows, `{odd}` at row {at}");
        }
    }
}

#[tokio::test]
async fn json_rows_are_typed_from_every_row_at_and_past_ten_thousand() {
    let app = TestApp::spawn().await;
    let token = app.user("fidelity-every-json-row@example.com").await;
    for (rows, at) in [(10_000, 10_000), (10_001, 10_001), (20_000, 20_000)] {
        let body: Vec<Value> = (1..=rows)
            .map(|i| json!({"name": "a", "amount": if i == at { json!("about 7") } else { json!(5) }}))
            .collect();
        let (status, table) = app
            .post(
                "/api/v1/tables",
                Some(&token),
                json!({"name": "Amounts", "rows": body}),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "{rows} rows, a word at {at}: {table}"
        );
        let got = amount_at(&app, &token, table["id"].as_str().unwrap(), at).await;
        assert_eq!(
            got,
            (
                json!({"type": "text", "reading": null}),
                json!("5"),
                json!("about 7")
            ),
            "{rows} rows, a word at row {at}"
        );
    }
}

async fn conversation_id(app: &TestApp, token: &str) -> String {
    let (status, conversation) = app
        .post("/api/v1/conversations", Some(token), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{conversation}");
    conversation["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_type_change_preview_says_the_mark_and_the_cells_that_would_not_convert_and_changes_nothing()
 {
    let app = TestApp::spawn().await;
    let token = app.user("fidelity-preview@example.com").await;
    // Three pages of rows (the preview reads 1,000 at a time): the only value that settles
    // the mark is in the last row, the only word in the second page.
    let mut csv = String::from("Posten;Betrag\n");
    for i in 1..=2_500 {
        let betrag = match i {
            1_200 => "k. A.",
            2_500 => "2,5",
            _ => "1.234",
        };
        csv.push_str(&format!("p{i};{betrag}\n"));
    }
    let table = upload(&app, &token, csv.into_bytes(), "betrag.csv").await;
    let id = table["id"].as_str().unwrap();
    assert_eq!(table["columns"][1]["type"], "text");
    let word_row = {
        let (_, page) = app
            .get(
                &format!("/api/v1/tables/{id}/rows?limit=1&cursor=o1199"),
                Some(&token),
            )
            .await;
        assert_eq!(page["rows"][0]["cells"][1], "k. A.");
        page["rows"][0]["id"].clone()
    };
    let preview = |query: &'static str| {
        let app = &app;
        let token = &token;
        async move {
            app.get(
                &format!("/api/v1/tables/{id}/type-change?{query}"),
                Some(token),
            )
            .await
        }
    };

    let (status, chosen) = preview("column=Betrag&to=decimal").await;
    assert_eq!(status, StatusCode::OK, "{chosen}");
    assert_eq!(
        chosen,
        json!({
            "version": 1, "column": "Betrag", "to": "decimal",
            "reading": {"decimal": ",", "grouping": "."},
            "unconvertible": [[word_row, "k. A."]], "unconvertible_total": 1
        })
    );
    let (status, point) = preview("column=Betrag&to=decimal&decimal=.").await;
    assert_eq!(status, StatusCode::OK, "{point}");
    assert_eq!(point["reading"], json!({"decimal": ".", "grouping": null}));
    assert_eq!(
        point["unconvertible_total"], 2,
        "`k. A.` and `2,5`: {point}"
    );
    let (status, date) = preview("column=Betrag&to=date").await;
    assert_eq!(status, StatusCode::OK, "{date}");
    assert_eq!(date["reading"], Value::Null);
    assert_eq!(date["unconvertible_total"], 2_500);
    assert_eq!(
        date["unconvertible"].as_array().unwrap().len(),
        100,
        "the first 100 listed"
    );
    let (status, problem) = preview("column=Preis&to=decimal").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "column", "{problem}");

    // Nothing was changed; the change then does what the preview said.
    let (_, now) = app.get(&format!("/api/v1/tables/{id}"), Some(&token)).await;
    assert_eq!(now["version"], 1);
    assert_eq!(now["columns"][1]["type"], "text");
    let (status, result) = app
        .post(
            &format!("/api/v1/tables/{id}/changes"),
            Some(&token),
            json!({"ops": [{"op": "change_type", "column": "Betrag", "to": "decimal", "invalid": "null"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{result}");
    assert_eq!(result["nulled_cells"], chosen["unconvertible"]);
    let (_, after) = app.get(&format!("/api/v1/tables/{id}"), Some(&token)).await;
    assert_eq!(after["columns"][1]["reading"], chosen["reading"]);
}
