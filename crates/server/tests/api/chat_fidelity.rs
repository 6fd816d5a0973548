//! What the user pastes is what gets stored, and a reply says what it really did: tables in a
//! user's message are read from the whole message (the model may see a summary), and a change
//! that failed says so in the reply's text and status.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::fakes::openai::{Behaviour, FakeOpenAi};
use crate::helpers::TestApp;

async fn conversation(app: &TestApp, token: &str) -> String {
    let (status, body) = app
        .post("/api/v1/conversations", Some(token), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
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

/// A CSV of `rows` airports with a header, about 52 characters a row.
fn airports_csv(rows: usize) -> String {
    let mut out = String::from("code,airport name,country,passengers 2023\n");
    for i in 1..=rows {
        out.push_str(&format!(
            "A{i:05},Airport number {i} International,Country {},{}\n",
            i % 40,
            1_000_000 + i
        ));
    }
    out
}

async fn all_rows(app: &TestApp, token: &str, table: &str) -> (Vec<String>, Vec<Value>) {
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    let mut names;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/tables/{table}/rows?limit=1000&cursor={c}"),
            None => format!("/api/v1/tables/{table}/rows?limit=1000"),
        };
        let (status, page) = app.get(&path, Some(token)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        names = page["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect();
        rows.extend(page["rows"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    (names, rows)
}

#[tokio::test]
async fn a_paste_longer_than_the_models_window_is_stored_whole_with_its_header() {
    let app = TestApp::spawn().await;
    let token = app.user("paste1@example.com").await;
    let id = conversation(&app, &token).await;
    let csv = airports_csv(3_000);
    assert!(csv.len() > 150_000, "as long as the paste that lost rows");
    let reply = say(&app, &token, &id, &csv).await;

    let table = reply["message"]["table_id"].as_str().unwrap();
    assert_eq!(reply["tables"][0]["source"], "message");
    assert_eq!(reply["tables"][0]["row_count"], 3_000);
    let (names, rows) = all_rows(&app, &token, table).await;
    assert_eq!(
        names,
        ["code", "airport name", "country", "passengers 2023"],
        "the real header"
    );
    assert_eq!(rows.len(), 3_000);
    assert_eq!(rows[0]["cells"][0], "A00001");
    assert_eq!(rows[2_999]["cells"][0], "A03000");
    assert_eq!(rows[2_999]["cells"][3], 1_003_000);

    // The model saw a summary, and the reply says so.
    let context = &reply["message"]["meta"]["context"];
    assert_eq!(context["new_message"], "tables_summarised", "{reply}");
    let text = reply["message"]["content"].as_str().unwrap();
    assert!(text.contains("3000 rows and 4 columns"), "{text}");
}

#[tokio::test]
async fn a_paste_that_fits_is_sent_whole_and_nothing_is_reported_trimmed() {
    let app = TestApp::spawn().await;
    let token = app.user("paste2@example.com").await;
    let id = conversation(&app, &token).await;
    let reply = say(&app, &token, &id, &airports_csv(20)).await;
    assert_eq!(reply["tables"][0]["row_count"], 20);
    assert!(reply["message"]["meta"].get("context").is_none(), "{reply}");
    assert_eq!(
        reply["tables"].as_array().unwrap().len(),
        1,
        "one table, not two"
    );
}

fn remote(url: &str) -> sheetgpt::config::ModelConfig {
    serde_json::from_value(json!({
        "provider": "openai", "base_url": url, "model": "gpt-fake",
        "context_window": 8192, "max_retries": 0
    }))
    .unwrap()
}

#[tokio::test]
async fn a_remote_model_is_sent_a_summary_of_a_long_paste_not_its_cut_end() {
    let fake = FakeOpenAi::start().await;
    fake.push(Behaviour::text(&["Noted: an airports table."]));
    let url = fake.base_url();
    let app = TestApp::spawn_with(move |c| {
        c.models.insert("fake".into(), remote(&url));
        c.default_model = Some("fake".into());
    })
    .await;
    let token = app.user("paste3@example.com").await;
    let id = conversation(&app, &token).await;
    let message = format!("Please look at these airports:\n{}", airports_csv(2_000));
    let reply = say(&app, &token, &id, &message).await;

    let sent = fake.requests();
    let last = sent[0].body["messages"].as_array().unwrap().last().unwrap()["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(last.starts_with("Please look at these airports:"), "{last}");
    assert!(
        last.contains(sheetgpt_core::paste::MARK) && last.contains("2000 rows × 4 columns"),
        "{last}"
    );
    assert!(
        last.contains("| A00001 |") && !last.contains("A02000"),
        "first rows as a sample, not the cut end"
    );
    assert!(last.len() < 10_000);
    assert_eq!(
        reply["message"]["meta"]["context"]["new_message"],
        "tables_summarised"
    );
    assert_eq!(reply["tables"][0]["row_count"], 2_000);
}

#[tokio::test]
async fn a_remote_model_repeating_the_pasted_table_does_not_make_a_second_copy() {
    let fake = FakeOpenAi::start().await;
    fake.push(Behaviour::text(&[
        "Here it is:\n\n| city | population |\n|---|---:|\n| Paris | 2102650 |\n| Lyon | 522250 |\n",
    ]));
    let url = fake.base_url();
    let app = TestApp::spawn_with(move |c| {
        c.models.insert("fake".into(), remote(&url));
        c.default_model = Some("fake".into());
    })
    .await;
    let token = app.user("paste4@example.com").await;
    let id = conversation(&app, &token).await;
    let reply = say(
        &app,
        &token,
        &id,
        "city,population\nParis,2102650\nLyon,522250",
    )
    .await;
    let tables = reply["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 1, "{reply}");
    assert_eq!(tables[0]["source"], "message");
}

#[tokio::test]
async fn regenerating_a_reply_to_a_paste_does_not_store_the_table_again() {
    let app = TestApp::spawn().await;
    let token = app.user("paste5@example.com").await;
    let id = conversation(&app, &token).await;
    let first = say(&app, &token, &id, &airports_csv(5)).await;
    let (status, again) = app
        .post(
            &format!("/api/v1/conversations/{id}/regenerate"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["message"]["table_id"], first["message"]["table_id"]);
    assert!(again["tables"].as_array().unwrap().is_empty(), "{again}");
    let (_, list) = app.get("/api/v1/tables", Some(&token)).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
}

#[tokio::test]
async fn a_pasted_table_that_cannot_be_stored_makes_the_reply_say_so() {
    let app = TestApp::spawn_with(|c| c.tables.max_rows = 10).await;
    let token = app.user("paste6@example.com").await;
    let id = conversation(&app, &token).await;
    let reply = say(&app, &token, &id, &airports_csv(11)).await;
    assert_eq!(reply["message"]["status"], "error", "{reply}");
    let text = reply["message"]["content"].as_str().unwrap();
    assert!(
        text.contains("**Not stored:**") && text.contains("at most 10"),
        "{text}"
    );
    assert!(
        reply["message"]["error"]
            .as_str()
            .unwrap()
            .contains("at most 10")
    );
    assert!(reply["message"]["table_id"].is_null());
}

#[tokio::test]
async fn a_sort_by_a_column_that_is_not_there_says_it_failed_and_suggests_the_closest() {
    let app = TestApp::spawn().await;
    let token = app.user("ops1@example.com").await;
    let id = conversation(&app, &token).await;
    let pasted = say(&app, &token, &id, &airports_csv(3)).await;
    let table = pasted["message"]["table_id"].as_str().unwrap().to_owned();

    let reply = say(&app, &token, &id, "sort by passengers desc").await;
    assert_eq!(reply["message"]["status"], "error", "{reply}");
    let text = reply["message"]["content"].as_str().unwrap();
    assert!(!text.contains("Done"), "{text}");
    assert!(text.contains("**Not applied:**"), "{text}");
    assert!(
        text.contains("did you mean `passengers 2023`?"),
        "the closest column is named: {text}"
    );
    assert!(text.contains("It is still version 1"), "{text}");
    assert!(reply["tables"].as_array().unwrap().is_empty());
    let error = reply["message"]["error"].as_str().unwrap();
    assert!(error.contains("passengers 2023"), "{error}");
    let (_, t) = app
        .get(&format!("/api/v1/tables/{table}"), Some(&token))
        .await;
    assert_eq!(t["version"], 1, "nothing changed");

    // The same in the stored message, and in the stream's `done` event.
    let (_, messages) = app
        .get(
            &format!("/api/v1/conversations/{id}/messages"),
            Some(&token),
        )
        .await;
    let last = messages["items"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["status"], "error");
    assert!(last["content"].as_str().unwrap().contains("Not applied"));
}

#[tokio::test]
async fn a_failed_change_is_an_error_in_the_streams_done_event() {
    let app = TestApp::spawn().await;
    let token = app.user("ops2@example.com").await;
    let id = conversation(&app, &token).await;
    say(&app, &token, &id, "city,founded\nParis,52 BC\nLyon,43 BC").await;
    let resp = app
        .client
        .post(app.url(&format!("/api/v1/conversations/{id}/messages")))
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .json(&json!({"content": "change column founded to integer"}))
        .send()
        .await
        .unwrap();
    let body = resp.text().await.unwrap();
    let done = body
        .split("\n\n")
        .find(|b| b.starts_with("event: done"))
        .and_then(|b| b.lines().find_map(|l| l.strip_prefix("data:")))
        .map(|d| serde_json::from_str::<Value>(d.trim()).unwrap())
        .unwrap();
    assert_eq!(done["status"], "error", "{body}");
    let error = done["error"].as_str().unwrap();
    assert!(
        error.contains("“Table from chat”") || error.contains("was not changed"),
        "{error}"
    );
    assert!(
        error.contains("52 BC"),
        "the cells that do not convert: {error}"
    );
    assert!(
        body.contains("Not applied"),
        "the reply's text says it: {body}"
    );
}

#[tokio::test]
async fn a_change_names_the_table_it_changed_and_use_table_picks_another() {
    let app = TestApp::spawn().await;
    let token = app.user("ops3@example.com").await;
    let id = conversation(&app, &token).await;
    let two = "Cities:\n\ncity,population\nParis,2102650\nLyon,522250\n\nand rivers:\n\n| river | length |\n|---|---|\n| Seine | 777 |\n| Loire | 1006 |\n";
    let reply = say(&app, &token, &id, two).await;
    let tables = reply["tables"].as_array().unwrap().clone();
    assert_eq!(tables.len(), 2, "{reply}");
    let first_name = tables[0]["name"].as_str().unwrap().to_owned();
    let second_name = tables[1]["name"].as_str().unwrap().to_owned();
    assert_ne!(first_name, second_name);

    // The current table is the last one pasted: "city" is not in it.
    let reply = say(&app, &token, &id, "sort by population desc").await;
    assert_eq!(reply["message"]["status"], "error");
    let text = reply["message"]["content"].as_str().unwrap();
    assert!(
        text.contains(&format!("“{second_name}” was not changed")),
        "{text}"
    );

    let reply = say(
        &app,
        &token,
        &id,
        &format!("use table {first_name}; sort by population desc"),
    )
    .await;
    assert_eq!(reply["message"]["status"], "complete", "{reply}");
    let text = reply["message"]["content"].as_str().unwrap();
    assert!(
        text.contains(&format!("Changed “{first_name}”: now version 2")),
        "{text}"
    );
    assert_eq!(reply["tables"][0]["table_id"], tables[0]["table_id"]);
    let (_, conv) = app
        .get(&format!("/api/v1/conversations/{id}"), Some(&token))
        .await;
    assert_eq!(conv["current_table_id"], tables[0]["table_id"]);
}

#[tokio::test]
async fn a_message_too_long_even_without_tables_is_cut_at_its_start_and_the_stream_says_so() {
    let app = TestApp::spawn().await;
    let token = app.user("paste7@example.com").await;
    let id = conversation(&app, &token).await;
    let prose = "This is a long note about nothing in particular.\n".repeat(3_000);
    let resp = app
        .client
        .post(app.url(&format!("/api/v1/conversations/{id}/messages")))
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .json(&json!({"content": prose}))
        .send()
        .await
        .unwrap();
    let body = resp.text().await.unwrap();
    let done = body
        .split("\n\n")
        .find(|b| b.starts_with("event: done"))
        .and_then(|b| b.lines().find_map(|l| l.strip_prefix("data:")))
        .map(|d| serde_json::from_str::<Value>(d.trim()).unwrap())
        .unwrap();
    assert_eq!(done["context"]["new_message"], "cut", "{done}");
    let left_out = done["context"]["cut_chars"].as_u64().unwrap();
    assert!(left_out > 10_000 && left_out < 150_000, "{left_out}");
    assert_eq!(left_out % 49, 0, "cut at a line break: {left_out}");
}
