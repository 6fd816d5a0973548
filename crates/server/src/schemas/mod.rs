//! Target schema presets: the columns (names, types, descriptions, rules) a user wants tables
//! in replies to have, saved for reuse by any conversation (`target_schema_id`).

pub mod routes;

use chrono::{DateTime, Utc};
use garde::Validate;
use serde::{Deserialize, Serialize};
use sheetgpt_core::table::{Column, ColumnType};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::schemas::{self as store, SchemaPreset};
use crate::error::{Error, FieldError};
use crate::tables::service::ColumnSpec;

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

pub(crate) fn response(p: SchemaPreset) -> Result<SchemaResponse, Error> {
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
pub(crate) fn parse_columns(specs: &[ColumnSpec]) -> Result<Vec<Column>, Error> {
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
pub(crate) fn row_bounds(
    min: Option<i32>,
    max: Option<i32>,
) -> Result<(Option<i32>, Option<i32>), Error> {
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
