//! Local servers and reasoning models as they really behave, through the whole service (SSE,
//! WebSocket and JSON answers): structured output negotiated with servers that refuse
//! `json_schema`, thinking kept apart from the reply, context-length refusals a person can act
//! on, the server's real context window, and models discovered from the server's list.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::fakes::anthropic::{self as fake_anthropic, FakeAnthropic};
use crate::fakes::openai::{self as fake_openai, Behaviour, FakeOpenAi};
use crate::helpers::{TestApp, assert_problem};

fn local(url: &str, extra: Value) -> sheetgpt::config::ModelConfig {
    let mut config = json!({
        "provider": "openai", "base_url": url, "model": "qwen3", "max_retries": 0,
        "context_window": 8192
    });
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    serde_json::from_value(config).unwrap()
}

async fn app_with(url: String, extra: Value) -> TestApp {
    TestApp::spawn_with(move |c| {
        c.models.insert("local".into(), local(&url, extra));
        c.default_model = Some("local".into());
    })
    .await
}

async fn conversation(app: &TestApp, token: &str, body: Value) -> String {
    let (status, conv) = app.post("/api/v1/conversations", Some(token), body).await;
    assert_eq!(status, StatusCode::CREATED, "{conv}");
    conv["id"].as_str().unwrap().to_owned()
}

async fn schema(app: &TestApp, token: &str, extra: Value) -> String {
    let mut body = json!({"name": "Cities", "columns": [
        {"name": "city"}, {"name": "population", "type": "integer"}]});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (status, schema) = app.post("/api/v1/schemas", Some(token), body).await;
    assert_eq!(status, StatusCode::CREATED, "{schema}");
    schema["id"].as_str().unwrap().to_owned()
}

async fn say(app: &TestApp, token: &str, id: &str, content: &str) -> (StatusCode, Value) {
    app.post(
        &format!("/api/v1/conversations/{id}/messages"),
        Some(token),
        json!({"content": content}),
    )
    .await
}

