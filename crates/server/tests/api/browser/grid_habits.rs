//! The grid as a person who works in it all day uses it, in headless Chromium: a cell edited
//! in its own box, ranges selected with Shift, the mouse and Ctrl+A, a range copied out as
//! TSV and an HTML table, filters that say why they are refused and when nothing matches, the
//! first column frozen while scrolling right and type badges that keep their room.

use serde_json::{Value, json};

use super::shot;
use super::webdriver::{
    Browser, CONTROL, DOWN, ENTER, ESCAPE, F2, RELEASE, RIGHT, SHIFT, TAB, installed,
};
use crate::helpers::{PASSWORD, TestApp};

const GRID: &str = ".table-panel .grid";

/// A signed-in browser on the page of a table made of `columns` and `rows`.
struct Opened {
    app: TestApp,
    browser: Browser,
    token: String,
    id: String,
    _downloads: tempfile::TempDir,
}

async fn open_table(email: &str, columns: Value, rows: Value) -> Option<Opened> {
    let n = rows.as_array().map_or(0, Vec::len);
    open_table_with_rows(email, columns, rows, n).await
}

/// `open_table`, waiting for at least `shown` rows painted (a long table shows only some).
async fn open_table_with_rows(
    email: &str,
    columns: Value,
    rows: Value,
    shown: usize,
) -> Option<Opened> {
    let (chromium, chromedriver) = installed()?;
    let app = TestApp::spawn().await;
    let token = app.user(email).await;
    let (status, table) = app
        .post(
            "/api/v1/tables",
            Some(&token),
            json!({"name": "Habits", "columns": columns, "rows": rows}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{table}");
    let id = table["id"].as_str().unwrap().to_owned();
    let downloads = tempfile::tempdir().unwrap();
    let browser = Browser::start(&chromium, &chromedriver, downloads.path()).await;
    browser.goto(&app.url("/")).await;
    browser
        .type_into(".auth-form input[name=email]", email)
        .await;
    browser
        .type_into(".auth-form input[name=password]", PASSWORD)
        .await;
    browser.click(".auth-form button[type=submit]").await;
    browser.find(".sidebar").await;
    browser
        .js("location.hash = arguments[0]", json!([format!("#/t/{id}")]))
        .await;
    browser
        .wait_js(
            "the table's rows",
            20,
            "return document.querySelectorAll('.table-panel .grid-body .grid-row:not(.loading)').length >= arguments[0]",
            json!([shown]),
        )
        .await;
    Some(Opened {
        app,
        browser,
        token,
        id,
        _downloads: downloads,
    })
}

fn cell_css(row: usize, col: usize) -> String {
    format!(
        ".table-panel .grid-body .grid-row[data-index=\"{row}\"] [role=gridcell][data-col=\"{col}\"]"
    )
}

async fn cell(browser: &Browser, row: usize, col: usize) -> String {
    browser.find(&cell_css(row, col)).await
}

/// The text of a cell as shown, once it is `want` (cells are rebuilt when a version arrives).
async fn cell_shows(browser: &Browser, row: usize, col: usize, want: &str) {
    browser
        .wait_js(
            &format!("cell ({row}, {col}) to show “{want}”"),
            15,
            "const c = document.querySelector(arguments[0]);
             return c && !c.querySelector('input') && c.textContent === arguments[1];",
            json!([cell_css(row, col), want]),
        )
        .await;
}

async fn version_is(browser: &Browser, version: u32) {
    browser
        .wait_js(
            &format!("version {version}"),
            15,
            "return document.querySelector('.table-status')?.textContent.includes('version ' + arguments[0])",
            json!([version]),
        )
        .await;
}

/// The cells marked selected (aria-selected="true"), as [row, col], and how many say false.
async fn selected(browser: &Browser) -> (Vec<(u64, u64)>, u64) {
    let v = browser
        .js(
            "const cells = [...document.querySelectorAll('.table-panel .grid-body [role=gridcell]')];
             return {on: cells.filter(c => c.getAttribute('aria-selected') === 'true')
                            .map(c => [Number(c.dataset.row), Number(c.dataset.col)]),
                     off: cells.filter(c => c.getAttribute('aria-selected') === 'false').length,
                     unmarked: cells.filter(c => !c.hasAttribute('aria-selected')).length};",
            json!([]),
        )
        .await;
    assert_eq!(v["unmarked"], 0, "every cell says whether it is selected");
    let mut on: Vec<(u64, u64)> = v["on"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_u64().unwrap(), p[1].as_u64().unwrap()))
        .collect();
    on.sort_unstable();
    (on, v["off"].as_u64().unwrap())
}

fn rect(
    rows: std::ops::RangeInclusive<u64>,
    cols: std::ops::RangeInclusive<u64>,
) -> Vec<(u64, u64)> {
    rows.flat_map(|r| cols.clone().map(move |c| (r, c)))
        .collect()
}

async fn status(browser: &Browser) -> String {
    browser
        .js(
            "return document.querySelector('.table-status').textContent",
            json!([]),
        )
        .await
        .as_str()
        .unwrap()
        .to_owned()
}

fn cities() -> (Value, Value) {
    (
        json!([{"name": "city", "type": "text"}, {"name": "population", "type": "integer"},
               {"name": "founded", "type": "date"}]),
        json!([
            ["Paris", 2_102_650, "2023-03-01"],
            ["Berlin", 3_850_809, "2022-05-15"],
            ["Madrid", 3_332_035, "2021-01-01"],
            ["Rome", 2_746_984, "2021-12-31"]
        ]),
    )
}

#[tokio::test]
async fn the_cell_editor_takes_the_cells_own_box_typing_replaces_the_value_and_f2_keeps_it() {
    let (columns, rows) = cities();
    let Some(t) = open_table("eda@example.com", columns, rows).await else {
        return;
    };
    let b = &t.browser;

    // F2 on Paris: the editor is the cell's box, the old text is gone from beside it, the
    // value is there with the caret at its end.
    let paris = cell(b, 0, 0).await;
    b.click_element(&paris).await;
    b.type_into(GRID, F2).await;
    let editor = b
        .wait_js(
            "the editor in Paris's cell",
            10,
            "const cell = document.querySelector(arguments[0]);
             const input = cell?.querySelector('input.cell-editor');
             if (!input || document.activeElement !== input) return null;
             const c = cell.getBoundingClientRect(), i = input.getBoundingClientRect();
             const next = document.querySelector(arguments[1]).getBoundingClientRect();
             const at = (x, y) => document.elementFromPoint(x, y);
             return {cell: [c.left, c.top, c.width, c.height], input: [i.left, i.top, i.width, i.height],
                     others: [...cell.childNodes].filter(n => n !== input).map(n => n.textContent),
                     value: input.value, caret: [input.selectionStart, input.selectionEnd],
                     middle: at(c.left + c.width / 2, c.top + c.height / 2) === input,
                     next: at(next.left + next.width / 2, next.top + next.height / 2)?.dataset?.col ?? null};",
            json!([cell_css(0, 0), cell_css(0, 1)]),
        )
        .await;
    for k in 0..4 {
        let (c, i) = (
            editor["cell"][k].as_f64().unwrap(),
            editor["input"][k].as_f64().unwrap(),
        );
        assert!(
            (c - i).abs() <= 1.0,
            "the editor's box is the cell's: {editor}"
        );
    }
    assert_eq!(
        editor["others"],
        json!([]),
        "no old text beside the editor: {editor}"
    );
    assert_eq!(editor["middle"], true, "{editor}");
    assert_eq!(
        editor["next"], "1",
        "the next column is not covered: {editor}"
    );
    assert_eq!(editor["value"], "Paris");
    assert_eq!(editor["caret"], json!([5, 5]), "the caret at the end");
    shot(b, "grid-editor-in-place.png").await;

    // Escape: nothing saved, the text is back.
    b.type_into(".cell-editor", ESCAPE).await;
    cell_shows(b, 0, 0, "Paris").await;
    assert!(status(b).await.contains("version 1"));

    // Typing on a selected cell replaces its value with what is typed.
    let berlin = cell(b, 1, 1).await;
    b.click_element(&berlin).await;
    b.type_into(GRID, "4").await;
    let started = b
        .wait_js(
            "the editor started by typing",
            10,
            "const i = document.querySelector('.cell-editor');
             return i && document.activeElement === i ? [i.value, i.selectionStart] : null;",
            json!([]),
        )
        .await;
    assert_eq!(
        started,
        json!(["4", 1]),
        "the typed character replaces the value"
    );
    b.type_into(".cell-editor", &format!("000000{ENTER}")).await;
    version_is(b, 2).await;
    cell_shows(b, 1, 1, "4,000,000").await;

    // F2 keeps the value; what is typed goes at its end; Tab saves and moves right.
    let madrid = cell(b, 2, 0).await;
    b.click_element(&madrid).await;
    b.type_into(GRID, F2).await;
    b.type_into(".cell-editor", &format!(" City{TAB}")).await;
    version_is(b, 3).await;
    cell_shows(b, 2, 0, "Madrid City").await;
    let active = b
        .js(
            "const g = document.querySelector(arguments[0]);
             return [document.activeElement === g, g.getAttribute('aria-activedescendant')];",
            json!([GRID]),
        )
        .await;
    assert_eq!(active[0], true, "focus back on the grid: {active}");
    assert!(
        active[1].as_str().unwrap().ends_with("-r2-c1"),
        "Tab moved right: {active}"
    );

    // A double click edits the current value too.
    let rome = cell(b, 3, 0).await;
    b.double_click_element(&rome).await;
    let dbl = b
        .wait_js(
            "the editor opened by a double click",
            10,
            "const i = document.querySelector(arguments[0] + ' input.cell-editor');
             return i && document.activeElement === i ? [i.value, i.selectionStart, i.selectionEnd] : null;",
            json!([cell_css(3, 0)]),
        )
        .await;
    assert_eq!(dbl, json!(["Rome", 4, 4]));
    b.type_into(".cell-editor", ESCAPE).await;
    cell_shows(b, 3, 0, "Rome").await;

    let (_, page) = t
        .app
        .get(&format!("/api/v1/tables/{}/rows", t.id), Some(&t.token))
        .await;
    assert_eq!(page["rows"][1]["cells"][1], 4_000_000, "{page}");
    assert_eq!(page["rows"][2]["cells"][0], "Madrid City", "{page}");
    assert_eq!(page["rows"][3]["cells"][0], "Rome", "{page}");
}

#[tokio::test]
async fn shift_arrows_shift_click_a_drag_and_ctrl_a_select_ranges_marked_aria_selected() {
    let columns = json!([{"name": "a", "type": "text"}, {"name": "b", "type": "integer"},
                         {"name": "c", "type": "text"}, {"name": "d", "type": "integer"}]);
    let rows: Vec<Value> = (1..=6)
        .map(|i| json!([format!("a{i}"), i, format!("c{i}"), i * 10]))
        .collect();
    let Some(t) = open_table("sel@example.com", columns, json!(rows)).await else {
        return;
    };
    let b = &t.browser;
    let multi = b
        .js(
            "return document.querySelector(arguments[0]).getAttribute('aria-multiselectable')",
            json!([GRID]),
        )
        .await;
    assert_eq!(multi, "true");

    // Shift+arrows extend from the anchor; the active cell stays where it was.
    let first = cell(b, 1, 1).await;
    b.click_element(&first).await;
    assert_eq!(selected(b).await.0, vec![(1, 1)]);
    b.type_into(GRID, &format!("{SHIFT}{DOWN}{DOWN}{RIGHT}{RELEASE}"))
        .await;
    assert_eq!(selected(b).await.0, rect(1..=3, 1..=2));
    let active = b
        .js(
            "return document.querySelector(arguments[0]).getAttribute('aria-activedescendant')",
            json!([GRID]),
        )
        .await;
    assert!(active.as_str().unwrap().ends_with("-r1-c1"), "{active}");
    assert!(
        status(b).await.contains("3 rows × 2 columns selected"),
        "{}",
        status(b).await
    );
    // Seen: the range is tinted, its rows' numbers and its columns' headers marked.
    let looks = b
        .js(
            "const inside = document.querySelector(arguments[0]);
             const outside = document.querySelector(arguments[1]);
             return [getComputedStyle(inside).backgroundImage !== 'none',
                     getComputedStyle(outside).backgroundImage === 'none',
                     document.querySelector('.table-panel .grid-row[data-index=\"2\"] .rownum').classList.contains('in-range'),
                     document.querySelector('.table-panel .grid-head [data-column=\"c\"]').classList.contains('in-range')];",
            json!([cell_css(2, 2), cell_css(0, 0)]),
        )
        .await;
    assert_eq!(looks, json!([true, true, true, true]));
    shot(b, "grid-range-selected.png").await;

    // Shift+click extends from the same anchor.
    let corner = cell(b, 4, 3).await;
    b.shift_click_element(&corner).await;
    assert_eq!(selected(b).await.0, rect(1..=4, 1..=3));

    // A plain arrow collapses the range to the moved cell.
    b.type_into(GRID, DOWN).await;
    assert_eq!(selected(b).await.0, vec![(2, 1)]);

    // Dragging the mouse selects the rectangle between where it was pressed and released.
    let from = cell(b, 0, 0).await;
    let to = cell(b, 2, 2).await;
    b.drag(&from, &to).await;
    assert_eq!(selected(b).await.0, rect(0..=2, 0..=2));

    // Ctrl+A: every loaded row, every column; Escape goes back to the active cell.
    b.type_into(GRID, &format!("{CONTROL}a{RELEASE}")).await;
    let (on, off) = selected(b).await;
    assert_eq!((on, off), (rect(0..=5, 0..=3), 0));
    assert!(
        status(b).await.contains("6 rows × 4 columns selected"),
        "{}",
        status(b).await
    );
    b.type_into(GRID, ESCAPE).await;
    assert_eq!(selected(b).await.0, vec![(0, 0)]);
}

#[tokio::test]
async fn ctrl_c_puts_the_range_on_the_clipboard_as_tsv_and_as_an_html_table() {
    let columns = json!([{"name": "name", "type": "text"}, {"name": "note", "type": "text"},
                         {"name": "population", "type": "integer"}, {"name": "since", "type": "date"}]);
    let rows = json!([
        ["Paris", "two\nlines", 2_102_650, "2023-03-01"],
        ["Berlin", "a\ttab", 3_850_809, null],
        ["Madrid", "the \"big\" one", 3_332_035, "2021-01-01"],
        ["Rome", "\"quoted\"", 2_746_984, "2021-12-31"],
    ]);
    let Some(t) = open_table("copy@example.com", columns, rows).await else {
        return;
    };
    let b = &t.browser;
    let origin = t.app.url("/").trim_end_matches('/').to_owned();
    b.cdp(
        "Browser.grantPermissions",
        json!({"origin": origin, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]}),
    )
    .await;

    // The whole block, from Paris to Rome's date: values as the grid shows them.
    let start = cell(b, 0, 0).await;
    b.click_element(&start).await;
    let end = cell(b, 3, 3).await;
    b.shift_click_element(&end).await;
    b.type_into(GRID, &format!("{CONTROL}c{RELEASE}")).await;
    let want_tsv = "Paris\t\"two\nlines\"\t2,102,650\tMar 1, 2023\n\
                    Berlin\t\"a\ttab\"\t3,850,809\t\n\
                    Madrid\tthe \"big\" one\t3,332,035\tJan 1, 2021\n\
                    Rome\t\"\"\"quoted\"\"\"\t2,746,984\tDec 31, 2021";
    let want_cells = json!([
        ["Paris", "two\nlines", "2,102,650", "Mar 1, 2023"],
        ["Berlin", "a\ttab", "3,850,809", ""],
        ["Madrid", "the \"big\" one", "3,332,035", "Jan 1, 2021"],
        ["Rome", "\"quoted\"", "2,746,984", "Dec 31, 2021"],
    ]);
    let read = b
        .wait_js(
            "the clipboard to hold the block",
            10,
            "return navigator.clipboard.read().then(async (items) => {
               const item = items[0];
               if (!item || !item.types.includes('text/html')) return null;
               const text = await (await item.getType('text/plain')).text();
               const html = await (await item.getType('text/html')).text();
               const doc = new DOMParser().parseFromString(html, 'text/html');
               const cells = [...doc.querySelectorAll('table tr')].map(tr =>
                 [...tr.querySelectorAll('td')].map(td => [...td.childNodes]
                   .map(n => n.nodeName === 'BR' ? '\\n' : n.textContent).join('')));
               return {types: item.types, text, cells};
             }).catch(e => null);",
            json!([]),
        )
        .await;
    assert_eq!(read["text"], want_tsv, "{read}");
    assert_eq!(read["cells"], want_cells, "{read}");

    // The copied block pastes back as the same cells (the page's own paste reads Excel's TSV).
    let parsed = b
        .js(
            "return import('/assets/js/grid.js').then(m => m.parseBlock(arguments[0]));",
            json!([want_tsv]),
        )
        .await;
    assert_eq!(parsed, want_cells);

    // Without the async Clipboard API, the `copy` event carries both types.
    b.js(
        "Object.defineProperty(navigator.clipboard, 'write', {value: undefined, configurable: true});
         window.copied = null;
         window.addEventListener('copy', (e) => {
           window.copied = {text: e.clipboardData.getData('text/plain'),
                            html: e.clipboardData.getData('text/html')};
         });",
        json!([]),
    )
    .await;
    let one = cell(b, 1, 1).await;
    b.click_element(&one).await;
    b.type_into(
        GRID,
        &format!("{SHIFT}{DOWN}{RIGHT}{RELEASE}{CONTROL}c{RELEASE}"),
    )
    .await;
    let copied = b
        .wait_js("the copy event", 10, "return window.copied", json!([]))
        .await;
    assert_eq!(
        copied["text"],
        "\"a\ttab\"\t3,850,809\nthe \"big\" one\t3,332,035"
    );
    let cells = b
        .js(
            "const doc = new DOMParser().parseFromString(arguments[0], 'text/html');
             return [...doc.querySelectorAll('table tr')].map(tr => [...tr.cells].map(td => td.textContent));",
            json!([copied["html"]]),
        )
        .await;
    assert_eq!(
        cells,
        json!([["a\ttab", "3,850,809"], ["the \"big\" one", "3,332,035"]])
    );
    let text = b
        .js("return navigator.clipboard.readText()", json!([]))
        .await;
    assert_eq!(text, copied["text"], "and it reached the clipboard");
}

