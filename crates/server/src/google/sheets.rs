//! Writing a version of a table into a Google spreadsheet: values typed (`RAW`, so nothing a
//! cell holds is run as a formula; dates as serial numbers with a date format), written in
//! chunks under the request limits, then the template's formatting in one `batchUpdate`
//! (header style, freeze, number formats, widths, alignment, validation, conditional formats,
//! filter), and sharing through Drive permissions.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use garde::Validate;
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};
pub use sheetgpt_core::export::sheets::spreadsheet_url;
use sheetgpt_core::export::sheets::{
    Block, a1, column_letters, formatting, row_cells, spreadsheet_id, subtotal,
};
use sheetgpt_core::table::Value;
use sheetgpt_core::template::Resolved;
use sheetgpt_core::version::Schema;
use utoipa::ToSchema;
use uuid::Uuid;

use super::client::{GoogleError, Session};
use crate::db::tables as table_store;
use crate::exports::render::Control;

/// Google's limit on cells in one spreadsheet.
pub const MAX_CELLS: u64 = 10_000_000;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SheetMode {
    /// A new spreadsheet in the user's Drive (OAuth only).
    #[default]
    NewSpreadsheet,
    /// A new tab in an existing spreadsheet.
    NewTab,
    /// Replace the contents and formatting of an existing tab.
    ReplaceTab,
    /// Add the rows under what an existing tab already holds.
    Append,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ShareRole {
    Reader,
    Writer,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Share {
    #[garde(email)]
    pub email: String,
    #[garde(skip)]
    pub role: ShareRole,
}

/// Where in Google Sheets an export goes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SheetsDestination {
    #[serde(default)]
    #[garde(skip)]
    pub mode: SheetMode,
    /// The spreadsheet (its id, or its URL) for `new_tab`, `replace_tab` and `append`.
    #[schema(max_length = 500)]
    #[garde(length(chars, max = 500))]
    pub spreadsheet: Option<String>,
    /// Title of a new spreadsheet (default: the table's name).
    #[schema(min_length = 1, max_length = 200)]
    #[garde(length(chars, min = 1, max = 200))]
    pub title: Option<String>,
    /// The tab to create, replace or append to (default: the template's sheet name, or
    /// the table's name).
    #[schema(min_length = 1, max_length = 100)]
    #[garde(length(chars, min = 1, max = 100))]
    pub sheet: Option<String>,
    /// People to share the spreadsheet with.
    #[serde(default)]
    #[schema(max_items = 20)]
    #[garde(length(max = 20), dive)]
    pub share_with: Vec<Share>,
    /// Keep the tab in step with later versions of the table.
    #[serde(default)]
    #[garde(skip)]
    pub link: bool,
}

/// What was written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SheetResult {
    pub spreadsheet_id: String,
    pub spreadsheet_url: String,
    pub sheet_id: i64,
    pub sheet_title: String,
    /// API requests the export made.
    pub api_calls: u32,
    /// The link that keeps the tab in step, when one was asked for.
    pub link_id: Option<Uuid>,
}

/// The table version to write.
pub struct Rows {
    pub table_id: Uuid,
    pub version: i32,
    pub current: bool,
    pub schema: Schema,
    pub row_count: u64,
}

/// A tab of a spreadsheet.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Tab {
    pub spreadsheet_id: String,
    pub sheet_id: i64,
    pub title: String,
    /// Conditional format rules the tab has now (to be removed before a rewrite).
    pub conditional_rules: usize,
}

fn sheets_url(session: &Session<'_>, path: &str) -> String {
    format!(
        "{}/v4/spreadsheets{path}",
        session
            .state
            .config
            .google
            .sheets_api_url
            .trim_end_matches('/')
    )
}

fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The tabs of a spreadsheet (one read request).
pub async fn tabs(session: &Session<'_>, spreadsheet_id: &str) -> Result<Vec<Tab>, GoogleError> {
    let url = sheets_url(
        session,
        &format!(
            "/{spreadsheet_id}?fields={}",
            encode("sheets(properties(sheetId,title),conditionalFormats)")
        ),
    );
    let doc = session.call(Method::GET, &url, None, false).await?;
    Ok(doc["sheets"]
        .as_array()
        .map(|sheets| {
            sheets
                .iter()
                .map(|s| Tab {
                    spreadsheet_id: spreadsheet_id.to_owned(),
                    sheet_id: s["properties"]["sheetId"].as_i64().unwrap_or(0),
                    title: s["properties"]["title"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    conditional_rules: s["conditionalFormats"].as_array().map_or(0, Vec::len),
                })
                .collect()
        })
        .unwrap_or_default())
}

async fn batch_update(
    session: &Session<'_>,
    spreadsheet_id: &str,
    requests: Vec<Json>,
) -> Result<Json, GoogleError> {
    if requests.is_empty() {
        return Ok(Json::Null);
    }
    let url = sheets_url(session, &format!("/{spreadsheet_id}:batchUpdate"));
    session
        .call(
            Method::POST,
            &url,
            Some(&json!({"requests": requests})),
            true,
        )
        .await
}

/// One `values:batchUpdate` with the given ranges.
pub async fn write_values(
    session: &Session<'_>,
    spreadsheet_id: &str,
    data: Vec<Json>,
    user_entered: bool,
) -> Result<(), GoogleError> {
    let url = sheets_url(session, &format!("/{spreadsheet_id}/values:batchUpdate"));
    let body = json!({
        "valueInputOption": if user_entered { "USER_ENTERED" } else { "RAW" },
        "data": data,
    });
    session.call(Method::POST, &url, Some(&body), true).await?;
    Ok(())
}

async fn append_values(
    session: &Session<'_>,
    tab: &Tab,
    rows: Vec<Json>,
) -> Result<(), GoogleError> {
    let range = encode(&format!("'{}'", tab.title.replace('\'', "''")));
    let url = sheets_url(
        session,
        &format!(
            "/{}/values/{range}:append?valueInputOption=RAW&insertDataOption=INSERT_ROWS",
            tab.spreadsheet_id
        ),
    );
    session
        .call(Method::POST, &url, Some(&json!({"values": rows})), true)
        .await?;
    Ok(())
}

/// Shares a Drive file with people.
pub async fn share(
    session: &Session<'_>,
    file_id: &str,
    shares: &[Share],
) -> Result<(), GoogleError> {
    for share in shares {
        let url = format!(
            "{}/drive/v3/files/{file_id}/permissions?sendNotificationEmail=true&supportsAllDrives=true",
            session
                .state
                .config
                .google
                .drive_api_url
                .trim_end_matches('/')
        );
        let role = match share.role {
            ShareRole::Reader => "reader",
            ShareRole::Writer => "writer",
        };
        let body = json!({"type": "user", "role": role, "emailAddress": share.email});
        session.call(Method::POST, &url, Some(&body), true).await?;
    }
    Ok(())
}

/// Reads the version's rows page by page, mapped through the template.
pub struct RowReader<'a> {
    db: &'a sea_orm::DatabaseConnection,
    rows: &'a Rows,
    resolved: &'a Resolved,
    after: Option<(i64, i64)>,
    done: bool,
}

impl<'a> RowReader<'a> {
    pub fn new(
        db: &'a sea_orm::DatabaseConnection,
        rows: &'a Rows,
        resolved: &'a Resolved,
    ) -> Self {
        Self {
            db,
            rows,
            resolved,
            after: None,
            done: false,
        }
    }

    pub async fn next(&mut self, limit: u64) -> Result<Vec<Vec<Value>>, sea_orm::DbErr> {
        if self.done {
            return Ok(Vec::new());
        }
        let page = table_store::rows_after(
            self.db,
            self.rows.table_id,
            self.rows.version,
            self.rows.current,
            self.after,
            limit,
        )
        .await?;
        self.done = (page.len() as u64) < limit;
        self.after = page.last().map(|r| (r.position, r.id));
        let schema = &self.rows.schema;
        Ok(page
            .into_iter()
            .map(|raw| {
                let row = raw.into_row(schema);
                let cells: Vec<Value> = schema.columns.iter().map(|c| row.get(c).clone()).collect();
                self.resolved.map_row(&cells)
            })
            .collect())
    }
}

