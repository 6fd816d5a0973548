//! Contracts in snapshots: the OpenAPI document and the problem+json answers of a representative
//! set of errors, as clients see them. A change to either shows up as a snapshot diff to review
//! (`cargo insta review`), so a contract cannot change by accident.
//!
//! Each error snapshot holds the status, the headers a client acts on (`content-type`, and
//! `allow`, `retry-after` or `www-authenticate` where sent) and the body. What differs between
//! runs, machines or databases is redacted where it appears; the snapshots say which.

use reqwest::StatusCode;
use serde_json::{Map, Value, json};

use crate::helpers::TestApp;

/// The headers a client acts on, when the answer has them.
const CONTRACT_HEADERS: [&str; 4] = ["content-type", "allow", "retry-after", "www-authenticate"];

/// `{status, headers, body}` of an answer: what its snapshot holds.
async fn contract(resp: reqwest::Response) -> Value {
    let status = resp.status().as_u16();
    let mut headers = Map::new();
    for name in CONTRACT_HEADERS {
        if let Some(value) = resp.headers().get(name) {
            headers.insert(name.to_owned(), json!(value.to_str().unwrap()));
        }
    }
    let bytes = resp.bytes().await.unwrap();
    let body: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)));
    json!({"status": status, "headers": headers, "body": body})
}

/// Replaces `needle` (an id the test made) wherever it appears in a string of `value`.
fn redact_string(value: &mut Value, needle: &str, placeholder: &str) {
    match value {
        Value::String(s) => *s = s.replace(needle, placeholder),
        Value::Array(items) => items
            .iter_mut()
            .for_each(|v| redact_string(v, needle, placeholder)),
        Value::Object(map) => map
            .values_mut()
            .for_each(|v| redact_string(v, needle, placeholder)),
        _ => {}
    }
}

