use super::{LinkListQuery, LinkResponse, SyncQueued, enqueue, find, response};
use crate::auth::identity::AuthUser;
use crate::db::entity::sheet_link;
use crate::db::owned;
use crate::db::sheet_links as link_store;
use crate::error::Error;
use crate::http::extract::{Path, Query};
use crate::http::pagination::{Page, PageQuery};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_links))
        .routes(routes!(get_link, delete_link))
        .routes(routes!(sync_link))
}

/// The caller's sheet links, newest first.
#[utoipa::path(get, path = "/sheet-links", tag = "google", params(LinkListQuery),
    responses((status = 200, description = "Links", body = Page<LinkResponse>)))]
async fn list_links(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(q): Query<LinkListQuery>,
) -> Result<Json<Page<LinkResponse>>, Error> {
    let (limit, before) = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .parse()?;
    let rows = link_store::page(&state.db, auth.user.id, q.table_id, before, limit + 1).await?;
    Ok(Json(Page::from_rows(rows, limit, |r| r.id, response)))
}

/// One link: where it writes and how its last sync went.
#[utoipa::path(get, path = "/sheet-links/{id}", tag = "google",
    params(("id" = Uuid, Path, description = "Link id")),
    responses((status = 200, description = "The link", body = LinkResponse)))]
async fn get_link(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<Json<LinkResponse>, Error> {
    Ok(Json(response(find(&state, auth.user.id, id).await?)))
}

/// Unlink: the tab stays as it is and no longer follows the table.
#[utoipa::path(delete, path = "/sheet-links/{id}", tag = "google",
    params(("id" = Uuid, Path, description = "Link id")),
    responses((status = 204, description = "Unlinked")))]
async fn delete_link(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, Error> {
    if !owned::soft_delete::<sheet_link::Entity>(&state.db, auth.user.id, id).await? {
        return Err(Error::NotFound("sheet link"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Sync now (after fixing what made a sync fail, for instance).
#[utoipa::path(post, path = "/sheet-links/{id}/sync", tag = "google",
    params(("id" = Uuid, Path, description = "Link id")),
    responses((status = 202, description = "Queued", body = SyncQueued)))]
async fn sync_link(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<Uuid>,
) -> Result<(StatusCode, Json<SyncQueued>), Error> {
    let link = find(&state, auth.user.id, id).await?;
    let job = enqueue(&state, &link).await?;
    Ok((StatusCode::ACCEPTED, Json(SyncQueued { job_id: job.id })))
}
