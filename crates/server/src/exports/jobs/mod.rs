//! `/exports`: export jobs. Creating one answers 202 at once; a worker (in this process or
//! another sharing the database) writes the file, reporting progress as it goes; the file is
//! then downloadable until its retention time.

pub mod routes;

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use garde::Validate;
use serde::{Deserialize, Serialize};
use sheetgpt_core::template::Template;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::render::{FileFormat, FileOptions, JsonShape};
use crate::auth::identity::AuthUser;
use crate::db::jobs::{self as store, JobRecord};
use crate::error::{Error, FieldError, OrNotFound};
use crate::google::client::Credential;
use crate::google::sheets::{SheetMode, SheetResult, SheetsDestination};
use crate::state::AppState;

pub const KIND: &str = crate::db::jobs::Kind::Export.as_str();

/// Where the export goes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Destination {
    /// A file kept for download at `GET /exports/{id}/download`.
    #[default]
    Download,
    /// A Google spreadsheet (connect Google first, or use the server's service account).
    GoogleSheets(SheetsDestination),
}

/// What a job does, fixed when it is created: the version and a copy of the template, so that
/// every attempt writes the same file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExportPayload {
    pub table_id: Uuid,
    pub version: i32,
    pub options: FileOptions,
    pub template_id: Option<Uuid>,
    pub template: Option<Template>,
    pub destination: Destination,
    /// Google access used (`oauth` or `service_account`), for Google destinations.
    #[serde(default)]
    pub google_auth: Option<String>,
}

/// What a finished export produced.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExportResult {
    pub rows: u64,
    pub bytes: u64,
    pub file_name: String,
    /// Path of the file under the data directory; None once deleted after retention.
    pub artifact: Option<String>,
    /// Where a Google Sheets export wrote.
    #[serde(default)]
    pub sheet: Option<SheetResult>,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    #[garde(skip)]
    pub table_id: Uuid,
    /// Version to export (default: the current one when the job is created).
    #[schema(minimum = 1)]
    #[garde(range(min = 1))]
    pub version: Option<i32>,
    /// File format (default xlsx; ignored for Google Sheets).
    #[serde(default = "default_format")]
    #[garde(skip)]
    pub format: FileFormat,
    /// A template (own or shared) to apply.
    #[garde(skip)]
    pub template_id: Option<Uuid>,
    #[serde(default)]
    #[garde(skip)]
    pub destination: Destination,
    /// CSV: start with a UTF-8 byte order mark, for Excel.
    #[serde(default)]
    #[garde(skip)]
    pub bom: bool,
    /// JSON: `records` (default) or `columns`.
    #[serde(default)]
    #[garde(skip)]
    pub layout: JsonShape,
}

