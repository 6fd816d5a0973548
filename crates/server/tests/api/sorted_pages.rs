//! Pages of a sorted or filtered view at any depth: cut from the view's order, computed once
//! per version and kept (`tables.order_cache_bytes`), so that a jump deep into a sorted table
//! reads what a first page does, and a new version is never answered with an old order.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::TestApp;

const ROWS: i64 = 2_500;

/// A table of `ROWS` rows: `n` (1..), `score` (repeating, with a null every 7th row, so that
/// ties fall back to table order and nulls go last), `name`.
async fn fixture(app: &TestApp, token: &str) -> String {
    let rows: Vec<Value> = (1..=ROWS)
        .map(|n| {
            let score = if n % 7 == 0 {
                Value::Null
            } else {
                json!((n * 37) % 101)
            };
            json!({"n": n, "score": score, "name": format!("item {:05}", (n * 13) % ROWS)})
        })
        .collect();
    let (status, table) = app
        .post(
            "/api/v1/tables",
            Some(token),
            json!({"name": "Deep", "rows": rows}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{table}");
    table["id"].as_str().unwrap().to_owned()
}

/// `n` of each row of a page.
async fn page(app: &TestApp, token: &str, id: &str, query: &str) -> (Vec<i64>, Option<String>) {
    let (status, body) = app
        .get(&format!("/api/v1/tables/{id}/rows?{query}"), Some(token))
        .await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    let ns = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["cells"][0].as_i64().unwrap())
        .collect();
    (ns, body["next_cursor"].as_str().map(str::to_owned))
}

/// The `n`s in the order the API promises: by score (nulls last in both directions), ties in
/// table order.
fn expected(scores: &[(i64, Option<i64>)], desc: bool) -> Vec<i64> {
    let mut v = scores.to_vec();
    v.sort_by(|a, b| match (a.1, b.1) {
        (None, None) => a.0.cmp(&b.0),
        (None, _) => std::cmp::Ordering::Greater,
        (_, None) => std::cmp::Ordering::Less,
        (Some(x), Some(y)) => {
            let by = if desc { y.cmp(&x) } else { x.cmp(&y) };
            by.then(a.0.cmp(&b.0))
        }
    });
    v.into_iter().map(|(n, _)| n).collect()
}

fn scores() -> Vec<(i64, Option<i64>)> {
    (1..=ROWS)
        .map(|n| (n, (n % 7 != 0).then_some((n * 37) % 101)))
        .collect()
}

#[tokio::test]
async fn deep_pages_of_a_sorted_view_are_its_rows_there_and_its_order_is_computed_once() {
    let app = TestApp::spawn().await;
    let token = app.user("deep@example.com").await;
    let id = fixture(&app, &token).await;
    let asc = expected(&scores(), false);
    let desc = expected(&scores(), true);

    for offset in [0usize, 1, 1_234, 2_400, 2_499] {
        let (ns, next) = page(
            &app,
            &token,
            &id,
            &format!("sort=score&limit=100&cursor=o{offset}"),
        )
        .await;
        let want = &asc[offset..(offset + 100).min(asc.len())];
        assert_eq!(ns, want, "ascending at {offset}");
        assert_eq!(next.is_some(), offset + 100 < asc.len(), "at {offset}");
        if offset == 0 {
            assert_eq!(
                app.state.orders.built(),
                0,
                "the first page is the database's top-N"
            );
        }
    }
    // One order for the view, whatever the depth asked; another direction is another view.
    assert_eq!(app.state.orders.built(), 1);
    let (ns, _) = page(&app, &token, &id, "sort=score:desc&limit=50&cursor=o2000").await;
    assert_eq!(ns, &desc[2000..2050]);
    assert_eq!(app.state.orders.built(), 2);
    assert!(app.state.orders.bytes() >= 2 * ROWS as usize * 8);

    // Following the cursors visits every row once, in order.
    let mut seen = Vec::new();
    let mut cursor = None::<String>;
    loop {
        let q = match &cursor {
            Some(c) => format!("sort=score:desc&limit=300&cursor={c}"),
            None => "sort=score:desc&limit=300".to_owned(),
        };
        let (ns, next) = page(&app, &token, &id, &q).await;
        seen.extend(ns);
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, desc);

    // Sorted and filtered: the filter's rows, in the sort's order, at any depth.
    let filtered: Vec<i64> = asc.iter().copied().filter(|n| *n > 1_000).collect();
    let (ns, _) = page(
        &app,
        &token,
        &id,
        "sort=score&filter=n:gt:1000&limit=100&cursor=o1000",
    )
    .await;
    assert_eq!(ns, &filtered[1000..1100]);
    // Several keys: name breaks no ties here (unique), so the order is the name's.
    let (ns, _) = page(
        &app,
        &token,
        &id,
        "sort=name&sort=score&limit=3&cursor=o2497",
    )
    .await;
    let mut by_name: Vec<(String, i64)> = (1..=ROWS)
        .map(|n| (format!("item {:05}", (n * 13) % ROWS), n))
        .collect();
    by_name.sort();
    let want: Vec<i64> = by_name[2497..].iter().map(|(_, n)| *n).collect();
    assert_eq!(ns, want);
}

#[tokio::test]
async fn a_new_version_is_read_in_its_own_order_and_an_old_one_keeps_its_own() {
    let app = TestApp::spawn().await;
    let token = app.user("deep-versions@example.com").await;
    let id = fixture(&app, &token).await;
    let asc = expected(&scores(), false);
    let (ns, _) = page(&app, &token, &id, "sort=score&limit=5&cursor=o0").await;
    assert_eq!(ns, &asc[..5]);

    // Row 7 (a null, last) gets the lowest score and row 1 is deleted.
    let (status, body) = app
        .post(
            &format!("/api/v1/tables/{id}/changes"),
            Some(&token),
            json!({"ops": [
                {"op": "set_cells", "cells": [{"row": 7, "column": "score", "value": -1}]},
                {"op": "delete_rows", "rows": [1]}
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut changed = scores();
    changed[6].1 = Some(-1);
    changed.remove(0);
    let now = expected(&changed, false);
    let (ns, _) = page(&app, &token, &id, "sort=score&limit=5").await;
    assert_eq!(ns, &now[..5]);
    assert_eq!(ns[0], 7);
    let (ns, next) = page(&app, &token, &id, "sort=score&limit=100&cursor=o2400").await;
    assert_eq!(ns, &now[2400..]);
    assert!(next.is_none());

    // Version 1 as it was.
    let (ns, _) = page(
        &app,
        &token,
        &id,
        "version=1&sort=score&limit=100&cursor=o2400",
    )
    .await;
    assert_eq!(ns, &asc[2400..]);
}

#[tokio::test]
async fn with_no_room_to_keep_orders_every_deep_page_is_still_right() {
    let app = TestApp::spawn_with(|c| c.tables.order_cache_bytes = 0).await;
    let token = app.user("deep-nocache@example.com").await;
    let id = fixture(&app, &token).await;
    let asc = expected(&scores(), false);
    for offset in [0usize, 2_000] {
        let (ns, _) = page(
            &app,
            &token,
            &id,
            &format!("sort=score&limit=100&cursor=o{offset}"),
        )
        .await;
        assert_eq!(ns, &asc[offset..offset + 100]);
    }
    assert_eq!(
        app.state.orders.built(),
        0,
        "an order that cannot be kept is not computed: each page is the database's sorted page"
    );
    assert_eq!(app.state.orders.bytes(), 0, "nothing kept");
    // Plain order by offset, and a filter without a sort, are right too.
    let (ns, _) = page(&app, &token, &id, "limit=3&cursor=o2497").await;
    assert_eq!(ns, [2498, 2499, 2500]);
    let (ns, next) = page(&app, &token, &id, "filter=n:gt:2495&limit=2").await;
    assert_eq!(ns, [2496, 2497]);
    let (ns, _) = page(
        &app,
        &token,
        &id,
        &format!("filter=n:gt:2495&limit=2&cursor={}", next.unwrap()),
    )
    .await;
    assert_eq!(ns, [2498, 2499]);
}
