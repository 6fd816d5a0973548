//! A conversation's WebSocket, through a real WebSocket client: tickets, the protocol both
//! ways, and what happens to a reply when the socket closes or cancels it.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::fakes::openai::{Behaviour, FakeOpenAi};
use crate::helpers::{JWT_SECRET, PASSWORD, TestApp, assert_problem};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

const CSV: &str =
    "city,country,population\nParis,France,2102650\nLyon,France,522250\nBerlin,Germany,3850809\n";

async fn conversation(app: &TestApp, token: &str, body: Value) -> String {
    let (status, conv) = app.post("/api/v1/conversations", Some(token), body).await;
    assert_eq!(status, StatusCode::CREATED, "{conv}");
    conv["id"].as_str().unwrap().to_owned()
}

async fn ticket(app: &TestApp, token: &str, id: &str) -> String {
    let (status, body) = app
        .post(
            &format!("/api/v1/conversations/{id}/ws-ticket"),
            Some(token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["expires_in"], 30);
    body["ticket"].as_str().unwrap().to_owned()
}

fn ws_url(app: &TestApp, id: &str, ticket: Option<&str>) -> String {
    let base = format!("ws://{}/api/v1/conversations/{id}/ws", app.addr);
    match ticket {
        Some(t) => format!("{base}?ticket={t}"),
        None => base,
    }
}

/// Opens the socket with `?ticket=`, or with `Authorization: Bearer` when `bearer` is given.
async fn try_open(
    app: &TestApp,
    id: &str,
    ticket: Option<&str>,
    bearer: Option<&str>,
) -> Result<Socket, (StatusCode, Value)> {
    let mut request = ws_url(app, id, ticket).into_client_request().unwrap();
    if let Some(token) = bearer {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, response)) => {
            assert_eq!(response.status(), 101);
            Ok(socket)
        }
        Err(tungstenite::Error::Http(response)) => {
            let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
            if status == StatusCode::UNAUTHORIZED {
                assert!(response.headers().contains_key("www-authenticate"));
            }
            let body = response
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            Err((status, body))
        }
        Err(other) => panic!("connect failed: {other}"),
    }
}

async fn open(app: &TestApp, token: &str, id: &str) -> Socket {
    let ticket = ticket(app, token, id).await;
    try_open(app, id, Some(&ticket), None)
        .await
        .unwrap_or_else(|(s, b)| panic!("refused: {s} {b}"))
}

async fn refused(app: &TestApp, id: &str, ticket: &str) -> (StatusCode, Value) {
    match try_open(app, id, Some(ticket), None).await {
        Ok(_) => panic!("the socket opened"),
        Err(refusal) => refusal,
    }
}

async fn send(socket: &mut Socket, frame: Value) {
    socket.send(Message::text(frame.to_string())).await.unwrap();
}

/// The next JSON event, skipping pings and pongs.
async fn next_event(socket: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("an event within 10 s")
            .expect("the socket is open")
            .unwrap();
        match frame {
            Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Events up to and including `done`.
async fn reply(socket: &mut Socket) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let event = next_event(socket).await;
        let done = event["event"] == "done";
        events.push(event);
        if done {
            return events;
        }
    }
}

fn names(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect()
}

fn streamed_text(events: &[Value]) -> String {
    events
        .iter()
        .filter(|e| e["event"] == "delta")
        .map(|e| e["text"].as_str().unwrap())
        .collect()
}

async fn messages(app: &TestApp, token: &str, id: &str) -> Vec<Value> {
    let (_, body) = app
        .get(&format!("/api/v1/conversations/{id}/messages"), Some(token))
        .await;
    body["items"].as_array().unwrap().clone()
}

