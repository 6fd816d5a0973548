//! *Edit column* on a text column of European numbers: the dialog says, before anything is
//! saved, which decimal mark the numbers will be read with and which cells will not convert;
//! saved with "empty the cells that do not convert", the page says which were emptied.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::shot;
use super::webdriver::{Browser, installed};
use crate::helpers::{PASSWORD, TestApp};

const CSV: &str = "Posten;Betrag\nMiete;1.234,5\nStrom;2,75\nWasser;k. A.\n";

/// The dialog's line about the type change, once it says `want`.
async fn preview_says(browser: &Browser, want: &str) -> Value {
    browser
        .wait_js(
            &format!("the dialog to say “{want}”"),
            15,
            "const p = document.querySelector('dialog.modal .type-preview');
             return p && p.textContent === arguments[0] ? p.textContent : null;",
            json!([want]),
        )
        .await
}

/// Picks `value` in the dialog's `index`-th select, as a person choosing an option does.
async fn choose(browser: &Browser, index: usize, value: &str) {
    browser
        .js(
            "const s = document.querySelectorAll('dialog.modal select')[arguments[0]];
             s.value = arguments[1];
             s.dispatchEvent(new Event('change', {bubbles: true}));",
            json!([index, value]),
        )
        .await;
}

#[tokio::test]
async fn edit_column_shows_the_decimal_mark_and_the_cells_it_will_empty_before_and_after() {
    let Some((chromium, chromedriver)) = installed() else {
        return;
    };
    let app = TestApp::spawn().await;
    let token = app.user("erika@example.com").await;
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(CSV.as_bytes().to_vec()).file_name("haushalt.csv"),
    );
    let resp = app
        .client
        .post(app.url("/api/v1/tables/import"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let table: Value = resp.json().await.unwrap();
    let id = table["id"].as_str().unwrap().to_owned();
    assert_eq!(table["columns"][1]["type"], "text", "a word makes it text");

    let downloads = tempfile::tempdir().unwrap();
    let browser = Browser::start(&chromium, &chromedriver, downloads.path()).await;
    browser.goto(&app.url("/")).await;
    browser
        .type_into(".auth-form input[name=email]", "erika@example.com")
        .await;
    browser
        .type_into(".auth-form input[name=password]", PASSWORD)
        .await;
    browser.click(".auth-form button[type=submit]").await;
    browser.find(".sidebar").await;
    browser
        .js("location.hash = arguments[0]", json!([format!("#/t/{id}")]))
        .await;
    let cell = browser
        .find(
            ".grid-body .grid-row[data-index=\"0\"]:not(.loading) [role=gridcell][data-col=\"1\"]",
        )
        .await;
    browser.click_element(&cell).await;
    browser.click_button(".toolbar", "Edit column").await;
    browser.find("dialog.modal .type-preview").await;

    // To decimal: the mark chosen from every value, and the one cell that is not a number.
    choose(&browser, 0, "decimal").await;
    preview_says(
        &browser,
        "Numbers read with a decimal comma, thousands grouped with points. \
         1 cell will not convert: “k. A.”.",
    )
    .await;
    shot(&browser, "13-edit-column-preview.png").await;
    // A decimal point asked for instead: then the numbers would not convert either.
    choose(&browser, 1, ".").await;
    preview_says(
        &browser,
        "Numbers read with a decimal point. \
         3 cells will not convert: “1.234,5”, “2,75”, “k. A.”.",
    )
    .await;
    choose(&browser, 1, "").await;
    preview_says(
        &browser,
        "Numbers read with a decimal comma, thousands grouped with points. \
         1 cell will not convert: “k. A.”.",
    )
    .await;
    browser.click("dialog.modal input[type=checkbox]").await;
    browser.click_button("dialog.modal", "Save column").await;

    // The page says which cell was emptied, and keeps saying it until dismissed.
    let note = browser
        .wait_js(
            "the note of the emptied cell",
            15,
            "const t = [...document.querySelectorAll('.toast')]
               .find(t => t.textContent.includes('version 2'));
             return t ? [t.className, t.querySelector('span').textContent] : null;",
            json!([]),
        )
        .await;
    assert_eq!(
        note,
        json!([
            "toast notice",
            "Saved as version 2: 1 cell that did not convert was emptied: “k. A.”."
        ])
    );

    let (status, page) = app
        .get(&format!("/api/v1/tables/{id}/rows"), Some(&token))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["columns"][1]["type"], "decimal");
    assert_eq!(
        page["columns"][1]["reading"],
        json!({"decimal": ",", "grouping": "."})
    );
    let cells: Vec<&Value> = page["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["cells"])
        .collect();
    assert_eq!(
        cells,
        [
            &json!(["Miete", "1234.5"]),
            &json!(["Strom", "2.75"]),
            &json!(["Wasser", null])
        ]
    );
}
