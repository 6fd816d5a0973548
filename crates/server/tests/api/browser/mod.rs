//! The web page in real headless Chromium, driven over WebDriver by the test itself, against a
//! real server (port 0, fresh SQLite file or PostgreSQL database). Screenshots of the main
//! screens and the page's measurements go to `target/screenshots/`.

mod edit_column;
mod grid_habits;
mod long_lists;
mod page_habits;
mod webdriver;
mod workspace;

use std::path::Path;
use std::time::{Duration, Instant};

use calamine::{Data, Reader};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp};
use webdriver::{Browser, ENTER, artifacts_dir, installed};

const CSV: &str = "city,country,population,last_census,area_km2
Paris,France,2102650,2023-03-01,105.4
Berlin,Germany,3850809,2022-05-15,891.1
Madrid,Spain,3332035,2021-01-01,604.3
Rome,Italy,2746984,2021-12-31,1285.0";

fn db_kind() -> &'static str {
    if std::env::var("TEST_DATABASE_URL").is_ok_and(|v| !v.is_empty()) {
        "postgres"
    } else {
        "sqlite"
    }
}

/// A signed-in browser on the page, the server's rate limits off (the arrange step makes
/// hundreds of things through the API).
struct Signed {
    app: TestApp,
    browser: Browser,
    token: String,
    _downloads: tempfile::TempDir,
}

async fn signed_in(email: &str, arrange: impl AsyncFnOnce(&TestApp, &str)) -> Option<Signed> {
    let (chromium, chromedriver) = installed()?;
    let app = TestApp::spawn_with(|c| c.rate_limits.enabled = false).await;
    let token = app.user(email).await;
    arrange(&app, &token).await;
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
    Some(Signed {
        app,
        browser,
        token,
        _downloads: downloads,
    })
}

async fn shot(browser: &Browser, name: &str) {
    // Let fonts and the last frame settle.
    tokio::time::sleep(Duration::from_millis(250)).await;
    browser.screenshot(&artifacts_dir().join(name)).await;
}

fn write_metrics(name: &str, value: &Value) {
    let path = artifacts_dir().join(format!("{name}-{}.json", db_kind()));
    std::fs::write(&path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
    eprintln!("{name}: {value}");
}

/// Bytes transferred for the page itself (document and /assets), from Resource Timing.
async fn page_weight(browser: &Browser) -> Value {
    browser
        .js(
            "const all = [performance.getEntriesByType('navigation')[0],
                          ...performance.getEntriesByType('resource')];
             const page = all.filter(e => { const p = new URL(e.name).pathname;
                                            return p === '/' || p.startsWith('/assets/'); });
             return {
               elsewhere: all.filter(e => new URL(e.name).origin !== location.origin).map(e => e.name),
               files: page.length,
               transferred: page.reduce((n, e) => n + e.transferSize, 0),
               encoded: page.reduce((n, e) => n + e.encodedBodySize, 0),
               decoded: page.reduce((n, e) => n + e.decodedBodySize, 0),
               list: page.map(e => [new URL(e.name).pathname, e.transferSize, e.decodedBodySize]),
             };",
            json!([]),
        )
        .await
}

/// The grid's cells of one row, as shown, and each cell's text-align.
async fn grid_row(browser: &Browser, scope: &str, index: usize) -> Value {
    browser
        .wait_js(
            &format!("row {index} of the grid in {scope}"),
            15,
            "const [scope, index] = arguments;
             const row = document.querySelector(scope + ` .grid-body .grid-row[data-index=\"${index}\"]:not(.loading)`);
             if (!row) return null;
             return [...row.querySelectorAll('[role=gridcell]')].map(c =>
               ({text: c.textContent, align: getComputedStyle(c).textAlign, changed: c.classList.contains('changed')}));",
            json!([scope, index]),
        )
        .await
}