/// Why writing a sheet failed.
#[derive(Debug, thiserror::Error)]
pub enum SheetError {
    #[error(transparent)]
    Google(#[from] GoogleError),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
    /// Something about the request that no retry fixes, said for the user.
    #[error("{0}")]
    Invalid(String),
    #[error("cancelled")]
    Cancelled,
}

impl SheetError {
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Google(e) => e.is_retryable(),
            Self::Db(_) => true,
            Self::Invalid(_) | Self::Cancelled => false,
        }
    }

    pub fn public_message(&self) -> String {
        match self {
            Self::Google(e) => e.public_message(),
            Self::Db(_) => "The table could not be read (database error).".to_owned(),
            Self::Invalid(m) => m.clone(),
            Self::Cancelled => "The export was cancelled.".to_owned(),
        }
    }
}

/// The tab an export creates: the one an earlier attempt created (to write into again), and
/// how to record a new one before anything is written into it.
pub struct Created<F> {
    pub earlier: Option<Tab>,
    pub record: F,
}

/// Writes the rows into a tab: creates the spreadsheet or tab, or clears the tab, then the
/// values in chunks, then the formatting; shares the spreadsheet. Returns the tab.
///
/// A spreadsheet or tab this creates is handed to `created.record` before anything is
/// written into it, so that the job can remember it; an attempt given it back as
/// `created.earlier` (the one before was stopped) rewrites that tab instead of creating
/// another.
pub async fn write(
    session: &Session<'_>,
    destination: &SheetsDestination,
    table_name: &str,
    rows: &Rows,
    resolved: &Resolved,
    control: &Arc<Control>,
    created: Created<impl AsyncFnOnce(&Tab) -> Result<(), SheetError>>,
) -> Result<Tab, SheetError> {
    let Created {
        earlier: resume,
        record: created,
    } = created;
    let block = Block::of(resolved);
    let totals = resolved.styles.iter().any(|s| s.total.is_some());
    let needed_rows = u64::from(block.first_data_row()) + rows.row_count + u64::from(totals) + 1;
    let needed_cols = u64::from(block.start_col + block.columns.max(1));
    if needed_rows.saturating_mul(needed_cols) > MAX_CELLS {
        return Err(SheetError::Invalid(format!(
            "The table is larger than a Google spreadsheet can hold ({MAX_CELLS} cells); export it as CSV."
        )));
    }
    let sheet_title = destination
        .sheet
        .clone()
        .or_else(|| resolved.layout.sheet_name.clone())
        .unwrap_or_else(|| table_name.chars().take(100).collect());
    let grid = json!({"rowCount": needed_rows, "columnCount": needed_cols});
    let existing = || {
        destination
            .spreadsheet
            .as_deref()
            .and_then(spreadsheet_id)
            .ok_or_else(|| SheetError::Invalid("Give the spreadsheet's id or URL.".to_owned()))
    };
    let creates = matches!(
        destination.mode,
        SheetMode::NewSpreadsheet | SheetMode::NewTab
    );
    let resumed = resume.is_some() && creates;
    let tab = match (resume, destination.mode) {
        (Some(tab), SheetMode::NewSpreadsheet | SheetMode::NewTab) => {
            // Its rules may be there already: counted again before the rewrite clears them.
            tabs(session, &tab.spreadsheet_id)
                .await?
                .into_iter()
                .find(|t| t.sheet_id == tab.sheet_id)
                .ok_or_else(|| {
                    SheetError::Invalid(format!(
                        "The tab `{}` an earlier attempt created is gone; export again.",
                        tab.title
                    ))
                })?
        }
        (_, SheetMode::NewSpreadsheet) => {
            let title = destination
                .title
                .clone()
                .unwrap_or_else(|| table_name.to_owned());
            let body = json!({
                "properties": {"title": title},
                "sheets": [{"properties": {"title": sheet_title, "gridProperties": grid}}],
            });
            let doc = session
                .call(Method::POST, &sheets_url(session, ""), Some(&body), true)
                .await?;
            let id = doc["spreadsheetId"].as_str().unwrap_or_default().to_owned();
            if id.is_empty() {
                return Err(GoogleError::Transient("no spreadsheetId in the answer".into()).into());
            }
            Tab {
                spreadsheet_id: id,
                sheet_id: doc["sheets"][0]["properties"]["sheetId"]
                    .as_i64()
                    .unwrap_or(0),
                title: sheet_title,
                conditional_rules: 0,
            }
        }
        (_, SheetMode::NewTab) => {
            let id = existing()?;
            let reply = batch_update(
                session,
                &id,
                vec![json!({"addSheet": {"properties": {"title": sheet_title, "gridProperties": grid}}})],
            )
            .await?;
            Tab {
                spreadsheet_id: id,
                sheet_id: reply["replies"][0]["addSheet"]["properties"]["sheetId"]
                    .as_i64()
                    .unwrap_or(0),
                title: sheet_title,
                conditional_rules: 0,
            }
        }
        (_, SheetMode::ReplaceTab | SheetMode::Append) => {
            let id = existing()?;
            tabs(session, &id)
                .await?
                .into_iter()
                .find(|t| t.title == sheet_title)
                .ok_or_else(|| {
                    SheetError::Invalid(format!(
                        "The spreadsheet has no tab named `{sheet_title}`."
                    ))
                })?
        }
    };
    if creates && !resumed {
        created(&tab).await?;
    }
    match destination.mode {
        SheetMode::Append => append(session, &tab, rows, resolved, control).await?,
        SheetMode::ReplaceTab => rewrite(session, &tab, rows, resolved, control, true).await?,
        SheetMode::NewSpreadsheet | SheetMode::NewTab => {
            rewrite(session, &tab, rows, resolved, control, resumed).await?;
        }
    }
    if !destination.share_with.is_empty() {
        share(session, &tab.spreadsheet_id, &destination.share_with).await?;
    }
    Ok(tab)
}

