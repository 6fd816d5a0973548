//! HTTP for tables: `/tables`, rows, changes, versions, diff, revert and uploads.

use axum::Json;
use axum::extract::{DefaultBodyLimit, Multipart, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use garde::Validate;
use serde::{Deserialize, Serialize};
use sheetgpt_core::export::ExportError;
use sheetgpt_core::table::{Column, ColumnType, DecimalMark, Reading};
use sheetgpt_core::version::{Op, RowId};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::bulk::ValidationResponse;
use super::service::{self, ChangeResult, ColumnSpec};
use crate::auth::extract::AuthUser;
use crate::db::tables::{self as store, TableRecord};
use crate::error::{Error, OrNotFound};
use crate::http::extract::{Path, Query, ValidatedJson};
use crate::http::pagination::{Page, PageQuery};
use crate::jobs::ImportPayload;
use crate::jobs::routes::job_created;
use crate::state::AppState;

pub fn router(upload_limit: usize) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_table, list_tables))
        .routes(routes!(get_table, rename_table, delete_table))
        .routes(routes!(restore_table))
        .routes(routes!(list_rows))
        .routes(routes!(apply_changes))
        .routes(routes!(list_versions))
        .routes(routes!(get_version))
        .routes(routes!(diff))
        .routes(routes!(revert))
        .routes(routes!(validate_rows))
        .routes(routes!(preview_type_change))
        .routes(routes!(download))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(import_table))
                .layer(DefaultBodyLimit::max(upload_limit)),
        )
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TableResponse {
    pub id: Uuid,
    pub name: String,
    /// The current version.
    pub version: i32,
    pub row_count: i64,
    /// Each column: `id`, `name`, `type`, `description`, `rules`, and how its text was read:
    /// `reading` for numbers (`{"decimal": ",", "grouping": "."}`) and `dates` for dates with
    /// slashes (`{"order": "day_first", "decided_by": "values" | "locale"}`).
    #[schema(value_type = Vec<Object>)]
    pub columns: Vec<Column>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<DateTime<Utc>>,
}

fn table_response(t: TableRecord, columns: Vec<Column>) -> TableResponse {
    TableResponse {
        id: t.id,
        name: t.name,
        version: t.current_version,
        row_count: t.row_count,
        columns,
        created_at: t.created_at,
        updated_at: t.updated_at,
        deleted_at: t.deleted_at,
    }
}

/// `ETag: "<version>"`, so that a client can send it back as `If-Match`.
fn with_etag(version: i32, status: StatusCode, body: impl Serialize) -> Response {
    let mut resp = (status, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

/// The version named by `If-Match` (`"3"`, `3` or `W/"3"`), if any.
fn if_match(headers: &HeaderMap) -> Result<Option<i32>, Error> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    let text = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    text.parse::<i32>().map(Some).map_err(|_| {
        Error::bad_request(
            "bad-if-match",
            "If-Match must be the table version from the ETag, e.g. \"3\".",
        )
    })
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct CreateTableRequest {
    #[garde(length(chars, min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200, example = "European airports")]
    pub name: String,
    /// Column names, types and rules; inferred from the rows when absent.
    #[garde(dive, length(max = 1000))]
    pub columns: Option<Vec<ColumnSpec>>,
    /// Rows as arrays (in column order) or objects keyed by column name.
    #[garde(length(max = 100000))]
    #[serde(default)]
    #[schema(max_items = 100000, value_type = Vec<Value>)]
    pub rows: Vec<serde_json::Value>,
    /// Instead of rows: take the table from this message (yours) …
    #[garde(skip)]
    pub message_id: Option<Uuid>,
    /// … the n-th table found in it (0-based, default 0).
    #[schema(maximum = 1000)]
    #[garde(range(max = 1000))]
    pub table_index: Option<usize>,
}

/// Create a table from rows, or from a table found in a message (`message_id`, `table_index`).
#[utoipa::path(post, path = "/tables", tag = "tables", request_body = CreateTableRequest,
    responses((status = 201, description = "Table created (version 1)", body = TableResponse,
        headers(("ETag" = String, description = "The version, for If-Match"))),
        (status = 404, description = "`message_id` names no message of yours", body = crate::http::error::Problem, content_type = "application/problem+json")))]
