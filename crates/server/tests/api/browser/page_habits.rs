//! Small habits of the page, in headless Chromium: toasts that fade or stay out of the way,
//! long pastes folded in their bubble, the API keys screen's example call, and what the page
//! says when only the offline model is set up.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::webdriver::{Browser, ENTER};
use super::{shot, signed_in};

/// Whether the element at `a` and any element matching `b` overlap on the screen.
async fn covers(browser: &Browser, a: &str, b: &str) -> Value {
    browser
        .js(
            "const [a, b] = arguments;
             const r = document.querySelector(a).getBoundingClientRect();
             const hits = [...document.querySelectorAll(b)].filter(el => {
               const s = el.getBoundingClientRect();
               return s.width > 0 && r.left < s.right && s.left < r.right && r.top < s.bottom && s.top < r.bottom;
             });
             return hits.length > 0;",
            json!([a, b]),
        )
        .await
}

async fn toasts(browser: &Browser, kind: &str) -> Vec<String> {
    let v = browser
        .js(
            "return [...document.querySelectorAll('#toasts .toast.' + arguments[0] + ' > span')].map(s => s.textContent)",
            json!([kind]),
        )
        .await;
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect()
}

fn cell_css(row: usize, col: usize) -> String {
    format!(
        ".table-panel .grid-body .grid-row[data-index=\"{row}\"] [role=gridcell][data-col=\"{col}\"]"
    )
}

async fn edit_cell(b: &Browser, row: usize, col: usize, text: &str) {
    b.click_fresh(&cell_css(row, col)).await;
    b.type_into(".table-panel .grid", &format!("{text}{ENTER}"))
        .await;
}

