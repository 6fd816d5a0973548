//! Model providers against local fakes of their APIs: what they send, what they make of the
//! answers, and how they retry, time out and let go.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use secrecy::SecretString;
use serde_json::json;
use sheetgpt::llm::anthropic::{AnthropicConfig, AnthropicModel};
use sheetgpt::llm::openai::{MaxTokensField, OpenAiConfig, OpenAiModel};
use sheetgpt::llm::{
    ChatMessage, ChatModel, ChatRequest, EventStream, FinishReason, Limits, LlmError, Role,
    StreamEvent, Usage,
};

use crate::fakes::anthropic::{self as fake_anthropic, FakeAnthropic};
use crate::fakes::openai::{self as fake_openai, FakeOpenAi};

const KEY: &str = "sk-test-0123456789-SECRET";
const IDLE: Duration = Duration::from_millis(300);

fn limits() -> Limits {
    Limits {
        connect_timeout: Duration::from_secs(1),
        first_token_timeout: Duration::from_secs(2),
        idle_timeout: IDLE,
        max_retries: 2,
        backoff: Duration::from_millis(10),
    }
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    sheetgpt::llm::http_client(&limits()).expect("client")
}

fn openai_with(fake: &FakeOpenAi, customize: impl FnOnce(&mut OpenAiConfig)) -> OpenAiModel {
    let mut config = OpenAiConfig::new(fake.base_url(), "gpt-test");
    config.api_key = Some(SecretString::from(KEY));
    config.limits = limits();
    customize(&mut config);
    OpenAiModel::new(config, client())
}

fn openai(fake: &FakeOpenAi) -> OpenAiModel {
    openai_with(fake, |_| {})
}

fn anthropic_with(
    fake: &FakeAnthropic,
    customize: impl FnOnce(&mut AnthropicConfig),
) -> AnthropicModel {
    let mut config = AnthropicConfig::new(fake.base_url(), "claude-test");
    config.api_key = Some(SecretString::from(KEY));
    config.limits = limits();
    customize(&mut config);
    AnthropicModel::new(config, client())
}

fn anthropic(fake: &FakeAnthropic) -> AnthropicModel {
    anthropic_with(fake, |_| {})
}

fn message(role: Role, content: &str) -> ChatMessage {
    ChatMessage {
        role,
        content: content.to_owned(),
    }
}

fn ask(text: &str) -> ChatRequest {
    ChatRequest {
        messages: vec![
            message(Role::System, "You answer with tables."),
            message(Role::User, text),
        ],
        max_tokens: Some(256),
        temperature: Some(0.2),
        response_schema: None,
    }
}

fn table_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "properties": {"columns": {"type": "array"}, "rows": {"type": "array"}},
        "required": ["columns", "rows"],
    })
}

/// Every event until the stream ends; the error that ended it, if any. Checks that nothing
/// comes after an error.
async fn drain(mut stream: EventStream) -> (Vec<StreamEvent>, Option<LlmError>) {
    let mut events = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => events.push(event),
            Err(error) => {
                assert!(stream.next().await.is_none(), "events after {error:?}");
                return (events, Some(error));
            }
        }
    }
    (events, None)
}

fn delta(text: &str) -> StreamEvent {
    StreamEvent::Delta(text.to_owned())
}

fn usage(prompt_tokens: u32, completion_tokens: u32) -> StreamEvent {
    StreamEvent::Usage(Usage {
        prompt_tokens,
        completion_tokens,
    })
}

/// The error `stream` fails with, for calls that must fail before the first event.
async fn stream_error(model: &dyn ChatModel, request: ChatRequest) -> LlmError {
    match model.stream(request).await {
        Ok(_) => panic!("the reply started"),
        Err(error) => error,
    }
}

