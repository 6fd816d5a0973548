//! Links: a table whose export asked for `link: true` keeps its Google tab in step. Each new
//! version queues a `sheet_sync` job; the job writes only the changed rows when the change is
//! small (same columns, same rows in the same order), and rewrites the tab otherwise.

pub mod routes;

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sheetgpt_core::template::{Resolved, Template};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::client::{Credential, Session};
use super::sheets::{self, Rows, SheetError, Tab};
use crate::db::entity::sheet_link;
use crate::db::jobs::JobRecord;
use crate::db::owned;
use crate::db::sheet_links as link_store;
use crate::db::tables as table_store;
use crate::error::{Error, OrNotFound};
use crate::exports::render::Control;
use crate::state::AppState;

pub const SYNC_KIND: &str = crate::db::jobs::Kind::SheetSync.as_str();

pub use crate::db::sheet_links::{ACTIVE, ERROR, LinkRecord, SyncPayload};

/// What a sync did.
#[derive(Debug, Serialize, Deserialize)]
pub struct SyncResult {
    pub from_version: i32,
    pub to_version: i32,
    /// `none` (already in step), `rows` (changed rows written) or `rewrite`.
    pub method: String,
    pub rows_written: u64,
    pub api_calls: u32,
}

pub async fn create(
    state: &AppState,
    owner_id: Uuid,
    table_id: Uuid,
    tab: &Tab,
    credential: Credential,
    template: Option<&Template>,
    version: i32,
) -> Result<LinkRecord, sea_orm::DbErr> {
    link_store::link(
        &state.db,
        link_store::NewLink {
            owner_id,
            table_id,
            spreadsheet_id: &tab.spreadsheet_id,
            sheet_id: tab.sheet_id,
            sheet_title: &tab.title,
            auth: credential.as_str(),
            template: template.and_then(|t| serde_json::to_string(t).ok()),
            version,
        },
    )
    .await
}

pub(crate) async fn enqueue(
    state: &AppState,
    link: &LinkRecord,
) -> Result<JobRecord, sea_orm::DbErr> {
    let job = link_store::queue_sync(&state.db, link, state.config.exports.max_attempts).await?;
    state.jobs_queued.notify_one();
    Ok(job)
}

async fn record(
    state: &AppState,
    id: Uuid,
    version: Option<(i32, &str)>,
    error: Option<&str>,
) -> Result<(), sea_orm::DbErr> {
    link_store::record_sync(&state.db, id, version, error).await
}

/// Runs a sync job: brings the linked tab to the table's current version.
pub async fn run_sync(
    state: &AppState,
    job: &JobRecord,
    control: &Arc<Control>,
) -> Result<SyncResult, SheetError> {
    let payload: SyncPayload = serde_json::from_str(&job.payload)
        .map_err(|_| SheetError::Invalid("The sync's settings could not be read.".to_owned()))?;
    let Some(link) =
        owned::find::<sheet_link::Entity>(&state.db, job.owner_id, payload.link_id).await?
    else {
        return Err(SheetError::Invalid("The link was removed.".to_owned()));
    };
    let result = sync(state, &link, control).await;
    match &result {
        Ok(done) if done.method != "none" => {
            tracing::info!(link.id = %link.id, version = done.to_version, method = %done.method, calls = done.api_calls, "sheet synced");
        }
        Ok(_) => {}
        Err(err) if !err.is_retryable() && !matches!(err, SheetError::Cancelled) => {
            record(state, link.id, None, Some(&err.public_message())).await?;
        }
        Err(_) => {}
    }
    result
}

