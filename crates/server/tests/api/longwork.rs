//! Whole-table work in pages (issue 13): validation, `sort` (spilling runs to disk past
//! `tables.sort_memory_bytes`), `filter_delete`, `change_type`, `add_column`, revert and
//! diff give what the in-memory path gives, on tables of several pages.
//!
//! A change of one whole-table operation runs page by page; the same operation followed by a
//! no-op (`rename_column` to its own name) is a change of two operations, which still loads
//! its rows into memory: the two are compared on identical tables.

use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use sheetgpt_core::table::{Column, ColumnType, Rules, Value as Cell};

use crate::helpers::{TestApp, assert_problem};

/// More than two pages of whole-table work (1,000 rows a page).
const ROWS: usize = 2_300;

fn fixture_rows() -> Vec<Value> {
    (0..ROWS)
        .map(|i| {
            let score = if i % 13 == 0 {
                Value::Null
            } else {
                json!(((i * 7919) % 1000) as f64 / 4.0)
            };
            let status = ["open", "closed", "pending"][i % 3];
            json!([
                format!("K{}", i % 1700),
                if i % 11 == 0 {
                    Value::Null
                } else {
                    json!(i % 50)
                },
                status,
                if i % 17 == 0 {
                    format!("Bad{i}")
                } else {
                    format!("name{}", "x".repeat(i % 5))
                },
                score,
                if i % 9 == 0 {
                    format!("n/a {i}")
                } else {
                    format!("{}", i % 40)
                },
            ])
        })
        .collect()
}