#[tokio::test]
async fn openai_reply_streams_text_then_usage_then_done() {
    let fake = FakeOpenAi::start().await;
    fake.push(fake_openai::Behaviour::Stream {
        chunks: vec!["| city |".into(), " Paris |".into()],
        delay: Duration::from_millis(20),
        usage: Some((42, 7)),
        finish: "stop",
    });

    let stream = openai(&fake).stream(ask("capitals")).await.unwrap();
    let (events, error) = drain(stream).await;

    assert_eq!(error, None);
    assert_eq!(
        events,
        vec![
            delta("| city |"),
            delta(" Paris |"),
            usage(42, 7),
            StreamEvent::Done(FinishReason::Stop),
        ]
    );
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, "/v1/chat/completions");
    assert_eq!(
        requests[0].body,
        json!({
            "model": "gpt-test",
            "messages": [
                {"role": "system", "content": "You answer with tables."},
                {"role": "user", "content": "capitals"},
            ],
            "stream": true,
            "stream_options": {"include_usage": true},
            "max_tokens": 256,
            "temperature": 0.2,
        })
    );
}

#[tokio::test]
async fn reasoning_models_get_max_completion_tokens_and_extra_headers_are_sent() {
    let fake = FakeOpenAi::start().await;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("openai-organization", "org-test".parse().unwrap());
    let model = openai(&fake)
        .with_max_tokens_field(MaxTokensField::MaxCompletionTokens)
        .with_headers(headers);

    let (_, error) = drain(model.stream(ask("x")).await.unwrap()).await;

    assert_eq!(error, None);
    let sent = &fake.requests()[0];
    assert_eq!(sent.body["max_completion_tokens"], 256);
    assert!(sent.body.get("max_tokens").is_none(), "{}", sent.body);
    assert_eq!(sent.header("openai-organization"), Some("org-test"));
}

#[tokio::test]
async fn anthropic_reply_streams_text_then_usage_then_done() {
    let fake = FakeAnthropic::start_with(Some(KEY.to_owned())).await;
    fake.push(fake_anthropic::Behaviour::Stream {
        chunks: vec!["| city |".into(), " Paris |".into()],
        delay: Duration::from_millis(20),
        usage: (42, 7),
        stop_reason: "end_turn",
    });

    let stream = anthropic(&fake).stream(ask("capitals")).await.unwrap();
    let (events, error) = drain(stream).await;

    assert_eq!(error, None);
    assert_eq!(
        events,
        vec![
            delta("| city |"),
            delta(" Paris |"),
            usage(42, 7),
            StreamEvent::Done(FinishReason::Stop),
        ]
    );
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, "/v1/messages");
    assert_eq!(requests[0].header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(
        requests[0].body,
        json!({
            "model": "claude-test",
            "max_tokens": 256,
            "system": "You answer with tables.",
            "messages": [{"role": "user", "content": "capitals"}],
            "stream": true,
            "temperature": 0.2,
        })
    );
}

#[tokio::test]
async fn anthropic_request_without_max_tokens_gets_the_default() {
    let fake = FakeAnthropic::start().await;
    let mut request = ask("capitals");
    request.max_tokens = None;

    let stream = anthropic(&fake).stream(request).await.unwrap();
    let (_, error) = drain(stream).await;

    assert_eq!(error, None);
    assert_eq!(fake.requests()[0].body["max_tokens"], 4096);
}

#[tokio::test]
async fn local_server_stream_without_ids_or_usage_completes() {
    let fake = FakeOpenAi::start_local().await;
    fake.push(fake_openai::Behaviour::text(&["a", "b"]));

    let stream = openai(&fake).stream(ask("letters")).await.unwrap();
    let (events, error) = drain(stream).await;

    assert_eq!(error, None);
    assert_eq!(
        events,
        vec![
            delta("a"),
            delta("b"),
            StreamEvent::Done(FinishReason::Stop)
        ]
    );
}

#[tokio::test]
async fn stream_closed_after_the_finish_reason_without_done_marker_completes() {
    let fake = FakeOpenAi::start_with(fake_openai::Options {
        done_marker: false,
        ..fake_openai::Options::default()
    })
    .await;
    fake.push(fake_openai::Behaviour::text(&["a"]));

    let stream = openai(&fake).stream(ask("letters")).await.unwrap();
    let (events, error) = drain(stream).await;

    assert_eq!(error, None);
    assert_eq!(
        events,
        vec![
            delta("a"),
            usage(10, 1),
            StreamEvent::Done(FinishReason::Stop)
        ]
    );
}

