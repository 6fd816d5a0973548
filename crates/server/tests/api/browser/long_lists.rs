//! Lists longer than one page of the API (200 items) on the page: every list follows
//! `next_cursor`, so the oldest items are there too, and a list that is read in parts says
//! so and offers the rest.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::signed_in;
use super::webdriver::Browser;
use crate::helpers::TestApp;

async fn create(app: &TestApp, token: &str, path: &str, body: Value) {
    let (status, answer) = app.post(path, Some(token), body).await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{path}: {answer}");
}

/// The texts of the cells of `column` of the rows of the list table on the screen, once
/// there are `n` of them.
async fn listed(browser: &Browser, what: &str, column: usize, n: usize) -> BTreeSet<String> {
    let texts = browser
        .wait_js(
            what,
            20,
            "const [col, n] = arguments;
             const rows = [...document.querySelectorAll('main .list table.data tbody tr')];
             if (rows.length !== n) return null;
             return rows.map(r => r.children[col].textContent);",
            json!([column, n]),
        )
        .await;
    texts
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect()
}

/// The `/api/v1/<list>` requests the page made, as their query strings.
async fn list_requests(browser: &Browser, list: &str) -> Vec<String> {
    let v = browser
        .js(
            "return performance.getEntriesByType('resource')
               .map(e => new URL(e.name))
               .filter(u => u.pathname === '/api/v1/' + arguments[0])
               .map(u => u.search);",
            json!([list]),
        )
        .await;
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_user_with_230_tables_sees_all_230_on_the_tables_screen_the_oldest_too() {
    let names: BTreeSet<String> = (1..=230).map(|i| format!("Table {i:03}")).collect();
    let made = names.clone();
    let Some(s) = signed_in("many@example.com", async move |app, token| {
        for name in &made {
            create(
                app,
                token,
                "/api/v1/tables",
                json!({"name": name, "columns": [{"name": "n", "type": "integer"}], "rows": [[1]]}),
            )
            .await;
        }
    })
    .await
    else {
        return;
    };
    let b = &s.browser;

    b.js("location.hash = '#/tables'", json!([])).await;
    let shown = listed(b, "all 230 tables listed", 0, 230).await;

    assert_eq!(
        shown, names,
        "every table is listed, the oldest (Table 001) too"
    );
    let end = b
        .wait_js(
            "the list's end",
            10,
            "return document.querySelector('main .list-end')?.textContent",
            json!([]),
        )
        .await;
    assert_eq!(end, "All 230 tables shown.");
    // The trash under the list is a list of its own (`?deleted=true`).
    let requests: Vec<String> = list_requests(b, "tables")
        .await
        .into_iter()
        .filter(|r| !r.contains("deleted=true"))
        .collect();
    assert_eq!(requests.len(), 2, "two pages of 200: {requests:?}");
    assert!(
        requests[1].contains("cursor="),
        "the second page follows next_cursor: {requests:?}"
    );
}

#[tokio::test]
async fn templates_past_the_first_page_are_listed_and_conversations_past_a_hundred_load_on_request()
{
    let Some(s) = signed_in("long@example.com", async |app, token| {
        for i in 1..=205 {
            create(
                app,
                token,
                "/api/v1/templates",
                json!({"name": format!("template {i:03}"), "template": {}}),
            )
            .await;
        }
        for _ in 0..130 {
            create(app, token, "/api/v1/conversations", json!({})).await;
        }
    })
    .await
    else {
        return;
    };
    let b = &s.browser;

    // Templates: all 205, over two pages (API keys stop at 50 a user: one page).
    b.js("location.hash = '#/templates'", json!([])).await;
    let shown = b
        .wait_js(
            "the templates and the list's end",
            20,
            "const end = document.querySelector('main .list-end');
             if (!end) return null;
             return {end: end.textContent,
                     names: [...document.querySelectorAll('main ul.templates > li > strong')].map(s => s.textContent)};",
            json!([]),
        )
        .await;
    let names: BTreeSet<&str> = shown["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    let want: Vec<String> = (1..=205).map(|i| format!("template {i:03}")).collect();
    for name in &want {
        assert!(names.contains(name.as_str()), "{name} is listed");
    }
    assert_eq!(
        shown["end"],
        format!("All {} templates shown.", names.len())
    );

    // Conversations: the newest hundred in the sidebar, then the rest when asked.
    let first = b
        .wait_js(
            "a hundred conversations and a Load more",
            10,
            "const n = document.querySelectorAll('.conv-list .conv-link').length;
             const more = document.querySelector('.conv-list .list-more');
             return n === 100 && more ? more.textContent : null;",
            json!([]),
        )
        .await;
    assert_eq!(
        first,
        "Showing 100 conversations; there are more. Load more"
    );
    b.click_button(".conv-list", "Load more").await;
    b.wait_js(
        "all 130 conversations, and no more button",
        10,
        "return document.querySelectorAll('.conv-list .conv-link').length === 130
                && !document.querySelector('.conv-list .list-more');",
        json!([]),
    )
    .await;
}