fn check_cancel(control: &Control) -> Result<(), SheetError> {
    if control.cancelled.load(Ordering::Relaxed) {
        Err(SheetError::Cancelled)
    } else {
        Ok(())
    }
}

fn chunk_rows(session: &Session<'_>, columns: u32) -> u64 {
    (u64::from(session.state.config.google.cells_per_request) / u64::from(columns.max(1))).max(1)
}

/// Writes titles, header, rows and totals into `tab` (cleared first when `clear`), then the
/// formatting.
pub async fn rewrite(
    session: &Session<'_>,
    tab: &Tab,
    rows: &Rows,
    resolved: &Resolved,
    control: &Arc<Control>,
    clear: bool,
) -> Result<(), SheetError> {
    let block = Block::of(resolved);
    let totals = resolved.styles.iter().any(|s| s.total.is_some());
    if clear {
        let needed_rows =
            u64::from(block.first_data_row()) + rows.row_count + u64::from(totals) + 1;
        let needed_cols = u64::from(block.start_col + block.columns.max(1));
        let mut requests: Vec<Json> = (0..tab.conditional_rules)
            .map(|_| json!({"deleteConditionalFormatRule": {"sheetId": tab.sheet_id, "index": 0}}))
            .collect();
        requests.push(json!({"updateCells": {
            "range": {"sheetId": tab.sheet_id},
            "fields": "userEnteredValue,userEnteredFormat,dataValidation"
        }}));
        requests.push(json!({"clearBasicFilter": {"sheetId": tab.sheet_id}}));
        requests.push(json!({"updateSheetProperties": {
            "properties": {"sheetId": tab.sheet_id, "gridProperties": {
                "rowCount": needed_rows, "columnCount": needed_cols, "frozenRowCount": 0, "frozenColumnCount": 0}},
            "fields": "gridProperties(rowCount,columnCount,frozenRowCount,frozenColumnCount)"
        }}));
        batch_update(session, &tab.spreadsheet_id, requests).await?;
    }

    // Titles and header go with the first chunk of rows.
    let mut head: Vec<Json> = Vec::new();
    for title in &resolved.layout.title_rows {
        head.push(json!({"range": a1(&tab.title, block.start_row + head.len() as u32, block.start_col), "values": [[title]]}));
    }
    let header: Vec<Json> = resolved
        .columns
        .iter()
        .map(|c| Json::String(c.name.clone()))
        .collect();
    head.push(
        json!({"range": a1(&tab.title, block.header_row, block.start_col), "values": [header]}),
    );

    let mut reader = RowReader::new(&session.state.db, rows, resolved);
    let per_request = chunk_rows(session, block.columns);
    let mut written: u32 = 0;
    let mut first_currency: Vec<Option<String>> = vec![None; resolved.columns.len()];
    loop {
        check_cancel(control)?;
        let page = reader.next(per_request).await?;
        if page.is_empty() && head.is_empty() {
            break;
        }
        let mut data = std::mem::take(&mut head);
        if !page.is_empty() {
            for row in &page {
                for (i, v) in row.iter().enumerate() {
                    if let (Value::Currency(m), Some(slot @ None)) = (v, first_currency.get_mut(i))
                    {
                        *slot = Some(m.currency.clone());
                    }
                }
            }
            let values: Vec<Json> = page.iter().map(|r| row_cells(r)).collect();
            data.push(json!({"range": a1(&tab.title, block.first_data_row() + written, block.start_col), "values": values}));
        }
        write_values(session, &tab.spreadsheet_id, data, false).await?;
        written += u32::try_from(page.len()).unwrap_or(u32::MAX);
        control.rows.fetch_add(page.len() as u64, Ordering::Relaxed);
        if (page.len() as u64) < per_request {
            break;
        }
    }
    // No rows, no totals (as in XLSX): over no data rows the range would be the totals cell
    // itself, a circular reference.
    let totals = totals && written > 0;
    if totals {
        write_totals(session, tab, &block, resolved, written).await?;
    }
    let requests = formatting(
        tab.sheet_id,
        &block,
        resolved,
        written,
        totals,
        &first_currency,
    );
    batch_update(session, &tab.spreadsheet_id, requests).await?;
    Ok(())
}

