//! The export job (a file, or a Google spreadsheet), and the sweeper that deletes export
//! files after their retention time. The workers that run jobs are `jobs::worker`.

use std::path::PathBuf;
use std::sync::Arc;

use super::jobs::{Destination, ExportPayload, ExportResult};
use super::render::{self, RenderError, Source};
use crate::db::jobs as store;
use crate::db::tables as table_store;
use crate::google::client::{Credential, Session};
use crate::google::{links, sheets};
use crate::jobs::worker::{Attempt, Finished, Held, Job, Outcome};
use crate::state::AppState;

/// Directory (under the data dir) of finished export files.
pub const ARTIFACT_DIR: &str = "exports";

/// An export of a table version through a template, to a file or to Google Sheets.
pub struct ExportJob;

impl Job for ExportJob {
    const KIND: crate::db::jobs::Kind = crate::db::jobs::Kind::Export;
    type Payload = ExportPayload;
    const UNREADABLE: &'static str = "The export's settings could not be read.";

    async fn run(attempt: &Attempt<'_>, payload: ExportPayload) -> Outcome {
        export(attempt, payload).await
    }
}

fn export_result(result: ExportResult) -> Finished {
    Finished::of(result.rows, result.artifact.clone(), &result)
}

async fn export(attempt: &Attempt<'_>, payload: ExportPayload) -> Outcome {
    let (state, job, worker) = (attempt.state, attempt.job, attempt.worker);
    let permanent = |message: &str| Outcome::Failed {
        message: message.to_owned(),
        retryable: false,
    };
    let db = &state.db;
    let table = match table_store::find(db, job.owner_id, payload.table_id).await {
        Ok(Some(t)) => t,
        Ok(None) => return permanent("The table was deleted."),
        Err(err) => return retry_db(&err),
    };
    let record = match table_store::version(db, table.id, payload.version).await {
        Ok(Some(r)) => r,
        Ok(None) => return permanent("The table version no longer exists."),
        Err(err) => return retry_db(&err),
    };
    let schema = match table_store::parse_schema(&record) {
        Ok(s) => s,
        Err(err) => {
            tracing::error!(job.id = %job.id, error = %err, "stored schema does not parse");
            return permanent("The table could not be read.");
        }
    };
    let resolved = match payload.template.as_ref() {
        None => sheetgpt_core::template::Resolved::identity(&schema.columns),
        Some(t) => match t.resolve(&schema.columns) {
            Ok(r) => r,
            Err(missing) => return permanent(&missing.to_string()),
        },
    };

    let control = &attempt.control;
    if let Destination::GoogleSheets(dest) = &payload.destination {
        let credential = match payload.google_auth.as_deref() {
            Some("service_account") => Credential::ServiceAccount,
            _ => Credential::User(job.owner_id),
        };
        // Checked again now: the admin's list may have changed since the job was queued.
        if credential == Credential::ServiceAccount
            && let Some(id) = dest
                .spreadsheet
                .as_deref()
                .and_then(sheetgpt_core::export::sheets::spreadsheet_id)
        {
            match crate::db::users::find_by_id(&state.db, job.owner_id).await {
                Ok(Some(owner))
                    if crate::google::service_account_may_write(
                        &state.config.google,
                        &id,
                        &owner.email,
                    ) => {}
                Ok(_) => return permanent(&crate::google::not_allowed_message(&id)),
                Err(err) => return retry_db(&err),
            }
        }
        let session = Session::new(state, credential);
        let rows = sheets::Rows {
            table_id: table.id,
            version: payload.version,
            current: payload.version == table.current_version,
            schema,
            row_count: u64::try_from(record.row_count).unwrap_or(0),
        };
        // A spreadsheet or tab an earlier attempt created (and was stopped in) is written
        // into again, not created twice.
        let resume = job
            .checkpoint
            .as_deref()
            .and_then(|c| serde_json::from_str::<sheets::Tab>(c).ok());
        let created = async |tab: &sheets::Tab| {
            let checkpoint = serde_json::to_string(tab).unwrap_or_default();
            // In turn with the other writes (SQLite), so that a busy server does not starve it.
            let _turn = state.writes.turn().await?;
            match store::save_checkpoint(&state.db, job.id, worker, &checkpoint).await {
                Ok(true) => Ok(()),
                // Another worker holds the job now (or it was cancelled): stop here.
                Ok(false) => Err(sheets::SheetError::Cancelled),
                Err(err) => Err(sheets::SheetError::Db(err)),
            }
        };
        let written = sheets::write(
            &session,
            dest,
            &table.name,
            &rows,
            &resolved,
            control,
            sheets::Created {
                earlier: resume,
                record: created,
            },
        )
        .await;
        // Sharing is recorded and the tab linked only while the job is still this worker's.
        return match (written, attempt.held().await) {
            (_, Held::Lost) => Outcome::Lost,
            (_, Held::Stopping) => Outcome::Released,
            (Ok(tab), Held::Yes) => {
                if !dest.share_with.is_empty() {
                    let shared: Vec<_> = dest
                        .share_with
                        .iter()
                        .map(|s| serde_json::json!({"email": s.email, "role": s.role}))
                        .collect();
                    crate::audit::record(
                        &state.db,
                        None,
                        crate::audit::Event::new("sheet.shared", Some(job.owner_id))
                            .target("spreadsheet", &tab.spreadsheet_id)
                            .details(serde_json::json!({"export": job.id, "with": shared})),
                    )
                    .await;
                }
                let link_id = if dest.link {
                    match links::create(
                        state,
                        job.owner_id,
                        table.id,
                        &tab,
                        credential,
                        payload.template.as_ref(),
                        payload.version,
                    )
                    .await
                    {
                        Ok(link) => Some(link.id),
                        Err(err) => return retry_db(&err),
                    }
                } else {
                    None
                };
                Outcome::Succeeded(export_result(ExportResult {
                    rows: rows.row_count,
                    bytes: 0,
                    file_name: String::new(),
                    artifact: None,
                    sheet: Some(sheets::SheetResult {
                        spreadsheet_url: sheets::spreadsheet_url(&tab.spreadsheet_id),
                        spreadsheet_id: tab.spreadsheet_id,
                        sheet_id: tab.sheet_id,
                        sheet_title: tab.title,
                        api_calls: session.calls(),
                        link_id,
                    }),
                }))
            }
            (Err(err), Held::Yes) => {
                if !matches!(err, sheets::SheetError::Cancelled) {
                    tracing::warn!(job.id = %job.id, error = %err, "Google Sheets export attempt failed");
                }
                Outcome::Failed {
                    message: err.public_message(),
                    retryable: err.is_retryable(),
                }
            }
        };
    }
    let source = Source {
        table_id: table.id,
        table_name: table.name.clone(),
        version: payload.version,
        current: payload.version == table.current_version,
        schema,
    };
    let data_dir = state.config.data_dir.clone();
    let rendered = render::render(
        db,
        state.scratch.path(),
        source,
        resolved,
        &payload.options,
        &state.config.exports,
        Arc::clone(control),
    )
    .await;
    // The file is kept only while the job is still this worker's (a cancelled or lost job
    // leaves none).
    match (rendered, attempt.held().await) {
        (_, Held::Lost) => Outcome::Lost,
        (_, Held::Stopping) => Outcome::Released,
        (Ok((file, rows)), Held::Yes) => {
            let format = payload.options.format;
            let name = format!("{}.{}", job.id, format.extension());
            let relative = PathBuf::from(ARTIFACT_DIR).join(&name);
            let target = data_dir.join(&relative);
            let persisted = crate::secrets::ensure_data_dir(&data_dir.join(ARTIFACT_DIR))
                .map_err(std::io::Error::other)
                .and_then(|()| file.persist(&target).map_err(|e| e.error));
            let bytes = match persisted.and_then(|f| f.metadata()) {
                Ok(m) => m.len(),
                Err(err) => {
                    tracing::warn!(job.id = %job.id, error = %err, "could not store the export file");
                    return Outcome::Failed {
                        message: "The file could not be stored (storage error).".to_owned(),
                        retryable: true,
                    };
                }
            };
            Outcome::Succeeded(export_result(ExportResult {
                rows,
                bytes,
                file_name: render::file_name(&table.name, payload.version, format),
                artifact: Some(relative.to_string_lossy().into_owned()),
                sheet: None,
            }))
        }
        (Err(err), Held::Yes) => {
            if !matches!(err, RenderError::Cancelled) {
                tracing::warn!(job.id = %job.id, error = %err, "export attempt failed");
            }
            Outcome::Failed {
                message: err.public_message(),
                retryable: err.is_retryable(),
            }
        }
    }
}