async fn sync(
    state: &AppState,
    link: &LinkRecord,
    control: &Arc<Control>,
) -> Result<SyncResult, SheetError> {
    let owner = link.owner_id;
    let table = table_store::find(&state.db, owner, link.table_id)
        .await?
        .ok_or_else(|| SheetError::Invalid("The linked table was deleted.".to_owned()))?;
    let from = link.last_synced_version;
    let to = table.current_version;
    let mut result = SyncResult {
        from_version: from,
        to_version: to,
        method: "none".to_owned(),
        rows_written: 0,
        api_calls: 0,
    };
    if from >= to {
        return Ok(result);
    }
    let record_to = table_store::version(&state.db, table.id, to)
        .await?
        .ok_or_else(|| SheetError::Invalid("The table version no longer exists.".to_owned()))?;
    let schema = table_store::parse_schema(&record_to)?;
    let template: Option<Template> = link
        .template
        .as_deref()
        .and_then(|t| serde_json::from_str(t).ok());
    let resolved = match &template {
        None => Resolved::identity(&schema.columns),
        Some(t) => t
            .resolve(&schema.columns)
            .map_err(|missing| SheetError::Invalid(missing.to_string()))?,
    };
    let credential = if link.auth == Credential::ServiceAccount.as_str() {
        let email = crate::db::users::find_by_id(&state.db, owner)
            .await?
            .map(|u| u.email)
            .unwrap_or_default();
        if !super::service_account_may_write(&state.config.google, &link.spreadsheet_id, &email) {
            return Err(SheetError::Invalid(super::not_allowed_message(
                &link.spreadsheet_id,
            )));
        }
        Credential::ServiceAccount
    } else {
        Credential::User(owner)
    };
    let session = Session::new(state, credential);
    let tab = sheets::tabs(&session, &link.spreadsheet_id)
        .await?
        .into_iter()
        .find(|t| t.sheet_id == link.sheet_id)
        .ok_or_else(|| {
            SheetError::Invalid("The linked tab was deleted from the spreadsheet.".to_owned())
        })?;

    let diff = crate::tables::service::diff(state, owner, table.id, from, to)
        .await
        .map_err(|e| match e {
            Error::Internal(err) => SheetError::Db(sea_orm::DbErr::Custom(err.to_string())),
            other => SheetError::Invalid(other.to_string()),
        })?;
    let changed: BTreeSet<i64> = diff.cells_changed.iter().map(|c| c.row).collect();
    let small = diff.schema.is_empty()
        && diff.rows_added.is_empty()
        && diff.rows_removed.is_empty()
        && diff.rows_moved == 0
        && changed.len() <= state.config.google.sync_max_changed_rows as usize;
    if small {
        let ids: Vec<i64> = changed.into_iter().collect();
        let raw = table_store::rows_at(&state.db, table.id, to, true, Some(&ids)).await?;
        let mut rows = Vec::with_capacity(raw.len());
        for r in raw {
            let index = table_store::row_index(&state.db, table.id, r.position, r.id).await?;
            let row = r.into_row(&schema);
            let cells: Vec<_> = schema.columns.iter().map(|c| row.get(c).clone()).collect();
            rows.push((
                u32::try_from(index).unwrap_or(u32::MAX),
                resolved.map_row(&cells),
            ));
        }
        result.rows_written = rows.len() as u64;
        sheets::update_rows(&session, &tab, &resolved, rows).await?;
        result.method = "rows".to_owned();
    } else {
        let rows = Rows {
            table_id: table.id,
            version: to,
            current: true,
            schema,
            row_count: u64::try_from(record_to.row_count).unwrap_or(0),
        };
        sheets::rewrite(&session, &tab, &rows, &resolved, control, true).await?;
        result.rows_written = rows.row_count;
        result.method = "rewrite".to_owned();
    }
    result.api_calls = session.calls();
    record(state, link.id, Some((to, &tab.title)), None).await?;
    Ok(result)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LinkResponse {
    pub id: Uuid,
    pub table_id: Uuid,
    pub spreadsheet_id: String,
    pub spreadsheet_url: String,
    pub sheet_id: i64,
    pub sheet_title: String,
    /// `oauth` or `service_account`.
    pub auth: String,
    /// `active`, or `error` when the last sync failed for good (see `last_error`).
    pub status: String,
    pub last_synced_version: i32,
    pub last_synced_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

pub(crate) fn response(link: LinkRecord) -> LinkResponse {
    LinkResponse {
        spreadsheet_url: sheets::spreadsheet_url(&link.spreadsheet_id),
        id: link.id,
        table_id: link.table_id,
        spreadsheet_id: link.spreadsheet_id,
        sheet_id: link.sheet_id,
        sheet_title: link.sheet_title,
        auth: link.auth,
        status: link.status,
        last_synced_version: link.last_synced_version,
        last_synced_at: link.last_synced_at,
        last_error: link.last_error,
        created_at: link.created_at,
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LinkListQuery {
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    #[param(
        pattern = "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})?$"
    )]
    pub cursor: Option<String>,
    /// Only the links of this table.
    pub table_id: Option<Uuid>,
}

pub(crate) async fn find(state: &AppState, owner: Uuid, id: Uuid) -> Result<LinkRecord, Error> {
    owned::find::<sheet_link::Entity>(&state.db, owner, id)
        .await?
        .or_not_found("sheet link")
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SyncQueued {
    /// The sync job (`kind` sheet_sync).
    pub job_id: Uuid,
}

/// A sheet sync job: brings the linked tab to the table's current version.
pub struct SyncJob;

impl crate::jobs::worker::Job for SyncJob {
    const KIND: crate::db::jobs::Kind = crate::db::jobs::Kind::SheetSync;
    type Payload = serde::de::IgnoredAny;
    const UNREADABLE: &'static str = "The sync's settings could not be read.";

    fn total(_: &JobRecord) -> Option<i64> {
        Some(0)
    }

    async fn run(
        attempt: &crate::jobs::worker::Attempt<'_>,
        _: serde::de::IgnoredAny,
    ) -> crate::jobs::worker::Outcome {
        use crate::jobs::worker::{Finished, Outcome};
        match run_sync(attempt.state, attempt.job, &attempt.control).await {
            Ok(result) => Outcome::Succeeded(Finished::of(result.rows_written, None, &result)),
            Err(err) => Outcome::Failed {
                message: err.public_message(),
                retryable: err.is_retryable(),
            },
        }
    }
}
