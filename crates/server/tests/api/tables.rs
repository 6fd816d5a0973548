use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem};

async fn cities(app: &TestApp, token: &str) -> Value {
    let (status, body) = app
        .post(
            "/api/v1/tables",
            Some(token),
            json!({
                "name": "Cities",
                "rows": [
                    {"city": "Paris", "population": "2,102,650", "share": "3.1%", "founded": "2024-01-31"},
                    {"city": "Lyon", "population": 522250, "share": "0.8%", "founded": null},
                    {"city": "Nice", "population": null, "share": "0.5%", "founded": "2023-06-01"}
                ]
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

async fn rows(app: &TestApp, token: &str, id: &str, query: &str) -> Value {
    let (status, body) = app
        .get(&format!("/api/v1/tables/{id}/rows{query}"), Some(token))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn column(body: &Value, i: usize) -> Vec<Value> {
    body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["cells"][i].clone())
        .collect()
}

async fn change(
    app: &TestApp,
    token: &str,
    id: &str,
    version: Option<i64>,
    ops: Value,
) -> (StatusCode, Value) {
    let mut req = app
        .client
        .post(app.url(&format!("/api/v1/tables/{id}/changes")))
        .bearer_auth(token)
        .json(&json!({ "ops": ops }));
    if let Some(v) = version {
        req = req.header("if-match", format!("\"{v}\""));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn a_table_from_rows_gets_typed_columns_and_reads_back() {
    let app = TestApp::spawn().await;
    let token = app.user("t1@example.com").await;
    let table = cities(&app, &token).await;
    let types: Vec<&str> = table["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["text", "integer", "percent", "date"]);
    assert_eq!(table["version"], 1);
    assert_eq!(table["row_count"], 3);
    let body = rows(&app, &token, table["id"].as_str().unwrap(), "").await;
    assert_eq!(
        column(&body, 1),
        [json!(2102650), json!(522250), Value::Null]
    );
    assert_eq!(column(&body, 2), [json!("3.1"), json!("0.8"), json!("0.5")]);
    assert_eq!(body["rows"][0]["id"], 1);
}

#[tokio::test]
async fn declared_columns_are_honoured_and_bad_cells_reported() {
    let app = TestApp::spawn().await;
    let token = app.user("t2@example.com").await;
    let (status, body) = app
        .post(
            "/api/v1/tables",
            Some(&token),
            json!({"name": "Prices", "columns": [{"name": "item"}, {"name": "price", "type": "currency"}],
                   "rows": [["pen", "$1.50"], ["book", "cheap"]]}),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
    assert_eq!(body["errors"][0]["field"], "rows[1][1]");
    let (_, list) = app.get("/api/v1/tables", Some(&token)).await;
    assert!(
        list["items"].as_array().unwrap().is_empty(),
        "nothing half-written"
    );
}

#[tokio::test]
async fn a_change_makes_a_new_version_and_old_versions_stay_readable() {
    let app = TestApp::spawn().await;
    let token = app.user("t3@example.com").await;
    let table = cities(&app, &token).await;
    let id = table["id"].as_str().unwrap();
    let (status, body) = change(
        &app,
        &token,
        id,
        Some(1),
        json!([{"op": "set_cells", "cells": [{"row": 2, "column": "population", "value": 530000}]}]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["version"], 2);
    assert_eq!(body["rows_written"], 1);
    let now = rows(&app, &token, id, "").await;
    assert_eq!(column(&now, 1)[1], json!(530000), "{now}");
    assert_eq!(
        column(&rows(&app, &token, id, "?version=1").await, 1)[1],
        json!(522250)
    );

    // Someone still on version 1 is told the table moved on.
    let (status, body) = change(
        &app,
        &token,
        id,
        Some(1),
        json!([{"op": "delete_rows", "rows": [1]}]),
    )
    .await;
    assert_problem(status, &body, StatusCode::CONFLICT, "stale-version");
    assert!(body["detail"].as_str().unwrap().contains("version is 2"));
    let (_, t) = app.get(&format!("/api/v1/tables/{id}"), Some(&token)).await;
    assert_eq!(t["version"], 2);
}

#[tokio::test]
async fn diff_and_revert_work_across_versions() {
    let app = TestApp::spawn().await;
    let token = app.user("t4@example.com").await;
    let table = cities(&app, &token).await;
    let id = table["id"].as_str().unwrap();
    change(
        &app,
        &token,
        id,
        None,
        json!([
            {"op": "set_cells", "cells": [{"row": 1, "column": "city", "value": "Paris (75)"}]},
            {"op": "delete_rows", "rows": [3]},
            {"op": "insert_rows", "rows": [{"city": "Lille", "population": 236234}]},
            {"op": "rename_column", "column": "city", "to": "City"}
        ]),
    )
    .await;
    let (status, d) = app
        .get(
            &format!("/api/v1/tables/{id}/diff?from=1&to=2"),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert_eq!(d["rows_added"], json!([4]));
    assert_eq!(d["rows_removed"], json!([3]));
    assert_eq!(d["cells_changed"][0]["from"], "Paris");
    assert_eq!(d["cells_changed"][0]["to"], "Paris (75)");
    assert_eq!(d["schema"][0]["change"], "renamed");

    let (status, body) = app
        .post(
            &format!("/api/v1/tables/{id}/revert"),
            Some(&token),
            json!({"version": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["version"], 3);
    let v1 = rows(&app, &token, id, "?version=1").await;
    let v3 = rows(&app, &token, id, "").await;
    assert_eq!(v1["rows"], v3["rows"]);
    assert_eq!(v1["columns"], v3["columns"]);
    let (_, d) = app
        .get(
            &format!("/api/v1/tables/{id}/diff?from=1&to=3"),
            Some(&token),
        )
        .await;
    assert!(
        d["cells_changed"].as_array().unwrap().is_empty()
            && d["schema"].as_array().unwrap().is_empty(),
        "{d}"
    );
    let (_, versions) = app
        .get(&format!("/api/v1/tables/{id}/versions"), Some(&token))
        .await;
    let numbers: Vec<i64> = versions["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [3, 2, 1]);
    assert_eq!(versions["items"][0]["summary"], "reverted to version 1");
}

#[tokio::test]
async fn sort_and_column_operations_make_versions() {
    let app = TestApp::spawn().await;
    let token = app.user("t5@example.com").await;
    let table = cities(&app, &token).await;
    let id = table["id"].as_str().unwrap();
    let (status, body) = change(
        &app,
        &token,
        id,
        None,
        json!([{"op": "sort", "by": [{"column": "population"}]}]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let body = rows(&app, &token, id, "").await;
    assert_eq!(
        column(&body, 0),
        [json!("Lyon"), json!("Paris"), json!("Nice")]
    );

    let (status, body) = change(&app, &token, id, None, json!([
        {"op": "add_column", "name": "country", "type": "text", "after": "city", "default": "France"},
        {"op": "drop_column", "column": "share"}
    ])).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let body = rows(&app, &token, id, "").await;
    let names: Vec<&str> = body["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["city", "country", "population", "founded"]);
    assert_eq!(
        column(&body, 1),
        [json!("France"), json!("France"), json!("France")]
    );
}

#[tokio::test]
async fn a_type_change_lists_cells_that_do_not_convert() {
    let app = TestApp::spawn().await;
    let token = app.user("t6@example.com").await;
    let table = cities(&app, &token).await;
    let id = table["id"].as_str().unwrap();
    let (status, body) = change(
        &app,
        &token,
        id,
        None,
        json!([{"op": "change_type", "column": "city", "to": "integer"}]),
    )
    .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
    assert_eq!(body["errors"].as_array().unwrap().len(), 3);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Paris")
    );
    let (status, body) = change(
        &app,
        &token,
        id,
        None,
        json!([{"op": "change_type", "column": "city", "to": "integer", "invalid": "null"}]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["nulled_cells"].as_array().unwrap().len(), 3);
    let (status, body) = change(
        &app,
        &token,
        id,
        None,
        json!([{"op": "set_cells", "cells": [{"row": 99, "column": "city", "value": 1}]}]),
    )
    .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("no row with id 99")
    );
}

#[tokio::test]
async fn rows_are_paged_sorted_and_filtered() {
    let app = TestApp::spawn().await;
    let token = app.user("t7@example.com").await;
    let data: Vec<Value> = (1..=25)
        .map(|i| json!({"n": i, "name": format!("item {i}"), "even": i % 2 == 0}))
        .collect();
    let (_, table) = app
        .post(
            "/api/v1/tables",
            Some(&token),
            json!({"name": "N", "rows": data}),
        )
        .await;
    let id = table["id"].as_str().unwrap();

    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let q = if cursor.is_empty() {
            "?limit=10".to_owned()
        } else {
            format!("?limit=10&cursor={cursor}")
        };
        let page = rows(&app, &token, id, &q).await;
        seen.extend(column(&page, 0));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, (1..=25).map(|i| json!(i)).collect::<Vec<_>>());

    let page = rows(&app, &token, id, "?sort=n:desc&limit=3").await;
    assert_eq!(column(&page, 0), [json!(25), json!(24), json!(23)]);
    let next = page["next_cursor"].as_str().unwrap();
    let page = rows(
        &app,
        &token,
        id,
        &format!("?sort=n:desc&limit=3&cursor={next}"),
    )
    .await;
    assert_eq!(column(&page, 0), [json!(22), json!(21), json!(20)]);

    // A grid that jumps asks for the rows at an offset, in table order too; the page's
    // cursor then goes on from there.
    let page = rows(&app, &token, id, "?limit=3&cursor=o20").await;
    assert_eq!(column(&page, 0), [json!(21), json!(22), json!(23)]);
    let next = page["next_cursor"].as_str().unwrap();
    let page = rows(&app, &token, id, &format!("?limit=3&cursor={next}")).await;
    assert_eq!(column(&page, 0), [json!(24), json!(25)]);
    assert!(page["next_cursor"].is_null());
    let page = rows(&app, &token, id, "?limit=2&cursor=o1&filter=even:eq:true").await;
    assert_eq!(column(&page, 0), [json!(4), json!(6)]);

    let page = rows(&app, &token, id, "?filter=n:gte:20&filter=even:eq:true").await;
    assert_eq!(column(&page, 0), [json!(20), json!(22), json!(24)]);
    let page = rows(&app, &token, id, "?filter=name:contains:M%201").await;
    assert_eq!(page["rows"].as_array().unwrap().len(), 11, "item 1, 10..19");

    let (status, body) = app
        .get(
            &format!("/api/v1/tables/{id}/rows?filter=nope:eq:1"),
            Some(&token),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
    let (status, body) = app
        .get(
            &format!("/api/v1/tables/{id}/rows?filter=n:eq:abc"),
            Some(&token),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
    let (status, _) = app
        .get(&format!("/api/v1/tables/{id}/rows?version=9"), Some(&token))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_one_cell_change_stores_one_row_version() {
    use sea_orm::{ConnectionTrait, Statement};
    let app = TestApp::spawn().await;
    let token = app.user("t8@example.com").await;
    let data: Vec<Value> = (1..=1000).map(|i| json!([i, format!("row {i}")])).collect();
    let (_, table) = app
        .post(
            "/api/v1/tables",
            Some(&token),
            json!({"name": "Big", "columns": [{"name": "n"}, {"name": "label"}], "rows": data}),
        )
        .await;
    let id = table["id"].as_str().unwrap();
    let count = || async {
        let r = app
            .state
            .db
            .query_one_raw(Statement::from_string(
                app.state.db.get_database_backend(),
                "SELECT COUNT(*) FROM table_rows",
            ))
            .await
            .unwrap()
            .unwrap();
        r.try_get_by_index::<i64>(0).unwrap()
    };
    assert_eq!(count().await, 1000);
    change(
        &app,
        &token,
        id,
        None,
        json!([{"op": "set_cells", "cells": [{"row": 500, "column": "label", "value": "x"}]}]),
    )
    .await;
    assert_eq!(
        count().await,
        1001,
        "one new row version, not a copy of the table"
    );
}

fn form(bytes: Vec<u8>, file_name: &str) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name(file_name.to_owned()),
    )
}

async fn upload(app: &TestApp, token: &str, form: reqwest::multipart::Form) -> (StatusCode, Value) {
    let resp = app
        .client
        .post(app.url("/api/v1/tables/import"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn a_csv_upload_becomes_a_typed_table() {
    let app = TestApp::spawn().await;
    let token = app.user("t9@example.com").await;
    let csv = "\u{feff}Airport,IATA,Passengers 2023,Notes\n\
               Heathrow,LHR,\"79,200,000\",\"busiest, UK\"\n\
               Paris CDG,CDG,\"67,400,000\",\"two\nlines\"\n";
    let (status, body) = upload(&app, &token, form(csv.as_bytes().to_vec(), "airports.csv")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["name"], "airports");
    assert_eq!(body["row_count"], 2);
    let names: Vec<&str> = body["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Airport", "IATA", "Passengers 2023", "Notes"]);
    assert_eq!(body["columns"][2]["type"], "integer");
    let r = rows(&app, &token, body["id"].as_str().unwrap(), "").await;
    assert_eq!(
        r["rows"][1]["cells"],
        json!(["Paris CDG", "CDG", 67400000, "two\nlines"])
    );

    let tsv = "a\tb\n1\tx\n2\ty\n";
    let (status, body) = upload(&app, &token, form(tsv.as_bytes().to_vec(), "t.tsv")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["columns"][0]["type"], "integer");
}

#[tokio::test]
async fn bad_uploads_get_a_clear_4xx_and_leave_nothing() {
    let app = TestApp::spawn_with(|c| {
        c.tables.max_upload_bytes = 600_000;
        c.tables.max_columns = 1000;
    })
    .await;
    let token = app.user("t10@example.com").await;
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let (status, body) = upload(&app, &token, form(junk, "junk.csv")).await;
    assert_problem(status, &body, StatusCode::BAD_REQUEST, "bad-upload");
    let latin1 = b"name,city\nJos\xe9,M\xe1laga\n".to_vec();
    let (status, body) = upload(&app, &token, form(latin1, "latin.csv")).await;
    assert_problem(status, &body, StatusCode::BAD_REQUEST, "bad-upload");
    assert!(body["detail"].as_str().unwrap().contains("UTF-8"));
    let (status, body) = upload(&app, &token, form(Vec::new(), "empty.csv")).await;
    assert_problem(status, &body, StatusCode::BAD_REQUEST, "bad-upload");
    let wide = (0..100_000)
        .map(|i| format!("c{i}"))
        .collect::<Vec<_>>()
        .join(",")
        + "\n";
    let (status, body) = upload(&app, &token, form(wide.into_bytes(), "wide.csv")).await;
    assert_problem(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload-too-large",
    );
    let big = "a,b\n".to_owned() + &"1,2\n".repeat(200_000);
    let (status, body) = upload(&app, &token, form(big.into_bytes(), "big.csv")).await;
    assert_problem(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload-too-large",
    );
    let (status, body) = upload(&app, &token, form(b"x".to_vec(), "sheet.xlsx")).await;
    assert_problem(status, &body, StatusCode::BAD_REQUEST, "bad-upload");
    let no_file = reqwest::multipart::Form::new().text("name", "x");
    let (status, body) = upload(&app, &token, no_file).await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );

    let (_, list) = app.get("/api/v1/tables", Some(&token)).await;
    assert!(list["items"].as_array().unwrap().is_empty(), "{list}");
    let leftovers = app.state.scratch.temporaries();
    assert_eq!(leftovers, 0, "temporary upload files are removed");
}

#[tokio::test]
async fn delete_moves_a_table_to_the_trash_and_restore_brings_it_back() {
    let app = TestApp::spawn().await;
    let token = app.user("t11@example.com").await;
    let table = cities(&app, &token).await;
    let id = table["id"].as_str().unwrap();
    let (status, _) = app
        .delete(&format!("/api/v1/tables/{id}"), Some(&token))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(&format!("/api/v1/tables/{id}"), Some(&token))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (_, list) = app.get("/api/v1/tables", Some(&token)).await;
    assert!(list["items"].as_array().unwrap().is_empty());
    let (_, trash) = app.get("/api/v1/tables?deleted=true", Some(&token)).await;
    assert_eq!(trash["items"][0]["id"], id);
    let (status, body) = app
        .post(
            &format!("/api/v1/tables/{id}/restore"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["row_count"], 3);
    let (status, _, body) = app
        .request(
            Method::PATCH,
            &format!("/api/v1/tables/{id}"),
            Some(&token),
            Some(json!({"name": "Villes"})),
        )
        .await;
    assert_eq!(
        (status, body["name"].as_str()),
        (StatusCode::OK, Some("Villes"))
    );
}

#[tokio::test]
async fn no_user_reaches_another_users_table() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let table = cities(&app, &alice).await;
    let id = table["id"].as_str().unwrap();
    let gets = [
        format!("/api/v1/tables/{id}"),
        format!("/api/v1/tables/{id}/rows"),
        format!("/api/v1/tables/{id}/versions"),
        format!("/api/v1/tables/{id}/versions/1"),
        format!("/api/v1/tables/{id}/diff?from=1&to=1"),
    ];
    for path in gets {
        let (status, body) = app.get(&path, Some(&bob)).await;
        assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
    }
    let (status, _) = change(
        &app,
        &bob,
        id,
        None,
        json!([{"op": "delete_rows", "rows": [1]}]),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .post(
            &format!("/api/v1/tables/{id}/revert"),
            Some(&bob),
            json!({"version": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = app
        .request(
            Method::PATCH,
            &format!("/api/v1/tables/{id}"),
            Some(&bob),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.delete(&format!("/api/v1/tables/{id}"), Some(&bob))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.post(
            &format!("/api/v1/tables/{id}/restore"),
            Some(&bob),
            json!({})
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    let (_, list) = app.get("/api/v1/tables", Some(&bob)).await;
    assert!(list["items"].as_array().unwrap().is_empty());
    let (_, t) = app.get(&format!("/api/v1/tables/{id}"), Some(&alice)).await;
    assert_eq!(t["version"], 1, "nothing changed for Alice");
}

#[tokio::test]
async fn a_read_only_key_can_read_tables_but_not_change_them() {
    let app = TestApp::spawn().await;
    let token = app.user("ro@example.com").await;
    let table = cities(&app, &token).await;
    let id = table["id"].as_str().unwrap();
    let (_, key) = app
        .post(
            "/api/v1/api-keys",
            Some(&token),
            json!({"name": "ro", "scope": "read"}),
        )
        .await;
    let key = key["key"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("/api/v1/tables/{id}/rows"), Some(key))
            .await
            .0,
        StatusCode::OK
    );
    let (status, body) = change(
        &app,
        key,
        id,
        None,
        json!([{"op": "delete_rows", "rows": [1]}]),
    )
    .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "insufficient-scope");
}

#[tokio::test]
async fn an_xlsx_upload_keeps_numbers_dates_and_booleans() {
    use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};
    let mut book = Workbook::new();
    let sheet = book.add_worksheet().set_name("Airports").unwrap();
    let date = Format::new().set_num_format("yyyy-mm-dd");
    for (c, h) in ["Airport", "Passengers", "Opened", "Hub"]
        .iter()
        .enumerate()
    {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    let data = [
        ("Heathrow", 79_200_000.0, (1946, 5, 31), true),
        ("Schiphol", 61_900_000.5, (1916, 9, 19), false),
    ];
    for (i, (name, pax, (y, m, d), hub)) in data.iter().enumerate() {
        let r = i as u32 + 1;
        sheet.write_string(r, 0, *name).unwrap();
        sheet.write_number(r, 1, *pax).unwrap();
        sheet
            .write_datetime_with_format(r, 2, ExcelDateTime::from_ymd(*y, *m, *d).unwrap(), &date)
            .unwrap();
        sheet.write_boolean(r, 3, *hub).unwrap();
    }
    let bytes = book.save_to_buffer().unwrap();

    let app = TestApp::spawn().await;
    let token = app.user("x1@example.com").await;
    let (status, body) = upload(&app, &token, form(bytes, "airports.xlsx")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let types: Vec<&str> = body["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["text", "decimal", "date", "boolean"]);
    let r = rows(&app, &token, body["id"].as_str().unwrap(), "").await;
    assert_eq!(
        r["rows"][0]["cells"],
        json!(["Heathrow", "79200000", "1946-05-31", true])
    );
    assert_eq!(
        r["rows"][1]["cells"],
        json!(["Schiphol", "61900000.5", "1916-09-19", false])
    );

    let (status, body) = upload(
        &app,
        &token,
        form(b"PK\x03\x04 not really a zip".to_vec(), "broken.xlsx"),
    )
    .await;
    assert_problem(status, &body, StatusCode::BAD_REQUEST, "bad-upload");
    let (_, list) = app.get("/api/v1/tables", Some(&token)).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn validation_reports_every_cell_that_breaks_a_rule() {
    let app = TestApp::spawn().await;
    let token = app.user("v1@example.com").await;
    let (status, table) = app
        .post(
            "/api/v1/tables",
            Some(&token),
            json!({"name": "Codes", "columns": [
                {"name": "code", "rules": {"unique": true, "pattern": "[A-Z]{3}"}},
                {"name": "qty", "type": "integer", "rules": {"required": true, "min": 1}}
            ], "rows": [["ABC", 5], ["ABC", null], ["abcd", 0]]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{table}");
    let id = table["id"].as_str().unwrap();
    let (status, report) = app
        .get(&format!("/api/v1/tables/{id}/validation"), Some(&token))
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let found: Vec<(i64, &str, &str)> = report["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["row"].as_i64().unwrap(),
                v["column"].as_str().unwrap(),
                v["rule"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            (2, "code", "unique"),
            (2, "qty", "required"),
            (3, "code", "pattern"),
            (3, "qty", "min")
        ]
    );
    assert_eq!(report["total"], 4);
    // Fix the rules with a change: the report follows the version.
    let (status, _) = change(
        &app,
        &token,
        id,
        None,
        json!([{"op": "set_rules", "column": "code", "rules": {}}]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, report) = app
        .get(&format!("/api/v1/tables/{id}/validation"), Some(&token))
        .await;
    assert_eq!(report["total"], 2);
    let (_, old) = app
        .get(
            &format!("/api/v1/tables/{id}/validation?version=1"),
            Some(&token),
        )
        .await;
    assert_eq!(old["total"], 4);
    let other = app.user("v2@example.com").await;
    assert_eq!(
        app.get(&format!("/api/v1/tables/{id}/validation"), Some(&other))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn one_very_wide_row_is_refused_before_any_row_is_padded_to_it() {
    let app = TestApp::spawn_with(|c| c.tables.max_columns = 50).await;
    let token = app.user("w1@example.com").await;
    let mut rows: Vec<Value> = (0..10_000).map(|_| json!([])).collect();
    rows.push(Value::Array(vec![json!(0); 51]));
    let (status, body) = app
        .post(
            "/api/v1/tables",
            Some(&token),
            json!({"name": "Wide", "rows": rows}),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload-too-large",
    );
    let wide: serde_json::Map<String, Value> =
        (0..51).map(|i| (format!("k{i}"), json!(i))).collect();
    let (status, body) = app
        .post(
            "/api/v1/tables",
            Some(&token),
            json!({"name": "Wide", "rows": [wide]}),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload-too-large",
    );
}

async fn download(
    app: &TestApp,
    token: &str,
    id: &str,
    query: &str,
) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let resp = app
        .client
        .get(app.url(&format!("/api/v1/tables/{id}/download{query}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    (status, headers, resp.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn a_table_downloads_as_xlsx_csv_and_json_read_back_by_real_readers() {
    use calamine::{Data, Reader};
    let app = TestApp::spawn().await;
    let token = app.user("d1@example.com").await;
    let table = cities(&app, &token).await;
    let id = table["id"].as_str().unwrap();
    change(
        &app,
        &token,
        id,
        None,
        json!([{"op": "set_cells", "cells": [{"row": 1, "column": "city", "value": "=cmd()"}]}]),
    )
    .await;

    let (status, headers, bytes) = download(&app, &token, id, "?format=xlsx").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["content-type"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename=\"Cities-v2.xlsx\""
    );
    let mut book = calamine::open_workbook_auto_from_rs(std::io::Cursor::new(bytes)).unwrap();
    let sheet = book.worksheet_range_at(0).unwrap().unwrap();
    let rows: Vec<Vec<Data>> = sheet.rows().map(<[Data]>::to_vec).collect();
    assert_eq!(rows[0][0], Data::String("city".into()));
    assert_eq!(rows[1][1], Data::Float(2_102_650.0), "numbers stay numbers");
    assert!(
        matches!(rows[1][3], Data::DateTime(_)),
        "dates stay dates: {:?}",
        rows[1][3]
    );
    assert_eq!(rows[2][1], Data::Float(522_250.0));

    let (status, headers, bytes) = download(&app, &token, id, "?format=csv&bom=true").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(bytes.starts_with(&[0xEF, 0xBB, 0xBF]));
    let mut reader = csv::Reader::from_reader(&bytes[3..]);
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(&records[0][0], "'=cmd()", "formula injection is escaped");
    assert_eq!(&records[1][1], "522250");

    let (_, _, bytes) = download(&app, &token, id, "?format=json&version=1").await;
    let rows: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(rows[0]["city"], "Paris", "version 1 is as it was");
    assert_eq!(rows[0]["population"], 2102650);

    let (status, _, _) = download(&app, &token, id, "?format=pdf").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let other = app.user("d2@example.com").await;
    let (status, _, _) = download(&app, &other, id, "?format=csv").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let leftovers = app.state.scratch.temporaries();
    assert_eq!(leftovers, 0, "temporary export files are removed");
}

/// Column names may hold colons ("Time: start", common in imported headers); a filter finds
/// its comparison after the name, and a value may hold colons too.
#[tokio::test]
async fn filters_work_on_columns_and_values_with_colons() {
    let app = TestApp::spawn().await;
    let token = app.user("colons@example.com").await;
    let (status, table) = app
        .post(
            "/api/v1/tables",
            Some(&token),
            json!({"name": "Times", "rows": [
                {"Time: start": "09:30", "Room": "A"},
                {"Time: start": "10:45", "Room": "B"},
                {"Time: start": "09:30", "Room": "C"}
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{table}");
    let id = table["id"].as_str().unwrap();
    let page = rows(&app, &token, id, "?filter=Time%3A%20start:eq:09:30").await;
    assert_eq!(column(&page, 1), [json!("A"), json!("C")]);
    let page = rows(&app, &token, id, "?filter=Room:contains:b").await;
    assert_eq!(column(&page, 1), [json!("B")]);
    let (status, body) = app
        .get(
            &format!("/api/v1/tables/{id}/rows?filter=Time%3A%20start:like:9"),
            Some(&token),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
}

/// The cells of the first column of every row of the current version, in order.
async fn first_column(app: &TestApp, token: &str, id: &str) -> Vec<Value> {
    let (status, page) = app
        .get(&format!("/api/v1/tables/{id}/rows?limit=1000"), Some(token))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["cells"][0].clone())
        .collect()
}

#[tokio::test]
async fn rows_inserted_again_and_again_at_one_place_stay_where_they_were_put_and_only_neighbours_move()
 {
    let app = TestApp::spawn().await;
    let token = app.user("dense@example.com").await;
    let mut rows: Vec<Value> = vec![json!(["first"])];
    rows.extend((1..=2_000).map(|i| json!([format!("old {i}")])));
    let (status, table) = app
        .post(
            "/api/v1/tables",
            Some(&token),
            json!({"name": "Dense", "columns": [{"name": "v", "type": "text"}], "rows": rows}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{table}");
    let id = table["id"].as_str().unwrap();
    // Each insert halves the room after row 1; past twenty there is none left, and the rows
    // after it must be moved apart for the next one to go where it is asked.
    let mut written = Vec::new();
    for i in 1..=45 {
        let (status, body) = app
            .post(
                &format!("/api/v1/tables/{id}/changes"),
                Some(&token),
                json!({"ops": [{"op": "insert_rows", "after": 1, "rows": [{"v": format!("new {i}")}]}]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "insert {i}: {body}");
        written.push(body["rows_written"].as_u64().unwrap());
    }
    let got = first_column(&app, &token, id).await;
    let mut want = vec![json!("first")];
    want.extend((1..=45).rev().map(|i| json!(format!("new {i}"))));
    assert_eq!(&got[..46], &want[..], "each new row right after row 1");
    assert_eq!(got[46], "old 1");
    let (_, meta) = app.get(&format!("/api/v1/tables/{id}"), Some(&token)).await;
    assert_eq!(meta["row_count"], 2_046);
    // The rows moved to make room are the crowded ones, not the whole table.
    let most = *written.iter().max().unwrap();
    assert!(most > 1, "room was made at least once: {written:?}");
    assert!(
        most <= 50,
        "only the neighbours are written again: {written:?}"
    );
}
