//! Export jobs: queued with 202, run by workers with leases, retried, cancelled, downloaded,
//! swept after retention; and the same jobs across real processes (kill -9, two servers).

use std::time::Duration;

use calamine::{Data, Reader};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{IntoPair, TestApp, assert_problem};

pub async fn cities(app: &TestApp, token: &str) -> String {
    let (status, body) = app
        .post(
            "/api/v1/tables",
            Some(token),
            json!({
                "name": "Cities",
                "rows": [
                    {"city": "Paris", "population": 2102650, "founded": "2024-01-31", "price": "12.50"},
                    {"city": "Lyon", "population": 522250, "founded": null, "price": "8.00"},
                    {"city": "Nice", "population": null, "founded": "2023-06-01", "price": "9.25"}
                ]
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn create(app: &TestApp, token: &str, body: Value) -> (StatusCode, Value) {
    app.post("/api/v1/exports", Some(token), body).await
}

/// Polls the job until it reaches a final status (or `want`), failing after 30 s.
pub async fn wait_for(app: &TestApp, token: &str, id: &str, want: &[&str]) -> Value {
    for _ in 0..600 {
        let (status, job) = app.get(&format!("/api/v1/exports/{id}"), Some(token)).await;
        assert_eq!(status, StatusCode::OK, "{job}");
        if want.contains(&job["status"].as_str().unwrap()) {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("export {id} never reached {want:?}");
}

pub async fn download(
    app: &TestApp,
    token: &str,
    id: &str,
) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let resp = app
        .client
        .get(app.url(&format!("/api/v1/exports/{id}/download")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    (status, headers, resp.bytes().await.unwrap().to_vec())
}

fn sheet_rows(bytes: Vec<u8>) -> Vec<Vec<Data>> {
    let mut book = calamine::open_workbook_auto_from_rs(std::io::Cursor::new(bytes)).unwrap();
    let sheet = book.worksheet_range_at(0).unwrap().unwrap();
    sheet.rows().map(<[Data]>::to_vec).collect()
}

#[tokio::test]
async fn an_export_job_writes_a_file_that_reads_back() {
    let app = TestApp::spawn().await;
    let token = app.user("x1@example.com").await;
    let table = cities(&app, &token).await;

    let (status, headers, job) = app
        .request(
            Method::POST,
            "/api/v1/exports",
            Some(&token),
            Some(json!({"table_id": table, "format": "xlsx"})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let id = job["id"].as_str().unwrap();
    assert_eq!(headers["location"], format!("/api/v1/exports/{id}"));
    assert_eq!(job["version"], 1);
    assert_eq!(job["destination"]["type"], "download");
    assert_eq!(job["progress"]["total"], 3);

    let done = wait_for(&app, &token, id, &["succeeded", "failed"]).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 1);
    assert_eq!(done["progress"]["done"], 3);
    assert_eq!(done["file"]["rows"], 3);
    assert_eq!(done["file"]["name"], "Cities-v1.xlsx");
    assert!(done["expires_at"].is_string());
    assert!(done["error"].is_null());
    let url = done["file"]["download_url"].as_str().unwrap();
    assert_eq!(url, format!("/api/v1/exports/{id}/download"));

    let (status, headers, bytes) = download(&app, &token, id).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename=\"Cities-v1.xlsx\""
    );
    assert_eq!(done["file"]["bytes"], bytes.len());
    let rows = sheet_rows(bytes);
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0][0], Data::String("city".into()));
    assert_eq!(rows[1][1], Data::Float(2_102_650.0));
    assert!(matches!(rows[1][2], Data::DateTime(_)), "{:?}", rows[1][2]);
    assert_eq!(rows[3][0], Data::String("Nice".into()));

    // CSV with a BOM and JSON columns, of an older version after a change.
    let (status, _) = app
        .post(
            &format!("/api/v1/tables/{table}/changes"),
            Some(&token),
            json!({"ops": [{"op": "delete_rows", "rows": [1]}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, job) = create(
        &app,
        &token,
        json!({"table_id": table, "format": "csv", "bom": true, "version": 1}),
    )
    .await;
    let id = job["id"].as_str().unwrap();
    wait_for(&app, &token, id, &["succeeded"]).await;
    let (_, headers, bytes) = download(&app, &token, id).await;
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    assert!(bytes.starts_with(&[0xEF, 0xBB, 0xBF]));
    let records: Vec<csv::StringRecord> = csv::Reader::from_reader(&bytes[3..])
        .records()
        .map(Result::unwrap)
        .collect();
    assert_eq!(records.len(), 3, "version 1 had three rows");
    assert_eq!(&records[0][0], "Paris");

    let (_, job) = create(
        &app,
        &token,
        json!({"table_id": table, "format": "json", "layout": "columns"}),
    )
    .await;
    let id = job["id"].as_str().unwrap();
    let done = wait_for(&app, &token, id, &["succeeded"]).await;
    assert_eq!(done["version"], 2);
    let (_, _, bytes) = download(&app, &token, id).await;
    let doc: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(doc["rows"].as_array().unwrap().len(), 2, "{doc}");

    let (status, list) = app
        .get("/api/v1/exports?status=succeeded", Some(&token))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 3);
    assert_eq!(list["items"][0]["format"], "json", "newest first");
    let (status, body) = app.get("/api/v1/exports?status=done", Some(&token)).await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
}

#[tokio::test]
async fn bad_export_requests_are_clear_problems() {
    let app = TestApp::spawn_with(|c| c.exports.workers = 0).await;
    let token = app.user("x2@example.com").await;
    let table = cities(&app, &token).await;
    let (status, body) = create(&app, &token, json!({"table_id": table, "format": "pdf"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = create(
        &app,
        &token,
        json!({"table_id": table, "format": "csv", "version": 9}),
    )
    .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
    let (status, body) = create(
        &app,
        &token,
        json!({"table_id": table, "format": "csv", "destination": {"type": "ftp"}}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = create(
        &app,
        &token,
        json!({"table_id": table, "format": "csv", "template_id": uuid::Uuid::now_v7()}),
    )
    .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
    let (status, body) = app
        .request(
            Method::POST,
            "/api/v1/exports",
            Some(&token),
            Some(json!({"table_id": table, "format": "csv"})),
        )
        .await
        .into_pair();
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = app
        .get(
            &format!("/api/v1/exports/{}/download", body["id"].as_str().unwrap()),
            Some(&token),
        )
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT, "export-not-ready");
}

#[tokio::test]
async fn an_idempotency_key_makes_one_job() {
    let app = TestApp::spawn_with(|c| c.exports.workers = 0).await;
    let token = app.user("x3@example.com").await;
    let table = cities(&app, &token).await;
    let send = || async {
        app.client
            .post(app.url("/api/v1/exports"))
            .bearer_auth(&token)
            .header("Idempotency-Key", "nightly-2026-11-25")
            .json(&json!({"table_id": table, "format": "xlsx"}))
            .send()
            .await
            .unwrap()
    };
    let first = send().await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let first: Value = first.json().await.unwrap();
    let again = send().await;
    assert_eq!(again.status(), StatusCode::OK, "a replay is not a new job");
    let again: Value = again.json().await.unwrap();
    assert_eq!(first["id"], again["id"]);
    let (_, list) = app.get("/api/v1/exports", Some(&token)).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn active_jobs_per_user_are_limited_and_cancel_frees_a_place() {
    let app = TestApp::spawn_with(|c| {
        c.exports.workers = 0;
        c.exports.max_active_per_user = 2;
    })
    .await;
    let token = app.user("x4@example.com").await;
    let table = cities(&app, &token).await;
    let body = json!({"table_id": table, "format": "csv"});
    let (_, first) = create(&app, &token, body.clone()).await;
    let (status, _) = create(&app, &token, body.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, headers, problem) = app
        .request(
            Method::POST,
            "/api/v1/exports",
            Some(&token),
            Some(body.clone()),
        )
        .await;
    assert_problem(
        status,
        &problem,
        StatusCode::TOO_MANY_REQUESTS,
        "too-many-requests",
    );
    assert!(headers.contains_key("retry-after"));
    // Another user is not held back by this one.
    let other = app.user("x4b@example.com").await;
    let other_table = cities(&app, &other).await;
    let (status, _) = create(
        &app,
        &other,
        json!({"table_id": other_table, "format": "csv"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let id = first["id"].as_str().unwrap();
    let (status, cancelled) = app
        .post(
            &format!("/api/v1/exports/{id}/cancel"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert!(cancelled["finished_at"].is_string());
    let (status, problem) = app
        .post(
            &format!("/api/v1/exports/{id}/cancel"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_problem(status, &problem, StatusCode::CONFLICT, "export-finished");
    let (status, _) = create(&app, &token, body).await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "the cancelled job freed a place"
    );
}

#[tokio::test]
async fn exports_are_private_to_their_owner() {
    let app = TestApp::spawn().await;
    let alice = app.user("x5a@example.com").await;
    let bob = app.user("x5b@example.com").await;
    let table = cities(&app, &alice).await;
    let (_, job) = create(&app, &alice, json!({"table_id": table, "format": "csv"})).await;
    let id = job["id"].as_str().unwrap();
    wait_for(&app, &alice, id, &["succeeded"]).await;

    let (status, body) = create(&app, &bob, json!({"table_id": table, "format": "csv"})).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
    for path in [
        format!("/api/v1/exports/{id}"),
        format!("/api/v1/exports/{id}/download"),
    ] {
        let (status, body) = app.get(&path, Some(&bob)).await;
        assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
    }
    let (status, body) = app
        .post(
            &format!("/api/v1/exports/{id}/cancel"),
            Some(&bob),
            json!({}),
        )
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
    let (_, list) = app.get("/api/v1/exports", Some(&bob)).await;
    assert_eq!(list["items"], json!([]));
    let (status, _) = app.get("/api/v1/exports", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_failed_attempt_is_retried_with_back_off_and_then_succeeds() {
    let app = TestApp::spawn_with(|c| {
        c.exports.retry_base_secs = 1;
        c.exports.poll_ms = 100;
    })
    .await;
    let token = app.user("x6@example.com").await;
    let table = cities(&app, &token).await;
    // A file where the exports directory should be: storing the file fails.
    let blocker = app.state.config.data_dir.join("exports");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let (_, job) = create(&app, &token, json!({"table_id": table, "format": "xlsx"})).await;
    let id = job["id"].as_str().unwrap().to_owned();
    let mut waiting = None;
    for _ in 0..200 {
        let (_, j) = app
            .get(&format!("/api/v1/exports/{id}"), Some(&token))
            .await;
        if j["attempts"] == 1 && j["status"] == "queued" {
            waiting = Some(j);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let waiting = waiting.expect("the first attempt failed and the job waits for a retry");
    assert_eq!(
        waiting["error"],
        "The file could not be stored (storage error)."
    );
    let created: chrono::DateTime<chrono::Utc> =
        waiting["created_at"].as_str().unwrap().parse().unwrap();
    let run_after: chrono::DateTime<chrono::Utc> =
        waiting["run_after"].as_str().unwrap().parse().unwrap();
    assert!(run_after > created, "the retry waits: {waiting}");
    std::fs::remove_file(&blocker).unwrap();
    let done = wait_for(&app, &token, &id, &["succeeded", "failed"]).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 2);
    assert!(done["error"].is_null());
    let (status, _, bytes) = download(&app, &token, &id).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sheet_rows(bytes).len(), 4);
}

#[tokio::test]
async fn a_job_gives_up_after_its_attempts() {
    let app = TestApp::spawn_with(|c| {
        c.exports.retry_base_secs = 0;
        c.exports.max_attempts = 2;
        c.exports.poll_ms = 50;
    })
    .await;
    let token = app.user("x7@example.com").await;
    let table = cities(&app, &token).await;
    std::fs::write(app.state.config.data_dir.join("exports"), b"x").unwrap();
    let (_, job) = create(&app, &token, json!({"table_id": table, "format": "csv"})).await;
    let done = wait_for(
        &app,
        &token,
        job["id"].as_str().unwrap(),
        &["failed", "succeeded"],
    )
    .await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["attempts"], 2);
    assert!(done["file"].is_null());
    let error = done["error"].as_str().unwrap();
    assert!(!error.contains('/'), "no paths reach the user: {error}");
}

#[tokio::test]
async fn a_job_of_a_deleted_table_fails_without_retrying() {
    // One instance queues (it runs no workers), another on the same database runs the job.
    let queuer = TestApp::spawn_with(|c| c.exports.workers = 0).await;
    let token = queuer.user("x8@example.com").await;
    let table = cities(&queuer, &token).await;
    let (_, job) = create(&queuer, &token, json!({"table_id": table, "format": "csv"})).await;
    let (status, _) = queuer
        .delete(&format!("/api/v1/tables/{table}"), Some(&token))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let runner = queuer.sibling(|_| {}).await;
    let done = wait_for(
        &runner,
        &token,
        job["id"].as_str().unwrap(),
        &["failed", "succeeded"],
    )
    .await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["attempts"], 1, "a missing table is not retried");
    assert_eq!(done["error"], "The table was deleted.");
}

#[tokio::test]
async fn files_past_their_retention_are_deleted_and_answer_410() {
    let app = TestApp::spawn().await;
    let token = app.user("x9@example.com").await;
    let table = cities(&app, &token).await;
    let (_, job) = create(&app, &token, json!({"table_id": table, "format": "xlsx"})).await;
    let id = job["id"].as_str().unwrap();
    wait_for(&app, &token, id, &["succeeded"]).await;
    let file = app.state.config.data_dir.join(format!("exports/{id}.xlsx"));
    assert!(file.exists());

    assert_eq!(
        sheetgpt::exports::worker::sweep(&app.state).await.unwrap(),
        0,
        "not expired yet"
    );
    {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
        use sheetgpt::db::entity::job;
        let past = chrono::Utc::now() - chrono::Duration::seconds(1);
        let r = job::Entity::update_many()
            .col_expr(job::Column::ExpiresAt, Expr::value(past))
            .filter(job::Column::Id.eq(uuid::Uuid::parse_str(id).unwrap()))
            .exec(&app.state.db)
            .await
            .unwrap();
        assert_eq!(r.rows_affected, 1);
    }
    assert_eq!(
        sheetgpt::exports::worker::sweep(&app.state).await.unwrap(),
        1
    );
    assert!(!file.exists());
    let (status, body) = app
        .get(&format!("/api/v1/exports/{id}/download"), Some(&token))
        .await;
    assert_problem(status, &body, StatusCode::GONE, "export-expired");
    let (_, job) = app
        .get(&format!("/api/v1/exports/{id}"), Some(&token))
        .await;
    assert_eq!(job["status"], "succeeded");
    assert!(job["file"]["download_url"].is_null());
    assert_eq!(job["file"]["rows"], 3, "what was exported is still known");
}

#[tokio::test]
async fn a_running_export_stops_when_cancelled_and_leaves_no_file() {
    let app = TestApp::spawn_with(|c| {
        c.exports.lease_secs = 2;
        c.exports.page_rows = 20;
    })
    .await;
    let token = app.user("x10@example.com").await;
    let mut csv = String::from("n,label\n");
    for i in 0..30_000 {
        csv.push_str(&format!("{i},row {i}\n"));
    }
    let resp = app
        .client
        .post(app.url("/api/v1/tables/import"))
        .bearer_auth(&token)
        .multipart(reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(csv.into_bytes()).file_name("n.csv"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let table: Value = resp.json().await.unwrap();
    let (_, job) = create(
        &app,
        &token,
        json!({"table_id": table["id"], "format": "xlsx"}),
    )
    .await;
    let id = job["id"].as_str().unwrap();
    wait_for(&app, &token, id, &["running"]).await;
    let (status, cancelled) = app
        .post(
            &format!("/api/v1/exports/{id}/cancel"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    let leftovers = |dir: &str| match dir {
        // This process's temporary directory (`tmp/p<pid>-<id>/`).
        "tmp" => app.state.scratch.temporaries(),
        dir => std::fs::read_dir(app.state.config.data_dir.join(dir))
            .map(|d| d.count())
            .unwrap_or(0),
    };
    // The worker notices at its next heartbeat (lease / 3), stops writing and removes the
    // partial file.
    for _ in 0..200 {
        if leftovers("tmp") == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, job) = app
        .get(&format!("/api/v1/exports/{id}"), Some(&token))
        .await;
    assert_eq!(job["status"], "cancelled", "{job}");
    assert!(job["file"].is_null());
    assert_eq!(leftovers("exports"), 0, "no file for a cancelled export");
    assert_eq!(leftovers("tmp"), 0, "the partial file is removed");
}