/// The SSE answer as (event, data) pairs.
async fn sse(app: &TestApp, token: &str, id: &str, content: &str) -> Vec<(String, Value)> {
    let resp = app
        .client
        .post(app.url(&format!("/api/v1/conversations/{id}/messages")))
        .bearer_auth(token)
        .header("accept", "text/event-stream")
        .json(&json!({"content": content}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.unwrap();
    text.split("\n\n")
        .filter_map(|block| {
            let name = block.lines().find_map(|l| l.strip_prefix("event:"))?.trim();
            let data = block.lines().find_map(|l| l.strip_prefix("data:"))?.trim();
            Some((
                name.to_owned(),
                serde_json::from_str(data).unwrap_or(Value::Null),
            ))
        })
        .collect()
}

/// Sends one message over the conversation's WebSocket; the frames until `done` or `problem`.
async fn over_ws(app: &TestApp, token: &str, id: &str, content: &str) -> Vec<Value> {
    let mut request = format!("ws://{}/api/v1/conversations/{id}/ws", app.addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    socket
        .send(Message::text(
            json!({"type": "send", "content": content}).to_string(),
        ))
        .await
        .unwrap();
    let mut frames = Vec::new();
    while let Ok(Some(Ok(message))) =
        tokio::time::timeout(Duration::from_secs(10), socket.next()).await
    {
        let Message::Text(text) = message else {
            continue;
        };
        let frame: Value = serde_json::from_str(&text).unwrap();
        let end = matches!(frame["event"].as_str(), Some("done" | "problem"));
        frames.push(frame);
        if end {
            break;
        }
    }
    frames
}

#[tokio::test]
async fn structured_output_is_negotiated_with_a_server_that_refuses_json_schema() {
    let fake = FakeOpenAi::start_with(fake_openai::Options {
        response_formats: Some(vec!["json_object", "text"]),
        refusal: fake_openai::LLAMA_CPP_PYTHON_REFUSAL,
        ..fake_openai::Options::default()
    })
    .await;
    fake.set_fallback(Behaviour::text(&[
        r#"{"rows": [{"city": "Paris", "population": 2102650}]}"#,
    ]));
    let app = app_with(fake.base_url(), json!({"structured_output": "auto"})).await;
    let token = app.user("local1@example.com").await;
    let schema = schema(&app, &token, json!({})).await;
    let id = conversation(&app, &token, json!({"target_schema_id": schema})).await;

    let events = sse(&app, &token, &id, "the capital of France").await;
    let done = &events.iter().find(|(n, _)| n == "done").unwrap().1;
    assert_eq!(done["status"], "complete", "{events:?}");
    let table = events.iter().find(|(n, _)| n == "table").unwrap();
    assert_eq!(table.1["row_count"], 1);
    let (_, messages) = app
        .get(
            &format!("/api/v1/conversations/{id}/messages"),
            Some(&token),
        )
        .await;
    let reply = messages["items"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(
        reply["meta"]["structured"]["form"], "json_object",
        "{reply}"
    );
    assert_eq!(reply["meta"]["structured"]["valid"], true);

    // Over the WebSocket, the next message goes straight to the form that worked.
    let frames = over_ws(&app, &token, &id, "and of Spain").await;
    assert_eq!(frames.last().unwrap()["status"], "complete", "{frames:?}");
    let sent = fake.requests();
    assert_eq!(
        sent.len(),
        3,
        "json_schema refused once, then json_object twice"
    );
    assert_eq!(sent[2].body["response_format"]["type"], "json_object");
    assert!(sent[2].body["response_format"]["schema"].is_object());
}

#[tokio::test]
async fn the_schema_asks_for_rows_within_the_targets_bounds_and_no_rows_is_reported() {
    let fake = FakeOpenAi::start().await;
    fake.set_fallback(Behaviour::text(&[r#"{"rows": []}"#]));
    let app = app_with(fake.base_url(), json!({"structured_output": "json_schema"})).await;
    let token = app.user("local2@example.com").await;
    let schema = schema(&app, &token, json!({"min_rows": 2, "max_rows": 5})).await;
    let id = conversation(&app, &token, json!({"target_schema_id": schema})).await;

    let (status, reply) = say(&app, &token, &id, "two cities").await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let rows =
        &fake.requests()[0].body["response_format"]["json_schema"]["schema"]["properties"]["rows"];
    assert_eq!(
        (rows["minItems"].clone(), rows["maxItems"].clone()),
        (json!(2), json!(5))
    );
    assert_eq!(
        reply["message"]["meta"]["structured"]["no_rows"], true,
        "{reply}"
    );
    assert!(
        reply["tables"].as_array().unwrap().is_empty(),
        "no empty table made"
    );
    assert!(
        reply["message"]["content"]
            .as_str()
            .unwrap()
            .contains("**No table:**")
    );
}

#[tokio::test]
async fn thinking_is_kept_apart_stored_folded_and_never_sent_back_to_the_model() {
    let fake = FakeOpenAi::start().await;
    fake.push(Behaviour::text(&[
        "<think>\nA draft:\n| a | b |\n|---|---|\n| 1 | 2 |\n",
        "```sheetgpt-ops\n[{\"op\": \"drop_column\", \"column\": \"a\"}]\n```\n</think>\n\n",
        "There is nothing to tabulate.",
    ]));
    fake.push(Behaviour::text(&["Fine."]));
    let app = app_with(fake.base_url(), json!({})).await;
    let token = app.user("local3@example.com").await;
    let id = conversation(&app, &token, json!({})).await;

    let events = sse(&app, &token, &id, "think first").await;
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    let first_thinking = names.iter().position(|n| *n == "thinking").unwrap();
    let first_delta = names.iter().position(|n| *n == "delta").unwrap();
    assert!(first_thinking < first_delta, "{names:?}");
    assert!(
        !names.contains(&"table"),
        "nothing from the thinking became a table"
    );
    let done = &events.iter().find(|(n, _)| n == "done").unwrap().1;
    assert_eq!(
        done["status"], "complete",
        "the ops in the thinking were not applied"
    );

    let (_, messages) = app
        .get(
            &format!("/api/v1/conversations/{id}/messages"),
            Some(&token),
        )
        .await;
    let reply = messages["items"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(reply["content"], "There is nothing to tabulate.");
    assert!(reply["thinking"].as_str().unwrap().contains("| 1 | 2 |"));
    assert!(reply["thinking_ms"].as_i64().is_some());
    assert!(reply["completion_tokens"].as_i64().unwrap() > 0);

    let (status, _) = say(&app, &token, &id, "and now?").await;
    assert_eq!(status, StatusCode::OK);
    let second = fake.requests()[1].body["messages"].to_string();
    assert!(second.contains("There is nothing to tabulate."));
    assert!(
        !second.contains("A draft") && !second.contains("think>"),
        "the thinking is not sent back: {second}"
    );
}

#[tokio::test]
async fn reasoning_content_deltas_arrive_as_thinking_over_the_websocket() {
    let fake = FakeOpenAi::start().await;
    fake.push(Behaviour::reasoning(
        "reasoning_content",
        &["Let me ", "count."],
        &["Three."],
    ));
    let app = app_with(fake.base_url(), json!({})).await;
    let token = app.user("local4@example.com").await;
    let id = conversation(&app, &token, json!({})).await;

    let frames = over_ws(&app, &token, &id, "how many?").await;
    let thinking: String = frames
        .iter()
        .filter(|f| f["event"] == "thinking")
        .map(|f| f["text"].as_str().unwrap())
        .collect();
    assert_eq!(thinking, "Let me count.");
    assert_eq!(frames.last().unwrap()["event"], "done", "{frames:?}");
    let (_, messages) = app
        .get(
            &format!("/api/v1/conversations/{id}/messages"),
            Some(&token),
        )
        .await;
    let reply = messages["items"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(reply["content"], "Three.");
    assert_eq!(reply["thinking"], "Let me count.");
}

#[tokio::test]
async fn a_context_length_refusal_is_a_422_that_says_what_to_do_on_every_path() {
    let fake = FakeOpenAi::start().await;
    let llama_cpp = json!({"error": {"code": 400, "message": "request (9120 tokens) exceeds the available context size (4096 tokens), try increasing it", "type": "exceed_context_size_error"}});
    fake.set_fallback(Behaviour::body(400, llama_cpp));
    let app = app_with(fake.base_url(), json!({})).await;
    let token = app.user("local5@example.com").await;
    let id = conversation(&app, &token, json!({})).await;

    let (status, body) = say(&app, &token, &id, "a long conversation").await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "context-too-long",
    );
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("too long for the model local's context window"),
        "{detail}"
    );
    assert!(
        detail.contains("4096 tokens"),
        "the server's words: {detail}"
    );
    assert!(detail.contains("models.local.context_window"), "{detail}");

    let resp = app
        .client
        .post(app.url(&format!("/api/v1/conversations/{id}/messages")))
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .json(&json!({"content": "again"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let frames = over_ws(&app, &token, &id, "and again").await;
    let problem = frames.last().unwrap();
    assert_eq!(problem["event"], "problem", "{frames:?}");
    assert_eq!(problem["code"], "context-too-long");
}

#[tokio::test]
async fn anthropics_prompt_is_too_long_is_a_422_too() {
    let fake = FakeAnthropic::start().await;
    fake.set_fallback(fake_anthropic::Behaviour::Error {
        status: 400,
        error_type: "invalid_request_error",
        message: "prompt is too long: 210000 tokens > 200000 maximum".into(),
        retry_after: None,
    });
    let url = fake.base_url();
    let app = TestApp::spawn_with(move |c| {
        let m: sheetgpt::config::ModelConfig = serde_json::from_value(json!({
            "provider": "anthropic", "base_url": url, "model": "claude-x", "max_retries": 0}))
        .unwrap();
        c.models.insert("claude".into(), m);
        c.default_model = Some("claude".into());
    })
    .await;
    let token = app.user("local6@example.com").await;
    let id = conversation(&app, &token, json!({})).await;
    let (status, body) = say(&app, &token, &id, "hello").await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "context-too-long",
    );
}

#[tokio::test]
async fn a_providers_error_is_shown_as_a_sentence_without_stack_traces_or_paths() {
    let fake = FakeOpenAi::start().await;
    fake.set_fallback(Behaviour::body(
        500,
        json!({"detail": "Model failed to load: /opt/models/qwen3.gguf\nTraceback (most recent call last):\n  File \"/usr/lib/python3/site-packages/server.py\", line 1"}),
    ));
    let app = app_with(fake.base_url(), json!({})).await;
    let token = app.user("local7@example.com").await;
    let id = conversation(&app, &token, json!({})).await;
    let (status, body) = say(&app, &token, &id, "hello").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("Model failed to load"), "{detail}");
    assert!(
        !detail.contains("Traceback") && !detail.contains("/usr/lib") && !detail.contains("/opt/"),
        "{detail}"
    );
}

async fn reported_window(app: &TestApp, token: &str, name: &str) -> Value {
    for _ in 0..50 {
        let (_, models) = app.get("/api/v1/models", Some(token)).await;
        let entry = models["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .cloned()
            .unwrap();
        if entry.get("server_context_window").is_some() {
            return entry["server_context_window"].clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Value::Null
}

#[tokio::test]
async fn the_real_context_window_is_read_from_llama_cpp_ollama_and_vllm() {
    let llama = FakeOpenAi::start_with(fake_openai::Options {
        props_n_ctx: Some(4096),
        ..fake_openai::Options::default()
    })
    .await;
    let ollama = FakeOpenAi::start_with(fake_openai::Options {
        ollama_show: Some(json!({
            "parameters": "num_ctx                        16384\nstop \"<|im_end|>\"",
            "model_info": {"general.architecture": "qwen3", "qwen3.context_length": 40960}
        })),
        ..fake_openai::Options::default()
    })
    .await;
    let vllm = FakeOpenAi::start_with(fake_openai::Options {
        models: Some(Arc::new(Mutex::new(vec![
            json!({"id": "qwen3", "object": "model", "max_model_len": 32768}),
        ]))),
        ..fake_openai::Options::default()
    })
    .await;
    let (a, b, c) = (llama.base_url(), ollama.base_url(), vllm.base_url());
    let app = TestApp::spawn_with(move |config| {
        config.models.insert("llama".into(), local(&a, json!({})));
        config.models.insert("ollama".into(), local(&b, json!({})));
        config.models.insert("vllm".into(), local(&c, json!({})));
    })
    .await;
    let token = app.user("local8@example.com").await;
    assert_eq!(reported_window(&app, &token, "llama").await, 4096);
    assert_eq!(reported_window(&app, &token, "ollama").await, 16384);
    assert_eq!(reported_window(&app, &token, "vllm").await, 32768);
}

#[tokio::test]
async fn discovered_models_are_listed_and_used_and_one_that_disappears_is_reported() {
    let listed = Arc::new(Mutex::new(vec![
        json!({"id": "qwen3:8b", "object": "model"}),
        json!({"id": "meta-llama/Llama-3.1-8B", "object": "model", "max_model_len": 8192}),
    ]));
    let fake = FakeOpenAi::start_with(fake_openai::Options {
        models: Some(listed.clone()),
        ..fake_openai::Options::default()
    })
    .await;
    let app = app_with(
        fake.base_url(),
        json!({"discover": true, "discover_cache_secs": 0}),
    )
    .await;
    let token = app.user("local9@example.com").await;
    let (_, models) = app.get("/api/v1/models", Some(&token)).await;
    let names: Vec<&str> = models["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"local/qwen3:8b"), "{names:?}");
    assert!(
        names.contains(&"local/meta-llama/Llama-3.1-8B"),
        "{names:?}"
    );

    let id = conversation(
        &app,
        &token,
        json!({"model": "local/meta-llama/Llama-3.1-8B"}),
    )
    .await;
    let (status, reply) = say(&app, &token, &id, "hello").await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let sent = fake.requests();
    let chat = sent
        .iter()
        .rev()
        .find(|r| r.path.ends_with("/chat/completions"))
        .unwrap();
    assert_eq!(chat.body["model"], "meta-llama/Llama-3.1-8B");

    // The server stops offering it.
    listed
        .lock()
        .unwrap()
        .retain(|m| m["id"] != "meta-llama/Llama-3.1-8B");
    let (status, body) = say(&app, &token, &id, "still there?").await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "model-unavailable",
    );
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("no longer offered")
    );
}

#[tokio::test]
async fn a_discovering_server_that_cannot_list_is_reported_in_the_model_list() {
    let fake = FakeOpenAi::start().await; // answers 404 to GET /v1/models
    let app = app_with(fake.base_url(), json!({"discover": true})).await;
    let token = app.user("local10@example.com").await;
    let (status, models) = app.get("/api/v1/models", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    let entry = models["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "local")
        .cloned()
        .unwrap();
    assert!(
        entry["discover_error"].as_str().unwrap().contains("404"),
        "{entry}"
    );
}
