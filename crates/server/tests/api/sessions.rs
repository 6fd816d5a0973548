use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{PASSWORD, TestApp, assert_problem};

#[tokio::test]
async fn sessions_are_listed_with_the_current_one_marked() {
    let app = TestApp::spawn().await;
    app.register("rita@example.com").await;
    let (first, _) = app.login("rita@example.com", PASSWORD).await;
    let (second, _) = app.login("rita@example.com", PASSWORD).await;
    let (status, body) = app.get("/api/v1/auth/sessions", Some(&second)).await;
    assert_eq!(status, StatusCode::OK);
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(
        items[0]["current"], true,
        "newest first, and it is this one"
    );
    assert_eq!(items[1]["current"], false);
    assert_eq!(items[0]["ip"], "127.0.0.1");
    assert!(body["next_cursor"].is_null());
    let (_, from_first) = app.get("/api/v1/auth/sessions", Some(&first)).await;
    assert_eq!(from_first["items"][1]["current"], true);
}

#[tokio::test]
async fn revoking_a_session_signs_that_device_out_only() {
    let app = TestApp::spawn().await;
    app.register("sam@example.com").await;
    let (laptop, _) = app.login("sam@example.com", PASSWORD).await;
    let (phone, phone_refresh) = app.login("sam@example.com", PASSWORD).await;
    let (_, body) = app.get("/api/v1/auth/sessions", Some(&laptop)).await;
    let phone_session = body["items"][0]["id"].as_str().unwrap().to_owned();

    let (status, _) = app
        .delete(
            &format!("/api/v1/auth/sessions/{phone_session}"),
            Some(&laptop),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.get("/api/v1/auth/me", Some(&phone)).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "session-revoked");
    let (status, _) = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": phone_refresh}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&laptop)).await.0,
        StatusCode::OK
    );
    let (_, body) = app.get("/api/v1/auth/sessions", Some(&laptop)).await;
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
    // Revoking it again: it no longer exists as a live session.
    let (status, body) = app
        .delete(
            &format!("/api/v1/auth/sessions/{phone_session}"),
            Some(&laptop),
        )
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
}

#[tokio::test]
async fn a_user_can_neither_see_nor_revoke_another_users_sessions() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let (_, body) = app.get("/api/v1/auth/sessions", Some(&alice)).await;
    let alice_session = body["items"][0]["id"].as_str().unwrap().to_owned();
    let (_, bobs) = app.get("/api/v1/auth/sessions", Some(&bob)).await;
    assert!(
        bobs["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["id"] != alice_session.as_str())
    );
    let (status, body) = app
        .delete(
            &format!("/api/v1/auth/sessions/{alice_session}"),
            Some(&bob),
        )
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&alice)).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn sessions_page_by_cursor() {
    let app = TestApp::spawn().await;
    app.register("tess@example.com").await;
    let mut token = String::new();
    for _ in 0..3 {
        token = app.login("tess@example.com", PASSWORD).await.0;
    }
    let (status, page1) = app.get("/api/v1/auth/sessions?limit=2", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page1["items"].as_array().unwrap().len(), 2);
    let cursor = page1["next_cursor"].as_str().unwrap();
    let (_, page2) = app
        .get(
            &format!("/api/v1/auth/sessions?limit=2&cursor={cursor}"),
            Some(&token),
        )
        .await;
    assert_eq!(page2["items"].as_array().unwrap().len(), 1);
    assert!(page2["next_cursor"].is_null());
    assert_ne!(page2["items"][0]["id"], page1["items"][1]["id"]);
}