#[tokio::test]
async fn the_whole_job_runs_in_chromium_from_sign_up_to_the_downloaded_workbook() {
    let Some((chromium, chromedriver)) = installed() else {
        return;
    };
    let app = TestApp::spawn().await;
    let downloads = tempfile::tempdir().unwrap();
    let browser = Browser::start(&chromium, &chromedriver, downloads.path()).await;

    // First load: the sign-in screen, and what it weighs.
    browser.goto(&app.url("/")).await;
    browser.find(".auth-form input[name=email]").await;
    let weight = page_weight(&browser).await;
    let transferred = weight["transferred"].as_f64().unwrap();
    assert!(
        transferred <= 500.0 * 1024.0,
        "first load must stay within 500 KB: {weight}"
    );
    assert_eq!(
        weight["elsewhere"],
        json!([]),
        "nothing from another origin: the page works offline"
    );
    shot(&browser, "01-sign-in.png").await;

    // Register.
    browser.click(".tabs button:nth-child(2)").await;
    browser
        .type_into(".auth-form input[name=email]", "ada@example.com")
        .await;
    browser
        .type_into(".auth-form input[name=password]", PASSWORD)
        .await;
    browser.click(".auth-form button[type=submit]").await;

    // A new conversation with the offline model; paste a CSV.
    browser.click_button(".sidebar", "New conversation").await;
    browser.find(".composer textarea").await;
    let model = browser
        .wait_js(
            "the model list",
            10,
            "return document.querySelector('.model-pick select')?.value",
            json!([]),
        )
        .await;
    assert_eq!(model, "offline");
    browser.click(".composer textarea").await;
    browser
        .js(
            "document.execCommand('insertText', false, arguments[0]);",
            json!([CSV]),
        )
        .await;
    browser.click_button(".composer", "Send").await;
    // The conversation is made by this first message; the address then names it.
    let conversation = browser
        .wait_js(
            "the conversation's address",
            10,
            "return location.hash.startsWith('#/c/') ? location.hash : null",
            json!([]),
        )
        .await;
    assert!(conversation.as_str().unwrap().starts_with("#/c/"));

    // The reply streams in and its table appears as a grid under it, with typed columns.
    let scope = ".message.assistant .table-panel";
    let headers = browser
        .wait_js(
            "the grid's header",
            20,
            "const hs = [...document.querySelectorAll(arguments[0] + ' [role=columnheader][data-column]')];
             return hs.length ? hs.map(h => [h.dataset.column, h.querySelector('.col-type').textContent]) : null;",
            json!([scope]),
        )
        .await;
    assert_eq!(
        headers,
        json!([
            ["city", "text"],
            ["country", "text"],
            ["population", "integer"],
            ["last_census", "date"],
            ["area_km2", "decimal"]
        ])
    );
    browser
        .wait_js(
            "four rows",
            15,
            "return document.querySelectorAll(arguments[0] + ' .grid-body .grid-row:not(.loading)').length === 4",
            json!([scope]),
        )
        .await;
    let paris = grid_row(&browser, scope, 0).await;
    assert_eq!(paris[0]["text"], "Paris");
    assert_eq!(paris[2]["text"], "2,102,650", "grouped digits");
    assert_eq!(paris[2]["align"], "right", "numbers right-aligned");
    assert_eq!(paris[0]["align"], "start", "text as the language reads");
    assert_eq!(paris[3]["text"], "Mar 1, 2023", "dates formatted");
    assert_eq!(paris[4]["text"], "105.4");
    let reply = browser
        .js(
            "return document.querySelector('.message.assistant .content').textContent",
            json!([]),
        )
        .await;
    assert!(
        !reply.as_str().unwrap().is_empty(),
        "the reply's text streamed in"
    );
    shot(&browser, "02-conversation-with-grid.png").await;

    // A command that cannot be done says so under its reply, with the column it likely meant.
    browser.click(".composer textarea").await;
    browser
        .js(
            "document.execCommand('insertText', false, arguments[0]);",
            json!(["sort by populaton desc"]),
        )
        .await;
    browser.click_button(".composer", "Send").await;
    let failed = browser
        .wait_js(
            "the reason the sort was not done",
            15,
            "const replies = document.querySelectorAll('.message.assistant');
             if (replies.length < 2) return null;
             const last = replies[replies.length - 1];
             const note = last.querySelector('.notes .error');
             return note && !last.classList.contains('streaming') ? [note.textContent, last.querySelector('.content').textContent] : null;",
            json!([]),
        )
        .await;
    assert!(
        failed[0]
            .as_str()
            .unwrap()
            .contains("did you mean `population`?"),
        "{failed}"
    );
    assert!(
        failed[1].as_str().unwrap().contains("Not applied"),
        "{failed}"
    );

    // Edit Berlin's population: Enter on the cell, type, Enter.
    let cell = browser
        .find(&format!(
            "{scope} .grid-body .grid-row[data-index=\"1\"] [role=gridcell][data-col=\"2\"]"
        ))
        .await;
    browser.click_element(&cell).await;
    browser.type_into(&format!("{scope} .grid"), ENTER).await;
    browser
        .type_into(
            &format!("{scope} .cell-editor"),
            &format!("\u{E009}a\u{E000}3900000{ENTER}"),
        )
        .await;
    browser
        .wait_js(
            "version 2 in the status",
            15,
            "return document.querySelector(arguments[0] + ' .table-status')?.textContent.includes('version 2')",
            json!([scope]),
        )
        .await;
    let berlin = grid_row(&browser, scope, 1).await;
    assert_eq!(berlin[2]["text"], "3,900,000");

    // Version 2 is in the list; the diff shows the change, highlighted in the grid.
    browser
        .click_button(&format!("{scope} .toolbar"), "Versions")
        .await;
    browser
        .find(&format!("{scope} .version-list li[data-version=\"2\"]"))
        .await;
    let versions = browser
        .js(
            "return [...document.querySelectorAll(arguments[0] + ' .version-list li')].map(li => li.dataset.version)",
            json!([scope]),
        )
        .await;
    assert_eq!(versions, json!(["2", "1"]));
    browser
        .click_button(&format!("{scope} .versions"), "Show changes")
        .await;
    let changes = browser
        .wait_js(
            "the diff table",
            15,
            "const rows = [...document.querySelectorAll(arguments[0] + ' .diff-table tbody tr')];
             return rows.length ? rows.map(r => [...r.cells].map(c => c.textContent)) : null;",
            json!([scope]),
        )
        .await;
    assert_eq!(
        changes,
        json!([[
            "row 2, Berlin",
            "population",
            "3,850,809",
            "3,900,000",
            "Go to"
        ]])
    );
    browser
        .wait_js(
            "the changed cell highlighted",
            10,
            "const c = document.querySelector(arguments[0] + ' .cell.changed');
             return c && c.textContent === '3,900,000';",
            json!([scope]),
        )
        .await;
    shot(&browser, "03-versions-and-diff.png").await;

    // Download the workbook and read it back.
    browser
        .click_button(&format!("{scope} .toolbar"), "Export")
        .await;
    browser.find("dialog.modal input[value=xlsx]").await;
    shot(&browser, "04-export-dialog.png").await;
    browser.click_button("dialog.modal", "Export").await;
    let file = wait_for_download(downloads.path(), "xlsx").await;
    let mut book = calamine::open_workbook_auto(&file).unwrap();
    let sheet = book.worksheet_range("Data").unwrap();
    let rows: Vec<Vec<Data>> = sheet.rows().map(<[Data]>::to_vec).collect();
    assert_eq!(rows[0][0], Data::String("city".into()));
    assert_eq!(rows[2][0], Data::String("Berlin".into()));
    assert_eq!(
        rows[2][2],
        Data::Float(3_900_000.0),
        "the edited value, typed"
    );

    // A reload keeps the person signed in (refresh cookie) and in their conversation.
    browser.refresh().await;
    browser
        .wait_js(
            "the conversation after a reload",
            20,
            "return document.querySelectorAll('.table-panel .grid-body .grid-row:not(.loading)').length === 4",
            json!([]),
        )
        .await;

    // The other screens.
    browser.js("location.hash = '#/templates'", json!([])).await;
    browser.click_button(".page", "New template").await;
    browser
        .type_into(".template-form input[type=text]", "Monthly report")
        .await;
    browser.click_button(".template-form", "Add column").await;
    browser
        .type_into(
            ".columns-edit input[aria-label='Source column']",
            "population",
        )
        .await;
    // Highlight large populations; a second column with the same value on every row.
    browser
        .js(
            "const when = document.querySelector('.columns-edit select[aria-label=\"Highlight when\"]');
             when.value = 'greater_than';
             when.dispatchEvent(new Event('change', {bubbles: true}));",
            json!([]),
        )
        .await;
    browser
        .type_into(
            ".columns-edit input[aria-label='Highlight value']",
            "3000000",
        )
        .await;
    browser.click_button(".template-form", "Add column").await;
    browser
        .type_into(
            ".columns-edit tbody tr:nth-child(2) input[aria-label^='Fixed value']",
            "Q4",
        )
        .await;
    browser
        .type_into(
            ".columns-edit tbody tr:nth-child(2) input[aria-label='Header in the file']",
            "quarter",
        )
        .await;
    let json = browser
        .js(
            "return JSON.parse(document.querySelector('.json-preview').textContent)",
            json!([]),
        )
        .await;
    assert_eq!(
        json["columns"],
        json!([
            {"source": "population", "conditional": [
                {"when": {"op": "greater_than", "value": 3000000}, "style": {"background": "#FFEB9C"}}
            ]},
            {"header": "quarter", "constant": "Q4"}
        ]),
        "{json}"
    );
    browser
        .click_button(".template-form", "Save template")
        .await;
    browser
        .wait_js(
            "the saved template",
            10,
            "return document.querySelector('.templates')?.textContent.includes('Monthly report')",
            json!([]),
        )
        .await;
    browser
        .js("document.querySelector('.main').scrollTop = 0", json!([]))
        .await;
    shot(&browser, "05-templates.png").await;

    browser.js("location.hash = '#/keys'", json!([])).await;
    browser
        .type_into(".inline-form input[type=text]", "nightly export")
        .await;
    browser.click_button(".inline-form", "Create key").await;
    let key = browser
        .wait_js(
            "the new key shown once",
            10,
            "return document.querySelector('.key-shown input')?.value",
            json!([]),
        )
        .await;
    assert!(key.as_str().unwrap().starts_with("sgk_"), "{key}");
    shot(&browser, "06-api-keys.png").await;

    browser.js("location.hash = '#/usage'", json!([])).await;
    browser
        .wait_js(
            "usage rows",
            10,
            "return document.querySelector('table.usage tbody tr td:nth-child(2)')?.textContent === 'offline'",
            json!([]),
        )
        .await;
    shot(&browser, "07-usage.png").await;

    // An export job in the background, followed on the Exports screen.
    browser
        .js("location.hash = arguments[0]", json!([conversation]))
        .await;
    browser
        .click_button(".message.assistant .table-panel .toolbar", "Export")
        .await;
    browser.click("dialog.modal input[value=job]").await;
    browser.click_button("dialog.modal", "Export").await;
    browser
        .wait_js(
            "the export queued",
            10,
            "return [...document.querySelectorAll('.toast')].some(t => t.textContent.includes('Export started'))",
            json!([]),
        )
        .await;
    browser.js("location.hash = '#/exports'", json!([])).await;
    browser
        .wait_js(
            "a finished export job",
            30,
            "return document.querySelector('.job.succeeded')",
            json!([]),
        )
        .await;
    shot(&browser, "08-exports.png").await;

    // Back from Google's consent screen: a reload keeps the sign-in (the refresh cookie), the
    // outcome is said in a sentence, and the query is dropped from the address.
    browser.goto(&app.url("/?google=connected#/exports")).await;
    browser
        .wait_js(
            "the Google outcome",
            10,
            "return [...document.querySelectorAll('.toast')].some(t => t.textContent.includes('Google account connected')) && location.search === ''",
            json!([]),
        )
        .await;

    // A block copied from a spreadsheet, pasted at Rome: Rome's cells change and the line past
    // the end becomes a new row, in one version.
    browser
        .js("location.hash = arguments[0]", json!([conversation]))
        .await;
    browser
        .wait_js(
            "the conversation's grid again",
            15,
            "return document.querySelectorAll(arguments[0] + ' .grid-body .grid-row:not(.loading)').length === 4",
            json!([scope]),
        )
        .await;
    let rome = browser
        .find(&format!(
            "{scope} .grid-body .grid-row[data-index=\"3\"] [role=gridcell][data-col=\"0\"]"
        ))
        .await;
    browser.click_element(&rome).await;
    browser
        .js(
            "const grid = document.querySelector(arguments[0] + ' .grid');
             const data = new DataTransfer();
             data.setData('text/plain', 'Roma\\tItalia\\r\\nLisbon\\tPortugal\\t545923\\r\\n');
             grid.dispatchEvent(new ClipboardEvent('paste', {clipboardData: data, bubbles: true, cancelable: true}));",
            json!([scope]),
        )
        .await;
    browser
        .wait_js(
            "version 3 with five rows",
            15,
            "return document.querySelector(arguments[0] + ' .table-status')?.textContent.includes('version 3')
                && document.querySelectorAll(arguments[0] + ' .grid-body .grid-row:not(.loading)').length === 5",
            json!([scope]),
        )
        .await;
    let roma = grid_row(&browser, scope, 3).await;
    assert_eq!(
        (&roma[0]["text"], &roma[1]["text"], &roma[2]["text"]),
        (&json!("Roma"), &json!("Italia"), &json!("2,746,984"))
    );
    let lisbon = grid_row(&browser, scope, 4).await;
    assert_eq!(
        (&lisbon[0]["text"], &lisbon[1]["text"], &lisbon[2]["text"]),
        (&json!("Lisbon"), &json!("Portugal"), &json!("545,923"))
    );

    // Rename a column from the grid, sorted by it: pick a cell of it, Edit column, a new
    // name; the sort follows the column. (The paste's toast is dismissed first: it sits over
    // the last column's header, where the reply's actions bar has moved the grid.)
    browser
        .js(
            "for (const b of document.querySelectorAll('#toasts .toast button[aria-label=Dismiss]')) b.click();",
            json!([]),
        )
        .await;
    browser
        .click(&format!("{scope} .grid [data-column=area_km2] button"))
        .await;
    browser
        .wait_js(
            "sorted by area_km2",
            15,
            "return document.querySelector(arguments[0] + ' .table-status')?.textContent.includes('sorted by area_km2')
                && document.querySelectorAll(arguments[0] + ' .grid-body .grid-row:not(.loading)').length === 5",
            json!([scope]),
        )
        .await;
    let area = browser
        .find(&format!(
            "{scope} .grid-body .grid-row[data-index=\"0\"] [role=gridcell][data-col=\"4\"]"
        ))
        .await;
    browser.click_element(&area).await;
    browser
        .click_button(&format!("{scope} .toolbar"), "Edit column")
        .await;
    browser
        .js(
            "document.querySelector('dialog.modal input[type=text]').value = ''",
            json!([]),
        )
        .await;
    browser
        .type_into("dialog.modal input[type=text]", "area")
        .await;
    browser.click_button("dialog.modal", "Save column").await;
    browser
        .wait_js(
            "the renamed column in version 4",
            15,
            "const status = document.querySelector(arguments[0] + ' .table-status')?.textContent || '';
             return status.includes('version 4') && status.includes('sorted by area')
                && !status.includes('area_km2')
                && document.querySelectorAll(arguments[0] + ' .grid-body .grid-row:not(.loading)').length === 5
                && [...document.querySelectorAll(arguments[0] + ' .grid-head [role=columnheader]')].some(c => c.textContent.startsWith('area') && !c.textContent.startsWith('area_km2'))",
            json!([scope]),
        )
        .await;

    // Widen a column from the keyboard (its header's resize handle, arrows): the header and
    // the cells below grow together.
    let width = |column: &str| {
        format!(
            "const head = document.querySelector(arguments[0] + ' .grid-head [data-column=\"{column}\"]');
             const cell = document.querySelector(arguments[0] + ' .grid-body .grid-row[data-index=\"0\"] [data-col=\"0\"]');
             return [head.getBoundingClientRect().width, cell.getBoundingClientRect().width];"
        )
    };
    let before = browser.js(&width("city"), json!([scope])).await;
    browser
        .type_into(
            &format!("{scope} .grid-head [data-column=\"city\"] .col-resize"),
            "\u{E014}\u{E014}\u{E014}\u{E014}",
        )
        .await;
    let after = browser.js(&width("city"), json!([scope])).await;
    for i in 0..2 {
        let grown = after[i].as_f64().unwrap() - before[i].as_f64().unwrap();
        assert!((grown - 64.0).abs() < 1.0, "{before} → {after}");
    }

    // The account page: this browser among the sessions, and all of one's data in one ZIP.
    browser.js("location.hash = '#/account'", json!([])).await;
    let sessions = browser
        .wait_js(
            "the sessions",
            15,
            "const rows = [...document.querySelectorAll('.page table.data tbody tr')];
             return rows.length ? rows.map(r => r.cells[0].textContent) : null;",
            json!([]),
        )
        .await;
    assert!(
        sessions
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s.as_str().unwrap().contains("this browser")),
        "{sessions}"
    );
    shot(&browser, "12-account.png").await;
    browser.click_button(".page", "Download all my data").await;
    let archive = wait_for_download(downloads.path(), "zip").await;
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&archive).unwrap()).unwrap();
    let names: Vec<String> = zip.file_names().map(|n| n.unwrap().into_owned()).collect();
    assert!(names.iter().any(|n| n.ends_with(".xlsx")), "{names:?}");
    let mut account = String::new();
    std::io::Read::read_to_string(&mut zip.by_name("account.json").unwrap(), &mut account).unwrap();
    assert!(account.contains("ada@example.com"), "{account}");

    // Errors read as sentences: sign out, then a wrong password.
    browser.click_button(".sidebar", "Sign out").await;
    browser
        .type_into(".auth-form input[name=email]", "ada@example.com")
        .await;
    browser
        .type_into(".auth-form input[name=password]", "not the password at all")
        .await;
    browser.click(".auth-form button[type=submit]").await;
    let error = browser
        .wait_js(
            "the sign-in error",
            10,
            "const e = document.querySelector('.auth-form .error'); return e && !e.hidden && e.textContent",
            json!([]),
        )
        .await;
    assert_eq!(error, "The email or password is incorrect.");

    // The same page on a phone.
    browser.click(".auth-form input[name=password]").await;
    browser
        .js(
            "document.querySelector('.auth-form input[name=password]').value = ''",
            json!([]),
        )
        .await;
    browser
        .type_into(".auth-form input[name=password]", PASSWORD)
        .await;
    browser.click(".auth-form button[type=submit]").await;
    browser.find(".sidebar .conv-link").await;
    browser
        .js("location.hash = arguments[0]", json!([conversation]))
        .await;
    browser.set_window(390, 844).await;
    browser
        .wait_js(
            "the grid on a phone",
            20,
            "return document.querySelectorAll('.table-panel .grid-body .grid-row:not(.loading)').length === 5",
            json!([]),
        )
        .await;
    shot(&browser, "09-phone.png").await;

    write_metrics(
        "page-weight",
        &json!({"first_load": weight, "database": db_kind()}),
    );
}

