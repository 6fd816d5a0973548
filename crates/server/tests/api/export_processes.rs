//! Export jobs across real `sheetgpt serve` processes sharing one database and data
//! directory: a worker killed with SIGKILL mid-export, and two servers draining one queue.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, fresh_database_url};

struct Cluster {
    dir: tempfile::TempDir,
    database_url: Option<String>,
    client: reqwest::Client,
}

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Cluster {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database_url = fresh_database_url(dir.path()).await;
        Self {
            dir,
            database_url,
            client: reqwest::Client::new(),
        }
    }

    /// Starts a server on a free port with the given extra environment; waits until ready.
    async fn start(&self, env: &[(&str, &str)]) -> Server {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sheetgpt"));
        cmd.current_dir(self.dir.path())
            .env_clear()
            .env("SHEETGPT_LISTEN", format!("127.0.0.1:{port}"))
            .env("SHEETGPT_DATA_DIR", self.dir.path().join("data"))
            .env("SHEETGPT_LOG_LEVEL", "warn")
            .env("SHEETGPT_AUTH__ARGON2_MEMORY_KIB", "8192")
            .env("SHEETGPT_AUTH__ARGON2_ITERATIONS", "1")
            .env("SHEETGPT_EXPORTS__POLL_MS", "100")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(url) = &self.database_url {
            cmd.env("SHEETGPT_DATABASE_URL", url);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..200 {
            if let Ok(resp) = self
                .client
                .get(format!("{}/readyz", server.base))
                .send()
                .await
                && resp.status() == StatusCode::OK
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server never became ready");
    }

    async fn token(&self, server: &Server, email: &str) -> String {
        let creds = json!({"email": email, "password": PASSWORD});
        let resp = self
            .client
            .post(format!("{}/api/v1/auth/register", server.base))
            .json(&creds)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let tokens: Value = self
            .client
            .post(format!("{}/api/v1/auth/login", server.base))
            .json(&creds)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        tokens["access_token"].as_str().unwrap().to_owned()
    }

    /// Uploads a CSV of `rows` rows × 4 columns; returns the table id.
    async fn table(&self, server: &Server, token: &str, rows: usize) -> String {
        let mut csv = String::from("id,name,amount,day\n");
        for i in 0..rows {
            csv.push_str(&format!(
                "{i},name {i},{}.25,2024-01-{:02}\n",
                i * 3,
                i % 28 + 1
            ));
        }
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(csv.into_bytes()).file_name("big.csv"),
        );
        let resp = self
            .client
            .post(format!("{}/api/v1/tables/import", server.base))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let body: Value = resp.json().await.unwrap();
        body["id"].as_str().unwrap().to_owned()
    }

    async fn export(&self, server: &Server, token: &str, table: &str, format: &str) -> String {
        let resp = self
            .client
            .post(format!("{}/api/v1/exports", server.base))
            .bearer_auth(token)
            .json(&json!({"table_id": table, "format": format}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        let body: Value = resp.json().await.unwrap();
        body["id"].as_str().unwrap().to_owned()
    }

    async fn job(&self, server: &Server, token: &str, id: &str) -> Value {
        self.client
            .get(format!("{}/api/v1/exports/{id}", server.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn wait_final(&self, server: &Server, token: &str, id: &str, secs: u64) -> Value {
        for _ in 0..secs * 20 {
            let job = self.job(server, token, id).await;
            if ["succeeded", "failed", "cancelled"].contains(&job["status"].as_str().unwrap()) {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("export {id} did not finish in {secs} s");
    }

    /// `sheetgpt_jobs_started_total{kind="export"}` of one server.
    async fn jobs_started(&self, server: &Server) -> u64 {
        let text = self
            .client
            .get(format!("{}/metrics", server.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find(|l| l.starts_with("sheetgpt_jobs_started_total{kind=\"export\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .map_or(0, |n| n.parse().unwrap())
    }

    fn artifacts(&self) -> Vec<String> {
        std::fs::read_dir(self.dir.path().join("data/exports"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[tokio::test]
async fn a_job_whose_server_is_killed_is_finished_by_another_once_its_lease_runs_out() {
    let cluster = Cluster::new().await;
    // One-row pages make the export take long enough (seconds) to be killed in the middle of
    // it: with 20-row pages 30,000 rows were read before the first heartbeat recorded progress.
    let slow = [
        ("SHEETGPT_EXPORTS__LEASE_SECS", "2"),
        ("SHEETGPT_EXPORTS__PAGE_ROWS", "1"),
        ("SHEETGPT_EXPORTS__WORKERS", "1"),
    ];
    let first = cluster.start(&slow).await;
    let token = cluster.token(&first, "kill@example.com").await;
    let table = cluster.table(&first, &token, 30_000).await;
    let id = cluster.export(&first, &token, &table, "xlsx").await;

    // Wait until the first server has written some rows, then kill it without warning.
    let mut seen = Value::Null;
    for _ in 0..400 {
        seen = cluster.job(&first, &token, &id).await;
        if seen["status"] == "running" && seen["progress"]["done"].as_i64().unwrap() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        seen["status"], "running",
        "the export was caught mid-way: {seen}"
    );
    assert!(
        seen["progress"]["done"].as_i64().unwrap() < 30_000,
        "{seen}"
    );
    let mut first = first;
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();

    let second = cluster
        .start(&[("SHEETGPT_EXPORTS__LEASE_SECS", "2")])
        .await;
    let done = cluster.wait_final(&second, &token, &id, 120).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 2, "claimed once by each server");
    assert_eq!(done["progress"]["done"], 30_000);
    assert_eq!(cluster.jobs_started(&second).await, 1);
    assert_eq!(
        cluster.artifacts(),
        vec![format!("{id}.xlsx")],
        "one file, no leftovers"
    );

    let bytes = cluster
        .client
        .get(format!("{}/api/v1/exports/{id}/download", second.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    use calamine::Reader;
    let mut book =
        calamine::open_workbook_auto_from_rs(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let sheet = book.worksheet_range_at(0).unwrap().unwrap();
    assert_eq!(sheet.height(), 30_001, "every row, once");
    let last: Vec<calamine::Data> = sheet.rows().next_back().unwrap().to_vec();
    let first_row: Vec<calamine::Data> = sheet.rows().nth(1).unwrap().to_vec();
    assert_eq!(
        (&first_row[0], &last[0]),
        (
            &calamine::Data::Float(0.0),
            &calamine::Data::Float(29_999.0)
        ),
        "rows in their order: first {first_row:?}, last {last:?}"
    );
}

#[tokio::test]
async fn two_servers_on_one_database_run_every_job_exactly_once() {
    let cluster = Cluster::new().await;
    let env = [
        ("SHEETGPT_EXPORTS__WORKERS", "2"),
        ("SHEETGPT_EXPORTS__MAX_ACTIVE_PER_USER", "100"),
    ];
    let a = cluster.start(&env).await;
    let b = cluster.start(&env).await;
    let token = cluster.token(&a, "pair@example.com").await;
    let table = cluster.table(&a, &token, 500).await;
    let mut ids = Vec::new();
    for i in 0..16 {
        // Jobs are queued through both servers.
        let server = if i % 2 == 0 { &a } else { &b };
        let format = ["xlsx", "csv", "json"][i % 3];
        ids.push((cluster.export(server, &token, &table, format).await, format));
    }
    for (id, _) in &ids {
        let job = cluster.wait_final(&a, &token, id, 120).await;
        assert_eq!(job["status"], "succeeded", "{job}");
        assert_eq!(job["attempts"], 1, "run once: {job}");
        assert_eq!(job["file"]["rows"], 500);
    }
    let started = cluster.jobs_started(&a).await + cluster.jobs_started(&b).await;
    assert_eq!(
        started, 16,
        "every job started exactly once across both servers"
    );
    let mut files = cluster.artifacts();
    files.sort();
    let mut want: Vec<String> = ids.iter().map(|(id, f)| format!("{id}.{f}")).collect();
    want.sort();
    assert_eq!(files, want);
}

#[tokio::test]
async fn a_server_stopped_with_sigterm_gives_its_job_back_without_spending_an_attempt() {
    let cluster = Cluster::new().await;
    let slow = [
        ("SHEETGPT_EXPORTS__LEASE_SECS", "30"),
        ("SHEETGPT_EXPORTS__PAGE_ROWS", "1"),
        ("SHEETGPT_EXPORTS__WORKERS", "1"),
    ];
    let mut first = cluster.start(&slow).await;
    let token = cluster.token(&first, "term@example.com").await;
    let table = cluster.table(&first, &token, 30_000).await;
    let id = cluster.export(&first, &token, &table, "csv").await;
    let mut seen = Value::Null;
    for _ in 0..400 {
        seen = cluster.job(&first, &token, &id).await;
        if seen["status"] == "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(seen["status"], "running", "{seen}");
    let status = Command::new("kill")
        .args(["-TERM", &first.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exited = first.child.wait().unwrap();
    assert!(exited.success(), "{exited:?}");

    // The lease (30 s) has not run out: the job is back in the queue, not stuck in `running`.
    let second = cluster.start(&[]).await;
    let done = cluster.wait_final(&second, &token, &id, 60).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        done["attempts"], 1,
        "the interrupted attempt is not counted: {done}"
    );
    assert_eq!(done["file"]["rows"], 30_000);
}
