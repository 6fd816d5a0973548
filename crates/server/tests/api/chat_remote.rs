//! Conversations through remote providers, against the local fakes.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::fakes::anthropic::FakeAnthropic;
use crate::fakes::openai::{Behaviour, FakeOpenAi};
use crate::helpers::{TestApp, assert_problem};

fn openai_model(base_url: &str, idle_secs: u64) -> sheetgpt::config::ModelConfig {
    serde_json::from_value(json!({
        "provider": "openai", "base_url": base_url, "model": "gpt-fake",
        "idle_timeout_secs": idle_secs, "first_token_timeout_secs": 5, "max_retries": 0,
        "price_input_per_mtok": 2.0, "price_output_per_mtok": 8.0
    }))
    .unwrap()
}

async fn app_with(fake: &FakeOpenAi, idle_secs: u64) -> TestApp {
    let url = fake.base_url();
    TestApp::spawn_with(move |c| {
        c.models
            .insert("fake".into(), openai_model(&url, idle_secs));
        c.default_model = Some("fake".into());
    })
    .await
}

async fn conversation(app: &TestApp, token: &str) -> String {
    let (status, body) = app
        .post("/api/v1/conversations", Some(token), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

async fn messages(app: &TestApp, token: &str, id: &str) -> Vec<Value> {
    let (_, body) = app
        .get(&format!("/api/v1/conversations/{id}/messages"), Some(token))
        .await;
    body["items"].as_array().unwrap().clone()
}

/// Waits until the reply is no longer `streaming` (the run stores it after the stream ends).
async fn settled(app: &TestApp, token: &str, id: &str) -> Value {
    for _ in 0..100 {
        let items = messages(app, token, id).await;
        if let Some(last) = items.last()
            && last["status"] != "streaming"
        {
            return last.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the reply never settled")
}

fn sse_request(app: &TestApp, token: &str, id: &str, content: &str) -> reqwest::RequestBuilder {
    app.client
        .post(app.url(&format!("/api/v1/conversations/{id}/messages")))
        .bearer_auth(token)
        .header("accept", "text/event-stream")
        .json(&json!({"content": content}))
}

/// Reads an SSE reply until its `start` event; returns the reply's message id.
async fn started_message_id<S, B>(body: &mut S) -> String
where
    S: futures_util::Stream<Item = reqwest::Result<B>> + Unpin,
    B: AsRef<[u8]>,
{
    let mut seen = String::new();
    loop {
        let chunk = body.next().await.unwrap().unwrap();
        seen.push_str(&String::from_utf8_lossy(chunk.as_ref()));
        if let Some(line) = seen
            .lines()
            .find(|l| l.starts_with("data: ") && l.contains("\"start\""))
        {
            let v: Value = serde_json::from_str(&line["data: ".len()..]).unwrap();
            return v["message_id"].as_str().unwrap().to_owned();
        }
    }
}

#[tokio::test]
async fn an_openai_compatible_reply_streams_through_with_its_usage_and_cost() {
    let fake = FakeOpenAi::start().await;
    fake.push(Behaviour::text(&["Hello", ", ", "world"]));
    let app = app_with(&fake, 30).await;
    let token = app.user("r1@example.com").await;
    let id = conversation(&app, &token).await;
    let text = sse_request(&app, &token, &id, "greet me")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let deltas: Vec<String> = text
        .split("\n\n")
        .filter(|b| b.contains("event: delta"))
        .filter_map(|b| b.lines().find_map(|l| l.strip_prefix("data: ")))
        .map(|d| {
            serde_json::from_str::<Value>(d).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(deltas, ["Hello", ", ", "world"]);
    let reply = settled(&app, &token, &id).await;
    assert_eq!(reply["content"], "Hello, world");
    assert_eq!(reply["status"], "complete");
    assert_eq!(
        (
            reply["prompt_tokens"].as_i64(),
            reply["completion_tokens"].as_i64()
        ),
        (Some(10), Some(3))
    );
    assert_eq!(reply["cost_micros"], 44, "10 × $2/M + 3 × $8/M = 44 µ$");
    let sent = &fake.requests()[0].body;
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["messages"][0]["role"], "system");
    assert_eq!(
        sent["messages"].as_array().unwrap().last().unwrap()["content"],
        "greet me"
    );
}

#[tokio::test]
async fn the_current_table_is_shown_to_the_model() {
    let fake = FakeOpenAi::start().await;
    let app = app_with(&fake, 30).await;
    let token = app.user("r2@example.com").await;
    let (_, conv) = app
        .post(
            "/api/v1/conversations",
            Some(&token),
            json!({"model": "offline"}),
        )
        .await;
    let id = conv["id"].as_str().unwrap();
    let (status, _) = app
        .post(
            &format!("/api/v1/conversations/{id}/messages"),
            Some(&token),
            json!({"content": "city,population\nParis,2102650\nLyon,522250"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .post(
            &format!("/api/v1/conversations/{id}/messages"),
            Some(&token),
            json!({"content": "which is bigger?", "model": "fake"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let system = fake.requests()[0].body["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        system.contains("population (integer)") && system.contains("| 1 | Paris | 2102650 |"),
        "{system}"
    );
    assert!(
        system.contains("sheetgpt-ops"),
        "the change protocol is explained"
    );
}

#[tokio::test]
async fn a_client_that_leaves_mid_stream_cancels_upstream_and_keeps_the_partial_reply() {
    let fake = FakeOpenAi::start().await;
    fake.push(Behaviour::Stream {
        chunks: (0..40).map(|i| format!("part{i} ")).collect(),
        delay: Duration::from_millis(100),
        usage: None,
        finish: "stop",
    });
    let app = app_with(&fake, 30).await;
    let token = app.user("r3@example.com").await;
    let id = conversation(&app, &token).await;
    let resp = sse_request(&app, &token, &id, "long answer please")
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("part2 ") {
        let chunk = body.next().await.unwrap().unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(body);
    assert!(
        fake.client_disconnected(Duration::from_secs(3)).await,
        "upstream request cancelled"
    );
    let reply = settled(&app, &token, &id).await;
    assert_eq!(reply["status"], "incomplete");
    let content = reply["content"].as_str().unwrap();
    assert!(
        content.starts_with("part0 part1 part2 ") && !content.contains("part39"),
        "{content}"
    );
}

#[tokio::test]
async fn a_stalled_provider_ends_the_stream_with_an_error_event_not_a_hang() {
    let fake = FakeOpenAi::start().await;
    fake.push(Behaviour::stall_after(&["Half an ", "answer"]));
    let app = app_with(&fake, 1).await;
    let token = app.user("r4@example.com").await;
    let id = conversation(&app, &token).await;
    let text = tokio::time::timeout(Duration::from_secs(10), async {
        sse_request(&app, &token, &id, "go")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    })
    .await
    .expect("the stream ended");
    assert!(
        text.contains("event: error") && text.contains("event: done"),
        "{text}"
    );
    let reply = settled(&app, &token, &id).await;
    assert_eq!(reply["status"], "error");
    assert_eq!(reply["content"], "Half an answer");
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("did not answer in time")
    );
}

#[tokio::test]
async fn a_rate_limited_provider_is_a_429_problem_with_retry_after() {
    let fake = FakeOpenAi::start().await;
    fake.push(Behaviour::rate_limited(7));
    let app = app_with(&fake, 30).await;
    let token = app.user("r5@example.com").await;
    let id = conversation(&app, &token).await;
    let (status, headers, body) = app
        .request(
            reqwest::Method::POST,
            &format!("/api/v1/conversations/{id}/messages"),
            Some(&token),
            Some(json!({"content": "hi"})),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
        "too-many-requests",
    );
    assert_eq!(headers["retry-after"], "7");
}

#[tokio::test]
async fn a_running_reply_can_be_cancelled() {
    let fake = FakeOpenAi::start().await;
    fake.push(Behaviour::Stream {
        chunks: (0..50).map(|i| format!("w{i} ")).collect(),
        delay: Duration::from_millis(100),
        usage: None,
        finish: "stop",
    });
    let app = app_with(&fake, 30).await;
    let token = app.user("r6@example.com").await;
    let id = conversation(&app, &token).await;
    let resp = sse_request(&app, &token, &id, "go").send().await.unwrap();
    let mut body = resp.bytes_stream();
    let message_id = started_message_id(&mut body).await;
    let (status, _) = app
        .post(
            &format!("/api/v1/conversations/{id}/messages/{message_id}/cancel"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let mut rest = String::new();
    while let Some(chunk) = body.next().await {
        rest.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    assert!(rest.contains("\"status\":\"incomplete\""), "{rest}");
    assert!(fake.client_disconnected(Duration::from_secs(3)).await);
    let (status, body) = app
        .post(
            &format!("/api/v1/conversations/{id}/messages/{message_id}/cancel"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT, "not-running");
}

#[tokio::test]
async fn an_anthropic_reply_works_the_same_way() {
    let fake = FakeAnthropic::start().await;
    let url = fake.base_url();
    let app = TestApp::spawn_with(move |c| {
        c.models.insert(
            "claude".into(),
            serde_json::from_value(json!({"provider": "anthropic", "base_url": url, "model": "claude-fake", "max_retries": 0})).unwrap(),
        );
    })
    .await;
    let token = app.user("r7@example.com").await;
    let (_, conv) = app
        .post(
            "/api/v1/conversations",
            Some(&token),
            json!({"model": "claude"}),
        )
        .await;
    let id = conv["id"].as_str().unwrap();
    let (status, body) = app
        .post(
            &format!("/api/v1/conversations/{id}/messages"),
            Some(&token),
            json!({"content": "hello"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message"]["status"], "complete");
    assert!(!body["message"]["content"].as_str().unwrap().is_empty());
    let sent = &fake.requests()[0].body;
    assert!(
        sent["system"]
            .as_str()
            .unwrap()
            .starts_with("You are SheetGPT")
    );
}

fn cut(chunks: &[&str], finish: &'static str) -> Behaviour {
    Behaviour::Stream {
        chunks: chunks.iter().map(|c| (*c).to_owned()).collect(),
        delay: Duration::ZERO,
        usage: Some((20, 10)),
        finish,
    }
}

#[tokio::test]
async fn a_reply_cut_at_the_output_limit_is_continued_and_its_rows_merged() {
    let fake = FakeOpenAi::start().await;
    fake.push(cut(
        &["Here:\n\n| city | pop |\n|---|---|\n| Paris | 1 |\n| Lyon | 2 |\n| Ni"],
        "length",
    ));
    fake.push(cut(&["ce | 3 |\n| Lille | 4 |\n"], "stop"));
    let app = app_with(&fake, 30).await;
    let token = app.user("r8@example.com").await;
    let id = conversation(&app, &token).await;
    let (status, body) = app
        .post(
            &format!("/api/v1/conversations/{id}/messages"),
            Some(&token),
            json!({"content": "four cities"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["tables"][0]["row_count"], 4, "{body}");
    assert_eq!(body["tables"][0]["complete"], true);
    assert_eq!(body["message"]["meta"]["continuations"], 1);
    assert_eq!(
        body["message"]["completion_tokens"], 20,
        "usage adds up over both parts"
    );
    let second = &fake.requests()[1].body["messages"];
    let n = second.as_array().unwrap().len();
    assert_eq!(second[n - 2]["role"], "assistant");
    assert!(second[n - 2]["content"].as_str().unwrap().ends_with("| Ni"));
    assert!(
        second[n - 1]["content"]
            .as_str()
            .unwrap()
            .contains("Continue exactly where you stopped")
    );
}

#[tokio::test]
async fn a_table_still_cut_after_the_allowed_continuations_says_so() {
    let fake = FakeOpenAi::start().await;
    fake.push(cut(&["| a | b |\n|---|---|\n| 1 | 2 |\n"], "length"));
    fake.push(cut(&["| 3 | 4 |\n"], "length"));
    let url = fake.base_url();
    let app = TestApp::spawn_with(move |c| {
        c.models.insert("fake".into(), openai_model(&url, 30));
        c.default_model = Some("fake".into());
        c.chat.max_continuations = 1;
    })
    .await;
    let token = app.user("r9@example.com").await;
    let id = conversation(&app, &token).await;
    let (_, body) = app
        .post(
            &format!("/api/v1/conversations/{id}/messages"),
            Some(&token),
            json!({"content": "many rows"}),
        )
        .await;
    assert_eq!(fake.requests().len(), 2);
    assert_eq!(body["tables"][0]["complete"], false, "{body}");
    assert_eq!(body["tables"][0]["row_count"], 2);
    assert_eq!(body["message"]["meta"]["cut_at_output_limit"], true);
    assert_eq!(body["message"]["finish_reason"], "length");
}

#[tokio::test]
async fn an_azure_style_deployment_url_and_key_header_work() {
    let fake = FakeOpenAi::start().await;
    fake.push(Behaviour::text(&["from Azure"]));
    let host = fake.base_url().trim_end_matches("/v1").to_owned();
    let app = TestApp::spawn_with(move |c| {
        let mut m: sheetgpt::config::ModelConfig = serde_json::from_value(json!({
            "provider": "openai",
            "base_url": format!("{host}/openai/deployments/gpt4o?api-version=2024-10-21"),
            "model": "gpt-4o", "api_key_header": "api-key", "max_retries": 0
        }))
        .unwrap();
        m.api_key = Some(secrecy::SecretString::from("azure-key-123"));
        c.models.insert("azure".into(), m);
    })
    .await;
    let token = app.user("r10@example.com").await;
    let (_, conv) = app
        .post(
            "/api/v1/conversations",
            Some(&token),
            json!({"model": "azure"}),
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
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["message"]["content"], "from Azure");
    let seen = &fake.requests()[0];
    assert!(
        seen.path
            .starts_with("/openai/deployments/gpt4o/chat/completions"),
        "{}",
        seen.path
    );
    assert_eq!(seen.header("api-key"), Some("azure-key-123"));
    assert_eq!(seen.header("authorization"), None);
}

/// Behind a balancer, Stop may reach an instance other than the one writing the reply: that
/// one stops it all the same.
#[tokio::test]
async fn a_reply_running_on_another_instance_is_stopped_too() {
    let fake = FakeOpenAi::start().await;
    fake.push(Behaviour::Stream {
        chunks: (0..100).map(|i| format!("w{i} ")).collect(),
        delay: Duration::from_millis(100),
        usage: None,
        finish: "stop",
    });
    let writer = app_with(&fake, 30).await;
    let other = writer
        .sibling(|c| {
            c.models
                .insert("fake".into(), openai_model(&fake.base_url(), 30));
            c.default_model = Some("fake".into());
        })
        .await;

    let token = writer.user("r-two@example.com").await;
    let id = conversation(&writer, &token).await;
    let resp = sse_request(&writer, &token, &id, "go")
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    let message_id = started_message_id(&mut body).await;
    let started = std::time::Instant::now();
    let (status, _) = other
        .post(
            &format!("/api/v1/conversations/{id}/messages/{message_id}/cancel"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let mut rest = String::new();
    while let Some(chunk) = body.next().await {
        rest.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    assert!(rest.contains("\"status\":\"incomplete\""), "{rest}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped in {:?}, not run to its end (10 s)",
        started.elapsed()
    );
    assert!(fake.client_disconnected(Duration::from_secs(3)).await);
}
