//! Google Sheets against the fake Google: connecting with OAuth2 + PKCE, exports into new and
//! existing spreadsheets with a template, sharing, links that follow the table, chunking,
//! pacing, retries, token refresh, revoked grants, the service account, and privacy.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::exports::{cities, wait_for};
use crate::fakes::google::{CLIENT_ID, CLIENT_SECRET, Call, FakeGoogle};
use crate::helpers::{IntoPair, TestApp, assert_problem, set_cookie_value};

pub fn configure(c: &mut sheetgpt::Config, fake: &FakeGoogle) {
    let g = &mut c.google;
    g.client_id = CLIENT_ID.to_owned();
    g.client_secret = Some(SecretString::from(CLIENT_SECRET));
    g.auth_url = format!("{}/o/oauth2/v2/auth", fake.base);
    g.token_url = format!("{}/token", fake.base);
    g.revoke_url = format!("{}/revoke", fake.base);
    g.sheets_api_url = fake.base.clone();
    g.drive_api_url = fake.base.clone();
    g.redirect_url = "http://127.0.0.1:8080/api/v1/integrations/google/callback".to_owned();
    g.write_burst = 1000;
    g.writes_per_minute = 60_000;
    c.exports.poll_ms = 50;
}

async fn app(fake: &FakeGoogle) -> TestApp {
    let fake = fake.clone();
    TestApp::spawn_with(move |c| configure(c, &fake)).await
}