#[tokio::test]
async fn a_copied_range_running_past_the_loaded_rows_fetches_them_first() {
    let columns = json!([{"name": "label", "type": "text"}, {"name": "n", "type": "integer"}]);
    let rows: Vec<Value> = (1..=450).map(|i| json!([format!("Row {i}"), i])).collect();
    let Some(t) = open_table_with_rows("far@example.com", columns, json!(rows), 10).await else {
        return;
    };
    let b = &t.browser;
    let origin = t.app.url("/").trim_end_matches('/').to_owned();
    b.cdp(
        "Browser.grantPermissions",
        json!({"origin": origin, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]}),
    )
    .await;

    // Ctrl+Shift+End from the first row: the range reaches row 450, past the rows fetched.
    let first = cell(b, 0, 0).await;
    b.click_element(&first).await;
    b.type_into(GRID, &format!("{CONTROL}{SHIFT}\u{E010}{RELEASE}"))
        .await;
    b.wait_js(
        "the last row in view",
        15,
        "return document.querySelector('.table-panel .grid-body .grid-row[data-index=\"449\"]:not(.loading)')",
        json!([]),
    )
    .await;
    let loaded = b
        .js(
            "return document.querySelector('.table-panel .grid-body .grid-row[data-index=\"300\"]') === null",
            json!([]),
        )
        .await;
    assert_eq!(loaded, true, "the middle rows are not in the DOM");
    assert!(
        status(b).await.contains("450 rows × 1 column selected"),
        "{}",
        status(b).await
    );
    let offsets = "return performance.getEntriesByType('resource')
                     .map(e => new URL(e.name)).filter(u => u.pathname.endsWith('/rows'))
                     .map(u => u.searchParams.get('cursor'));";
    let before = b.js(offsets, json!([])).await;
    assert!(
        !before.as_array().unwrap().contains(&json!("o200")),
        "rows 201–400 not fetched yet: {before}"
    );
    b.type_into(GRID, &format!("{CONTROL}c{RELEASE}")).await;
    let text = b
        .wait_js(
            "the whole range on the clipboard",
            15,
            "return navigator.clipboard.readText().then(t => t.startsWith('Row 1\\n') ? t : null).catch(() => null)",
            json!([]),
        )
        .await;
    let want: Vec<String> = (1..=450).map(|i| format!("Row {i}")).collect();
    assert_eq!(text, want.join("\n"));
    let after = b.js(offsets, json!([])).await;
    assert!(
        after.as_array().unwrap().contains(&json!("o200")),
        "the copy fetched the rows in between: {after}"
    );
}

