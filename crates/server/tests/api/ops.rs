use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::TestApp;

#[tokio::test]
async fn healthz_and_readyz_answer_when_the_database_is_migrated() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get("/healthz", None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, body) = app.get("/readyz", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["database"], "ok");
    assert_eq!(body["pending_migrations"], 0);
}

#[tokio::test]
async fn readyz_reports_an_unreachable_database_as_503() {
    let app = TestApp::spawn().await;
    app.state.db.close_by_ref().await.unwrap();
    let (status, body) = app.get("/readyz", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "not ready");
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status_and_show_the_pool() {
    let app = TestApp::spawn().await;
    let token = app.user("ops@example.com").await;
    for _ in 0..3 {
        app.get("/api/v1/auth/me", Some(&token)).await;
    }
    let text = app.metrics_text().await;
    let me_count = text
        .lines()
        .find(|l| {
            l.starts_with("sheetgpt_http_requests_total{")
                && l.contains("route=\"/api/v1/auth/me\"")
                && l.contains("status=\"200\"")
        })
        .unwrap_or_else(|| panic!("no counter for /auth/me in:\n{text}"));
    let count: f64 = me_count.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 3.0, "{me_count}");
    assert!(
        text.contains("sheetgpt_http_request_duration_seconds_bucket{"),
        "latency histogram"
    );
    assert!(text.contains("sheetgpt_db_pool_connections{state=\"idle\"}"));
    assert!(text.contains("sheetgpt_db_pool_max_connections 5"));
}