#[tokio::test]
async fn replies_cut_by_the_token_limit_end_with_length() {
    let openai_fake = FakeOpenAi::start().await;
    openai_fake.push(fake_openai::Behaviour::Stream {
        chunks: vec!["a".into()],
        delay: Duration::ZERO,
        usage: None,
        finish: "length",
    });
    let anthropic_fake = FakeAnthropic::start().await;
    anthropic_fake.push(fake_anthropic::Behaviour::Stream {
        chunks: vec!["a".into()],
        delay: Duration::ZERO,
        usage: (1, 1),
        stop_reason: "max_tokens",
    });

    let (from_openai, _) = drain(openai(&openai_fake).stream(ask("x")).await.unwrap()).await;
    let (from_anthropic, _) =
        drain(anthropic(&anthropic_fake).stream(ask("x")).await.unwrap()).await;

    assert_eq!(
        from_openai.last(),
        Some(&StreamEvent::Done(FinishReason::Length))
    );
    assert_eq!(
        from_anthropic.last(),
        Some(&StreamEvent::Done(FinishReason::Length))
    );
}

#[tokio::test]
async fn structured_output_sends_the_schema_as_response_format() {
    let fake = FakeOpenAi::start().await;
    let model = openai_with(&fake, |c| {
        c.structured_output = sheetgpt::config::StructuredOutput::Auto;
    });
    let mut request = ask("capitals");
    request.response_schema = Some(table_schema());

    let (_, error) = drain(model.stream(request).await.unwrap()).await;

    assert_eq!(error, None);
    let body = &fake.requests()[0].body;
    assert_eq!(
        body["response_format"],
        json!({
            "type": "json_schema",
            "json_schema": {"name": "table", "schema": table_schema(), "strict": false},
        })
    );
    assert_eq!(body["messages"][0]["content"], "You answer with tables.");
}

