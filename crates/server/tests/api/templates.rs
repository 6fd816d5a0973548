//! Templates: CRUD, sharing by admins, and their effect on downloads, export jobs and
//! `sheetgpt convert`, read back with calamine and the sheet XML.

use std::io::Read;

use calamine::{Data, Reader};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sheetgpt::db::entity::user::Role;

use crate::exports::{cities, download as download_export, wait_for};
use crate::helpers::{IntoPair, PASSWORD, TestApp, assert_problem};

/// A template over the `cities` table: mapping, a constant, formats, rules, totals,
/// a conditional format and a layout with titles at B2.
fn invoice_template() -> Value {
    json!({
        "columns": [
            {"source": "city", "header": "City", "format": {"width": 24}},
            {"source": "population", "header": "People", "format": {"number_format": "#,##0"},
             "total": "sum",
             "conditional": [{"when": {"op": "greater_than", "value": 1000000},
                              "style": {"bold": true, "background": "#FFC7CE"}}]},
            {"source": "price", "header": "Price", "format": {"number_format": "0.000"},
             "rules": {"min": "0", "max": "100"}, "total": "average"},
            {"header": "Country", "constant": "France"}
        ],
        "layout": {
            "sheet_name": "Towns",
            "title_rows": ["French cities"],
            "start_cell": "B2",
            "header": {"background": "#1F4E78", "font_color": "#FFFFFF"},
            "freeze_columns": 1
        }
    })
}

async fn save(app: &TestApp, token: &str, body: Value) -> (StatusCode, Value) {
    app.post("/api/v1/templates", Some(token), body).await
}

async fn admin(app: &TestApp, email: &str) -> String {
    let user = app.register(email).await;
    let id = uuid::Uuid::parse_str(user["id"].as_str().unwrap()).unwrap();
    assert!(
        sheetgpt::db::users::set_role(&app.state.db, id, Role::Admin)
            .await
            .unwrap()
    );
    app.login(email, PASSWORD).await.0
}

fn sheet_xml(bytes: &[u8], part: &str) -> String {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut xml = String::new();
    zip.by_name(part).unwrap().read_to_string(&mut xml).unwrap();
    xml
}

#[tokio::test]
async fn templates_are_saved_listed_changed_and_deleted() {
    let app = TestApp::spawn().await;
    let token = app.user("t1@example.com").await;
    let (status, saved) = save(
        &app,
        &token,
        json!({"name": "Invoices", "description": "monthly", "template": invoice_template()}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{saved}");
    let id = saved["id"].as_str().unwrap();
    assert_eq!(saved["owned"], true);
    assert_eq!(saved["shared"], false);
    assert_eq!(saved["template"]["layout"]["sheet_name"], "Towns");
    assert_eq!(
        saved["template"]["layout"]["freeze_header"], true,
        "defaults are filled in"
    );

    let (_, list) = app.get("/api/v1/templates", Some(&token)).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (status, changed) = app
        .request(
            Method::PATCH,
            &format!("/api/v1/templates/{id}"),
            Some(&token),
            Some(json!({"name": "Invoices v2", "description": "", "template": {"columns": [{"source": "city"}]}})),
        )
        .await
        .into_pair();
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["name"], "Invoices v2");
    assert!(changed["description"].is_null());
    assert_eq!(changed["template"]["columns"][0]["source"], "city");

    let (status, _) = app
        .delete(&format!("/api/v1/templates/{id}"), Some(&token))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app
        .get(&format!("/api/v1/templates/{id}"), Some(&token))
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
}

#[tokio::test]
async fn invalid_templates_are_refused_with_every_problem() {
    let app = TestApp::spawn().await;
    let token = app.user("t2@example.com").await;
    let (status, body) = save(
        &app,
        &token,
        json!({"name": "Bad", "template": {"columns": [{"source": "a", "colour": "red"}]}}),
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
            .contains("colour"),
        "{body}"
    );

    let (status, body) = save(
        &app,
        &token,
        json!({"name": "Bad", "template": {
            "columns": [{"source": "a", "constant": 1}, {"source": "b", "format": {"width": 900}}],
            "layout": {"sheet_name": "a/b", "start_cell": "ZZZZ1"}
        }}),
    )
    .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
    let messages: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert!(messages.len() >= 4, "every problem at once: {messages:?}");
    assert!(
        body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["field"] == "template")
    );

    let (status, body) = save(&app, &token, json!({"name": "", "template": {}})).await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
}