#[tokio::test]
async fn the_openapi_document_is_3_1_and_lists_every_route_with_problem_answers() {
    let app = TestApp::spawn().await;
    let (status, doc) = app.get("/api/v1/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let routes: BTreeSet<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect();
    let expected = [
        "POST /api/v1/auth/register",
        "POST /api/v1/auth/login",
        "POST /api/v1/auth/refresh",
        "POST /api/v1/auth/logout",
        "POST /api/v1/auth/web/login",
        "POST /api/v1/auth/web/refresh",
        "POST /api/v1/auth/web/logout",
        "GET /api/v1/auth/me",
        "PATCH /api/v1/auth/me",
        "POST /api/v1/auth/password",
        "GET /api/v1/auth/sessions",
        "DELETE /api/v1/auth/sessions/{id}",
        "POST /api/v1/api-keys",
        "GET /api/v1/api-keys",
        "GET /api/v1/api-keys/{id}",
        "DELETE /api/v1/api-keys/{id}",
        "POST /api/v1/conversations",
        "GET /api/v1/conversations",
        "GET /api/v1/conversations/{id}",
        "PATCH /api/v1/conversations/{id}",
        "DELETE /api/v1/conversations/{id}",
        "POST /api/v1/conversations/{id}/messages",
        "GET /api/v1/conversations/{id}/messages",
        "POST /api/v1/conversations/{id}/messages/{message_id}/cancel",
        "POST /api/v1/conversations/{id}/regenerate",
        "POST /api/v1/conversations/{id}/ws-ticket",
        "GET /api/v1/conversations/{id}/ws",
        "GET /api/v1/models",
        "PUT /api/v1/models/{name}/key",
        "DELETE /api/v1/models/{name}/key",
        "GET /api/v1/usage",
        "POST /api/v1/tables",
        "GET /api/v1/tables",
        "POST /api/v1/tables/import",
        "GET /api/v1/tables/{id}",
        "PATCH /api/v1/tables/{id}",
        "DELETE /api/v1/tables/{id}",
        "POST /api/v1/tables/{id}/restore",
        "GET /api/v1/tables/{id}/rows",
        "POST /api/v1/tables/{id}/changes",
        "GET /api/v1/tables/{id}/versions",
        "GET /api/v1/tables/{id}/versions/{version}",
        "GET /api/v1/tables/{id}/diff",
        "POST /api/v1/tables/{id}/revert",
        "GET /api/v1/tables/{id}/validation",
        "GET /api/v1/tables/{id}/type-change",
        "GET /api/v1/tables/{id}/download",
        "POST /api/v1/schemas",
        "GET /api/v1/schemas",
        "GET /api/v1/schemas/{id}",
        "PATCH /api/v1/schemas/{id}",
        "DELETE /api/v1/schemas/{id}",
        "POST /api/v1/templates",
        "GET /api/v1/templates",
        "GET /api/v1/templates/{id}",
        "PATCH /api/v1/templates/{id}",
        "DELETE /api/v1/templates/{id}",
        "POST /api/v1/exports",
        "GET /api/v1/exports",
        "GET /api/v1/exports/{id}",
        "POST /api/v1/exports/{id}/cancel",
        "GET /api/v1/exports/{id}/download",
        "GET /api/v1/integrations/google",
        "DELETE /api/v1/integrations/google",
        "POST /api/v1/integrations/google/connect",
        "GET /api/v1/integrations/google/callback",
        "GET /api/v1/sheet-links",
        "GET /api/v1/sheet-links/{id}",
        "DELETE /api/v1/sheet-links/{id}",
        "POST /api/v1/sheet-links/{id}/sync",
        "GET /api/v1/admin/users",
        "GET /api/v1/admin/users/{id}",
        "PATCH /api/v1/admin/users/{id}",
        "GET /api/v1/admin/users/{id}/usage",
        "GET /api/v1/admin/users/{id}/quotas",
        "PUT /api/v1/admin/users/{id}/quotas",
        "GET /api/v1/admin/audit",
        "GET /api/v1/account/export",
        "POST /api/v1/account/export",
        "GET /api/v1/jobs",
        "GET /api/v1/jobs/{id}",
        "POST /api/v1/jobs/{id}/cancel",
        "GET /api/v1/jobs/{id}/download",
        "GET /api/v1/jobs/{id}/events",
        "DELETE /api/v1/account",
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
    ];
    let expected: BTreeSet<String> = expected.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(routes, expected);

    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            let problem =
                &responses["500"]["content"]["application/problem+json"]["schema"]["$ref"];
            assert_eq!(problem, "#/components/schemas/Problem", "{method} {path}");
            let public = op["security"] == serde_json::json!([{}]);
            let should_be_public = [
                "/api/v1/auth/register",
                "/api/v1/auth/login",
                "/api/v1/auth/refresh",
                "/api/v1/integrations/google/callback",
                // The web page's sign-in: the refresh cookie and CSRF token, not a bearer.
                "/api/v1/auth/web/login",
                "/api/v1/auth/web/refresh",
                "/api/v1/auth/web/logout",
                "/healthz",
                "/readyz",
                "/metrics",
            ];
            assert_eq!(
                public,
                should_be_public.contains(&path.as_str()),
                "{method} {path}: security"
            );
            if !public {
                assert!(responses.contains_key("401"), "{method} {path} lacks 401");
            }
            if op.get("requestBody").is_some() {
                for code in ["413", "415", "422"] {
                    assert!(responses.contains_key(code), "{method} {path} lacks {code}");
                }
            }
        }
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let problem: &Value = &doc["components"]["schemas"]["Problem"];
    assert!(
        problem["properties"]["type"].is_object() && problem["properties"]["errors"].is_object()
    );
    // An event stream documents each event (what a client's SSE parser yields) and the JSON
    // its data carries.
    let events = &doc["paths"]["/api/v1/jobs/{id}/events"]["get"]["responses"]["200"]["content"]["text/event-stream"]
        ["schema"]["$ref"];
    assert_eq!(events, "#/components/schemas/JobEvent");
    let event = &doc["components"]["schemas"]["JobEvent"];
    assert_eq!(
        event["properties"]["event"]["enum"],
        serde_json::json!(["job"])
    );
    assert_eq!(
        event["properties"]["data"]["contentSchema"]["$ref"],
        "#/components/schemas/JobResponse"
    );
}

#[tokio::test]
async fn the_docs_page_and_its_assets_are_served_locally() {
    let app = TestApp::spawn().await;
    let page = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(!html.contains("https://"), "no remote assets in the page");
    for asset in [
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-initializer.js",
    ] {
        assert!(html.contains(asset), "page references {asset}");
        let resp = app
            .client
            .get(app.url(&format!("/docs/{asset}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{asset}");
        assert!(resp.bytes().await.unwrap().len() > 100);
    }
    let init = app
        .client
        .get(app.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(init.contains("/api/v1/openapi.json"));
}

#[tokio::test]
async fn instances_starting_together_migrate_once_without_failing() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::helpers::base_config(dir.path());
    config.database_url = crate::helpers::fresh_database_url(dir.path()).await;
    let (a, b) = tokio::join!(
        async {
            let db = sheetgpt::db::connect(&config).await.unwrap();
            sheetgpt::db::migrate(&db).await
        },
        async {
            let db = sheetgpt::db::connect(&config).await.unwrap();
            sheetgpt::db::migrate(&db).await
        }
    );
    a.unwrap();
    b.unwrap();
    let db = sheetgpt::db::connect(&config).await.unwrap();
    assert_eq!(sheetgpt::db::pending_migrations(&db).await.unwrap(), 0);
}
