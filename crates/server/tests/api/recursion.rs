//! User input nested or repeated far past anything real, on every path that walks it: each is
//! refused or read as data, in bounded stack, and the server answers the next request. (The
//! formula cases, which did crash it, are in `formulas`.)

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::TestApp;

/// `[[[…1…]]]`, `depth` deep, as raw JSON text.
fn nested_array(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

async fn post_raw(app: &TestApp, path: &str, token: &str, body: String) -> (StatusCode, Value) {
    let resp = app
        .client
        .post(app.url(path))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn json_bodies_nested_a_hundred_thousand_deep_are_refused_at_the_parser() {
    let app = TestApp::spawn().await;
    let token = app.user("nested@example.com").await;
    let (_, table) = app
        .post(
            "/api/v1/tables",
            Some(&token),
            json!({"name": "T", "rows": [{"a": 1}]}),
        )
        .await;
    let table = table["id"].as_str().unwrap();
    let deep = nested_array(100_000);
    for (path, body) in [
        (
            format!("/api/v1/tables/{table}/changes"),
            format!(r#"{{"ops": [{{"op": "insert_rows", "rows": [{{"a": {deep}}}]}}]}}"#),
        ),
        (
            "/api/v1/templates".to_owned(),
            format!(
                r#"{{"name": "t", "template": {{"columns": [{{"header": "x", "constant": {deep}}}]}}}}"#
            ),
        ),
        (
            "/api/v1/tables".to_owned(),
            format!(r#"{{"name": "t", "rows": {deep}}}"#),
        ),
    ] {
        let (status, body) = post_raw(&app, &path, &token, body).await;
        assert!(status.is_client_error(), "{path}: {status} {body}");
        assert!(
            body.to_string().contains("recursion limit"),
            "{path}: serde_json's limit of 128 levels: {body}"
        );
    }
    let (status, _) = app
        .get(&format!("/api/v1/tables/{table}"), Some(&token))
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_chat_message_of_deeply_nested_json_and_brackets_is_read_as_text() {
    let app = TestApp::spawn().await;
    let token = app.user("nested-chat@example.com").await;
    let (_, conversation) = app
        .post("/api/v1/conversations", Some(&token), json!({}))
        .await;
    let messages = format!(
        "/api/v1/conversations/{}/messages",
        conversation["id"].as_str().unwrap()
    );
    let content = format!(
        "```json\n{}\n```\n{}\n| a | b |\n|---|---|\n| {} | [x](y) |",
        nested_array(50_000),
        "{".repeat(50_000),
        "*".repeat(20_000)
    );
    let (status, reply) = app
        .post(&messages, Some(&token), json!({ "content": content }))
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(
        reply["tables"].as_array().map(Vec::len),
        Some(1),
        "the Markdown table"
    );
}

/// A cell of 200,000 `Z`s: type inference tried it as a datetime and stripped one zone suffix
/// per level of recursion, which overflowed the stack and aborted the process.
#[tokio::test]
async fn an_upload_with_a_cell_of_a_run_of_zone_suffixes_is_a_text_column() {
    // Past the default cell limit (32,767 characters, which refuses it with 422): the
    // inference must hold on its own where an operator allows long cells.
    let app = TestApp::spawn_with(|c| c.tables.max_cell_chars = 300_000).await;
    let token = app.user("zulu@example.com").await;
    let csv = format!("when,n\n2024-01-31 10:00{},1\n", "Z".repeat(200_000));
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(csv.into_bytes()).file_name("zulu.csv"),
    );
    let resp = app
        .client
        .post(app.url("/api/v1/tables/import"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let table: Value = resp.json().await.unwrap();
    assert_eq!(table["columns"][0]["type"], "text", "{table}");
}