/// Picks `value` in the filter form's `index`-th select.
async fn choose(browser: &Browser, index: usize, value: &str) {
    browser
        .js(
            "const s = document.querySelectorAll('.filter-form select')[arguments[0]];
             s.value = arguments[1];
             s.dispatchEvent(new Event('change'));",
            json!([index, value]),
        )
        .await;
}

async fn try_filter(browser: &Browser, column: &str, op: &str, value: &str) {
    choose(browser, 0, column).await;
    choose(browser, 1, op).await;
    browser
        .js(
            "document.querySelector('.filter-form input').value = ''",
            json!([]),
        )
        .await;
    browser.type_into(".filter-form input", value).await;
    browser.click_button(".filter-form", "Add filter").await;
}

async fn refused(browser: &Browser) -> Value {
    browser
        .wait_js(
            "the filter's refusal",
            10,
            "const e = document.querySelector('.filter-form .filter-error');
             const input = document.querySelector('.filter-form input');
             return e && !e.hidden ? {text: e.textContent, invalid: input.getAttribute('aria-invalid'),
               chips: document.querySelectorAll('.chips .chip').length} : null;",
            json!([]),
        )
        .await
}

#[tokio::test]
async fn a_filter_that_cannot_be_read_is_refused_in_a_sentence_and_no_match_offers_to_clear() {
    let (columns, rows) = cities();
    let Some(t) = open_table("filter@example.com", columns, rows).await else {
        return;
    };
    let b = &t.browser;
    b.click_button(".table-panel .toolbar", "Filter").await;

    // A word against a number column: refused before it is a chip, in a sentence.
    try_filter(b, "population", "gt", "lots").await;
    let r = refused(b).await;
    assert_eq!(
        r["text"],
        "“population” holds whole numbers, and “lots” does not read as a whole number. \
         To filter by “>”, type a whole number such as 1200."
    );
    assert_eq!(r["invalid"], "true");
    assert_eq!(r["chips"], 0);
    shot(b, "grid-filter-refused.png").await;

    // A value with digits that still does not read: the server says so, the page in words.
    try_filter(b, "population", "gte", "12 apples").await;
    let r = refused(b).await;
    assert_eq!(
        r["text"],
        "“population” holds whole numbers, and “12 apples” does not read as a whole number. \
         To filter by “≥”, type a whole number such as 1200."
    );
    assert!(!r["text"].as_str().unwrap().contains(":gte:"), "{r}");
    try_filter(b, "founded", "lt", "soon").await;
    let r = refused(b).await;
    assert_eq!(
        r["text"],
        "“founded” holds dates, and “soon” does not read as a date. \
         To filter by “<”, type a date such as 2024-03-01."
    );
    assert_eq!(r["chips"], 0);
    assert!(
        !status(b).await.contains("filter"),
        "no filter applied: {}",
        status(b).await
    );
    let errors = b
        .js(
            "return [...document.querySelectorAll('.toast.error')].map(t => t.textContent)",
            json!([]),
        )
        .await;
    assert_eq!(errors, json!([]), "no error toast for a refused filter");

    // A filter that reads but matches nothing: said, with a button that clears the filters.
    try_filter(b, "population", "gt", "99999999").await;
    let empty = b
        .wait_js(
            "no rows match",
            15,
            "const e = document.querySelector('.table-panel .grid-empty');
             return e && !e.hidden ? e.textContent : null;",
            json!([]),
        )
        .await;
    assert!(
        empty.as_str().unwrap().starts_with("No rows match"),
        "{empty}"
    );
    let hidden = b
        .js(
            "return [document.querySelector('.filter-form .filter-error').hidden,
                     document.querySelectorAll('.chips .chip').length]",
            json!([]),
        )
        .await;
    assert_eq!(hidden, json!([true, 1]));
    shot(b, "grid-no-rows-match.png").await;
    b.click_button(".table-panel .grid-empty", "Clear filters")
        .await;
    b.wait_js(
        "the rows back",
        15,
        "return document.querySelectorAll('.table-panel .grid-body .grid-row:not(.loading)').length === 4
            && document.querySelector('.table-panel .grid-empty').hidden
            && document.querySelectorAll('.chips .chip').length === 0",
        json!([]),
    )
    .await;
}

