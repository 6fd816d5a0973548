//! The `sheetgpt` binary as a user runs it.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{PASSWORD, TestApp, base_config, fresh_database_url};

struct Env {
    dir: tempfile::TempDir,
    database_url: Option<String>,
}

impl Env {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database_url = fresh_database_url(dir.path()).await;
        Self { dir, database_url }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sheetgpt"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("SHEETGPT_DATA_DIR", self.dir.path().join("data"))
            .env("SHEETGPT_LOG_LEVEL", "warn")
            .env("SHEETGPT_AUTH__ARGON2_MEMORY_KIB", "8192")
            .env("SHEETGPT_AUTH__ARGON2_ITERATIONS", "1");
        if let Some(url) = &self.database_url {
            cmd.env("SHEETGPT_DATABASE_URL", url);
        }
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// A test server over the same database the commands use.
    async fn app(self) -> TestApp {
        self.app_with(|_| {}).await
    }

    async fn app_with(self, customize: impl FnOnce(&mut sheetgpt::Config)) -> TestApp {
        let mut config = base_config(&self.dir.path().join("data"));
        config.database_url = self.database_url.clone();
        config.jwt_secret = None; // the commands generated one into the data dir
        customize(&mut config);
        TestApp::start(config, self.dir).await
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn migrate_can_run_any_number_of_times() {
    let env = Env::new().await;
    for _ in 0..2 {
        let out = env.run(&["migrate"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).contains("up to date"));
    }
}

#[tokio::test]
async fn help_names_every_command() {
    let env = Env::new().await;
    let out = env.run(&["--help"]);
    assert!(out.status.success());
    let text = stdout(&out);
    for cmd in ["serve", "migrate", "user", "purge", "convert", "--config"] {
        assert!(text.contains(cmd), "--help lacks {cmd}:\n{text}");
    }
    let text = stdout(&env.run(&["user", "--help"]));
    for cmd in ["create", "list", "set-role", "disable", "enable"] {
        assert!(text.contains(cmd), "user --help lacks {cmd}:\n{text}");
    }
}

#[tokio::test]
async fn the_first_admin_is_created_on_the_command_line_and_can_sign_in() {
    let env = Env::new().await;
    let out = env.run_with_stdin(
        &[
            "user",
            "create",
            "--email",
            "Root@Example.com",
            "--admin",
            "--password-stdin",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("created admin root@example.com"));
    let list = env.run(&["user", "list"]);
    assert!(
        stdout(&list)
            .lines()
            .any(|l| l.contains("root@example.com") && l.contains("admin"))
    );
    let again = env.run_with_stdin(
        &[
            "user",
            "create",
            "--email",
            "root@example.com",
            "--password-stdin",
        ],
        PASSWORD,
    );
    assert!(!again.status.success());
    assert!(stderr(&again).contains("already exists"));

    let app = env.app().await;
    let (token, _) = app.login("root@example.com", PASSWORD).await;
    let (_, me) = app.get("/api/v1/auth/me", Some(&token)).await;
    assert_eq!(me["role"], "admin");
}

#[tokio::test]
async fn a_generated_password_is_printed_once_and_works() {
    let env = Env::new().await;
    let out = env.run(&["user", "create", "--email", "gen@example.com"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let password = text
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .unwrap()
        .to_owned();
    let app = env.app().await;
    app.login("gen@example.com", &password).await;
}

#[tokio::test]
async fn set_role_and_disable_take_effect() {
    let env = Env::new().await;
    let out = env.run_with_stdin(
        &[
            "user",
            "create",
            "--email",
            "ops@example.com",
            "--password-stdin",
        ],
        PASSWORD,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env.run(&["user", "set-role", "ops@example.com", "admin"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env.run(&["user", "set-role", "ops@example.com", "superuser"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("unknown role"));
    let out = env.run(&["user", "disable", "nobody@example.com"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no user"));
    let out = env.run(&["user", "disable", "ops@example.com"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&env.run(&["user", "list"]))
            .lines()
            .any(|l| l.contains("ops@example.com") && l.contains("disabled"))
    );

    let enable = env.command(&["user", "enable", "ops@example.com"]);
    let app = env.app().await;
    let (status, body) = app
        .post(
            "/api/v1/auth/login",
            None,
            serde_json::json!({"email": "ops@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let mut enable = enable;
    assert!(enable.output().unwrap().status.success());
    let (token, _) = app.login("ops@example.com", PASSWORD).await;
    let (_, me) = app.get("/api/v1/auth/me", Some(&token)).await;
    assert_eq!(me["role"], "admin");
}

#[tokio::test]
async fn invalid_configuration_stops_start_up_naming_the_key() {
    let env = Env::new().await;
    let out = env
        .command(&["migrate"])
        .env("SHEETGPT_LISTEN", "not-an-address")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("listen"), "{}", stderr(&out));

    let out = env
        .command(&["migrate"])
        .env("SHEETGPT_DATABASE_URL", "mysql://localhost/x")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("database_url"), "{}", stderr(&out));

    std::fs::write(
        env.dir.path().join("bad.toml"),
        "[http]\nbody_limit_byte = 5\n",
    )
    .unwrap();
    let out = env.run(&["--config", "bad.toml", "migrate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("body_limit_byte"), "{}", stderr(&out));

    let out = env.run(&["--config", "missing.toml", "migrate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("missing.toml"), "{}", stderr(&out));
}

#[tokio::test]
async fn a_config_file_is_read_and_the_environment_overrides_it() {
    let env = Env::new().await;
    std::fs::write(
        env.dir.path().join("sheetgpt.toml"),
        "listen = \"127.0.0.1:1\"\n[http]\nbody_limit_bytes = 1\n",
    )
    .unwrap();
    // The file's too-small body limit is reported; the environment fixes it.
    let out = env.run(&["migrate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("http.body_limit_bytes"),
        "{}",
        stderr(&out)
    );
    let out = env
        .command(&["migrate"])
        .env("SHEETGPT_HTTP__BODY_LIMIT_BYTES", "65536")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[tokio::test]
async fn serve_logs_json_with_request_ids_and_no_secrets_and_stops_on_sigterm() {
    let env = Env::new().await;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = env
        .command(&[])
        .env("SHEETGPT_LISTEN", format!("127.0.0.1:{port}"))
        .env("SHEETGPT_LOG_FORMAT", "json")
        .env("SHEETGPT_LOG_LEVEL", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(resp) = client.get(format!("{base}/readyz")).send().await
            && resp.status() == StatusCode::OK
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "server never became ready");
    assert!(
        env.dir.path().join("data/jwt_secret").exists(),
        "a signing secret was generated"
    );

    let creds = serde_json::json!({"email": "logs@example.com", "password": PASSWORD});
    let resp = client
        .post(format!("{base}/api/v1/auth/register"))
        .json(&creds)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let tokens: serde_json::Value = client
        .post(format!("{base}/api/v1/auth/login"))
        .header("x-request-id", "req-abc-123")
        .json(&creds)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    client
        .get(format!("{base}/api/v1/auth/me"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut exited = None;
    for _ in 0..100 {
        if let Some(s) = child.try_wait().unwrap() {
            exited = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let exited = exited.unwrap_or_else(|| {
        child.kill().ok();
        panic!("server did not stop after SIGTERM")
    });
    assert!(exited.success(), "exit status {exited:?}");

    let output = child.wait_with_output().unwrap();
    let logs = format!("{}{}", stdout(&output), stderr(&output));
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["span"]["request_id"] == "req-abc-123"),
        "the login's request id is in its log lines"
    );
    assert!(lines.iter().any(|l| l["message"] == "signed in"));
    for secret in [PASSWORD, access.as_str(), refresh.as_str()] {
        assert!(!logs.contains(secret), "a secret reached the logs");
    }
}

#[tokio::test]
async fn convert_turns_csv_and_markdown_into_xlsx_and_json() {
    use calamine::{Data, Reader};
    let env = Env::new().await;
    let dir = env.dir.path();
    std::fs::write(
        dir.join("in.csv"),
        "city,population,founded\nParis,\"2,102,650\",2024-01-31\nLyon,522250,\n",
    )
    .unwrap();
    let out = env.run(&["convert", "in.csv", "out.xlsx"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("2 rows × 3 columns"));
    let mut book = calamine::open_workbook_auto(dir.join("out.xlsx")).unwrap();
    let sheet = book.worksheet_range_at(0).unwrap().unwrap();
    let rows: Vec<Vec<Data>> = sheet.rows().map(<[Data]>::to_vec).collect();
    assert_eq!(rows[1][1], Data::Float(2_102_650.0));
    assert!(matches!(rows[1][2], Data::DateTime(_)));
    assert_eq!(rows[2][2], Data::Empty);

    std::fs::write(
        dir.join("reply.md"),
        "Here:\n\n| a | b |\n|---|---|\n| 1 | x |\n\nBye",
    )
    .unwrap();
    let out = env.run(&["convert", "reply.md", "out.json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("out.json")).unwrap()).unwrap();
    assert_eq!(json, serde_json::json!([{"a": 1, "b": "x"}]));

    let out = env.run(&["convert", "missing.csv", "out.json"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("missing.csv"));
    let out = env.run(&["convert", "in.csv", "out.pdf"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains(".pdf"));
}

#[tokio::test]
async fn convert_applies_a_template_file() {
    use calamine::{Data, Reader};
    let env = Env::new().await;
    let dir = env.dir.path();
    std::fs::write(
        dir.join("in.csv"),
        "city,population\nParis,2102650\nLyon,522250\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("template.json"),
        r#"{"columns": [{"source": "population", "header": "People", "total": "sum"},
                       {"source": "city", "header": "Town"}],
            "layout": {"sheet_name": "Report", "title_rows": ["Cities"]}}"#,
    )
    .unwrap();
    let out = env.run(&[
        "convert",
        "in.csv",
        "out.xlsx",
        "--template",
        "template.json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut book = calamine::open_workbook_auto(dir.join("out.xlsx")).unwrap();
    assert_eq!(book.sheet_names()[0], "Report");
    let range = book.worksheet_range("Report").unwrap();
    assert_eq!(
        range.get_value((0, 0)),
        Some(&Data::String("Cities".into()))
    );
    assert_eq!(
        range.get_value((2, 0)),
        Some(&Data::String("People".into()))
    );
    assert_eq!(range.get_value((3, 0)), Some(&Data::Float(2_102_650.0)));
    assert_eq!(range.get_value((3, 1)), Some(&Data::String("Paris".into())));
    let formulas = book.worksheet_formula("Report").unwrap();
    assert!(formulas.get_value((5, 0)).unwrap().contains("SUBTOTAL(109"));

    std::fs::write(
        dir.join("bad.json"),
        r#"{"columns": [{"source": "revenue"}]}"#,
    )
    .unwrap();
    let out = env.run(&["convert", "in.csv", "bad.xlsx", "--template", "bad.json"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("revenue"), "{}", stderr(&out));
    assert!(!dir.join("bad.xlsx").exists(), "no file is left behind");
    std::fs::write(
        dir.join("worse.json"),
        r#"{"layout": {"sheet_name": "a:b"}}"#,
    )
    .unwrap();
    let out = env.run(&["convert", "in.csv", "bad.xlsx", "--template", "worse.json"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("sheet"), "{}", stderr(&out));
}

#[tokio::test]
async fn quotas_usage_and_the_audit_log_on_the_command_line() {
    let env = Env::new().await;
    let out = env.run_with_stdin(
        &[
            "user",
            "create",
            "--email",
            "q@example.com",
            "--password-stdin",
        ],
        PASSWORD,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env.run(&["user", "quota", "q@example.com", "--exports-per-day", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env.run(&["user", "usage", "q@example.com"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.contains("exports per day"))
        .unwrap();
    assert!(line.contains('3') && line.contains("(override)"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("tokens per day") && l.contains("no limit"))
    );
    let out = env.run(&[
        "user",
        "quota",
        "q@example.com",
        "--exports-per-day",
        "default",
    ]);
    assert!(out.status.success());
    let out = env.run(&["user", "usage", "q@example.com"]);
    assert!(!stdout(&out).contains("(override)"), "{}", stdout(&out));
    let out = env.run(&[
        "user",
        "quota",
        "q@example.com",
        "--exports-per-day",
        "lots",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("lots"));
    env.run(&["user", "disable", "q@example.com"]);
    let out = env.run(&["user", "audit", "--action", "admin."]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("admin.quotas_changed"))
            .count(),
        2,
        "{text}"
    );
    assert!(
        text.lines().next().unwrap().contains("admin.user_disabled"),
        "newest first: {text}"
    );
}

/// Issue 13: `sheetgpt user disable` left the user's sessions and keys alive, to work again
/// once the user was enabled. It revokes them, like the admin API.
#[tokio::test]
async fn disable_on_the_command_line_revokes_sessions_and_api_keys() {
    let env = Env::new().await;
    let out = env.run_with_stdin(
        &[
            "user",
            "create",
            "--email",
            "cut@example.com",
            "--password-stdin",
        ],
        PASSWORD,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let disable = env.command(&["user", "disable", "cut@example.com"]);
    let enable = env.command(&["user", "enable", "cut@example.com"]);
    // No session cache: the commands change the database behind the server's back.
    let app = env.app_with(|c| c.auth.session_cache_secs = 0).await;
    let (access, refresh) = app.login("cut@example.com", PASSWORD).await;
    let (status, key) = app
        .post(
            "/api/v1/api-keys",
            Some(&access),
            serde_json::json!({"name": "cron", "scope": "read"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let api_key = key["key"].as_str().unwrap().to_owned();
    for mut command in [disable, enable] {
        let out = command.output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        if stdout(&out).contains("disabled") {
            assert!(stdout(&out).contains("1 session"), "{}", stdout(&out));
        }
    }
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&access)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&api_key)).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = app
        .post(
            "/api/v1/auth/refresh",
            None,
            serde_json::json!({"refresh_token": refresh}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.login("cut@example.com", PASSWORD).await;
}

/// Issue 13: in a data directory that already existed, the SQLite file was created 0644
/// (the umask's choice), readable by every local user. It is created 0600, and a data
/// directory others can enter is warned about.
#[tokio::test]
async fn the_database_file_is_private_even_in_an_existing_open_data_directory() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env {
        dir: tempfile::tempdir().unwrap(),
        database_url: None,
    };
    let data = env.dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = env.run(&["migrate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for name in ["sheetgpt.db", "sheetgpt.db-wal", "sheetgpt.db-shm"] {
        let Ok(meta) = std::fs::metadata(data.join(name)) else {
            assert_ne!(name, "sheetgpt.db", "the database exists");
            continue;
        };
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{name}");
    }
    // Logs go to standard output.
    let logs = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        logs.contains("data directory") && logs.contains("chmod 700"),
        "a warning about the open directory: {logs}"
    );
    // Left as it was: the directory is the operator's.
    let mode = std::fs::metadata(&data).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
}

#[tokio::test]
async fn convert_reads_a_file_as_an_upload_does() {
    // The old convert trimmed cells and sniffed apart from uploads; now one reader does both.
    let env = Env::new().await;
    let dir = env.dir.path();
    std::fs::write(
        dir.join("codes.csv"),
        "id,codes,note\nx,\"1;2;3\",\" padded \"\ny,\"4;5;6\",\n,,\n",
    )
    .unwrap();
    let out = env.run(&["convert", "codes.csv", "out.json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("out.json")).unwrap()).unwrap();
    assert_eq!(
        json,
        serde_json::json!([
            {"id": "x", "codes": "1;2;3", "note": " padded "},
            {"id": "y", "codes": "4;5;6", "note": null}
        ])
    );
}

#[tokio::test]
async fn convert_refuses_files_past_the_import_bounds_and_says_why() {
    let env = Env::new().await;
    let dir = env.dir.path();
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    sheet.write_string(0, 0, "name").unwrap();
    sheet.write_number(1_048_575, 16_383, 1.0).unwrap();
    book.save(dir.join("corner.xlsx")).unwrap();
    let out = env.run(&["convert", "corner.xlsx", "out.csv"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("16384 columns"), "{}", stderr(&out));
    assert!(!dir.join("out.csv").exists());

    std::fs::write(dir.join("long.csv"), "a,b\n1,abcdef\n").unwrap();
    let out = env
        .command(&["convert", "long.csv", "out.csv"])
        .env("SHEETGPT_TABLES__MAX_CELL_CHARS", "5")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("line 2, column 2 holds more than 5 characters"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn convert_streams_every_row_in_order_at_the_level_asked() {
    use calamine::{Data, Reader};
    let env = Env::new().await;
    let dir = env.dir.path();
    // Past several batches handed from the reading thread to the writing one.
    let rows = 5_000;
    let mut csv = String::from("id,name,amount\n");
    for i in 0..rows {
        csv.push_str(&format!("{i},name {i},{i}.5\n"));
    }
    std::fs::write(dir.join("big.csv"), csv).unwrap();
    let mut sizes = Vec::new();
    for level in ["1", "9"] {
        let name = format!("out{level}.xlsx");
        let out = env.run(&["convert", "big.csv", &name, "--level", level]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stdout(&out).contains("5000 rows × 3 columns"),
            "{}",
            stdout(&out)
        );
        let mut book = calamine::open_workbook_auto(dir.join(&name)).unwrap();
        let sheet = book.worksheet_range_at(0).unwrap().unwrap();
        let read: Vec<Vec<Data>> = sheet.rows().map(<[Data]>::to_vec).collect();
        assert_eq!(read.len(), rows + 1);
        for (i, row) in read[1..].iter().enumerate() {
            assert_eq!(row[0], Data::Float(i as f64), "row {i} in its place");
            assert_eq!(row[1], Data::String(format!("name {i}")));
        }
        sizes.push(std::fs::metadata(dir.join(&name)).unwrap().len());
    }
    assert!(
        sizes[1] < sizes[0],
        "level 9 is smaller than level 1: {sizes:?}"
    );

    let out = env.run(&["convert", "big.csv", "out.csv"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let written = std::fs::read_to_string(dir.join("out.csv")).unwrap();
    assert_eq!(written.lines().count(), rows + 1);
    assert_eq!(written.lines().last(), Some("4999,name 4999,4999.5"));

    for level in ["0", "10"] {
        let out = env.run(&["convert", "big.csv", "x.xlsx", "--level", level]);
        assert!(!out.status.success());
        assert!(stderr(&out).contains("1..=9"), "{}", stderr(&out));
    }
    let out = env
        .command(&["convert", "big.csv", "x.xlsx"])
        .env("SHEETGPT_EXPORTS__XLSX_COMPRESSION", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("exports.xlsx_compression"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn a_convert_whose_output_cannot_be_written_stops_reading_and_says_why() {
    let env = Env::new().await;
    let dir = env.dir.path();
    let mut csv = String::from("id,text\n");
    for i in 0..50_000 {
        csv.push_str(&format!("{i},some words for row {i}\n"));
    }
    std::fs::write(dir.join("in.csv"), csv).unwrap();
    // Every write fails (ENOSPC): the reading thread must stop too, not wait forever.
    std::os::unix::fs::symlink("/dev/full", dir.join("full.csv")).unwrap();
    let mut child = env
        .command(&["convert", "in.csv", "full.csv"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().ok();
            panic!("convert did not stop after its output failed");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).to_lowercase().contains("no space left"),
        "{}",
        stderr(&out)
    );
    assert!(
        std::fs::symlink_metadata(dir.join("full.csv")).is_err(),
        "nothing is left under the name asked for"
    );
}