async fn append(
    session: &Session<'_>,
    tab: &Tab,
    rows: &Rows,
    resolved: &Resolved,
    control: &Arc<Control>,
) -> Result<(), SheetError> {
    let mut reader = RowReader::new(&session.state.db, rows, resolved);
    let per_request = chunk_rows(
        session,
        u32::try_from(resolved.columns.len()).unwrap_or(u32::MAX),
    );
    loop {
        check_cancel(control)?;
        let page = reader.next(per_request).await?;
        if page.is_empty() {
            break;
        }
        let values: Vec<Json> = page.iter().map(|r| row_cells(r)).collect();
        append_values(session, tab, values).await?;
        control.rows.fetch_add(page.len() as u64, Ordering::Relaxed);
        if (page.len() as u64) < per_request {
            break;
        }
    }
    Ok(())
}

/// The totals row: `SUBTOTAL` formulas (honouring filters) over the A1 range of the data rows,
/// entered as formulas, which Sheets computes (it keeps no cached results). They are the only
/// cells not written `RAW`, and hold nothing from the table.
async fn write_totals(
    session: &Session<'_>,
    tab: &Tab,
    block: &Block,
    resolved: &Resolved,
    rows: u32,
) -> Result<(), SheetError> {
    let first = block.first_data_row() + 1;
    let last = block.first_data_row() + rows;
    let label_at = resolved.styles.iter().position(|s| s.total.is_none());
    let cells: Vec<Json> = resolved
        .styles
        .iter()
        .enumerate()
        .map(|(i, style)| {
            let col = column_letters(block.start_col + i as u32);
            match style.total {
                Some(f) => Json::String(format!(
                    "=SUBTOTAL({},{col}{first}:{col}{last})",
                    subtotal(f)
                )),
                None if Some(i) == label_at => Json::String("Total".to_owned()),
                None => Json::String(String::new()),
            }
        })
        .collect();
    let range = a1(&tab.title, block.first_data_row() + rows, block.start_col);
    write_values(
        session,
        &tab.spreadsheet_id,
        vec![json!({"range": range, "values": [cells]})],
        true,
    )
    .await?;
    Ok(())
}

/// Writes changed rows in place: one `values:batchUpdate` with a range per row. `rows` are
/// (0-based index among the data rows, mapped cells).
pub async fn update_rows(
    session: &Session<'_>,
    tab: &Tab,
    resolved: &Resolved,
    rows: Vec<(u32, Vec<Value>)>,
) -> Result<(), GoogleError> {
    if rows.is_empty() {
        return Ok(());
    }
    let block = Block::of(resolved);
    let data: Vec<Json> = rows
        .iter()
        .map(|(index, cells)| {
            json!({"range": a1(&tab.title, block.first_data_row() + index, block.start_col), "values": [row_cells(cells)]})
        })
        .collect();
    write_values(session, &tab.spreadsheet_id, data, false).await
}