#[tokio::test]
async fn the_first_column_stays_in_view_scrolling_right_and_type_badges_keep_their_room() {
    const LONG: &str = "population_estimate_for_the_whole_metropolitan_area";
    let mut columns = vec![json!({"name": "city", "type": "text"})];
    columns.push(json!({"name": LONG, "type": "decimal"}));
    for i in 1..=12 {
        columns.push(json!({"name": format!("m{i:02}"), "type": "integer"}));
    }
    columns.push(json!({"name": "x", "type": "text"}));
    let rows: Vec<Value> = (1..=5)
        .map(|r| {
            let mut row = vec![json!(format!("City {r}")), json!("1.5")];
            row.extend((1..=12).map(|i| json!(r * 100 + i)));
            row.push(json!("x"));
            Value::Array(row)
        })
        .collect();
    let Some(t) = open_table("wide@example.com", json!(columns), json!(rows)).await else {
        return;
    };
    let b = &t.browser;

    // Scrolled right, the first column's header and cells stay beside the row numbers, on top
    // of the columns passing under them.
    let frozen = b
        .js(
            "const g = document.querySelector(arguments[0]);
             g.scrollLeft = 900;
             return new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => {
               const num = g.querySelector('.grid-body .grid-row[data-index=\"1\"] .rownum').getBoundingClientRect();
               const head = g.querySelector('.grid-head [data-column=\"city\"]').getBoundingClientRect();
               const cell = document.querySelector(arguments[1]).getBoundingClientRect();
               const top = document.elementFromPoint(cell.left + 10, cell.top + cell.height / 2);
               const headTop = document.elementFromPoint(head.left + 10, head.top + head.height / 2);
               r({scrolled: g.scrollLeft, frozen: g.classList.contains('freeze'), num: num.right,
                  head: head.left, cell: cell.left,
                  top: top?.closest('[role=gridcell]')?.dataset.col ?? null,
                  headTop: headTop?.closest('[role=columnheader]')?.dataset.column ?? null});
             })));",
            json!([GRID, cell_css(1, 0)]),
        )
        .await;
    assert_eq!(frozen["frozen"], true, "{frozen}");
    assert!(frozen["scrolled"].as_f64().unwrap() > 500.0, "{frozen}");
    let num = frozen["num"].as_f64().unwrap();
    assert!(
        (frozen["cell"].as_f64().unwrap() - num).abs() <= 1.0,
        "{frozen}"
    );
    assert!(
        (frozen["head"].as_f64().unwrap() - num).abs() <= 1.0,
        "{frozen}"
    );
    assert_eq!(frozen["top"], "0", "the first column is on top: {frozen}");
    assert_eq!(frozen["headTop"], "city", "{frozen}");
    shot(b, "grid-frozen-first-column.png").await;

    // Moving left with the keyboard brings a column out from under the frozen one.
    let m07 = cell(b, 1, 8).await;
    b.click_element(&m07).await;
    b.type_into(GRID, &"\u{E012}".repeat(6)).await;
    let beside = b
        .js(
            "const city = document.querySelector(arguments[0]).getBoundingClientRect();
             const c = document.querySelector(arguments[1]).getBoundingClientRect();
             return c.left >= city.right - 1;",
            json!([cell_css(1, 0), cell_css(1, 2)]),
        )
        .await;
    assert_eq!(beside, true, "the active column is beside the frozen one");

    // The long name: the badge keeps its room, the name gives way with an ellipsis and is
    // whole in its title; narrower, the badge still whole; at the narrowest, the badge goes
    // and the name stays.
    b.js(
        "document.querySelector(arguments[0]).scrollLeft = 0",
        json!([GRID]),
    )
    .await;
    let header = |_: ()| {
        b.js(
            "const head = document.querySelector('.table-panel .grid-head [data-column=\"' + arguments[0] + '\"]');
             const name = head.querySelector('.col-name'), badge = head.querySelector('.col-type');
             const h = head.getBoundingClientRect(), n = name.getBoundingClientRect(), t = badge.getBoundingClientRect();
             return {head: h.width, name: n.width, truncated: name.scrollWidth > name.clientWidth,
                     ellipsis: getComputedStyle(name).textOverflow, title: name.title,
                     badgeShown: getComputedStyle(badge).display !== 'none',
                     badgeWhole: badge.scrollWidth <= badge.clientWidth + 1 && t.right <= h.right + 1 && t.left >= h.left - 1};",
            json!([LONG]),
        )
    };
    // A one-letter name is not padded out to the badge.
    let short = b
        .js(
            "const head = document.querySelector('.table-panel .grid-head [data-column=\"x\"]');
             const n = head.querySelector('.col-name').getBoundingClientRect();
             const t = head.querySelector('.col-type').getBoundingClientRect();
             return t.left - n.right;",
            json!([]),
        )
        .await;
    assert!(short.as_f64().unwrap() <= 8.0, "gap after “x”: {short}");
    let wide = header(()).await;
    assert_eq!(wide["truncated"], true, "{wide}");
    assert_eq!(wide["ellipsis"], "ellipsis", "{wide}");
    assert_eq!(wide["title"], LONG, "{wide}");
    assert_eq!(
        (&wide["badgeShown"], &wide["badgeWhole"]),
        (&json!(true), &json!(true)),
        "{wide}"
    );
    assert!(wide["name"].as_f64().unwrap() > 100.0, "{wide}");
    // Narrower with the keyboard (16 px a press), to about 120 px.
    let presses = ((wide["head"].as_f64().unwrap() - 120.0) / 16.0).ceil() as usize;
    b.type_into(
        &format!(".table-panel .grid-head [data-column=\"{LONG}\"] .col-resize"),
        &"\u{E012}".repeat(presses),
    )
    .await;
    let narrow = header(()).await;
    assert_eq!(
        (&narrow["badgeShown"], &narrow["badgeWhole"]),
        (&json!(true), &json!(true)),
        "{narrow}"
    );
    assert!(
        narrow["name"].as_f64().unwrap() >= 15.0,
        "the name is not squeezed away: {narrow}"
    );
    b.type_into(
        &format!(".table-panel .grid-head [data-column=\"{LONG}\"] .col-resize"),
        &"\u{E012}".repeat(10),
    )
    .await;
    let narrowest = header(()).await;
    assert_eq!(narrowest["badgeShown"], false, "{narrowest}");
    assert!(narrowest["name"].as_f64().unwrap() >= 15.0, "{narrowest}");
    shot(b, "grid-header-badges.png").await;

    // On a phone the first column would leave no room for the others: it scrolls with them.
    b.set_window(390, 844).await;
    b.wait_js(
        "the first column unfrozen on a phone",
        10,
        "return !document.querySelector(arguments[0]).classList.contains('freeze')",
        json!([GRID]),
    )
    .await;
}