#[tokio::test]
async fn information_fades_by_itself_errors_stay_clear_of_the_composer_until_dismissed_or_left() {
    let Some(mut s) = signed_in("toasts@example.com", async |_, _| {}).await else {
        return;
    };
    let (_, table) = s
        .app
        .post(
            "/api/v1/tables",
            Some(&s.token),
            json!({"name": "Cities", "columns": [{"name": "city", "type": "text"}],
                   "rows": [["Paris"], ["Berlin"]]}),
        )
        .await;
    let id = table["id"].as_str().unwrap().to_owned();
    let (_, conv) = s
        .app
        .post("/api/v1/conversations", Some(&s.token), json!({}))
        .await;
    let b = &s.browser;
    b.js("location.hash = arguments[0]", json!([format!("#/t/{id}")]))
        .await;
    b.find(&cell_css(1, 0)).await;

    // Information ("Saved as version 2.") goes by itself after about four seconds.
    edit_cell(b, 0, 0, "Lyon").await;
    b.wait_js(
        "the saved toast",
        10,
        "return [...document.querySelectorAll('#toasts .toast.info')].some(t => t.textContent.startsWith('Saved as version 2'))",
        json!([]),
    )
    .await;
    let seen = Instant::now();
    b.wait_js(
        "the saved toast to go",
        10,
        "return ![...document.querySelectorAll('#toasts .toast')].some(t => t.textContent.startsWith('Saved as version 2'))",
        json!([]),
    )
    .await;
    let lasted = seen.elapsed();
    assert!(
        (Duration::from_secs(3)..Duration::from_secs(6)).contains(&lasted),
        "shown for {lasted:?}"
    );

    // An error (the table changed elsewhere) stays, and not over the primary button.
    let (status, _) = s
        .app
        .post(
            &format!("/api/v1/tables/{id}/revert"),
            Some(&s.token),
            json!({"version": 1}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED);
    edit_cell(b, 1, 0, "Bonn").await;
    b.wait_js(
        "the error toast",
        10,
        "return document.querySelector('#toasts .toast.error[role=alert]')",
        json!([]),
    )
    .await;
    assert_eq!(
        covers(b, "#toasts", ".table-panel .toolbar button.primary").await,
        false,
        "the error is not over Export"
    );
    assert_eq!(
        b.js(
            "return document.querySelector('.table-panel .toolbar button[aria-keyshortcuts=\"Control+Z\"]').disabled",
            json!([])
        )
        .await,
        true,
        "my edit came before the other change: nothing to undo"
    );
    shot(b, "toast-error-on-a-table.png").await;
    tokio::time::sleep(Duration::from_millis(5500)).await;
    assert_eq!(
        toasts(b, "error").await,
        ["Someone else changed this table meanwhile; it has been reloaded."]
    );

    // Another screen: the table's error is gone.
    let conv_hash = format!("#/c/{}", conv["id"].as_str().unwrap());
    b.js("location.hash = arguments[0]", json!([conv_hash]))
        .await;
    b.find(".composer textarea").await;
    assert_eq!(toasts(b, "error").await, Vec::<String>::new());

    // An error on the conversation's screen (the server is gone: the first message cannot
    // make the conversation) is clear of the composer, its Send button and "New
    // conversation"; × dismisses it.
    b.click_button(".sidebar", "New conversation").await;
    b.find(".composer textarea").await;
    s.app.stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.click(".composer textarea").await;
    b.js(
        "document.execCommand('insertText', false, arguments[0]);",
        json!(["hello"]),
    )
    .await;
    b.click_button(".composer", "Send").await;
    b.wait_js(
        "the error toast",
        15,
        "return document.querySelector('#toasts .toast.error')",
        json!([]),
    )
    .await;
    for other in [
        ".composer",
        ".composer button.primary",
        ".sidebar button.primary",
    ] {
        assert_eq!(covers(b, "#toasts", other).await, false, "over {other}");
    }
    shot(b, "toast-error-in-a-conversation.png").await;
    b.click("#toasts .toast.error button[aria-label=Dismiss]")
        .await;
    assert_eq!(toasts(b, "error").await, Vec::<String>::new());
}

#[tokio::test]
async fn a_long_paste_shows_its_first_eight_lines_in_its_bubble_and_the_rest_on_request() {
    let Some(s) = signed_in("paste@example.com", async |_, _| {}).await else {
        return;
    };
    let (_, conv) = s
        .app
        .post("/api/v1/conversations", Some(&s.token), json!({}))
        .await;
    let b = &s.browser;
    b.js(
        "location.hash = arguments[0]",
        json!([format!("#/c/{}", conv["id"].as_str().unwrap())]),
    )
    .await;
    let csv: String = std::iter::once("n,square".to_owned())
        .chain((1..300).map(|i| format!("{i},{}", i * i)))
        .collect::<Vec<_>>()
        .join("\n");
    b.click(".composer textarea").await;
    b.js(
        "document.execCommand('insertText', false, arguments[0]);",
        json!([csv]),
    )
    .await;
    b.click_button(".composer", "Send").await;

    let bubble = "const m = document.querySelector('.message.user');
                  const t = m?.querySelector('.fold-toggle');
                  return t ? {height: m.getBoundingClientRect().height,
                              text: m.querySelector('.folded-text').textContent,
                              toggle: t.textContent, expanded: t.getAttribute('aria-expanded')} : null;";
    let folded = b.wait_js("the folded paste", 10, bubble, json!([])).await;
    let first_eight: Vec<&str> = csv.lines().take(8).collect();
    assert_eq!(folded["text"], first_eight.join("\n"));
    assert_eq!(folded["toggle"], "Show all (300 lines)");
    assert_eq!(folded["expanded"], "false");
    assert!(folded["height"].as_f64().unwrap() < 400.0, "{folded}");

    b.click_button(".message.user", "Show all (300 lines)")
        .await;
    let open = b.wait_js("the whole paste", 10, bubble, json!([])).await;
    assert_eq!(open["text"], csv.as_str());
    assert_eq!(open["toggle"], "Show less");
    assert_eq!(open["expanded"], "true");
    assert!(open["height"].as_f64().unwrap() > 3000.0, "{open}");

    // Read back from the server (a reload), it is folded again.
    b.refresh().await;
    let again = b
        .wait_js("the folded paste after a reload", 15, bubble, json!([]))
        .await;
    assert_eq!(again["toggle"], "Show all (300 lines)");
}

#[tokio::test]
async fn the_api_keys_screen_links_to_docs_and_offers_a_copyable_curl_call_with_the_new_key() {
    let Some(s) = signed_in("curl@example.com", async |_, _| {}).await else {
        return;
    };
    let b = &s.browser;
    let origin = s.app.url("/").trim_end_matches('/').to_owned();
    b.cdp(
        "Browser.grantPermissions",
        json!({"origin": origin, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]}),
    )
    .await;
    b.js("location.hash = '#/keys'", json!([])).await;
    let docs = b
        .wait_js(
            "the link to /docs",
            10,
            "return document.querySelector('main .intro a[href=\"/docs\"]')?.textContent",
            json!([]),
        )
        .await;
    assert_eq!(docs, "/docs");

    b.type_into("main form input[type=text]", "nightly script")
        .await;
    b.click_button("main form", "Create key").await;
    let shown = b
        .wait_js(
            "the new key and its example call",
            10,
            "const inputs = document.querySelectorAll('.key-shown input');
             return inputs.length === 2 ? [inputs[0].value, inputs[1].value] : null;",
            json!([]),
        )
        .await;
    let key = shown[0].as_str().unwrap();
    let curl = shown[1].as_str().unwrap();
    assert_eq!(
        curl,
        format!("curl -H \"Authorization: Bearer {key}\" {origin}/api/v1/tables")
    );
    b.click(".key-shown button[aria-label='Copy the example call']")
        .await;
    let copied = b
        .wait_js(
            "the call on the clipboard",
            10,
            "return navigator.clipboard.readText().then(t => t.startsWith('curl') ? t : null)",
            json!([]),
        )
        .await;
    assert_eq!(copied, curl);
    shot(b, "api-key-with-example-call.png").await;

    // The call works as written.
    let answer = reqwest::Client::new()
        .get(format!("{origin}/api/v1/tables"))
        .header("authorization", format!("Bearer {key}"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), reqwest::StatusCode::OK);
}

