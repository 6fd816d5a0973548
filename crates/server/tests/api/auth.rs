use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use sea_orm::EntityTrait;
use serde_json::{Value, json};

use crate::helpers::{JWT_SECRET, PASSWORD, TestApp, assert_problem};

#[tokio::test]
async fn register_normalises_the_email_and_never_returns_the_password_hash() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "  Alice@Example.COM ", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["email"], "alice@example.com");
    assert_eq!(body["role"], "user");
    assert!(uuid::Uuid::parse_str(body["id"].as_str().unwrap()).is_ok());
    assert_eq!(
        body.as_object().unwrap().len(),
        5,
        "only id, email, role, locale, created_at: {body}"
    );
}

#[tokio::test]
async fn registering_an_address_twice_in_another_case_is_a_conflict() {
    let app = TestApp::spawn().await;
    app.register("bob@example.com").await;
    let (status, body) = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "BOB@example.com", "password": "another long passphrase"}),
        )
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT, "email-taken");
}

#[tokio::test]
async fn registration_with_a_bad_email_and_a_weak_password_lists_both_fields() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "not-an-email", "password": "short"}),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["email", "password"]);
    assert_eq!(
        body["errors"][1]["message"],
        "must be at least 10 characters long"
    );
}

#[tokio::test]
async fn login_then_me_returns_the_signed_in_user() {
    let app = TestApp::spawn().await;
    let registered = app.register("carol@example.com").await;
    let (status, body) = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "Carol@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let (status, me) = app
        .get("/api/v1/auth/me", body["access_token"].as_str())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me, registered);
}

#[tokio::test]
async fn unknown_email_and_wrong_password_get_the_same_answer() {
    let app = TestApp::spawn().await;
    app.register("dave@example.com").await;
    let (s1, h1, b1) = app
        .request(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "dave@example.com", "password": "wrong password here"})),
        )
        .await;
    let (s2, h2, b2) = app
        .request(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "nobody@example.com", "password": "wrong password here"})),
        )
        .await;
    assert_problem(s1, &b1, StatusCode::UNAUTHORIZED, "invalid-credentials");
    assert_eq!((s1, &b1), (s2, &b2));
    assert_eq!(h1.get("www-authenticate"), h2.get("www-authenticate"));
}

#[tokio::test]
async fn repeated_failed_logins_are_slowed_down_with_retry_after() {
    let app = TestApp::spawn_with(|c| {
        c.auth.login_failures_per_account = 3;
        c.auth.login_failure_window_secs = 600;
    })
    .await;
    app.register("eve@example.com").await;
    let wrong = json!({"email": "eve@example.com", "password": "not the password"});
    for _ in 0..3 {
        let (status, _) = app.post("/api/v1/auth/login", None, wrong.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, headers, body) = app
        .request(Method::POST, "/api/v1/auth/login", None, Some(wrong))
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
        "too-many-requests",
    );
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((60..=200).contains(&retry), "retry-after {retry}");
    // Even the right password waits now: the account is slowed down, not guessed at.
    let (status, _) = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "eve@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // Other accounts are not affected.
    app.register("frank@example.com").await;
    app.login("frank@example.com", PASSWORD).await;
}