async fn create_table(
    State(state): State<AppState>,
    auth: AuthUser,
    ValidatedJson(body): ValidatedJson<CreateTableRequest>,
) -> Result<Response, Error> {
    let (table, summary) = match body.message_id {
        Some(message_id) => {
            let message =
                crate::db::conversations::find_message(&state.db, auth.user.id, message_id)
                    .await?
                    .or_not_found("message")?;
            let index = body.table_index.unwrap_or(0);
            let mut found = sheetgpt_core::extract::extract_tables_reading(
                &message.content,
                sheetgpt_core::locale::date_order(auth.user.locale.as_deref()),
            );
            if index >= found.len() {
                return Err(Error::field(
                    "table_index",
                    format!("the message holds {} table(s)", found.len()),
                ));
            }
            (found.swap_remove(index).table, "created from a message")
        }
        None => (
            service::table_from_json(
                body.columns,
                body.rows,
                state.config.tables.max_columns,
                sheetgpt_core::locale::date_order(auth.user.locale.as_deref()),
            )?,
            "created from rows",
        ),
    };
    let columns = table.columns.clone();
    let record = service::create(&state, auth.user.id, &body.name, table, summary).await?;
    Ok(with_etag(
        1,
        StatusCode::CREATED,
        table_response(record, columns),
    ))
}

/// Create a table from an uploaded file (multipart field `file`): CSV or TSV (optional field
/// `delimiter`: `comma`, `tab`, `semicolon` or `pipe`, sniffed when absent), or a spreadsheet
/// (`.xlsx`, `.xls`, `.ods`; optional field `sheet`, the first sheet otherwise). Optional
/// field `name` (the file name otherwise).
///
/// The file is streamed to disk, then read twice: once to check it and infer each column's
/// type from every value, once to store the rows. A file that is not valid UTF-8 delimited
/// text or a readable workbook, is empty, is too large, has too many columns or rows, holds a
/// cell longer than `tables.max_cell_chars` or a NUL character, or would inflate past the
/// spreadsheet bounds is refused and nothing is stored.
///
/// An upload larger than `tables.import_sync_bytes` is imported by a job: the answer is 202
/// with the job, whose progress counts the rows stored and whose result names the table; a
/// refused file fails the job with the same reason and stores nothing.
#[utoipa::path(post, path = "/tables/import", tag = "tables",
    request_body(content_type = "multipart/form-data", description = "`file` (CSV, TSV, XLSX, XLS, ODS), optional `name`, `delimiter`, `sheet`"),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries of a large upload create one import job", pattern = "^[!-~]([ !-~]{0,198}[!-~])?$")),
    responses(
        (status = 201, description = "Table created (version 1)", body = TableResponse),
        (status = 202, description = "The upload is larger than `tables.import_sync_bytes`: an import job stores it (follow `Location`; its result names the table)", body = crate::jobs::routes::JobResponse),
    ))]