#[tokio::test]
async fn admins_share_templates_read_only_and_others_stay_private() {
    let app = TestApp::spawn().await;
    let root = admin(&app, "t3root@example.com").await;
    let alice = app.user("t3a@example.com").await;
    let bob = app.user("t3b@example.com").await;

    let (status, body) = save(
        &app,
        &alice,
        json!({"name": "Mine", "shared": true, "template": {}}),
    )
    .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "admin-required");

    let (status, shared) = save(
        &app,
        &root,
        json!({"name": "House style", "shared": true, "template": invoice_template()}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{shared}");
    let shared_id = shared["id"].as_str().unwrap();
    let (_, private) = save(&app, &alice, json!({"name": "Alice's", "template": {}})).await;
    let private_id = private["id"].as_str().unwrap();

    // Bob sees the shared one, read-only, and not Alice's.
    let (_, list) = app.get("/api/v1/templates", Some(&bob)).await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], shared_id);
    assert_eq!(items[0]["owned"], false);
    let (status, body) = app
        .request(
            Method::PATCH,
            &format!("/api/v1/templates/{shared_id}"),
            Some(&bob),
            Some(json!({"name": "x"})),
        )
        .await
        .into_pair();
    assert_problem(status, &body, StatusCode::FORBIDDEN, "template-read-only");
    let (status, body) = app
        .delete(&format!("/api/v1/templates/{shared_id}"), Some(&bob))
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "template-read-only");

    for (method, path) in [
        (Method::GET, format!("/api/v1/templates/{private_id}")),
        (Method::PATCH, format!("/api/v1/templates/{private_id}")),
        (Method::DELETE, format!("/api/v1/templates/{private_id}")),
    ] {
        let body = (method == Method::PATCH).then(|| json!({"name": "x"}));
        let (status, problem) = app
            .request(method, &path, Some(&bob), body)
            .await
            .into_pair();
        assert_problem(status, &problem, StatusCode::NOT_FOUND, "not-found");
    }
    // Bob cannot download through Alice's template either.
    let table = cities(&app, &bob).await;
    let (status, body) = app
        .get(
            &format!("/api/v1/tables/{table}/download?format=xlsx&template={private_id}"),
            Some(&bob),
        )
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
    // … but through the shared one.
    let resp = app
        .client
        .get(app.url(&format!(
            "/api/v1/tables/{table}/download?format=xlsx&template={shared_id}"
        )))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_download_through_a_template_has_its_mapping_formats_and_layout() {
    let app = TestApp::spawn().await;
    let token = app.user("t4@example.com").await;
    let table = cities(&app, &token).await;
    let (_, saved) = save(
        &app,
        &token,
        json!({"name": "Towns", "template": invoice_template()}),
    )
    .await;
    let template = saved["id"].as_str().unwrap();

    let resp = app
        .client
        .get(app.url(&format!(
            "/api/v1/tables/{table}/download?format=xlsx&template={template}"
        )))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = resp.bytes().await.unwrap().to_vec();
    let mut book =
        calamine::open_workbook_auto_from_rs(std::io::Cursor::new(bytes.clone())).unwrap();
    assert_eq!(book.sheet_names()[0], "Towns");
    let range = book.worksheet_range("Towns").unwrap();
    let cell = |row: u32, col: u32| range.get_value((row, col)).cloned().unwrap_or(Data::Empty);
    // B2: the title; a blank row; the header at row 4 (index 3) from column B.
    assert_eq!(cell(1, 1), Data::String("French cities".into()));
    let header: Vec<Data> = (1..5).map(|c| cell(3, c)).collect();
    assert_eq!(
        header,
        ["City", "People", "Price", "Country"]
            .map(|s| Data::String(s.into()))
            .to_vec()
    );
    assert_eq!(cell(4, 1), Data::String("Paris".into()));
    assert_eq!(cell(4, 2), Data::Float(2_102_650.0));
    assert_eq!(cell(4, 3), Data::Float(12.5));
    assert_eq!(
        cell(6, 4),
        Data::String("France".into()),
        "the constant on every row"
    );
    assert_eq!(cell(0, 0), Data::Empty, "the founded column is not mapped");

    let formulas = book.worksheet_formula("Towns").unwrap();
    let formula = |row: u32, col: u32| formulas.get_value((row, col)).cloned().unwrap_or_default();
    assert!(
        formula(7, 2).contains("SUBTOTAL(109"),
        "sum under the data: {:?}",
        formula(7, 2)
    );
    assert!(
        formula(7, 3).contains("SUBTOTAL(101"),
        "average: {:?}",
        formula(7, 3)
    );
    assert_eq!(cell(7, 1), Data::String("Total".into()));

    let xml = sheet_xml(&bytes, "xl/worksheets/sheet1.xml");
    assert!(
        xml.contains("<pane xSplit=\"2\" ySplit=\"4\""),
        "frozen header and first column: {xml}"
    );
    assert!(
        xml.contains("<conditionalFormatting sqref=\"C5:C7\""),
        "{xml}"
    );
    assert!(
        xml.contains("sqref=\"D5:D7\""),
        "price validation on the data rows"
    );
    let styles = sheet_xml(&bytes, "xl/styles.xml");
    assert!(styles.contains("formatCode=\"0.000\""), "{styles}");
    assert!(styles.contains("FF1F4E78"), "header background");

    // CSV through the same template: the mapping only.
    let resp = app
        .client
        .get(app.url(&format!(
            "/api/v1/tables/{table}/download?format=csv&template={template}"
        )))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let text = resp.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(
        reader.headers().unwrap(),
        vec!["City", "People", "Price", "Country"]
    );
    let first = reader.records().next().unwrap().unwrap();
    assert_eq!(&first[3], "France");
}