fn forge(claims: Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// The claims of a valid token for this app's user and session, to alter one at a time.
async fn valid_claims(app: &TestApp, email: &str) -> Value {
    let token = app.user(email).await;
    let payload = token.split('.').nth(1).unwrap();
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn a_token_forged_with_the_right_secret_and_claims_is_accepted() {
    // Guards the tests below: each one changes exactly one thing from this token.
    let app = TestApp::spawn().await;
    let claims = valid_claims(&app, "gina@example.com").await;
    let (status, _) = app
        .get("/api/v1/auth/me", Some(&forge(claims, JWT_SECRET)))
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn an_expired_access_token_is_refused_as_expired() {
    let app = TestApp::spawn().await;
    let mut claims = valid_claims(&app, "hank@example.com").await;
    let now = chrono::Utc::now().timestamp();
    claims["iat"] = json!(now - 3600);
    claims["exp"] = json!(now - 60);
    let (status, body) = app
        .get("/api/v1/auth/me", Some(&forge(claims, JWT_SECRET)))
        .await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "token-expired");
}

#[tokio::test]
async fn tokens_with_a_wrong_audience_issuer_or_secret_are_refused() {
    let app = TestApp::spawn().await;
    let claims = valid_claims(&app, "ivan@example.com").await;
    let mut wrong_aud = claims.clone();
    wrong_aud["aud"] = json!("some-other-api");
    let mut wrong_iss = claims.clone();
    wrong_iss["iss"] = json!("evil");
    let mut no_exp = claims.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    for token in [
        forge(wrong_aud, JWT_SECRET),
        forge(wrong_iss, JWT_SECRET),
        forge(no_exp, JWT_SECRET),
        forge(claims, "another-secret-of-sufficient-length-000000"),
    ] {
        let (status, body) = app.get("/api/v1/auth/me", Some(&token)).await;
        assert_problem(status, &body, StatusCode::UNAUTHORIZED, "invalid-token");
    }
}

#[tokio::test]
async fn a_tampered_or_unsigned_token_is_refused() {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let app = TestApp::spawn().await;
    let token = app.user("judy@example.com").await;
    let parts: Vec<&str> = token.split('.').collect();
    // Claim to be someone else, keep the signature.
    let mut claims: Value = serde_json::from_slice(&engine.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = json!(uuid::Uuid::now_v7());
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        engine.encode(claims.to_string()),
        parts[2]
    );
    // alg "none" with no signature.
    let none_header = engine.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let unsigned = format!("{none_header}.{}.", parts[1]);
    for bad in [
        tampered,
        unsigned,
        "garbage".to_owned(),
        format!("{token}x"),
    ] {
        let (status, body) = app.get("/api/v1/auth/me", Some(&bad)).await;
        assert_problem(status, &body, StatusCode::UNAUTHORIZED, "invalid-token");
    }
}

#[tokio::test]
async fn requests_without_credentials_are_told_how_to_authenticate() {
    let app = TestApp::spawn().await;
    let (status, headers, body) = app
        .request(Method::GET, "/api/v1/auth/me", None, None)
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "missing-credentials",
    );
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let resp = app
        .client
        .get(app.url("/api/v1/auth/me"))
        .header("authorization", "Basic YWxpY2U6c2VjcmV0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn refresh_rotates_both_tokens() {
    let app = TestApp::spawn().await;
    app.register("kim@example.com").await;
    let (_, r1) = app.login("kim@example.com", PASSWORD).await;
    let (status, body) = app
        .post("/api/v1/auth/refresh", None, json!({"refresh_token": r1}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let r2 = body["refresh_token"].as_str().unwrap();
    assert_ne!(r2, r1);
    let (status, me) = app
        .get("/api/v1/auth/me", body["access_token"].as_str())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["email"], "kim@example.com");
    let (status, _) = app
        .post("/api/v1/auth/refresh", None, json!({"refresh_token": r2}))
        .await;
    assert_eq!(status, StatusCode::OK, "the rotated token works once too");
}

#[tokio::test]
async fn reusing_a_spent_refresh_token_revokes_the_whole_login_family() {
    let app = TestApp::spawn().await;
    app.register("lou@example.com").await;
    let (_, r1) = app.login("lou@example.com", PASSWORD).await;
    let (_, second) = app
        .post("/api/v1/auth/refresh", None, json!({"refresh_token": r1}))
        .await;
    let (access2, r2) = (
        second["access_token"].as_str().unwrap().to_owned(),
        second["refresh_token"].as_str().unwrap().to_owned(),
    );
    // An attacker replays the first token.
    let (status, body) = app
        .post("/api/v1/auth/refresh", None, json!({"refresh_token": r1}))
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "refresh-token-reused",
    );
    // The legitimate holder's newer tokens are dead too.
    let (status, body) = app
        .post("/api/v1/auth/refresh", None, json!({"refresh_token": r2}))
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "invalid-refresh-token",
    );
    let (status, body) = app.get("/api/v1/auth/me", Some(&access2)).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "session-revoked");
    // Other logins of the same user are untouched.
    let (fresh, _) = app.login("lou@example.com", PASSWORD).await;
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&fresh)).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn an_unknown_refresh_token_is_refused() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": "made-up"}),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "invalid-refresh-token",
    );
}

#[tokio::test]
async fn logout_ends_the_access_and_refresh_tokens_of_that_session() {
    let app = TestApp::spawn().await;
    app.register("mia@example.com").await;
    let (access, refresh) = app.login("mia@example.com", PASSWORD).await;
    let (status, _) = app
        .post("/api/v1/auth/logout", Some(&access), json!({}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.get("/api/v1/auth/me", Some(&access)).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "session-revoked");
    let (status, _) = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": refresh}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn changing_the_password_signs_out_other_sessions_and_keeps_this_one() {
    let app = TestApp::spawn().await;
    app.register("ned@example.com").await;
    let (laptop, _) = app.login("ned@example.com", PASSWORD).await;
    let (phone, phone_refresh) = app.login("ned@example.com", PASSWORD).await;
    let new_password = "a brand new passphrase";

    let (status, body) = app
        .post(
            "/api/v1/auth/password",
            Some(&laptop),
            json!({"current_password": "not my password", "new_password": new_password}),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
    assert_eq!(body["errors"][0]["field"], "current_password");

    let (status, body) = app
        .post(
            "/api/v1/auth/password",
            Some(&laptop),
            json!({"current_password": PASSWORD, "new_password": new_password}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["revoked_sessions"], 1);
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&laptop)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&phone)).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _) = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": phone_refresh}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "ned@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "old password no longer works"
    );
    app.login("ned@example.com", new_password).await;
}

#[tokio::test]
async fn a_new_password_must_meet_the_policy() {
    let app = TestApp::spawn().await;
    let token = app.user("olga@example.com").await;
    let (status, body) = app
        .post(
            "/api/v1/auth/password",
            Some(&token),
            json!({"current_password": PASSWORD, "new_password": "1234567890"}),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation-failed",
    );
    assert_eq!(body["errors"][0]["field"], "new_password");
}