async fn import_table(
    State(state): State<AppState>,
    auth: AuthUser,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Result<Response, Error> {
    let mut name: Option<String> = None;
    let mut delimiter: Option<u8> = None;
    let mut sheet: Option<String> = None;
    let mut file: Option<(tempfile::TempPath, String)> = None;
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name().unwrap_or_default() {
            "name" => name = Some(text_field(field, "name").await?),
            "sheet" => sheet = Some(text_field(field, "sheet").await?),
            "delimiter" => {
                let text = field.text().await.map_err(multipart_error)?;
                delimiter = Some(match text.trim() {
                    "comma" | "," => b',',
                    "tab" | "\t" | "\\t" => b'\t',
                    "semicolon" | ";" => b';',
                    "pipe" | "|" => b'|',
                    other => {
                        return Err(Error::field(
                            "delimiter",
                            format!("`{other}` is not one of comma, tab, semicolon, pipe"),
                        ));
                    }
                });
            }
            "file" => {
                let file_name = field.file_name().unwrap_or("upload").to_owned();
                // The name may become the table's name.
                crate::http::nul::check_text("file", &file_name)?;
                let tmp = state
                    .scratch
                    .file(".upload-")
                    .map_err(|e| Error::Internal(e.into()))?;
                let (std_file, path) = tmp.into_parts();
                let mut out = tokio::fs::File::from_std(std_file);
                use tokio::io::AsyncWriteExt;
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    out.write_all(&chunk)
                        .await
                        .map_err(|e| Error::Internal(e.into()))?;
                }
                out.flush().await.map_err(|e| Error::Internal(e.into()))?;
                file = Some((path, file_name));
            }
            _ => {}
        }
    }
    let Some((path, file_name)) = file else {
        return Err(Error::field(
            "file",
            "attach the file as the multipart field `file`",
        ));
    };
    let lower = file_name.to_lowercase();
    // A spreadsheet by its name or by its first bytes (a zip or a compound file), so that a
    // workbook named `.csv` is not read as text.
    let spreadsheet = [".xlsx", ".xlsm", ".xls", ".xlsb", ".ods"]
        .iter()
        .any(|ext| lower.ends_with(ext))
        || starts_like_spreadsheet(&path).await;
    if delimiter.is_none() && lower.ends_with(".tsv") {
        delimiter = Some(b'\t');
    }
    let name = name.unwrap_or_else(|| {
        file_name
            .rsplit_once('.')
            .map_or(file_name.as_str(), |(stem, _)| stem)
            .to_owned()
    });
    let size = tokio::fs::metadata(&path)
        .await
        .map_err(|e| Error::Internal(e.into()))?
        .len();
    if size > state.config.tables.import_sync_bytes {
        let payload = ImportPayload {
            name: service::check_name(&name)?,
            file_name,
            upload: String::new(),
            spreadsheet,
            delimiter,
            sheet,
        };
        return start_import(&state, auth.user.id, &headers, path, payload).await;
    }
    let record = if spreadsheet {
        service::import_spreadsheet(&state, auth.user.id, &name, path.to_path_buf(), sheet).await
    } else {
        service::import_delimited(&state, auth.user.id, &name, path.to_path_buf(), delimiter).await
    };
    drop(path); // removes the temporary file
    let record = record?;
    let loaded = service::load(&state, auth.user.id, record.id, None).await?;
    Ok(with_etag(
        1,
        StatusCode::CREATED,
        table_response(record, loaded.schema.columns),
    ))
}

/// Hands a large upload to an import job (`jobs::queue_import`): 202 with the job, or 200
/// with the one an earlier request with the same `Idempotency-Key` created.
async fn start_import(
    state: &AppState,
    owner: Uuid,
    headers: &HeaderMap,
    path: tempfile::TempPath,
    payload: ImportPayload,
) -> Result<Response, Error> {
    let key = crate::exports::jobs::idempotency_key(headers)?;
    let (job, created) =
        crate::jobs::queue_import(state, owner, key.as_deref(), path, payload).await?;
    let status = if created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok(job_created(job, status))
}

/// A text field of the upload form, refused if it holds a U+0000 (`http::nul`).
async fn text_field(
    field: axum::extract::multipart::Field<'_>,
    name: &str,
) -> Result<String, Error> {
    let text = field.text().await.map_err(multipart_error)?;
    crate::http::nul::check_text(name, &text)?;
    Ok(text)
}

async fn starts_like_spreadsheet(path: &std::path::Path) -> bool {
    use tokio::io::AsyncReadExt;
    let mut head = [0u8; 8];
    let Ok(mut file) = tokio::fs::File::open(path).await else {
        return false;
    };
    let mut filled = 0;
    while filled < head.len() {
        match file.read(&mut head[filled..]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => filled += n,
        }
    }
    sheetgpt_core::import::looks_like_spreadsheet(&head[..filled])
}

fn multipart_error(err: axum::extract::multipart::MultipartError) -> Error {
    if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Error::PayloadTooLarge {
            detail: "The upload is larger than this server accepts.".to_owned(),
        }
    } else {
        Error::bad_request(
            "bad-multipart",
            format!("The upload could not be read: {}", err.body_text()),
        )
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListTablesQuery {
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    #[param(
        pattern = "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})?$"
    )]
    pub cursor: Option<String>,
    /// `true` lists deleted tables (the trash) instead.
    pub deleted: Option<bool>,
}

/// The user's tables, newest first.
#[utoipa::path(get, path = "/tables", tag = "tables", params(ListTablesQuery),
    responses((status = 200, description = "Tables (without columns)", body = Page<TableResponse>)))]
async fn list_tables(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(q): Query<ListTablesQuery>,
) -> Result<Json<Page<TableResponse>>, Error> {
    let (limit, before) = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .parse()?;
    let rows = store::list(
        &state.db,
        auth.user.id,
        before,
        limit + 1,
        q.deleted.unwrap_or(false),
    )
    .await?;
    Ok(Json(Page::from_rows(
        rows,
        limit,
        |t| t.id,
        |t| table_response(t, Vec::new()),
    )))
}