#[tokio::test]
async fn without_structured_output_the_schema_goes_into_the_system_prompt() {
    let openai_fake = FakeOpenAi::start().await;
    let anthropic_fake = FakeAnthropic::start().await;
    let mut request = ask("capitals");
    request.response_schema = Some(table_schema());
    let schema_text = table_schema().to_string();

    let _ = drain(openai(&openai_fake).stream(request.clone()).await.unwrap()).await;
    let _ = drain(anthropic(&anthropic_fake).stream(request).await.unwrap()).await;

    let body = &openai_fake.requests()[0].body;
    assert!(body.get("response_format").is_none(), "{body}");
    let system = body["messages"][0]["content"].as_str().unwrap();
    assert!(system.starts_with("You answer with tables."), "{system}");
    assert!(system.contains(&schema_text), "{system}");
    assert_eq!(body["messages"][1]["content"], "capitals");

    let system = anthropic_fake.requests()[0].body["system"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(system.contains(&schema_text), "{system}");
}

#[tokio::test]
async fn rate_limited_request_is_retried_after_the_wait_the_server_asked_for() {
    let fake = FakeOpenAi::start().await;
    fake.push(fake_openai::Behaviour::rate_limited(1))
        .push(fake_openai::Behaviour::text(&["ok"]));

    let started = Instant::now();
    let stream = openai(&fake).stream(ask("x")).await.unwrap();
    let waited = started.elapsed();
    let (events, error) = drain(stream).await;

    assert_eq!(error, None);
    assert_eq!(events[0], delta("ok"));
    assert_eq!(fake.requests().len(), 2);
    assert!(waited >= Duration::from_millis(950), "waited {waited:?}");
}

#[tokio::test]
async fn rate_limit_asking_for_a_long_wait_fails_at_once() {
    let fake = FakeAnthropic::start().await;
    fake.push(fake_anthropic::Behaviour::rate_limited(120));

    let error = stream_error(&anthropic(&fake), ask("x")).await;

    assert_eq!(
        error,
        LlmError::RateLimited {
            retry_after: Some(Duration::from_secs(120))
        }
    );
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_until_one_succeeds() {
    let fake = FakeOpenAi::start().await;
    fake.push(fake_openai::Behaviour::status(500))
        .push(fake_openai::Behaviour::status(500))
        .push(fake_openai::Behaviour::text(&["ok"]));

    let stream = openai(&fake).stream(ask("x")).await.unwrap();
    let (events, error) = drain(stream).await;

    assert_eq!(error, None);
    assert_eq!(events[0], delta("ok"));
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn server_errors_beyond_the_retries_fail_with_the_upstream_message() {
    let fake = FakeAnthropic::start().await;
    for _ in 0..3 {
        fake.push(fake_anthropic::Behaviour::status(500));
    }

    let error = stream_error(&anthropic(&fake), ask("x")).await;

    assert_eq!(
        error,
        LlmError::Upstream {
            status: 500,
            message: "The fake answers 500".into()
        }
    );
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn anthropic_overloaded_error_event_before_any_text_is_retried() {
    let fake = FakeAnthropic::start().await;
    fake.push(fake_anthropic::Behaviour::StreamError {
        chunks: vec![],
        error_type: "overloaded_error",
    })
    .push(fake_anthropic::Behaviour::text(&["ok"]));

    let stream = anthropic(&fake).stream(ask("x")).await.unwrap();
    let (events, error) = drain(stream).await;

    assert_eq!(error, None);
    assert_eq!(events[0], delta("ok"));
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn anthropic_error_event_after_text_ends_the_reply_without_retry() {
    let fake = FakeAnthropic::start().await;
    fake.push(fake_anthropic::Behaviour::StreamError {
        chunks: vec!["partial".into()],
        error_type: "overloaded_error",
    });

    let stream = anthropic(&fake).stream(ask("x")).await.unwrap();
    let (events, error) = drain(stream).await;

    assert_eq!(events, vec![delta("partial")]);
    assert_eq!(error, Some(LlmError::RateLimited { retry_after: None }));
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn refused_credentials_are_not_retried() {
    let openai_fake = FakeOpenAi::start_with(fake_openai::Options {
        api_key: Some("sk-another-key".into()),
        ..fake_openai::Options::default()
    })
    .await;
    let anthropic_fake = FakeAnthropic::start_with(Some("sk-another-key".into())).await;

    let from_openai = stream_error(&openai(&openai_fake), ask("x")).await;
    let from_anthropic = stream_error(&anthropic(&anthropic_fake), ask("x")).await;

    assert_eq!(from_openai, LlmError::Unauthorized);
    assert_eq!(from_anthropic, LlmError::Unauthorized);
    assert_eq!(openai_fake.requests().len(), 1);
    assert_eq!(anthropic_fake.requests().len(), 1);
}

#[tokio::test]
async fn stall_in_the_middle_of_a_reply_ends_it_with_an_idle_timeout() {
    let fake = FakeOpenAi::start().await;
    fake.push(fake_openai::Behaviour::stall_after(&["a", "b"]));

    let mut stream = openai(&fake).stream(ask("x")).await.unwrap();
    assert_eq!(stream.next().await, Some(Ok(delta("a"))));
    assert_eq!(stream.next().await, Some(Ok(delta("b"))));
    let stalled = Instant::now();
    let next = tokio::time::timeout(IDLE * 4, stream.next()).await;

    assert_eq!(next, Ok(Some(Err(LlmError::Timeout("idle")))));
    assert!(stalled.elapsed() >= IDLE - Duration::from_millis(50));
    assert_eq!(stream.next().await, None);
}

#[tokio::test]
async fn anthropic_stall_in_the_middle_of_a_reply_ends_it_with_an_idle_timeout() {
    let fake = FakeAnthropic::start().await;
    fake.push(fake_anthropic::Behaviour::stall_after(&["a"]));

    let stream = anthropic(&fake).stream(ask("x")).await.unwrap();
    let (events, error) = tokio::time::timeout(IDLE * 4, drain(stream))
        .await
        .expect("the stall ends within the idle timeout");

    assert_eq!(events, vec![delta("a")]);
    assert_eq!(error, Some(LlmError::Timeout("idle")));
}

#[tokio::test]
async fn server_that_never_answers_hits_the_first_token_timeout() {
    let fake = FakeOpenAi::start().await;
    fake.push(fake_openai::Behaviour::Hang)
        .push(fake_openai::Behaviour::Hang);
    let model = openai_with(&fake, |c| {
        c.limits.first_token_timeout = Duration::from_millis(300);
        c.limits.max_retries = 1;
    });

    let started = Instant::now();
    let error = stream_error(&model, ask("x")).await;

    assert_eq!(error, LlmError::Timeout("first token"));
    assert_eq!(fake.requests().len(), 2);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn unreachable_server_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut config = OpenAiConfig::new(format!("http://{addr}/v1"), "gpt-test");
    config.limits = limits();
    let model = OpenAiModel::new(config, client());

    let error = stream_error(&model, ask("x")).await;

    assert!(matches!(error, LlmError::Connect(_)), "{error:?}");
}

#[tokio::test]
async fn malformed_chunk_ends_the_reply_with_a_protocol_error() {
    let fake = FakeOpenAi::start().await;
    fake.push(fake_openai::Behaviour::malformed_after(&["a"]));

    let stream = openai(&fake).stream(ask("x")).await.unwrap();
    let (events, error) = drain(stream).await;

    assert_eq!(events, vec![delta("a")]);
    assert!(matches!(error, Some(LlmError::Protocol(_))), "{error:?}");
}

#[tokio::test]
async fn malformed_event_before_any_text_fails_without_retry() {
    let fake = FakeAnthropic::start().await;
    fake.push(fake_anthropic::Behaviour::malformed_after(&[]));

    let error = stream_error(&anthropic(&fake), ask("x")).await;

    assert!(matches!(error, LlmError::Protocol(_)), "{error:?}");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn api_key_goes_only_in_its_header_and_never_into_errors() {
    let openai_fake = FakeOpenAi::start_with(fake_openai::Options {
        api_key: Some(KEY.into()),
        ..fake_openai::Options::default()
    })
    .await;
    let anthropic_fake = FakeAnthropic::start_with(Some(KEY.into())).await;
    // A server that echoes the key back in an error message.
    openai_fake
        .push(fake_openai::Behaviour::text(&["ok"]))
        .push(fake_openai::Behaviour::Error {
            status: 400,
            message: format!("key {KEY} may not use this model"),
            retry_after: None,
        });
    let model = openai(&openai_fake);

    let (_, error) = drain(model.stream(ask("x")).await.unwrap()).await;
    assert_eq!(error, None);
    let echoed = stream_error(&model, ask("x")).await;
    let (_, error) = drain(anthropic(&anthropic_fake).stream(ask("x")).await.unwrap()).await;
    assert_eq!(error, None);
    let wrong_key = openai_with(&openai_fake, |c| {
        c.api_key = Some(SecretString::from(format!("{KEY}-wrong")));
    });
    let refused = stream_error(&wrong_key, ask("x")).await;

    let sent = &openai_fake.requests()[0];
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(sent.header("x-api-key"), None);
    let sent = &anthropic_fake.requests()[0];
    assert_eq!(sent.header("x-api-key"), Some(KEY));
    assert_eq!(sent.header("authorization"), None);
    assert!(
        matches!(&echoed, LlmError::Upstream { status: 400, message } if message.contains("[redacted]")),
        "{echoed:?}"
    );
    assert_eq!(refused, LlmError::Unauthorized);
    for shown in [
        echoed.to_string(),
        format!("{echoed:?}"),
        refused.to_string(),
        format!("{refused:?}"),
        format!("{model:?}"),
        format!("{wrong_key:?}"),
    ] {
        assert!(!shown.contains(KEY), "the key shows in {shown}");
    }
}

#[tokio::test]
async fn dropping_the_stream_closes_the_connection() {
    let fake = FakeOpenAi::start().await;
    fake.push(fake_openai::Behaviour::Stream {
        chunks: (0..100).map(|i| format!("chunk {i} ")).collect(),
        delay: Duration::from_millis(20),
        usage: None,
        finish: "stop",
    });

    let mut stream = openai(&fake).stream(ask("x")).await.unwrap();
    assert_eq!(stream.next().await, Some(Ok(delta("chunk 0 "))));
    drop(stream);

    assert!(fake.client_disconnected(Duration::from_secs(1)).await);
}

#[tokio::test]
async fn replies_read_to_the_end_leave_the_connection_for_the_next_request() {
    let openai_fake = FakeOpenAi::start().await;
    let anthropic_fake = FakeAnthropic::start().await;
    let openai_model = openai(&openai_fake);
    let anthropic_model = anthropic(&anthropic_fake);

    for _ in 0..2 {
        let (_, error) = drain(openai_model.stream(ask("x")).await.unwrap()).await;
        assert_eq!(error, None);
        let (_, error) = drain(anthropic_model.stream(ask("x")).await.unwrap()).await;
        assert_eq!(error, None);
    }

    let openai_requests = openai_fake.requests();
    assert_eq!(openai_requests[0].peer, openai_requests[1].peer);
    let anthropic_requests = anthropic_fake.requests();
    assert_eq!(anthropic_requests[0].peer, anthropic_requests[1].peer);
}

fn with_schema(text: &str) -> ChatRequest {
    let mut request = ask(text);
    request.response_schema = Some(table_schema());
    request
}

#[tokio::test]
async fn auto_structured_output_falls_back_to_json_object_where_json_schema_is_refused() {
    // llama-cpp-python: 500 "Input should be 'text' or 'json_object'" for json_schema.
    let fake = FakeOpenAi::start_with(fake_openai::Options {
        response_formats: Some(vec!["json_object", "text"]),
        refusal: fake_openai::LLAMA_CPP_PYTHON_REFUSAL,
        ..fake_openai::Options::default()
    })
    .await;
    let model = openai_with(&fake, |c| {
        c.structured_output = sheetgpt::config::StructuredOutput::Auto;
    });

    let (events, error) = drain(model.stream(with_schema("capitals")).await.unwrap()).await;

    assert_eq!(error, None);
    assert_eq!(
        events[0],
        StreamEvent::Structured(sheetgpt::llm::StructuredForm::JsonObject)
    );
    let sent = fake.requests();
    assert_eq!(sent.len(), 2, "the refusal is not retried as a 5xx");
    assert_eq!(sent[0].body["response_format"]["type"], "json_schema");
    assert_eq!(
        sent[1].body["response_format"],
        json!({"type": "json_object", "schema": table_schema()})
    );
    // Remembered: the next request goes straight to the form that worked.
    let _ = drain(model.stream(with_schema("again")).await.unwrap()).await;
    let sent = fake.requests();
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[2].body["response_format"]["type"], "json_object");
}

#[tokio::test]
async fn a_server_taking_no_response_format_gets_the_schema_in_the_prompt() {
    let fake = FakeOpenAi::start_with(fake_openai::Options {
        response_formats: Some(vec![]),
        ..fake_openai::Options::default()
    })
    .await;
    let model = openai_with(&fake, |c| {
        c.structured_output = sheetgpt::config::StructuredOutput::Auto;
    });
    let (events, error) = drain(model.stream(with_schema("capitals")).await.unwrap()).await;
    assert_eq!(error, None);
    assert_eq!(
        events[0],
        StreamEvent::Structured(sheetgpt::llm::StructuredForm::Prompt)
    );
    let sent = fake.requests();
    assert_eq!(sent.len(), 3, "json_schema, json_object, then the prompt");
    assert!(sent[2].body.get("response_format").is_none());
    let system = sent[2].body["messages"][0]["content"].as_str().unwrap();
    assert!(system.contains(&table_schema().to_string()), "{system}");
}

#[tokio::test]
async fn a_pinned_form_that_the_server_refuses_is_an_error_not_a_fallback() {
    let fake = FakeOpenAi::start_with(fake_openai::Options {
        response_formats: Some(vec!["json_object"]),
        refusal: fake_openai::LLAMA_CPP_PYTHON_REFUSAL,
        ..fake_openai::Options::default()
    })
    .await;
    let model = openai_with(&fake, |c| {
        c.structured_output =
            sheetgpt::config::StructuredOutput::Pinned(sheetgpt::llm::StructuredForm::JsonSchema);
    });
    let error = model.stream(with_schema("capitals")).await.err().unwrap();
    assert!(matches!(error, LlmError::Unsupported(_)), "{error:?}");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn think_tags_in_the_content_become_thinking_apart_from_the_reply() {
    let fake = FakeOpenAi::start().await;
    fake.push(fake_openai::Behaviour::text(&[
        "<thi",
        "nk>\nThe user wants",
        " capitals.\n</th",
        "ink>\n\nParis",
        " is the capital.",
    ]));
    let (events, error) = drain(openai(&fake).stream(ask("capital?")).await.unwrap()).await;
    assert_eq!(error, None);
    let thinking: String = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Thinking(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    let text: String = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Delta(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(thinking, "\nThe user wants capitals.\n");
    assert_eq!(text, "Paris is the capital.");
}

#[tokio::test]
async fn reasoning_deltas_of_vllm_deepseek_and_openrouter_become_thinking() {
    for field in ["reasoning_content", "reasoning"] {
        let fake = FakeOpenAi::start().await;
        fake.push(fake_openai::Behaviour::reasoning(
            field,
            &["Let me ", "think."],
            &["Done."],
        ));
        let (events, _) = drain(openai(&fake).stream(ask("x")).await.unwrap()).await;
        assert_eq!(
            events[..3],
            [
                StreamEvent::Thinking("Let me ".into()),
                StreamEvent::Thinking("think.".into()),
                StreamEvent::Delta("Done.".into())
            ],
            "{field}"
        );
    }
}

#[tokio::test]
async fn anthropic_thinking_deltas_become_thinking() {
    let fake = FakeAnthropic::start().await;
    fake.push(fake_anthropic::Behaviour::Thinking {
        thinking: vec!["Hmm.".into()],
        chunks: vec!["Answer.".into()],
    });
    let (events, error) = drain(anthropic(&fake).stream(ask("x")).await.unwrap()).await;
    assert_eq!(error, None);
    assert_eq!(events[0], StreamEvent::Thinking("Hmm.".into()));
    assert_eq!(events[1], StreamEvent::Delta("Answer.".into()));
}

#[tokio::test]
async fn context_length_refusals_of_each_server_are_context_too_long() {
    let bodies = [
        // OpenAI
        json!({"error": {"message": "This model's maximum context length is 8192 tokens. However, your messages resulted in 9120 tokens. Please reduce the length of the messages.", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}),
        // llama.cpp's server
        json!({"error": {"code": 400, "message": "request (9120 tokens) exceeds the available context size (8192 tokens), try increasing it", "type": "exceed_context_size_error", "n_prompt_tokens": 9120, "n_ctx": 8192}}),
        // vLLM
        json!({"object": "error", "message": "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens (4000 in the messages, 1000 in the completion). Please reduce the length of the messages or completion.", "type": "BadRequestError", "param": null, "code": 400}),
    ];
    for body in bodies {
        let fake = FakeOpenAi::start().await;
        fake.push(fake_openai::Behaviour::body(400, body.clone()));
        let error = openai(&fake).stream(ask("x")).await.err().unwrap();
        assert!(
            matches!(error, LlmError::ContextTooLong(_)),
            "{body}: {error:?}"
        );
    }
    let fake = FakeAnthropic::start().await;
    fake.push(fake_anthropic::Behaviour::Error {
        status: 400,
        error_type: "invalid_request_error",
        message: "prompt is too long: 210000 tokens > 200000 maximum".into(),
        retry_after: None,
    });
    let error = anthropic(&fake).stream(ask("x")).await.err().unwrap();
    assert!(matches!(error, LlmError::ContextTooLong(_)), "{error:?}");
}
