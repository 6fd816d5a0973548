//! `TestApp::spawn()`: one server per test, on port 0, with its own database and data dir.

use std::net::SocketAddr;

use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::{Value, json};
use sheetgpt::{Application, Config};
use tokio::sync::oneshot;

pub const JWT_SECRET: &str = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub state: sheetgpt::state::AppState,
    _data_dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
}

/// A database URL no other test uses: a SQLite file in `dir`, or a new PostgreSQL database
/// on the server named by `TEST_DATABASE_URL`.
pub async fn fresh_database_url(dir: &std::path::Path) -> Option<String> {
    let base = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.is_empty())?;
    let name = format!("sgt_{}", uuid::Uuid::new_v4().simple());
    let admin = sea_orm::Database::connect(base.as_str())
        .await
        .expect("TEST_DATABASE_URL must name a reachable PostgreSQL server");
    sea_orm::ConnectionTrait::execute_unprepared(&admin, &format!("CREATE DATABASE \"{name}\""))
        .await
        .expect("create test database");
    admin.close().await.ok();
    let _ = dir;
    let (prefix, _) = base.rsplit_once('/').expect("database URL with a path");
    Some(format!("{prefix}/{name}"))
}

/// A temporary directory only its owner may enter, as a data directory should be (the server
/// warns about one others can read).
pub fn private_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
        .expect("chmod 700");
    dir
}

pub fn base_config(dir: &std::path::Path) -> Config {
    let mut config = Config::default();
    config.listen = "127.0.0.1:0".parse().expect("addr");
    config.data_dir = dir.to_path_buf();
    config.jwt_secret = Some(SecretString::from(JWT_SECRET));
    config.log_level = "warn".into();
    // Cheaper hashing keeps the suite fast; the code path is the same as in production.
    config.auth.argon2_memory_kib = 8192;
    config.auth.argon2_iterations = 1;
    config.database.max_connections = 5;
    config
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(customize: impl FnOnce(&mut Config)) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let data_dir = private_tempdir();
        let mut config = base_config(data_dir.path());
        config.database_url = fresh_database_url(data_dir.path()).await;
        customize(&mut config);
        Self::start(config, data_dir).await
    }

    pub async fn start(config: Config, data_dir: tempfile::TempDir) -> Self {
        sheetgpt::telemetry::init_logging(&config);
        let app = Application::build(config.clone())
            .await
            .expect("app builds");
        let addr = app.local_addr().expect("addr");
        let state = app.state().clone();
        let (tx, rx) = oneshot::channel();
        tokio::spawn(app.run_until(async {
            let _ = rx.await;
        }));
        Self {
            addr,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            state,
            _data_dir: data_dir,
            shutdown: Some(tx),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut req = self.client.request(method, self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("body");
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, headers, value)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let (s, _, v) = self.request(Method::GET, path, token, None).await;
        (s, v)
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        let (s, _, v) = self.request(Method::POST, path, token, Some(body)).await;
        (s, v)
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let (s, _, v) = self.request(Method::DELETE, path, token, None).await;
        (s, v)
    }

    pub async fn register(&self, email: &str) -> Value {
        let (status, body) = self
            .post(
                "/api/v1/auth/register",
                None,
                json!({"email": email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "register: {body}");
        body
    }

    /// Logs in and returns (access token, refresh token).
    pub async fn login(&self, email: &str, password: &str) -> (String, String) {
        let (status, body) = self
            .post(
                "/api/v1/auth/login",
                None,
                json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "login: {body}");
        (
            body["access_token"].as_str().expect("access").to_owned(),
            body["refresh_token"].as_str().expect("refresh").to_owned(),
        )
    }

    /// Registers and logs in a new user; returns the access token.
    pub async fn user(&self, email: &str) -> String {
        self.register(email).await;
        self.login(email, PASSWORD).await.0
    }
}

impl TestApp {
    /// Another instance on this one's database (its own data dir and port), configured from
    /// the base configuration by `customize`: what a second server behind a balancer is.
    pub async fn sibling(&self, customize: impl FnOnce(&mut Config)) -> TestApp {
        let dir = private_tempdir();
        let mut config = base_config(dir.path());
        config.database_url = Some(self.state.config.effective_database_url());
        customize(&mut config);
        Self::start(config, dir).await
    }

    /// Starts the server's stop (as SIGTERM does), without waiting for it.
    /// The Prometheus text of `/metrics`.
    pub async fn metrics_text(&self) -> String {
        self.client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub trait IntoPair {
    fn into_pair(self) -> (StatusCode, Value);
}

impl IntoPair for (StatusCode, reqwest::header::HeaderMap, Value) {
    fn into_pair(self) -> (StatusCode, Value) {
        (self.0, self.2)
    }
}

/// Asserts a problem+json answer with the given status and code.
pub fn assert_problem(status: StatusCode, body: &Value, want_status: StatusCode, want_code: &str) {
    assert_eq!(status, want_status, "unexpected status; body: {body}");
    assert_eq!(body["status"], want_status.as_u16(), "body: {body}");
    assert_eq!(body["code"], want_code, "body: {body}");
    assert_eq!(
        body["type"],
        format!("/problems/{want_code}"),
        "body: {body}"
    );
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "body: {body}"
    );
}

/// The value a response sets for cookie `name` (`Set-Cookie: name=value; …`), if any.
pub fn set_cookie_value(headers: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|pair| pair.split_once('='))
        .find(|(n, _)| n.trim() == name)
        .map(|(_, v)| v.trim().to_owned())
}

/// Polls `/jobs/{id}` until the job's status is one of `want` (at most a minute); returns it.
pub async fn wait_job(app: &TestApp, token: &str, id: &str, want: &[&str]) -> Value {
    for _ in 0..1200 {
        let (status, job) = app.get(&format!("/api/v1/jobs/{id}"), Some(token)).await;
        assert_eq!(status, StatusCode::OK, "{job}");
        if want.contains(&job["status"].as_str().unwrap()) {
            return job;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("job {id} never reached {want:?}");
}
