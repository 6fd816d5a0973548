use super::{SchemaRequest, SchemaResponse, SchemaUpdate, parse_columns, response, row_bounds};
use crate::auth::identity::AuthUser;
use crate::db::schemas::{self as store};
use crate::error::{Error, OrNotFound};
use crate::http::extract::{Path, Query, ValidatedJson};
use crate::http::pagination::{Page, PageQuery};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_schema, list_schemas))
        .routes(routes!(get_schema, update_schema, delete_schema))
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
