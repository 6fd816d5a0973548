//! Quotas that hold when walked around: restoring from the trash, and many requests at once
//! (on PostgreSQL concurrent transactions race; on SQLite they serialize).

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::exports::cities;
use crate::helpers::{TestApp, assert_problem};

fn rows(name: &str, n: usize) -> Value {
    json!({"name": name, "rows": (0..n).map(|i| json!({"n": i})).collect::<Vec<_>>()})
}

async fn stored_rows(app: &TestApp, email: &str) -> u64 {
    let user = sheetgpt::db::users::find_by_email(&app.state.db, email)
        .await
        .unwrap()
        .unwrap();
    sheetgpt::quotas::stored_rows(&app.state.db, user.id)
        .await
        .unwrap()
}

/// Issue 13: restoring a deleted table skipped the check: six delete/create/restore cycles
/// stored 5,400 rows under a 1,000-row quota.
#[tokio::test]
async fn restoring_a_deleted_table_is_refused_past_the_stored_rows_quota() {
    let app = TestApp::spawn_with(|c| c.quotas.max_stored_rows = 1000).await;
    let token = app.user("restore-quota@example.com").await;
    let mut trashed = Vec::new();
    for cycle in 0..6 {
        let (status, table) = app
            .post(
                "/api/v1/tables",
                Some(&token),
                rows(&format!("t{cycle}"), 900),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{table}");
        let id = table["id"].as_str().unwrap().to_owned();
        let (status, _) = app
            .delete(&format!("/api/v1/tables/{id}"), Some(&token))
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        trashed.push(id);
    }
    let mut restored = 0;
    for id in &trashed {
        let (status, body) = app
            .post(
                &format!("/api/v1/tables/{id}/restore"),
                Some(&token),
                json!({}),
            )
            .await;
        if status == StatusCode::OK {
            restored += 1;
        } else {
            assert_problem(status, &body, StatusCode::FORBIDDEN, "quota-exceeded");
            assert!(
                body["detail"].as_str().unwrap().contains("1000 rows"),
                "{body}"
            );
        }
    }
    assert_eq!(restored, 1, "only one 900-row table fits");
    assert_eq!(stored_rows(&app, "restore-quota@example.com").await, 900);
    // A refused restore leaves the table in the trash, restorable once there is room.
    let (_, trash) = app.get("/api/v1/tables?deleted=true", Some(&token)).await;
    assert_eq!(trash["items"].as_array().unwrap().len(), 5);
}

async fn upload_csv(app: &TestApp, token: &str, name: String, rows: usize) -> (StatusCode, Value) {
    let mut csv = String::from("n,label\n");
    for i in 0..rows {
        csv.push_str(&format!("{i},row {i}\n"));
    }
    let form = reqwest::multipart::Form::new().text("name", name).part(
        "file",
        reqwest::multipart::Part::bytes(csv.into_bytes()).file_name("rows.csv"),
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
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Issue 13: on PostgreSQL, concurrent imports each saw room and together stored 8,100 rows
/// under a 1,000-row quota. The check and the write are one step per user now.
#[tokio::test]
async fn concurrent_imports_cannot_pass_the_stored_rows_quota() {
    let app = TestApp::spawn_with(|c| {
        c.quotas.max_stored_rows = 1000;
        c.database.max_connections = 10;
    })
    .await;
    let token = app.user("race-import@example.com").await;
    let answers =
        join_all((0..8).map(|i| upload_csv(&app, &token, format!("import {i}"), 300))).await;
    let created = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    for (status, body) in answers.iter().filter(|(s, _)| *s != StatusCode::CREATED) {
        assert_problem(*status, body, StatusCode::FORBIDDEN, "quota-exceeded");
    }
    let stored = stored_rows(&app, "race-import@example.com").await;
    assert!(
        stored <= 1000,
        "{stored} rows stored under a 1,000-row quota"
    );
    assert_eq!(created, 3, "three 300-row imports fit: {answers:?}");
    assert_eq!(stored, 900);
}

#[tokio::test]
async fn concurrent_table_creations_cannot_pass_the_stored_rows_quota() {
    let app = TestApp::spawn_with(|c| {
        c.quotas.max_stored_rows = 1000;
        c.database.max_connections = 10;
    })
    .await;
    let token = app.user("race-create@example.com").await;
    let answers = join_all(
        (0..8).map(|i| app.post("/api/v1/tables", Some(&token), rows(&format!("t{i}"), 300))),
    )
    .await;
    let created = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    for (status, body) in answers.iter().filter(|(s, _)| *s != StatusCode::CREATED) {
        assert_problem(*status, body, StatusCode::FORBIDDEN, "quota-exceeded");
    }
    assert_eq!(created, 3, "{answers:?}");
    assert_eq!(stored_rows(&app, "race-create@example.com").await, 900);
}

/// Issue 13: on PostgreSQL, concurrent `POST /exports` passed `exports_per_day`.
#[tokio::test]
async fn concurrent_exports_cannot_pass_the_daily_export_quota() {
    let app = TestApp::spawn_with(|c| {
        c.exports.workers = 0;
        c.exports.max_active_per_user = 100;
        c.quotas.exports_per_day = 3;
        c.database.max_connections = 10;
    })
    .await;
    let token = app.user("race-export@example.com").await;
    let table = cities(&app, &token).await;
    let body = json!({"table_id": table, "format": "csv"});
    let answers =
        join_all((0..8).map(|_| app.post("/api/v1/exports", Some(&token), body.clone()))).await;
    let accepted = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::ACCEPTED)
        .count();
    for (status, problem) in answers.iter().filter(|(s, _)| *s != StatusCode::ACCEPTED) {
        assert_problem(
            *status,
            problem,
            StatusCode::TOO_MANY_REQUESTS,
            "quota-exceeded",
        );
    }
    assert_eq!(accepted, 3, "{answers:?}");
    let (_, list) = app.get("/api/v1/exports?limit=50", Some(&token)).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn concurrent_exports_cannot_pass_the_active_export_limit() {
    let app = TestApp::spawn_with(|c| {
        c.exports.workers = 0;
        c.exports.max_active_per_user = 2;
        c.database.max_connections = 10;
    })
    .await;
    let token = app.user("race-active@example.com").await;
    let table = cities(&app, &token).await;
    let body = json!({"table_id": table, "format": "csv"});
    let answers =
        join_all((0..6).map(|_| app.post("/api/v1/exports", Some(&token), body.clone()))).await;
    let accepted = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::ACCEPTED)
        .count();
    for (status, problem) in answers.iter().filter(|(s, _)| *s != StatusCode::ACCEPTED) {
        assert_problem(
            *status,
            problem,
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-requests",
        );
    }
    assert_eq!(accepted, 2, "{answers:?}");
}
