//! U+0000 (NUL) cannot be stored in PostgreSQL `text` or `jsonb`; before issue 13 every input
//! carrying one was a 500 there (sign-in included) and was stored on SQLite. It is refused at
//! the edge with 422 `nul-character` on both databases, naming the field, and nothing is
//! written.

use futures_util::SinkExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{PASSWORD, TestApp, assert_problem};

fn assert_nul(status: StatusCode, body: &Value, field: &str) {
    assert_problem(
        status,
        body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "nul-character",
    );
    assert_eq!(body["errors"][0]["field"], field, "{body}");
}

#[tokio::test]
async fn sign_in_and_registration_with_a_nul_are_refused_before_anything_is_looked_up() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "a\u{0}@example.com", "password": PASSWORD}),
        )
        .await;
    assert_nul(status, &body, "email");
    let (status, body) = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "nul@example.com", "password": "correct horse\u{0} battery"}),
        )
        .await;
    assert_nul(status, &body, "password");
    let (status, body) = app
        .post(
            "/api/v1/auth/web/login",
            None,
            json!({"email": "\u{0}", "password": PASSWORD}),
        )
        .await;
    assert_nul(status, &body, "email");
    // Nothing was created.
    assert!(
        sheetgpt::db::users::find_by_email(&app.state.db, "nul@example.com")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_nul_in_a_table_cell_a_change_or_a_filter_is_refused_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let token = app.user("nul-tables@example.com").await;
    let (status, body) = app
        .post(
            "/api/v1/tables",
            Some(&token),
            json!({"name": "T", "rows": [{"label": "fine"}, {"label": "bad\u{0}cell"}]}),
        )
        .await;
    assert_nul(status, &body, "rows[1].label");
    let (_, list) = app.get("/api/v1/tables", Some(&token)).await;
    assert_eq!(list["items"], json!([]), "no table was made");

    let (status, table) = app
        .post(
            "/api/v1/tables",
            Some(&token),
            json!({"name": "T", "rows": [{"label": "a"}, {"label": "b"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{table}");
    let id = table["id"].as_str().unwrap();
    let (status, body) = app
        .post(
            &format!("/api/v1/tables/{id}/changes"),
            Some(&token),
            json!({"ops": [{"op": "set_cells", "cells": [{"row": 1, "column": "label", "value": "x\u{0}"}]}]}),
        )
        .await;
    assert_nul(status, &body, "ops[0].cells[0].value");
    let (_, versions) = app
        .get(&format!("/api/v1/tables/{id}/versions"), Some(&token))
        .await;
    assert_eq!(
        versions["items"].as_array().unwrap().len(),
        1,
        "no new version"
    );

    // Query strings: a filter value, a sort key.
    for query in [
        "filter=label:eq:a%00",
        "sort=label%00",
        "filter=label%00:eq:a",
    ] {
        let (status, body) = app
            .get(&format!("/api/v1/tables/{id}/rows?{query}"), Some(&token))
            .await;
        assert_problem(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "nul-character",
        );
    }
    let (status, body) = app
        .get(
            &format!("/api/v1/tables/{id}/rows?filter=label:eq:a"),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A path segment.
    let (status, body) = app
        .get(&format!("/api/v1/tables/{id}%00/rows"), Some(&token))
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "nul-character",
    );

    // A multipart text field of an upload.
    let form = reqwest::multipart::Form::new()
        .text("name", "up\u{0}load")
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"a,b\n1,2\n".to_vec()).file_name("x.csv"),
        );
    let resp = app
        .client
        .post(app.url("/api/v1/tables/import"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_nul(status, &body, "name");
}

#[tokio::test]
async fn a_nul_in_a_chat_message_is_refused_over_http_and_on_the_socket() {
    let app = TestApp::spawn().await;
    let token = app.user("nul-chat@example.com").await;
    let (_, conv) = app
        .post("/api/v1/conversations", Some(&token), json!({}))
        .await;
    let id = conv["id"].as_str().unwrap().to_owned();
    let (status, body) = app
        .post(
            &format!("/api/v1/conversations/{id}/messages"),
            Some(&token),
            json!({"content": "hello\u{0}"}),
        )
        .await;
    assert_nul(status, &body, "content");

    let (_, ticket) = app
        .post(
            &format!("/api/v1/conversations/{id}/ws-ticket"),
            Some(&token),
            json!({}),
        )
        .await;
    let url = format!(
        "ws://{}/api/v1/conversations/{id}/ws?ticket={}",
        app.addr,
        ticket["ticket"].as_str().unwrap()
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    socket
        .send(Message::text(
            json!({"type": "send", "content": "over\u{0}ws"}).to_string(),
        ))
        .await
        .unwrap();
    let problem = loop {
        let frame = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            futures_util::StreamExt::next(&mut socket),
        )
        .await
        .unwrap()
        .unwrap()
        .unwrap();
        if let Message::Text(text) = frame {
            break serde_json::from_str::<Value>(text.as_str()).unwrap();
        }
    };
    assert_eq!(problem["event"], "problem", "{problem}");
    assert_eq!(problem["code"], "nul-character", "{problem}");
    assert_eq!(problem["errors"][0]["field"], "content", "{problem}");
    let (_, messages) = app
        .get(
            &format!("/api/v1/conversations/{id}/messages"),
            Some(&token),
        )
        .await;
    assert_eq!(messages["items"], json!([]), "nothing stored");
}

/// The text `\u0000` (backslash, u, four zeros) is ordinary text, kept as given.
#[tokio::test]
async fn an_escaped_backslash_before_u0000_is_text_not_a_nul() {
    let app = TestApp::spawn().await;
    let token = app.user("nul-text@example.com").await;
    let (status, table) = app
        .post(
            "/api/v1/tables",
            Some(&token),
            json!({"name": "T", "rows": [{"label": "C:\\u0000"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{table}");
    let (_, page) = app
        .get(
            &format!("/api/v1/tables/{}/rows", table["id"].as_str().unwrap()),
            Some(&token),
        )
        .await;
    assert_eq!(page["rows"][0]["cells"][0], "C:\\u0000", "{page}");
}