/// The last message once it is no longer `streaming`.
async fn settled(app: &TestApp, token: &str, id: &str) -> Value {
    for _ in 0..100 {
        if let Some(last) = messages(app, token, id).await.last()
            && last["status"] != "streaming"
        {
            return last.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the reply never settled")
}

/// An app whose default model is the OpenAI fake, which streams slowly.
async fn slow_app(fake: &FakeOpenAi) -> TestApp {
    fake.push(Behaviour::Stream {
        chunks: (0..50).map(|i| format!("w{i} ")).collect(),
        delay: Duration::from_millis(100),
        usage: None,
        finish: "stop",
    });
    let url = fake.base_url();
    TestApp::spawn_with(move |c| {
        c.models.insert(
            "fake".into(),
            serde_json::from_value(json!({
                "provider": "openai", "base_url": url, "model": "gpt-fake", "max_retries": 0
            }))
            .unwrap(),
        );
        c.default_model = Some("fake".into());
    })
    .await
}

/// The same ticket with its times moved `secs` into the past, signed again.
fn aged(ticket: &str, secs: i64) -> String {
    let payload = ticket.split('.').nth(1).unwrap();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    for field in ["iat", "exp"] {
        claims[field] = json!(claims[field].as_i64().unwrap() - secs);
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn a_ticket_opens_the_socket_and_replies_stream_as_the_sse_events() {
    let app = TestApp::spawn().await;
    let token = app.user("w1@example.com").await;
    let id = conversation(&app, &token, json!({})).await;
    let mut socket = open(&app, &token, &id).await;

    send(&mut socket, json!({"type": "send", "content": CSV})).await;
    let events = reply(&mut socket).await;
    let names = names(&events);
    assert_eq!(names[0], "start");
    assert!(
        names.iter().filter(|n| **n == "delta").count() > 3,
        "{names:?}"
    );
    assert_eq!(names[names.len() - 3..], ["table", "usage", "done"]);
    assert_eq!(events[0]["model"], "offline");
    let table = &events[names.len() - 3];
    assert_eq!(
        (table["kind"].as_str(), table["row_count"].as_i64()),
        (Some("created"), Some(3))
    );
    let done = events.last().unwrap();
    assert_eq!(done["status"], "complete");
    assert_eq!(done["message_id"], events[0]["message_id"]);

    let stored = messages(&app, &token, &id).await;
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0]["id"], events[0]["user_message_id"]);
    assert_eq!(stored[1]["id"], events[0]["message_id"]);
    assert_eq!(
        stored[1]["content"],
        streamed_text(&events),
        "the stored reply is what was streamed"
    );

    send(
        &mut socket,
        json!({"type": "send", "content": "sort by population desc"}),
    )
    .await;
    let events = reply(&mut socket).await;
    let table = events.iter().find(|e| e["event"] == "table").unwrap();
    assert_eq!(
        (table["kind"].as_str(), table["version"].as_i64()),
        (Some("changed"), Some(2))
    );
    assert_eq!(events.last().unwrap()["status"], "complete");
    assert_eq!(messages(&app, &token, &id).await.len(), 4);
}

#[tokio::test]
async fn regenerate_on_the_socket_replaces_the_last_reply() {
    let app = TestApp::spawn().await;
    let token = app.user("w2@example.com").await;
    let id = conversation(&app, &token, json!({})).await;
    let mut socket = open(&app, &token, &id).await;
    send(&mut socket, json!({"type": "send", "content": "hello"})).await;
    let first = reply(&mut socket).await;
    send(&mut socket, json!({"type": "regenerate"})).await;
    let again = reply(&mut socket).await;
    assert_eq!(again[0]["user_message_id"], first[0]["user_message_id"]);
    assert_ne!(again[0]["message_id"], first[0]["message_id"]);
    let ids: Vec<Value> = messages(&app, &token, &id)
        .await
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(
        ids,
        [
            first[0]["user_message_id"].clone(),
            again[0]["message_id"].clone()
        ]
    );
}

#[tokio::test]
async fn a_ticket_opens_one_socket_only() {
    let app = TestApp::spawn().await;
    let token = app.user("w3@example.com").await;
    let id = conversation(&app, &token, json!({})).await;
    let ticket = ticket(&app, &token, &id).await;
    let _socket = try_open(&app, &id, Some(&ticket), None).await.unwrap();
    let (status, body) = refused(&app, &id, &ticket).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "ticket-used");
}

#[tokio::test]
async fn an_expired_ticket_is_refused_before_the_upgrade() {
    let app = TestApp::spawn().await;
    let token = app.user("w4@example.com").await;
    let id = conversation(&app, &token, json!({})).await;
    let ticket = ticket(&app, &token, &id).await;
    let (status, body) = refused(&app, &id, &aged(&ticket, 60)).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "ticket-expired");
    let (status, body) = refused(&app, &id, &format!("{ticket}x")).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "invalid-ticket");
}

