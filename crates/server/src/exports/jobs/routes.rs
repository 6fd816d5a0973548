use super::{
    Destination, ExportListQuery, ExportPayload, ExportRequest, ExportResponse, KIND, check_google,
    created_response, find, idempotency_key, payload, response, result,
};
use crate::auth::identity::{AuthUser, ClientInfo};
use crate::db::jobs::{self as store, NewJob};
use crate::db::tables as table_store;
use crate::error::{Error, OrNotFound};
use crate::exports::render::{FileFormat, FileOptions};
use crate::exports::templates;
use crate::http::extract::{Path, Query, ValidatedJson};
use crate::http::pagination::{Page, PageQuery};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use sea_orm::TransactionTrait;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_export, list_exports))
        .routes(routes!(get_export))
        .routes(routes!(cancel_export))
        .routes(routes!(download_export))
}

/// Start an export. Answers 202 with the queued job; with an `Idempotency-Key` header that was
/// used before, answers 200 with the job created then.
#[utoipa::path(post, path = "/exports", tag = "exports", request_body = ExportRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries of this request create one job", pattern = "^[!-~]([ !-~]{0,198}[!-~])?$")),
    responses(
        (status = 202, description = "Queued", body = ExportResponse),
        (status = 200, description = "The job an earlier request with this Idempotency-Key created", body = ExportResponse),
    ))]
async fn create_export(
    State(state): State<AppState>,
    auth: AuthUser,
    client: ClientInfo,
    headers: HeaderMap,
    ValidatedJson(body): ValidatedJson<ExportRequest>,
) -> Result<Response, Error> {
    let key = idempotency_key(&headers)?;
    let owner = auth.user.id;
    if let Some(key) = &key
        && let Some(job) = store::by_idempotency_key(&state.db, owner, KIND, key).await?
    {
        return created_response(job, false);
    }
    let table = table_store::find(&state.db, owner, body.table_id)
        .await?
        .or_not_found("table")?;
    let version = body.version.unwrap_or(table.current_version);
    let record = table_store::version(&state.db, table.id, version)
        .await?
        .or_not_found("version")?;
    let schema = table_store::parse_schema(&record)?;
    let template = match body.template_id {
        Some(id) => Some(templates::load(&state, owner, id).await?),
        None => None,
    };
    // A template that does not fit the table is refused now, not in the job.
    templates::resolve(template.as_ref(), &schema.columns)?;
    if body.format == FileFormat::Xlsx && record.row_count > 1_048_575 {
        return Err(Error::PayloadTooLarge {
            detail: format!(
                "The table has {} rows; an Excel sheet holds at most 1,048,575. Export it as CSV.",
                record.row_count
            ),
        });
    }
    let google_auth = match &body.destination {
        Destination::Download => None,
        Destination::GoogleSheets(dest) => Some(check_google(&state, &auth, dest).await?),
    };
    let payload = ExportPayload {
        table_id: table.id,
        version,
        options: FileOptions {
            format: body.format,
            bom: body.bom,
            layout: body.layout,
        },
        template_id: body.template_id,
        template,
        destination: body.destination,
        google_auth: google_auth.map(|c| c.as_str().to_owned()),
    };
    let payload = serde_json::to_string(&payload).map_err(|e| Error::Internal(e.into()))?;
    // The quotas are counted and the job created in one transaction under the user's quota
    // lock, so that concurrent requests cannot each see room for one more.
    let turn = state.writes.turn().await?;
    let txn = state.db.begin().await?;
    crate::quotas::lock_user(&txn, owner).await?;
    if let Some(key) = &key
        && let Some(job) = store::by_idempotency_key(&txn, owner, KIND, key).await?
    {
        txn.commit().await?;
        // Others' writes need not wait for what follows.
        drop(turn);
        return created_response(job, false);
    }
    crate::quotas::check_exports(state.quotas(), &txn, owner).await?;
    let limit = state.config.exports.max_active_per_user;
    if store::count_active(&txn, owner, KIND).await? >= limit {
        return Err(Error::TooManyRequests {
            retry_after_secs: 10,
            detail: format!("You have {limit} exports queued or running; wait for one to finish."),
        });
    }
    let (job, created) = store::enqueue(
        &txn,
        owner,
        NewJob {
            id: None,
            kind: KIND,
            payload: &payload,
            max_attempts: state.config.exports.max_attempts,
            progress_total: Some(record.row_count),
            idempotency_key: key.as_deref(),
        },
    )
    .await?;
    txn.commit().await?;
    if created {
        state.jobs_queued.notify_one();
        crate::audit::record(
            &state.db,
            Some(&client),
            crate::audit::Event::new("export.created", Some(owner))
                .target("export", job.id)
                .details(serde_json::json!({"table_id": table.id, "version": version, "destination": if google_auth.is_some() { "google_sheets" } else { "download" }})),
        )
        .await;
        tracing::info!(job.id = %job.id, table.id = %table.id, version, "export queued");
    }
    created_response(job, created)
}

