//! `/templates`: export templates (column mapping, formats, validation rules, layout). A user
//! reads their own templates and those an admin shared; only the owner changes one.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use garde::Validate;
use serde::{Deserialize, Serialize};
use sheetgpt_core::table::Column;
use sheetgpt_core::template::{Resolved, Template};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::extract::AuthUser;
use crate::db::entity::user::Role;
use crate::db::templates::{self as store, NewTemplate, TemplateRecord, TemplateUpdate};
use crate::error::{Error, FieldError, OrNotFound};
use crate::http::extract::{Path, Query, ValidatedJson};
use crate::http::pagination::{Page, PageQuery};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_template, list_templates))
        .routes(routes!(get_template, update_template, delete_template))
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct TemplateRequest {
    #[schema(min_length = 1, max_length = 200)]
    #[garde(length(chars, min = 1, max = 200))]
    pub name: String,
    #[schema(max_length = 2000)]
    #[garde(length(chars, max = 2000))]
    pub description: Option<String>,
    /// Readable by every user (admins only).
    #[serde(default)]
    #[garde(skip)]
    pub shared: bool,
    /// The template: `columns` (mapping, formats, rules, totals, conditional formats),
    /// `include_unmapped`, `exclude` and `layout`. See the README for every field.
    #[schema(value_type = Object)]
    #[garde(skip)]
    pub template: serde_json::Value,
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
pub struct TemplatePatch {
    #[schema(min_length = 1, max_length = 200)]
    #[garde(length(chars, min = 1, max = 200))]
    pub name: Option<String>,
    /// An empty string clears the description.
    #[schema(max_length = 2000)]
    #[garde(length(chars, max = 2000))]
    pub description: Option<String>,
    #[garde(skip)]
    pub shared: Option<bool>,
    #[schema(value_type = Option<Object>)]
    #[garde(skip)]
    pub template: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateResponse {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    /// Readable by every user.
    pub shared: bool,
    /// The caller owns it (and may change it).
    pub owned: bool,
    #[schema(value_type = Object)]
    pub template: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn response(record: TemplateRecord, user_id: Uuid) -> Result<TemplateResponse, Error> {
    let template: serde_json::Value = serde_json::from_str(&record.body)
        .map_err(|e| Error::Internal(anyhow::anyhow!("stored template {}: {e}", record.id)))?;
    Ok(TemplateResponse {
        id: record.id,
        owned: record.owner_id == user_id,
        name: record.name,
        description: record.description,
        shared: record.shared,
        template,
        created_at: record.created_at,
        updated_at: record.updated_at,
    })
}

/// A template from request JSON: every problem at once, each under `template`.
pub fn parse(value: serde_json::Value) -> Result<Template, Error> {
    let template: Template = serde_json::from_value(value)
        .map_err(|e| Error::field("template", format!("is not a template: {e}")))?;
    template.check().map_err(|problems| {
        Error::Validation(
            problems
                .into_iter()
                .map(|p| FieldError::new("template", p))
                .collect(),
        )
    })?;
    Ok(template)
}

/// Canonical JSON of a checked template (defaults filled in), as stored.
fn to_body(template: &Template) -> Result<String, Error> {
    serde_json::to_string(template).map_err(|e| Error::Internal(e.into()))
}

fn check_shared(auth: &AuthUser, shared: bool) -> Result<(), Error> {
    if shared && auth.user.role != Role::Admin {
        return Err(Error::forbidden(
            "admin-required",
            "Only an admin can share a template with every user.",
        ));
    }
    Ok(())
}

/// A template the user may read, parsed.
pub async fn load(state: &AppState, user_id: Uuid, id: Uuid) -> Result<Template, Error> {
    let record = store::find_readable(&state.db, user_id, id)
        .await?
        .or_not_found("template")?;
    serde_json::from_str(&record.body)
        .map_err(|e| Error::Internal(anyhow::anyhow!("stored template {id}: {e}")))
}

/// The template applied to a table's columns; a mapped column the table lacks is a 422 that
/// names every missing one.
pub fn resolve(template: Option<&Template>, columns: &[Column]) -> Result<Resolved, Error> {
    let Some(template) = template else {
        return Ok(Resolved::identity(columns));
    };
    template.resolve(columns).map_err(|missing| {
        let names = missing.missing.join(", ");
        Error::Unprocessable {
            code: "template-columns-missing",
            detail: format!("The template maps columns this table does not have: {names}."),
            errors: missing
                .missing
                .iter()
                .map(|name| FieldError::new("template_id", format!("no column named `{name}`")))
                .collect(),
        }
    })
}

/// Save a template.
#[utoipa::path(post, path = "/templates", tag = "templates", request_body = TemplateRequest,
    responses((status = 201, description = "Saved", body = TemplateResponse)))]
async fn create_template(
    State(state): State<AppState>,
    auth: AuthUser,
    ValidatedJson(body): ValidatedJson<TemplateRequest>,
) -> Result<impl IntoResponse, Error> {
    check_shared(&auth, body.shared)?;
    let template = parse(body.template)?;
    let record = store::create(
        &state.db,
        auth.user.id,
        NewTemplate {
            name: body.name.trim(),
            description: body.description.as_deref().filter(|d| !d.is_empty()),
            body: &to_body(&template)?,
            shared: body.shared,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(response(record, auth.user.id)?)))
}

/// The caller's templates and the shared ones, newest first.
#[utoipa::path(get, path = "/templates", tag = "templates", params(PageQuery),
    responses((status = 200, description = "Templates", body = Page<TemplateResponse>)))]