/// A table with the columns of its current version.
#[utoipa::path(get, path = "/tables/{id}", tag = "tables",
    params(("id" = Uuid, Path, description = "Table id")),
    responses((status = 200, description = "The table", body = TableResponse)))]
async fn get_table(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Response, Error> {
    let loaded = service::load(&state, auth.user.id, id, None).await?;
    let version = loaded.version;
    Ok(with_etag(
        version,
        StatusCode::OK,
        table_response(loaded.table, loaded.schema.columns),
    ))
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct RenameTable {
    #[schema(min_length = 1, max_length = 200)]
    #[garde(length(chars, min = 1, max = 200))]
    pub name: String,
}

/// Rename a table (not a new version: names are not versioned).
#[utoipa::path(patch, path = "/tables/{id}", tag = "tables", request_body = RenameTable,
    params(("id" = Uuid, Path, description = "Table id")),
    responses((status = 200, description = "Renamed", body = TableResponse)))]
async fn rename_table(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    ValidatedJson(body): ValidatedJson<RenameTable>,
) -> Result<Response, Error> {
    let name = service::check_name(&body.name)?;
    if !store::rename(&state.db, auth.user.id, id, &name).await? {
        return Err(Error::NotFound("table"));
    }
    get_table(State(state), auth, Path(id)).await
}

/// Delete a table (to the trash: restorable until purged).
#[utoipa::path(delete, path = "/tables/{id}", tag = "tables",
    params(("id" = Uuid, Path, description = "Table id")),
    responses((status = 204, description = "Deleted")))]
