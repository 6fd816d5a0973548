//! `/account`: a user takes all their data with them (one ZIP archive: conversations,
//! tables, templates and schemas as JSON, and every table as .xlsx), or deletes their account.

pub mod routes;

use std::io::Write;
use std::sync::Arc;

use garde::Validate;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::{self, Event};
use crate::auth::identity::ClientInfo;
use crate::db::jobs;
use crate::db::{conversations, schemas, tables as table_store, users};
use crate::error::{Error, OrNotFound};
use crate::exports::render::{self, Control, FileFormat, FileOptions, JsonShape, Source};
use crate::jobs::Kind;
use crate::state::AppState;
use sea_orm::TransactionTrait;

enum Entry {
    Bytes(String, Vec<u8>),
    File(String, tempfile::NamedTempFile),
}

fn json_entry(path: String, value: &Value) -> Entry {
    Entry::Bytes(path, serde_json::to_vec_pretty(value).unwrap_or_default())
}

/// Every live item of the user, page by page.
pub(crate) async fn all_pages<T, F, Fut>(mut page: F) -> Result<Vec<T>, Error>
where
    F: FnMut(Option<Uuid>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<T>, sea_orm::DbErr>>,
    T: HasId,
{
    let mut out = Vec::new();
    let mut before = None;
    loop {
        let rows = page(before).await?;
        if rows.is_empty() {
            return Ok(out);
        }
        before = rows.last().map(HasId::id);
        out.extend(rows);
    }
}

pub(crate) trait HasId {
    fn id(&self) -> Uuid;
}

macro_rules! has_id {
    ($($t:ty),*) => {$(impl HasId for $t { fn id(&self) -> Uuid { self.id } })*};
}
has_id!(
    conversations::Conversation,
    table_store::TableRecord,
    schemas::SchemaPreset,
    crate::db::templates::TemplateRecord
);

pub(crate) async fn start_archive(
    state: &AppState,
    owner: Uuid,
    client: &ClientInfo,
) -> Result<crate::db::jobs::JobRecord, Error> {
    let kind = Kind::AccountArchive.as_str();
    // One at a time: the user's quota lock orders two requests that arrive together.
    let turn = state.writes.turn().await?;
    let txn = state.db.begin().await?;
    crate::quotas::lock_user(&txn, owner).await?;
    if let Some(job) = jobs::active(&txn, owner, kind).await? {
        txn.commit().await?;
        // Others' writes need not wait for what follows.
        drop(turn);
        return Ok(job);
    }
    let (job, _) = jobs::enqueue(
        &txn,
        owner,
        jobs::NewJob {
            id: None,
            kind,
            payload: "{}",
            max_attempts: state.config.exports.max_attempts,
            progress_total: None,
            idempotency_key: None,
        },
    )
    .await?;
    txn.commit().await?;
    state.jobs_queued.notify_one();
    audit::record(
        &state.db,
        Some(client),
        Event::new("account.export_started", Some(owner)).target("job", job.id),
    )
    .await;
    Ok(job)
}

/// The archive's file name.
pub fn archive_name() -> String {
    format!("sheetgpt-{}.zip", chrono::Utc::now().format("%Y%m%d"))
}

/// Writes the archive of everything the user stored into a temporary file of this process;
/// returns it and the number of table rows written. Tables are read page by page; one with
/// more rows than `exports.archive_xlsx_max_rows` goes in as CSV instead of .xlsx, so no
/// table is too large for the archive. `control` counts the rows written (as JSON and as a
/// sheet, so twice each) and stops the work when cancelled.
pub async fn write_archive(
    state: &AppState,
    owner: Uuid,
    control: Arc<Control>,
) -> Result<(tempfile::NamedTempFile, u64), Error> {
    use std::sync::atomic::Ordering;
    let cancelled = || {
        control.cancelled.load(Ordering::Relaxed).then(|| {
            Error::conflict(
                crate::tables::service::JOB_STOPPED,
                "The archive was cancelled.",
            )
        })
    };
    let db = &state.db;
    let tmp_dir = state.scratch.path();
    let mut entries = Vec::new();
    let user = users::find_by_id(db, owner).await?.or_not_found("user")?;
    entries.push(json_entry(
        "account.json".into(),
        &json!({"id": user.id, "email": user.email, "role": user.role.as_str(), "created_at": user.created_at}),
    ));

    let convs = all_pages(|before| conversations::list(db, owner, before, 200)).await?;
    for c in &convs {
        let mut messages = Vec::new();
        let mut after = None;
        loop {
            let page = conversations::list_messages(db, c.id, after, 500).await?;
            if page.is_empty() {
                break;
            }
            after = page.last().map(|m| m.id);
            messages.extend(page.into_iter().map(|m| {
                json!({"id": m.id, "role": m.role, "content": m.content, "status": m.status,
                       "model": m.model, "prompt_tokens": m.prompt_tokens,
                       "completion_tokens": m.completion_tokens, "cost_micros": m.cost_micros,
                       "table_id": m.table_id, "created_at": m.created_at})
            }));
        }
        entries.push(json_entry(
            format!("conversations/{}.json", c.id),
            &json!({"id": c.id, "title": c.title, "model": c.model, "system_prompt": c.system_prompt,
                    "created_at": c.created_at, "messages": messages}),
        ));
    }

    let tables = all_pages(|before| table_store::list(db, owner, before, 200, false)).await?;
    let total: u64 = tables
        .iter()
        .map(|t| u64::try_from(t.row_count).unwrap_or(0) * 2)
        .sum();
    control.total.store(total, Ordering::Relaxed);
    let mut rows_written = 0u64;
    for t in &tables {
        if let Some(err) = cancelled() {
            return Err(err);
        }
        let Some(record) = table_store::version(db, t.id, t.current_version).await? else {
            continue;
        };
        let schema = table_store::parse_schema(&record)?;
        // A table longer than a sheet goes in as CSV.
        let sheet = if u64::try_from(record.row_count).unwrap_or(u64::MAX)
            > state.config.exports.archive_xlsx_max_rows
        {
            (FileFormat::Csv, "csv")
        } else {
            (FileFormat::Xlsx, "xlsx")
        };
        for (format, ext) in [(FileFormat::Json, "json"), sheet] {
            let source = Source {
                table_id: t.id,
                table_name: t.name.clone(),
                version: t.current_version,
                current: true,
                schema: schema.clone(),
            };
            let options = FileOptions {
                format,
                bom: false,
                layout: JsonShape::Records,
            };
            let resolved = sheetgpt_core::template::Resolved::identity(&schema.columns);
            let (file, rows) = render::render(
                db,
                tmp_dir,
                source,
                resolved,
                &options,
                &state.config.exports,
                Arc::clone(&control),
            )
            .await
            .map_err(|e| match e {
                render::RenderError::Cancelled => cancelled().unwrap_or_else(|| {
                    Error::Internal(anyhow::anyhow!("account export: cancelled"))
                }),
                e => Error::Internal(anyhow::anyhow!("account export: {e}")),
            })?;
            if format != FileFormat::Json {
                rows_written += rows;
            }
            entries.push(Entry::File(format!("tables/{}.{ext}", t.id), file));
        }
        entries.push(json_entry(
            format!("tables/{}.meta.json", t.id),
            &json!({"id": t.id, "name": t.name, "version": t.current_version, "rows": t.row_count,
                    "sheet": format!("tables/{}.{}", t.id, sheet.1),
                    "columns": schema.columns, "created_at": t.created_at}),
        ));
    }

    let presets = all_pages(|before| schemas::list(db, owner, before, 200)).await?;
    let presets: Vec<Value> = presets
        .iter()
        .map(|p| json!({"id": p.id, "name": p.name, "columns": serde_json::from_str::<Value>(&p.columns).unwrap_or_default()}))
        .collect();
    entries.push(json_entry("schemas.json".into(), &Value::Array(presets)));
    let templates = all_pages(|before| crate::db::templates::list(db, owner, before, 200)).await?;
    let templates: Vec<Value> = templates
        .iter()
        .filter(|t| t.owner_id == owner)
        .map(|t| {
            json!({"id": t.id, "name": t.name, "description": t.description,
                        "template": serde_json::from_str::<Value>(&t.body).unwrap_or_default()})
        })
        .collect();
    entries.push(json_entry(
        "templates.json".into(),
        &Value::Array(templates),
    ));
    entries.push(json_entry(
        "usage.json".into(),
        &serde_json::to_value(
            crate::chat::usage::usage_report(state.quotas(), owner, Some(366)).await?,
        )
        .unwrap_or_default(),
    ));

    if let Some(err) = cancelled() {
        return Err(err);
    }
    let archive = state
        .scratch
        .file(".export-account-")
        .map_err(|e| Error::Internal(e.into()))?;
    let file = archive.reopen().map_err(|e| Error::Internal(e.into()))?;
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        for entry in entries {
            match entry {
                Entry::Bytes(path, bytes) => {
                    zip.start_file(path, options)?;
                    zip.write_all(&bytes)?;
                }
                Entry::File(path, tmp) => {
                    zip.start_file(path, options)?;
                    std::io::copy(&mut tmp.reopen()?, &mut zip)?;
                }
            }
        }
        zip.finish()?.flush()?;
        Ok(())
    })
    .await
    .map_err(|e| Error::Internal(e.into()))?
    .map_err(Error::Internal)?;
    Ok((archive, rows_written))
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteAccount {
    /// Your password, to confirm.
    #[schema(min_length = 1, max_length = 1024)]
    #[garde(length(chars, min = 1, max = 1024))]
    pub password: String,
}

