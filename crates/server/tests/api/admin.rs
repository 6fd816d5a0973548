//! Admin API, audit log, quotas and rate limits (in-process and through Redis).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sheetgpt::db::entity::user::Role;

use crate::exports::cities;
use crate::helpers::{IntoPair, PASSWORD, TestApp, assert_problem};

async fn admin(app: &TestApp, email: &str) -> (String, String) {
    let user = app.register(email).await;
    let id = user["id"].as_str().unwrap().to_owned();
    let uuid = uuid::Uuid::parse_str(&id).unwrap();
    assert!(
        sheetgpt::db::users::set_role(&app.state.db, uuid, Role::Admin)
            .await
            .unwrap()
    );
    (app.login(email, PASSWORD).await.0, id)
}

async fn audit(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let (status, body) = app
        .get(&format!("/api/v1/admin/audit{query}"), Some(token))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn the_admin_api_is_for_admins_only() {
    let app = TestApp::spawn().await;
    let (root, root_id) = admin(&app, "root@example.com").await;
    let user = app.register("plain@example.com").await;
    let user_id = user["id"].as_str().unwrap().to_owned();
    let plain = app.login("plain@example.com", PASSWORD).await.0;
    for i in 0..3 {
        app.register(&format!("other{i}@corp.example")).await;
    }

    for (method, path) in [
        (Method::GET, "/api/v1/admin/users".to_owned()),
        (Method::GET, format!("/api/v1/admin/users/{user_id}")),
        (Method::PATCH, format!("/api/v1/admin/users/{user_id}")),
        (Method::GET, format!("/api/v1/admin/users/{user_id}/usage")),
        (Method::GET, format!("/api/v1/admin/users/{user_id}/quotas")),
        (Method::PUT, format!("/api/v1/admin/users/{user_id}/quotas")),
        (Method::GET, "/api/v1/admin/audit".to_owned()),
    ] {
        let body = matches!(method, Method::PATCH | Method::PUT).then(|| json!({}));
        let (status, problem) = app
            .request(method.clone(), &path, Some(&plain), body)
            .await
            .into_pair();
        assert_problem(status, &problem, StatusCode::FORBIDDEN, "admin-required");
        let (status, _) = app.request(method, &path, None, None).await.into_pair();
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    // Search and pages.
    let (_, page) = app
        .get("/api/v1/admin/users?q=CORP.example&limit=2", Some(&root))
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = app
        .get(
            &format!("/api/v1/admin/users?q=corp.example&limit=2&cursor={cursor}"),
            Some(&root),
        )
        .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert!(rest["next_cursor"].is_null());
    let (_, admins) = app.get("/api/v1/admin/users?role=admin", Some(&root)).await;
    assert_eq!(admins["items"].as_array().unwrap().len(), 1);
    assert_eq!(admins["items"][0]["id"], root_id);
    let (status, body) = app.get("/api/v1/admin/users?role=owner", Some(&root)).await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );

    // Disable: the user's token stops working at once and they cannot sign in.
    let (status, updated) = app
        .request(
            Method::PATCH,
            &format!("/api/v1/admin/users/{user_id}"),
            Some(&root),
            Some(json!({"disabled": true})),
        )
        .await
        .into_pair();
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["disabled"], true);
    let (status, _) = app.get("/api/v1/auth/me", Some(&plain)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "plain@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, disabled) = app
        .get("/api/v1/admin/users?disabled=true", Some(&root))
        .await;
    assert_eq!(disabled["items"].as_array().unwrap().len(), 1);
    app.request(
        Method::PATCH,
        &format!("/api/v1/admin/users/{user_id}"),
        Some(&root),
        Some(json!({"disabled": false, "role": "admin"})),
    )
    .await;
    let (_, detail) = app
        .get(&format!("/api/v1/admin/users/{user_id}"), Some(&root))
        .await;
    assert_eq!(detail["role"], "admin");
    assert_eq!(detail["disabled"], false);
    assert!(detail["quotas"]["effective"].is_object());

    let (status, body) = app
        .request(
            Method::PATCH,
            &format!("/api/v1/admin/users/{root_id}"),
            Some(&root),
            Some(json!({"role": "user"})),
        )
        .await
        .into_pair();
    assert_problem(status, &body, StatusCode::CONFLICT, "cannot-demote-self");
    let (status, body) = app
        .get(
            &format!("/api/v1/admin/users/{}", uuid::Uuid::now_v7()),
            Some(&root),
        )
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
}

#[tokio::test]
async fn security_events_are_in_the_audit_log_without_secrets() {
    let app = TestApp::spawn().await;
    let (root, root_id) = admin(&app, "auditor@example.com").await;
    let user = app.register("actor@example.com").await;
    let user_id = user["id"].as_str().unwrap().to_owned();
    let (status, _) = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "actor@example.com", "password": "wrong password 123"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let resp = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("user-agent", "audit-test/1.0")
        .header("x-request-id", "req-audit-1")
        .json(&json!({"email": "actor@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let tokens: Value = resp.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    // Refresh twice with the same token: reuse.
    app.post(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": refresh}),
    )
    .await;
    let (status, _) = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": refresh}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let access = {
        let _ = access;
        app.login("actor@example.com", PASSWORD).await.0
    };
    let (_, key) = app
        .post(
            "/api/v1/api-keys",
            Some(&access),
            json!({"name": "ci", "scope": "read"}),
        )
        .await;
    let key_id = key["id"].as_str().unwrap().to_owned();
    let secret_key = key["key"].as_str().unwrap().to_owned();
    app.delete(&format!("/api/v1/api-keys/{key_id}"), Some(&access))
        .await;
    let new_password = "a brand new passphrase 42";
    let (status, _) = app
        .post(
            "/api/v1/auth/password",
            Some(&access),
            json!({"current_password": PASSWORD, "new_password": new_password}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let table = cities(&app, &access).await;
    let (status, _) = app
        .post(
            "/api/v1/exports",
            Some(&access),
            json!({"table_id": table, "format": "csv"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    app.request(
        Method::PATCH,
        &format!("/api/v1/admin/users/{user_id}"),
        Some(&root),
        Some(json!({"role": "admin"})),
    )
    .await;

    let events = audit(&app, &root, &format!("?actor={user_id}&limit=200")).await;
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for want in [
        "auth.register",
        "auth.login_failed",
        "auth.login",
        "auth.refresh_token_reused",
        "api_key.created",
        "api_key.revoked",
        "auth.password_changed",
        "export.created",
    ] {
        assert!(actions.contains(&want), "{want} in {actions:?}");
    }
    let login = events
        .iter()
        .find(|e| e["action"] == "auth.login" && e["request_id"] == "req-audit-1")
        .expect("the login with its request id");
    assert_eq!(login["user_agent"], "audit-test/1.0");
    assert_eq!(login["ip"], "127.0.0.1");
    assert_eq!(login["target_type"], "session");

    let role = audit(
        &app,
        &root,
        &format!("?action=admin.role_changed&target_id={user_id}"),
    )
    .await;
    assert_eq!(role.len(), 1);
    assert_eq!(role[0]["actor_id"], root_id);
    assert_eq!(role[0]["details"], json!({"from": "user", "to": "admin"}));
    let auth_events = audit(&app, &root, "?action=auth.").await;
    assert!(
        auth_events
            .iter()
            .all(|e| e["action"].as_str().unwrap().starts_with("auth."))
    );

    // Pages: newest first, no overlaps.
    let first = audit(&app, &root, "?limit=3").await;
    let (_, page) = app.get("/api/v1/admin/audit?limit=3", Some(&root)).await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let second = audit(&app, &root, &format!("?limit=3&cursor={cursor}")).await;
    assert!(
        first
            .iter()
            .all(|a| second.iter().all(|b| a["id"] != b["id"]))
    );
    assert!(first[0]["created_at"].as_str() >= second[0]["created_at"].as_str());

    let everything = audit(&app, &root, "?limit=200").await;
    let dump = serde_json::to_string(&everything).unwrap();
    for secret in [
        PASSWORD,
        new_password,
        "wrong password 123",
        &refresh,
        &secret_key,
    ] {
        assert!(!dump.contains(secret), "a secret reached the audit log");
    }
}

#[tokio::test]
async fn quotas_are_enforced_with_clear_problems_and_admin_overrides() {
    let app = TestApp::spawn_with(|c| {
        c.exports.workers = 0;
        c.quotas.exports_per_day = 10;
    })
    .await;
    let (root, _) = admin(&app, "quota-admin@example.com").await;
    let user = app.register("quota@example.com").await;
    let user_id = user["id"].as_str().unwrap().to_owned();
    let token = app.login("quota@example.com", PASSWORD).await.0;
    let table = cities(&app, &token).await;

    let (status, report) = app
        .request(
            Method::PUT,
            &format!("/api/v1/admin/users/{user_id}/quotas"),
            Some(&root),
            Some(json!({"exports_per_day": 1, "max_stored_rows": 5, "tokens_per_day": null})),
        )
        .await
        .into_pair();
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["defaults"]["exports_per_day"], 10);
    assert_eq!(report["effective"]["exports_per_day"], 1);
    assert_eq!(report["used"]["stored_rows"], 3);

    let body = json!({"table_id": table, "format": "csv"});
    let (status, _) = app
        .post("/api/v1/exports", Some(&token), body.clone())
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, headers, problem) = app
        .request(Method::POST, "/api/v1/exports", Some(&token), Some(body))
        .await;
    assert_problem(
        status,
        &problem,
        StatusCode::TOO_MANY_REQUESTS,
        "quota-exceeded",
    );
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("daily export quota of 1")
    );
    assert!(problem["detail"].as_str().unwrap().contains("resets at"));
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&wait));

    // 3 rows stored, at most 5: three more do not fit, two do.
    let rows = |n: usize| json!({"name": "More", "rows": (0..n).map(|i| json!({"n": i})).collect::<Vec<_>>()});
    let (status, problem) = app.post("/api/v1/tables", Some(&token), rows(3)).await;
    assert_problem(status, &problem, StatusCode::FORBIDDEN, "quota-exceeded");
    assert!(problem["detail"].as_str().unwrap().contains("5 rows"));
    let (status, small) = app.post("/api/v1/tables", Some(&token), rows(2)).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, problem) = app
        .post(
            &format!("/api/v1/tables/{}/changes", small["id"].as_str().unwrap()),
            Some(&token),
            json!({"ops": [{"op": "insert_rows", "rows": [{"n": 9}]}]}),
        )
        .await;
    assert_problem(status, &problem, StatusCode::FORBIDDEN, "quota-exceeded");

    // Back to the defaults.
    app.request(
        Method::PUT,
        &format!("/api/v1/admin/users/{user_id}/quotas"),
        Some(&root),
        Some(json!({})),
    )
    .await;
    let (status, _) = app.post("/api/v1/tables", Some(&token), rows(3)).await;
    assert_eq!(status, StatusCode::CREATED);
    let events = audit(&app, &root, "?action=admin.quotas_changed").await;
    assert_eq!(events.len(), 2);
}

async fn hit(
    app: &TestApp,
    token: Option<&str>,
    path: &str,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    app.request(Method::GET, path, token, None).await
}

#[tokio::test]
async fn requests_past_the_rate_limit_get_429_with_rate_limit_headers() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limits.default.requests = 5;
        c.rate_limits.auth.requests = 4;
    })
    .await;
    let alice = app.user("rl-a@example.com").await; // 2 auth requests
    let bob = app.user("rl-b@example.com").await; // 2 more: the address has used 4
    let (status, headers, _) = hit(&app, Some(&alice), "/api/v1/auth/me").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["ratelimit-limit"], "5");
    assert_eq!(headers["ratelimit-remaining"], "4");
    assert_eq!(headers["ratelimit-policy"], "5;w=60");
    for _ in 0..4 {
        hit(&app, Some(&alice), "/api/v1/auth/me").await;
    }
    let (status, headers, problem) = hit(&app, Some(&alice), "/api/v1/auth/me").await;
    assert_problem(
        status,
        &problem,
        StatusCode::TOO_MANY_REQUESTS,
        "too-many-requests",
    );
    assert_eq!(headers["ratelimit-remaining"], "0");
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // Keyed by user: Bob is not held back by Alice.
    let (status, _, _) = hit(&app, Some(&bob), "/api/v1/auth/me").await;
    assert_eq!(status, StatusCode::OK);
    // Before sign-in, by address: the fifth auth request from here is refused.
    let (status, problem) = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "rl-a@example.com", "password": PASSWORD}),
        )
        .await;
    assert_problem(
        status,
        &problem,
        StatusCode::TOO_MANY_REQUESTS,
        "too-many-requests",
    );
    // Operations endpoints are not limited.
    for _ in 0..10 {
        let (status, _, _) = hit(&app, None, "/healthz").await;
        assert_eq!(status, StatusCode::OK);
    }
}

