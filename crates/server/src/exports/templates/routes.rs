use super::{
    TemplatePatch, TemplateRequest, TemplateResponse, check_shared, owned_or_error, parse,
    response, to_body,
};
use crate::auth::identity::AuthUser;
use crate::db::templates::{self as store, NewTemplate, TemplateUpdate};
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
        .routes(routes!(create_template, list_templates))
        .routes(routes!(get_template, update_template, delete_template))
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