/// The caller's export jobs, newest first.
#[utoipa::path(get, path = "/exports", tag = "exports", params(ExportListQuery),
    responses((status = 200, description = "Export jobs", body = Page<ExportResponse>)))]
async fn list_exports(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(q): Query<ExportListQuery>,
) -> Result<Json<Page<ExportResponse>>, Error> {
    let (limit, before) = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .parse()?;
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s @ ("queued" | "running" | "succeeded" | "failed" | "cancelled")) => Some(s),
        Some(_) => {
            return Err(Error::field(
                "status",
                "must be queued, running, succeeded, failed or cancelled",
            ));
        }
    };
    let rows = store::list(&state.db, auth.user.id, KIND, status, before, limit + 1).await?;
    let page = Page::from_rows(rows, limit, |r| r.id, response);
    Ok(Json(Page {
        items: page.items.into_iter().collect::<Result<_, _>>()?,
        next_cursor: page.next_cursor,
    }))
}

/// One export job: status, progress, attempts, error, file.
#[utoipa::path(get, path = "/exports/{id}", tag = "exports",
    params(("id" = Uuid, Path, description = "Export id")),
    responses((status = 200, description = "The export", body = ExportResponse)))]
async fn get_export(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<ExportResponse>, Error> {
    Ok(Json(response(find(&state, auth.user.id, id).await?)?))
}

/// Cancel an export that is queued or running (a running one stops at its next page of rows).
#[utoipa::path(post, path = "/exports/{id}/cancel", tag = "exports",
    params(("id" = Uuid, Path, description = "Export id")),
    responses((status = 200, description = "Cancelled", body = ExportResponse)))]
async fn cancel_export(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<ExportResponse>, Error> {
    let owner = auth.user.id;
    if !store::cancel(&state.db, owner, KIND, id).await? {
        let job = find(&state, owner, id).await?;
        return Err(Error::conflict(
            "export-finished",
            format!("The export has already {}.", job.status),
        ));
    }
    tracing::info!(job.id = %id, "export cancelled");
    Ok(Json(response(find(&state, owner, id).await?)?))
}

/// Download the file of a succeeded export.
#[utoipa::path(get, path = "/exports/{id}/download", tag = "exports",
    params(("id" = Uuid, Path, description = "Export id")),
    responses((status = 200, description = "The file: xlsx, CSV or JSON", content(
            (Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
            (String = "text/csv"),
            (Value = "application/json")))))]
async fn download_export(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Response, Error> {
    let job = find(&state, auth.user.id, id).await?;
    if job.status != store::SUCCEEDED {
        return Err(Error::conflict(
            "export-not-ready",
            format!("The export is {}; its file is not ready.", job.status),
        ));
    }
    let payload = payload(&job)?;
    let result = result(&job)
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("export {id} has no result")))?;
    let gone = || Error::Gone {
        code: "export-expired",
        detail: "The file was deleted after its retention period; export the table again."
            .to_owned(),
    };
    let artifact = result.artifact.ok_or_else(gone)?;
    let path = state.config.data_dir.join(artifact);
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(gone()),
        Err(e) => return Err(Error::Internal(e.into())),
    };
    Ok(crate::exports::file_response(
        file,
        payload.options.format.content_type(),
        &result.file_name,
    ))
}