async fn wait_for_download(dir: &Path, ext: &str) -> std::path::PathBuf {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(path) = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == ext))
        {
            return path;
        }
        assert!(Instant::now() < deadline, "no .{ext} download in {dir:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_ten_thousand_row_table_shows_its_first_page_fast_and_loads_the_rest_by_pages() {
    let Some((chromium, chromedriver)) = installed() else {
        return;
    };
    let app = TestApp::spawn().await;
    let token = app.user("grace@example.com").await;
    let rows: Vec<Value> = (1..=10_000)
        .map(|i| {
            json!({
                "id": i,
                "city": format!("City {i}"),
                "population": (i * 7919) % 100_000 + 1,
                "founded": format!("{}-{:02}-{:02}", 1800 + i % 200, i % 12 + 1, i % 28 + 1),
                "share": format!("{}.{}%", i % 100, i % 10),
            })
        })
        .collect();
    let (status, table) = app
        .post(
            "/api/v1/tables",
            Some(&token),
            json!({"name": "Ten thousand cities", "rows": rows}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{table}");
    let id = table["id"].as_str().unwrap().to_owned();

    let downloads = tempfile::tempdir().unwrap();
    let browser = Browser::start(&chromium, &chromedriver, downloads.path()).await;
    browser.goto(&app.url("/")).await;
    browser
        .type_into(".auth-form input[name=email]", "grace@example.com")
        .await;
    browser
        .type_into(".auth-form input[name=password]", PASSWORD)
        .await;
    browser.click(".auth-form button[type=submit]").await;
    browser.find(".sidebar").await;

    // Open the table; the grid reports when its first page is painted.
    browser
        .js("location.hash = arguments[0]", json!([format!("#/t/{id}")]))
        .await;
    let first_ms = browser
        .wait_js(
            "the first page painted",
            30,
            "return document.querySelector('.grid')?.dataset.firstRenderMs",
            json!([]),
        )
        .await;
    let first_ms: f64 = first_ms.as_str().unwrap().parse().unwrap();
    let shape = browser
        .js(
            "const g = document.querySelector('.grid');
             return {rowcount: g.getAttribute('aria-rowcount'),
                     in_dom: g.querySelectorAll('.grid-body .grid-row').length,
                     status: document.querySelector('.table-status').textContent};",
            json!([]),
        )
        .await;
    assert_eq!(shape["rowcount"], "10001", "{shape}");
    assert!(
        shape["in_dom"].as_u64().unwrap() < 80,
        "only the rows in view are in the DOM: {shape}"
    );
    assert!(
        shape["status"].as_str().unwrap().starts_with("10,000 rows"),
        "{shape}"
    );
    shot(&browser, "10-large-table.png").await;

    // Jump to the middle: the rows there are fetched by offset, not everything before them.
    let jump_ms = browser
        .js(
            "window.__jumpStart = performance.now();
             const g = document.querySelector('.grid');
             g.scrollTop = 5000 * 32 - 64;
             return true;",
            json!([]),
        )
        .await;
    assert_eq!(jump_ms, json!(true));
    let jump_ms = browser
        .wait_js(
            "row 5001 after the jump",
            15,
            "const r = document.querySelector('.grid-body .grid-row[data-index=\"5000\"]:not(.loading)');
             return r ? performance.now() - window.__jumpStart : null;",
            json!([]),
        )
        .await;
    let middle = grid_row(&browser, ".table-page", 5000).await;
    assert_eq!(middle[0]["text"], "5,001", "the id column of row 5001");
    assert_eq!(middle[1]["text"], "City 5001");

    // Keyboard: Ctrl+End goes to the last row.
    let cell = browser
        .find(".grid-body .grid-row[data-index=\"5000\"] [role=gridcell][data-col=\"1\"]")
        .await;
    browser.click_element(&cell).await;
    browser.type_into(".grid", "\u{E009}\u{E010}\u{E000}").await;
    let last = grid_row(&browser, ".table-page", 9999).await;
    assert_eq!(last[1]["text"], "City 10000");

    let requests = browser
        .js(
            "return performance.getEntriesByType('resource')
               .map(e => new URL(e.name)).filter(u => u.pathname.endsWith('/rows'))
               .map(u => Number(u.searchParams.get('limit')));",
            json!([]),
        )
        .await;
    let limits: Vec<u64> = requests
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert!(
        !limits.is_empty() && limits.len() <= 8 && limits.iter().all(|&l| l <= 200),
        "a few pages of at most 200 rows, not the whole table: {limits:?}"
    );

    // Sort by a column (server side), then filter.
    browser.click(".grid [data-column=population] button").await;
    browser
        .wait_js(
            "sorted ascending",
            15,
            "return document.querySelector('.table-status')?.textContent.includes('sorted by population')",
            json!([]),
        )
        .await;
    browser.click_button(".table-page .toolbar", "Filter").await;
    browser
        .js(
            "const s = document.querySelector('.filter-form select'); s.value = 'id';
             s.dispatchEvent(new Event('change'));
             const o = document.querySelectorAll('.filter-form select')[1]; o.value = 'gt';
             o.dispatchEvent(new Event('change'));",
            json!([]),
        )
        .await;
    browser.type_into(".filter-form input", "9990").await;
    browser.click_button(".filter-form", "Add filter").await;
    browser
        .wait_js(
            "ten filtered rows",
            15,
            "return document.querySelector('.table-status')?.textContent.startsWith('10 rows')",
            json!([]),
        )
        .await;
    shot(&browser, "11-sorted-and-filtered.png").await;

    write_metrics(
        "large-table",
        &json!({
            "rows": 10_000,
            "first_page_render_ms": first_ms,
            "jump_to_middle_ms": jump_ms,
            "row_requests_limits": limits,
            "database": db_kind(),
        }),
    );
}

#[tokio::test]
async fn a_reasoning_models_thinking_is_shown_folded_above_its_reply() {
    let Some((chromium, chromedriver)) = installed() else {
        return;
    };
    let fake = crate::fakes::openai::FakeOpenAi::start().await;
    fake.set_fallback(crate::fakes::openai::Behaviour::Stream {
        chunks: vec![
            "<think>\nThe user greets me.".into(),
            "\n</think>\n\n".into(),
            "Hello there.".into(),
        ],
        delay: Duration::from_millis(300),
        usage: None,
        finish: "stop",
    });
    let url = fake.base_url();
    let app = TestApp::spawn_with(move |c| {
        let model: sheetgpt::config::ModelConfig = serde_json::from_value(json!({
            "provider": "openai", "base_url": url, "model": "qwen3", "max_retries": 0}))
        .unwrap();
        c.models.insert("qwen".into(), model);
        c.default_model = Some("qwen".into());
    })
    .await;
    app.user("thinker@example.com").await;

    let downloads = tempfile::tempdir().unwrap();
    let browser = Browser::start(&chromium, &chromedriver, downloads.path()).await;
    browser.goto(&app.url("/")).await;
    browser
        .type_into(".auth-form input[name=email]", "thinker@example.com")
        .await;
    browser
        .type_into(".auth-form input[name=password]", PASSWORD)
        .await;
    browser.click(".auth-form button[type=submit]").await;
    browser.click_button(".sidebar", "New conversation").await;
    browser.click(".composer textarea").await;
    browser
        .js(
            "document.execCommand('insertText', false, arguments[0]);",
            json!(["hi"]),
        )
        .await;
    browser.click_button(".composer", "Send").await;
    let shown = browser
        .wait_js(
            "the folded thinking",
            20,
            "const m = document.querySelector('.message.assistant:not(.streaming)');
             const d = m?.querySelector('details.thinking');
             return d && !d.hidden ? {open: d.open, label: d.querySelector('summary').textContent,
               thought: d.querySelector('pre').textContent,
               reply: m.querySelector('.content').textContent} : null;",
            json!([]),
        )
        .await;
    assert_eq!(shown["open"], false, "folded: {shown}");
    let label = shown["label"].as_str().unwrap();
    assert!(
        label.starts_with("Thought for ") && label.ends_with(" s"),
        "{label}"
    );
    assert_eq!(shown["thought"], "\nThe user greets me.\n");
    assert_eq!(shown["reply"], "Hello there.");

    // After a reload the stored thinking is shown the same way.
    browser.refresh().await;
    let again = browser
        .wait_js(
            "the stored thinking",
            20,
            "const d = document.querySelector('.message.assistant details.thinking');
             return d && !d.hidden ? d.querySelector('summary').textContent : null;",
            json!([]),
        )
        .await;
    assert!(
        again.as_str().unwrap().starts_with("Thought for "),
        "{again}"
    );
}

/// Connecting Google from the page, in Chromium, against the fake Google: the page asks for
/// the consent URL (which sets the browser binding cookie), opens it in the same tab, and the
/// callback finds the cookie and connects the grant to this user.
#[tokio::test]
async fn connecting_google_from_the_page_binds_the_grant_to_this_browser() {
    let Some((chromium, chromedriver)) = installed() else {
        return;
    };
    let fake = crate::fakes::google::FakeGoogle::start().await;
    // The callback must be this server's own address, known before it starts.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let fake_for_config = fake.clone();
    let app = TestApp::spawn_with(move |c| {
        crate::google::configure(c, &fake_for_config);
        c.listen = format!("127.0.0.1:{port}").parse().unwrap();
        c.google.redirect_url =
            format!("http://127.0.0.1:{port}/api/v1/integrations/google/callback");
    })
    .await;
    let token = app.user("grete@example.com").await;
    let (status, table) = app
        .post(
            "/api/v1/tables",
            Some(&token),
            json!({"name": "To Google", "rows": [{"a": 1}]}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{table}");

    let downloads = tempfile::tempdir().unwrap();
    let browser = Browser::start(&chromium, &chromedriver, downloads.path()).await;
    browser.goto(&app.url("/")).await;
    browser
        .type_into(".auth-form input[name=email]", "grete@example.com")
        .await;
    browser
        .type_into(".auth-form input[name=password]", PASSWORD)
        .await;
    browser.click(".auth-form button[type=submit]").await;
    browser.find(".sidebar").await;
    browser
        .js(
            "location.hash = arguments[0]",
            json!([format!("#/t/{}", table["id"].as_str().unwrap())]),
        )
        .await;
    browser.click_button(".toolbar", "Export").await;
    browser.click_button("dialog.modal", "Connect Google").await;
    browser
        .wait_js(
            "back from Google, connected",
            20,
            "return [...document.querySelectorAll('.toast')].some(t => t.textContent.includes('Google account connected'))",
            json!([]),
        )
        .await;
    let (_, status) = app.get("/api/v1/integrations/google", Some(&token)).await;
    assert_eq!(status["connected"], true, "{status}");
    assert!(
        fake.calls().iter().any(|c| c.path == "/token"),
        "the code was exchanged"
    );
}

#[tokio::test]
async fn a_large_import_and_a_large_archive_are_followed_as_jobs_on_the_page() {
    let Some((chromium, chromedriver)) = installed() else {
        return;
    };
    // Every upload is a job, every archive too.
    let app = TestApp::spawn_with(|c| {
        c.tables.import_sync_bytes = 0;
        c.exports.archive_sync_rows = 0;
    })
    .await;
    let downloads = tempfile::tempdir().unwrap();
    let browser = Browser::start(&chromium, &chromedriver, downloads.path()).await;
    browser.goto(&app.url("/")).await;
    browser.click(".tabs button:nth-child(2)").await;
    browser
        .type_into(".auth-form input[name=email]", "grace@example.com")
        .await;
    browser
        .type_into(".auth-form input[name=password]", PASSWORD)
        .await;
    browser.click(".auth-form button[type=submit]").await;
    browser.find(".sidebar").await;

    // Import a file from the Tables page: the job is followed, then its table opens.
    let mut text = String::from("city,population\n");
    for i in 1..=2_000 {
        text.push_str(&format!("Town {i},{}\n", i * 10));
    }
    let csv = downloads.path().join("towns.csv");
    std::fs::write(&csv, text).unwrap();
    browser.js("location.hash = '#/tables'", json!([])).await;
    browser
        .type_into(".page input[type=file]", csv.to_str().unwrap())
        .await;
    browser.click_button(".page form", "Import").await;
    let opened = browser
        .wait_js(
            "the imported table",
            30,
            "return location.hash.startsWith('#/t/') ? location.hash : null",
            json!([]),
        )
        .await;
    let table = opened
        .as_str()
        .unwrap()
        .trim_start_matches("#/t/")
        .to_owned();
    let jobs: Value = {
        let (status, token) = app
            .post(
                "/api/v1/auth/login",
                None,
                json!({"email": "grace@example.com", "password": PASSWORD}),
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::OK);
        app.get("/api/v1/jobs?kind=import", token["access_token"].as_str())
            .await
            .1
    };
    assert_eq!(jobs["items"][0]["status"], "succeeded", "{jobs}");
    assert_eq!(jobs["items"][0]["result"]["table_id"], table.as_str());
    assert_eq!(jobs["items"][0]["result"]["rows"], 2_000);
    browser.find(".table-panel").await;
    // The page followed the job on its event stream.
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("sheetgpt_http_requests_total{")
                && l.contains("route=\"/api/v1/jobs/{id}/events\"")
                && l.contains("status=\"200\"")),
        "no job event stream was opened:\n{metrics}"
    );

    // The archive: 202 and a job on the server, one ZIP in the browser's downloads.
    browser.js("location.hash = '#/account'", json!([])).await;
    browser.click_button(".page", "Download all my data").await;
    let archive = wait_for_download(downloads.path(), "zip").await;
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&archive).unwrap()).unwrap();
    let names: Vec<String> = zip.file_names().map(|n| n.unwrap().into_owned()).collect();
    assert!(names.contains(&format!("tables/{table}.xlsx")), "{names:?}");
    let mut account = String::new();
    std::io::Read::read_to_string(&mut zip.by_name("account.json").unwrap(), &mut account).unwrap();
    assert!(account.contains("grace@example.com"), "{account}");
}

