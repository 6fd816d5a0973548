//! Target schema presets: the columns (names, types, descriptions, rules) a user wants tables
//! in replies to have, saved for reuse by any conversation (`target_schema_id`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use garde::Validate;
use serde::{Deserialize, Serialize};
use sheetgpt_core::table::{Column, ColumnType};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::extract::AuthUser;
use crate::db::schemas::{self as store, SchemaPreset};
use crate::error::{Error, FieldError, OrNotFound};
use crate::http::extract::{Path, Query, ValidatedJson};
use crate::http::pagination::{Page, PageQuery};
use crate::state::AppState;
use crate::tables::service::ColumnSpec;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_schema, list_schemas))
        .routes(routes!(get_schema, update_schema, delete_schema))
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct SchemaRequest {
    #[schema(min_length = 1, max_length = 200)]
    #[garde(length(chars, min = 1, max = 200))]
    pub name: String,
    /// The target columns, in order; a column without `type` is text.
    #[schema(min_items = 1, max_items = 200)]
    #[garde(length(min = 1, max = 200), dive)]
    pub columns: Vec<ColumnSpec>,
    /// Fewest rows a reply's table should have (default 1), sent as `minItems`.
    #[schema(minimum = 0, maximum = 100000)]
    #[garde(range(min = 0, max = 100_000))]
    pub min_rows: Option<i32>,
    /// Most rows a reply's table should have, sent as `maxItems`.
    #[schema(minimum = 1, maximum = 100000)]
    #[garde(range(min = 1, max = 100_000))]
    pub max_rows: Option<i32>,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct SchemaUpdate {
    #[schema(min_length = 1, max_length = 200)]
    #[garde(length(chars, min = 1, max = 200))]
    pub name: Option<String>,
    #[schema(min_items = 1, max_items = 200)]
    #[garde(length(min = 1, max = 200), dive)]
    pub columns: Option<Vec<ColumnSpec>>,
    /// With `max_rows`, replaces the row bounds (both are set together; null clears).
    #[schema(minimum = 0, maximum = 100000)]
    #[garde(range(min = 0, max = 100_000))]
    pub min_rows: Option<i32>,
    #[schema(minimum = 1, maximum = 100000)]
    #[garde(range(min = 1, max = 100_000))]
    pub max_rows: Option<i32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SchemaResponse {
    pub id: Uuid,
    pub name: String,
    #[schema(value_type = Vec<Object>)]
    pub columns: Vec<Column>,
    /// Fewest rows a reply's table should have.
    pub min_rows: i32,
    /// Most rows a reply's table should have, if bounded.
    pub max_rows: Option<i32>,
    /// The JSON Schema sent to models that support structured output.
    #[schema(value_type = Object)]
    pub json_schema: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn response(p: SchemaPreset) -> Result<SchemaResponse, Error> {
    let columns = store::columns(&p)?;
    let bounds = store::bounds(&p);
    Ok(SchemaResponse {
        id: p.id,
        name: p.name,
        min_rows: i32::try_from(bounds.min).unwrap_or(1),
        max_rows: p.max_rows,
        json_schema: sheetgpt_core::target::json_schema(&columns, bounds),
        columns,
        created_at: p.created_at,
        updated_at: p.updated_at,
    })
}

/// Columns from the request: names unique, rules valid, ids `c1…` in order.
fn parse_columns(specs: &[ColumnSpec]) -> Result<Vec<Column>, Error> {
    let mut errors = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        let name = spec.name.trim();
        if name.is_empty() {
            errors.push(FieldError::new(
                format!("columns[{i}].name"),
                "must not be blank",
            ));
        } else if !seen.insert(name.to_lowercase()) {
            errors.push(FieldError::new(
                format!("columns[{i}].name"),
                "is used twice",
            ));
        }
        let mut col = Column::new(
            format!("c{}", i + 1),
            name,
            spec.ty.unwrap_or(ColumnType::Text),
        );
        col.description = spec.description.clone();
        if let Some(rules) = &spec.rules {
            if let Err(msg) = rules.check() {
                errors.push(FieldError::new(format!("columns[{i}].rules"), msg));
            }
            col.rules = rules.clone();
        }
        out.push(col);
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(Error::Validation(errors))
    }
}

/// Row bounds as given, refused when the fewest is above the most.
fn row_bounds(min: Option<i32>, max: Option<i32>) -> Result<(Option<i32>, Option<i32>), Error> {
    if let (Some(min), Some(max)) = (min, max)
        && min > max
    {
        return Err(Error::field(
            "min_rows",
            format!("must not be above max_rows ({max})"),
        ));
    }
    Ok((min, max))
}

/// Save a target schema.
#[utoipa::path(post, path = "/schemas", tag = "schemas", request_body = SchemaRequest,
    responses((status = 201, description = "Saved", body = SchemaResponse)))]
