//! A query of a version's rows as the API takes it (`filter=column:cmp:value`,
//! `sort=column[:asc|:desc]`), read against the version's columns into values storage can
//! compare: the SQL is the store's, the reading of the user's text is here.

use crate::table::{ColumnType, Value};
use crate::version::{Cmp, Schema};

/// What a filter compares a cell with, as the database sees the cell.
#[derive(Clone, Debug, PartialEq)]
pub enum FilterValue {
    /// `is_null` / `not_null` compare with nothing.
    None,
    Number(f64),
    Bool(bool),
    /// Text in the stored form (ISO dates); for `contains`, a lower-case `LIKE` pattern with
    /// `\` escaping `%`, `_` and itself.
    Text(String),
}

/// One condition on the rows listed.
#[derive(Clone, Debug, PartialEq)]
pub struct RowFilter {
    pub column_id: String,
    pub ty: ColumnType,
    pub cmp: Cmp,
    pub value: FilterValue,
}

/// One sort key: the column's id and type, and whether it runs descending.
pub type SortKey = (String, ColumnType, bool);

/// Why a query parameter cannot be read: which one (`filter`, `sort`) and a sentence.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct QueryError {
    pub field: &'static str,
    pub message: String,
}

fn column<'a>(
    schema: &'a Schema,
    name: &str,
    field: &'static str,
) -> Result<&'a crate::table::Column, QueryError> {
    schema.column(name).ok_or_else(|| QueryError {
        field,
        message: format!("no column named `{name}`"),
    })
}

/// `name`, `name:asc` or `name:desc`.
pub fn parse_sort(text: &str, schema: &Schema) -> Result<SortKey, QueryError> {
    let (name, desc) = match text.rsplit_once(':') {
        Some((n, "desc")) => (n, true),
        Some((n, "asc")) => (n, false),
        _ => (text, false),
    };
    let col = column(schema, name, "sort")?;
    Ok((col.id.clone(), col.ty, desc))
}

/// `column:cmp:value`, the value read in the column's conventions (`03/04/2024` as its dates
/// are, a decimal comma where its numbers have one).
pub fn parse_filter(text: &str, schema: &Schema) -> Result<RowFilter, QueryError> {
    let bad = |msg: &str| QueryError {
        field: "filter",
        message: format!("`{text}`: {msg}"),
    };
    let as_cmp = |s: &str| serde_json::from_value::<Cmp>(serde_json::Value::String(s.to_owned()));
    // The column's name may hold colons too ("Time: start"): the first colon followed by a
    // comparison and a colon (or the end) ends the name.
    let split = text.match_indices(':').find_map(|(i, _)| {
        let rest = &text[i + 1..];
        let (cmp, value) = rest.split_once(':').unwrap_or((rest, ""));
        as_cmp(cmp).ok().map(|cmp| (&text[..i], cmp, value))
    });
    let Some((name, cmp, raw_value)) = split else {
        return Err(if text.contains(':') {
            bad("cmp must be eq, ne, lt, lte, gt, gte, contains, is_null or not_null")
        } else {
            bad("expected column:cmp:value")
        });
    };
    let col = column(schema, name, "filter")?;
    let value = match cmp {
        Cmp::IsNull | Cmp::NotNull => FilterValue::None,
        Cmp::Contains => {
            let escaped = raw_value
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            FilterValue::Text(format!("%{escaped}%"))
        }
        _ => {
            let v = col.read_text(raw_value).map_err(|e| bad(&e.to_string()))?;
            match (&v, col.ty) {
                (Value::Null, _) => return Err(bad("compare with is_null / not_null instead")),
                (Value::Boolean(b), _) => FilterValue::Bool(*b),
                (
                    _,
                    ColumnType::Integer
                    | ColumnType::Decimal
                    | ColumnType::Float
                    | ColumnType::Percent
                    | ColumnType::Currency,
                ) => FilterValue::Number(v.as_f64().unwrap_or(0.0)),
                _ => FilterValue::Text(match v.to_json() {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                }),
            }
        }
    };
    Ok(RowFilter {
        column_id: col.id.clone(),
        ty: col.ty,
        cmp,
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Column;

    fn schema() -> Schema {
        Schema::new(vec![
            Column::new("c1", "Time: start", ColumnType::Text),
            Column::new("c2", "Passengers", ColumnType::Integer),
            Column::new("c3", "Open", ColumnType::Boolean),
        ])
    }

    #[test]
    fn a_column_name_may_hold_colons() {
        let f = parse_filter("Time: start:eq:09:30", &schema()).unwrap();
        assert_eq!((f.column_id.as_str(), f.cmp), ("c1", Cmp::Eq));
        assert_eq!(f.value, FilterValue::Text("09:30".into()));
    }

    #[test]
    fn values_are_read_in_the_columns_type() {
        let s = schema();
        let f = parse_filter("Passengers:gt:1200", &s).unwrap();
        assert_eq!(f.value, FilterValue::Number(1200.0));
        let f = parse_filter("Open:eq:true", &s).unwrap();
        assert_eq!(f.value, FilterValue::Bool(true));
        let err = parse_filter("Passengers:gt:lots", &s).unwrap_err();
        assert_eq!(err.field, "filter");
        assert!(err.message.starts_with("`Passengers:gt:lots`: "), "{err}");
        let f = parse_filter("Passengers:is_null", &s).unwrap();
        assert_eq!(f.value, FilterValue::None);
    }

    #[test]
    fn contains_is_a_lower_case_pattern_with_its_wildcards_escaped() {
        let f = parse_filter("Time: start:contains:50%_A\\b", &schema()).unwrap();
        assert_eq!(f.value, FilterValue::Text("%50\\%\\_a\\\\b%".into()));
    }

    #[test]
    fn unknown_columns_and_comparisons_are_named() {
        let s = schema();
        assert_eq!(
            parse_filter("Nope:eq:1", &s).unwrap_err().message,
            "no column named `Nope`"
        );
        assert!(
            parse_filter("Passengers:about:3", &s)
                .unwrap_err()
                .message
                .contains("cmp must be")
        );
        assert!(
            parse_filter("Passengers", &s)
                .unwrap_err()
                .message
                .contains("expected column:cmp:value")
        );
        assert_eq!(
            parse_sort("Passengers:desc", &s).unwrap(),
            ("c2".to_owned(), ColumnType::Integer, true)
        );
        assert!(!parse_sort("Open", &s).unwrap().2);
        assert_eq!(parse_sort("Nope:asc", &s).unwrap_err().field, "sort");
    }
}