#[tokio::test]
async fn a_type_change_and_rename_of_a_large_table_on_the_page_follow_the_job_to_two_versions() {
    let Some((chromium, chromedriver)) = installed() else {
        return;
    };
    // Past 10 rows, a change of every row is a job, and must be a change of its own.
    let app = TestApp::spawn_with(|c| c.tables.max_sync_rows = 10).await;
    let token = app.user("lin@example.com").await;
    let rows: Vec<Value> = (1..=30)
        .map(|i| {
            json!([
                i,
                if i % 5 == 0 {
                    "unknown".to_owned()
                } else {
                    format!("{}", i * 100)
                }
            ])
        })
        .collect();
    let (status, table) = app
        .post(
            "/api/v1/tables",
            Some(&token),
            json!({"name": "Codes", "columns": [
                {"name": "n", "type": "integer"}, {"name": "amount", "type": "text"}
            ], "rows": rows}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{table}");
    let id = table["id"].as_str().unwrap().to_owned();

    let downloads = tempfile::tempdir().unwrap();
    let browser = Browser::start(&chromium, &chromedriver, downloads.path()).await;
    browser.goto(&app.url("/")).await;
    browser
        .type_into(".auth-form input[name=email]", "lin@example.com")
        .await;
    browser
        .type_into(".auth-form input[name=password]", PASSWORD)
        .await;
    browser.click(".auth-form button[type=submit]").await;
    browser.find(".sidebar").await;
    browser
        .js("location.hash = '#/t/' + arguments[0]", json!([id]))
        .await;
    let scope = ".table-panel";
    browser
        .wait_js(
            "the table's grid",
            15,
            "return document.querySelectorAll(arguments[0] + ' .grid-body .grid-row:not(.loading)').length > 3",
            json!([scope]),
        )
        .await;
    let cell = browser
        .find(&format!(
            "{scope} .grid-body .grid-row[data-index=\"0\"] [role=gridcell][data-col=\"1\"]"
        ))
        .await;
    browser.click_element(&cell).await;
    browser
        .click_button(&format!("{scope} .toolbar"), "Edit column")
        .await;
    browser
        .js(
            "document.querySelector('dialog.modal input[type=text]').value = ''",
            json!([]),
        )
        .await;
    browser
        .type_into("dialog.modal input[type=text]", "amount_n")
        .await;
    browser
        .js(
            "const type = document.querySelectorAll('dialog.modal select')[0];
             type.value = 'integer';
             type.dispatchEvent(new Event('change', {bubbles: true}));
             document.querySelector('dialog.modal input[type=checkbox]').click();
             // Every toast shown from now on, however briefly.
             window.seenToasts = [];
             new MutationObserver(() => {
               for (const t of document.querySelectorAll('.toast')) window.seenToasts.push(t.textContent);
             }).observe(document.getElementById('toasts'), {childList: true, subtree: true, characterData: true});",
            json!([]),
        )
        .await;
    browser.click_button("dialog.modal", "Save column").await;
    // The type change is a job (version 2), then the rename (version 3); the page says what
    // was emptied.
    browser
        .wait_js(
            "version 3 with the renamed column",
            30,
            "const status = document.querySelector(arguments[0] + ' .table-status')?.textContent || '';
             return status.includes('version 3')
                && [...document.querySelectorAll(arguments[0] + ' .grid-head [role=columnheader]')].some(c => c.textContent.startsWith('amount_n'))",
            json!([scope]),
        )
        .await;
    browser
        .wait_js(
            "the note of the emptied cells",
            10,
            "return window.seenToasts.some(t => t.includes('6 cells that did not convert were emptied'))
                && window.seenToasts.some(t => t.includes('as a job') || t.includes('rows'))",
            json!([]),
        )
        .await;
    let (_, meta) = app.get(&format!("/api/v1/tables/{id}"), Some(&token)).await;
    assert_eq!(meta["version"], 3, "{meta}");
    assert_eq!(meta["columns"][1]["name"], "amount_n");
    assert_eq!(meta["columns"][1]["type"], "integer");
    let (_, jobs) = app.get("/api/v1/jobs?kind=change", Some(&token)).await;
    assert_eq!(jobs["items"].as_array().unwrap().len(), 1, "{jobs}");
    assert_eq!(jobs["items"][0]["result"]["nulled_total"], 6, "{jobs}");
    let (_, page) = app
        .get(&format!("/api/v1/tables/{id}/rows?limit=5"), Some(&token))
        .await;
    assert_eq!(page["rows"][0]["cells"], json!([1, 100]), "{page}");
    assert_eq!(page["rows"][4]["cells"], json!([5, null]), "{page}");
}