/// The account archive, written to a file kept like an export's.
pub struct ArchiveJob;

impl crate::jobs::worker::Job for ArchiveJob {
    const KIND: crate::db::jobs::Kind = crate::db::jobs::Kind::AccountArchive;
    type Payload = serde::de::IgnoredAny;
    const UNREADABLE: &'static str = "The archive's settings could not be read.";

    async fn run(
        attempt: &crate::jobs::worker::Attempt<'_>,
        _: serde::de::IgnoredAny,
    ) -> crate::jobs::worker::Outcome {
        use crate::exports::worker::ARTIFACT_DIR;
        use crate::jobs::worker::{Finished, Held, Outcome};
        let (state, job) = (attempt.state, attempt.job);
        let written = write_archive(state, job.owner_id, Arc::clone(&attempt.control)).await;
        // The file is kept only while the job is still this worker's.
        let (file, rows) = match (written, attempt.held().await) {
            (_, Held::Lost) => return Outcome::Lost,
            (_, Held::Stopping) => return Outcome::Released,
            (Ok(done), Held::Yes) => done,
            (Err(err), Held::Yes) => return crate::jobs::worker::failed(job, &err),
        };
        let data_dir = &state.config.data_dir;
        let relative = std::path::PathBuf::from(ARTIFACT_DIR).join(format!("{}.zip", job.id));
        let persisted = crate::secrets::ensure_data_dir(&data_dir.join(ARTIFACT_DIR))
            .map_err(std::io::Error::other)
            .and_then(|()| file.persist(data_dir.join(&relative)).map_err(|e| e.error));
        let bytes = match persisted.and_then(|f| f.metadata()) {
            Ok(m) => m.len(),
            Err(err) => {
                tracing::warn!(job.id = %job.id, error = %err, "could not store the archive");
                return Outcome::Failed {
                    message: "The archive could not be stored (storage error).".to_owned(),
                    retryable: true,
                };
            }
        };
        let result = crate::exports::jobs::ExportResult {
            rows,
            bytes,
            file_name: archive_name(),
            artifact: Some(relative.to_string_lossy().into_owned()),
            sheet: None,
        };
        Outcome::Succeeded(Finished::of(rows, result.artifact.clone(), &result))
    }
}