#[tokio::test]
async fn with_only_the_offline_model_the_page_says_where_models_are_set_up_and_counts_no_tokens() {
    let Some(s) = signed_in("offline@example.com", async |_, _| {}).await else {
        return;
    };
    let b = &s.browser;
    b.click_button(".sidebar", "New conversation").await;
    let note = b
        .wait_js(
            "the note on models",
            10,
            "const n = document.querySelector('.model-note');
             return n && !n.hidden && n.offsetParent
               ? {text: n.textContent, link: n.querySelector('a')?.getAttribute('href')} : null;",
            json!([]),
        )
        .await;
    let text = note["text"].as_str().unwrap();
    assert!(text.contains("Only the offline model is set up"), "{text}");
    assert!(text.contains("“Other models” in the README"), "{text}");
    assert_eq!(note["link"], "/docs");

    b.click(".composer textarea").await;
    b.js(
        "document.execCommand('insertText', false, arguments[0]);",
        json!(["city,population\nParis,2102650\nRome,2746984"]),
    )
    .await;
    b.click_button(".composer", "Send").await;
    let notes = b
        .wait_js(
            "the reply, complete",
            20,
            "const r = document.querySelector('.message.assistant');
             if (!r || r.classList.contains('streaming') || !r.querySelector('.table-panel')) return null;
             return [...r.querySelectorAll('.notes p')].map(p => [p.className, p.textContent]);",
            json!([]),
        )
        .await;
    let notes = notes.as_array().unwrap();
    assert!(!notes.is_empty(), "the reply has its notes");
    for n in notes {
        assert_ne!(n[0], "usage", "{n}");
        assert!(!n[1].as_str().unwrap().contains("tokens"), "{n}");
    }
}

/// Every visible text on the screen whose contrast with what is behind it (backgrounds
/// composited up the tree, as WCAG 2 computes it) is under 4.5:1; and the page's background
/// luminance. Disabled controls are left out (WCAG exempts them), as are toasts.
const CONTRAST: &str = "
const parse = (c) => {
  const m = /rgba?\\(([^)]+)\\)/.exec(c);
  if (!m) return null;
  const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
  return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
};
const over = (top, base) => ({r: top.r * top.a + base.r * (1 - top.a),
  g: top.g * top.a + base.g * (1 - top.a), b: top.b * top.a + base.b * (1 - top.a), a: 1});
