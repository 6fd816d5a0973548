//! Managing the workspace from the page, in headless Chromium: screens fetched one module at
//! a time, renaming, deleting (with Undo and the trash) and searching conversations and
//! tables, conversations made by their first message, the welcome screen, diffs that name
//! rows, the reply's actions, files dropped on the composer, and imports that run once.

use serde_json::{Value, json};

use super::webdriver::Browser;
use super::{CSV, signed_in};

/// Paths under /assets/js/screens/ fetched so far.
async fn screen_modules(b: &Browser) -> Vec<String> {
    let v = b
        .js(
            "return performance.getEntriesByType('resource')
               .map(e => new URL(e.name).pathname)
               .filter(p => p.startsWith('/assets/js/screens/'))
               .sort();",
            json!([]),
        )
        .await;
    serde_json::from_value(v).unwrap()
}

async fn heading(b: &Browser, text: &str) {
    b.wait_js(
        &format!("the heading “{text}”"),
        15,
        "return document.querySelector('main h1')?.textContent === arguments[0]",
        json!([text]),
    )
    .await;
}

/// Conversations as the API lists them.
async fn conversations(s: &super::Signed) -> Vec<Value> {
    let (_, list) = s.app.get("/api/v1/conversations", Some(&s.token)).await;
    list["items"].as_array().unwrap().clone()
}

/// Inserts text into the focused composer as typing would.
async fn compose(b: &Browser, text: &str) {
    b.click(".composer textarea").await;
    b.js(
        "document.execCommand('insertText', false, arguments[0]);",
        json!([text]),
    )
    .await;
}

/// Names of the tables listed on the Tables screen, once there are `n`.
async fn listed_tables(b: &Browser, n: usize) -> Value {
    b.wait_js(
        &format!("{n} tables listed"),
        15,
        "const names = [...document.querySelectorAll('.tables-list tbody tr td:first-child')].map(td => td.textContent);
         return names.length === arguments[0] ? names : null;",
        json!([n]),
    )
    .await
}

#[tokio::test]
async fn each_screen_fetches_its_own_module_the_first_time_it_opens_and_nothing_before() {
    let Some(s) = signed_in("screens@example.com", async |_, _| {}).await else {
        return;
    };
    let b = &s.browser;
    assert_eq!(
        screen_modules(b).await,
        Vec::<String>::new(),
        "signing in fetches no screen's module"
    );
    let mut fetched = vec!["/assets/js/screens/page.js".to_owned()];
    for (hash, file, title) in [
        ("#/keys", "keys", "API keys"),
        ("#/tables", "tables", "Tables"),
        ("#/templates", "templates", "Templates"),
        ("#/exports", "exports", "Exports"),
        ("#/usage", "usage", "Usage"),
        ("#/account", "account", "Account"),
    ] {
        b.js("location.hash = arguments[0]", json!([hash])).await;
        heading(b, title).await;
        fetched.push(format!("/assets/js/screens/{file}.js"));
        fetched.sort();
        assert_eq!(screen_modules(b).await, fetched, "after opening {hash}");
    }
    // A second visit fetches nothing again.
    b.js("location.hash = '#/keys'", json!([])).await;
    heading(b, "API keys").await;
    assert_eq!(screen_modules(b).await.len(), fetched.len());
}