#[tokio::test]
async fn a_ticket_opens_only_the_conversation_it_was_asked_for() {
    let app = TestApp::spawn().await;
    let alice = app.user("w5a@example.com").await;
    let bob = app.user("w5b@example.com").await;
    let first = conversation(&app, &alice, json!({})).await;
    let second = conversation(&app, &alice, json!({})).await;
    let bobs = conversation(&app, &bob, json!({})).await;

    let for_first = ticket(&app, &alice, &first).await;
    let (status, body) = refused(&app, &second, &for_first).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "invalid-ticket");

    let bobs_ticket = ticket(&app, &bob, &bobs).await;
    let (status, body) = refused(&app, &first, &bobs_ticket).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "invalid-ticket");

    let (status, body) = app
        .post(
            &format!("/api/v1/conversations/{first}/ws-ticket"),
            Some(&bob),
            json!({}),
        )
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
    let refusal = try_open(&app, &first, None, Some(&bob))
        .await
        .err()
        .unwrap();
    assert_problem(refusal.0, &refusal.1, StatusCode::NOT_FOUND, "not-found");
}

#[tokio::test]
async fn an_access_token_is_not_a_ticket_and_a_ticket_is_not_an_access_token() {
    let app = TestApp::spawn().await;
    let token = app.user("w6@example.com").await;
    let id = conversation(&app, &token, json!({})).await;
    let (status, body) = refused(&app, &id, &token).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "invalid-ticket");

    let ticket = ticket(&app, &token, &id).await;
    let (status, body) = app
        .get(&format!("/api/v1/conversations/{id}"), Some(&ticket))
        .await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "invalid-token");
    let refusal = try_open(&app, &id, None, Some(&ticket))
        .await
        .err()
        .unwrap();
    assert_problem(
        refusal.0,
        &refusal.1,
        StatusCode::UNAUTHORIZED,
        "invalid-token",
    );
}

#[tokio::test]
async fn without_credentials_the_socket_is_refused() {
    let app = TestApp::spawn().await;
    let token = app.user("w7@example.com").await;
    let id = conversation(&app, &token, json!({})).await;
    let refusal = try_open(&app, &id, None, None).await.err().unwrap();
    assert_problem(
        refusal.0,
        &refusal.1,
        StatusCode::UNAUTHORIZED,
        "missing-credentials",
    );
}

#[tokio::test]
async fn a_ticket_from_a_session_that_has_ended_is_refused() {
    let app = TestApp::spawn().await;
    let token = app.user("w8@example.com").await;
    let id = conversation(&app, &token, json!({})).await;
    let ticket = ticket(&app, &token, &id).await;
    let (status, _) = app
        .post("/api/v1/auth/logout", Some(&token), json!({}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = refused(&app, &id, &ticket).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "session-revoked");
}

#[tokio::test]
async fn an_ended_session_stops_an_open_socket_at_its_next_request() {
    let app = TestApp::spawn().await;
    let token = app.user("w9@example.com").await;
    let id = conversation(&app, &token, json!({})).await;
    let mut socket = open(&app, &token, &id).await;
    app.post("/api/v1/auth/logout", Some(&token), json!({}))
        .await;
    send(&mut socket, json!({"type": "send", "content": "hello"})).await;
    let problem = next_event(&mut socket).await;
    assert_eq!(problem["event"], "problem");
    assert_eq!(
        (problem["status"].as_u64(), problem["code"].as_str()),
        (Some(401), Some("session-revoked"))
    );
    match socket.next().await {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Policy),
        other => panic!("expected a close frame, got {other:?}"),
    }
    let (again, _) = app.login("w9@example.com", PASSWORD).await;
    assert!(
        messages(&app, &again, &id).await.is_empty(),
        "nothing was sent"
    );
}