async fn list_templates(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(page): Query<PageQuery>,
) -> Result<Json<Page<TemplateResponse>>, Error> {
    let (limit, before) = page.parse()?;
    let rows = store::list(&state.db, auth.user.id, before, limit + 1).await?;
    let user_id = auth.user.id;
    let page = Page::from_rows(rows, limit, |r| r.id, |r| response(r, user_id));
    Ok(Json(Page {
        items: page.items.into_iter().collect::<Result<_, _>>()?,
        next_cursor: page.next_cursor,
    }))
}

/// One template (own or shared).
#[utoipa::path(get, path = "/templates/{id}", tag = "templates",
    params(("id" = Uuid, Path, description = "Template id")),
    responses((status = 200, description = "The template", body = TemplateResponse)))]
async fn get_template(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<TemplateResponse>, Error> {
    let record = store::find_readable(&state.db, auth.user.id, id)
        .await?
        .or_not_found("template")?;
    Ok(Json(response(record, auth.user.id)?))
}

/// 404 for a template the user cannot see, 403 for a shared one they do not own.
async fn owned_or_error(state: &AppState, user_id: Uuid, id: Uuid) -> Result<(), Error> {
    match store::find_readable(&state.db, user_id, id).await? {
        None => Err(Error::NotFound("template")),
        Some(r) if r.owner_id != user_id => Err(Error::forbidden(
            "template-read-only",
            "This template is shared with you read-only; save a copy to change it.",
        )),
        Some(_) => Ok(()),
    }
}

/// Change a template's name, description, sharing or content.
#[utoipa::path(patch, path = "/templates/{id}", tag = "templates", request_body = TemplatePatch,
    params(("id" = Uuid, Path, description = "Template id")),
    responses((status = 200, description = "Updated", body = TemplateResponse)))]
async fn update_template(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
    ValidatedJson(body): ValidatedJson<TemplatePatch>,
) -> Result<Json<TemplateResponse>, Error> {
    owned_or_error(&state, auth.user.id, id).await?;
    if let Some(shared) = body.shared {
        check_shared(&auth, shared)?;
    }
    let template_body = body
        .template
        .map(parse)
        .transpose()?
        .as_ref()
        .map(to_body)
        .transpose()?;
    let change = TemplateUpdate {
        name: body.name.as_deref().map(str::trim),
        description: body
            .description
            .as_deref()
            .map(|d| Some(d).filter(|d| !d.is_empty())),
        body: template_body.as_deref(),
        shared: body.shared,
    };
    if !store::update(&state.db, auth.user.id, id, change).await? {
        return Err(Error::NotFound("template"));
    }
    get_template(State(state), auth, Path(id)).await
}

/// Delete a template (export jobs already queued keep the copy they took).
#[utoipa::path(delete, path = "/templates/{id}", tag = "templates",
    params(("id" = Uuid, Path, description = "Template id")),
    responses((status = 204, description = "Deleted")))]
async fn delete_template(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, Error> {
    owned_or_error(&state, auth.user.id, id).await?;
    if !store::soft_delete(&state.db, auth.user.id, id).await? {
        return Err(Error::NotFound("template"));
    }
    Ok(StatusCode::NO_CONTENT)
}