#[tokio::test]
async fn tables_are_searched_renamed_deleted_with_undo_and_restored_from_the_trash() {
    let Some(s) = signed_in("tables@example.com", async |app, token| {
        for name in ["Cities", "Rivers"] {
            app.post(
                "/api/v1/tables",
                Some(token),
                json!({"name": name, "rows": [{"name": "a"}, {"name": "b"}]}),
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
    assert_eq!(listed_tables(b, 2).await, json!(["Rivers", "Cities"]));

    // Search: the names read so far.
    b.type_into(".page input[type=search]", "riv").await;
    assert_eq!(listed_tables(b, 1).await, json!(["Rivers"]));
    b.js(
        "const i = document.querySelector('.page input[type=search]'); i.value = ''; i.dispatchEvent(new Event('input'));",
        json!([]),
    )
    .await;
    listed_tables(b, 2).await;

    // Rename in a dialog.
    b.click(".tables-list button[aria-label='Rename Cities']")
        .await;
    b.find("dialog input[type=text]").await;
    b.js(
        "const d = document.querySelector('dialog'); d.querySelector('input').value = 'Towns'; d.querySelector('form').requestSubmit();",
        json!([]),
    )
    .await;
    b.wait_js(
        "the new name listed",
        15,
        "return [...document.querySelectorAll('.tables-list tbody td:first-child')].some(td => td.textContent === 'Towns')",
        json!([]),
    )
    .await;

    // Delete: to the trash at once, with Undo in the toast.
    b.click(".tables-list button[aria-label='Delete Towns']")
        .await;
    assert_eq!(listed_tables(b, 1).await, json!(["Rivers"]));
    let (_, trash) = s
        .app
        .get("/api/v1/tables?deleted=true", Some(&s.token))
        .await;
    assert_eq!(trash["items"][0]["name"], "Towns");
    b.find(".trash-list button[aria-label='Restore Towns']")
        .await;
    b.click_button("#toasts", "Undo").await;
    assert_eq!(listed_tables(b, 2).await, json!(["Rivers", "Towns"]));

    // Deleted again, then restored from the trash.
    b.click(".tables-list button[aria-label='Delete Towns']")
        .await;
    listed_tables(b, 1).await;
    b.click(".trash-list button[aria-label='Restore Towns']")
        .await;
    listed_tables(b, 2).await;
    let (_, trash) = s
        .app
        .get("/api/v1/tables?deleted=true", Some(&s.token))
        .await;
    assert_eq!(trash["items"], json!([]));
}

#[tokio::test]
async fn a_conversation_is_renamed_searched_deleted_and_links_to_its_table_and_back() {
    let Some(s) = signed_in("convs@example.com", async |app, token| {
        let (_, other) = app
            .post(
                "/api/v1/conversations",
                Some(token),
                json!({"title": "Budget"}),
            )
            .await;
        let _ = other;
        let (_, conv) = app
            .post("/api/v1/conversations", Some(token), json!({}))
            .await;
        let id = conv["id"].as_str().unwrap();
        app.post(
            &format!("/api/v1/conversations/{id}/messages"),
            Some(token),
            json!({"content": CSV}),
        )
        .await;
    })
    .await
    else {
        return;
    };
    let b = &s.browser;
    let list = conversations(&s).await;
    let conv = list.iter().find(|c| c["title"] != "Budget").unwrap();
    let id = conv["id"].as_str().unwrap().to_owned();
    let table = conv["current_table_id"].as_str().unwrap().to_owned();

    // From the reply to its table, and from the table back to the conversation.
    b.js("location.hash = arguments[0]", json!([format!("#/c/{id}")]))
        .await;
    b.click(".message.assistant .table-panel a.open-table")
        .await;
    b.wait_js(
        "the table's screen",
        10,
        "return location.hash === arguments[0]",
        json!([format!("#/t/{table}")]),
    )
    .await;
    b.click(".table-page a.table-conversation").await;
    b.wait_js(
        "the conversation again",
        10,
        "return location.hash === arguments[0] && document.querySelector('.message.assistant')",
        json!([format!("#/c/{id}")]),
    )
    .await;

    // Rename.
    b.click_button(".chat-head", "Rename").await;
    b.find("dialog input[type=text]").await;
    b.js(
        "const d = document.querySelector('dialog'); d.querySelector('input').value = 'European capitals'; d.querySelector('form').requestSubmit();",
        json!([]),
    )
    .await;
    b.wait_js(
        "the new title in the sidebar",
        10,
        "return [...document.querySelectorAll('.conv-name')].some(n => n.textContent === 'European capitals')
           && document.querySelector('.conv-title').textContent === 'European capitals'",
        json!([]),
    )
    .await;
    assert!(
        conversations(&s)
            .await
            .iter()
            .any(|c| c["title"] == "European capitals")
    );

    // Search the sidebar.
    b.type_into("#conv-search", "budg").await;
    let names = b
        .wait_js(
            "one conversation found",
            10,
            "const n = [...document.querySelectorAll('.conv-name')].map(n => n.textContent);
             return n.length === 1 ? n : null;",
            json!([]),
        )
        .await;
    assert_eq!(names, json!(["Budget"]));

    // Delete, after a question (there is no restore of a conversation).
    b.click_button(".chat-head", "Delete").await;
    b.click_button("dialog", "Delete").await;
    b.wait_js(
        "the welcome screen",
        10,
        "return location.hash === '#/' && document.querySelector('.composer textarea')",
        json!([]),
    )
    .await;
    let left: Vec<Value> = conversations(&s).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["title"], "Budget");
}

#[tokio::test]
async fn new_conversation_makes_nothing_until_the_first_message_and_the_welcome_offers_sample_data()
{
    let Some(s) = signed_in("welcome@example.com", async |_, _| {}).await else {
        return;
    };
    let b = &s.browser;
    // The first screen: a composer, examples and sample data.
    b.find(".composer textarea").await;
    let examples = b
        .js(
            "return [...document.querySelectorAll('.welcome .examples button')].map(x => x.textContent)",
            json!([]),
        )
        .await;
    assert_eq!(examples[0], "Try with sample data");
    assert!(examples.as_array().unwrap().len() >= 3, "{examples}");

    // Clicks on "New conversation" leave nothing behind.
    b.click_button(".sidebar", "New conversation").await;
    b.click_button(".sidebar", "New conversation").await;
    b.find(".composer textarea").await;
    b.js("location.hash = '#/tables'", json!([])).await;
    b.find(".page h1").await;
    assert_eq!(conversations(&s).await, Vec::<Value>::new());

    // The sample data goes into the composer; sending it makes the conversation.
    b.js("location.hash = '#/'", json!([])).await;
    b.click_button(".welcome", "Try with sample data").await;
    let text = b
        .js(
            "return document.querySelector('.composer textarea').value",
            json!([]),
        )
        .await;
    assert!(
        text.as_str()
            .unwrap()
            .starts_with("city,country,population"),
        "{text}"
    );
    b.click_button(".composer", "Send").await;
    b.find(".message.assistant .table-panel .grid-body .grid-row[data-index=\"4\"]")
        .await;
    let hash = b.js("return location.hash", json!([])).await;
    let list = conversations(&s).await;
    assert_eq!(list.len(), 1);
    assert_eq!(hash, format!("#/c/{}", list[0]["id"].as_str().unwrap()));
    b.wait_js(
        "the conversation in the sidebar",
        10,
        "return document.querySelectorAll('.conv-link').length === 1",
        json!([]),
    )
    .await;
}

#[tokio::test]
async fn a_diff_names_rows_by_place_and_first_column_goes_to_each_change_and_closes_on_revert() {
    let Some(s) = signed_in("diff@example.com", async |app, token| {
        let rows: Vec<Value> = (1..=30)
            .map(|i| json!([format!("City {i}"), i * 1000]))
            .collect();
        let (_, t) = app
            .post(
                "/api/v1/tables",
                Some(token),
                json!({"name": "Cities", "columns": [{"name": "city", "type": "text"},
                       {"name": "population", "type": "integer"}], "rows": rows}),
            )
            .await;
        let id = t["id"].as_str().unwrap();
        // Version 2: the largest first, so that rows' places are not their ids.
        app.post(
            &format!("/api/v1/tables/{id}/changes"),
            Some(token),
            json!({"ops": [{"op": "sort", "by": [{"column": "population", "desc": true}]}]}),
        )
        .await;
        // Version 3: City 12 (row id 12) is now the 19th row.
        app.post(
            &format!("/api/v1/tables/{id}/changes"),
            Some(token),
            json!({"ops": [{"op": "set_cells", "cells": [
                {"row": 12, "column": "population", "value": 5},
                {"row": 29, "column": "population", "value": 7}]}]}),
        )
        .await;
    })
    .await
    else {
        return;
    };
    let b = &s.browser;
    let (_, list) = s.app.get("/api/v1/tables", Some(&s.token)).await;
    let id = list["items"][0]["id"].as_str().unwrap().to_owned();
    b.js("location.hash = arguments[0]", json!([format!("#/t/{id}")]))
        .await;
    b.click_button(".table-panel .toolbar", "Versions").await;
    b.find(".version-list li[data-version=\"3\"]").await;
    b.click_button(".versions", "Show changes").await;
    let rows = b
        .wait_js(
            "the diff's rows",
            15,
            "const r = [...document.querySelectorAll('.diff-table tbody td.diff-row')].map(td => td.textContent);
             return r.length ? r : null;",
            json!([]),
        )
        .await;
    assert_eq!(rows, json!(["row 2, City 29", "row 19, City 12"]));

    // "Go to next change" takes the grid to each changed cell in turn.
    for (row, text) in [(1, "7"), (18, "5")] {
        b.click_button(".diff", "Go to next change").await;
        let active = b
            .wait_js(
                "the active cell on the change",
                10,
                "const c = document.querySelector('.table-panel .grid-body .cell.active');
                 const r = c?.closest('.grid-row');
                 return r && Number(r.dataset.index) === arguments[0] ? c.textContent : null;",
                json!([row]),
            )
            .await;
        assert_eq!(active, text);
    }

    // A revert makes a new version: the old diff closes.
    b.click(".version-list li[data-version=\"2\"] .version-actions button:nth-child(2)")
        .await;
    b.click_button("dialog", "Revert").await;
    b.wait_js(
        "the diff closed",
        15,
        "const d = document.querySelector('.table-panel .diff');
         return d.hidden && !d.querySelector('.diff-table') && !document.querySelector('.cell.changed');",
        json!([]),
    )
    .await;
}

#[tokio::test]
async fn a_reply_is_copied_and_regenerated_the_last_message_comes_back_and_a_dropped_file_is_imported_once()
 {
    let Some(s) = signed_in("reply@example.com", async |_, _| {}).await else {
        return;
    };
    let b = &s.browser;
    let origin = s.app.url("/").trim_end_matches('/').to_owned();
    b.cdp(
        "Browser.grantPermissions",
        json!({"origin": origin, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]}),
    )
    .await;
    b.click_button(".sidebar", "New conversation").await;
    compose(b, "city,population\nParis,2102650\nRome,2746984").await;
    b.click_button(".composer", "Send").await;
    b.find(".message.assistant:not(.streaming) .message-actions .regenerate")
        .await;

    // Copy: the reply's text on the clipboard.
    b.click_button(".message.assistant .message-actions", "Copy")
        .await;
    let copied = b
        .wait_js(
            "the reply on the clipboard",
            10,
            "return navigator.clipboard.readText().then(t => t || null).catch(() => null)",
            json!([]),
        )
        .await;
    let reply = b
        .js(
            "return document.querySelector('.message.assistant .content').textContent",
            json!([]),
        )
        .await;
    let first_line = reply.as_str().unwrap().lines().next().unwrap().to_owned();
    assert!(
        copied.as_str().unwrap().starts_with(&first_line),
        "{copied} / {reply}"
    );

    // Regenerate: a second reply, Regenerate now on it only.
    b.click_button(".message.assistant .message-actions", "Regenerate")
        .await;
    b.wait_js(
        "the second reply",
        20,
        "const r = document.querySelectorAll('.message.assistant:not(.streaming)');
         return r.length === 2 && document.querySelectorAll('.regenerate').length === 1
           && r[1].querySelector('.regenerate');",
        json!([]),
    )
    .await;

    // Edit and resend: the last message back in the composer.
    b.click_button(".message.user .message-actions", "Edit and resend")
        .await;
    let back = b
        .js(
            "return document.querySelector('.composer textarea').value",
            json!([]),
        )
        .await;
    assert_eq!(back, "city,population\nParis,2102650\nRome,2746984");

    // A CSV dropped on the composer (twice, quickly) is imported once, as the
    // conversation's table, and shown in it.
    b.js(
        "window.imports = 0;
         const real = window.fetch;
         window.fetch = (url, opts) => {
           if (String(url).endsWith('/tables/import')) {
             window.imports += 1;
             return new Promise(r => setTimeout(r, 800)).then(() => real(url, opts));
           }
           return real(url, opts);
         };
         const drop = () => {
           const data = new DataTransfer();
           data.items.add(new File(['river,km\\nDanube,2850\\nRhine,1233\\n'], 'rivers.csv', {type: 'text/csv'}));
           document.querySelector('.composer').dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true}));
         };
         drop(); drop();",
        json!([]),
    )
    .await;
    let busy = b
        .js(
            "const a = document.querySelector('.composer .attach');
             return {busy: a.getAttribute('aria-busy'), disabled: a.disabled,
                     status: document.querySelector('.attach-status').textContent};",
            json!([]),
        )
        .await;
    assert_eq!(
        busy,
        json!({"busy": "true", "disabled": true, "status": "Importing rivers.csv…"})
    );
    let cell = b
        .wait_js(
            "the dropped table in the conversation",
            20,
            "const c = document.querySelector('.message.attachment .table-panel .grid-row[data-index=\"1\"] [role=gridcell][data-col=\"0\"]');
             return c ? c.textContent : null;",
            json!([]),
        )
        .await;
    assert_eq!(cell, "Rhine");
    assert_eq!(b.js("return window.imports", json!([])).await, 1);
    let conv = &conversations(&s).await[0];
    let (_, tables) = s.app.get("/api/v1/tables", Some(&s.token)).await;
    let rivers = tables["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["name"].as_str().unwrap().starts_with("rivers"))
        .collect::<Vec<_>>();
    assert_eq!(rivers.len(), 1, "one import: {tables}");
    assert_eq!(conv["current_table_id"], rivers[0]["id"]);
}

