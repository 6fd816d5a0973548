//! Isolation, derived from the OpenAPI document: for every operation whose path takes an id,
//! user B using user A's id gets 404 (not 403, not 200) and changes nothing; ids inside bodies
//! and queries are refused the same way; lists never show another user's items. A new route
//! with an id fails this suite until it is given a case here.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::exports::{cities, wait_for};
use crate::fakes::google::FakeGoogle;
use crate::helpers::{IntoPair, TestApp, assert_problem};

/// The ids user A owns, one of each kind.
struct Owned {
    user: String,
    session: String,
    api_key: String,
    conversation: String,
    message: String,
    table: String,
    schema: String,
    template: String,
    export: String,
    link: String,
}

impl Owned {
    /// The id a path parameter names, by the path's resource and the parameter's name.
    fn fill(&self, path: &str) -> String {
        let mut resource = "";
        let segments: Vec<&str> = path
            .split('/')
            .map(|segment| match segment {
                "{id}" => match resource {
                    "sessions" => self.session.as_str(),
                    "api-keys" => &self.api_key,
                    "conversations" => &self.conversation,
                    "tables" => &self.table,
                    "schemas" => &self.schema,
                    "templates" => &self.template,
                    "exports" => &self.export,
                    // An export is a job too.
                    "jobs" => &self.export,
                    "sheet-links" => &self.link,
                    "users" => &self.user,
                    other => panic!("{path}: no id of kind {other:?}; add one to this suite"),
                },
                "{message_id}" => &self.message,
                "{version}" => "1",
                s if s.starts_with('{') => panic!("{path}: unknown parameter {s}"),
                s => {
                    resource = s;
                    s
                }
            })
            .collect();
        segments.join("/")
    }
}

/// A body the operation accepts, so that B's request reaches the ownership check instead of
/// stopping at validation.
fn body_for(method: &str, path: &str) -> Option<Value> {
    let body = match (method, path) {
        ("patch", "/api/v1/conversations/{id}") => json!({"title": "B's title"}),
        ("post", "/api/v1/conversations/{id}/messages") => json!({"content": "hello"}),
        ("patch", "/api/v1/tables/{id}") => json!({"name": "B's name"}),
        ("post", "/api/v1/tables/{id}/changes") => {
            json!({"ops": [{"op": "delete_rows", "rows": [0]}]})
        }
        ("post", "/api/v1/tables/{id}/revert") => json!({"version": 1}),
        ("patch", "/api/v1/schemas/{id}") => json!({"name": "B's schema"}),
        ("patch", "/api/v1/templates/{id}") => json!({"name": "B's template"}),
        ("patch", "/api/v1/admin/users/{id}") => json!({"disabled": true}),
        ("put", "/api/v1/admin/users/{id}/quotas") => json!({"tokens_per_day": 1}),
        ("post", _) => json!({}),
        _ => return None,
    };
    Some(body)
}

/// The query an operation needs besides its path.
fn query_for(method: &str, path: &str) -> &'static str {
    match (method, path) {
        ("get", "/api/v1/tables/{id}/diff") => "?from=1&to=1",
        ("get", "/api/v1/tables/{id}/download") => "?format=csv",
        ("get", "/api/v1/tables/{id}/type-change") => "?column=city&to=integer",
        _ => "",
    }
}

/// Operations whose path parameter is not a record of another user's.
const NOT_OWNED: &[&str] = &[
    // A model's name: each user sets their own key for it.
    "/api/v1/models/{name}/key",
];

/// Operations only an admin may call: a user gets 403 whatever the id, before any lookup.
fn admin_only(path: &str) -> bool {
    path.starts_with("/api/v1/admin/")
}

