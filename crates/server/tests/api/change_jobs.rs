//! Changes of every row of a table past `tables.max_sync_rows`, and reverts of such a table,
//! are applied by `change` jobs (202 + the job to follow) instead of within the request, so
//! they never meet the request timeout; the job applies what was asked to the version the
//! table had then, or fails and writes nothing.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, wait_job};

/// A table of `rows` rows: `n` counts down, so a sort by it reverses the table.
async fn table_of(app: &TestApp, token: &str, rows: usize) -> String {
    let rows: Vec<Value> = (1..=rows)
        .map(|i| {
            let code = if i % 4 == 0 {
                "x".to_owned()
            } else {
                i.to_string()
            };
            json!([rows + 1 - i, format!(" row {i} "), code])
        })
        .collect();
    let columns = json!([
        {"name": "n", "type": "integer"},
        {"name": "label", "type": "text"},
        {"name": "code", "type": "text"}
    ]);
    let (status, body) = app
        .post(
            "/api/v1/tables",
            Some(token),
            json!({"name": "Big", "columns": columns, "rows": rows}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn change(
    app: &TestApp,
    token: &str,
    id: &str,
    ops: Value,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    app.request(
        Method::POST,
        &format!("/api/v1/tables/{id}/changes"),
        Some(token),
        Some(json!({ "ops": ops })),
    )
    .await
}

async fn version_of(app: &TestApp, token: &str, id: &str) -> i64 {
    let (status, t) = app.get(&format!("/api/v1/tables/{id}"), Some(token)).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    t["version"].as_i64().unwrap()
}

/// The first column of the first rows of the current version.
async fn first_ns(app: &TestApp, token: &str, id: &str, limit: usize) -> Vec<i64> {
    let (status, page) = app
        .get(
            &format!("/api/v1/tables/{id}/rows?limit={limit}"),
            Some(token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["cells"][0].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn a_whole_table_change_at_max_sync_rows_is_applied_at_once_and_one_row_more_is_a_job() {
    let app = TestApp::spawn_with(|c| c.tables.max_sync_rows = 50).await;
    let token = app.user("cj1@example.com").await;

    let at = table_of(&app, &token, 50).await;
    let sort = json!([{"op": "sort", "by": [{"column": "n"}]}]);
    let (status, _, body) = change(&app, &token, &at, sort.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "at the limit: {body}");
    assert_eq!(body["version"], 2);

    let past = table_of(&app, &token, 51).await;
    // A change of some rows stays within the request, whatever the table's size.
    let (status, _, body) = change(
        &app,
        &token,
        &past,
        json!([{"op": "set_cells", "cells": [{"row": 1, "column": "label", "value": "first"}]}]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(first_ns(&app, &token, &past, 3).await, [51, 50, 49]);

    let (status, headers, job) = change(&app, &token, &past, sort).await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "one row past the limit: {job}"
    );
    assert_eq!(job["kind"], "change");
    let id = job["id"].as_str().unwrap();
    assert_eq!(headers["location"], format!("/api/v1/jobs/{id}"));
    let done = wait_job(&app, &token, id, &["succeeded", "failed"]).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["table_id"], past.as_str());
    assert_eq!(done["result"]["version"], 3);
    assert_eq!(done["result"]["row_count"], 51);
    // The sort reads every row, then places every one.
    assert_eq!(done["progress"]["total"], 102, "{done}");
    assert_eq!(done["progress"]["done"], 102, "{done}");
    assert!(done["download_url"].is_null(), "a change writes no file");
    assert_eq!(version_of(&app, &token, &past).await, 3);
    assert_eq!(first_ns(&app, &token, &past, 3).await, [1, 2, 3]);
    let (_, list) = app.get("/api/v1/jobs?kind=change", Some(&token)).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
}

#[tokio::test]
async fn every_whole_table_operation_and_a_revert_run_as_jobs_and_give_what_was_asked() {
    let app = TestApp::spawn_with(|c| c.tables.max_sync_rows = 10).await;
    let token = app.user("cj2@example.com").await;
    let id = table_of(&app, &token, 1_200).await;
    for (ops, version, rows) in [
        (json!([{"op": "trim", "columns": ["label"]}]), 2, 1_200),
        (
            json!([{"op": "add_column", "name": "twice", "formula": "n * 2"}]),
            3,
            1_200,
        ),
        (
            json!([{"op": "change_type", "column": "code", "to": "integer", "invalid": "null"}]),
            4,
            1_200,
        ),
        (
            json!([{"op": "filter_delete", "filter": {"column": "n", "cmp": "gt", "value": 1000}}]),
            5,
            1_000,
        ),
    ] {
        let (status, _, job) = change(&app, &token, &id, ops.clone()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{ops}: {job}");
        let done = wait_job(
            &app,
            &token,
            job["id"].as_str().unwrap(),
            &["succeeded", "failed"],
        )
        .await;
        assert_eq!(done["status"], "succeeded", "{ops}: {done}");
        assert_eq!(done["result"]["version"], version, "{done}");
        assert_eq!(done["result"]["row_count"], rows, "{done}");
    }
    // A type change that some cells refuse fails its job, naming them; nothing is written.
    let (status, _, job) = change(
        &app,
        &token,
        &id,
        json!([{"op": "change_type", "column": "label", "to": "integer"}]),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let failed = wait_job(
        &app,
        &token,
        job["id"].as_str().unwrap(),
        &["succeeded", "failed"],
    )
    .await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains("rows[201].label: `row 201` cannot become integer"),
        "{error}"
    );
    assert_eq!(failed["attempts"], 1, "not retried: {failed}");
    assert_eq!(version_of(&app, &token, &id).await, 5);

    let (_, page) = app
        .get(&format!("/api/v1/tables/{id}/rows?limit=1"), Some(&token))
        .await;
    let first = &page["rows"][0]["cells"];
    // n was 1200 in row 1, deleted by the filter: row 201 (n = 1000) is first now.
    assert_eq!(first[0], 1000, "{page}");
    assert_eq!(first[1], "row 201", "trimmed");
    assert_eq!(first[2], 201, "converted to a number");
    assert_eq!(first[3], 2000, "computed");

    // The type change's answer lists the first nulled cells and counts them all.
    let (_, jobs) = app
        .get("/api/v1/jobs?kind=change&limit=10", Some(&token))
        .await;
    let typed = jobs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["result"]["version"] == 4)
        .unwrap();
    assert_eq!(typed["result"]["nulled_total"], 300, "{typed}");
    assert_eq!(typed["result"]["nulled_cells"][0][0], 4);
    assert_eq!(typed["result"]["nulled_cells"][0][1], "x");

    // A revert of a large table is a job too.
    let (status, headers, job) = app
        .request(
            Method::POST,
            &format!("/api/v1/tables/{id}/revert"),
            Some(&token),
            Some(json!({"version": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert!(headers.contains_key("location"));
    let done = wait_job(
        &app,
        &token,
        job["id"].as_str().unwrap(),
        &["succeeded", "failed"],
    )
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["version"], 6);
    assert_eq!(done["result"]["row_count"], 1_200);
    let (_, page) = app
        .get(&format!("/api/v1/tables/{id}/rows?limit=1"), Some(&token))
        .await;
    assert_eq!(
        page["rows"][0]["cells"],
        json!([1200, " row 1 ", "1"]),
        "{page}"
    );
}

#[tokio::test]
async fn a_large_change_that_mixes_a_whole_table_operation_with_others_is_refused() {
    let app = TestApp::spawn_with(|c| c.tables.max_sync_rows = 10).await;
    let token = app.user("cj3@example.com").await;
    let id = table_of(&app, &token, 11).await;
    let (status, _, body) = change(
        &app,
        &token,
        &id,
        json!([
            {"op": "rename_column", "column": "label", "to": "name"},
            {"op": "sort", "by": [{"column": "n"}]}
        ]),
    )
    .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "change-too-large",
    );
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("11 rows") && detail.contains("sort"),
        "{detail}"
    );
    assert_eq!(version_of(&app, &token, &id).await, 1, "nothing written");
    // The same two ops on a table at the limit are one change, within the request.
    let small = table_of(&app, &token, 10).await;
    let (status, _, body) = change(
        &app,
        &token,
        &small,
        json!([
            {"op": "rename_column", "column": "label", "to": "name"},
            {"op": "sort", "by": [{"column": "n"}]}
        ]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn a_change_job_whose_table_moved_on_fails_as_stale_and_writes_nothing() {
    // No worker here: the job waits until a second server (on the same database) takes it.
    let app = TestApp::spawn_with(|c| {
        c.tables.max_sync_rows = 10;
        c.exports.workers = 0;
    })
    .await;
    let token = app.user("cj4@example.com").await;
    let id = table_of(&app, &token, 20).await;
    let (status, _, job) = change(
        &app,
        &token,
        &id,
        json!([{"op": "sort", "by": [{"column": "n"}]}]),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["status"], "queued");
    // Meanwhile someone edits a cell: version 2.
    let (status, _, body) = change(
        &app,
        &token,
        &id,
        json!([{"op": "set_cells", "cells": [{"row": 1, "column": "label", "value": "edited"}]}]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // A second sort, sent without If-Match: based on version 2.
    let (status, _, body) = app
        .request(
            Method::POST,
            &format!("/api/v1/tables/{id}/changes"),
            Some(&token),
            Some(json!({"ops": [{"op": "sort", "by": [{"column": "n"}]}]})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "no If-Match: based on version 2: {body}"
    );
    let second = body["id"].as_str().unwrap().to_owned();

    let worker = app.sibling(|c| c.exports.workers = 1).await;
    let done = wait_job(
        &app,
        &token,
        job["id"].as_str().unwrap(),
        &["succeeded", "failed"],
    )
    .await;
    assert_eq!(done["status"], "failed", "{done}");
    let error = done["error"].as_str().unwrap();
    assert!(error.contains("The table has changed"), "{error}");
    assert_eq!(done["attempts"], 1, "a stale change is not retried");
    let done = wait_job(&app, &token, &second, &["succeeded", "failed"]).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["version"], 3);
    assert_eq!(first_ns(&app, &token, &id, 2).await, [1, 2]);
    drop(worker);
}

#[tokio::test]
async fn a_stale_if_match_on_a_large_change_is_refused_before_it_is_queued() {
    let app = TestApp::spawn_with(|c| c.tables.max_sync_rows = 10).await;
    let token = app.user("cj5@example.com").await;
    let id = table_of(&app, &token, 20).await;
    let (status, _, body) = app
        .request(
            Method::POST,
            &format!("/api/v1/tables/{id}/changes"),
            Some(&token),
            Some(json!({"ops": [{"op": "trim"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    wait_job(&app, &token, body["id"].as_str().unwrap(), &["succeeded"]).await;
    let resp = app
        .client
        .post(app.url(&format!("/api/v1/tables/{id}/changes")))
        .bearer_auth(&token)
        .header("if-match", "\"1\"")
        .json(&json!({"ops": [{"op": "sort", "by": [{"column": "n"}]}]}))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_problem(status, &body, StatusCode::CONFLICT, "stale-version");
    let (_, list) = app.get("/api/v1/jobs?kind=change", Some(&token)).await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "not queued: {list}"
    );
}

#[tokio::test]
async fn a_queued_change_job_can_be_cancelled_and_a_retry_with_its_key_makes_one_job() {
    let app = TestApp::spawn_with(|c| {
        c.tables.max_sync_rows = 10;
        c.exports.workers = 0;
    })
    .await;
    let token = app.user("cj6@example.com").await;
    let other = app.user("cj6-other@example.com").await;
    let id = table_of(&app, &token, 20).await;
    let send = |key: &'static str| {
        app.client
            .post(app.url(&format!("/api/v1/tables/{id}/changes")))
            .bearer_auth(&token)
            .header("idempotency-key", key)
            .json(&json!({"ops": [{"op": "sort", "by": [{"column": "n"}]}]}))
            .send()
    };
    let first = send("sort-1").await.unwrap();
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let first: Value = first.json().await.unwrap();
    let again = send("sort-1").await.unwrap();
    assert_eq!(again.status(), StatusCode::OK, "the same key: the same job");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    let job = first["id"].as_str().unwrap();

    // Another user neither sees nor cancels it, nor changes the table.
    let (status, _) = app.get(&format!("/api/v1/jobs/{job}"), Some(&other)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = change(&app, &other, &id, json!([{"op": "trim"}])).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, cancelled) = app
        .post(
            &format!("/api/v1/jobs/{job}/cancel"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    let worker = app.sibling(|c| c.exports.workers = 1).await;
    // A job queued after it runs, so the cancelled one would have run by then.
    let later = send("sort-2").await.unwrap();
    let later: Value = later.json().await.unwrap();
    let done = wait_job(
        &app,
        &token,
        later["id"].as_str().unwrap(),
        &["succeeded", "failed"],
    )
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        done["result"]["version"], 2,
        "the cancelled sort wrote nothing"
    );
    drop(worker);
}

#[tokio::test]
async fn too_many_large_changes_at_once_are_refused_with_429() {
    let app = TestApp::spawn_with(|c| {
        c.tables.max_sync_rows = 10;
        c.exports.workers = 0;
        c.exports.max_active_per_user = 2;
    })
    .await;
    let token = app.user("cj7@example.com").await;
    let id = table_of(&app, &token, 20).await;
    for _ in 0..2 {
        let (status, _, body) = change(&app, &token, &id, json!([{"op": "trim"}])).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let (status, headers, body) = change(&app, &token, &id, json!([{"op": "trim"}])).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(headers.contains_key("retry-after"));
}

#[tokio::test]
async fn a_chat_command_on_a_large_table_is_applied_by_a_job_and_the_reply_says_so() {
    let app = TestApp::spawn_with(|c| c.tables.max_sync_rows = 10).await;
    let token = app.user("cj8@example.com").await;
    let (_, conversation) = app
        .post("/api/v1/conversations", Some(&token), json!({}))
        .await;
    let conversation = conversation["id"].as_str().unwrap();
    let mut csv = String::from("city,population\n");
    for i in 1..=30 {
        csv.push_str(&format!("City {i},{}\n", 1000 + i));
    }
    let path = format!("/api/v1/conversations/{conversation}/messages");
    let say = |content: String| app.post(&path, Some(&token), json!({ "content": content }));
    let (status, pasted) = say(csv).await;
    assert_eq!(status, StatusCode::OK, "{pasted}");
    let table = pasted["message"]["table_id"].as_str().unwrap().to_owned();

    let (status, reply) = say("sort by population desc".to_owned()).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let text = reply["message"]["content"].as_str().unwrap();
    assert!(
        text.contains("the change is being applied by job"),
        "{text}"
    );
    assert!(!text.contains("Not applied"), "{text}");
    let job = reply["message"]["meta"]["ops_job"].as_str().unwrap();
    assert!(text.contains(job), "{text}");
    let done = wait_job(&app, &token, job, &["succeeded", "failed"]).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let (_, page) = app
        .get(
            &format!("/api/v1/tables/{table}/rows?limit=1"),
            Some(&token),
        )
        .await;
    assert_eq!(page["rows"][0]["cells"][0], "City 30", "{page}");
}

#[tokio::test]
async fn nulled_cells_list_the_first_thousand_and_nulled_total_counts_them_all() {
    let app = TestApp::spawn().await;
    let token = app.user("cj9@example.com").await;
    // Paged (one op) and in memory (with a no-op) give the same answer.
    for extra in [
        None,
        Some(json!({"op": "rename_column", "column": "n", "to": "n"})),
    ] {
        let id = table_of(&app, &token, 4_400).await;
        let mut ops = vec![
            json!({"op": "change_type", "column": "code", "to": "integer", "invalid": "null"}),
        ];
        ops.extend(extra.clone());
        let (status, _, body) = change(&app, &token, &id, Value::Array(ops)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["nulled_total"], 1_100, "{extra:?}");
        let listed = body["nulled_cells"].as_array().unwrap();
        assert_eq!(listed.len(), 1_000, "{extra:?}");
        assert_eq!(listed[0], json!([4, "x"]));
        assert_eq!(
            listed[999],
            json!([4_000, "x"]),
            "the first thousand by row id"
        );
    }
}

#[tokio::test]
async fn a_write_that_waits_past_the_busy_timeout_on_sqlite_is_a_503_to_retry_and_writes_nothing() {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let app = TestApp::spawn().await;
    if app.state.db.get_database_backend() != sea_orm::DatabaseBackend::Sqlite {
        return; // PostgreSQL writers do not wait on each other for unrelated rows
    }
    let token = app.user("cj10@example.com").await;
    // Another writer (a long change, an import) holds SQLite's one write lock.
    let long = app.state.db.begin().await.unwrap();
    long.execute_unprepared("UPDATE users SET locale = locale")
        .await
        .unwrap();
    let (status, headers, body) = app
        .request(
            Method::POST,
            "/api/v1/tables",
            Some(&token),
            Some(json!({"name": "Waits", "rows": [[1]]})),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "database-busy",
    );
    assert_eq!(headers["retry-after"], "5");
    long.rollback().await.unwrap();
    let (_, list) = app.get("/api/v1/tables", Some(&token)).await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        0,
        "nothing written"
    );
    let (status, _, body) = app
        .request(
            Method::POST,
            "/api/v1/tables",
            Some(&token),
            Some(json!({"name": "Waits", "rows": [[1]]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "tried again: {body}");
}

#[tokio::test]
async fn on_sqlite_writes_of_one_process_wait_their_turn_and_past_the_busy_timeout_are_a_503() {
    let app = TestApp::spawn().await;
    if sea_orm::ConnectionTrait::get_database_backend(&app.state.db)
        != sea_orm::DatabaseBackend::Sqlite
    {
        return; // PostgreSQL writes concurrently: no turn is taken
    }
    let token = app.user("cj11@example.com").await;
    // Another write transaction of this process (a long change) has the turn for 1 s: the
    // request waits for it, then is written.
    let turn = app.state.writes.turn().await.unwrap();
    assert!(turn.is_some(), "SQLite takes turns");
    let release = async move {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        drop(turn);
    };
    let started = std::time::Instant::now();
    let ((), (status, _, body)) = tokio::join!(
        release,
        app.request(
            Method::POST,
            "/api/v1/tables",
            Some(&token),
            Some(json!({"name": "Waited", "rows": [[1]]})),
        )
    );
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(900),
        "it waited for the turn: {:?}",
        started.elapsed()
    );
    // Held past the busy timeout (5 s): refused as a busy database is, nothing written.
    let _held = app.state.writes.turn().await.unwrap();
    let (status, headers, body) = app
        .request(
            Method::POST,
            "/api/v1/tables",
            Some(&token),
            Some(json!({"name": "Refused", "rows": [[1]]})),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "database-busy",
    );
    assert_eq!(headers["retry-after"], "5");
    drop(_held);
    let (_, list) = app.get("/api/v1/tables", Some(&token)).await;
    let names: Vec<_> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].clone())
        .collect();
    assert_eq!(
        names,
        vec![json!("Waited")],
        "the refused one wrote nothing"
    );
}

#[tokio::test]
async fn validation_of_a_large_version_is_a_job_whose_result_answers_later_requests() {
    let app = TestApp::spawn_with(|c| c.tables.max_sync_rows = 10).await;
    let token = app.user("cj11@example.com").await;
    let other = app.user("cj11-other@example.com").await;
    let create = |rows: usize| {
        let rows: Vec<Value> = (1..=rows).map(|i| json!([i])).collect();
        app.post(
            "/api/v1/tables",
            Some(&token),
            json!({"name": "Ruled", "columns": [
                {"name": "n", "type": "integer", "rules": {"max": 20}}
            ], "rows": rows}),
        )
    };
    // At the limit: answered at once.
    let (_, small) = create(10).await;
    let (status, body) = app
        .get(
            &format!(
                "/api/v1/tables/{}/validation",
                small["id"].as_str().unwrap()
            ),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"], 0);

    let (_, big) = create(30).await;
    let id = big["id"].as_str().unwrap();
    let path = format!("/api/v1/tables/{id}/validation");
    let (status, headers, job) = app.request(Method::GET, &path, Some(&token), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["kind"], "validation");
    let job_id = job["id"].as_str().unwrap();
    assert_eq!(headers["location"], format!("/api/v1/jobs/{job_id}"));
    let (status, _) = app.get(&path, Some(&other)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another user's table");

    let done = wait_job(&app, &token, job_id, &["succeeded", "failed"]).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["progress"]["done"], 30);
    let result = &done["result"];
    assert_eq!(result["version"], 1);
    assert_eq!(result["total"], 10);
    assert_eq!(result["violations"][0]["row"], 21);
    assert_eq!(result["violations"][0]["rule"], "max");
    // Asked again: the job's answer, at once, and no second job.
    let (status, again) = app.get(&path, Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(&again, result);
    let (_, jobs) = app.get("/api/v1/jobs?kind=validation", Some(&token)).await;
    assert_eq!(jobs["items"].as_array().unwrap().len(), 1, "{jobs}");

    // New rules are a new version: checked again.
    let (status, _, body) = change(
        &app,
        &token,
        id,
        json!([{"op": "set_rules", "column": "n", "rules": {"max": 25}}]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _, job) = app.request(Method::GET, &path, Some(&token), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let done = wait_job(
        &app,
        &token,
        job["id"].as_str().unwrap(),
        &["succeeded", "failed"],
    )
    .await;
    assert_eq!(done["result"]["total"], 5, "{done}");
    // The first version's answer is still the first job's.
    let (status, v1) = app.get(&format!("{path}?version=1"), Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v1["total"], 10);
}
