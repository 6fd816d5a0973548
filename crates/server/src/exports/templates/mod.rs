//! `/templates`: export templates (column mapping, formats, validation rules, layout). A user
//! reads their own templates and those an admin shared; only the owner changes one.

pub mod routes;

use chrono::{DateTime, Utc};
use garde::Validate;
use serde::{Deserialize, Serialize};
use sheetgpt_core::table::Column;
use sheetgpt_core::template::{Resolved, Template};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::identity::AuthUser;
use crate::db::entity::user::Role;
use crate::db::templates::{self as store, TemplateRecord};
use crate::error::{Error, FieldError, OrNotFound};
use crate::state::AppState;

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

pub(crate) fn response(record: TemplateRecord, user_id: Uuid) -> Result<TemplateResponse, Error> {
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
pub(crate) fn to_body(template: &Template) -> Result<String, Error> {
    serde_json::to_string(template).map_err(|e| Error::Internal(e.into()))
}

pub(crate) fn check_shared(auth: &AuthUser, shared: bool) -> Result<(), Error> {
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

/// 404 for a template the user cannot see, 403 for a shared one they do not own.
pub(crate) async fn owned_or_error(state: &AppState, user_id: Uuid, id: Uuid) -> Result<(), Error> {
    match store::find_readable(&state.db, user_id, id).await? {
        None => Err(Error::NotFound("template")),
        Some(r) if r.owner_id != user_id => Err(Error::forbidden(
            "template-read-only",
            "This template is shared with you read-only; save a copy to change it.",
        )),
        Some(_) => Ok(()),
    }
}