async fn fixture(app: &TestApp, token: &str, name: &str) -> String {
    let (status, table) = app
        .post(
            "/api/v1/tables",
            Some(token),
            json!({"name": name, "columns": [
                {"name": "code", "type": "text", "rules": {"unique": true}},
                {"name": "qty", "type": "integer", "rules": {"required": true, "min": 1, "max": 45}},
                {"name": "status", "type": "text", "rules": {"one_of": ["open", "closed"]}},
                {"name": "label", "type": "text", "rules": {"pattern": "[a-z]+"}},
                {"name": "score", "type": "float"},
                {"name": "amount", "type": "text"}
            ], "rows": fixture_rows()}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{table}");
    table["id"].as_str().unwrap().to_owned()
}

/// Every row of a version in order: `(id, cells)`.
async fn all_rows(app: &TestApp, token: &str, id: &str, version: i64) -> Vec<(i64, Value)> {
    let mut out = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = app
            .get(
                &format!("/api/v1/tables/{id}/rows?limit=1000&version={version}{cursor}"),
                Some(token),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for r in page["rows"].as_array().unwrap() {
            out.push((r["id"].as_i64().unwrap(), r["cells"].clone()));
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return out,
        }
    }
}

async fn change(app: &TestApp, token: &str, id: &str, ops: Value) -> (StatusCode, Value) {
    app.post(
        &format!("/api/v1/tables/{id}/changes"),
        Some(token),
        json!({ "ops": ops }),
    )
    .await
}

/// `ops` with a no-op after them: the in-memory path.
fn in_memory(ops: &Value) -> Value {
    let mut ops = ops.as_array().unwrap().clone();
    ops.push(json!({"op": "rename_column", "column": "status", "to": "status"}));
    Value::Array(ops)
}

fn sort_runs_left(app: &TestApp) -> Vec<String> {
    match std::fs::read_dir(app.state.scratch.path()) {
        Ok(dir) => dir
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("sort-run-"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The same change on two identical tables, page by page and in memory: the same answer
/// (but for its version number, which is the same too) and the same rows.
async fn same_as_in_memory(app: &TestApp, token: &str, ops: Value) -> (Value, Vec<(i64, Value)>) {
    let paged = fixture(app, token, "paged").await;
    let memory = fixture(app, token, "memory").await;
    let (status, a) = change(app, token, &paged, ops.clone()).await;
    let (status_b, b) = change(app, token, &memory, in_memory(&ops)).await;
    assert_eq!(status, status_b, "{a}\n{b}");
    if status != StatusCode::CREATED {
        assert_eq!(a, b);
        return (a, Vec::new());
    }
    for field in [
        "version",
        "row_count",
        "rows_written",
        "rows_deleted",
        "nulled_cells",
    ] {
        assert_eq!(a[field], b[field], "{field}: {a} / {b}");
    }
    let rows_a = all_rows(app, token, &paged, 2).await;
    let rows_b = all_rows(app, token, &memory, 2).await;
    assert_eq!(rows_a.len(), rows_b.len());
    assert!(rows_a == rows_b, "the rows differ");
    let (_, cols_a) = app
        .get(&format!("/api/v1/tables/{paged}/rows?limit=1"), Some(token))
        .await;
    let (_, cols_b) = app
        .get(
            &format!("/api/v1/tables/{memory}/rows?limit=1"),
            Some(token),
        )
        .await;
    assert_eq!(cols_a["columns"], cols_b["columns"]);
    (a, rows_a)
}

fn rules(f: impl FnOnce(&mut Rules)) -> Rules {
    let mut r = Rules::default();
    f(&mut r);
    r
}

#[tokio::test]
async fn validation_in_pages_reports_what_the_in_memory_check_reports() {
    let app = TestApp::spawn().await;
    let token = app.user("lw-validate@example.com").await;
    let id = fixture(&app, &token, "rules").await;
    let (status, report) = app
        .get(&format!("/api/v1/tables/{id}/validation"), Some(&token))
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");

    // The rules checked in memory over the same cells, by the core's own `validate`.
    let mut columns = vec![
        Column::new("c1", "code", ColumnType::Text),
        Column::new("c2", "qty", ColumnType::Integer),
        Column::new("c3", "status", ColumnType::Text),
        Column::new("c4", "label", ColumnType::Text),
        Column::new("c5", "score", ColumnType::Float),
        Column::new("c6", "amount", ColumnType::Text),
    ];
    columns[0].rules = rules(|r| r.unique = true);
    columns[1].rules = rules(|r| {
        r.required = true;
        r.min = Some(Decimal::from(1));
        r.max = Some(Decimal::from(45));
    });
    columns[2].rules = rules(|r| r.one_of = Some(vec!["open".into(), "closed".into()]));
    columns[3].rules = rules(|r| r.pattern = Some("[a-z]+".into()));
    let cells: Vec<Vec<Cell>> = fixture_rows()
        .iter()
        .map(|row| {
            columns
                .iter()
                .zip(row.as_array().unwrap())
                .map(|(c, v)| Cell::from_json(v, c.ty).unwrap())
                .collect()
        })
        .collect();
    let expected = sheetgpt_core::table::validate(&columns, &cells);
    assert!(
        expected.len() > 1000,
        "more than one report's worth: {}",
        expected.len()
    );
    assert!(expected.iter().any(|v| v.rule == "unique"));
    assert_eq!(report["total"], expected.len());
    let got = report["violations"].as_array().unwrap();
    assert_eq!(got.len(), 1000);
    for (g, e) in got.iter().zip(&expected) {
        // Rows were created in order: the row at index i has id i + 1.
        assert_eq!(g["row"], e.row as i64 + 1, "{g}");
        assert_eq!(g["column"], e.column.as_str(), "{g}");
        assert_eq!(g["rule"], e.rule, "{g}");
        assert_eq!(g["value"], e.value.as_str(), "{g}");
        assert_eq!(g["message"], e.message.as_str(), "{g}");
    }

    // After a sort, `unique` names the earlier row in the new order, as the rows read back.
    let (status, _) = change(
        &app,
        &token,
        &id,
        json!([{"op": "sort", "by": [{"column": "code", "desc": true}]}]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let order = all_rows(&app, &token, &id, 2).await;
    let sorted: Vec<Vec<Cell>> = order
        .iter()
        .map(|(_, cells)| {
            columns
                .iter()
                .zip(cells.as_array().unwrap())
                .map(|(c, v)| Cell::from_json(v, c.ty).unwrap())
                .collect()
        })
        .collect();
    let expected = sheetgpt_core::table::validate(&columns, &sorted);
    let (_, report) = app
        .get(&format!("/api/v1/tables/{id}/validation"), Some(&token))
        .await;
    assert_eq!(report["total"], expected.len());
    let unique: Vec<(i64, String)> = report["violations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["rule"] == "unique")
        .map(|v| {
            (
                v["row"].as_i64().unwrap(),
                v["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want: Vec<(i64, String)> = expected
        .iter()
        .take(1000)
        .filter(|v| v.rule == "unique")
        .map(|v| (order[v.row].0, v.message.clone()))
        .collect();
    assert!(!want.is_empty());
    assert_eq!(unique, want);
    // The version with the old order still reports as it did.
    let (_, old) = app
        .get(
            &format!("/api/v1/tables/{id}/validation?version=1"),
            Some(&token),
        )
        .await;
    assert_eq!(old["total"], report["total"]);
}

/// Sorted runs written to disk so far, from `/metrics` (shared by the tests of this process:
/// only its growth is looked at).
async fn runs_written(app: &TestApp) -> u64 {
    let text = app.metrics_text().await;
    text.lines()
        .find_map(|l| l.strip_prefix("sheetgpt_sort_runs_total "))
        .map_or(0, |v| v.trim().parse::<f64>().unwrap() as u64)
}

#[tokio::test]
async fn a_sort_spilled_to_disk_orders_rows_as_the_in_memory_sort_and_leaves_no_file() {
    // One key a run: every row is a run on disk, merged in passes.
    let app = TestApp::spawn_with(|c| c.tables.sort_memory_bytes = 1).await;
    let token = app.user("lw-sort@example.com").await;
    let before = runs_written(&app).await;
    let id = fixture(&app, &token, "spilled").await;
    let (status, answer) = change(
        &app,
        &token,
        &id,
        json!([{"op": "sort", "by": [{"column": "code"}]}]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert!(
        runs_written(&app).await - before >= ROWS as u64,
        "every key was a run on disk"
    );
    for by in [
        json!([{"column": "score", "desc": true}]),
        json!([{"column": "qty"}, {"column": "code", "desc": true}]),
    ] {
        let (answer, rows) =
            same_as_in_memory(&app, &token, json!([{"op": "sort", "by": by}])).await;
        assert_eq!(answer["version"], 2);
        assert!(answer["rows_written"].as_u64().unwrap() > 1000, "{answer}");
        assert_eq!(rows.len(), ROWS);
        assert!(
            sort_runs_left(&app).is_empty(),
            "{:?}",
            sort_runs_left(&app)
        );
    }
    // Checked on its own too: scores descending, nulls last, ties in their old order.
    let (_, rows) = same_as_in_memory(
        &app,
        &token,
        json!([{"op": "sort", "by": [{"column": "score", "desc": true}]}]),
    )
    .await;
    let scores: Vec<Option<f64>> = rows.iter().map(|(_, c)| c[4].as_f64()).collect();
    let nulls = scores.iter().filter(|s| s.is_none()).count();
    assert!(nulls > 0 && scores[scores.len() - nulls..].iter().all(Option::is_none));
    let known: Vec<f64> = scores.iter().flatten().copied().collect();
    assert!(known.windows(2).all(|w| w[0] >= w[1]));
    for pair in rows.windows(2) {
        if pair[0].1[4] == pair[1].1[4] {
            assert!(pair[0].0 < pair[1].0, "ties keep their order");
        }
    }
    assert!(sort_runs_left(&app).is_empty());
}

#[tokio::test]
async fn a_sort_within_its_memory_budget_writes_no_run() {
    let app = TestApp::spawn().await;
    let token = app.user("lw-sort-memory@example.com").await;
    let (answer, _) = same_as_in_memory(
        &app,
        &token,
        json!([{"op": "sort", "by": [{"column": "label"}]}]),
    )
    .await;
    assert_eq!(answer["version"], 2);
    assert!(sort_runs_left(&app).is_empty());
}

#[test]
fn the_sort_memory_is_set_from_the_environment_and_zero_is_refused() {
    let env = |v: &str| {
        [(
            "SHEETGPT_TABLES__SORT_MEMORY_BYTES".to_owned(),
            v.to_owned(),
        )]
    };
    let config = sheetgpt::Config::load(None, env("1")).unwrap();
    assert_eq!(config.tables.sort_memory_bytes, 1);
    let config = sheetgpt::Config::load(None, []).unwrap();
    assert_eq!(config.tables.sort_memory_bytes, 64 * 1024 * 1024);
    let err = sheetgpt::Config::load(None, env("0"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("tables.sort_memory_bytes"), "{err}");
}

#[tokio::test]
async fn filter_delete_in_pages_deletes_what_the_in_memory_change_deletes() {
    let app = TestApp::spawn().await;
    let token = app.user("lw-filter@example.com").await;
    let (answer, rows) = same_as_in_memory(
        &app,
        &token,
        json!([{"op": "filter_delete", "filter": {"column": "status", "cmp": "eq", "value": "pending"}}]),
    )
    .await;
    assert_eq!(answer["rows_deleted"], ROWS.div_ceil(3) - 1);
    assert_eq!(
        rows.len(),
        ROWS - answer["rows_deleted"].as_u64().unwrap() as usize
    );
    assert!(rows.iter().all(|(_, c)| c[2] != "pending"));
}

#[tokio::test]
async fn change_type_in_pages_converts_refuses_and_nulls_as_in_memory() {
    let app = TestApp::spawn().await;
    let token = app.user("lw-type@example.com").await;
    // Every cell converts.
    let (answer, rows) = same_as_in_memory(
        &app,
        &token,
        json!([{"op": "change_type", "column": "qty", "to": "text"}]),
    )
    .await;
    assert!(answer["rows_written"].as_u64().unwrap() > 2000, "{answer}");
    assert!(rows.iter().any(|(_, c)| c[1] == "7"));
    // One cell in nine does not: refused, naming the first hundred by row id, nothing stored.
    let ops = json!([{"op": "change_type", "column": "amount", "to": "integer"}]);
    let (refused, _) = same_as_in_memory(&app, &token, ops).await;
    assert_eq!(refused["code"], "validation-failed", "{refused}");
    let errors = refused["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 100);
    assert_eq!(errors[0]["field"], "rows[1].amount");
    // With `invalid: null` they become null, each one reported.
    let ops =
        json!([{"op": "change_type", "column": "amount", "to": "integer", "invalid": "null"}]);
    let (nulled, _) = same_as_in_memory(&app, &token, ops).await;
    assert_eq!(
        nulled["nulled_cells"].as_array().unwrap().len(),
        ROWS.div_ceil(9)
    );
}

#[tokio::test]
async fn add_column_in_pages_computes_and_refuses_as_in_memory() {
    let app = TestApp::spawn().await;
    let token = app.user("lw-add@example.com").await;
    let (answer, rows) = same_as_in_memory(
        &app,
        &token,
        json!([{"op": "add_column", "name": "double", "formula": "score * 2"}]),
    )
    .await;
    assert_eq!(answer["version"], 2);
    assert_eq!(answer["rows_written"].as_u64().unwrap() as usize, ROWS);
    assert!(rows.iter().all(|(_, c)| c.as_array().unwrap().len() == 7));
    let (answer, rows) = same_as_in_memory(
        &app,
        &token,
        json!([{"op": "add_column", "name": "flag", "type": "boolean", "default": true, "after": "code"}]),
    )
    .await;
    assert_eq!(answer["rows_written"], ROWS);
    assert!(rows.iter().all(|(_, c)| c[1] == true));
    // A formula that fails for some rows: refused, the first hundred listed, nothing stored.
    let (refused, _) = same_as_in_memory(
        &app,
        &token,
        json!([{"op": "add_column", "name": "whole", "type": "integer", "formula": "score + 0.5"}]),
    )
    .await;
    assert_eq!(refused["code"], "validation-failed", "{refused}");
    assert_eq!(refused["errors"].as_array().unwrap().len(), 100);
}

#[tokio::test]
async fn revert_and_diff_in_pages_cover_every_changed_row() {
    let app = TestApp::spawn_with(|c| c.tables.sort_memory_bytes = 4096).await;
    let token = app.user("lw-revert@example.com").await;
    let id = fixture(&app, &token, "history").await;
    let v1 = all_rows(&app, &token, &id, 1).await;
    let (status, sorted) = change(
        &app,
        &token,
        &id,
        json!([{"op": "sort", "by": [{"column": "score"}]}]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{sorted}");
    let (status, deleted) = change(
        &app,
        &token,
        &id,
        json!([{"op": "filter_delete", "filter": {"column": "qty", "cmp": "is_null"}}]),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{deleted}");
    let (status, diff) = app
        .get(
            &format!("/api/v1/tables/{id}/diff?from=1&to=2"),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{diff}");
    assert_eq!(diff["rows_moved"], sorted["rows_written"]);
    assert!(diff["cells_changed"].as_array().unwrap().is_empty());
    let (_, diff) = app
        .get(
            &format!("/api/v1/tables/{id}/diff?from=3&to=1"),
            Some(&token),
        )
        .await;
    assert_eq!(
        diff["rows_added"].as_array().unwrap().len() as u64,
        deleted["rows_deleted"].as_u64().unwrap()
    );
    let (status, reverted) = app
        .post(
            &format!("/api/v1/tables/{id}/revert"),
            Some(&token),
            json!({"version": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reverted}");
    assert_eq!(reverted["version"], 4);
    assert_eq!(reverted["row_count"], ROWS);
    assert_eq!(all_rows(&app, &token, &id, 4).await, v1);
    let (_, same) = app
        .get(
            &format!("/api/v1/tables/{id}/diff?from=1&to=4"),
            Some(&token),
        )
        .await;
    assert_eq!(same["rows_moved"], 0);
    assert!(same["rows_added"].as_array().unwrap().is_empty());
    assert!(same["rows_removed"].as_array().unwrap().is_empty());
    assert!(sort_runs_left(&app).is_empty());
}

#[tokio::test]
async fn a_stale_whole_table_change_is_refused_and_writes_nothing() {
    let app = TestApp::spawn_with(|c| c.tables.sort_memory_bytes = 1).await;
    let token = app.user("lw-stale@example.com").await;
    let id = fixture(&app, &token, "stale").await;
    let (status, _) = change(
        &app,
        &token,
        &id,
        json!([{"op": "sort", "by": [{"column": "nope"}]}]),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = app
        .client
        .post(app.url(&format!("/api/v1/tables/{id}/changes")))
        .bearer_auth(&token)
        .header("if-match", "\"7\"")
        .json(&json!({"ops": [{"op": "sort", "by": [{"column": "code"}]}]}))
        .send()
        .await
        .map(|r| (r.status(), r))
        .unwrap();
    let body: Value = body.json().await.unwrap();
    assert_problem(status, &body, StatusCode::CONFLICT, "stale-version");
    assert_eq!(all_rows(&app, &token, &id, 1).await.len(), ROWS);
    assert!(sort_runs_left(&app).is_empty());
}
