use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, assert_problem};

async fn create_key(app: &TestApp, token: &str, name: &str, scope: &str) -> serde_json::Value {
    let (status, body) = app
        .post(
            "/api/v1/api-keys",
            Some(token),
            json!({"name": name, "scope": scope}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body
}

#[tokio::test]
async fn an_api_key_is_shown_once_and_works_as_a_bearer_token() {
    let app = TestApp::spawn().await;
    let token = app.user("uma@example.com").await;
    let created = create_key(&app, &token, "nightly export", "read_write").await;
    let key = created["key"].as_str().unwrap();
    assert!(key.starts_with(created["prefix"].as_str().unwrap()));
    assert!(created["last_used_at"].is_null());

    let (status, me) = app.get("/api/v1/auth/me", Some(key)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["email"], "uma@example.com");

    let (_, list) = app.get("/api/v1/api-keys", Some(&token)).await;
    let listed = &list["items"][0];
    assert_eq!(listed["name"], "nightly export");
    assert!(
        listed.get("key").is_none(),
        "the key is never shown again: {listed}"
    );
    assert!(!list.to_string().contains(key));
    assert!(listed["last_used_at"].is_string(), "use is recorded");
}

#[tokio::test]
async fn a_read_only_key_is_refused_on_writes() {
    let app = TestApp::spawn().await;
    let token = app.user("vic@example.com").await;
    let read = create_key(&app, &token, "dashboard", "read").await;
    let read = read["key"].as_str().unwrap();
    assert_eq!(
        app.get("/api/v1/auth/me", Some(read)).await.0,
        StatusCode::OK
    );
    let (status, body) = app
        .post(
            "/api/v1/api-keys",
            Some(read),
            json!({"name": "x", "scope": "read"}),
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "insufficient-scope");
    let (status, body) = app.post("/api/v1/auth/logout", Some(read), json!({})).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "insufficient-scope");
}

#[tokio::test]
async fn api_keys_cannot_manage_keys_sessions_or_the_password() {
    let app = TestApp::spawn().await;
    let token = app.user("wes@example.com").await;
    let key = create_key(&app, &token, "ci", "read_write").await;
    let key = key["key"].as_str().unwrap();
    let (status, body) = app
        .post(
            "/api/v1/api-keys",
            Some(key),
            json!({"name": "y", "scope": "read"}),
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "session-required");
    let (status, body) = app.get("/api/v1/auth/sessions", Some(key)).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "session-required");
}

#[tokio::test]
async fn a_revoked_key_stops_working_at_once() {
    let app = TestApp::spawn().await;
    let token = app.user("xena@example.com").await;
    let created = create_key(&app, &token, "old", "read").await;
    let id = created["id"].as_str().unwrap();
    let (status, _) = app
        .delete(&format!("/api/v1/api-keys/{id}"), Some(&token))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.get("/api/v1/auth/me", created["key"].as_str()).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "invalid-api-key");
    let (status, _) = app
        .get(&format!("/api/v1/api-keys/{id}"), Some(&token))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = app.get("/api/v1/api-keys", Some(&token)).await;
    assert!(list["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn an_expired_key_no_longer_authenticates() {
    let app = TestApp::spawn().await;
    let token = app.user("yuri@example.com").await;
    let (status, created) = app
        .post(
            "/api/v1/api-keys",
            Some(&token),
            json!({"name": "short-lived", "scope": "read", "expires_in_days": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(created["expires_at"].is_string());
    // Age the key by a day and a bit.
    use sea_orm::{ConnectionTrait, Statement};
    let backend = app.state.db.get_database_backend();
    let past = chrono::Utc::now() - chrono::Duration::hours(1);
    let id = uuid::Uuid::parse_str(created["id"].as_str().unwrap()).unwrap();
    app.state
        .db
        .execute_raw(Statement::from_sql_and_values(
            backend,
            match backend {
                sea_orm::DatabaseBackend::Postgres => {
                    "UPDATE api_keys SET expires_at = $1 WHERE id = $2"
                }
                _ => "UPDATE api_keys SET expires_at = ? WHERE id = ?",
            },
            [past.into(), id.into()],
        ))
        .await
        .unwrap();
    let (status, body) = app.get("/api/v1/auth/me", created["key"].as_str()).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "invalid-api-key");
}

#[tokio::test]
async fn another_users_key_is_not_found_for_get_or_delete() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let created = create_key(&app, &alice, "alice's", "read").await;
    let id = created["id"].as_str().unwrap();
    let (status, body) = app.get(&format!("/api/v1/api-keys/{id}"), Some(&bob)).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
    let (status, _) = app
        .delete(&format!("/api/v1/api-keys/{id}"), Some(&bob))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = app.get("/api/v1/api-keys", Some(&bob)).await;
    assert!(list["items"].as_array().unwrap().is_empty());
    assert_eq!(
        app.get("/api/v1/auth/me", created["key"].as_str()).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn key_requests_are_validated_field_by_field() {
    let app = TestApp::spawn().await;
    let token = app.user("zoe@example.com").await;
    let (status, body) = app
        .post(
            "/api/v1/api-keys",
            Some(&token),
            json!({"name": "", "scope": "read", "expires_in_days": 0}),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
    let mut fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["expires_in_days", "name"]);
    let (status, body) = app
        .post(
            "/api/v1/api-keys",
            Some(&token),
            json!({"name": "x", "scope": "admin"}),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
}

#[tokio::test]
async fn a_revoked_key_is_kept_invisible_until_purged() {
    use sea_orm::{EntityTrait, PaginatorTrait};
    use sheetgpt::db::entity::api_key;
    let app = TestApp::spawn().await;
    let token = app.user("purge@example.com").await;
    let created = create_key(&app, &token, "to purge", "read").await;
    create_key(&app, &token, "to keep", "read").await;
    let id = created["id"].as_str().unwrap();
    app.delete(&format!("/api/v1/api-keys/{id}"), Some(&token))
        .await;
    assert_eq!(
        api_key::Entity::find().count(&app.state.db).await.unwrap(),
        2,
        "soft-deleted row stays"
    );
    let (_, list) = app.get("/api/v1/api-keys", Some(&token)).await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "but is invisible"
    );

    let yesterday = chrono::Utc::now() - chrono::Duration::days(1);
    sheetgpt::db::purge(&app.state.db, yesterday).await.unwrap();
    assert_eq!(
        api_key::Entity::find().count(&app.state.db).await.unwrap(),
        2,
        "too recent to purge"
    );
    let later = chrono::Utc::now() + chrono::Duration::seconds(1);
    let removed = sheetgpt::db::purge(&app.state.db, later).await.unwrap();
    assert_eq!(removed, 1);
    assert_eq!(
        api_key::Entity::find().count(&app.state.db).await.unwrap(),
        1
    );
    let (_, list) = app.get("/api/v1/api-keys", Some(&token)).await;
    assert_eq!(list["items"][0]["name"], "to keep");
}
