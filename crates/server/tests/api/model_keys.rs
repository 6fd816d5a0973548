//! Users' own keys for configured models: saved encrypted, used only for their owner's
//! requests, never shown again.

use reqwest::{Method, StatusCode};
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::fakes::anthropic::FakeAnthropic;
use crate::fakes::openai::{FakeOpenAi, Options};
use crate::helpers::{TestApp, assert_problem};

/// The key the fake provider wants, which only the user has.
const USER_KEY: &str = "user-key-123";
/// The key the operator configured (the fake refuses it when it wants `USER_KEY`).
const CONFIGURED_KEY: &str = "configured-key-456";

fn model(provider: &str, base_url: &str) -> sheetgpt::config::ModelConfig {
    let mut m: sheetgpt::config::ModelConfig = serde_json::from_value(json!({
        "provider": provider, "base_url": base_url, "model": "fake-model",
        "first_token_timeout_secs": 5, "max_retries": 0
    }))
    .unwrap();
    m.api_key = Some(SecretString::from(CONFIGURED_KEY));
    m
}

async fn app_with(provider: &'static str, base_url: String) -> TestApp {
    TestApp::spawn_with(move |c| {
        c.models.insert("fake".into(), model(provider, &base_url));
        c.default_model = Some("fake".into());
    })
    .await
}

/// An app whose model `fake` is served by an OpenAI fake that wants `key` (any when `None`).
async fn openai_app(key: Option<&str>) -> (FakeOpenAi, TestApp) {
    let fake = FakeOpenAi::start_with(Options {
        api_key: key.map(str::to_owned),
        ..Options::default()
    })
    .await;
    let app = app_with("openai", fake.base_url()).await;
    (fake, app)
}

async fn put_key(app: &TestApp, token: &str, model: &str, key: &str) -> (StatusCode, Value) {
    let (status, _, body) = app
        .request(
            Method::PUT,
            &format!("/api/v1/models/{model}/key"),
            Some(token),
            Some(json!({"api_key": key})),
        )
        .await;
    (status, body)
}

/// Sends a message in a new conversation; the JSON reply or problem.
async fn ask(app: &TestApp, token: &str) -> (StatusCode, Value) {
    let (status, conv) = app
        .post("/api/v1/conversations", Some(token), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{conv}");
    let id = conv["id"].as_str().unwrap();
    app.post(
        &format!("/api/v1/conversations/{id}/messages"),
        Some(token),
        json!({"content": "hello"}),
    )
    .await
}

/// `model`'s `own_key` in `GET /models` for the caller.
async fn own_key(app: &TestApp, token: &str, model: &str) -> bool {
    let (status, body) = app.get("/api/v1/models", Some(token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let entry = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == model)
        .unwrap_or_else(|| panic!("no model {model} in {body}"));
    entry["own_key"].as_bool().unwrap()
}

/// The stored (encrypted key, hint) of every row, deleted ones included.
async fn stored_rows(app: &TestApp) -> Vec<(String, String)> {
    let db = &app.state.db;
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT encrypted_key, key_hint FROM user_model_keys ORDER BY created_at, id",
        ))
        .await
        .unwrap();
    rows.iter()
        .map(|r| {
            (
                r.try_get::<String>("", "encrypted_key").unwrap(),
                r.try_get::<String>("", "key_hint").unwrap(),
            )
        })
        .collect()
}

fn assert_no_key(body: &Value, key: &str) {
    assert!(!body.to_string().contains(key), "the key is in {body}");
}

#[tokio::test]
async fn without_an_own_key_a_provider_that_refuses_the_configured_key_is_a_502() {
    let (fake, app) = openai_app(Some(USER_KEY)).await;
    let token = app.user("bk1@example.com").await;
    let (status, body) = ask(&app, &token).await;
    assert_problem(status, &body, StatusCode::BAD_GATEWAY, "model-unavailable");
    assert_eq!(
        fake.requests()[0].header("authorization"),
        Some(format!("Bearer {CONFIGURED_KEY}").as_str())
    );
    assert_no_key(&body, CONFIGURED_KEY);
}

