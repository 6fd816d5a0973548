use super::{DeleteAccount, all_pages, archive_name, start_archive, write_archive};
use crate::audit::{self, Event};
use crate::auth::identity::{AuthUser, ClientInfo, SessionUser};
use crate::db::jobs;
use crate::db::{tables as table_store, users};
use crate::error::{Error, OrNotFound};
use crate::exports::render::Control;
use crate::http::extract::ValidatedJson;
use crate::jobs::Kind;
use crate::jobs::routes::job_created;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(export_account, start_account_export))
        .routes(routes!(delete_account))
}

/// Download everything you have stored as one ZIP archive. While your tables hold at most
/// `exports.archive_sync_rows` rows in all, the archive is the answer (200); for a larger
/// account the answer is 202 with the `account_archive` job that writes it (follow it at
/// `Location`, download it from the job's `download_url`). While an archive job is queued or
/// running, the answer is that job.
#[utoipa::path(get, path = "/account/export", tag = "account",
    responses(
        (status = 200, description = "A ZIP archive", content_type = "application/zip", body = Vec<u8>),
        (status = 202, description = "The archive is written by a job", body = crate::jobs::routes::JobResponse),
    ))]
async fn export_account(
    State(state): State<AppState>,
    auth: AuthUser,
    client: ClientInfo,
) -> Result<Response, Error> {
    let owner = auth.user.id;
    if let Some(job) = jobs::active(&state.db, owner, Kind::AccountArchive.as_str()).await? {
        return Ok(job_created(job, StatusCode::ACCEPTED));
    }
    let tables =
        all_pages(|before| table_store::list(&state.db, owner, before, 200, false)).await?;
    let rows: u64 = tables
        .iter()
        .map(|t| u64::try_from(t.row_count).unwrap_or(0))
        .sum();
    if rows > state.config.exports.archive_sync_rows {
        let job = start_archive(&state, owner, &client).await?;
        return Ok(job_created(job, StatusCode::ACCEPTED));
    }
    let (archive, _) = write_archive(&state, owner, Arc::new(Control::default())).await?;
    audit::record(
        &state.db,
        Some(&client),
        Event::new("account.exported", Some(owner)).target("user", owner),
    )
    .await;
    let file = archive.reopen().map_err(|e| Error::Internal(e.into()))?;
    drop(archive);
    Ok(crate::exports::file_response(
        file,
        "application/zip",
        &archive_name(),
    ))
}

/// Start writing the archive of everything you have stored as a job, whatever the account's
/// size: 202 with the `account_archive` job (or the one already queued or running).
#[utoipa::path(post, path = "/account/export", tag = "account",
    responses((status = 202, description = "The job that writes the archive", body = crate::jobs::routes::JobResponse)))]
async fn start_account_export(
    State(state): State<AppState>,
    auth: AuthUser,
    client: ClientInfo,
) -> Result<Response, Error> {
    let job = start_archive(&state, auth.user.id, &client).await?;
    Ok(job_created(job, StatusCode::ACCEPTED))
}

/// Delete your account and everything in it, for good. Needs your password.
#[utoipa::path(delete, path = "/account", tag = "account", request_body = DeleteAccount,
    responses((status = 204, description = "Deleted")))]
async fn delete_account(
    State(state): State<AppState>,
    auth: SessionUser,
    client: ClientInfo,
    ValidatedJson(body): ValidatedJson<DeleteAccount>,
) -> Result<StatusCode, Error> {
    let user = users::find_by_id(&state.db, auth.user.id)
        .await?
        .or_not_found("user")?;
    crate::auth::service::confirm_password(
        &state,
        &user,
        &body.password,
        &client,
        ("password", "is not your password"),
    )
    .await?;
    // Jobs and their files first: the jobs that name the files go with the account, and a
    // worker still running one must find it cancelled (it then leaves nothing behind).
    crate::jobs::end_all(&state, user.id).await?;
    let _ = crate::google::oauth::disconnect(&state, user.id).await;
    users::delete_for_good(&state.db, user.id).await?;
    state.sessions.forget_user(user.id);
    audit::record(
        &state.db,
        Some(&client),
        Event::new("account.deleted", Some(user.id)).target("user", user.id),
    )
    .await;
    tracing::info!(user.id = %user.id, "account deleted");
    Ok(StatusCode::NO_CONTENT)
}