pub(crate) fn retry_db(err: &sea_orm::DbErr) -> Outcome {
    tracing::warn!(error = %err, "export attempt failed on the database");
    Outcome::Failed {
        message: "The table could not be read (database error).".to_owned(),
        retryable: true,
    }
}

/// Deletes export files past their retention time, and temporary files left by a process
/// that was killed while writing. Returns the number of export files deleted.
pub async fn sweep(state: &AppState) -> anyhow::Result<usize> {
    let mut deleted = 0;
    loop {
        let expired = store::expired(&state.db, 100).await?;
        if expired.is_empty() {
            break;
        }
        for job in expired {
            let mut result: Option<ExportResult> = job
                .result
                .as_deref()
                .and_then(|r| serde_json::from_str(r).ok());
            if let Some(artifact) = result.as_mut().and_then(|r| r.artifact.take()) {
                match std::fs::remove_file(state.config.data_dir.join(&artifact)) {
                    Ok(()) => deleted += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::warn!(job.id = %job.id, error = %e, "could not delete an export file")
                    }
                }
            }
            let text = result.map(|r| serde_json::to_string(&r).unwrap_or_default());
            store::set_expired(&state.db, job.id, text.as_deref()).await?;
        }
    }
    state.scratch.sweep();
    if deleted > 0 {
        tracing::info!(files = deleted, "deleted expired export files");
    }
    Ok(deleted)
}