/// `POST /connect`: the consent URL and the browser binding cookie it set.
pub async fn start_connect(app: &TestApp, token: &str) -> (String, String) {
    let (status, headers, body) = app
        .request(
            Method::POST,
            "/api/v1/integrations/google/connect",
            Some(token),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let cookie = set_cookie_value(&headers, "sheetgpt_google_connect").expect("binding cookie");
    (
        body["authorization_url"].as_str().unwrap().to_owned(),
        cookie,
    )
}

/// The callback as the browser holding `cookie` (the binding) reaches it; its redirect.
pub async fn callback_with(app: &TestApp, query: &str, cookie: &str) -> String {
    let resp = app
        .client
        .get(app.url(&format!("/api/v1/integrations/google/callback?{query}")))
        .header("cookie", format!("sheetgpt_google_connect={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    resp.headers()["location"].to_str().unwrap().to_owned()
}

/// Connect → Google's consent (the fake approves) → our callback, in one browser. Returns the
/// callback's redirect.
pub async fn connect(app: &TestApp, token: &str) -> String {
    let (url, cookie) = start_connect(app, token).await;
    let query = consent(app, &url).await;
    callback_with(app, &query, &cookie).await
}

async fn export(app: &TestApp, token: &str, body: Value) -> Value {
    let (status, job) = app.post("/api/v1/exports", Some(token), body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    wait_for(
        app,
        token,
        job["id"].as_str().unwrap(),
        &["succeeded", "failed"],
    )
    .await
}

async fn link(app: &TestApp, token: &str, id: &str) -> Value {
    let (status, link) = app
        .get(&format!("/api/v1/sheet-links/{id}"), Some(token))
        .await;
    assert_eq!(status, StatusCode::OK, "{link}");
    link
}

/// Waits until the link has synced `version`.
async fn synced(app: &TestApp, token: &str, id: &str, version: i64) -> Value {
    for _ in 0..400 {
        let l = link(app, token, id).await;
        if l["last_synced_version"] == version || l["status"] == "error" {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("link {id} never synced version {version}");
}

#[tokio::test]
async fn connect_export_share_change_and_the_sheet_follows() {
    let fake = FakeGoogle::start().await;
    let app = app(&fake).await;
    let token = app.user("g1@example.com").await;

    let (status, body) = app.get("/api/v1/integrations/google", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "not_connected");
    assert_eq!(connect(&app, &token).await, "/?google=connected");
    let (_, body) = app.get("/api/v1/integrations/google", Some(&token)).await;
    assert_eq!(body["connected"], true, "{body}");
    assert_eq!(body["scopes"].as_array().unwrap().len(), 2);

    // The consent URL asked for offline access with PKCE; the token request sent the verifier.
    let exchange = fake
        .calls()
        .into_iter()
        .find(|c| c.path == "/token")
        .unwrap();
    assert_eq!(exchange.form["grant_type"], "authorization_code");
    assert!(exchange.form["code_verifier"].len() >= 43);

    // Encrypted at rest: the database never holds the refresh token Google issued.
    let issued = fake.issued_refresh_tokens();
    let stored: Vec<sheetgpt::db::entity::google_account::Model> =
        <sheetgpt::db::entity::google_account::Entity as sea_orm::EntityTrait>::find()
            .all(&app.state.db)
            .await
            .unwrap();
    assert_eq!(stored.len(), 1);
    assert!(!stored[0].encrypted_refresh_token.contains(&issued[0]));
    assert!(!stored[0].encrypted_refresh_token.contains("s3cr3t"));

    let table = cities(&app, &token).await;
    let (_, template) = app
        .post(
            "/api/v1/templates",
            Some(&token),
            json!({"name": "Towns", "template": {
                "columns": [
                    {"source": "city", "header": "City"},
                    {"source": "population", "header": "People", "total": "sum",
                     "conditional": [{"when": {"op": "greater_than", "value": 1000000}, "style": {"bold": true}}]},
                    {"source": "founded", "header": "Founded", "format": {"number_format": "dd/mm/yyyy"}},
                    {"source": "price", "header": "Price"}
                ],
                "layout": {"title_rows": ["Cities"], "header": {"background": "#1F4E78"}}
            }}),
        )
        .await;
    let done = export(
        &app,
        &token,
        json!({"table_id": table, "template_id": template["id"], "destination": {
            "type": "google_sheets", "mode": "new_spreadsheet", "title": "Cities 2024", "sheet": "Towns",
            "share_with": [{"email": "boss@example.com", "role": "writer"}], "link": true
        }}),
    )
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(done["file"].is_null());
    let sheet = &done["sheet"];
    let id = sheet["spreadsheet_id"].as_str().unwrap().to_owned();
    assert_eq!(sheet["sheet_title"], "Towns");
    assert!(sheet["spreadsheet_url"].as_str().unwrap().contains(&id));

    let book = fake.spreadsheet(&id);
    assert_eq!(book.title, "Cities 2024");
    let tab = &book.sheets[0];
    assert_eq!(tab.cell(0, 0), json!("Cities"), "title row");
    assert_eq!(tab.cell(2, 0), json!("City"), "header after a blank row");
    assert_eq!(tab.cell(2, 1), json!("People"));
    assert_eq!(tab.cell(3, 0), json!("Paris"));
    assert_eq!(tab.cell(3, 1), json!(2102650), "numbers stay numbers");
    assert_eq!(tab.cell(3, 2), json!(45322.0), "dates as serial numbers");
    assert_eq!(tab.cell(3, 3), json!(12.5));
    assert_eq!(tab.cell(5, 1), json!(""), "an empty cell");
    assert_eq!(
        tab.cell(6, 1),
        json!("=SUBTOTAL(109,B4:B6)"),
        "totals under the data"
    );
    assert_eq!(tab.conditional_rules, 1);
    assert_eq!(
        book.permissions,
        vec![json!({"type": "user", "role": "writer", "emailAddress": "boss@example.com"})]
    );

    let calls = fake.calls();
    let values: Vec<_> = calls
        .iter()
        .filter(|c| c.path.contains("/values:batchUpdate"))
        .collect();
    assert_eq!(
        values[0].body["valueInputOption"], "RAW",
        "the data is never parsed as formulas"
    );
    assert_eq!(
        values.last().unwrap().body["valueInputOption"],
        "USER_ENTERED",
        "only the totals row"
    );
    let format = calls
        .iter()
        .find(|c| c.path.ends_with(":batchUpdate") && !c.path.contains("values"))
        .unwrap();
    let requests = format.body["requests"].to_string();
    assert!(
        requests.contains("\"frozenRowCount\":3"),
        "header frozen: {requests}"
    );
    assert!(
        requests.contains("dd/mm/yyyy"),
        "the template's number format"
    );
    assert!(requests.contains("\"type\":\"DATE\""));
    assert!(requests.contains("NUMBER_GREATER"));
    assert!(requests.contains("setBasicFilter"));
    assert_eq!(
        sheet["api_calls"],
        calls.iter().filter(|c| c.bearer.is_some()).count()
    );

    // A one-cell change: the sheet follows, with one row written in place.
    let link_id = sheet["link_id"].as_str().unwrap().to_owned();
    fake.clear_calls();
    let (status, _) = app
        .post(
            &format!("/api/v1/tables/{table}/changes"),
            Some(&token),
            json!({"ops": [{"op": "set_cells", "cells": [{"row": 2, "column": "population", "value": 530000}]}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let l = synced(&app, &token, &link_id, 2).await;
    assert_eq!(l["status"], "active", "{l}");
    assert!(l["last_error"].is_null());
    assert_eq!(fake.spreadsheet(&id).sheets[0].cell(4, 1), json!(530000));
    let sync_calls: Vec<_> = fake
        .calls()
        .into_iter()
        .filter(|c| c.bearer.is_some())
        .collect();
    assert_eq!(sync_calls.len(), 2, "one read, one write: {sync_calls:?}");
    let write = &sync_calls[1];
    assert_eq!(write.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(write.body["data"][0]["range"], "'Towns'!A5");

    // A structural change (a new row) rewrites the tab.
    fake.clear_calls();
    let (status, _) = app
        .post(
            &format!("/api/v1/tables/{table}/changes"),
            Some(&token),
            json!({"ops": [{"op": "insert_rows", "rows": [{"city": "Lille", "population": 236000}]}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    synced(&app, &token, &link_id, 3).await;
    let tab = fake.spreadsheet(&id).sheets[0].clone();
    assert_eq!(tab.cell(6, 0), json!("Lille"));
    assert_eq!(tab.cell(7, 1), json!("=SUBTOTAL(109,B4:B7)"));
    assert_eq!(
        tab.conditional_rules, 1,
        "old rules removed before new ones"
    );

    // Unlink: later changes leave the sheet alone.
    let (status, _) = app
        .delete(&format!("/api/v1/sheet-links/{link_id}"), Some(&token))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    fake.clear_calls();
    app.post(
        &format!("/api/v1/tables/{table}/changes"),
        Some(&token),
        json!({"ops": [{"op": "delete_rows", "rows": [1]}]}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(fake.calls().is_empty(), "no sync after unlinking");

    // Disconnect: revoked at Google, gone here.
    let (status, body) = app
        .request(
            Method::DELETE,
            "/api/v1/integrations/google",
            Some(&token),
            None,
        )
        .await
        .into_pair();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["revoked_at_google"],
        true,
        "{:?}",
        fake.calls()
            .into_iter()
            .filter(|c| c.path == "/revoke")
            .collect::<Vec<_>>()
    );
    let revoke = fake
        .calls()
        .into_iter()
        .find(|c| c.path == "/revoke")
        .unwrap();
    assert_eq!(revoke.form["token"], issued[0]);
    let (_, body) = app.get("/api/v1/integrations/google", Some(&token)).await;
    assert_eq!(body["status"], "not_connected");
}

#[tokio::test]
async fn the_oauth_state_is_single_use_and_bound_to_its_session() {
    let fake = FakeGoogle::start().await;
    let app = app(&fake).await;
    let token = app.user("g2@example.com").await;
    let (url, cookie) = start_connect(&app, &token).await;
    for want in [
        "access_type=offline",
        "code_challenge_method=S256",
        "prompt=consent",
        "drive.file",
    ] {
        assert!(url.contains(want), "{want} in {url}");
    }
    let query = consent(&app, &url).await;
    // A forged state.
    let forged = query.replace("state=", "state=x");
    assert_eq!(
        callback_with(&app, &forged, &cookie).await,
        "/?google=error&reason=invalid-oauth-state"
    );
    assert_eq!(
        callback_with(&app, &query, &cookie).await,
        "/?google=connected"
    );
    assert_eq!(
        callback_with(&app, &query, &cookie).await,
        "/?google=error&reason=invalid-oauth-state",
        "used once"
    );
    assert_eq!(
        callback_with(&app, "error=access_denied&state=zzz", &cookie).await,
        "/?google=denied"
    );

    // A state started by a session that signed out since is refused.
    let (url, cookie) = start_connect(&app, &token).await;
    let query = consent(&app, &url).await;
    let (status, _) = app
        .post("/api/v1/auth/logout", Some(&token), json!({}))
        .await;
    assert!(status.is_success(), "{status}");
    assert_eq!(
        callback_with(&app, &query, &cookie).await,
        "/?google=error&reason=invalid-oauth-state"
    );
}

#[tokio::test]
async fn large_exports_are_chunked_and_paced_to_the_write_quota() {
    let fake = FakeGoogle::start().await;
    let cfg = fake.clone();
    let app = TestApp::spawn_with(move |c| {
        configure(c, &cfg);
        c.google.cells_per_request = 400;
        // 10 writes a second, one at a time.
        c.google.writes_per_minute = 600;
        c.google.write_burst = 1;
    })
    .await;
    let token = app.user("g3@example.com").await;
    connect(&app, &token).await;
    let rows: Vec<Value> = (0..1000)
        .map(|i| json!({"n": i, "label": format!("row {i}")}))
        .collect();
    let (status, table) = app
        .post(
            "/api/v1/tables",
            Some(&token),
            json!({"name": "Numbers", "rows": rows}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{table}");
    fake.clear_calls();
    let done = export(
        &app,
        &token,
        json!({"table_id": table["id"], "destination": {"type": "google_sheets"}}),
    )
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let calls = fake.calls();
    let values: Vec<_> = calls
        .iter()
        .filter(|c| c.path.contains("/values:batchUpdate"))
        .collect();
    // 400 cells a request over 2 columns: 200 rows each, so 5 requests for 1,000 rows.
    assert_eq!(values.len(), 5);
    for call in &values {
        let cells: usize = call.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                d["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_array().unwrap().len())
                    .sum::<usize>()
            })
            .sum();
        assert!(cells <= 400 + 2, "a request within the limit: {cells}");
    }
    let id = done["sheet"]["spreadsheet_id"].as_str().unwrap();
    let tab = &fake.spreadsheet(id).sheets[0];
    assert_eq!(tab.cell(1000, 0), json!(999), "the last row");
    let writes: Vec<_> = calls.iter().filter(|c| c.is_write()).collect();
    assert_eq!(
        done["sheet"]["api_calls"],
        writes.len(),
        "every call was a write"
    );
    assert_paced(&writes, Duration::from_millis(100));
}

/// Writes arrive no faster than one per `interval`: over the whole run (one interval of
/// slack for the first request's own delay), and never more than ten and a little in any
/// ten intervals. Single gaps are not checked: a write held up on its way makes the next
/// gap look short without the pace being broken.
fn assert_paced(writes: &[&crate::fakes::google::Call], interval: Duration) {
    assert!(writes.len() >= 5, "{} writes", writes.len());
    let span = writes[writes.len() - 1].at.duration_since(writes[0].at);
    let expected = interval * u32::try_from(writes.len() - 1).unwrap();
    assert!(
        span + interval >= expected,
        "{} writes in {span:?}: paced to one per {interval:?} they take {expected:?}",
        writes.len()
    );
    for (i, first) in writes.iter().enumerate() {
        let within = writes[i..]
            .iter()
            .take_while(|w| w.at.duration_since(first.at) < interval * 10)
            .count();
        assert!(within <= 11, "{within} writes within {:?}", interval * 10);
    }
}

#[tokio::test]
async fn slow_downs_failures_and_expired_tokens_are_retried() {
    let fake = FakeGoogle::start().await;
    let app = app(&fake).await;
    let token = app.user("g4@example.com").await;
    connect(&app, &token).await;
    let table = cities(&app, &token).await;

    fake.fail("/values:batchUpdate", 429, Some(1));
    fake.fail("/values:batchUpdate", 503, None);
    fake.expire_access_tokens();
    fake.clear_calls();
    let started = std::time::Instant::now();
    let done = export(
        &app,
        &token,
        json!({"table_id": table, "destination": {"type": "google_sheets"}}),
    )
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 1, "retried within the attempt");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    let calls = fake.calls();
    let refreshed = calls
        .iter()
        .any(|c| c.path == "/token" && c.form["grant_type"] == "refresh_token");
    assert!(refreshed, "a 401 refreshed the access token");
    let value_writes = calls
        .iter()
        .filter(|c| c.path.contains("/values:batchUpdate"))
        .count();
    assert_eq!(
        value_writes, 3,
        "the write that met 429 and the one that met 503 were sent again"
    );
}

#[tokio::test]
async fn a_revoked_grant_asks_for_reconnecting_and_is_not_retried() {
    let fake = FakeGoogle::start().await;
    let app = app(&fake).await;
    let token = app.user("g5@example.com").await;
    connect(&app, &token).await;
    let table = cities(&app, &token).await;
    fake.revoke_grants();
    let done = export(
        &app,
        &token,
        json!({"table_id": table, "destination": {"type": "google_sheets"}}),
    )
    .await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["attempts"], 1);
    assert!(
        done["error"]
            .as_str()
            .unwrap()
            .contains("connect your Google account again")
    );
    let (_, body) = app.get("/api/v1/integrations/google", Some(&token)).await;
    assert_eq!(body["status"], "reconnect_required");
    let (status, body) = app
        .post(
            "/api/v1/exports",
            Some(&token),
            json!({"table_id": table, "destination": {"type": "google_sheets"}}),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::CONFLICT,
        "google-reconnect-required",
    );
    // Connecting again fixes it.
    assert_eq!(connect(&app, &token).await, "/?google=connected");
    let done = export(
        &app,
        &token,
        json!({"table_id": table, "destination": {"type": "google_sheets"}}),
    )
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
}

#[tokio::test]
async fn existing_spreadsheets_get_new_tabs_replaced_tabs_and_appended_rows() {
    let fake = FakeGoogle::start().await;
    let app = app(&fake).await;
    let token = app.user("g6@example.com").await;
    connect(&app, &token).await;
    let table = cities(&app, &token).await;
    fake.add_spreadsheet("book-1", &["Main", "Log"]);
    fake.set_cell("book-1", "Main", 0, 0, json!("old"));
    fake.set_cell("book-1", "Main", 40, 3, json!("stale"));
    fake.set_cell("book-1", "Log", 0, 0, json!("existing"));
    let url = "https://docs.google.com/spreadsheets/d/book-1/edit#gid=0";

    let dest = |mode: &str, sheet: &str| json!({"table_id": table, "destination": {"type": "google_sheets", "mode": mode, "spreadsheet": url, "sheet": sheet}});
    let done = export(&app, &token, dest("new_tab", "Cities")).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let book = fake.spreadsheet("book-1");
    let tab = book.sheets.iter().find(|s| s.title == "Cities").unwrap();
    assert_eq!(tab.cell(1, 0), json!("Paris"));
    let done = export(&app, &token, dest("new_tab", "Cities")).await;
    assert_eq!(done["status"], "failed", "the tab exists: {done}");
    assert_eq!(done["attempts"], 1);

    let done = export(&app, &token, dest("replace_tab", "Main")).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let main = fake.spreadsheet("book-1").sheets[0].clone();
    assert_eq!(main.cell(0, 0), json!("city"));
    assert_eq!(
        main.cell(40, 3),
        Value::Null,
        "the old contents are cleared"
    );

    let done = export(&app, &token, dest("append", "Log")).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let log = fake.spreadsheet("book-1").sheets[1].clone();
    assert_eq!(log.cell(0, 0), json!("existing"));
    assert_eq!(
        log.cell(1, 0),
        json!("Paris"),
        "rows go under what was there, without a header"
    );
    assert_eq!(log.cell(3, 0), json!("Nice"));

    let done = export(&app, &token, dest("replace_tab", "Nope")).await;
    assert_eq!(done["status"], "failed");
    assert!(
        done["error"].as_str().unwrap().contains("no tab named"),
        "{done}"
    );

    let (status, body) = app
        .post(
            "/api/v1/exports",
            Some(&token),
            json!({"table_id": table, "destination": {"type": "google_sheets", "mode": "append"}}),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
    let (status, body) = app
        .post("/api/v1/exports", Some(&token), json!({"table_id": table, "destination": {"type": "google_sheets", "mode": "append", "spreadsheet": "book-1", "link": true}}))
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
    let (status, body) = app
        .post("/api/v1/exports", Some(&token), json!({"table_id": table, "destination": {"type": "google_sheets", "share_with": [{"email": "nope", "role": "owner"}]}}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

#[tokio::test]
async fn without_a_connection_google_exports_are_refused_and_links_are_private() {
    let fake = FakeGoogle::start().await;
    let app = app(&fake).await;
    let alice = app.user("g7a@example.com").await;
    let bob = app.user("g7b@example.com").await;
    let table = cities(&app, &bob).await;
    let (status, body) = app
        .post(
            "/api/v1/exports",
            Some(&bob),
            json!({"table_id": table, "destination": {"type": "google_sheets"}}),
        )
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT, "google-not-connected");

    connect(&app, &alice).await;
    let alice_table = cities(&app, &alice).await;
    let done = export(
        &app,
        &alice,
        json!({"table_id": alice_table, "destination": {"type": "google_sheets", "link": true}}),
    )
    .await;
    let link_id = done["sheet"]["link_id"].as_str().unwrap().to_owned();
    for (method, path) in [
        (Method::GET, format!("/api/v1/sheet-links/{link_id}")),
        (Method::DELETE, format!("/api/v1/sheet-links/{link_id}")),
        (Method::POST, format!("/api/v1/sheet-links/{link_id}/sync")),
    ] {
        let (status, body) = app
            .request(method, &path, Some(&bob), None)
            .await
            .into_pair();
        assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
    }
    let (_, list) = app.get("/api/v1/sheet-links", Some(&bob)).await;
    assert_eq!(list["items"], json!([]));
    let (_, list) = app
        .get(
            &format!("/api/v1/sheet-links?table_id={alice_table}"),
            Some(&alice),
        )
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    // Bob cannot send Alice's table anywhere, nor see her Google status.
    let (status, body) = app
        .post(
            "/api/v1/exports",
            Some(&bob),
            json!({"table_id": alice_table, "destination": {"type": "google_sheets"}}),
        )
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
    let (_, status_b) = app.get("/api/v1/integrations/google", Some(&bob)).await;
    assert_eq!(status_b["connected"], false);
}

#[tokio::test]
async fn without_google_configured_the_integration_is_absent() {
    let app = TestApp::spawn().await;
    let token = app.user("g8@example.com").await;
    let (status, body) = app.get("/api/v1/integrations/google", Some(&token)).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
    let table = cities(&app, &token).await;
    let (status, body) = app
        .post(
            "/api/v1/exports",
            Some(&token),
            json!({"table_id": table, "destination": {"type": "google_sheets"}}),
        )
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT, "google-not-configured");
}

/// A service account key (a fresh RSA key) in `dir`, for the fake Google's token endpoint.
fn service_account_key(dir: &std::path::Path, fake: &FakeGoogle) -> std::path::PathBuf {
    let pem = dir.join("key.pem");
    let out = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&pem)
        .output()
        .expect("openssl is installed");
    assert!(out.status.success());
    let key = json!({
        "type": "service_account",
        "project_id": "test",
        "private_key_id": "k1",
        "private_key": std::fs::read_to_string(&pem).unwrap(),
        "client_email": "sheetgpt@test.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": format!("{}/token", fake.base),
    });
    let key_file = dir.join("sa.json");
    std::fs::write(&key_file, key.to_string()).unwrap();
    key_file
}

fn grant(spreadsheet: &str, users: &[&str]) -> sheetgpt::config::ServiceAccountSpreadsheet {
    sheetgpt::config::ServiceAccountSpreadsheet {
        spreadsheet: spreadsheet.to_owned(),
        users: users.iter().map(|u| (*u).to_owned()).collect(),
    }
}

/// An app that reaches Google through a service account only.
async fn service_account_app(
    fake: &FakeGoogle,
    dir: &std::path::Path,
    customize: impl FnOnce(&mut sheetgpt::Config),
) -> TestApp {
    let key_file = service_account_key(dir, fake);
    let cfg = fake.clone();
    TestApp::spawn_with(move |c| {
        configure(c, &cfg);
        c.google.client_id = String::new();
        c.google.client_secret = None;
        c.google.service_account_key_file = Some(key_file);
        customize(c);
    })
    .await
}

#[tokio::test]
async fn a_service_account_writes_into_a_spreadsheet_shared_with_it() {
    let fake = FakeGoogle::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = service_account_app(&fake, dir.path(), |c| {
        c.google.service_account_spreadsheets = vec![grant("shared-1", &["g9@example.com"])];
    })
    .await;
    let token = app.user("g9@example.com").await;
    let (_, status) = app.get("/api/v1/integrations/google", Some(&token)).await;
    assert_eq!(status["oauth_available"], false);
    assert_eq!(
        status["service_account_email"],
        "sheetgpt@test.iam.gserviceaccount.com"
    );
    let (status, body) = app
        .post(
            "/api/v1/integrations/google/connect",
            Some(&token),
            json!({}),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::CONFLICT,
        "google-oauth-not-configured",
    );

    let table = cities(&app, &token).await;
    let (status, body) = app
        .post(
            "/api/v1/exports",
            Some(&token),
            json!({"table_id": table, "destination": {"type": "google_sheets"}}),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("service account")
    );

    fake.add_spreadsheet("shared-1", &["Sheet1"]);
    let done = export(
        &app,
        &token,
        json!({"table_id": table, "destination": {"type": "google_sheets", "mode": "new_tab", "spreadsheet": "shared-1", "sheet": "From SheetGPT"}}),
    )
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let grant = fake
        .calls()
        .into_iter()
        .find(|c| c.path == "/token")
        .unwrap();
    assert_eq!(
        grant.form["grant_type"],
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    let book = fake.spreadsheet("shared-1");
    assert_eq!(book.sheets[1].cell(1, 0), json!("Paris"));
}

#[tokio::test]
async fn a_100k_row_export_costs_a_handful_of_calls_and_a_one_cell_sync_two() {
    let fake = FakeGoogle::start().await;
    let app = app(&fake).await;
    let token = app.user("g10@example.com").await;
    connect(&app, &token).await;
    let mut csv = String::from("id,name,amount,day\n");
    for i in 0..100_000 {
        csv.push_str(&format!(
            "{i},name {i},{}.5,2024-03-{:02}\n",
            i % 977,
            i % 28 + 1
        ));
    }
    let resp = app
        .client
        .post(app.url("/api/v1/tables/import"))
        .bearer_auth(&token)
        .multipart(reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(csv.into_bytes()).file_name("big.csv"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let table: Value = resp.json().await.unwrap();
    let table = table["id"].as_str().unwrap().to_owned();
    fake.clear_calls();
    let done = export(
        &app,
        &token,
        json!({"table_id": table, "destination": {"type": "google_sheets", "link": true,
               "share_with": [{"email": "team@example.com", "role": "reader"}]}}),
    )
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    // create + 4 value writes (100,000 cells each) + formatting + one share.
    assert_eq!(done["sheet"]["api_calls"], 7, "{done}");
    assert_eq!(done["progress"]["done"], 100_000);
    let id = done["sheet"]["spreadsheet_id"].as_str().unwrap();
    assert_eq!(
        fake.spreadsheet(id).sheets[0].cell(100_000, 0),
        json!(99_999)
    );

    fake.clear_calls();
    let (status, _) = app
        .post(
            &format!("/api/v1/tables/{table}/changes"),
            Some(&token),
            json!({"ops": [{"op": "set_cells", "cells": [{"row": 50_000, "column": "name", "value": "changed"}]}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let link_id = done["sheet"]["link_id"].as_str().unwrap();
    synced(&app, &token, link_id, 2).await;
    let calls: Vec<_> = fake
        .calls()
        .into_iter()
        .filter(|c| c.bearer.is_some())
        .collect();
    assert_eq!(calls.len(), 2, "a one-cell sync: one read, one write");
    assert_eq!(calls[1].body["data"][0]["range"], "'big'!A50001");
    assert_eq!(
        fake.spreadsheet(id).sheets[0].cell(50_000, 1),
        json!("changed")
    );
}

/// Google's write quota is per Google account, not per server: two instances exporting for one
/// user at once share one pace (the slots are kept in the database).
#[tokio::test]
async fn two_instances_writing_for_one_account_share_its_pace() {
    let fake = FakeGoogle::start().await;
    let pace = |c: &mut sheetgpt::Config, fake: &FakeGoogle| {
        configure(c, fake);
        c.google.cells_per_request = 400;
        // 10 writes a second for the account, one at a time.
        c.google.writes_per_minute = 600;
        c.google.write_burst = 1;
        // One job at a time each: with one running here, the next is taken by the other.
        c.exports.workers = 1;
        // Instances share the key that encrypts Google tokens, as the README asks.
        c.encryption_key = Some(SecretString::from("0123456789abcdef".repeat(4)));
    };
    let cfg = fake.clone();
    let first = TestApp::spawn_with(move |c| pace(c, &cfg)).await;
    let second = first.sibling(|c| pace(c, &fake)).await;

    let token = first.user("g-pace@example.com").await;
    connect(&first, &token).await;
    let rows: Vec<Value> = (0..1000)
        .map(|i| json!({"n": i, "label": format!("row {i}")}))
        .collect();
    let (_, table) = first
        .post(
            "/api/v1/tables",
            Some(&token),
            json!({"name": "Numbers", "rows": rows}),
        )
        .await;
    fake.clear_calls();
    let body = json!({"table_id": table["id"], "destination": {"type": "google_sheets"}});
    let (status, one) = first
        .post("/api/v1/exports", Some(&token), body.clone())
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{one}");
    let one = one["id"].as_str().unwrap().to_owned();
    wait_for(&first, &token, &one, &["running", "succeeded"]).await;
    let (status, two) = second.post("/api/v1/exports", Some(&token), body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{two}");
    let two = two["id"].as_str().unwrap().to_owned();
    for id in [&one, &two] {
        let done = wait_for(&first, &token, id, &["succeeded", "failed"]).await;
        assert_eq!(done["status"], "succeeded", "{done}");
    }

    let calls = fake.calls();
    let mut writes: Vec<_> = calls.iter().filter(|c| c.is_write()).collect();
    writes.sort_by_key(|c| c.at);
    assert!(writes.len() >= 12, "both exports wrote: {}", writes.len());
    // One pace for the account across both instances.
    assert_paced(&writes, Duration::from_millis(100));
}

/// The totals row's formulas, as Sheets computes them over the cells the export wrote: each
/// range covers exactly the data rows under a block that starts elsewhere than A1; with no
/// rows left there is no totals row (a range over no rows was the formula's own cell).
#[tokio::test]
async fn sheet_totals_add_up_the_data_rows_and_a_table_without_rows_gets_none() {
    let fake = FakeGoogle::start().await;
    let app = app(&fake).await;
    let token = app.user("totals@example.com").await;
    connect(&app, &token).await;
    let table = cities(&app, &token).await;
    let (status, template) = app
        .post(
            "/api/v1/templates",
            Some(&token),
            json!({"name": "Totals", "template": {
                "columns": [
                    {"source": "city", "header": "City"},
                    {"source": "population", "total": "sum"},
                    {"source": "price", "total": "average"},
                    {"source": "founded", "total": "max"},
                    {"source": "city", "header": "Cities", "total": "count"}
                ],
                "layout": {"title_rows": ["Cities"], "start_cell": "C5"}
            }}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{template}");
    let done = export(
        &app,
        &token,
        json!({"table_id": table, "template_id": template["id"], "destination": {
            "type": "google_sheets", "mode": "new_spreadsheet", "title": "Totals", "link": true
        }}),
    )
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let id = done["sheet"]["spreadsheet_id"].as_str().unwrap().to_owned();
    let link_id = done["sheet"]["link_id"].as_str().unwrap().to_owned();
    let tab = fake.spreadsheet(&id).sheets[0].clone();
    // Title in row 5, a blank row, the header in row 7, data in rows 8–10, totals in row 11.
    assert_eq!(tab.cell(6, 2), json!("City"));
    assert_eq!(tab.cell(9, 2), json!("Nice"));
    assert_eq!(tab.cell(10, 2), json!("Total"));
    assert_eq!(tab.cell(10, 3), json!("=SUBTOTAL(109,D8:D10)"));
    assert_eq!(tab.shown(10, 3), json!(2_624_900.0));
    let average = tab.shown(10, 4).as_f64().unwrap();
    assert!((average - 29.75 / 3.0).abs() < 1e-9, "{average}");
    assert_eq!(tab.shown(10, 5), json!(45322.0), "2024-01-31");
    assert_eq!(tab.shown(10, 6), json!(3));

    let (status, _) = app
        .post(
            &format!("/api/v1/tables/{table}/changes"),
            Some(&token),
            json!({"ops": [{"op": "delete_rows", "rows": [1, 2, 3]}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let l = synced(&app, &token, &link_id, 2).await;
    assert_eq!(l["status"], "active", "{l}");
    let tab = fake.spreadsheet(&id).sheets[0].clone();
    assert_eq!(tab.cell(6, 2), json!("City"), "the header stays");
    for (&(row, col), value) in &tab.cells {
        assert!(
            !value.as_str().is_some_and(|v| v.starts_with('=')),
            "a formula at ({row}, {col}): {value}"
        );
        assert_ne!(tab.shown(row, col), json!("#REF!"));
    }
}

/// Follows a consent URL as a browser would (the fake approves at once) and returns the
/// query Google sends back to the callback.
async fn consent(app: &TestApp, url: &str) -> String {
    let consent = app.client.get(url).send().await.unwrap();
    assert_eq!(consent.status(), StatusCode::FOUND);
    let back = consent.headers()["location"].to_str().unwrap().to_owned();
    back.split_once('?').unwrap().1.to_owned()
}

/// Issue 13: the callback trusted the SheetGPT user who started `/connect`, not the browser
/// that came back. An attacker sent a victim their own consent URL; the victim allowed it and
/// the victim's Google grant landed in the attacker's account. The `state` is now bound to
/// the browser that started the connection (RFC 9700 §4.7.1) by a cookie set by `/connect`.
#[tokio::test]
async fn a_consent_url_opened_in_another_browser_connects_nothing() {
    let fake = FakeGoogle::start().await;
    let app = app(&fake).await;
    let attacker = app.user("g-attacker@example.com").await;
    let (status, body) = app
        .post(
            "/api/v1/integrations/google/connect",
            Some(&attacker),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let url = body["authorization_url"].as_str().unwrap().to_owned();
    // The victim's browser: it has never seen the attacker's /connect answer (it may hold a
    // binding cookie of its own).
    let query = consent(&app, &url).await;
    let resp = app
        .client
        .get(app.url(&format!("/api/v1/integrations/google/callback?{query}")))
        .header("cookie", "sheetgpt_google_connect=something-else")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        resp.headers()["location"],
        "/?google=error&reason=oauth-browser-mismatch"
    );
    let (_, status) = app
        .get("/api/v1/integrations/google", Some(&attacker))
        .await;
    assert_eq!(status["connected"], false, "{status}");
    assert!(
        !fake.calls().iter().any(|c| c.path == "/token"),
        "the victim's code was never exchanged"
    );
}

/// Issue 13: with a service account, any user could name any spreadsheet shared with it (one
/// of another user's, another team's) and export into it, overwriting it.
#[tokio::test]
async fn a_service_account_does_not_write_into_a_spreadsheet_the_user_was_not_given() {
    let fake = FakeGoogle::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = service_account_app(&fake, dir.path(), |_| {}).await;
    // Alice's spreadsheet, shared with the service account for her own exports.
    fake.add_spreadsheet("alices-book", &["Budget"]);
    fake.set_cell("alices-book", "Budget", 0, 0, json!("Alice's figures"));
    let mallory = app.user("g-mallory@example.com").await;
    let table = cities(&app, &mallory).await;
    let (status, body) = app
        .post(
            "/api/v1/exports",
            Some(&mallory),
            json!({"table_id": table, "destination": {"type": "google_sheets", "mode": "replace_tab", "spreadsheet": "alices-book", "sheet": "Budget"}}),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::FORBIDDEN,
        "spreadsheet-not-allowed",
    );
    assert_eq!(
        fake.spreadsheet("alices-book").sheets[0].cell(0, 0),
        json!("Alice's figures")
    );
    assert!(
        !fake.calls().iter().any(Call::is_write),
        "nothing was written"
    );
}

#[tokio::test]
async fn the_browser_binding_cookie_is_http_only_lax_scoped_to_the_callback_and_spent() {
    let fake = FakeGoogle::start().await;
    let app = app(&fake).await;
    let token = app.user("g-cookie@example.com").await;
    let (status, headers, _) = app
        .request(
            Method::POST,
            "/api/v1/integrations/google/connect",
            Some(&token),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let set = headers["set-cookie"].to_str().unwrap().to_owned();
    let attributes: Vec<&str> = set.split(';').map(str::trim).collect();
    for want in [
        "Path=/api/v1/integrations/google/callback",
        "Max-Age=600",
        "HttpOnly",
        "SameSite=Lax",
    ] {
        assert!(attributes.contains(&want), "{want} in {set}");
    }
    assert!(!attributes.contains(&"Secure"), "plain HTTP here: {set}");
    let value = set_cookie_value(&headers, "sheetgpt_google_connect").unwrap();
    assert!(value.len() >= 32, "a random value: {value}");

    // Behind a TLS proxy the server trusts, it is Secure too.
    let fake2 = fake.clone();
    let tls = TestApp::spawn_with(move |c| {
        configure(c, &fake2);
        c.http.trust_forwarded_for = true;
    })
    .await;
    let token = tls.user("g-cookie-tls@example.com").await;
    let resp = tls
        .client
        .post(tls.url("/api/v1/integrations/google/connect"))
        .bearer_auth(&token)
        .header("x-forwarded-proto", "https")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let set = resp.headers()["set-cookie"].to_str().unwrap();
    assert!(set.split(';').any(|a| a.trim() == "Secure"), "{set}");

    // The callback clears it, whatever the outcome; with it the grant lands in this account.
    let redirect = connect(&app, &app.user("g-cookie2@example.com").await).await;
    assert_eq!(redirect, "/?google=connected");
    let resp = app
        .client
        .get(app.url("/api/v1/integrations/google/callback?error=access_denied&state=x"))
        .send()
        .await
        .unwrap();
    let set = resp.headers()["set-cookie"].to_str().unwrap();
    assert!(set.starts_with("sheetgpt_google_connect=;"), "{set}");
    assert!(set.contains("Max-Age=0"), "{set}");
}

#[tokio::test]
async fn a_service_account_writes_only_where_an_admin_listed_the_spreadsheet_for_the_user() {
    let fake = FakeGoogle::start().await;
    let dir = tempfile::tempdir().unwrap();
    for id in ["alices-book", "team-book"] {
        fake.add_spreadsheet(id, &["Sheet1"]);
    }
    let app = service_account_app(&fake, dir.path(), |c| {
        c.google.service_account_spreadsheets = vec![
            grant(
                "https://docs.google.com/spreadsheets/d/alices-book/edit#gid=0",
                &["G-Alice@example.com"],
            ),
            grant("team-book", &["*"]),
        ];
    })
    .await;
    let alice = app.user("g-alice@example.com").await;
    let bob = app.user("g-bob@example.com").await;
    let into = |spreadsheet: &str| json!({"destination": {"type": "google_sheets", "mode": "new_tab", "spreadsheet": spreadsheet, "sheet": "Export"}});
    let with_table = |mut body: Value, table: &str| {
        body["table_id"] = json!(table);
        body
    };
    let alice_table = cities(&app, &alice).await;
    let bob_table = cities(&app, &bob).await;
    // Listed for Alice (by URL, any case of her address): written.
    let done = export(&app, &alice, with_table(into("alices-book"), &alice_table)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    // Not for Bob, even by its URL.
    let (status, body) = app
        .post(
            "/api/v1/exports",
            Some(&bob),
            with_table(
                into("https://docs.google.com/spreadsheets/d/alices-book/edit"),
                &bob_table,
            ),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::FORBIDDEN,
        "spreadsheet-not-allowed",
    );
    assert!(
        body["detail"].as_str().unwrap().contains("alices-book"),
        "{body}"
    );
    // Listed for everyone.
    let done = export(&app, &bob, with_table(into("team-book"), &bob_table)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(fake.spreadsheet("alices-book").sheets.len(), 2);
    assert_eq!(fake.spreadsheet("team-book").sheets.len(), 2);
}

/// The list is checked again when the job runs and at each sync of a link, so that taking a
/// spreadsheet off it stops writes that were queued or linked before.
#[tokio::test]
async fn taking_a_spreadsheet_off_the_list_stops_queued_exports_and_link_syncs() {
    let fake = FakeGoogle::start().await;
    let dir = tempfile::tempdir().unwrap();
    fake.add_spreadsheet("listed-book", &["Sheet1"]);
    let mut first = service_account_app(&fake, dir.path(), |c| {
        c.google.service_account_spreadsheets = vec![grant("listed-book", &["*"])];
    })
    .await;
    let token = first.user("g-relist@example.com").await;
    let table = cities(&first, &token).await;
    let done = export(
        &first,
        &token,
        json!({"table_id": table, "destination": {"type": "google_sheets", "mode": "new_tab", "spreadsheet": "listed-book", "sheet": "Linked", "link": true}}),
    )
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let link_id = done["sheet"]["link_id"].as_str().unwrap().to_owned();
    // Queued while listed, on an instance that runs no jobs.
    let queued_on = first.sibling(|c| {
        c.exports.workers = 0;
        c.google = first.state.config.google.clone();
    });
    let queued_on = queued_on.await;
    // The first instance's workers stop, so that nothing runs the job while it is listed.
    first.stop();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let (status, job) = queued_on
        .post(
            "/api/v1/exports",
            Some(&token),
            json!({"table_id": table, "destination": {"type": "google_sheets", "mode": "new_tab", "spreadsheet": "listed-book", "sheet": "Later"}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    drop(queued_on);
    // The instance left running has the spreadsheet taken off its list.
    let mut google = first.state.config.google.clone();
    google.service_account_spreadsheets.clear();
    let second = first
        .sibling(move |c| {
            c.google = google;
            c.exports.poll_ms = 50;
        })
        .await;
    let failed = wait_for(
        &second,
        &token,
        job["id"].as_str().unwrap(),
        &["failed", "succeeded"],
    )
    .await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["error"]
            .as_str()
            .unwrap_or_default()
            .contains("may not write"),
        "{failed}"
    );
    let (status, _) = second
        .post(
            &format!("/api/v1/tables/{table}/changes"),
            Some(&token),
            json!({"ops": [{"op": "set_cells", "cells": [{"row": 1, "column": "city", "value": "Paris!"}]}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let synced = synced(&second, &token, &link_id, 2).await;
    assert_eq!(synced["status"], "error", "{synced}");
    assert!(
        synced["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("may not write"),
        "{synced}"
    );
    let book = fake.spreadsheet("listed-book");
    let linked = book.sheets.iter().find(|s| s.title == "Linked").unwrap();
    assert_eq!(
        linked.cell(1, 0),
        json!("Paris"),
        "the sheet was not written"
    );
    assert!(book.sheets.iter().all(|s| s.title != "Later"));
}