#[tokio::test]
async fn api_keys_may_open_the_socket_by_header_or_ticket_unless_read_only() {
    let app = TestApp::spawn().await;
    let token = app.user("w10@example.com").await;
    let id = conversation(&app, &token, json!({})).await;
    let mut keys = Vec::new();
    for scope in ["read_write", "read"] {
        let (status, key) = app
            .post(
                "/api/v1/api-keys",
                Some(&token),
                json!({"name": scope, "scope": scope}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{key}");
        keys.push(key["key"].as_str().unwrap().to_owned());
    }
    let (write, read) = (&keys[0], &keys[1]);

    let mut socket = try_open(&app, &id, None, Some(write)).await.unwrap();
    send(&mut socket, json!({"type": "send", "content": "hello"})).await;
    assert_eq!(
        reply(&mut socket).await.last().unwrap()["status"],
        "complete"
    );
    let ticket = ticket(&app, write, &id).await;
    let mut socket = try_open(&app, &id, Some(&ticket), None).await.unwrap();
    send(&mut socket, json!({"type": "send", "content": "hello"})).await;
    assert_eq!(
        reply(&mut socket).await.last().unwrap()["status"],
        "complete"
    );

    let refusal = try_open(&app, &id, None, Some(read)).await.err().unwrap();
    assert_problem(
        refusal.0,
        &refusal.1,
        StatusCode::FORBIDDEN,
        "insufficient-scope",
    );
    let (status, body) = app
        .post(
            &format!("/api/v1/conversations/{id}/ws-ticket"),
            Some(read),
            json!({}),
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "insufficient-scope");
}

#[tokio::test]
async fn malformed_frames_get_a_problem_and_the_socket_stays_usable() {
    let app = TestApp::spawn().await;
    let token = app.user("w11@example.com").await;
    let id = conversation(&app, &token, json!({})).await;
    let mut socket = open(&app, &token, &id).await;

    let cases = [
        (Message::text("not json"), 400, "malformed-json"),
        (
            Message::text(r#"{"type": "dance"}"#),
            422,
            "validation-failed",
        ),
        (
            Message::text(r#"{"content": "no type"}"#),
            422,
            "validation-failed",
        ),
        (
            Message::text(r#"{"type": "send", "content": ""}"#),
            422,
            "validation-failed",
        ),
        (
            Message::binary(vec![1, 2, 3]),
            415,
            "unsupported-media-type",
        ),
        (Message::text(r#"{"type": "cancel"}"#), 409, "not-running"),
    ];
    for (frame, status, code) in cases {
        let sent = format!("{frame:?}");
        socket.send(frame).await.unwrap();
        let problem = next_event(&mut socket).await;
        assert_eq!(problem["event"], "problem", "{sent}: {problem}");
        assert_eq!(problem["status"], status, "{sent}: {problem}");
        assert_eq!(problem["code"], code, "{sent}: {problem}");
        assert_eq!(problem["type"], format!("/problems/{code}"));
        assert!(problem["title"].is_string() && problem["detail"].is_string());
    }

    socket
        .send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .unwrap();
    assert!(
        matches!(pong, Some(Ok(Message::Pong(ref p))) if p.as_ref() == b"are you there"),
        "{pong:?}"
    );

    send(&mut socket, json!({"type": "send", "content": "hello"})).await;
    assert_eq!(
        reply(&mut socket).await.last().unwrap()["status"],
        "complete"
    );
}

#[tokio::test]
async fn a_model_that_is_down_is_a_problem_and_the_socket_stays_open() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let app = TestApp::spawn_with(|c| {
        c.models.insert(
            "down".into(),
            serde_json::from_value(json!({
                "provider": "openai", "base_url": format!("http://127.0.0.1:{port}/v1"), "model": "m",
                "connect_timeout_secs": 1, "max_retries": 0
            }))
            .unwrap(),
        );
    })
    .await;
    let token = app.user("w12@example.com").await;
    let id = conversation(&app, &token, json!({})).await;
    let mut socket = open(&app, &token, &id).await;
    send(
        &mut socket,
        json!({"type": "send", "content": "hi", "model": "down"}),
    )
    .await;
    let problem = next_event(&mut socket).await;
    assert_eq!(
        (problem["event"].as_str(), problem["code"].as_str()),
        (Some("problem"), Some("model-unavailable"))
    );
    assert_eq!(problem["status"], 502);
    send(
        &mut socket,
        json!({"type": "send", "content": "hi", "model": "gpt-99"}),
    )
    .await;
    let problem = next_event(&mut socket).await;
    assert_eq!(problem["code"], "validation-failed");
    assert_eq!(problem["errors"][0]["field"], "model");
    send(&mut socket, json!({"type": "send", "content": "hello"})).await;
    assert_eq!(
        reply(&mut socket).await.last().unwrap()["status"],
        "complete"
    );
}

#[tokio::test]
async fn one_reply_at_a_time_and_cancel_stops_the_running_one() {
    let fake = FakeOpenAi::start().await;
    let app = slow_app(&fake).await;
    let token = app.user("w13@example.com").await;
    let id = conversation(&app, &token, json!({})).await;
    let mut socket = open(&app, &token, &id).await;
    send(
        &mut socket,
        json!({"type": "send", "content": "write a lot"}),
    )
    .await;
    let start = next_event(&mut socket).await;
    assert_eq!(start["event"], "start");
    assert_eq!(next_event(&mut socket).await["event"], "delta");

    send(&mut socket, json!({"type": "send", "content": "and more"})).await;
    let mut events = Vec::new();
    let problem = loop {
        let event = next_event(&mut socket).await;
        if event["event"] == "problem" {
            break event;
        }
        events.push(event);
    };
    assert_eq!(
        (problem["status"].as_u64(), problem["code"].as_str()),
        (Some(409), Some("reply-in-progress"))
    );

    send(&mut socket, json!({"type": "cancel"})).await;
    events.extend(reply(&mut socket).await);
    let done = events.last().unwrap();
    assert_eq!(done["status"], "incomplete");
    assert!(
        fake.client_disconnected(Duration::from_secs(3)).await,
        "upstream request dropped"
    );
    let stored = settled(&app, &token, &id).await;
    assert_eq!(stored["id"], start["message_id"]);
    assert_eq!(stored["status"], "incomplete");
    let streamed = streamed_text(&events);
    assert!(
        stored["content"].as_str().unwrap().starts_with("w0 "),
        "{stored}"
    );
    assert!(
        streamed.len() < "w0 ".len() * 50,
        "stopped early: {streamed}"
    );
    assert_eq!(
        messages(&app, &token, &id).await.len(),
        2,
        "the refused send stored nothing"
    );
}

#[tokio::test]
async fn closing_the_socket_mid_reply_leaves_the_reply_incomplete() {
    let fake = FakeOpenAi::start().await;
    let app = slow_app(&fake).await;
    let token = app.user("w14@example.com").await;
    let id = conversation(&app, &token, json!({})).await;
    let mut socket = open(&app, &token, &id).await;
    send(
        &mut socket,
        json!({"type": "send", "content": "write a lot"}),
    )
    .await;
    assert_eq!(next_event(&mut socket).await["event"], "start");
    assert_eq!(next_event(&mut socket).await["event"], "delta");
    socket.close(None).await.unwrap();
    drop(socket);
    assert!(
        fake.client_disconnected(Duration::from_secs(3)).await,
        "upstream request dropped"
    );
    let stored = settled(&app, &token, &id).await;
    assert_eq!(stored["status"], "incomplete");
    assert!(
        stored["content"].as_str().unwrap().starts_with("w0 "),
        "{stored}"
    );
}

#[tokio::test]
async fn an_idle_socket_is_closed() {
    let app = TestApp::spawn_with(|c| c.chat.ws_idle_secs = 1).await;
    let token = app.user("w15@example.com").await;
    let id = conversation(&app, &token, json!({})).await;
    let mut socket = open(&app, &token, &id).await;
    let frame = tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .unwrap();
    match frame {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(frame.code, CloseCode::Normal);
            assert_eq!(frame.reason.as_str(), "idle");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
}

/// Behind a balancer a ticket reaches any instance: it still opens one socket in all.
#[tokio::test]
async fn a_ticket_opens_one_socket_across_instances_sharing_the_database() {
    let first = TestApp::spawn().await;
    let second = first.sibling(|_| {}).await;
    let token = first.user("w-two@example.com").await;
    let id = conversation(&first, &token, json!({})).await;
    let ticket = ticket(&first, &token, &id).await;
    let _socket = try_open(&second, &id, Some(&ticket), None)
        .await
        .unwrap_or_else(|(s, b)| panic!("refused: {s} {b}"));
    let (status, body) = refused(&first, &id, &ticket).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "ticket-used");
}

/// A server that stops tells its sockets (1001, going away), so clients reconnect to another
/// instance instead of finding a dead connection; a reply being written is finished first.
#[tokio::test]
async fn a_stopping_server_finishes_the_reply_then_closes_its_sockets_as_going_away() {
    let fake = FakeOpenAi::start().await;
    fake.push(Behaviour::Stream {
        chunks: (0..10).map(|i| format!("w{i} ")).collect(),
        delay: Duration::from_millis(50),
        usage: None,
        finish: "stop",
    });
    let mut app = slow_app(&fake).await;
    let token = app.user("w-stop@example.com").await;
    let id = conversation(&app, &token, json!({})).await;
    let mut socket = open(&app, &token, &id).await;
    send(&mut socket, json!({"type": "send", "content": "go"})).await;
    assert_eq!(next_event(&mut socket).await["event"], "start");
    app.stop();

    let mut events = Vec::new();
    let close = loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a frame within 10 s")
            .expect("the socket is open")
            .unwrap();
        match frame {
            Message::Text(text) => {
                events.push(serde_json::from_str::<Value>(text.as_str()).unwrap())
            }
            Message::Close(frame) => break frame.expect("a close frame with a code"),
            _ => {}
        }
    };
    let done = events
        .iter()
        .find(|e| e["event"] == "done")
        .expect("the reply finished");
    assert_eq!(done["status"], "complete", "{events:?}");
    assert_eq!(close.code, CloseCode::Away);
}

/// Issue 13: one socket carried 150 replies in 7 s while HTTP was held to 60 a minute. Each
/// `send` or `regenerate` on a socket now takes one request from the same per-user `chat`
/// allowance as `POST /conversations/{id}/messages`.
#[tokio::test]
async fn replies_on_a_socket_count_against_the_chat_rate_limit_like_http() {
    let app = TestApp::spawn_with(|c| c.rate_limits.chat.requests = 3).await;
    let token = app.user("w-rl@example.com").await;
    let id = conversation(&app, &token, json!({})).await;
    let mut socket = open(&app, &token, &id).await;
    for i in 0..3 {
        send(
            &mut socket,
            json!({"type": "send", "content": format!("hello {i}")}),
        )
        .await;
        let events = reply(&mut socket).await;
        assert_eq!(events.last().unwrap()["status"], "complete", "{events:?}");
    }
    send(&mut socket, json!({"type": "send", "content": "one more"})).await;
    let problem = next_event(&mut socket).await;
    assert_eq!(problem["event"], "problem", "{problem}");
    assert_eq!(problem["status"], 429, "{problem}");
    assert_eq!(problem["code"], "too-many-requests", "{problem}");
    send(&mut socket, json!({"type": "regenerate"})).await;
    let problem = next_event(&mut socket).await;
    assert_eq!(problem["status"], 429, "regenerate counts too: {problem}");
    // The refused frames stored nothing: three messages and their replies.
    assert_eq!(messages(&app, &token, &id).await.len(), 6);
    // One allowance for both transports: HTTP is held back as well.
    let (status, body) = app
        .post(
            &format!("/api/v1/conversations/{id}/messages"),
            Some(&token),
            json!({"content": "over http"}),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
        "too-many-requests",
    );
    // The socket stays open for what it may still do.
    send(&mut socket, json!({"type": "cancel"})).await;
    assert_eq!(next_event(&mut socket).await["code"], "not-running");
}

#[tokio::test]
async fn a_spent_daily_token_quota_is_a_problem_on_the_socket_too() {
    let app = TestApp::spawn_with(|c| c.chat.daily_token_quota = 50).await;
    let token = app.user("w-quota@example.com").await;
    let id = conversation(&app, &token, json!({})).await;
    let mut socket = open(&app, &token, &id).await;
    send(&mut socket, json!({"type": "send", "content": "hello"})).await;
    reply(&mut socket).await;
    send(&mut socket, json!({"type": "send", "content": "again"})).await;
    let problem = next_event(&mut socket).await;
    assert_eq!(problem["event"], "problem", "{problem}");
    assert_eq!(problem["status"], 429, "{problem}");
    assert_eq!(problem["code"], "quota-exceeded", "{problem}");
    assert_eq!(messages(&app, &token, &id).await.len(), 2);
}
