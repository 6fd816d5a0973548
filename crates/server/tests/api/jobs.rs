//! Long work as jobs: imports larger than `tables.import_sync_bytes`, the account archive,
//! the generic `/jobs` API, and the files jobs and processes leave behind (uploads, artifacts,
//! per-process temporaries) when an account is deleted or a process dies.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{
    IntoPair, PASSWORD, TestApp, assert_problem, base_config, fresh_database_url, private_tempdir,
    wait_job,
};

pub(crate) fn csv(rows: usize) -> Vec<u8> {
    let mut text = String::from("id,city,score\n");
    for i in 1..=rows {
        text.push_str(&format!("{i},City {i},{}.5\n", i % 97));
    }
    text.into_bytes()
}

pub(crate) async fn upload(
    app: &TestApp,
    token: &str,
    bytes: Vec<u8>,
    file_name: &str,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name(file_name.to_owned()),
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
    let headers = resp.headers().clone();
    (status, headers, resp.json().await.unwrap())
}

async fn table_count(app: &TestApp, token: &str) -> usize {
    let (_, list) = app.get("/api/v1/tables", Some(token)).await;
    list["items"].as_array().unwrap().len()
}

/// Files directly in a directory of the data dir (none if it does not exist).
fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Every file under the data dir that may hold a user's data, other than the database and
/// the server's secrets: uploads, export files, temporaries.
fn user_files(app: &TestApp) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let data = &app.state.config.data_dir;
    let mut out = Vec::new();
    walk(data, &mut out);
    out.retain(|p| {
        let name = p.file_name().unwrap().to_string_lossy();
        !(name.starts_with("sheetgpt.db")
            || name == "jwt_secret"
            || name == "encryption_key"
            || name == "alive")
    });
    out
}

#[tokio::test]
async fn an_upload_at_import_sync_bytes_is_imported_at_once_and_one_byte_more_becomes_a_job() {
    let bytes = csv(300);
    let limit = bytes.len() as u64;
    let app = TestApp::spawn_with(|c| c.tables.import_sync_bytes = limit).await;
    let token = app.user("big@example.com").await;

    let (status, _, body) = upload(&app, &token, bytes.clone(), "at.csv").await;
    assert_eq!(status, StatusCode::CREATED, "at the limit: {body}");
    assert_eq!(body["row_count"], 300);

    let mut over = bytes;
    over.push(b'\n'); // one byte more: a trailing blank line, the same rows
    let (status, headers, job) = upload(&app, &token, over, "past.csv").await;
    assert_eq!(status, StatusCode::ACCEPTED, "past the limit: {job}");
    assert_eq!(job["kind"], "import");
    let id = job["id"].as_str().unwrap();
    assert_eq!(headers["location"], format!("/api/v1/jobs/{id}"));

    let done = wait_job(&app, &token, id, &["succeeded", "failed"]).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["progress"]["done"], 300);
    assert_eq!(done["progress"]["total"], 300);
    assert_eq!(done["result"]["rows"], 300);
    assert_eq!(done["result"]["name"], "past");
    assert!(done["download_url"].is_null(), "an import writes no file");
    let table = done["result"]["table_id"].as_str().unwrap();
    let (status, rows) = app
        .get(
            &format!("/api/v1/tables/{table}/rows?limit=2"),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rows}");
    assert_eq!(rows["rows"][1]["cells"][1], "City 2");
    let (_, meta) = app
        .get(&format!("/api/v1/tables/{table}"), Some(&token))
        .await;
    let types: Vec<&str> = meta["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["integer", "text", "decimal"]);
    assert_eq!(table_count(&app, &token).await, 2);
    assert!(
        files_in(&app.state.config.data_dir.join("uploads")).is_empty(),
        "the upload is removed once imported"
    );
    let (_, list) = app.get("/api/v1/jobs?kind=import", Some(&token)).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_refused_large_upload_fails_its_job_with_the_reason_and_stores_nothing() {
    let app = TestApp::spawn_with(|c| {
        c.tables.import_sync_bytes = 10;
        c.tables.max_rows = 100;
    })
    .await;
    let token = app.user("refused@example.com").await;
    let (status, _, job) = upload(&app, &token, csv(150), "many.csv").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let id = job["id"].as_str().unwrap();
    let done = wait_job(&app, &token, id, &["succeeded", "failed"]).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["attempts"], 1, "a refused file is not retried");
    assert!(
        done["error"].as_str().unwrap().contains("100"),
        "the reason names the limit: {done}"
    );
    assert_eq!(table_count(&app, &token).await, 0, "no table");
    let (_, usage) = app.get("/api/v1/tables?deleted=true", Some(&token)).await;
    assert!(
        usage["items"].as_array().unwrap().is_empty(),
        "none in the trash either"
    );
    assert!(files_in(&app.state.config.data_dir.join("uploads")).is_empty());
    // Nothing counted against the stored-rows quota: an import of the limit still fits.
    let (status, _, body) = upload(&app, &token, csv(100), "fits.csv").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let done = wait_job(
        &app,
        &token,
        body["id"].as_str().unwrap(),
        &["succeeded", "failed"],
    )
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
}