#[tokio::test]
async fn a_template_naming_missing_columns_is_a_422_listing_them() {
    let app = TestApp::spawn().await;
    let token = app.user("t5@example.com").await;
    let table = cities(&app, &token).await;
    let (_, saved) = save(
        &app,
        &token,
        json!({"name": "Other", "template": {"columns": [
            {"source": "city"}, {"source": "revenue"}, {"source": "margin"}
        ]}}),
    )
    .await;
    let template = saved["id"].as_str().unwrap();
    let (status, body) = app
        .get(
            &format!("/api/v1/tables/{table}/download?format=xlsx&template={template}"),
            Some(&token),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "template-columns-missing",
    );
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("revenue") && detail.contains("margin"),
        "{detail}"
    );
    assert_eq!(body["errors"].as_array().unwrap().len(), 2);

    let (status, body) = app
        .post(
            "/api/v1/exports",
            Some(&token),
            json!({"table_id": table, "format": "xlsx", "template_id": template}),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "template-columns-missing",
    );
}

#[tokio::test]
async fn an_export_job_keeps_the_template_it_was_given() {
    let app = TestApp::spawn_with(|c| c.exports.workers = 0).await;
    let token = app.user("t6@example.com").await;
    let table = cities(&app, &token).await;
    let (_, saved) = save(
        &app,
        &token,
        json!({"name": "Towns", "template": invoice_template()}),
    )
    .await;
    let template = saved["id"].as_str().unwrap();
    let (status, job) = app
        .post(
            "/api/v1/exports",
            Some(&token),
            json!({"table_id": table, "format": "xlsx", "template_id": template}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["template_id"], template);
    // Changed and deleted after the job was queued: the job still writes what was asked.
    let (status, _) = app
        .delete(&format!("/api/v1/templates/{template}"), Some(&token))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let data_dir = app.state.config.data_dir.clone();
    let runner = app.sibling(|c| c.data_dir = data_dir).await;
    let id = job["id"].as_str().unwrap();
    let done = wait_for(&runner, &token, id, &["succeeded", "failed"]).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let (_, _, bytes) = download_export(&runner, &token, id).await;
    let mut book = calamine::open_workbook_auto_from_rs(std::io::Cursor::new(bytes)).unwrap();
    assert_eq!(book.sheet_names()[0], "Towns");
    let range = book.worksheet_range("Towns").unwrap();
    assert_eq!(
        range.get_value((3, 2)),
        Some(&Data::String("People".into()))
    );
}