async fn create_schema(
    State(state): State<AppState>,
    auth: AuthUser,
    ValidatedJson(body): ValidatedJson<SchemaRequest>,
) -> Result<impl IntoResponse, Error> {
    let columns = parse_columns(&body.columns)?;
    let rows = row_bounds(body.min_rows, body.max_rows)?;
    let preset = store::create(&state.db, auth.user.id, body.name.trim(), &columns, rows).await?;
    Ok((StatusCode::CREATED, Json(response(preset)?)))
}

/// The user's target schemas, newest first.
#[utoipa::path(get, path = "/schemas", tag = "schemas", params(PageQuery),
    responses((status = 200, description = "Schemas", body = Page<SchemaResponse>)))]
async fn list_schemas(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(page): Query<PageQuery>,
) -> Result<Json<Page<SchemaResponse>>, Error> {
    let (limit, before) = page.parse()?;
    let mut rows = store::list(&state.db, auth.user.id, before, limit + 1).await?;
    let more = rows.len() as u64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_cursor = if more {
        rows.last().map(|p| p.id.to_string())
    } else {
        None
    };
    let items = rows.into_iter().map(response).collect::<Result<_, _>>()?;
    Ok(Json(Page { items, next_cursor }))
}

/// One target schema.
#[utoipa::path(get, path = "/schemas/{id}", tag = "schemas",
    params(("id" = Uuid, Path, description = "Schema id")),
    responses((status = 200, description = "The schema", body = SchemaResponse)))]
async fn get_schema(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<SchemaResponse>, Error> {
    let preset = store::find(&state.db, auth.user.id, id)
        .await?
        .or_not_found("schema")?;
    Ok(Json(response(preset)?))
}

/// Rename a schema or replace its columns.
#[utoipa::path(patch, path = "/schemas/{id}", tag = "schemas", request_body = SchemaUpdate,
    params(("id" = Uuid, Path, description = "Schema id")),
    responses((status = 200, description = "Updated", body = SchemaResponse)))]
async fn update_schema(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    ValidatedJson(body): ValidatedJson<SchemaUpdate>,
) -> Result<Json<SchemaResponse>, Error> {
    let columns = body.columns.as_deref().map(parse_columns).transpose()?;
    let name = body.name.as_deref().map(str::trim);
    let rows = (body.min_rows.is_some() || body.max_rows.is_some())
        .then(|| row_bounds(body.min_rows, body.max_rows))
        .transpose()?;
    if !store::update(&state.db, auth.user.id, id, name, columns.as_deref(), rows).await? {
        return Err(Error::NotFound("schema"));
    }
    get_schema(State(state), auth, Path(id)).await
}

/// Delete a schema (conversations using it go back to free-form tables).
#[utoipa::path(delete, path = "/schemas/{id}", tag = "schemas",
    params(("id" = Uuid, Path, description = "Schema id")),
    responses((status = 204, description = "Deleted")))]
async fn delete_schema(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, Error> {
    if !store::soft_delete(&state.db, auth.user.id, id).await? {
        return Err(Error::NotFound("schema"));
    }
    Ok(StatusCode::NO_CONTENT)
}