#[tokio::test]
async fn an_import_on_the_tables_screen_shows_it_is_busy_and_a_double_click_imports_once() {
    let Some(s) = signed_in("import@example.com", async |_, _| {}).await else {
        return;
    };
    let b = &s.browser;
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("towns.csv");
    std::fs::write(&csv, "town,people\nLyon,522000\nNice,342000\n").unwrap();
    b.js("location.hash = '#/tables'", json!([])).await;
    b.type_into(".page input[type=file]", csv.to_str().unwrap())
        .await;
    b.js(
        "window.imports = 0;
         const real = window.fetch;
         window.fetch = (url, opts) => {
           if (String(url).endsWith('/tables/import')) {
             window.imports += 1;
             return new Promise(r => setTimeout(r, 800)).then(() => real(url, opts));
           }
           return real(url, opts);
         };",
        json!([]),
    )
    .await;
    let button = b.find(".page form button[type=submit]").await;
    b.double_click_element(&button).await;
    let busy = b
        .js(
            "const x = document.querySelector('.page form button[type=submit]');
             return {text: x.textContent, busy: x.getAttribute('aria-busy'), disabled: x.disabled};",
            json!([]),
        )
        .await;
    assert_eq!(
        busy,
        json!({"text": "Importing…", "busy": "true", "disabled": true})
    );
    b.wait_js(
        "the imported table",
        20,
        "return location.hash.startsWith('#/t/')",
        json!([]),
    )
    .await;
    assert_eq!(b.js("return window.imports", json!([])).await, 1);
    let (_, tables) = s.app.get("/api/v1/tables", Some(&s.token)).await;
    assert_eq!(tables["items"].as_array().unwrap().len(), 1, "{tables}");
}