fn default_format() -> FileFormat {
    FileFormat::Xlsx
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Progress {
    /// Rows written so far.
    pub done: i64,
    /// Rows to write.
    pub total: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExportFile {
    pub name: String,
    pub rows: u64,
    pub bytes: u64,
    pub content_type: String,
    /// Where to download it (relative to the API's address); null once deleted.
    pub download_url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExportResponse {
    pub id: Uuid,
    pub table_id: Uuid,
    pub version: i32,
    pub format: FileFormat,
    pub template_id: Option<Uuid>,
    pub destination: Destination,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    pub progress: Progress,
    /// Attempts started so far.
    pub attempts: i32,
    pub max_attempts: i32,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// The file, once the export succeeded.
    pub file: Option<ExportFile>,
    /// The spreadsheet, once a Google Sheets export succeeded.
    pub sheet: Option<SheetResult>,
    /// When the file will be deleted.
    pub expires_at: Option<DateTime<Utc>>,
    /// When a queued job will be tried again (after a failed attempt).
    pub run_after: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

pub fn payload(job: &JobRecord) -> Result<ExportPayload, Error> {
    serde_json::from_str(&job.payload)
        .map_err(|e| Error::Internal(anyhow::anyhow!("export job {} payload: {e}", job.id)))
}

pub(crate) fn result(job: &JobRecord) -> Option<ExportResult> {
    job.result
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok())
}

pub(crate) fn response(job: JobRecord) -> Result<ExportResponse, Error> {
    let payload = payload(&job)?;
    let result = result(&job);
    let sheet = result.as_ref().and_then(|r| r.sheet.clone());
    let file = result.filter(|r| r.sheet.is_none()).map(|r| ExportFile {
        download_url: r
            .artifact
            .as_ref()
            .map(|_| format!("/api/v1/exports/{}/download", job.id)),
        name: r.file_name,
        rows: r.rows,
        bytes: r.bytes,
        content_type: payload.options.format.content_type().to_owned(),
    });
    Ok(ExportResponse {
        id: job.id,
        table_id: payload.table_id,
        version: payload.version,
        format: payload.options.format,
        template_id: payload.template_id,
        destination: payload.destination,
        status: job.status,
        progress: Progress {
            done: job.progress_done,
            total: job.progress_total,
        },
        attempts: job.attempts,
        max_attempts: job.max_attempts,
        error: job.error,
        file,
        sheet,
        expires_at: job.expires_at,
        run_after: job.run_after,
        created_at: job.created_at,
        started_at: job.started_at,
        finished_at: job.finished_at,
    })
}

pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Error> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 200)
        .ok_or_else(|| {
            Error::bad_request(
                "invalid-idempotency-key",
                "The Idempotency-Key header must be 1 to 200 visible ASCII characters.",
            )
        })?;
    Ok(Some(key.to_owned()))
}

/// Checks a Google Sheets destination and picks the access to use: the user's connected
/// account, else the server's service account.
pub(crate) async fn check_google(
    state: &AppState,
    auth: &AuthUser,
    dest: &SheetsDestination,
) -> Result<Credential, Error> {
    let owner = auth.user.id;
    dest.validate().map_err(|report| {
        Error::Validation(
            report
                .iter()
                .map(|(path, e)| FieldError::new(format!("destination.{path}"), e.to_string()))
                .collect(),
        )
    })?;
    if !state.google.enabled() {
        return Err(Error::conflict(
            "google-not-configured",
            "This server is not set up for Google Sheets.",
        ));
    }
    let account = crate::google::oauth::account(&state.db, owner).await?;
    let credential = match account {
        Some(a) if a.status == crate::google::oauth::CONNECTED => Credential::User(owner),
        Some(_) => {
            return Err(Error::conflict(
                "google-reconnect-required",
                "Google access was revoked or has expired; connect your Google account again.",
            ));
        }
        None if state.google.service_account.is_some() => Credential::ServiceAccount,
        None => {
            return Err(Error::conflict(
                "google-not-connected",
                "Connect your Google account first (POST /api/v1/integrations/google/connect).",
            ));
        }
    };
    let needs_spreadsheet = dest.mode != SheetMode::NewSpreadsheet;
    if needs_spreadsheet
        && dest
            .spreadsheet
            .as_deref()
            .and_then(sheetgpt_core::export::sheets::spreadsheet_id)
            .is_none()
    {
        return Err(Error::field(
            "destination.spreadsheet",
            "give the id or URL of the spreadsheet for this mode",
        ));
    }
    if dest.mode == SheetMode::NewSpreadsheet && credential == Credential::ServiceAccount {
        return Err(Error::field(
            "destination.mode",
            "a service account cannot create spreadsheets in your Drive; share a spreadsheet with it and use new_tab, replace_tab or append",
        ));
    }
    if credential == Credential::ServiceAccount
        && let Some(id) = dest
            .spreadsheet
            .as_deref()
            .and_then(sheetgpt_core::export::sheets::spreadsheet_id)
    {
        crate::google::check_service_account_spreadsheet(
            &state.config.google,
            &id,
            &auth.user.email,
        )?;
    }
    if dest.link && dest.mode == SheetMode::Append {
        return Err(Error::field(
            "destination.link",
            "an appended range cannot follow the table; link a new or replaced tab",
        ));
    }
    Ok(credential)
}

pub(crate) fn created_response(job: JobRecord, created: bool) -> Result<Response, Error> {
    let location = format!("/api/v1/exports/{}", job.id);
    let status = if created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    let mut res = (status, Json(response(job)?)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportListQuery {
    /// How many items (1 to 200, default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    /// `next_cursor` from the previous page.
    #[param(
        pattern = "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})?$"
    )]
    pub cursor: Option<String>,
    /// Only jobs with this status.
    #[param(pattern = "^(queued|running|succeeded|failed|cancelled)?$")]
    pub status: Option<String>,
}

pub(crate) async fn find(state: &AppState, owner: Uuid, id: Uuid) -> Result<JobRecord, Error> {
    store::find(&state.db, owner, KIND, id)
        .await?
        .or_not_found("export")
}