#[tokio::test]
async fn a_saved_key_is_used_for_the_users_requests_and_never_shown_again() {
    let (fake, app) = openai_app(Some(USER_KEY)).await;
    let token = app.user("bk2@example.com").await;

    let (status, saved) = put_key(&app, &token, "fake", USER_KEY).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved["model"], "fake");
    // Twelve characters are too few to show any of them.
    assert_eq!(saved["key_hint"], "…");
    assert!(saved["updated_at"].is_string());
    assert_eq!(
        saved.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["model", "key_hint", "updated_at"]
    );

    let (status, reply) = ask(&app, &token).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["message"]["content"], "Hello from the fake.");
    let sent = fake.requests();
    assert_eq!(
        sent.last().unwrap().header("authorization"),
        Some(format!("Bearer {USER_KEY}").as_str())
    );

    let (_, models) = app.get("/api/v1/models", Some(&token)).await;
    let (_, conversations) = app.get("/api/v1/conversations", Some(&token)).await;
    let id = conversations["items"][0]["id"].as_str().unwrap();
    let (_, messages) = app
        .get(
            &format!("/api/v1/conversations/{id}/messages"),
            Some(&token),
        )
        .await;
    for body in [&saved, &reply, &models, &conversations, &messages] {
        assert_no_key(body, USER_KEY);
    }
}

#[tokio::test]
async fn the_key_is_stored_encrypted_under_a_generated_private_encryption_key() {
    use std::os::unix::fs::PermissionsExt;

    let (_fake, app) = openai_app(None).await;
    let token = app.user("bk3@example.com").await;
    put_key(&app, &token, "fake", USER_KEY).await;
    let rows = stored_rows(&app).await;
    assert_eq!(rows.len(), 1);
    let (encrypted, hint) = &rows[0];
    assert!(encrypted.starts_with("v1:"), "{encrypted}");
    assert_ne!(encrypted, USER_KEY);
    assert!(!encrypted.contains(USER_KEY));
    assert_eq!(hint, "");

    let key_file = app.state.config.data_dir.join("encryption_key");
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn other_users_keep_the_configured_key() {
    let (fake, app) = openai_app(None).await;
    let alice = app.user("bk4a@example.com").await;
    let bob = app.user("bk4b@example.com").await;
    put_key(&app, &alice, "fake", USER_KEY).await;

    let (status, _) = ask(&app, &bob).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = ask(&app, &alice).await;
    assert_eq!(status, StatusCode::OK);
    let keys: Vec<Option<String>> = fake
        .requests()
        .iter()
        .map(|r| r.header("authorization").map(str::to_owned))
        .collect();
    assert_eq!(
        keys,
        [
            Some(format!("Bearer {CONFIGURED_KEY}")),
            Some(format!("Bearer {USER_KEY}"))
        ]
    );
}

#[tokio::test]
async fn the_model_list_tells_each_caller_whether_they_have_their_own_key() {
    let (_fake, app) = openai_app(None).await;
    let alice = app.user("bk5a@example.com").await;
    let bob = app.user("bk5b@example.com").await;
    assert!(!own_key(&app, &alice, "fake").await);
    put_key(&app, &alice, "fake", USER_KEY).await;
    assert!(own_key(&app, &alice, "fake").await);
    assert!(!own_key(&app, &alice, "offline").await);
    assert!(!own_key(&app, &bob, "fake").await);
}

#[tokio::test]
async fn saving_again_replaces_the_key() {
    let (fake, app) = openai_app(None).await;
    let token = app.user("bk6@example.com").await;
    put_key(&app, &token, "fake", "first-key-0000000000").await;
    let (status, saved) = put_key(&app, &token, "fake", "second-key-000000wxyz").await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved["key_hint"], "…wxyz");
    assert_eq!(stored_rows(&app).await.len(), 1);
    ask(&app, &token).await;
    assert_eq!(
        fake.requests()[0].header("authorization"),
        Some("Bearer second-key-000000wxyz")
    );
}