#[tokio::test]
async fn a_large_import_past_the_stored_rows_quota_fails_and_leaves_the_quota_untouched() {
    let app = TestApp::spawn_with(|c| {
        c.tables.import_sync_bytes = 10;
        c.quotas.max_stored_rows = 120;
    })
    .await;
    let token = app.user("quota@example.com").await;
    let (_, _, job) = upload(&app, &token, csv(100), "first.csv").await;
    let first = wait_job(
        &app,
        &token,
        job["id"].as_str().unwrap(),
        &["succeeded", "failed"],
    )
    .await;
    assert_eq!(first["status"], "succeeded", "{first}");
    let (_, _, job) = upload(&app, &token, csv(50), "second.csv").await;
    let second = wait_job(
        &app,
        &token,
        job["id"].as_str().unwrap(),
        &["succeeded", "failed"],
    )
    .await;
    assert_eq!(second["status"], "failed", "{second}");
    assert_eq!(table_count(&app, &token).await, 1);
    let (_, _, job) = upload(&app, &token, csv(20), "third.csv").await;
    let third = wait_job(
        &app,
        &token,
        job["id"].as_str().unwrap(),
        &["succeeded", "failed"],
    )
    .await;
    assert_eq!(
        third["status"], "succeeded",
        "the failed import took none of the quota: {third}"
    );
}

#[tokio::test]
async fn users_reach_only_their_own_jobs() {
    let app = TestApp::spawn_with(|c| {
        c.tables.import_sync_bytes = 10;
        c.exports.workers = 0; // the job stays queued
    })
    .await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let (status, _, job) = upload(&app, &alice, csv(5), "mine.csv").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let id = job["id"].as_str().unwrap();

    let (status, body) = app.get(&format!("/api/v1/jobs/{id}"), Some(&bob)).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
    let (status, body) = app
        .post(&format!("/api/v1/jobs/{id}/cancel"), Some(&bob), json!({}))
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
    let (status, body) = app
        .get(&format!("/api/v1/jobs/{id}/download"), Some(&bob))
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
    let (_, list) = app.get("/api/v1/jobs", Some(&bob)).await;
    assert!(list["items"].as_array().unwrap().is_empty(), "{list}");

    let (_, list) = app.get("/api/v1/jobs", Some(&alice)).await;
    assert_eq!(list["items"][0]["id"], id);
    let (status, body) = app.get("/api/v1/jobs?kind=nope", Some(&alice)).await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
    let (status, _) = app.get(&format!("/api/v1/jobs/{id}"), Some(&alice)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .get(&format!("/api/v1/jobs/{id}/download"), Some(&alice))
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT, "job-not-ready");
}

