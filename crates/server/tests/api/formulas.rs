//! Computed columns (`add_column` with a formula): bounded, typed and rounded.
//!
//! The stack-overflow cases run against a real `sheetgpt serve` process: an overflow aborts
//! the whole process, which an in-process server would take the test binary down with, and
//! what matters is that the server is still there for the next request.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use calamine::{Data, Reader};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, assert_problem, fresh_database_url};

/// A `sheetgpt serve` child process with its own data dir (and database).
struct Served {
    child: Child,
    base: String,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    async fn start(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database_url = fresh_database_url(dir.path()).await;
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sheetgpt"));
        cmd.arg("serve")
            .current_dir(dir.path())
            .env_clear()
            .env("SHEETGPT_LISTEN", format!("127.0.0.1:{port}"))
            .env("SHEETGPT_DATA_DIR", dir.path().join("data"))
            .env("SHEETGPT_LOG_LEVEL", "warn")
            .env("SHEETGPT_AUTH__ARGON2_MEMORY_KIB", "8192")
            .env("SHEETGPT_AUTH__ARGON2_ITERATIONS", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(url) = &database_url {
            cmd.env("SHEETGPT_DATABASE_URL", url);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut served = Self {
            child: cmd.spawn().unwrap(),
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
            _dir: dir,
        };
        for _ in 0..200 {
            if served.get("/readyz", None).await.0 == StatusCode::OK {
                return served;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server never became ready");
    }

    /// Fails the test, naming how the process ended, when it is gone.
    fn assert_alive(&mut self, after: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("the server process died after {after}: {status}");
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder, what: &str) -> (StatusCode, Value) {
        match req.send().await {
            Ok(resp) => {
                let status = resp.status();
                let bytes = resp.bytes().await.unwrap_or_default();
                (
                    status,
                    serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                )
            }
            Err(e) => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                self.assert_alive(what);
                panic!("{what}: {e}");
            }
        }
    }

    async fn get(&mut self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut req = self.client.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        match req.send().await {
            Ok(resp) => {
                let status = resp.status();
                (status, resp.json().await.unwrap_or(Value::Null))
            }
            Err(_) => (StatusCode::SERVICE_UNAVAILABLE, Value::Null),
        }
    }

    async fn post(&mut self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .timeout(Duration::from_secs(60))
            .json(&body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        self.send(req, &format!("POST {path}")).await
    }

    async fn user(&mut self) -> String {
        let creds = json!({"email": "deep@example.com", "password": PASSWORD});
        let (status, _) = self
            .post("/api/v1/auth/register", None, creds.clone())
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (_, tokens) = self.post("/api/v1/auth/login", None, creds).await;
        tokens["access_token"].as_str().unwrap().to_owned()
    }

    async fn prices(&mut self, token: &str) -> String {
        let (status, table) = self
            .post(
                "/api/v1/tables",
                Some(token),
                json!({"name": "Prices", "rows": [{"item": "tea", "price": "1.50"}, {"item": "cake", "price": "3.25"}]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{table}");
        table["id"].as_str().unwrap().to_owned()
    }

    /// The server still answers: a later request on the same table succeeds.
    async fn still_serves(&mut self, token: &str, table: &str, what: &str) {
        self.assert_alive(what);
        let (status, body) = self
            .post(
                &format!("/api/v1/tables/{table}/changes"),
                Some(token),
                json!({"ops": [{"op": "add_column", "name": format!("after {}", what.len()), "formula": "price * 2"}]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "a change after {what}: {body}");
    }
}

fn nested(depth: usize, inner: &str) -> String {
    format!("{}{inner}{}", "(".repeat(depth), ")".repeat(depth))
}

fn plus_ones(n: usize) -> String {
    format!("price{}", "+1".repeat(n))
}

#[tokio::test]
async fn ten_thousand_nested_parentheses_or_a_hundred_thousand_additions_are_refused_and_the_server_stays_up()
 {
    let mut server = Served::start(&[]).await;
    let token = server.user().await;
    let table = server.prices(&token).await;
    let path = format!("/api/v1/tables/{table}/changes");
    for (what, formula) in [
        ("10,000 nested parentheses", nested(10_000, "price")),
        ("price +1 100,000 times", plus_ones(100_000)),
    ] {
        let (status, body) = server
            .post(
                &path,
                Some(&token),
                // With a type, as the old code required: the same request crashed it.
                json!({"ops": [{"op": "add_column", "name": "x", "type": "decimal", "formula": formula}]}),
            )
            .await;
        assert_problem(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "formula-too-long",
        );
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("tables.max_formula_chars"),
            "{body}"
        );
        server.still_serves(&token, &table, what).await;
    }
    // With the limits opened far past those shapes, they are computed, not crashed on.
    drop(server);
    let mut server = Served::start(&[
        ("SHEETGPT_TABLES__MAX_FORMULA_CHARS", "1000000"),
        ("SHEETGPT_TABLES__MAX_FORMULA_DEPTH", "1000000"),
    ])
    .await;
    let token = server.user().await;
    let table = server.prices(&token).await;
    let path = format!("/api/v1/tables/{table}/changes");
    for (what, formula, tea) in [
        ("10,000 nested parentheses", nested(10_000, "price"), "1.5"),
        ("price +1 100,000 times", plus_ones(100_000), "100001.5"),
    ] {
        let (status, body) = server
            .post(
                &path,
                Some(&token),
                // With a type, as the old code required: the same request crashed it.
                json!({"ops": [{"op": "add_column", "name": "x", "type": "decimal", "formula": formula}]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{what}: {body}");
        let (_, rows) = server
            .get(&format!("/api/v1/tables/{table}/rows"), Some(&token))
            .await;
        let cells = rows["rows"][0]["cells"].as_array().unwrap();
        assert_eq!(cells.last(), Some(&json!(tea)), "{what}");
        let (status, _) = server
            .post(
                &path,
                Some(&token),
                json!({"ops": [{"op": "drop_column", "column": "x"}]}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        server.still_serves(&token, &table, what).await;
    }
}

#[tokio::test]
async fn deep_and_long_formulas_sent_to_the_offline_model_are_refused_and_the_server_stays_up() {
    // A 200,000-character command is longer than the default message limit, and than the
    // built-in offline model's context window (which would give it only the message's end):
    // an offline model with a larger window reads all of it.
    let mut server = Served::start(&[
        ("SHEETGPT_CHAT__MAX_MESSAGE_CHARS", "300000"),
        ("SHEETGPT_MODELS__LOCAL__PROVIDER", "offline"),
        ("SHEETGPT_MODELS__LOCAL__CONTEXT_WINDOW", "1000000"),
        ("SHEETGPT_DEFAULT_MODEL", "local"),
    ])
    .await;
    let token = server.user().await;
    let (_, conversation) = server
        .post("/api/v1/conversations", Some(&token), json!({}))
        .await;
    let messages = format!(
        "/api/v1/conversations/{}/messages",
        conversation["id"].as_str().unwrap()
    );
    let (status, reply) = server
        .post(
            &messages,
            Some(&token),
            json!({"content": "item,price\ntea,1.50\ncake,3.25\n"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let table = reply["message"]["table_id"].as_str().unwrap().to_owned();
    for (what, formula) in [
        ("10,000 nested parentheses", nested(10_000, "price")),
        ("price +1 100,000 times", plus_ones(100_000)),
    ] {
        let (status, reply) = server
            .post(
                &messages,
                Some(&token),
                json!({"content": format!("add column x = {formula}")}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{what}");
        let error = reply["message"]["meta"]["ops_error"].as_str().unwrap_or("");
        assert!(
            error.contains("tables.max_formula_chars"),
            "{what}: {error}"
        );
        assert!(reply["tables"].as_array().unwrap().is_empty(), "{what}");
        server.assert_alive(what);
        let (status, reply) = server
            .post(
                &messages,
                Some(&token),
                json!({"content": format!("add column y{} = price * 2", what.len())}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(reply["tables"][0]["kind"], "changed", "{reply}");
        assert_eq!(reply["message"]["table_id"], json!(table), "{reply}");
    }
}

async fn prices(app: &TestApp, token: &str) -> String {
    let (status, table) = app
        .post(
            "/api/v1/tables",
            Some(token),
            json!({"name": "Prices", "rows": [{"item": "tea", "price": "1.50"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{table}");
    table["id"].as_str().unwrap().to_owned()
}

async fn add(app: &TestApp, token: &str, table: &str, op: Value) -> (StatusCode, Value) {
    app.post(
        &format!("/api/v1/tables/{table}/changes"),
        Some(token),
        json!({ "ops": [op] }),
    )
    .await
}

#[tokio::test]
async fn a_formula_at_the_length_limit_is_computed_and_one_character_more_is_refused() {
    let app = TestApp::spawn().await;
    let token = app.user("long@example.com").await;
    let table = prices(&app, &token).await;
    // The default limit: Excel's 8,192 characters.
    let at = format!("{} ", plus_ones(4093));
    assert_eq!(at.chars().count(), 8192);
    let (status, body) = add(
        &app,
        &token,
        &table,
        json!({"op": "add_column", "name": "at", "formula": at}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = add(
        &app,
        &token,
        &table,
        json!({"op": "add_column", "name": "past", "formula": format!("{at}+")}),
    )
    .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "formula-too-long",
    );
    assert_eq!(
        body["detail"],
        "The formula for `past` has 8193 characters; at most 8192 are allowed (tables.max_formula_chars)."
    );
    let (_, rows) = app
        .get(&format!("/api/v1/tables/{table}/rows"), Some(&token))
        .await;
    assert_eq!(rows["rows"][0]["cells"], json!(["tea", "1.5", "4094.5"]));
}

#[tokio::test]
async fn parentheses_nested_to_the_depth_limit_are_computed_and_one_more_is_refused() {
    let app = TestApp::spawn_with(|c| c.tables.max_formula_depth = 10).await;
    let token = app.user("deep@example.com").await;
    let table = prices(&app, &token).await;
    let (status, body) = add(
        &app,
        &token,
        &table,
        json!({"op": "add_column", "name": "at", "formula": nested(10, "price + 1")}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = add(
        &app,
        &token,
        &table,
        json!({"op": "add_column", "name": "past", "formula": nested(11, "price + 1")}),
    )
    .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "formula-too-deep",
    );
    assert_eq!(
        body["detail"],
        "The formula for `past` nests parentheses more than 10 deep (tables.max_formula_depth)."
    );
    // The default is Excel's 64 levels.
    let app = TestApp::spawn().await;
    let token = app.user("deep@example.com").await;
    let table = prices(&app, &token).await;
    for (depth, want) in [
        (64, StatusCode::CREATED),
        (65, StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let (status, body) = add(
            &app,
            &token,
            &table,
            json!({"op": "add_column", "name": format!("d{depth}"), "formula": nested(depth, "price")}),
        )
        .await;
        assert_eq!(status, want, "{depth}: {body}");
    }
}

/// Revenue in dollars, passengers, growth in percent: the two examples.
async fn airports(app: &TestApp, token: &str) -> String {
    let (status, table) = app
        .post(
            "/api/v1/tables",
            Some(token),
            json!({"name": "Airports", "rows": [
                {"code": "CDG", "Revenue": "$1,234,567.89", "Passengers 2023": 43123, "Growth": "38%"},
                {"code": "LHR", "Revenue": "$2,000,000.00", "Passengers 2023": 80000, "Growth": "-5%"}
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{table}");
    let types: Vec<&str> = table["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["text", "currency", "integer", "percent"]);
    table["id"].as_str().unwrap().to_owned()
}

async fn download(app: &TestApp, token: &str, table: &str, format: &str) -> Vec<u8> {
    let resp = app
        .client
        .get(app.url(&format!("/api/v1/tables/{table}/download?format={format}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.bytes().await.unwrap().to_vec()
}

#[tokio::test]
async fn computed_columns_follow_their_operands_types_and_show_the_same_rounded_value_everywhere() {
    let app = TestApp::spawn().await;
    let token = app.user("types@example.com").await;
    let table = airports(&app, &token).await;
    let (status, body) = app
        .post(
            &format!("/api/v1/tables/{table}/changes"),
            Some(&token),
            json!({"ops": [
                {"op": "add_column", "name": "Revenue per passenger", "formula": "Revenue / Passengers 2023"},
                {"op": "add_column", "name": "Passengers 2022", "formula": "Passengers 2023 / (1 + Growth)"}
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, loaded) = app
        .get(&format!("/api/v1/tables/{table}"), Some(&token))
        .await;
    let types: Vec<&str> = loaded["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types[4..], ["currency", "decimal"], "{loaded}");

    // The grid.
    let (_, rows) = app
        .get(&format!("/api/v1/tables/{table}/rows"), Some(&token))
        .await;
    let cdg = &rows["rows"][0]["cells"];
    assert_eq!(cdg[4], json!({"amount": "28.63", "currency": "USD"}));
    assert_eq!(cdg[5], json!("31248.5507246377"), "38 % counts as 0.38");
    let lhr = &rows["rows"][1]["cells"];
    assert_eq!(lhr[4], json!({"amount": "25.00", "currency": "USD"}));
    assert_eq!(lhr[5], json!("84210.5263157895"));

    // CSV.
    let csv = download(&app, &token, &table, "csv").await;
    let mut reader = csv::Reader::from_reader(csv.as_slice());
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(&records[0][4], "28.63 USD");
    assert_eq!(&records[0][5], "31248.5507246377");

    // JSON.
    let json: Value =
        serde_json::from_slice(&download(&app, &token, &table, "json").await).unwrap();
    assert_eq!(
        json[0]["Revenue per passenger"],
        json!({"amount": "28.63", "currency": "USD"})
    );
    assert_eq!(json[0]["Passengers 2022"], json!("31248.5507246377"));

    // XLSX: the same numbers, the amount in its currency's format.
    let bytes = download(&app, &token, &table, "xlsx").await;
    let mut book: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
    let sheet = book.worksheet_range("Data").unwrap();
    assert_eq!(sheet.get_value((1, 4)), Some(&Data::Float(28.63)));
    assert_eq!(
        sheet.get_value((1, 5)),
        Some(&Data::Float(31248.5507246377))
    );
    assert_eq!(sheet.get_value((2, 4)), Some(&Data::Float(25.0)));
}

#[tokio::test]
async fn a_formula_over_two_currencies_is_refused_naming_the_row() {
    let app = TestApp::spawn().await;
    let token = app.user("fx@example.com").await;
    let (_, table) = app
        .post(
            "/api/v1/tables",
            Some(&token),
            json!({"name": "Margins", "rows": [
                {"item": "tea", "price": "$2.00", "cost": "$1.20"},
                {"item": "cake", "price": "$3.00", "cost": "€1.50"}
            ]}),
        )
        .await;
    let table = table["id"].as_str().unwrap();
    let (status, body) = add(
        &app,
        &token,
        table,
        json!({"op": "add_column", "name": "margin", "formula": "price - cost"}),
    )
    .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
    assert_eq!(
        body["errors"],
        json!([{"field": "rows[2].margin", "message": "`USD` and `EUR` are different currencies"}])
    );
    let (_, loaded) = app
        .get(&format!("/api/v1/tables/{table}"), Some(&token))
        .await;
    assert_eq!(loaded["version"], 1, "nothing was changed");
}