#[tokio::test]
async fn with_redis_the_limit_is_shared_by_every_instance() {
    let prefix = format!("sgt-test-{}", uuid::Uuid::new_v4().simple());
    let configure = |c: &mut sheetgpt::Config, prefix: &str| {
        c.redis_url = Some("redis://127.0.0.1:6379".to_owned());
        c.rate_limits.redis_prefix = prefix.to_owned();
        c.rate_limits.default.requests = 6;
    };
    let p = prefix.clone();
    let first = TestApp::spawn_with(move |c| configure(c, &p)).await;
    assert_eq!(first.state.rate_limiter.backend(), "redis");
    let token = first.user("redis@example.com").await;
    let second = first.sibling(|c| configure(c, &prefix)).await;

    let mut statuses = Vec::new();
    for i in 0..8 {
        let app = if i % 2 == 0 { &first } else { &second };
        let (status, headers, _) = hit(app, Some(&token), "/api/v1/auth/me").await;
        statuses.push((
            status.as_u16(),
            headers["ratelimit-remaining"].to_str().unwrap().to_owned(),
        ));
    }
    let ok = statuses.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(ok, 6, "six requests across both instances: {statuses:?}");
    assert_eq!(statuses[5], (200, "0".to_owned()));
    assert_eq!(statuses[6].0, 429);
    assert_eq!(statuses[7].0, 429, "the other instance refuses too");
    let (_, headers, problem) = hit(&second, Some(&token), "/api/v1/auth/me").await;
    assert_eq!(problem["code"], "too-many-requests");
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(headers["ratelimit-policy"], "6;w=60");
}

