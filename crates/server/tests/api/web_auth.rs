//! Sign-in for the web page: the refresh token in an HttpOnly cookie, CSRF protection, and
//! the page's files themselves.

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{RequestBuilder, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, assert_problem};

/// One `Set-Cookie` header, parsed.
#[derive(Debug)]
struct SetCookie {
    name: String,
    value: String,
    attributes: Vec<String>,
}

impl SetCookie {
    fn has(&self, attribute: &str) -> bool {
        self.attributes
            .iter()
            .any(|a| a.eq_ignore_ascii_case(attribute))
    }

    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.iter().find_map(|a| {
            a.split_once('=')
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })
    }
}

fn set_cookies(headers: &HeaderMap) -> Vec<SetCookie> {
    headers
        .get_all("set-cookie")
        .iter()
        .map(|v| {
            let text = v.to_str().unwrap();
            let mut parts = text.split(';').map(str::trim);
            let (name, value) = parts.next().unwrap().split_once('=').unwrap();
            SetCookie {
                name: name.to_owned(),
                value: value.to_owned(),
                attributes: parts.map(str::to_owned).collect(),
            }
        })
        .collect()
}

fn find<'a>(cookies: &'a [SetCookie], name: &str) -> &'a SetCookie {
    cookies
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no Set-Cookie {name} in {cookies:?}"))
}

/// The browser's side: what it holds after a response and sends back.
struct Browser {
    refresh: String,
    csrf: String,
}

impl Browser {
    fn cookie_header(&self) -> String {
        format!(
            "sheetgpt_refresh={}; sheetgpt_csrf={}",
            self.refresh, self.csrf
        )
    }
}

async fn send(req: RequestBuilder) -> (StatusCode, HeaderMap, Value) {
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, body)
}