async fn setup(app: &TestApp) -> (String, Owned, String) {
    let alice = app.register("iso-a@example.com").await;
    let (a, _) = app
        .login("iso-a@example.com", crate::helpers::PASSWORD)
        .await;
    let b = app.user("iso-b@example.com").await;
    let id = |v: &Value| v["id"].as_str().expect("id").to_owned();

    let (_, sessions) = app.get("/api/v1/auth/sessions", Some(&a)).await;
    let session = id(&sessions["items"][0]);
    let (status, key) = app
        .post(
            "/api/v1/api-keys",
            Some(&a),
            json!({"name": "script", "scope": "read_write"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let (_, conversation) = app.post("/api/v1/conversations", Some(&a), json!({})).await;
    let conversation = id(&conversation);
    let (status, reply) = app
        .post(
            &format!("/api/v1/conversations/{conversation}/messages"),
            Some(&a),
            json!({"content": "a,b\n1,2"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let message = id(&reply["message"]);
    let table = cities(app, &a).await;
    let (status, schema) = app
        .post(
            "/api/v1/schemas",
            Some(&a),
            json!({"name": "S", "columns": [{"name": "city", "type": "text"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{schema}");
    let (status, template) = app
        .post(
            "/api/v1/templates",
            Some(&a),
            json!({"name": "T", "template": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{template}");
    crate::google::connect(app, &a).await;
    let (status, job) = app
        .post(
            "/api/v1/exports",
            Some(&a),
            json!({"table_id": table, "destination": {"type": "google_sheets", "link": true}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let done = wait_for(app, &a, job["id"].as_str().unwrap(), &["succeeded"]).await;
    let link = done["sheet"]["link_id"].as_str().unwrap().to_owned();
    let owned = Owned {
        user: id(&alice),
        session,
        api_key: id(&key),
        conversation,
        message,
        table,
        schema: id(&schema),
        template: id(&template),
        export: id(&done),
        link,
    };
    (a, owned, b)
}

/// What A sees of their own things: compared before and after B's attempts.
async fn snapshot(app: &TestApp, a: &str, owned: &Owned) -> BTreeMap<String, Value> {
    let mut seen = BTreeMap::new();
    for path in [
        format!("/api/v1/conversations/{}", owned.conversation),
        format!("/api/v1/conversations/{}/messages", owned.conversation),
        format!("/api/v1/tables/{}", owned.table),
        format!("/api/v1/tables/{}/rows", owned.table),
        format!("/api/v1/tables/{}/versions", owned.table),
        format!("/api/v1/schemas/{}", owned.schema),
        format!("/api/v1/templates/{}", owned.template),
        format!("/api/v1/exports/{}", owned.export),
        format!("/api/v1/sheet-links/{}", owned.link),
        format!("/api/v1/api-keys/{}", owned.api_key),
        "/api/v1/auth/sessions".to_owned(),
        "/api/v1/auth/me".to_owned(),
    ] {
        let (status, mut body) = app.get(&path, Some(a)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        // Times that move on their own (last use of the session, the key) are not changes.
        strip(&mut body, &["last_used_at", "last_seen_at", "updated_at"]);
        seen.insert(path, body);
    }
    seen
}

fn strip(v: &mut Value, keys: &[&str]) {
    match v {
        Value::Object(map) => {
            for k in keys {
                map.remove(*k);
            }
            map.values_mut().for_each(|v| strip(v, keys));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| strip(v, keys)),
        _ => {}
    }
}

#[tokio::test]
async fn every_route_with_an_id_hides_other_users_records() {
    let fake = FakeGoogle::start().await;
    let app = {
        let fake = fake.clone();
        TestApp::spawn_with(move |c| crate::google::configure(c, &fake)).await
    };
    let (a, owned, b) = setup(&app).await;
    let before = snapshot(&app, &a, &owned).await;

    let (_, doc) = app.get("/api/v1/openapi.json", None).await;
    let mut tried = 0;
    let mut deletes = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.contains('{') || NOT_OWNED.contains(&path.as_str()) {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            // Deletions go last, so that every other attempt finds A's records in place.
            if method == "delete" {
                deletes.push(path.clone());
                continue;
            }
            attempt(&app, &b, &owned, method, path).await;
            tried += 1;
        }
    }
    for path in &deletes {
        attempt(&app, &b, &owned, "delete", path).await;
        tried += 1;
    }
    assert!(tried >= 40, "only {tried} operations take an id");

    // Ids inside bodies and queries.
    let b_table = cities(&app, &b).await;
    let (_, b_conv) = app.post("/api/v1/conversations", Some(&b), json!({})).await;
    let b_conv = b_conv["id"].as_str().unwrap().to_owned();
    for (method, path, body) in [
        (
            Method::POST,
            "/api/v1/exports".to_owned(),
            Some(json!({"table_id": owned.table, "format": "csv"})),
        ),
        (
            Method::POST,
            "/api/v1/exports".to_owned(),
            Some(json!({"table_id": b_table, "format": "xlsx", "template_id": owned.template})),
        ),
        (
            Method::GET,
            format!(
                "/api/v1/tables/{b_table}/download?format=xlsx&template={}",
                owned.template
            ),
            None,
        ),
        (
            Method::POST,
            "/api/v1/tables".to_owned(),
            Some(json!({"name": "Copy", "message_id": owned.message})),
        ),
        (
            Method::POST,
            "/api/v1/conversations".to_owned(),
            Some(json!({"target_schema_id": owned.schema})),
        ),
        (
            Method::PATCH,
            format!("/api/v1/conversations/{b_conv}"),
            Some(json!({"current_table_id": owned.table})),
        ),
        (
            Method::PATCH,
            format!("/api/v1/conversations/{b_conv}"),
            Some(json!({"target_schema_id": owned.schema})),
        ),
    ] {
        let (status, answer) = app
            .request(method.clone(), &path, Some(&b), body.clone())
            .await
            .into_pair();
        // Refused as a missing record (404, or 422 naming the field), and exactly as an id that
        // exists nowhere is: the answer tells B nothing about A's records.
        assert!(
            status == StatusCode::NOT_FOUND || status == StatusCode::UNPROCESSABLE_ENTITY,
            "{method} {path} as B: {answer}"
        );
        let nowhere = uuid::Uuid::new_v4().to_string();
        let swap = |s: &str| {
            [&owned.table, &owned.template, &owned.message, &owned.schema]
                .iter()
                .fold(s.to_owned(), |s, id| s.replace(id.as_str(), &nowhere))
        };
        let body = body.map(|b| serde_json::from_str(&swap(&b.to_string())).unwrap());
        let (status_nowhere, answer_nowhere) = app
            .request(method.clone(), &swap(&path), Some(&b), body)
            .await
            .into_pair();
        assert_eq!(
            (status, answer.to_string().replace(&nowhere, "")),
            (
                status_nowhere,
                answer_nowhere.to_string().replace(&nowhere, "")
            ),
            "{method} {path}: A's id is answered unlike an unknown one"
        );
        tried += 1;
    }

    // Lists: B sees none of A's items, filtered by A's ids or not.
    for path in [
        "/api/v1/conversations".to_owned(),
        "/api/v1/tables".to_owned(),
        "/api/v1/tables?deleted=true".to_owned(),
        "/api/v1/schemas".to_owned(),
        "/api/v1/templates".to_owned(),
        "/api/v1/exports".to_owned(),
        "/api/v1/sheet-links".to_owned(),
        format!("/api/v1/sheet-links?table_id={}", owned.table),
        "/api/v1/api-keys".to_owned(),
        "/api/v1/auth/sessions".to_owned(),
    ] {
        let (status, list) = app.get(&path, Some(&b)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {list}");
        let text = list.to_string();
        for foreign in [
            &owned.conversation,
            &owned.table,
            &owned.schema,
            &owned.template,
            &owned.export,
            &owned.link,
            &owned.api_key,
            &owned.session,
            &owned.user,
        ] {
            assert!(!text.contains(foreign.as_str()), "{path} shows {foreign}");
        }
        tried += 1;
    }

    // Nothing B tried changed anything of A's.
    assert_eq!(snapshot(&app, &a, &owned).await, before);
    assert!(tried >= 55, "{tried}");
}

async fn attempt(app: &TestApp, b: &str, owned: &Owned, method: &str, path: &str) {
    let url = format!("{}{}", owned.fill(path), query_for(method, path));
    let http = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    let mut req = app.client.request(http, app.url(&url)).bearer_auth(b);
    if path.ends_with("/ws") {
        req = req
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
    }
    if let Some(body) = body_for(method, path) {
        req = req.json(&body);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if admin_only(path) {
        assert_problem(status, &body, StatusCode::FORBIDDEN, "admin-required");
    } else {
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{method} {url} as another user: {body}"
        );
        assert_eq!(body["code"], "not-found", "{method} {url}: {body}");
    }
}
