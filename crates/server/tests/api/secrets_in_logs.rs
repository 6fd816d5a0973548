//! No secret reaches the logs: a real `sheetgpt serve` process at debug level, with JSON logs
//! captured, goes through every path that handles one (passwords right and wrong, access and
//! refresh tokens, API keys, the web page's cookies, a password change, Google's OAuth2 code,
//! verifier, client secret and tokens); then the captured logs are searched for each of them.

use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::fakes::google::{CLIENT_ID, CLIENT_SECRET, FakeGoogle};
use crate::helpers::{JWT_SECRET, PASSWORD, fresh_database_url};

const NEW_PASSWORD: &str = "a brand new passphrase 7261";
const WRONG_PASSWORD: &str = "not-the-password-5518";

async fn send(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn secrets_used_by_a_session_never_reach_the_logs_even_at_debug_level() {
    let fake = FakeGoogle::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let origin = format!("http://127.0.0.1:{port}");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sheetgpt"));
    cmd.current_dir(dir.path())
        .env_clear()
        .env("SHEETGPT_DATA_DIR", dir.path().join("data"))
        .env("SHEETGPT_LISTEN", format!("127.0.0.1:{port}"))
        .env("SHEETGPT_JWT_SECRET", JWT_SECRET)
        .env("SHEETGPT_LOG_FORMAT", "json")
        .env("SHEETGPT_LOG_LEVEL", "debug")
        .env("SHEETGPT_AUTH__ARGON2_MEMORY_KIB", "8192")
        .env("SHEETGPT_AUTH__ARGON2_ITERATIONS", "1")
        .env("SHEETGPT_EXPORTS__POLL_MS", "50")
        .env("SHEETGPT_GOOGLE__CLIENT_ID", CLIENT_ID)
        .env("GOOGLE_CLIENT_SECRET", CLIENT_SECRET)
        .env(
            "SHEETGPT_GOOGLE__AUTH_URL",
            format!("{}/o/oauth2/v2/auth", fake.base),
        )
        .env("SHEETGPT_GOOGLE__TOKEN_URL", format!("{}/token", fake.base))
        .env(
            "SHEETGPT_GOOGLE__REVOKE_URL",
            format!("{}/revoke", fake.base),
        )
        .env("SHEETGPT_GOOGLE__SHEETS_API_URL", &fake.base)
        .env("SHEETGPT_GOOGLE__DRIVE_API_URL", &fake.base)
        .env(
            "SHEETGPT_GOOGLE__REDIRECT_URL",
            format!("{origin}/api/v1/integrations/google/callback"),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(url) = fresh_database_url(dir.path()).await {
        cmd.env("SHEETGPT_DATABASE_URL", url);
    }
    let child = cmd.spawn().unwrap();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let api = format!("{origin}/api/v1");
    let mut ready = false;
    for _ in 0..200 {
        if client
            .get(format!("{origin}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "server never became ready");

    let mut secrets: Vec<(&str, String)> = vec![
        ("jwt secret", JWT_SECRET.to_owned()),
        ("password", PASSWORD.to_owned()),
        ("new password", NEW_PASSWORD.to_owned()),
        ("wrong password", WRONG_PASSWORD.to_owned()),
        ("google client secret", CLIENT_SECRET.to_owned()),
    ];
    let email = "logs@example.com";
    let (status, _) = send(
        client
            .post(format!("{api}/auth/register"))
            .json(&json!({"email": email, "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = send(
        client
            .post(format!("{api}/auth/login"))
            .json(&json!({"email": email, "password": WRONG_PASSWORD})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, tokens) = send(
        client
            .post(format!("{api}/auth/login"))
            .json(&json!({"email": email, "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let first_refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    secrets.push((
        "access token",
        tokens["access_token"].as_str().unwrap().into(),
    ));
    secrets.push(("refresh token", first_refresh.clone()));
    let (status, tokens) = send(
        client
            .post(format!("{api}/auth/refresh"))
            .json(&json!({"refresh_token": first_refresh})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    secrets.push(("refreshed access token", token.clone()));
    secrets.push((
        "rotated refresh token",
        tokens["refresh_token"].as_str().unwrap().into(),
    ));
    // The first refresh token again: reuse, which ends the session and is logged.
    let (status, _) = send(
        client
            .post(format!("{api}/auth/refresh"))
            .json(&json!({"refresh_token": first_refresh})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A fresh session, a password change in it, then an API key used for a request.
    let (_, tokens) = send(
        client
            .post(format!("{api}/auth/login"))
            .json(&json!({"email": email, "password": PASSWORD})),
    )
    .await;
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    secrets.push(("third access token", token.clone()));
    secrets.push((
        "third refresh token",
        tokens["refresh_token"].as_str().unwrap().into(),
    ));
    let (status, body) = send(
        client
            .post(format!("{api}/auth/password"))
            .bearer_auth(&token)
            .json(&json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, key) = send(
        client
            .post(format!("{api}/api-keys"))
            .bearer_auth(&token)
            .json(&json!({"name": "script", "scope": "read_write"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let key = key["key"].as_str().unwrap().to_owned();
    secrets.push(("api key", key.clone()));
    let (status, _) = send(client.get(format!("{api}/auth/me")).bearer_auth(&key)).await;
    assert_eq!(status, StatusCode::OK);

    // The web page's sign-in: the refresh cookie and the CSRF token.
    let resp = client
        .post(format!("{api}/auth/web/login"))
        .header("origin", &origin)
        .json(&json!({"email": email, "password": NEW_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut cookies = Vec::new();
    for value in resp.headers().get_all("set-cookie") {
        let pair = value.to_str().unwrap().split(';').next().unwrap();
        let (name, value) = pair.split_once('=').unwrap();
        secrets.push(("web cookie", value.to_owned()));
        cookies.push((name.to_owned(), value.to_owned()));
    }
    let csrf = cookies
        .iter()
        .find(|(n, _)| n == "sheetgpt_csrf")
        .unwrap()
        .1
        .clone();
    let cookie_header = cookies
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let resp = client
        .post(format!("{api}/auth/web/refresh"))
        .header("origin", &origin)
        .header("cookie", cookie_header)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    secrets.push((
        "web access token",
        body["access_token"].as_str().unwrap().into(),
    ));

    // Google: connect (code, verifier, client secret, tokens), then export a table there.
    let resp = client
        .post(format!("{api}/integrations/google/connect"))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let binding = crate::helpers::set_cookie_value(resp.headers(), "sheetgpt_google_connect")
        .expect("the browser binding cookie");
    secrets.push(("google browser binding", binding.clone()));
    let body: Value = resp.json().await.unwrap();
    let consent = client
        .get(body["authorization_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let back = consent.headers()["location"].to_str().unwrap().to_owned();
    let resp = client
        .get(back)
        .header("cookie", format!("sheetgpt_google_connect={binding}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (status, table) = send(
        client
            .post(format!("{api}/tables"))
            .bearer_auth(&token)
            .json(&json!({"name": "T", "rows": [{"a": 1}, {"a": 2}]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{table}");
    let (status, job) = send(
        client
            .post(format!("{api}/exports"))
            .bearer_auth(&token)
            .json(&json!({"table_id": table["id"], "destination": {"type": "google_sheets"}})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let mut finished = false;
    for _ in 0..200 {
        let (_, job) = send(
            client
                .get(format!("{api}/exports/{}", job["id"].as_str().unwrap()))
                .bearer_auth(&token),
        )
        .await;
        if job["status"] == "succeeded" {
            finished = true;
            break;
        }
        assert_ne!(job["status"], "failed", "{job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(finished, "the Google export never finished");
    for call in fake.calls() {
        if let Some(bearer) = call.bearer {
            secrets.push(("google access token", bearer));
        }
        for field in ["code", "code_verifier", "refresh_token"] {
            // The fake's authorization codes are short counters, too common to search for.
            if let Some(value) = call.form.get(field).filter(|v| v.len() >= 8) {
                secrets.push(("google oauth field", value.clone()));
            }
        }
    }
    for issued in fake.issued_refresh_tokens() {
        secrets.push(("google refresh token", issued));
    }

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // The logs were captured and cover what happened.
    for evidence in [
        "/api/v1/auth/login",
        "/api/v1/auth/web/refresh",
        "/api/v1/integrations/google/callback",
        "\"level\":\"DEBUG\"",
    ] {
        assert!(
            logs.contains(evidence),
            "no {evidence:?} in the logs: {logs}"
        );
    }
    assert!(
        secrets.len() >= 20,
        "{} secrets collected: {secrets:?}",
        secrets.len()
    );
    for (what, secret) in &secrets {
        assert!(secret.len() >= 8, "{what} is too short to search for");
        assert!(
            !logs.contains(secret.as_str()),
            "the {what} reached the logs"
        );
    }
}