#[tokio::test]
async fn deleting_the_key_goes_back_to_the_configured_one_and_wipes_it() {
    let (_fake, app) = openai_app(Some(USER_KEY)).await;
    let token = app.user("bk7@example.com").await;
    put_key(&app, &token, "fake", USER_KEY).await;
    assert_eq!(ask(&app, &token).await.0, StatusCode::OK);

    let (status, body) = app.delete("/api/v1/models/fake/key", Some(&token)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert!(!own_key(&app, &token, "fake").await);
    let (status, body) = ask(&app, &token).await;
    assert_problem(status, &body, StatusCode::BAD_GATEWAY, "model-unavailable");
    let rows = stored_rows(&app).await;
    assert_eq!(
        rows,
        [(String::new(), String::new())],
        "nothing of it is kept"
    );

    let (status, body) = app.delete("/api/v1/models/fake/key", Some(&token)).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
    // Saving after deleting works (the deleted row does not block it).
    assert_eq!(
        put_key(&app, &token, "fake", USER_KEY).await.0,
        StatusCode::OK
    );
    assert_eq!(ask(&app, &token).await.0, StatusCode::OK);
}

#[tokio::test]
async fn api_keys_cannot_save_or_delete_model_keys() {
    let (_fake, app) = openai_app(None).await;
    let token = app.user("bk8@example.com").await;
    let (status, created) = app
        .post(
            "/api/v1/api-keys",
            Some(&token),
            json!({"name": "script", "scope": "read_write"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let api_key = created["key"].as_str().unwrap();

    let (status, body) = put_key(&app, api_key, "fake", USER_KEY).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "session-required");
    put_key(&app, &token, "fake", USER_KEY).await;
    let (status, body) = app.delete("/api/v1/models/fake/key", Some(api_key)).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "session-required");
    // Reading the list is fine, and the key is still there.
    assert!(own_key(&app, api_key, "fake").await);
}

#[tokio::test]
async fn unknown_models_are_404_and_the_offline_model_and_bad_keys_are_422() {
    let (_fake, app) = openai_app(None).await;
    let token = app.user("bk9@example.com").await;

    let (status, body) = put_key(&app, &token, "gpt-99", USER_KEY).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
    assert_no_key(&body, USER_KEY);

    let (status, body) = put_key(&app, &token, "offline", USER_KEY).await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
    assert_eq!(body["errors"][0]["field"], "model");
    assert_no_key(&body, USER_KEY);

    let long = "k".repeat(1025);
    let spaced = "sk-with a-space-inside";
    for bad in ["", "   ", long.as_str(), spaced, "sk-ünïcode-key-000"] {
        let (status, body) = put_key(&app, &token, "fake", bad).await;
        assert_problem(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
        );
        assert_eq!(body["errors"][0]["field"], "api_key", "{body}");
        if !bad.trim().is_empty() {
            assert_no_key(&body, bad);
        }
    }
    for body in [json!({}), json!({"api_key": 98_765_432_123_456_u64})] {
        let (status, _, body) = app
            .request(
                Method::PUT,
                "/api/v1/models/fake/key",
                Some(&token),
                Some(body),
            )
            .await;
        assert_problem(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
        );
        assert_eq!(body["errors"][0]["field"], "api_key", "{body}");
        assert_no_key(&body, "98765432123456");
    }
    assert!(stored_rows(&app).await.is_empty());
}

#[tokio::test]
async fn a_user_only_ever_reaches_their_own_key() {
    let (fake, app) = openai_app(Some(USER_KEY)).await;
    let alice = app.user("bk10a@example.com").await;
    let bob = app.user("bk10b@example.com").await;
    put_key(&app, &alice, "fake", USER_KEY).await;

    // Bob addresses "his" key for the model: he has none, and Alice's is untouched.
    let (status, body) = app.delete("/api/v1/models/fake/key", Some(&bob)).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
    assert!(own_key(&app, &alice, "fake").await);
    // Bob saving his own does not replace Alice's.
    put_key(&app, &bob, "fake", "bobs-key-that-is-wrong").await;
    assert_eq!(ask(&app, &alice).await.0, StatusCode::OK);
    let (status, _) = ask(&app, &bob).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let keys: Vec<String> = fake
        .requests()
        .iter()
        .filter_map(|r| r.header("authorization").map(str::to_owned))
        .collect();
    assert_eq!(
        keys,
        [
            format!("Bearer {USER_KEY}"),
            "Bearer bobs-key-that-is-wrong".to_owned()
        ]
    );
}

#[tokio::test]
async fn a_ciphertext_copied_into_another_users_row_does_not_decrypt() {
    let (fake, app) = openai_app(Some(USER_KEY)).await;
    let alice = app.user("bk11a@example.com").await;
    let bob = app.user("bk11b@example.com").await;
    put_key(&app, &alice, "fake", USER_KEY).await;
    put_key(&app, &bob, "fake", "bobs-key-that-is-wrong").await;
    let alices = stored_rows(&app).await[0].0.clone();
    let db = &app.state.db;
    let backend = db.get_database_backend();
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        match backend {
            DatabaseBackend::Postgres => {
                "UPDATE user_model_keys SET encrypted_key = $1 WHERE encrypted_key <> $2"
            }
            _ => "UPDATE user_model_keys SET encrypted_key = ? WHERE encrypted_key <> ?",
        },
        [alices.clone().into(), alices.into()],
    ))
    .await
    .unwrap();

    let (status, body) = ask(&app, &bob).await;
    assert_problem(status, &body, StatusCode::CONFLICT, "own-key-unreadable");
    assert!(fake.requests().is_empty(), "nothing was sent with any key");
    assert_eq!(ask(&app, &alice).await.0, StatusCode::OK);
}

