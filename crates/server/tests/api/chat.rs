use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{IntoPair, TestApp, assert_problem};

async fn conversation(app: &TestApp, token: &str) -> String {
    let (status, body) = app
        .post("/api/v1/conversations", Some(token), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["model"], "offline");
    body["id"].as_str().unwrap().to_owned()
}

async fn say(app: &TestApp, token: &str, id: &str, content: &str) -> Value {
    let (status, body) = app
        .post(
            &format!("/api/v1/conversations/{id}/messages"),
            Some(token),
            json!({"content": content}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Reads a whole SSE answer into (event, data) pairs.
async fn sse(app: &TestApp, token: &str, path: &str, body: Value) -> Vec<(String, Value)> {
    let resp = app
        .client
        .post(app.url(path))
        .bearer_auth(token)
        .header("accept", "text/event-stream")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let text = resp.text().await.unwrap();
    let mut events = Vec::new();
    for block in text.split("\n\n") {
        let mut name = String::new();
        let mut data = String::new();
        for line in block.lines() {
            if let Some(n) = line.strip_prefix("event:") {
                name = n.trim().to_owned();
            } else if let Some(d) = line.strip_prefix("data:") {
                data.push_str(d.trim_start());
            }
        }
        if !name.is_empty() {
            events.push((name, serde_json::from_str(&data).unwrap_or(Value::Null)));
        }
    }
    events
}

const CSV: &str = "city,country,population,price,qty\nParis,France,2102650,1.5,2\nLyon,France,522250,2,3\nBerlin,Germany,3850809,3.25,4\n";

#[tokio::test]
async fn a_pasted_csv_becomes_a_table_attached_to_the_reply() {
    let app = TestApp::spawn().await;
    let token = app.user("c1@example.com").await;
    let id = conversation(&app, &token).await;
    let reply = say(&app, &token, &id, &format!("Here is my data:\n{CSV}")).await;
    assert_eq!(reply["message"]["status"], "complete");
    assert_eq!(reply["message"]["role"], "assistant");
    assert_eq!(reply["tables"][0]["kind"], "created");
    let table_id = reply["message"]["table_id"].as_str().unwrap();
    let (_, table) = app
        .get(&format!("/api/v1/tables/{table_id}"), Some(&token))
        .await;
    let types: Vec<&str> = table["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["text", "text", "integer", "decimal", "integer"]);
    assert_eq!(table["row_count"], 3);
    let (_, conv) = app
        .get(&format!("/api/v1/conversations/{id}"), Some(&token))
        .await;
    assert_eq!(conv["current_table_id"], table_id);
    assert_eq!(conv["title"], "Here is my data:");
    assert_eq!(
        table["name"], "Here is my data:",
        "tables are named after the conversation"
    );
    assert!(reply["message"]["completion_tokens"].as_i64().unwrap() > 0);
}

#[tokio::test]
async fn replies_stream_as_server_sent_events_in_order() {
    let app = TestApp::spawn().await;
    let token = app.user("c2@example.com").await;
    let id = conversation(&app, &token).await;
    let events = sse(
        &app,
        &token,
        &format!("/api/v1/conversations/{id}/messages"),
        json!({"content": CSV}),
    )
    .await;
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"start"));
    assert!(
        names.iter().filter(|n| **n == "delta").count() > 3,
        "{names:?}"
    );
    let tail: Vec<&str> = names.iter().rev().take(3).rev().copied().collect();
    assert_eq!(tail, ["table", "usage", "done"]);
    let streamed: String = events
        .iter()
        .filter(|(n, _)| n == "delta")
        .map(|(_, d)| d["text"].as_str().unwrap())
        .collect();
    let (_, messages) = app
        .get(
            &format!("/api/v1/conversations/{id}/messages"),
            Some(&token),
        )
        .await;
    let items = messages["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["role"], "user");
    assert_eq!(
        items[1]["content"],
        streamed.as_str(),
        "the stored reply is what was streamed"
    );
    assert_eq!(events.last().unwrap().1["status"], "complete");
}

#[tokio::test]
async fn commands_in_chat_change_the_current_table_as_new_versions() {
    let app = TestApp::spawn().await;
    let token = app.user("c3@example.com").await;
    let id = conversation(&app, &token).await;
    let first = say(&app, &token, &id, CSV).await;
    let table_id = first["message"]["table_id"].as_str().unwrap().to_owned();

    let reply = say(&app, &token, &id, "sort by population desc").await;
    assert_eq!(reply["tables"][0]["kind"], "changed");
    assert_eq!(reply["tables"][0]["version"], 2);
    let (_, rows) = app
        .get(&format!("/api/v1/tables/{table_id}/rows"), Some(&token))
        .await;
    let cities: Vec<&str> = rows["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["cells"][0].as_str().unwrap())
        .collect();
    assert_eq!(cities, ["Berlin", "Paris", "Lyon"]);

    let reply = say(
        &app,
        &token,
        &id,
        "keep rows where country = France\nadd column total = price * qty",
    )
    .await;
    assert_eq!(reply["tables"][0]["version"], 3);
    let (_, rows) = app
        .get(&format!("/api/v1/tables/{table_id}/rows"), Some(&token))
        .await;
    let cells: Vec<Value> = rows["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["cells"].clone())
        .collect();
    assert_eq!(cells.len(), 2);
    assert_eq!(cells[0][5], json!("3"), "Paris: 1.5 × 2");
    assert_eq!(cells[1][5], json!("6"), "Lyon: 2 × 3");

    let reply = say(&app, &token, &id, "remove column ghost").await;
    assert!(reply["tables"].as_array().unwrap().is_empty());
    assert!(
        reply["message"]["meta"]["ops_error"]
            .as_str()
            .unwrap()
            .contains("ghost"),
        "{reply}"
    );
}

#[tokio::test]
async fn the_offline_model_explains_itself_for_anything_else() {
    let app = TestApp::spawn().await;
    let token = app.user("c4@example.com").await;
    let id = conversation(&app, &token).await;
    let reply = say(&app, &token, &id, "What is the capital of France?").await;
    assert!(
        reply["message"]["content"]
            .as_str()
            .unwrap()
            .contains("offline model")
    );
    assert!(reply["tables"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn regenerate_replaces_the_last_reply() {
    let app = TestApp::spawn().await;
    let token = app.user("c5@example.com").await;
    let id = conversation(&app, &token).await;
    let first = say(&app, &token, &id, "hello").await;
    let (status, again) = app
        .post(
            &format!("/api/v1/conversations/{id}/regenerate"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_ne!(again["message"]["id"], first["message"]["id"]);
    assert_eq!(again["user_message_id"], first["user_message_id"]);
    let (_, messages) = app
        .get(
            &format!("/api/v1/conversations/{id}/messages"),
            Some(&token),
        )
        .await;
    let ids: Vec<&Value> = messages["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["id"])
        .collect();
    assert_eq!(ids, [&first["user_message_id"], &again["message"]["id"]]);
}

#[tokio::test]
async fn an_unreachable_model_is_a_502_and_the_users_message_is_kept() {
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
    let token = app.user("c6@example.com").await;
    let (_, conv) = app
        .post(
            "/api/v1/conversations",
            Some(&token),
            json!({"model": "down"}),
        )
        .await;
    let id = conv["id"].as_str().unwrap();
    let (status, body) = app
        .post(
            &format!("/api/v1/conversations/{id}/messages"),
            Some(&token),
            json!({"content": "hi"}),
        )
        .await;
    assert_problem(status, &body, StatusCode::BAD_GATEWAY, "model-unavailable");
    let (_, messages) = app
        .get(
            &format!("/api/v1/conversations/{id}/messages"),
            Some(&token),
        )
        .await;
    let items = messages["items"].as_array().unwrap();
    assert_eq!(items[0]["content"], "hi");
    assert_eq!(items[1]["status"], "error");
}

#[tokio::test]
async fn a_spent_daily_quota_is_answered_429_saying_when_it_resets() {
    let app = TestApp::spawn_with(|c| c.chat.daily_token_quota = 50).await;
    let token = app.user("c7@example.com").await;
    let id = conversation(&app, &token).await;
    say(&app, &token, &id, "hello").await;
    let (status, body) = app
        .post(
            &format!("/api/v1/conversations/{id}/messages"),
            Some(&token),
            json!({"content": "again"}),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
        "quota-exceeded",
    );
    assert!(body["detail"].as_str().unwrap().contains("resets at"));
    assert!(body["detail"].as_str().unwrap().contains("model token"));
    let (_, usage) = app.get("/api/v1/usage", Some(&token)).await;
    assert_eq!(usage["items"][0]["model"], "offline");
    assert_eq!(usage["items"][0]["replies"], 1);
    assert!(usage["total_tokens"].as_i64().unwrap() >= 50);
}

#[tokio::test]
async fn conversations_are_validated_and_models_listed() {
    let app = TestApp::spawn().await;
    let token = app.user("c8@example.com").await;
    let (_, models) = app.get("/api/v1/models", Some(&token)).await;
    assert_eq!(models["items"][0]["name"], "offline");
    assert_eq!(models["items"][0]["default"], true);
    let (status, body) = app
        .post(
            "/api/v1/conversations",
            Some(&token),
            json!({"model": "gpt-99"}),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
    let id = conversation(&app, &token).await;
    let (status, body) = app
        .post(
            &format!("/api/v1/conversations/{id}/messages"),
            Some(&token),
            json!({"content": ""}),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
    let (status, body) = app
        .request(
            reqwest::Method::PATCH,
            &format!("/api/v1/conversations/{id}"),
            Some(&token),
            Some(json!({"title": "Airports", "system_prompt": "Be brief."})),
        )
        .await
        .into_pair();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["title"].as_str(), body["system_prompt"].as_str()),
        (Some("Airports"), Some("Be brief."))
    );
}

#[tokio::test]
async fn no_user_reaches_another_users_conversation() {
    let app = TestApp::spawn().await;
    let alice = app.user("alice@example.com").await;
    let bob = app.user("bob@example.com").await;
    let id = conversation(&app, &alice).await;
    let reply = say(&app, &alice, &id, "hello").await;
    let mid = reply["message"]["id"].as_str().unwrap();
    for path in [
        format!("/api/v1/conversations/{id}"),
        format!("/api/v1/conversations/{id}/messages"),
    ] {
        let (status, body) = app.get(&path, Some(&bob)).await;
        assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
    }
    for path in [
        format!("/api/v1/conversations/{id}/messages"),
        format!("/api/v1/conversations/{id}/regenerate"),
        format!("/api/v1/conversations/{id}/messages/{mid}/cancel"),
    ] {
        let (status, _) = app.post(&path, Some(&bob), json!({"content": "x"})).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(
        app.delete(&format!("/api/v1/conversations/{id}"), Some(&bob))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (_, list) = app.get("/api/v1/conversations", Some(&bob)).await;
    assert!(list["items"].as_array().unwrap().is_empty());
    let (_, messages) = app
        .get(
            &format!("/api/v1/conversations/{id}/messages"),
            Some(&alice),
        )
        .await;
    assert_eq!(
        messages["items"].as_array().unwrap().len(),
        2,
        "Bob's attempts left nothing"
    );
}

#[tokio::test]
async fn a_table_can_be_made_again_from_a_message_but_only_by_its_owner() {
    let app = TestApp::spawn().await;
    let token = app.user("c9@example.com").await;
    let other = app.user("c10@example.com").await;
    let id = conversation(&app, &token).await;
    let reply = say(&app, &token, &id, CSV).await;
    // The table is read from the user's own message (the reply only describes it).
    let mid = reply["user_message_id"].as_str().unwrap();
    let (status, table) = app
        .post(
            "/api/v1/tables",
            Some(&token),
            json!({"name": "Copy", "message_id": mid}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{table}");
    assert_eq!(table["row_count"], 3);
    assert_eq!(table["columns"][2]["type"], "integer");
    let (status, body) = app
        .post(
            "/api/v1/tables",
            Some(&token),
            json!({"name": "Copy", "message_id": mid, "table_index": 1}),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
    let (status, body) = app
        .post(
            "/api/v1/tables",
            Some(&other),
            json!({"name": "Stolen", "message_id": mid}),
        )
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
}