const lum = ({r, g, b}) => {
  const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
};
const behind = (el) => {
  const layers = [];
  for (let e = el; e; e = e.parentElement) {
    const c = parse(getComputedStyle(e).backgroundColor);
    if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; }
  }
  let base = {r: 255, g: 255, b: 255, a: 1};
  for (const c of layers.reverse()) base = over(c, base);
  return base;
};
const ratio = (el) => {
  const bg = behind(el);
  const fg = over(parse(getComputedStyle(el).color), bg);
  const [hi, lo] = [lum(fg), lum(bg)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
};
const texts = [...document.querySelectorAll('body *')].filter(el =>
  !el.closest('#toasts, [aria-hidden=true], .skip-link, option') && !el.disabled && !el.closest(':disabled')
  && el.checkVisibility() && [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim()));
const kinds = {links: 'a', buttons: 'button', cells: '[role=gridcell]', text: 'p, td, th, h1, h2, h3, label, li, span, div, small, strong'};
const checked = {};
for (const [kind, css] of Object.entries(kinds)) checked[kind] = texts.filter(el => el.matches(css)).length;
const low = texts.map(el => [el.tagName.toLowerCase() + (el.className ? '.' + String(el.className).split(' ').join('.') : ''),
    el.textContent.trim().slice(0, 40), Math.round(ratio(el) * 100) / 100,
    getComputedStyle(el).color, behind(el)])
  .filter(([, , r]) => r < 4.5);
return {low, checked, page: lum(behind(document.body))};
";

#[tokio::test]
async fn the_page_follows_a_dark_system_setting_and_keeps_its_text_readable_in_both() {
    let Some(s) = signed_in("dark@example.com", async |_, _| {}).await else {
        return;
    };
    let (_, table) = s
        .app
        .post(
            "/api/v1/tables",
            Some(&s.token),
            json!({"name": "Cities", "columns": [{"name": "city", "type": "text"},
                                                 {"name": "population", "type": "integer"}],
                   "rows": [["Paris", 2_102_650], ["Berlin", 3_850_809], ["Madrid", 3_332_035]]}),
        )
        .await;
    let id = table["id"].as_str().unwrap().to_owned();
    let b = &s.browser;

    // A conversation with a paste, its reply and its grid.
    b.click_button(".sidebar", "New conversation").await;
    b.click(".composer textarea").await;
    b.js(
        "document.execCommand('insertText', false, arguments[0]);",
        json!(["city,country\nParis,France\nRome,Italy"]),
    )
    .await;
    b.click_button(".composer", "Send").await;
    b.wait_js(
        "the reply's grid",
        20,
        "return document.querySelectorAll('.message.assistant .grid-body .grid-row:not(.loading)').length === 2",
        json!([]),
    )
    .await;
    let conversation = b.js("return location.hash", json!([])).await;

    let screens = [
        (
            "conversation",
            conversation.as_str().unwrap().to_owned(),
            ".message.assistant .grid-row",
        ),
        (
            "table",
            format!("#/t/{id}"),
            ".table-panel .grid-body .grid-row:not(.loading)",
        ),
        ("tables", "#/tables".to_owned(), "main table.data tbody tr"),
        ("keys", "#/keys".to_owned(), "main form"),
        ("templates", "#/templates".to_owned(), "main .row-actions"),
        (
            "account",
            "#/account".to_owned(),
            "main table.data tbody tr",
        ),
    ];
    for scheme in ["light", "dark"] {
        b.cdp(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": scheme}]}),
        )
        .await;
        for (name, hash, ready) in &screens {
            b.js("location.hash = arguments[0]", json!([hash])).await;
            b.find(ready).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            let found = b.js(CONTRAST, json!([])).await;
            assert_eq!(found["low"], json!([]), "{scheme} {name}: text under 4.5:1");
            for kind in ["links", "buttons", "text"] {
                assert!(
                    found["checked"][kind].as_u64().unwrap() > 0,
                    "{scheme} {name}: some {kind} checked: {found}"
                );
            }
            if *name == "table" || *name == "conversation" {
                assert!(found["checked"]["cells"].as_u64().unwrap() > 0, "{found}");
            }
            let page = found["page"].as_f64().unwrap();
            if scheme == "dark" {
                assert!(page < 0.05, "{name}: a dark background ({page})");
            } else {
                assert!(page > 0.8, "{name}: a light background ({page})");
            }
            shot(b, &format!("theme-{scheme}-{name}.png")).await;
        }
    }

    // The check itself finds grey on grey.
    b.js(
        "const p = document.createElement('p');
         p.textContent = 'grey on grey';
         p.style.color = '#777';
         p.style.background = '#888';
         document.querySelector('main').append(p);",
        json!([]),
    )
    .await;
    let found = b.js(CONTRAST, json!([])).await;
    assert_eq!(found["low"][0][1], "grey on grey", "{found}");
}