#[tokio::test]
async fn an_anthropic_model_takes_an_own_key_too() {
    let key = "sk-ant-user-0123456789abcd";
    let fake = FakeAnthropic::start_with(Some(key.to_owned())).await;
    let app = app_with("anthropic", fake.base_url()).await;
    let token = app.user("bk12@example.com").await;
    assert_eq!(ask(&app, &token).await.0, StatusCode::BAD_GATEWAY);

    let (status, saved) = put_key(&app, &token, "fake", key).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(saved["key_hint"], "…abcd");
    let (status, reply) = ask(&app, &token).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(
        fake.requests().last().unwrap().header("x-api-key"),
        Some(key)
    );
}

#[tokio::test]
async fn a_bad_encryption_key_stops_start_up_naming_the_key_and_not_quoting_it() {
    let env = [("SHEETGPT_ENCRYPTION_KEY".to_owned(), "0123456789".repeat(6))];
    let err = sheetgpt::Config::load(None, env).unwrap_err().to_string();
    assert!(err.contains("encryption_key"), "{err}");
    assert!(!err.contains("0123456789"), "{err}");

    // 64 digits are hex, kept as a string (not parsed as a number).
    let env = [(
        "SHEETGPT_ENCRYPTION_KEY".to_owned(),
        "0123456789".repeat(7)[..64].to_owned(),
    )];
    let config = sheetgpt::Config::load(None, env).unwrap();
    assert!(config.encryption_key.is_some());
    assert!(!format!("{config:?}").contains("0123456789"));
}

#[tokio::test]
async fn neither_key_reaches_the_logs_even_at_debug_level() {
    use std::process::{Command, Stdio};
    use std::time::Duration;

    use crate::helpers::{PASSWORD, fresh_database_url};

    let fake = FakeOpenAi::start_with(Options {
        api_key: Some(USER_KEY.to_owned()),
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        dir.path().join("sheetgpt.toml"),
        format!(
            "default_model = \"fake\"\n[models.fake]\nprovider = \"openai\"\n\
             base_url = \"{}\"\nmodel = \"fake-model\"\napi_key_env = \"FAKE_KEY\"\n\
             max_retries = 0\n",
            fake.base_url()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sheetgpt"));
    cmd.current_dir(dir.path())
        .env_clear()
        .env("SHEETGPT_DATA_DIR", dir.path().join("data"))
        .env("SHEETGPT_LISTEN", format!("127.0.0.1:{port}"))
        .env("SHEETGPT_LOG_FORMAT", "json")
        .env("SHEETGPT_LOG_LEVEL", "debug")
        .env("SHEETGPT_AUTH__ARGON2_MEMORY_KIB", "8192")
        .env("SHEETGPT_AUTH__ARGON2_ITERATIONS", "1")
        .env("FAKE_KEY", CONFIGURED_KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(url) = fresh_database_url(dir.path()).await {
        cmd.env("SHEETGPT_DATABASE_URL", url);
    }
    let child = cmd.spawn().unwrap();

    let base = format!("http://127.0.0.1:{port}/api/v1");
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::OK)
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "server never became ready");
    let creds = json!({"email": "bk13@example.com", "password": PASSWORD});
    client
        .post(format!("{base}/auth/register"))
        .json(&creds)
        .send()
        .await
        .unwrap();
    let tokens: Value = client
        .post(format!("{base}/auth/login"))
        .json(&creds)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tokens["access_token"].as_str().unwrap();
    let conv: Value = client
        .post(format!("{base}/conversations"))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let messages = format!(
        "{base}/conversations/{}/messages",
        conv["id"].as_str().unwrap()
    );
    let refused = client
        .post(&messages)
        .bearer_auth(token)
        .json(&json!({"content": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_GATEWAY);
    let saved = client
        .put(format!("{base}/models/fake/key"))
        .bearer_auth(token)
        .json(&json!({"api_key": USER_KEY}))
        .send()
        .await
        .unwrap();
    assert_eq!(saved.status(), StatusCode::OK);
    let answered = client
        .post(&messages)
        .bearer_auth(token)
        .json(&json!({"content": "hi again"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answered.status(), StatusCode::OK);

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
    assert!(
        logs.contains("saved the user's own model key"),
        "the logs were captured: {logs}"
    );
    for secret in [USER_KEY, CONFIGURED_KEY] {
        assert!(!logs.contains(secret), "{secret} reached the logs");
    }
}