async fn web_login(app: &TestApp, email: &str) -> (Browser, String) {
    app.register(email).await;
    let (status, headers, body) = send(
        app.client
            .post(app.url("/api/v1/auth/web/login"))
            .header("origin", format!("http://{}", app.addr))
            .header("sec-fetch-site", "same-origin")
            .json(&json!({"email": email, "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let cookies = set_cookies(&headers);
    (
        Browser {
            refresh: find(&cookies, "sheetgpt_refresh").value.clone(),
            csrf: find(&cookies, "sheetgpt_csrf").value.clone(),
        },
        body["access_token"].as_str().unwrap().to_owned(),
    )
}

fn refresh_request(app: &TestApp, browser: &Browser, csrf: Option<&str>) -> RequestBuilder {
    let mut req = app
        .client
        .post(app.url("/api/v1/auth/web/refresh"))
        .header("cookie", browser.cookie_header());
    if let Some(csrf) = csrf {
        req = req.header("x-csrf-token", csrf);
    }
    req
}

#[tokio::test]
async fn web_login_keeps_the_refresh_token_in_an_httponly_strict_cookie_scoped_to_its_path() {
    let app = TestApp::spawn().await;
    app.register("web@example.com").await;
    let (status, headers, body) = send(
        app.client
            .post(app.url("/api/v1/auth/web/login"))
            .json(&json!({"email": "web@example.com", "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["access_token"].is_string());
    assert_eq!(body["token_type"], "Bearer");
    assert!(
        body.get("refresh_token").is_none(),
        "the refresh token is never in the body: {body}"
    );

    let cookies = set_cookies(&headers);
    let refresh = find(&cookies, "sheetgpt_refresh");
    assert!(refresh.value.len() >= 43);
    assert!(refresh.has("HttpOnly"));
    assert_eq!(refresh.attribute("SameSite"), Some("Strict"));
    assert_eq!(refresh.attribute("Path"), Some("/api/v1/auth/web"));
    let max_age: i64 = refresh.attribute("Max-Age").unwrap().parse().unwrap();
    assert!(
        (29 * 86_400..=30 * 86_400).contains(&max_age),
        "lasts as long as the session: {max_age}"
    );
    assert!(!refresh.has("Secure"), "plain HTTP: not Secure");

    let csrf = find(&cookies, "sheetgpt_csrf");
    assert!(!csrf.has("HttpOnly"), "the page must read it");
    assert_eq!(csrf.attribute("SameSite"), Some("Strict"));
    assert_eq!(csrf.attribute("Path"), Some("/"));
    assert!(csrf.value.len() >= 43);

    let (status, me) = app
        .get("/api/v1/auth/me", body["access_token"].as_str())
        .await;
    assert_eq!(
        (status, me["email"].as_str()),
        (StatusCode::OK, Some("web@example.com"))
    );
}

#[tokio::test]
async fn cookies_are_secure_when_a_trusted_proxy_says_the_request_came_over_tls() {
    let app = TestApp::spawn_with(|c| c.http.trust_forwarded_for = true).await;
    app.register("tls@example.com").await;
    let (status, headers, _) = send(
        app.client
            .post(app.url("/api/v1/auth/web/login"))
            .header("x-forwarded-proto", "https")
            .json(&json!({"email": "tls@example.com", "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let cookies = set_cookies(&headers);
    assert!(find(&cookies, "sheetgpt_refresh").has("Secure"));
    assert!(find(&cookies, "sheetgpt_csrf").has("Secure"));

    // Without trust in the proxy the header proves nothing.
    let untrusting = TestApp::spawn().await;
    untrusting.register("tls@example.com").await;
    let (_, headers, _) = send(
        untrusting
            .client
            .post(untrusting.url("/api/v1/auth/web/login"))
            .header("x-forwarded-proto", "https")
            .json(&json!({"email": "tls@example.com", "password": PASSWORD})),
    )
    .await;
    assert!(!find(&set_cookies(&headers), "sheetgpt_refresh").has("Secure"));
}

#[tokio::test]
async fn refresh_by_cookie_gives_a_new_access_token_and_rotates_the_cookie() {
    let app = TestApp::spawn().await;
    let (browser, _) = web_login(&app, "rot@example.com").await;

    let (status, headers, body) = send(refresh_request(&app, &browser, Some(&browser.csrf))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = app
        .get("/api/v1/auth/me", body["access_token"].as_str())
        .await;
    assert_eq!(status, StatusCode::OK);
    let cookies = set_cookies(&headers);
    let rotated = find(&cookies, "sheetgpt_refresh");
    assert_ne!(rotated.value, browser.refresh, "a new refresh token");
    assert!(rotated.has("HttpOnly"));
    assert_eq!(
        find(&cookies, "sheetgpt_csrf").value,
        browser.csrf,
        "the CSRF token stays for the session"
    );

    // The new cookie works once more…
    let next = Browser {
        refresh: rotated.value.clone(),
        csrf: browser.csrf.clone(),
    };
    let (status, _, _) = send(refresh_request(&app, &next, Some(&next.csrf))).await;
    assert_eq!(status, StatusCode::OK);

    // …and the spent one, replayed, ends the session (the service's reuse detection) and
    // clears the cookies.
    let (status, headers, body) = send(refresh_request(&app, &browser, Some(&browser.csrf))).await;
    assert_problem(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "refresh-token-reused",
    );
    let cleared = set_cookies(&headers);
    assert_eq!(
        find(&cleared, "sheetgpt_refresh").attribute("Max-Age"),
        Some("0")
    );
}

#[tokio::test]
async fn refresh_without_the_csrf_token_or_with_a_wrong_one_is_forbidden() {
    let app = TestApp::spawn().await;
    let (browser, _) = web_login(&app, "csrf@example.com").await;

    let (status, headers, body) = send(refresh_request(&app, &browser, None)).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "csrf-token-invalid");
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/problem+json")
    );

    let wrong = format!("{}x", &browser.csrf[..browser.csrf.len() - 1]);
    let (status, _, body) = send(refresh_request(&app, &browser, Some(&wrong))).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "csrf-token-invalid");

    // A header without the cookie proves nothing either.
    let (status, _, body) = send(
        app.client
            .post(app.url("/api/v1/auth/web/refresh"))
            .header("cookie", format!("sheetgpt_refresh={}", browser.refresh))
            .header("x-csrf-token", &browser.csrf),
    )
    .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "csrf-token-invalid");

    // None of these spent the refresh token: it still works with the right header.
    let (status, _, _) = send(refresh_request(&app, &browser, Some(&browser.csrf))).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn requests_from_another_site_are_refused_even_with_the_tokens() {
    let app = TestApp::spawn().await;
    let (browser, _) = web_login(&app, "xsite@example.com").await;

    let (status, _, body) = send(
        refresh_request(&app, &browser, Some(&browser.csrf))
            .header("origin", "https://evil.example"),
    )
    .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "cross-site-request");

    let (status, _, body) = send(
        refresh_request(&app, &browser, Some(&browser.csrf)).header("sec-fetch-site", "cross-site"),
    )
    .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "cross-site-request");

    let (status, _, body) = send(
        app.client
            .post(app.url("/api/v1/auth/web/login"))
            .header("origin", "https://evil.example")
            .json(&json!({"email": "xsite@example.com", "password": PASSWORD})),
    )
    .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "cross-site-request");
}

#[tokio::test]
async fn web_logout_clears_the_cookies_and_ends_the_session() {
    let app = TestApp::spawn().await;
    let (browser, access) = web_login(&app, "bye@example.com").await;

    let (status, _, body) = send(
        app.client
            .post(app.url("/api/v1/auth/web/logout"))
            .header("cookie", browser.cookie_header()),
    )
    .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "csrf-token-invalid");

    let (status, headers, _) = send(
        app.client
            .post(app.url("/api/v1/auth/web/logout"))
            .header("cookie", browser.cookie_header())
            .header("x-csrf-token", &browser.csrf),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let cookies = set_cookies(&headers);
    for name in ["sheetgpt_refresh", "sheetgpt_csrf"] {
        let c = find(&cookies, name);
        assert_eq!(
            (c.value.as_str(), c.attribute("Max-Age")),
            ("", Some("0")),
            "{name}"
        );
    }
    assert_eq!(
        find(&cookies, "sheetgpt_refresh").attribute("Path"),
        Some("/api/v1/auth/web")
    );

    let (status, body) = app.get("/api/v1/auth/me", Some(&access)).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "session-revoked");
    let (status, _, body) = send(refresh_request(&app, &browser, Some(&browser.csrf))).await;
    assert_problem(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "invalid-refresh-token",
    );
}

#[tokio::test]
async fn the_page_is_served_with_its_files_a_strict_csp_etags_and_gzip() {
    let app = TestApp::spawn().await;
    let resp = app
        .client
        .get(app.url("/"))
        .header("accept-encoding", "identity")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let headers = resp.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["cache-control"], "no-cache");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("style-src 'self';"));
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let html = resp.text().await.unwrap();
    assert!(html.contains(r#"<script type="module" src="/assets/js/app.js">"#));
    assert!(!html.contains("<script>"), "no inline script");

    // Revalidation: the same ETag gives 304 with no body.
    let etag = headers["etag"].clone();
    let resp = app
        .client
        .get(app.url("/"))
        .header("if-none-match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(resp.headers()["etag"], etag);

    // Files are gzipped for browsers that accept it, and decompress to the same bytes.
    let plain = app
        .client
        .get(app.url("/assets/js/grid.js"))
        .header("accept-encoding", "identity")
        .send()
        .await
        .unwrap();
    assert_eq!(
        plain.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    let plain = plain.bytes().await.unwrap();
    let gz = app
        .client
        .get(app.url("/assets/js/grid.js"))
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .unwrap();
    assert_eq!(
        gz.headers()["content-encoding"],
        HeaderValue::from_static("gzip")
    );
    let gz = gz.bytes().await.unwrap();
    assert!(gz.len() < plain.len());
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut unzipped).unwrap();
    assert_eq!(unzipped, plain);

    // API answers keep `no-store`; unknown files are problems.
    let (status, headers, _) = app
        .request(reqwest::Method::GET, "/assets/nope.js", None, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(headers["content-type"], "application/problem+json");
    let (_, headers, _) = app
        .request(reqwest::Method::GET, "/api/v1/models", None, None)
        .await;
    assert_eq!(headers["cache-control"], "no-store");
}

/// A reload mid-refresh (or two tabs refreshing at once) presents the token just spent, whose
/// answer the browser dropped: within the grace that is not theft, and the sign-in survives.
#[tokio::test]
async fn a_refresh_whose_answer_was_lost_is_answered_again_within_the_grace() {
    let app = TestApp::spawn().await;
    let (browser, _) = web_login(&app, "lost@example.com").await;
    let (status, _, _) = send(refresh_request(&app, &browser, Some(&browser.csrf))).await;
    assert_eq!(status, StatusCode::OK, "the answer the browser never saw");

    let (status, headers, body) = send(refresh_request(&app, &browser, Some(&browser.csrf))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let again = Browser {
        refresh: find(&set_cookies(&headers), "sheetgpt_refresh")
            .value
            .clone(),
        csrf: browser.csrf.clone(),
    };
    let (status, _) = app
        .get("/api/v1/auth/me", body["access_token"].as_str())
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, headers, _) = send(refresh_request(&app, &again, Some(&again.csrf))).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the session goes on with one live token"
    );
    let next = Browser {
        refresh: find(&set_cookies(&headers), "sheetgpt_refresh")
            .value
            .clone(),
        csrf: browser.csrf.clone(),
    };

    // A token older than the last exchange is still a copy: the session ends.
    let (status, _, body) = send(refresh_request(&app, &browser, Some(&browser.csrf))).await;
    assert_problem(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "refresh-token-reused",
    );
    let (status, _, _) = send(refresh_request(&app, &next, Some(&next.csrf))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the whole session ended");
}

#[tokio::test]
async fn without_a_grace_a_lost_answer_ends_the_session_and_bearer_refresh_never_has_one() {
    let app = TestApp::spawn_with(|c| c.auth.web_refresh_grace_secs = 0).await;
    let (browser, _) = web_login(&app, "nograce@example.com").await;
    send(refresh_request(&app, &browser, Some(&browser.csrf))).await;
    let (status, _, body) = send(refresh_request(&app, &browser, Some(&browser.csrf))).await;
    assert_problem(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "refresh-token-reused",
    );

    let app = TestApp::spawn().await;
    app.register("bearer-grace@example.com").await;
    let (_, refresh) = app.login("bearer-grace@example.com", PASSWORD).await;
    let body = json!({"refresh_token": refresh});
    let (status, _) = app.post("/api/v1/auth/refresh", None, body.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = app.post("/api/v1/auth/refresh", None, body).await;
    assert_problem(
        status,
        &answer,
        StatusCode::UNAUTHORIZED,
        "refresh-token-reused",
    );
}

/// Another site on a parent domain can plant a `sheetgpt_refresh` cookie of its own; with two
/// sent, neither is trusted.
#[tokio::test]
async fn two_refresh_cookies_are_refused_and_cleared() {
    let app = TestApp::spawn().await;
    let (browser, _) = web_login(&app, "twins@example.com").await;
    let (status, headers, body) = send(
        app.client
            .post(app.url("/api/v1/auth/web/refresh"))
            .header(
                "cookie",
                format!(
                    "sheetgpt_refresh=planted-by-someone-else; {}",
                    browser.cookie_header()
                ),
            )
            .header("x-csrf-token", &browser.csrf),
    )
    .await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "ambiguous-sign-in");
    assert_eq!(
        find(&set_cookies(&headers), "sheetgpt_refresh").attribute("Max-Age"),
        Some("0")
    );
}