async fn table(app: &TestApp, token: &str) -> String {
    let (status, body) = app
        .post(
            "/api/v1/tables",
            Some(token),
            json!({"name": "Cities", "rows": [{"city": "Paris", "population": 2102650}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_openapi_document_is_the_snapshot() {
    let app = TestApp::spawn().await;
    let resp = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let doc: Value = resp.json().await.unwrap();
    insta::assert_json_snapshot!("openapi", doc, {
        // The crate's version, so that a release does not rewrite the contract.
        ".info.version" => insta::dynamic_redaction(|value, _| {
            assert_eq!(value.as_str(), Some(env!("CARGO_PKG_VERSION")));
            "[CARGO_PKG_VERSION]"
        }),
    });
}

#[tokio::test]
async fn a_request_without_credentials_is_a_401_problem() {
    let app = TestApp::spawn().await;
    let resp = app
        .client
        .get(app.url("/api/v1/auth/me"))
        .send()
        .await
        .unwrap();
    insta::assert_json_snapshot!("401_missing_credentials", contract(resp).await);
}

#[tokio::test]
async fn a_bad_bearer_token_is_a_401_problem() {
    let app = TestApp::spawn().await;
    let resp = app
        .client
        .get(app.url("/api/v1/auth/me"))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    insta::assert_json_snapshot!("401_bad_token", contract(resp).await);
}

#[tokio::test]
async fn a_read_only_api_key_writing_is_a_403_problem() {
    let app = TestApp::spawn().await;
    let token = app.user("contract-403@example.com").await;
    let (status, created) = app
        .post(
            "/api/v1/api-keys",
            Some(&token),
            json!({"name": "dashboard", "scope": "read"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let resp = app
        .client
        .post(app.url("/api/v1/tables"))
        .bearer_auth(created["key"].as_str().unwrap())
        .json(&json!({"name": "Nope", "rows": []}))
        .send()
        .await
        .unwrap();
    insta::assert_json_snapshot!("403_read_only_key_writing", contract(resp).await);
}

#[tokio::test]
async fn an_unknown_table_id_is_a_404_problem() {
    let app = TestApp::spawn().await;
    let token = app.user("contract-404@example.com").await;
    let id = uuid::Uuid::new_v4().to_string();
    let resp = app
        .client
        .get(app.url(&format!("/api/v1/tables/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let mut answer = contract(resp).await;
    redact_string(&mut answer, &id, "[table-id]");
    insta::assert_json_snapshot!("404_unknown_table", answer);
}

#[tokio::test]
async fn an_unknown_route_is_a_404_problem() {
    let app = TestApp::spawn().await;
    let resp = app
        .client
        .get(app.url("/api/v1/nope"))
        .send()
        .await
        .unwrap();
    insta::assert_json_snapshot!("404_unknown_route", contract(resp).await);
}

#[tokio::test]
async fn a_wrong_method_is_a_405_problem() {
    let app = TestApp::spawn().await;
    let resp = app
        .client
        .delete(app.url("/api/v1/auth/login"))
        .send()
        .await
        .unwrap();
    insta::assert_json_snapshot!("405_wrong_method", contract(resp).await);
}

#[tokio::test]
async fn a_change_on_a_stale_version_is_a_409_problem() {
    let app = TestApp::spawn().await;
    let token = app.user("contract-409@example.com").await;
    let id = table(&app, &token).await;
    let change = |ops: Value| {
        app.client
            .post(app.url(&format!("/api/v1/tables/{id}/changes")))
            .bearer_auth(&token)
            .header("if-match", "\"1\"")
            .json(&json!({ "ops": ops }))
            .send()
    };
    let first = change(json!([
        {"op": "set_cells", "cells": [{"row": 1, "column": "population", "value": 2102651}]}
    ]))
    .await
    .unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let stale = change(json!([{"op": "delete_rows", "rows": [1]}]))
        .await
        .unwrap();
    let mut answer = contract(stale).await;
    redact_string(&mut answer, &id, "[table-id]");
    insta::assert_json_snapshot!("409_stale_if_match", answer);
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413_problem() {
    let app = TestApp::spawn_with(|c| c.http.body_limit_bytes = 4096).await;
    let resp = app
        .client
        .post(app.url("/api/v1/auth/register"))
        .json(&json!({"email": "big@example.com", "password": "x".repeat(10_000)}))
        .send()
        .await
        .unwrap();
    insta::assert_json_snapshot!("413_body_too_large", contract(resp).await);
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_415_problem() {
    let app = TestApp::spawn().await;
    let resp = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("content-type", "text/plain")
        .body("email=a@example.com")
        .send()
        .await
        .unwrap();
    insta::assert_json_snapshot!("415_wrong_content_type", contract(resp).await);
}

#[tokio::test]
async fn a_short_password_is_a_422_problem_naming_the_field() {
    let app = TestApp::spawn().await;
    let resp = app
        .client
        .post(app.url("/api/v1/auth/register"))
        .json(&json!({"email": "short@example.com", "password": "short"}))
        .send()
        .await
        .unwrap();
    insta::assert_json_snapshot!("422_validation_failed", contract(resp).await);
}

#[tokio::test]
async fn malformed_json_is_a_400_problem() {
    let app = TestApp::spawn().await;
    let resp = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    insta::assert_json_snapshot!("400_malformed_json", contract(resp).await);
}

#[tokio::test]
async fn requests_past_the_rate_limit_are_a_429_problem() {
    // One sign-in attempt a minute per address: the second one is refused, whatever the clock.
    let app = TestApp::spawn_with(|c| c.rate_limits.auth.requests = 1).await;
    let login = || {
        app.client
            .post(app.url("/api/v1/auth/login"))
            .json(&json!({"email": "nobody@example.com", "password": "wrong password"}))
            .send()
    };
    let first = login().await.unwrap();
    assert_eq!(first.status(), StatusCode::UNAUTHORIZED);
    let refused = login().await.unwrap();
    insta::assert_json_snapshot!("429_rate_limited", contract(refused).await, {
        // Seconds until the window frees a slot: depends on when in the window the test ran.
        ".headers[\"retry-after\"]" => insta::dynamic_redaction(|value, _| {
            let secs: u64 = value.as_str().unwrap().parse().unwrap();
            assert!((1..=60).contains(&secs), "retry-after {secs}");
            "[1..=60 seconds]"
        }),
        // The same wait, in words.
        ".body.detail" => insta::dynamic_redaction(|value, _| {
            let detail = value.as_str().unwrap();
            let (head, tail) = detail.rsplit_once("Try again in ").unwrap();
            let secs: u64 = tail.strip_suffix(" seconds.").unwrap().parse().unwrap();
            assert!((1..=60).contains(&secs), "{detail}");
            format!("{head}Try again in [1..=60] seconds.")
        }),
    });
}

#[tokio::test]
async fn a_filter_on_an_unknown_column_is_a_422_problem() {
    let app = TestApp::spawn().await;
    let token = app.user("contract-filter@example.com").await;
    let id = table(&app, &token).await;
    let resp = app
        .client
        .get(app.url(&format!("/api/v1/tables/{id}/rows?filter=Nope:eq:1")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let mut answer = contract(resp).await;
    redact_string(&mut answer, &id, "[table-id]");
    insta::assert_json_snapshot!("422_bad_rows_filter", answer);
}