#[tokio::test]
async fn cancelling_a_queued_import_removes_its_upload_and_stores_no_table() {
    let app = TestApp::spawn_with(|c| {
        c.tables.import_sync_bytes = 10;
        c.exports.workers = 0;
    })
    .await;
    let token = app.user("cancel@example.com").await;
    let (_, _, job) = upload(&app, &token, csv(5), "later.csv").await;
    let id = job["id"].as_str().unwrap();
    let uploads = app.state.config.data_dir.join("uploads");
    assert_eq!(files_in(&uploads), [format!("{id}.upload")]);
    let (status, body) = app
        .post(
            &format!("/api/v1/jobs/{id}/cancel"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "cancelled");
    assert!(files_in(&uploads).is_empty());
    let (status, body) = app
        .post(
            &format!("/api/v1/jobs/{id}/cancel"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT, "job-finished");
    assert_eq!(table_count(&app, &token).await, 0);
}

async fn table_of(app: &TestApp, token: &str, rows: usize, name: &str) -> String {
    let rows: Vec<Value> = (1..=rows)
        .map(|i| json!({"n": i, "label": format!("row {i}")}))
        .collect();
    let (status, body) = app
        .post(
            "/api/v1/tables",
            Some(token),
            json!({"name": name, "rows": rows}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn download_bytes(app: &TestApp, token: &str, path: &str) -> (StatusCode, String, Vec<u8>) {
    let resp = app
        .client
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ct, resp.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn the_account_archive_job_writes_a_table_longer_than_a_sheet_as_csv() {
    let app = TestApp::spawn_with(|c| c.exports.archive_xlsx_max_rows = 3).await;
    let token = app.user("archive@example.com").await;
    let long = table_of(&app, &token, 4, "Long").await;
    let short = table_of(&app, &token, 3, "Short").await;

    let (status, headers, job) = app
        .request(Method::POST, "/api/v1/account/export", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(job["kind"], "account_archive");
    let id = job["id"].as_str().unwrap();
    assert_eq!(headers["location"], format!("/api/v1/jobs/{id}"));
    let done = wait_job(&app, &token, id, &["succeeded", "failed"]).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["rows"], 7);
    assert_eq!(done["progress"]["done"], done["progress"]["total"]);
    let url = done["download_url"].as_str().unwrap();
    let (status, ct, bytes) = download_bytes(&app, &token, url).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ct, "application/zip");

    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let names: Vec<String> = zip.file_names().map(|n| n.unwrap().into_owned()).collect();
    assert!(names.contains(&format!("tables/{long}.csv")), "{names:?}");
    assert!(!names.contains(&format!("tables/{long}.xlsx")), "{names:?}");
    assert!(names.contains(&format!("tables/{short}.xlsx")), "{names:?}");
    let mut text = String::new();
    zip.by_name(&format!("tables/{long}.csv"))
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 4);
    assert_eq!(&records[3][1], "row 4");
    let mut meta = String::new();
    zip.by_name(&format!("tables/{long}.meta.json"))
        .unwrap()
        .read_to_string(&mut meta)
        .unwrap();
    let meta: Value = serde_json::from_str(&meta).unwrap();
    assert_eq!(meta["sheet"], format!("tables/{long}.csv"));
    let mut xlsx = Vec::new();
    zip.by_name(&format!("tables/{short}.xlsx"))
        .unwrap()
        .read_to_end(&mut xlsx)
        .unwrap();
    use calamine::Reader;
    let mut book = calamine::open_workbook_auto_from_rs(std::io::Cursor::new(xlsx)).unwrap();
    assert_eq!(book.worksheet_range_at(0).unwrap().unwrap().height(), 4);
}

#[tokio::test]
async fn get_account_export_answers_with_a_job_past_archive_sync_rows_and_the_archive_at_it() {
    let app = TestApp::spawn_with(|c| {
        c.exports.archive_sync_rows = 3;
        c.exports.workers = 0;
    })
    .await;
    let token = app.user("sync@example.com").await;
    table_of(&app, &token, 3, "Three").await;
    let (status, ct, bytes) = download_bytes(&app, &token, "/api/v1/account/export").await;
    assert_eq!(status, StatusCode::OK, "at the limit");
    assert_eq!(ct, "application/zip");
    assert!(zip::ZipArchive::new(std::io::Cursor::new(bytes)).is_ok());

    table_of(&app, &token, 1, "One").await;
    let (status, headers, job) = app
        .request(Method::GET, "/api/v1/account/export", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "past the limit: {job}");
    assert_eq!(job["kind"], "account_archive");
    let id = job["id"].as_str().unwrap();
    assert_eq!(headers["location"], format!("/api/v1/jobs/{id}"));
    let (status, again) = app
        .request(Method::POST, "/api/v1/account/export", Some(&token), None)
        .await
        .into_pair();
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(again["id"], id, "one archive job at a time");
}

#[tokio::test]
async fn deleting_an_account_cancels_its_running_and_queued_jobs_and_leaves_no_file_of_it() {
    let app = TestApp::spawn_with(|c| {
        c.exports.workers = 1; // busy with the export, so the import stays queued
        c.exports.page_rows = 1; // one query per row: slow enough to catch it running
        c.exports.lease_secs = 2;
        c.tables.import_sync_bytes = 1_000_000;
    })
    .await;
    let email = "gone@example.com";
    let token = app.user(email).await;
    let (status, _, table) = upload(&app, &token, csv(30_000), "slow.csv").await;
    assert_eq!(status, StatusCode::CREATED, "{table}");
    let table = table["id"].as_str().unwrap().to_owned();
    let (status, export) = app
        .post(
            "/api/v1/exports",
            Some(&token),
            json!({"table_id": table, "format": "csv"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{export}");
    let export = export["id"].as_str().unwrap().to_owned();
    let running = wait_job(&app, &token, &export, &["running", "succeeded"]).await;
    assert_eq!(running["status"], "running", "{running}");
    let (status, _, import) = upload(&app, &token, csv(70_000), "queued.csv").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{import}");
    assert_eq!(
        files_in(&app.state.config.data_dir.join("uploads")).len(),
        1
    );
    // The export is writing its file in this process's temporary directory.
    assert!(!user_files(&app).is_empty());

    let (status, _) = app
        .request(
            Method::DELETE,
            "/api/v1/account",
            Some(&token),
            Some(json!({"password": PASSWORD})),
        )
        .await
        .into_pair();
    assert_eq!(status, StatusCode::NO_CONTENT);

    // The worker notices at its next heartbeat and stops; nothing of the user stays.
    let mut left = user_files(&app);
    for _ in 0..100 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = user_files(&app);
    }
    assert!(left.is_empty(), "files left: {left:?}");
    {
        use sea_orm::{EntityTrait, PaginatorTrait};
        let jobs = sheetgpt::db::entity::job::Entity::find()
            .count(&app.state.db)
            .await
            .unwrap();
        assert_eq!(jobs, 0, "the jobs went with the account");
    }
    // Past another lease: the cancelled export did not come back to write its file.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let left = user_files(&app);
    assert!(left.is_empty(), "files left: {left:?}");
    // And the worker is free again for other users.
    let other = app.user("other@example.com").await;
    let table = table_of(&app, &other, 2, "Mine").await;
    let (_, job) = app
        .post(
            "/api/v1/exports",
            Some(&other),
            json!({"table_id": table, "format": "csv"}),
        )
        .await;
    let done = wait_job(
        &app,
        &other,
        job["id"].as_str().unwrap(),
        &["succeeded", "failed"],
    )
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
}

#[tokio::test]
async fn temporaries_of_dead_processes_are_swept_at_start_up_and_a_live_ones_are_kept() {
    let dir = private_tempdir();
    let tmp = dir.path().join("tmp");
    let make = |name: &str, alive_age: Option<Duration>| {
        let d = tmp.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(".upload-abc"), b"a user's upload").unwrap();
        let alive = std::fs::File::create(d.join("alive")).unwrap();
        if let Some(age) = alive_age {
            alive
                .set_modified(std::time::SystemTime::now() - age)
                .unwrap();
        }
        d
    };
    // A process that has exited: its id is no longer running.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    child.wait().unwrap();
    let dead = make(&format!("p{}-dead", child.id()), None);
    // A running process (this one) that stopped touching its directory an hour ago.
    let own = std::process::id();
    let stale = make(&format!("p{own}-stale"), Some(Duration::from_secs(3600)));
    // A running process that touched it just now.
    let live = make(&format!("p{own}-live"), None);
    // A loose file from an older version, two days old, and a fresh one.
    let old_loose = tmp.join(".tmpOLD");
    std::fs::write(&old_loose, b"x").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&old_loose)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(2 * 86_400))
        .unwrap();
    let new_loose = tmp.join(".tmpNEW");
    std::fs::write(&new_loose, b"x").unwrap();

    let mut config = base_config(dir.path());
    config.database_url = fresh_database_url(dir.path()).await;
    let app = TestApp::start(config, dir).await;

    assert!(!dead.exists(), "a dead process's directory is removed");
    assert!(!stale.exists(), "a stale directory is removed");
    assert!(
        live.join(".upload-abc").exists(),
        "a live process's files are kept"
    );
    assert!(!old_loose.exists());
    assert!(new_loose.exists());
    let own_dir = app.state.scratch.path().to_path_buf();
    assert!(own_dir.join("alive").exists());
    assert!(own_dir.starts_with(app.state.config.data_dir.join("tmp")));
    // The retention sweep does the same while the server runs, and keeps its own directory.
    let stale_again = make(&format!("p{own}-later"), Some(Duration::from_secs(3600)));
    sheetgpt::retention::sweep(&app.state).await.unwrap();
    assert!(!stale_again.exists());
    assert!(own_dir.exists());
    assert!(live.exists());
}

#[tokio::test]
async fn an_upload_whose_import_job_ended_is_swept() {
    let app = TestApp::spawn_with(|c| {
        c.tables.import_sync_bytes = 10;
        c.exports.workers = 0;
    })
    .await;
    let token = app.user("sweep@example.com").await;
    let uploads = app.state.config.data_dir.join("uploads");
    let (_, _, job) = upload(&app, &token, csv(5), "kept.csv").await;
    let kept = format!("{}.upload", job["id"].as_str().unwrap());
    // An upload left by a crash after its job ended, and one no job names, both old.
    let orphan = uploads.join(format!("{}.upload", uuid::Uuid::now_v7()));
    std::fs::write(&orphan, b"a,b\n").unwrap();
    let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    for name in [orphan.clone(), uploads.join(&kept)] {
        std::fs::File::options()
            .write(true)
            .open(&name)
            .unwrap()
            .set_modified(an_hour_ago)
            .unwrap();
    }
    sheetgpt::retention::sweep(&app.state).await.unwrap();
    assert!(!orphan.exists());
    assert_eq!(files_in(&uploads), [kept], "a queued job's upload stays");
}

#[tokio::test]
async fn a_large_upload_sent_again_with_its_idempotency_key_makes_one_job() {
    let app = TestApp::spawn_with(|c| {
        c.tables.import_sync_bytes = 10;
        c.exports.workers = 0;
    })
    .await;
    let token = app.user("retry@example.com").await;
    let send = || async {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(csv(5)).file_name("retried.csv"),
        );
        let resp = app
            .client
            .post(app.url("/api/v1/tables/import"))
            .bearer_auth(&token)
            .header("idempotency-key", "upload-1")
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        (status, resp.json::<Value>().await.unwrap())
    };
    let (first, job) = send().await;
    assert_eq!(first, StatusCode::ACCEPTED, "{job}");
    let (again, same) = send().await;
    assert_eq!(again, StatusCode::OK, "{same}");
    assert_eq!(same["id"], job["id"]);
    assert_eq!(
        files_in(&app.state.config.data_dir.join("uploads")).len(),
        1,
        "the second upload is not kept"
    );
    assert_eq!(app.state.scratch.temporaries(), 0);
}
