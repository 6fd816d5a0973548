//! Every error is problem+json with the right status, whatever layer produced it.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{IntoPair, TestApp, assert_problem};

async fn raw(
    app: &TestApp,
    req: reqwest::RequestBuilder,
) -> (StatusCode, reqwest::header::HeaderMap, serde_json::Value) {
    let _ = app;
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    assert_eq!(
        headers["content-type"], "application/problem+json",
        "status {status} must be problem+json"
    );
    (status, headers, resp.json().await.unwrap())
}

#[tokio::test]
async fn an_unknown_route_is_a_404_problem() {
    let app = TestApp::spawn().await;
    let (status, _, body) = raw(&app, app.client.get(app.url("/api/v1/nope"))).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
}

#[tokio::test]
async fn a_wrong_method_is_a_405_problem_with_allow() {
    let app = TestApp::spawn().await;
    let (status, headers, body) = raw(&app, app.client.delete(app.url("/api/v1/auth/login"))).await;
    assert_problem(
        status,
        &body,
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
    );
    assert!(headers["allow"].to_str().unwrap().contains("POST"));
}

#[tokio::test]
async fn malformed_json_is_a_400_problem() {
    let app = TestApp::spawn().await;
    let req = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body("{\"email\": ");
    let (status, _, body) = raw(&app, req).await;
    assert_problem(status, &body, StatusCode::BAD_REQUEST, "malformed-json");
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_415_problem() {
    let app = TestApp::spawn().await;
    let req = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("content-type", "text/plain")
        .body("email=a@b.c");
    let (status, _, body) = raw(&app, req).await;
    assert_problem(
        status,
        &body,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413_problem() {
    let app = TestApp::spawn_with(|c| c.http.body_limit_bytes = 4096).await;
    let big = json!({"email": "a@example.com", "password": "x".repeat(10_000)});
    let req = app.client.post(app.url("/api/v1/auth/register")).json(&big);
    let (status, _, body) = raw(&app, req).await;
    assert_problem(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload-too-large",
    );
    // Streamed without a length, the limit holds as well.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        vec![Ok(vec![b' '; 3000]), Ok(vec![b' '; 3000])];
    let req = app
        .client
        .post(app.url("/api/v1/auth/register"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )));
    let (status, _, body) = raw(&app, req).await;
    assert_problem(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload-too-large",
    );
}

#[tokio::test]
async fn a_missing_or_mistyped_field_is_a_422_naming_it() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "a@example.com"}),
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
            .contains("password"),
        "{body}"
    );
    let (status, body) = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": 42, "password": "x"}),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
}

/// serde reads a struct from an array of its fields in order; a body must be an object, so
/// `[null, null]` changes nothing instead of being a rename to nothing (found by the fuzz).
#[tokio::test]
async fn a_body_that_is_not_an_object_is_a_422_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let token = app.user("arrays@example.com").await;
    let (_, conv) = app
        .post(
            "/api/v1/conversations",
            Some(&token),
            json!({"title": "Kept"}),
        )
        .await;
    let path = format!("/api/v1/conversations/{}", conv["id"].as_str().unwrap());
    for body in [
        json!([null, null]),
        json!(["Renamed"]),
        json!("Renamed"),
        json!(3),
    ] {
        let (status, answer) = app
            .request(Method::PATCH, &path, Some(&token), Some(body.clone()))
            .await
            .into_pair();
        assert_problem(
            status,
            &answer,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-failed",
        );
        assert_eq!(answer["errors"][0]["field"], "body", "{body}: {answer}");
    }
    let (_, kept) = app.get(&path, Some(&token)).await;
    assert_eq!(kept["title"], "Kept");
}

#[tokio::test]
async fn bad_query_parameters_and_ids_are_clear_4xx_problems() {
    let app = TestApp::spawn().await;
    let token = app.user("qa@example.com").await;
    let (status, body) = app.get("/api/v1/auth/sessions?limit=0", Some(&token)).await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
    assert_eq!(body["errors"][0]["field"], "limit");
    let (status, body) = app
        .get("/api/v1/auth/sessions?limit=abc", Some(&token))
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
    let (status, body) = app
        .get("/api/v1/auth/sessions?cursor=zzz", Some(&token))
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
    let (status, body) = app.get("/api/v1/api-keys/not-a-uuid", Some(&token)).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not-found");
}

#[tokio::test]
async fn the_request_id_is_echoed_or_created() {
    let app = TestApp::spawn().await;
    let resp = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-me-123");
    let (_, headers, _) = app.request(Method::GET, "/healthz", None, None).await;
    assert!(uuid::Uuid::parse_str(headers["x-request-id"].to_str().unwrap()).is_ok());
}

#[tokio::test]
async fn responses_carry_security_headers() {
    let app = TestApp::spawn().await;
    let (_, headers, _) = app.request(Method::GET, "/api/v1/nope", None, None).await;
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
}

#[tokio::test]
async fn cors_allows_configured_origins_only() {
    let app = TestApp::spawn_with(|c| {
        c.http.cors_allowed_origins = vec!["https://app.example.com".into()]
    })
    .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(Method::OPTIONS, app.url("/api/v1/auth/me"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let ok = preflight("https://app.example.com").await.unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let other = preflight("https://evil.example.com").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn no_cors_headers_without_configured_origins() {
    let app = TestApp::spawn().await;
    let resp = app
        .client
        .get(app.url("/healthz"))
        .header("origin", "https://elsewhere.example.com")
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
}
