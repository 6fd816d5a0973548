use super::{ModelKeyResponse, PutModelKey, remove, save};
use crate::auth::identity::SessionUser;
use crate::error::Error;
use crate::http::extract::{Path, ValidatedJson};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(put_key, delete_key))
}

/// Save your own key for a configured model: your requests to it then use your key (and your
/// provider account) instead of the configured one. Needs a password sign-in, not an API key.
/// The key is never shown again.
#[utoipa::path(put, path = "/models/{name}/key", tag = "conversations", request_body = PutModelKey,
    params(("name" = String, Path, description = "A model name from `GET /models`")),
    responses(
        (status = 200, description = "Saved", body = ModelKeyResponse),
        (status = 403, description = "Signed in with an API key", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such model", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn put_key(
    State(state): State<AppState>,
    auth: SessionUser,
    Path(name): Path<String>,
    body: Result<ValidatedJson<PutModelKey>, Error>,
) -> Result<Json<ModelKeyResponse>, Error> {
    let ValidatedJson(body) = body.map_err(|err| match err {
        // serde's own words can quote what was sent (a key sent as a number, say).
        Error::Validation(_) => Error::field("api_key", "must be a string"),
        other => other,
    })?;
    let saved = save(&state, auth.user.id, &name, &body.api_key).await?;
    Ok(Json(saved.into()))
}

/// Delete your own key for a model; your requests use the configured key again.
#[utoipa::path(delete, path = "/models/{name}/key", tag = "conversations",
    params(("name" = String, Path, description = "A model name from `GET /models`")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Signed in with an API key", body = crate::http::error::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No key saved for this model", body = crate::http::error::Problem, content_type = "application/problem+json"),
    ))]
async fn delete_key(
    State(state): State<AppState>,
    auth: SessionUser,
    Path(name): Path<String>,
) -> Result<StatusCode, Error> {
    remove(&state, auth.user.id, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