#[tokio::test]
async fn a_disabled_user_cannot_sign_in_and_their_tokens_stop_working() {
    // No session cache: the change is made behind the server's back, as the CLI does.
    let app = TestApp::spawn_with(|c| c.auth.session_cache_secs = 0).await;
    let token = app.user("pam@example.com").await;
    let user = sheetgpt::db::users::find_by_email(&app.state.db, "pam@example.com")
        .await
        .unwrap()
        .unwrap();
    sheetgpt::db::users::set_disabled(&app.state.db, user.id, Some(chrono::Utc::now()))
        .await
        .unwrap();
    let (status, body) = app.get("/api/v1/auth/me", Some(&token)).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "account-disabled");
    let (status, body) = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": "pam@example.com", "password": PASSWORD}),
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "account-disabled");
}

#[tokio::test]
async fn a_change_made_elsewhere_is_seen_once_the_session_cache_expires() {
    let app = TestApp::spawn_with(|c| c.auth.session_cache_secs = 1).await;
    let token = app.user("quinn@example.com").await;
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&token)).await.0,
        StatusCode::OK
    );
    let user = sheetgpt::db::users::find_by_email(&app.state.db, "quinn@example.com")
        .await
        .unwrap()
        .unwrap();
    sheetgpt::db::users::set_disabled(&app.state.db, user.id, Some(chrono::Utc::now()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&token)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

/// A sign-in as if through a proxy that appended `client` to `X-Forwarded-For`; `forged` is
/// what the client itself put in the header before (the proxy keeps it, on the left).
async fn login_via_proxy(
    app: &TestApp,
    forged: Option<&str>,
    client: &str,
    email: &str,
    password: &str,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let chain = match forged {
        Some(f) => format!("{f}, {client}"),
        None => client.to_owned(),
    };
    let resp = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("x-forwarded-for", chain)
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    (status, headers, resp.json().await.unwrap_or(Value::Null))
}

/// Issue 13: five wrong passwords from anywhere kept the owner out for minutes. The tight
/// brake is now per account and client address; the owner, elsewhere, gets in.
#[tokio::test]
async fn a_strangers_failed_sign_ins_do_not_lock_the_owner_out() {
    let app = TestApp::spawn_with(|c| c.http.trust_forwarded_for = true).await;
    app.register("owner@example.com").await;
    let stranger = "203.0.113.9";
    let owner = "198.51.100.7";
    let mut statuses = Vec::new();
    for i in 0..6 {
        let (status, _, _) = login_via_proxy(
            &app,
            None,
            stranger,
            "owner@example.com",
            &format!("guess {i}"),
        )
        .await;
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses[..5], [401; 5], "{statuses:?}");
    assert_eq!(statuses[5], 429, "the stranger is braked: {statuses:?}");
    // Even the right password from the stranger's address waits.
    let (status, _, _) = login_via_proxy(&app, None, stranger, "owner@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // The owner, from their own address, signs in at once.
    let (status, _, body) = login_via_proxy(&app, None, owner, "owner@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["access_token"].is_string());
}

/// Issue 13: the leftmost `X-Forwarded-For` entry was taken, which the client writes itself:
/// rotating it escaped the per-address brake and the `auth` rate limit, and put any address
/// in the audit log. The address is the one the trusted proxy appended (the rightmost).
#[tokio::test]
async fn rotating_the_leftmost_forwarded_for_entry_escapes_no_limit() {
    let app = TestApp::spawn_with(|c| {
        c.http.trust_forwarded_for = true;
        c.auth.login_failures_per_ip = 3;
    })
    .await;
    let client = "192.0.2.50";
    let mut statuses = Vec::new();
    for i in 0..5 {
        // A different account each time, so that only the per-address brake can stop it.
        let (status, _, _) = login_via_proxy(
            &app,
            Some(&format!("10.9.{i}.{i}")),
            client,
            &format!("victim{i}@example.com"),
            "a wrong guess",
        )
        .await;
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429], "{statuses:?}");
    // The audit log has the address the proxy saw, never the forged one.
    let rows = sheetgpt::db::entity::audit_event::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap();
    let failed: Vec<_> = rows
        .iter()
        .filter(|e| e.action == "auth.login_failed")
        .collect();
    // The fourth was checked (and failed) before its address ran out of allowance.
    assert_eq!(failed.len(), 4);
    assert!(
        failed.iter().all(|e| e.ip.as_deref() == Some(client)),
        "{:?}",
        failed.iter().map(|e| &e.ip).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn rotating_the_leftmost_forwarded_for_entry_escapes_no_rate_limit() {
    let app = TestApp::spawn_with(|c| {
        c.http.trust_forwarded_for = true;
        c.rate_limits.auth.requests = 3;
    })
    .await;
    let mut statuses = Vec::new();
    for i in 0..5 {
        let (status, _, _) = login_via_proxy(
            &app,
            Some(&format!("10.8.{i}.{i}")),
            "192.0.2.60",
            &format!("nobody{i}@example.com"),
            "a wrong guess",
        )
        .await;
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429], "{statuses:?}");
}