async fn delete_table(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, Error> {
    if !store::set_deleted(&state.db, auth.user.id, id, true).await? {
        return Err(Error::NotFound("table"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Restore a deleted table. Its rows count against the stored-rows quota again: 403
/// `quota-exceeded` when they do not fit (the table stays in the trash).
#[utoipa::path(post, path = "/tables/{id}/restore", tag = "tables",
    params(("id" = Uuid, Path, description = "Table id")),
    responses((status = 200, description = "Restored", body = TableResponse)))]
async fn restore_table(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Response, Error> {
    service::restore(&state, auth.user.id, id).await?;
    get_table(State(state), auth, Path(id)).await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RowsResponse {
    pub table_id: Uuid,
    pub version: i32,
    #[schema(value_type = Vec<Object>)]
    pub columns: Vec<Column>,
    pub rows: Vec<RowResponse>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RowResponse {
    /// Stable row id (for `set_cells`, `delete_rows`, `insert_rows.after`).
    pub id: RowId,
    /// Cells in the order of `columns`, in canonical JSON form.
    #[schema(value_type = Vec<Value>)]
    pub cells: Vec<serde_json::Value>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(
    dead_code,
    reason = "parsed from the raw query; this type documents it"
)]
pub struct RowsQuery {
    /// Version to read (default: current).
    #[param(minimum = 1)]
    version: Option<i32>,
    /// Rows per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u64>,
    /// `next_cursor` from the previous page, or `o<n>` to start at the n-th row (0-based) of
    /// the sorted, filtered rows: what a scrolling grid asks for when it jumps.
    #[param(pattern = "^(o[0-9]{1,18})?$|^p[0-9]{1,18}$")]
    cursor: Option<String>,
    /// `column` or `column:desc`; repeat for several keys.
    sort: Option<String>,
    /// `column:cmp:value` with cmp one of eq, ne, lt, lte, gt, gte, contains, is_null,
    /// not_null; repeat to combine (and).
    filter: Option<String>,
}

/// Rows of a version, page by page, optionally sorted and filtered.
#[utoipa::path(get, path = "/tables/{id}/rows", tag = "tables",
    params(("id" = Uuid, Path, description = "Table id"), RowsQuery),
    responses((status = 200, description = "A page of rows", body = RowsResponse)))]
async fn list_rows(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    RawQuery(query): RawQuery,
) -> Result<Json<RowsResponse>, Error> {
    let mut version = None;
    let mut limit = 100u64;
    let mut cursor = None;
    let mut sort_args = Vec::new();
    let mut filter_args = Vec::new();
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "version" => {
                version = Some(
                    value
                        .parse::<i32>()
                        .map_err(|_| Error::field("version", "must be a version number"))?,
                );
            }
            "limit" => {
                limit = value
                    .parse::<u64>()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| Error::field("limit", "must be between 1 and 1000"))?;
            }
            "cursor" => cursor = Some(value.into_owned()),
            "sort" => sort_args.push(value.into_owned()),
            "filter" => filter_args.push(value.into_owned()),
            _ => {}
        }
    }
    let page = super::rows::page(
        &state,
        auth.user.id,
        id,
        super::rows::Request {
            version,
            limit,
            cursor,
            sort: sort_args,
            filters: filter_args,
        },
    )
    .await?;
    Ok(Json(RowsResponse {
        table_id: id,
        version: page.version,
        columns: page.columns,
        rows: page
            .rows
            .into_iter()
            .map(|(id, cells)| RowResponse { id, cells })
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ChangeRequest {
    /// Operations applied in order, all or none: `set_cells`, `insert_rows`, `delete_rows`,
    /// `add_column`, `rename_column`, `drop_column`, `reorder_columns`, `change_type`,
    /// `set_rules`, `sort`, `filter_delete`, `trim` (`{"op": "trim", "columns": ["City"]}`:
    /// removes the spaces before and after the text of cells, in the named text columns or,
    /// without `columns`, in every text column; `trimmed_cells` says how many changed). An `add_column` with a `formula` may leave out
    /// `type`: the column then takes the type of the formula's result. A formula past
    /// `tables.max_formula_chars` or `tables.max_formula_depth` is refused with 422
    /// `formula-too-long` or `formula-too-deep`.
    #[schema(value_type = Vec<Object>, min_items = 1)]
    pub ops: Vec<Op>,
    /// A description for the version list (generated when absent).
    pub summary: Option<String>,
}

/// Apply a change: a new version. Send `If-Match: "<version>"` to refuse the change (409)
/// when someone else changed the table since you read it.
///
/// On a table of more than `tables.max_sync_rows` rows, a change that touches every row
/// (`sort`, `filter_delete`, `change_type`, `trim`, `add_column` with a default or formula)
/// is applied by a `change` job: the answer is 202 with the job (follow `Location`), whose
/// result is this answer with the `table_id`. Such a change must be one operation (422
/// `change-too-large` otherwise).
#[utoipa::path(post, path = "/tables/{id}/changes", tag = "tables", request_body = ChangeRequest,
    params(("id" = Uuid, Path, description = "Table id"),
        ("If-Match" = Option<String>, Header, description = "Expected current version", pattern = r#"^(W/)?"?[0-9]{1,9}"?$"#),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries of a large change queue one job", pattern = "^[!-~]([ !-~]{0,198}[!-~])?$")),
    responses(
        (status = 201, description = "New version", body = ChangeResult),
        (status = 200, description = "The job an earlier request with the same `Idempotency-Key` queued", body = crate::jobs::routes::JobResponse),
        (status = 202, description = "A change of every row of a table past `tables.max_sync_rows`: a `change` job applies it (follow `Location`)", body = crate::jobs::routes::JobResponse),
        (status = 409, description = "Stale version", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many large changes queued or running", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn apply_changes(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    ValidatedJsonLoose(body): ValidatedJsonLoose<ChangeRequest>,
) -> Result<Response, Error> {
    if body.ops.len() > 10_000 {
        return Err(Error::field("ops", "at most 10000 operations per change"));
    }
    let expected = if_match(&headers)?;
    let key = crate::exports::jobs::idempotency_key(&headers)?;
    let submitted = service::submit_change(
        &state,
        auth.user.id,
        id,
        expected,
        body.ops,
        body.summary,
        key.as_deref(),
    )
    .await?;
    Ok(submitted_response(submitted))
}

/// 201 with the new version, or the change's job (202, or 200 for an idempotent retry).
fn submitted_response(submitted: service::Submitted) -> Response {
    match submitted {
        service::Submitted::Applied(result) => {
            with_etag(result.version, StatusCode::CREATED, result)
        }
        service::Submitted::Queued { job, created } => {
            let status = if created {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            };
            job_created(*job, status)
        }
    }
}

/// JSON without garde rules (the operations validate themselves when applied).
pub struct ValidatedJsonLoose<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for ValidatedJsonLoose<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Error> {
        let (v, _) = crate::http::extract::read_json::<T, S>(req, state).await?;
        Ok(Self(v))
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionResponse {
    pub version: i32,
    pub summary: String,
    pub row_count: i64,
    pub author_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    /// The operations that made this version from the previous one.
    #[schema(value_type = Vec<Object>)]
    pub ops: serde_json::Value,
    /// Only when one version is asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub columns: Option<Vec<Column>>,
}

fn version_response(v: store::VersionRecord, columns: Option<Vec<Column>>) -> VersionResponse {
    VersionResponse {
        version: v.version,
        summary: v.summary,
        row_count: v.row_count,
        author_id: v.author_id,
        created_at: v.created_at,
        ops: serde_json::from_str(&v.ops).unwrap_or_default(),
        columns,
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VersionPageQuery {
    /// How many versions (1 to 200, default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u64>,
    /// `next_cursor` from the previous page (a version number).
    #[param(pattern = "^[0-9]{0,9}$")]
    pub cursor: Option<String>,
}

/// Versions, newest first.
#[utoipa::path(get, path = "/tables/{id}/versions", tag = "tables",
    params(("id" = Uuid, Path, description = "Table id"), VersionPageQuery),
    responses((status = 200, description = "Versions", body = Page<VersionResponse>)))]
async fn list_versions(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    Query(page): Query<VersionPageQuery>,
) -> Result<Json<Page<VersionResponse>>, Error> {
    let limit = match page.limit {
        None => 50,
        Some(n @ 1..=200) => n,
        Some(_) => return Err(Error::field("limit", "must be between 1 and 200")),
    };
    let before = match page.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(
            c.parse::<i32>()
                .map_err(|_| Error::field("cursor", "is not a cursor this API returned"))?,
        ),
    };
    store::find(&state.db, auth.user.id, id)
        .await?
        .or_not_found("table")?;
    let mut rows = store::versions(&state.db, id, before, limit + 1).await?;
    let more = rows.len() as u64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_cursor = more
        .then(|| rows.last().map(|v| v.version.to_string()))
        .flatten();
    Ok(Json(Page {
        items: rows
            .into_iter()
            .map(|v| version_response(v, None))
            .collect(),
        next_cursor,
    }))
}

/// One version with its columns.
#[utoipa::path(get, path = "/tables/{id}/versions/{version}", tag = "tables",
    params(("id" = Uuid, Path, description = "Table id"), ("version" = i32, Path, description = "Version number")),
    responses((status = 200, description = "The version", body = VersionResponse)))]
async fn get_version(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, version)): Path<(Uuid, i32)>,
) -> Result<Json<VersionResponse>, Error> {
    let loaded = service::load(&state, auth.user.id, id, Some(version)).await?;
    let record = store::version(&state.db, id, version)
        .await?
        .or_not_found("version")?;
    Ok(Json(version_response(record, Some(loaded.schema.columns))))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    pub from: i32,
    pub to: i32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DiffResponse {
    pub from: i32,
    pub to: i32,
    /// `schema` (columns added, removed, renamed, retyped, reordered), `rows_added`,
    /// `rows_removed`, `cells_changed` (`row`, `column`, `column_name`, `from`, `to`),
    /// `rows_moved`.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub diff: sheetgpt_core::version::Diff,
}

/// What changed between two versions (either order).
#[utoipa::path(get, path = "/tables/{id}/diff", tag = "tables",
    params(("id" = Uuid, Path, description = "Table id"), DiffQuery),
    responses((status = 200, description = "The differences", body = DiffResponse)))]
async fn diff(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    Query(q): Query<DiffQuery>,
) -> Result<Json<DiffResponse>, Error> {
    let diff = service::diff(&state, auth.user.id, id, q.from, q.to).await?;
    Ok(Json(DiffResponse {
        from: q.from,
        to: q.to,
        diff,
    }))
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct RevertRequest {
    /// The version to return to.
    #[schema(minimum = 1)]
    #[garde(range(min = 1))]
    pub version: i32,
}

/// Revert: a new version equal to an older one (history is kept). For a table (now, or at the
/// version to return to) of more than `tables.max_sync_rows` rows, a `change` job reverts it:
/// 202 with the job to follow.
#[utoipa::path(post, path = "/tables/{id}/revert", tag = "tables", request_body = RevertRequest,
    params(("id" = Uuid, Path, description = "Table id"),
        ("If-Match" = Option<String>, Header, description = "Expected current version", pattern = r#"^(W/)?"?[0-9]{1,9}"?$"#),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries of a large revert queue one job", pattern = "^[!-~]([ !-~]{0,198}[!-~])?$")),
    responses((status = 201, description = "New version", body = ChangeResult),
        (status = 200, description = "The job an earlier request with the same `Idempotency-Key` queued", body = crate::jobs::routes::JobResponse),
        (status = 202, description = "A revert of a table past `tables.max_sync_rows`: a `change` job applies it (follow `Location`)", body = crate::jobs::routes::JobResponse),
        (status = 429, description = "Too many large changes queued or running", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Stale version (If-Match)", body = crate::http::error::Problem, content_type = "application/problem+json")))]
async fn revert(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    ValidatedJson(body): ValidatedJson<RevertRequest>,
) -> Result<Response, Error> {
    let expected = if_match(&headers)?;
    let key = crate::exports::jobs::idempotency_key(&headers)?;
    let submitted = service::submit_revert(
        &state,
        auth.user.id,
        id,
        body.version,
        expected,
        key.as_deref(),
    )
    .await?;
    Ok(submitted_response(submitted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_accepts_quoted_weak_and_bare_versions() {
        for (v, want) in [("\"3\"", 3), ("3", 3), ("W/\"12\"", 12)] {
            let mut h = HeaderMap::new();
            h.insert(header::IF_MATCH, HeaderValue::from_static(v));
            assert_eq!(if_match(&h).ok().flatten(), Some(want));
        }
        let mut h = HeaderMap::new();
        h.insert(header::IF_MATCH, HeaderValue::from_static("\"abc\""));
        assert!(if_match(&h).is_err());
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ValidationQuery {
    /// Version to check (default: current).
    pub version: Option<i32>,
}

/// Check every cell of a version against its columns' rules (set with `set_rules` or
/// declared at creation); every bad cell is reported with its row, column and rule.
///
/// A version of more than `tables.max_sync_rows` rows is checked by a `validation` job: the
/// answer is 202 with the job (follow `Location`; its result is this answer). Asking again
/// for the same version answers 200 with that job while it runs, and 200 with the violations
/// (from the job's result) once it is done: a version's rules and cells never change.
#[utoipa::path(get, path = "/tables/{id}/validation", tag = "tables",
    params(("id" = Uuid, Path, description = "Table id"), ValidationQuery),
    responses((status = 200, description = "Rule violations, or the validation job already checking this version", body = ValidationResponse),
        (status = 202, description = "A version past `tables.max_sync_rows`: a `validation` job checks it (follow `Location`)", body = crate::jobs::routes::JobResponse)))]
async fn validate_rows(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    Query(q): Query<ValidationQuery>,
) -> Result<Response, Error> {
    Ok(
        match crate::jobs::validation::request(&state, auth.user.id, id, q.version).await? {
            crate::jobs::validation::Validated::Now(found) => Json(found).into_response(),
            crate::jobs::validation::Validated::Job { job, created } => {
                let status = if created {
                    StatusCode::ACCEPTED
                } else {
                    StatusCode::OK
                };
                job_created(*job, status)
            }
        },
    )
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TypeChangeQuery {
    /// The column, by id or name.
    pub column: String,
    /// The type it would change to: `integer`, `decimal`, `date`, …
    #[param(value_type = String)]
    pub to: ColumnType,
    /// `.` or `,`: numbers in text read with this decimal mark, as `reading` in the op;
    /// chosen from every value of the column when absent, as the change chooses it.
    #[param(value_type = Option<String>, pattern = "^[.,]$")]
    pub decimal: Option<DecimalMark>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TypeChangeResponse {
    /// The version previewed (the current one).
    pub version: i32,
    /// The column's name.
    pub column: String,
    #[schema(value_type = String)]
    pub to: ColumnType,
    /// How numbers would be read and recorded with the column (`{"decimal": ",", "grouping":
    /// "."}`); null for other types, or when no value chose a mark.
    #[schema(value_type = Option<Object>)]
    pub reading: Option<Reading>,
    /// Cells that would not convert, `[row id, text]`, the first 100 by row id: the change
    /// refuses them, or with `invalid: "null"` empties them.
    #[schema(value_type = Vec<Object>)]
    pub unconvertible: Vec<(RowId, String)>,
    /// How many cells would not convert.
    pub unconvertible_total: u64,
}

/// What `change_type` of a column would do, without doing it: the decimal mark its numbers
/// would be read with and the cells that would not convert. Reads every row of the current
/// version, a page at a time; nothing is written.
#[utoipa::path(get, path = "/tables/{id}/type-change", tag = "tables",
    params(("id" = Uuid, Path, description = "Table id"), TypeChangeQuery),
    responses((status = 200, description = "What the type change would do", body = TypeChangeResponse)))]
async fn preview_type_change(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    Query(q): Query<TypeChangeQuery>,
) -> Result<Json<TypeChangeResponse>, Error> {
    let reading = q.decimal.map(|decimal| Reading {
        decimal,
        grouping: None,
    });
    let p = super::preview::type_change(&state, auth.user.id, id, &q.column, q.to, reading).await?;
    Ok(Json(TypeChangeResponse {
        version: p.version,
        column: p.column,
        to: p.to,
        reading: p.reading,
        unconvertible: p.unconvertible,
        unconvertible_total: p.unconvertible_total,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DownloadQuery {
    /// `xlsx`, `csv` or `json`.
    #[param(pattern = "^(xlsx|csv|json)$")]
    pub format: String,
    /// Version to export (default: current).
    #[param(minimum = 1)]
    pub version: Option<i32>,
    /// A template (own or shared) to apply: column mapping, formats, layout.
    pub template: Option<Uuid>,
    /// JSON only: `records` (default, `[{"column": value}]`) or `columns`.
    #[param(pattern = "^(records|columns)$")]
    pub layout: Option<String>,
    /// CSV only: start with a UTF-8 byte order mark, for Excel.
    pub bom: Option<bool>,
}

/// Download a version of a table as an Excel workbook, CSV or JSON file, optionally through a
/// template. Rows are read page by page and written off the async runtime (XLSX in
/// constant-memory mode), then the file is streamed. For very large tables prefer an export
/// job (`POST /exports`), which reports progress and survives restarts.
#[utoipa::path(get, path = "/tables/{id}/download", tag = "tables",
    params(("id" = Uuid, Path, description = "Table id"), DownloadQuery),
    responses((status = 200, description = "The file: xlsx, CSV or JSON", content(
            (Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
            (String = "text/csv"),
            (Value = "application/json")))))]
async fn download(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    Query(q): Query<DownloadQuery>,
) -> Result<Response, Error> {
    use crate::exports::render::{self, Control, FileFormat, FileOptions, JsonShape, Source};
    let format = FileFormat::parse(&q.format)
        .ok_or_else(|| Error::field("format", "must be xlsx, csv or json"))?;
    let layout = match q.layout.as_deref() {
        None | Some("records") => JsonShape::Records,
        Some("columns") => JsonShape::Columns,
        Some(_) => return Err(Error::field("layout", "must be records or columns")),
    };
    let loaded = service::load(&state, auth.user.id, id, q.version).await?;
    let template = match q.template {
        Some(t) => Some(crate::exports::templates::load(&state, auth.user.id, t).await?),
        None => None,
    };
    let resolved = crate::exports::templates::resolve(template.as_ref(), &loaded.schema.columns)?;
    let options = FileOptions {
        format,
        bom: q.bom.unwrap_or(false),
        layout,
    };
    let file_name = render::file_name(&loaded.table.name, loaded.version, format);
    let source = Source {
        table_id: id,
        table_name: loaded.table.name,
        version: loaded.version,
        current: loaded.version == loaded.table.current_version,
        schema: loaded.schema,
    };
    let rendered = render::render(
        &state.db,
        state.scratch.path(),
        source,
        resolved,
        &options,
        &state.config.exports,
        std::sync::Arc::new(Control::default()),
    )
    .await;
    let (tmp, _rows) = match rendered {
        Ok(done) => done,
        Err(err @ render::RenderError::Export(ExportError::TooLargeForXlsx { .. })) => {
            return Err(Error::PayloadTooLarge {
                detail: err.public_message(),
            });
        }
        Err(err) => return Err(Error::Internal(anyhow::anyhow!("download: {err}"))),
    };
    // The open file stays readable after its name is removed.
    let file = tmp.reopen().map_err(|e| Error::Internal(e.into()))?;
    drop(tmp);
    Ok(crate::exports::file_response(
        file,
        format.content_type(),
        &file_name,
    ))
}
