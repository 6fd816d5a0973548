//! `/account`: a user takes all their data with them (one ZIP archive: conversations,
//! tables, templates and schemas as JSON, and every table as .xlsx), or deletes their account.

use std::io::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use garde::Validate;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::audit::{self, Event};
use crate::auth::extract::{AuthUser, ClientInfo, SessionUser};
use crate::db::{conversations, schemas, tables as table_store, users};
use crate::exports::render::{self, Control, FileFormat, FileOptions, JsonShape, Source};
use crate::http::error::ApiError;
use crate::http::extract::ValidatedJson;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(export_account))
        .routes(routes!(delete_account))
}

enum Entry {
    Bytes(String, Vec<u8>),
    File(String, tempfile::NamedTempFile),
}

fn json_entry(path: String, value: &Value) -> Entry {
    Entry::Bytes(path, serde_json::to_vec_pretty(value).unwrap_or_default())
}

/// Every live item of the user, page by page.
async fn all_pages<T, F, Fut>(mut page: F) -> Result<Vec<T>, ApiError>
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

trait HasId {
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

/// Download everything you have stored as one ZIP archive.
#[utoipa::path(get, path = "/account/export", tag = "account",
    responses((status = 200, description = "A ZIP archive", content_type = "application/zip", body = Vec<u8>)))]
async fn export_account(
    State(state): State<AppState>,
    auth: AuthUser,
    client: ClientInfo,
) -> Result<Response, ApiError> {
    let owner = auth.user.id;
    let db = &state.db;
    let tmp_dir = state.config.data_dir.join("tmp");
    crate::secrets::ensure_data_dir(&tmp_dir)?;
    let mut entries = Vec::new();
    let user = users::find_by_id(db, owner)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
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
    for t in &tables {
        let Some(record) = table_store::version(db, t.id, t.current_version).await? else {
            continue;
        };
        let schema = table_store::parse_schema(&record)?;
        for (format, ext) in [(FileFormat::Json, "json"), (FileFormat::Xlsx, "xlsx")] {
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
            let (file, _) = render::render(
                db,
                &tmp_dir,
                source,
                resolved,
                &options,
                state.config.exports.page_rows,
                Arc::new(Control::default()),
            )
            .await
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("account export: {e}")))?;
            entries.push(Entry::File(format!("tables/{}.{ext}", t.id), file));
        }
        entries.push(json_entry(
            format!("tables/{}.meta.json", t.id),
            &json!({"id": t.id, "name": t.name, "version": t.current_version, "rows": t.row_count,
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
        &serde_json::to_value(crate::chat::routes::usage_report(&state, owner, Some(366)).await?)
            .unwrap_or_default(),
    ));

    let archive = tempfile::Builder::new()
        .prefix(".export-account-")
        .tempfile_in(&tmp_dir)
        .map_err(|e| ApiError::Internal(e.into()))?;
    let file = archive.reopen().map_err(|e| ApiError::Internal(e.into()))?;
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
    .map_err(|e| ApiError::Internal(e.into()))?
    .map_err(ApiError::Internal)?;
    audit::record(
        &state,
        Some(&client),
        Event::new("account.exported", Some(owner)).target("user", owner),
    )
    .await;
    let file = archive.reopen().map_err(|e| ApiError::Internal(e.into()))?;
    drop(archive);
    let name = format!("sheetgpt-{}.zip", chrono::Utc::now().format("%Y%m%d"));
    Ok(crate::exports::file_response(
        file,
        "application/zip",
        &name,
    ))
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteAccount {
    /// Your password, to confirm.
    #[schema(min_length = 1, max_length = 1024)]
    #[garde(length(chars, min = 1, max = 1024))]
    pub password: String,
}

/// Delete your account and everything in it, for good. Needs your password.
#[utoipa::path(delete, path = "/account", tag = "account", request_body = DeleteAccount,
    responses((status = 204, description = "Deleted")))]
async fn delete_account(
    State(state): State<AppState>,
    auth: SessionUser,
    client: ClientInfo,
    ValidatedJson(body): ValidatedJson<DeleteAccount>,
) -> Result<StatusCode, ApiError> {
    let user = users::find_by_id(&state.db, auth.user.id)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    crate::auth::service::confirm_password(
        &state,
        &user,
        &body.password,
        &client,
        ("password", "is not your password"),
    )
    .await?;
    // Files first: the jobs that name them go with the account.
    let jobs = crate::db::jobs::list(
        &state.db,
        user.id,
        crate::exports::jobs::KIND,
        None,
        None,
        10_000,
    )
    .await?;
    for job in jobs {
        let artifact = job
            .result
            .as_deref()
            .and_then(|r| serde_json::from_str::<crate::exports::jobs::ExportResult>(r).ok())
            .and_then(|r| r.artifact);
        if let Some(artifact) = artifact {
            let _ = std::fs::remove_file(state.config.data_dir.join(artifact));
        }
    }
    let _ = crate::google::oauth::disconnect(&state, user.id).await;
    users::delete_for_good(&state.db, user.id).await?;
    state.sessions.forget_user(user.id);
    audit::record(
        &state,
        Some(&client),
        Event::new("account.deleted", Some(user.id)).target("user", user.id),
    )
    .await;
    tracing::info!(user.id = %user.id, "account deleted");
    Ok(StatusCode::NO_CONTENT)
}
