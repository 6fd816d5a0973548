//! `GET /jobs/{id}/events`: a job followed live as Server-Sent Events, its progress moving
//! while it works, the stream ending with the job; private, and bounded per user.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, wait_job};
use crate::jobs::{csv, upload};

/// An open event stream, read as it comes.
struct Events {
    resp: reqwest::Response,
    buffer: String,
}

impl Events {
    async fn open(app: &TestApp, token: &str, id: &str) -> Result<Self, (StatusCode, Value)> {
        let resp = app
            .client
            .get(app.url(&format!("/api/v1/jobs/{id}/events")))
            .bearer_auth(token)
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        if resp.status() != StatusCode::OK {
            let status = resp.status();
            return Err((status, resp.json().await.unwrap_or(Value::Null)));
        }
        let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with("text/event-stream"), "{ct}");
        Ok(Self {
            resp,
            buffer: String::new(),
        })
    }

    /// The next `job` event, or `None` once the stream has ended.
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(cut) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..cut + 2).collect();
                let mut name = "";
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(n) = line.strip_prefix("event:") {
                        name = n.trim();
                    } else if let Some(d) = line.strip_prefix("data:") {
                        data.push_str(d.trim_start());
                    }
                }
                if name.is_empty() {
                    continue; // a keep-alive comment
                }
                assert_eq!(name, "job");
                return Some(serde_json::from_str(&data).unwrap());
            }
            let chunk = tokio::time::timeout(Duration::from_secs(120), self.resp.chunk())
                .await
                .expect("an event or the end within two minutes")
                .unwrap()?;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    async fn all(mut self) -> Vec<Value> {
        let mut events = Vec::new();
        while let Some(e) = self.next().await {
            events.push(e);
        }
        events
    }
}

async fn export(app: &TestApp, token: &str, table: &str) -> String {
    let (status, job) = app
        .post(
            "/api/v1/exports",
            Some(token),
            json!({"table_id": table, "format": "csv"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    job["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_export_is_followed_live_from_any_server_until_it_ends_and_a_large_import_too() {
    // One-row pages: the export takes seconds, long enough to be seen working.
    let app = TestApp::spawn_with(|c| {
        c.exports.page_rows = 1;
        c.tables.import_sync_bytes = 10_000;
    })
    .await;
    // A one-row page costs PostgreSQL about ten times what it costs SQLite.
    let rows: i64 = if app
        .state
        .config
        .effective_database_url()
        .starts_with("postgres")
    {
        4_000
    } else {
        60_000
    };
    let token = app.user("live@example.com").await;
    let (status, _, table) = upload(&app, &token, csv(rows as usize), "big.csv").await;
    // Past import_sync_bytes: an import job, followed the same way.
    assert_eq!(status, StatusCode::ACCEPTED, "{table}");
    let events = Events::open(&app, &token, table["id"].as_str().unwrap())
        .await
        .unwrap()
        .all()
        .await;
    let last = events.last().unwrap();
    assert_eq!(last["status"], "succeeded", "{events:?}");
    assert_eq!(last["kind"], "import");
    assert_eq!(last["progress"], json!({"done": rows, "total": rows}));
    let table_id = last["result"]["table_id"].as_str().unwrap().to_owned();

    // Followed through another server on the same database, which runs no jobs: what it
    // shows is what the worker wrote, so progress reaches every server while the job works.
    let watcher = app.sibling(|c| c.exports.workers = 0).await;
    let id = export(&app, &token, &table_id).await;
    let events = Events::open(&watcher, &token, &id)
        .await
        .unwrap()
        .all()
        .await;
    let statuses: Vec<&str> = events
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert!(
        matches!(statuses[0], "queued" | "running"),
        "the first event is the job as it was: {statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&"succeeded"));
    let done: Vec<i64> = events
        .iter()
        .map(|e| e["progress"]["done"].as_i64().unwrap())
        .collect();
    assert!(done.windows(2).all(|w| w[0] <= w[1]), "{done:?}");
    let midway = events
        .iter()
        .filter(|e| {
            e["status"] == "running" && (1..rows).contains(&e["progress"]["done"].as_i64().unwrap())
        })
        .count();
    assert!(
        midway >= 1,
        "progress is seen moving while the job works: {done:?}"
    );
    assert_eq!(events.last().unwrap()["progress"]["done"], rows);
    assert_eq!(
        events.last().unwrap()["download_url"],
        format!("/api/v1/jobs/{id}/download")
    );

    // A job that has ended: its one event, and the stream ends.
    let again = Events::open(&app, &token, &id).await.unwrap().all().await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0], *events.last().unwrap());
}

#[tokio::test]
async fn event_streams_are_private_and_bounded_per_user() {
    // No workers: the job stays queued and its streams stay open.
    let app = TestApp::spawn_with(|c| {
        c.exports.workers = 0;
        c.exports.max_event_streams_per_user = 2;
    })
    .await;
    let token = app.user("owner@example.com").await;
    let other = app.user("other@example.com").await;
    let (status, table) = app
        .post(
            "/api/v1/tables",
            Some(&token),
            json!({"name": "t", "rows": [{"a": 1}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{table}");
    let id = export(&app, &token, table["id"].as_str().unwrap()).await;

    let (status, body) = Events::open(&app, &other, &id).await.err().unwrap();
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");

    let mut first = Events::open(&app, &token, &id).await.unwrap();
    assert_eq!(first.next().await.unwrap()["status"], "queued");
    let second = Events::open(&app, &token, &id).await.unwrap();
    let (status, body) = Events::open(&app, &token, &id).await.err().unwrap();
    assert_problem(
        status,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
        "too-many-requests",
    );
    // Another user's streams are their own.
    let (_, other_table) = app
        .post(
            "/api/v1/tables",
            Some(&other),
            json!({"name": "t", "rows": [{"a": 1}]}),
        )
        .await;
    let other_id = export(&app, &other, other_table["id"].as_str().unwrap()).await;
    let _theirs = Events::open(&app, &other, &other_id).await.unwrap();

    // A closed stream frees its place.
    drop(second);
    let mut reopened = None;
    for _ in 0..100 {
        match Events::open(&app, &token, &id).await {
            Ok(events) => {
                reopened = Some(events);
                break;
            }
            Err((status, _)) => assert_eq!(status, StatusCode::TOO_MANY_REQUESTS),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        reopened.is_some(),
        "the place of a closed stream is free again"
    );

    // Cancelling the job ends its open streams with its last event.
    let (status, _) = app
        .post(
            &format!("/api/v1/jobs/{id}/cancel"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let last = first.all().await;
    assert_eq!(last.last().unwrap()["status"], "cancelled", "{last:?}");
    let job = wait_job(&app, &token, &id, &["cancelled"]).await;
    assert_eq!(*last.last().unwrap(), job);
}
