//! Target schema presets and structured output.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::fakes::openai::{Behaviour, FakeOpenAi};
use crate::helpers::{IntoPair, TestApp, assert_problem};

fn cities_schema() -> Value {
    json!({"name": "Cities", "columns": [
        {"name": "city", "type": "text", "rules": {"required": true}},
        {"name": "population", "type": "integer", "description": "inhabitants"},
        {"name": "country"}
    ]})
}

async fn create_schema(app: &TestApp, token: &str) -> String {
    let (status, body) = app
        .post("/api/v1/schemas", Some(token), cities_schema())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn schema_presets_are_saved_listed_updated_and_private() {
    let app = TestApp::spawn().await;
    let token = app.user("s1@example.com").await;
    let other = app.user("s2@example.com").await;
    let id = create_schema(&app, &token).await;
    let (_, got) = app
        .get(&format!("/api/v1/schemas/{id}"), Some(&token))
        .await;
    assert_eq!(
        got["columns"][2]["type"], "text",
        "a column without type is text"
    );
    assert_eq!(
        got["json_schema"]["properties"]["rows"]["items"]["properties"]["population"]["type"],
        json!(["integer", "null"])
    );
    let (status, body) = app
        .request(
            reqwest::Method::PATCH,
            &format!("/api/v1/schemas/{id}"),
            Some(&token),
            Some(json!({"name": "Towns"})),
        )
        .await
        .into_pair();
    assert_eq!(
        (status, body["name"].as_str()),
        (StatusCode::OK, Some("Towns"))
    );
    let (_, list) = app.get("/api/v1/schemas", Some(&token)).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (status, body) = app
        .get(&format!("/api/v1/schemas/{id}"), Some(&other))
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
    assert_eq!(
        app.delete(&format!("/api/v1/schemas/{id}"), Some(&other))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (_, list) = app.get("/api/v1/schemas", Some(&other)).await;
    assert!(list["items"].as_array().unwrap().is_empty());
    let (status, body) = app
        .post(
            "/api/v1/conversations",
            Some(&other),
            json!({"target_schema_id": id}),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
    let (_, conv) = app
        .post("/api/v1/conversations", Some(&other), json!({}))
        .await;
    let (status, body) = app
        .request(
            reqwest::Method::PATCH,
            &format!("/api/v1/conversations/{}", conv["id"].as_str().unwrap()),
            Some(&other),
            Some(json!({"target_schema_id": id})),
        )
        .await
        .into_pair();
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
    assert_eq!(
        app.delete(&format!("/api/v1/schemas/{id}"), Some(&token))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn bad_schemas_are_refused_field_by_field() {
    let app = TestApp::spawn().await;
    let token = app.user("s3@example.com").await;
    let (status, body) = app
        .post(
            "/api/v1/schemas",
            Some(&token),
            json!({"name": "X", "columns": [
                {"name": "a"}, {"name": "A"}, {"name": "b", "rules": {"pattern": "("}}
            ]}),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["columns[1].name", "columns[2].rules"]);
    let (status, body) = app
        .post(
            "/api/v1/schemas",
            Some(&token),
            json!({"name": "X", "columns": []}),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
}

#[tokio::test]
async fn a_pasted_table_is_given_exactly_the_target_columns() {
    let app = TestApp::spawn().await;
    let token = app.user("s4@example.com").await;
    let schema = create_schema(&app, &token).await;
    let (_, conv) = app
        .post(
            "/api/v1/conversations",
            Some(&token),
            json!({"target_schema_id": schema}),
        )
        .await;
    assert_eq!(conv["target_schema_id"], schema.as_str());
    let id = conv["id"].as_str().unwrap();
    let (status, reply) = app
        .post(&format!("/api/v1/conversations/{id}/messages"), Some(&token), json!({"content": "City,Population,Mayor\nParis,\"2,102,650\",Hidalgo\nLyon,522250,Doucet"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let table_id = reply["message"]["table_id"].as_str().unwrap();
    let (_, rows) = app
        .get(&format!("/api/v1/tables/{table_id}/rows"), Some(&token))
        .await;
    let names: Vec<&str> = rows["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["city", "population", "country"]);
    assert_eq!(rows["rows"][0]["cells"], json!(["Paris", 2102650, null]));
    let structured = &reply["message"]["meta"]["structured"];
    assert_eq!(structured["valid"], false);
    assert!(
        structured.get("retried").is_none(),
        "the offline model is not asked twice"
    );
    assert!(
        structured["issues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i.as_str().unwrap().contains("Mayor"))
    );
}

fn model(url: &str) -> sheetgpt::config::ModelConfig {
    serde_json::from_value(json!({"provider": "openai", "base_url": url, "model": "gpt-fake", "structured_output": true, "max_retries": 0})).unwrap()
}

#[tokio::test]
async fn invalid_structured_output_is_retried_once_with_the_errors() {
    let fake = FakeOpenAi::start().await;
    fake.push(Behaviour::text(&[
        r#"{"rows": [{"city": "Paris", "population": "lots", "country": "France"}]}"#,
    ]));
    fake.push(Behaviour::text(&[
        r#"{"rows": [{"city": "Paris", "population": 2102650, "country": "France"}]}"#,
    ]));
    let url = fake.base_url();
    let app = TestApp::spawn_with(move |c| {
        c.models.insert("fake".into(), model(&url));
    })
    .await;
    let token = app.user("s5@example.com").await;
    let schema = create_schema(&app, &token).await;
    let (_, conv) = app
        .post(
            "/api/v1/conversations",
            Some(&token),
            json!({"model": "fake", "target_schema_id": schema}),
        )
        .await;
    let id = conv["id"].as_str().unwrap();
    let (status, reply) = app
        .post(
            &format!("/api/v1/conversations/{id}/messages"),
            Some(&token),
            json!({"content": "biggest French city"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].body["response_format"]["type"], "json_schema");
    let retry_prompt = requests[1].body["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        retry_prompt.contains("/rows/0/population"),
        "{retry_prompt}"
    );
    let structured = &reply["message"]["meta"]["structured"];
    assert_eq!(
        (
            structured["valid"].as_bool(),
            structured["valid_after_retry"].as_bool()
        ),
        (Some(false), Some(true)),
        "{structured}"
    );
    let table_id = reply["message"]["table_id"].as_str().unwrap();
    let (_, rows) = app
        .get(&format!("/api/v1/tables/{table_id}/rows"), Some(&token))
        .await;
    assert_eq!(
        rows["rows"][0]["cells"],
        json!(["Paris", 2102650, "France"])
    );
}

#[tokio::test]
async fn when_the_retry_fails_too_other_formats_are_used() {
    let fake = FakeOpenAi::start().await;
    fake.push(Behaviour::text(&[
        "Sure!\n\n| City | Population |\n|---|---|\n| Lyon | 522,250 |\n",
    ]));
    fake.push(Behaviour::text(&["still not JSON"]));
    let url = fake.base_url();
    let app = TestApp::spawn_with(move |c| {
        c.models.insert("fake".into(), model(&url));
    })
    .await;
    let token = app.user("s6@example.com").await;
    let schema = create_schema(&app, &token).await;
    let (_, conv) = app
        .post(
            "/api/v1/conversations",
            Some(&token),
            json!({"model": "fake", "target_schema_id": schema}),
        )
        .await;
    let id = conv["id"].as_str().unwrap();
    let (_, reply) = app
        .post(
            &format!("/api/v1/conversations/{id}/messages"),
            Some(&token),
            json!({"content": "Lyon"}),
        )
        .await;
    let structured = &reply["message"]["meta"]["structured"];
    assert_eq!(structured["valid_after_retry"], false, "{structured}");
    assert_eq!(structured["fallback"], "markdown");
    let table_id = reply["message"]["table_id"].as_str().unwrap();
    let (_, rows) = app
        .get(&format!("/api/v1/tables/{table_id}/rows"), Some(&token))
        .await;
    assert_eq!(rows["rows"][0]["cells"], json!(["Lyon", 522250, null]));
}

#[tokio::test]
async fn a_schema_cannot_be_updated_to_no_columns() {
    let app = TestApp::spawn().await;
    let token = app.user("s7@example.com").await;
    let id = create_schema(&app, &token).await;
    let (status, body) = app
        .request(
            reqwest::Method::PATCH,
            &format!("/api/v1/schemas/{id}"),
            Some(&token),
            Some(json!({"columns": []})),
        )
        .await
        .into_pair();
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
}