#[tokio::test]
async fn with_redis_down_requests_are_served_not_refused() {
    let app = TestApp::spawn_with(|c| {
        // Nothing listens on port 1.
        c.redis_url = Some("redis://127.0.0.1:1".to_owned());
        c.rate_limits.default.requests = 2;
    })
    .await;
    assert_eq!(app.state.rate_limiter.backend(), "redis");
    let token = app.user("redis-down@example.com").await;
    for _ in 0..5 {
        let (status, headers, _) = hit(&app, Some(&token), "/api/v1/auth/me").await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers.get("ratelimit-limit").is_none());
    }
}

#[tokio::test]
async fn a_user_downloads_all_their_data_and_deletes_their_account() {
    use std::io::Read;
    let app = TestApp::spawn().await;
    let (root, _) = admin(&app, "dpo@example.com").await;
    let user = app.register("leaving@example.com").await;
    let user_id = user["id"].as_str().unwrap().to_owned();
    let token = app.login("leaving@example.com", PASSWORD).await.0;
    let table = cities(&app, &token).await;
    let (_, conv) = app
        .post("/api/v1/conversations", Some(&token), json!({}))
        .await;
    let conv_id = conv["id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/api/v1/conversations/{conv_id}/messages"),
        Some(&token),
        json!({"content": "a,b\n1,2"}),
    )
    .await;
    app.post(
        "/api/v1/templates",
        Some(&token),
        json!({"name": "Mine", "template": {}}),
    )
    .await;
    let other = app.user("staying@example.com").await;
    let other_table = cities(&app, &other).await;

    let resp = app
        .client
        .get(app.url("/api/v1/account/export"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/zip");
    let bytes = resp.bytes().await.unwrap().to_vec();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let names: Vec<String> = zip.file_names().map(|n| n.unwrap().into_owned()).collect();
    for want in [
        "account.json".to_owned(),
        format!("conversations/{conv_id}.json"),
        format!("tables/{table}.json"),
        format!("tables/{table}.xlsx"),
        "templates.json".to_owned(),
        "schemas.json".to_owned(),
    ] {
        assert!(names.contains(&want), "{want} in {names:?}");
    }
    assert!(
        !names.iter().any(|n| n.contains(&other_table)),
        "only the user's own data"
    );
    let mut text = String::new();
    zip.by_name(&format!("tables/{table}.json"))
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let rows: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(rows[0]["city"], "Paris");
    let mut xlsx = Vec::new();
    zip.by_name(&format!("tables/{table}.xlsx"))
        .unwrap()
        .read_to_end(&mut xlsx)
        .unwrap();
    use calamine::Reader;
    let mut book = calamine::open_workbook_auto_from_rs(std::io::Cursor::new(xlsx)).unwrap();
    assert_eq!(book.worksheet_range_at(0).unwrap().unwrap().height(), 4);
    let mut text = String::new();
    zip.by_name(&format!("conversations/{conv_id}.json"))
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let conversation: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(conversation["messages"][0]["content"], "a,b\n1,2");
    let mut text = String::new();
    zip.by_name("account.json")
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(!text.contains("argon2"), "no password hash in the archive");

    let (status, problem) = app
        .request(
            Method::DELETE,
            "/api/v1/account",
            Some(&token),
            Some(json!({"password": "not it at all"})),
        )
        .await
        .into_pair();
    assert_problem(
        status,
        &problem,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
    let (status, _) = app
        .request(
            Method::DELETE,
            "/api/v1/account",
            Some(&token),
            Some(json!({"password": PASSWORD})),
        )
        .await
        .into_pair();
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.get("/api/v1/auth/me", Some(&token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "leaving@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app
        .get(&format!("/api/v1/admin/users/{user_id}"), Some(&root))
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "gone, with everything it owned"
    );
    let (status, _) = app
        .get(&format!("/api/v1/tables/{other_table}"), Some(&other))
        .await;
    assert_eq!(status, StatusCode::OK, "other users keep theirs");
    let events = audit(
        &app,
        &root,
        &format!("?actor={user_id}&action=account.deleted"),
    )
    .await;
    assert_eq!(events.len(), 1, "the deletion is on record");
}

#[tokio::test]
async fn the_retention_sweep_purges_old_deleted_records_and_audit_events() {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
    use sheetgpt::db::entity::{audit_event, table};
    let app = TestApp::spawn().await;
    let token = app.user("sweep@example.com").await;
    let old = cities(&app, &token).await;
    let recent = cities(&app, &token).await;
    let kept = cities(&app, &token).await;
    app.delete(&format!("/api/v1/tables/{old}"), Some(&token))
        .await;
    app.delete(&format!("/api/v1/tables/{recent}"), Some(&token))
        .await;
    let long_ago = chrono::Utc::now() - chrono::Duration::days(40);
    table::Entity::update_many()
        .col_expr(table::Column::DeletedAt, Expr::value(long_ago))
        .filter(table::Column::Id.eq(uuid::Uuid::parse_str(&old).unwrap()))
        .exec(&app.state.db)
        .await
        .unwrap();
    let very_long_ago = chrono::Utc::now() - chrono::Duration::days(400);
    audit_event::Entity::update_many()
        .col_expr(audit_event::Column::CreatedAt, Expr::value(very_long_ago))
        .filter(audit_event::Column::Action.eq("auth.register"))
        .exec(&app.state.db)
        .await
        .unwrap();

    let swept = sheetgpt::retention::sweep(&app.state).await.unwrap();
    assert!(swept.records >= 1, "{swept:?}");
    assert_eq!(swept.audit_events, 1);
    let (_, trash) = app.get("/api/v1/tables?deleted=true", Some(&token)).await;
    let ids: Vec<&str> = trash["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![recent.as_str()],
        "only the table deleted 40 days ago is gone"
    );
    let (status, _) = app
        .get(&format!("/api/v1/tables/{kept}/rows"), Some(&token))
        .await;
    assert_eq!(status, StatusCode::OK);
    let again = sheetgpt::retention::sweep(&app.state).await.unwrap();
    assert_eq!(
        again,
        sheetgpt::retention::Swept::default(),
        "nothing left to sweep"
    );
}

/// A stolen access token must not become a way to guess the password: wrong passwords on
/// account deletion count as failed sign-ins, and the brake stops them.
#[tokio::test]
async fn guessing_the_password_to_delete_an_account_is_braked_like_sign_in() {
    let app = TestApp::spawn().await;
    let token = app.user("guess@example.com").await;
    let mut statuses = Vec::new();
    for i in 0..7 {
        let (status, body) = app
            .request(
                Method::DELETE,
                "/api/v1/account",
                Some(&token),
                Some(json!({"password": format!("wrong guess number {i}")})),
            )
            .await
            .into_pair();
        statuses.push((
            status.as_u16(),
            body["code"].as_str().unwrap_or("").to_owned(),
        ));
    }
    assert_eq!(statuses[0], (422, "validation-failed".to_owned()));
    assert!(
        statuses
            .iter()
            .any(|(s, code)| *s == 429 && code == "too-many-requests"),
        "{statuses:?}"
    );
    // Braked, even the right password waits; the account is still there.
    let (status, body) = app
        .request(
            Method::DELETE,
            "/api/v1/account",
            Some(&token),
            Some(json!({"password": PASSWORD})),
        )
        .await
        .into_pair();
    assert_problem(
        status,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
        "too-many-requests",
    );
    let (status, _) = app.get("/api/v1/auth/me", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
}

/// Issue 13: disabling only blocked a user while disabled; once enabled again, the access
/// token, refresh token and API key from before worked again. Disabling revokes them.
#[tokio::test]
async fn disabling_a_user_revokes_their_sessions_and_api_keys_for_good() {
    let app = TestApp::spawn().await;
    let (root, _) = admin(&app, "disabler@example.com").await;
    let user = app.register("disabled-later@example.com").await;
    let user_id = user["id"].as_str().unwrap().to_owned();
    let (access, refresh) = app.login("disabled-later@example.com", PASSWORD).await;
    let (status, key) = app
        .post(
            "/api/v1/api-keys",
            Some(&access),
            json!({"name": "script", "scope": "read_write"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let api_key = key["key"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&api_key)).await.0,
        StatusCode::OK
    );

    for disabled in [true, false] {
        let (status, body) = app
            .request(
                Method::PATCH,
                &format!("/api/v1/admin/users/{user_id}"),
                Some(&root),
                Some(json!({"disabled": disabled})),
            )
            .await
            .into_pair();
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    let (status, body) = app.get("/api/v1/auth/me", Some(&access)).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "session-revoked");
    let (status, body) = app.get("/api/v1/auth/me", Some(&api_key)).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "invalid-api-key");
    let (status, body) = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": refresh}),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "invalid-refresh-token",
    );
    // Enabled again, the user signs in afresh.
    let (fresh, _) = app.login("disabled-later@example.com", PASSWORD).await;
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&fresh)).await.0,
        StatusCode::OK
    );
    let (_, sessions) = app.get("/api/v1/auth/sessions", Some(&fresh)).await;
    assert_eq!(sessions["items"].as_array().unwrap().len(), 1, "{sessions}");
    let (_, keys) = app.get("/api/v1/api-keys", Some(&fresh)).await;
    assert_eq!(keys["items"], json!([]));
    let events = audit(&app, &root, "?action=admin.user_disabled").await;
    assert_eq!(events[0]["details"]["sessions_revoked"], 1, "{events:?}");
    assert_eq!(events[0]["details"]["api_keys_revoked"], 1, "{events:?}");
}