/// The table's cells through the API, row by row.
async fn api_cells(t: &Opened) -> Value {
    let (_, page) = t
        .app
        .get(&format!("/api/v1/tables/{}/rows", t.id), Some(&t.token))
        .await;
    page["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["cells"].clone())
        .collect()
}

#[tokio::test]
async fn undo_and_redo_of_this_sessions_edits_are_new_versions_and_the_status_line_says_what() {
    let (columns, rows) = cities();
    let Some(t) = open_table("undo@example.com", columns, rows).await else {
        return;
    };
    let b = &t.browser;
    let undo = ".table-panel .toolbar button[aria-keyshortcuts='Control+Z']";
    let disabled = |css: &'static str| async move {
        b.js(
            "return document.querySelector(arguments[0]).disabled",
            json!([css]),
        )
        .await
    };
    assert_eq!(disabled(undo).await, true, "nothing of mine to undo yet");

    // Two edits: Paris → Lyon (version 2), Berlin's population → 4 (version 3).
    let paris = cell(b, 0, 0).await;
    b.click_element(&paris).await;
    b.type_into(GRID, &format!("Lyon{ENTER}")).await;
    version_is(b, 2).await;
    let berlin = cell(b, 1, 1).await;
    b.click_element(&berlin).await;
    b.type_into(GRID, &format!("4{ENTER}")).await;
    version_is(b, 3).await;
    cell_shows(b, 1, 1, "4").await;

    // Ctrl+Z undoes the last: a new version 4 equal to version 2, said in the status line.
    b.click_element(&cell(b, 2, 0).await).await;
    b.type_into(GRID, &format!("{CONTROL}z{RELEASE}")).await;
    version_is(b, 4).await;
    cell_shows(b, 1, 1, "3,850,809").await;
    let said = status(b).await;
    assert!(
        said.contains("Undone: the edit of “population” in row 2 (version 4 equals version 2)"),
        "{said}"
    );
    // The Undo button undoes the one before: version 5 equals version 1.
    b.click(undo).await;
    version_is(b, 5).await;
    cell_shows(b, 0, 0, "Paris").await;
    assert!(
        status(b)
            .await
            .contains("Undone: the edit of “city” in row 1")
    );
    assert_eq!(disabled(undo).await, true, "both of my edits are undone");
    assert_eq!(api_cells(&t).await[0][0], "Paris");

    // Ctrl+Y redoes Lyon (version 6 equals version 2), Ctrl+Shift+Z Berlin's 4 (version 7
    // equals version 3); nothing was lost on the way.
    b.click_element(&cell(b, 2, 0).await).await;
    b.type_into(GRID, &format!("{CONTROL}y{RELEASE}")).await;
    version_is(b, 6).await;
    cell_shows(b, 0, 0, "Lyon").await;
    assert!(
        status(b)
            .await
            .contains("Redone: the edit of “city” in row 1 (version 6 equals version 2)")
    );
    b.click_element(&cell(b, 2, 0).await).await;
    b.type_into(GRID, &format!("{CONTROL}{SHIFT}z{RELEASE}"))
        .await;
    version_is(b, 7).await;
    cell_shows(b, 1, 1, "4").await;
    let cells = api_cells(&t).await;
    assert_eq!((&cells[0][0], &cells[1][1]), (&json!("Lyon"), &json!(4)));
    let (_, versions) = t
        .app
        .get(&format!("/api/v1/tables/{}/versions", t.id), Some(&t.token))
        .await;
    assert_eq!(
        versions["items"].as_array().unwrap().len(),
        7,
        "every undo and redo is a version"
    );

    // A change made elsewhere is not undone here: the undo is refused and says why.
    let (status_code, _) = t
        .app
        .post(
            &format!("/api/v1/tables/{}/revert", t.id),
            Some(&t.token),
            json!({"version": 1}),
        )
        .await;
    assert_eq!(status_code, reqwest::StatusCode::CREATED);
    b.click(undo).await;
    let refused = b
        .wait_js(
            "the refused undo's reason",
            10,
            "return [...document.querySelectorAll('.toast.error')].map(t => t.textContent).join(' ') || null",
            json!([]),
        )
        .await;
    assert!(
        refused.as_str().unwrap().contains("changed elsewhere"),
        "{refused}"
    );
    version_is(b, 8).await;
    assert_eq!(api_cells(&t).await[0][0], "Paris", "the other change stays");
}
