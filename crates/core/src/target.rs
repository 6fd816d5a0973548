//! Target schemas: the columns a user wants a reply's table to have. They become the JSON
//! Schema sent to models that support structured output (or shown in the prompt), and any
//! table found in a reply is conformed to exactly those columns.

use serde_json::{Value as Json, json};

use crate::table::{Column, ColumnType, Table, Value, find_column};

/// How many rows a reply's table should have: at least one, unless a target says otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowBounds {
    pub min: usize,
    pub max: Option<usize>,
}

impl Default for RowBounds {
    fn default() -> Self {
        Self { min: 1, max: None }
    }
}

/// The JSON Schema of a structured reply: `{"rows": [{<column>: <value>, …}, …]}` with as
/// many rows as `bounds` allow (a constrained model may otherwise answer with none).
pub fn json_schema(columns: &[Column], bounds: RowBounds) -> Json {
    let mut properties = serde_json::Map::new();
    for c in columns {
        let (ty, format): (Json, Option<&str>) = match c.ty {
            ColumnType::Integer => (json!("integer"), None),
            ColumnType::Float => (json!("number"), None),
            ColumnType::Decimal | ColumnType::Percent => (json!(["number", "string"]), None),
            ColumnType::Currency => (json!(["number", "string", "object"]), None),
            ColumnType::Boolean => (json!("boolean"), None),
            ColumnType::Date => (json!("string"), Some("date")),
            ColumnType::Datetime => (json!("string"), Some("date-time")),
            ColumnType::Url => (json!("string"), Some("uri")),
            ColumnType::Email => (json!("string"), Some("email")),
            ColumnType::Text => (json!("string"), None),
        };
        let ty = if c.rules.required {
            ty
        } else {
            match ty {
                Json::Array(mut v) => {
                    v.push(json!("null"));
                    Json::Array(v)
                }
                one => json!([one, "null"]),
            }
        };
        let mut prop = json!({"type": ty});
        if let Some(f) = format {
            prop["format"] = json!(f);
        }
        if let Some(d) = &c.description {
            prop["description"] = json!(d);
        }
        if let Some(values) = &c.rules.one_of {
            prop["enum"] = json!(values);
        }
        properties.insert(c.name.clone(), prop);
    }
    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    let mut rows = json!({
        "type": "array",
        "minItems": bounds.min,
        "items": {
            "type": "object",
            "properties": properties,
            "required": names,
            "additionalProperties": false
        }
    });
    if let Some(max) = bounds.max {
        rows["maxItems"] = json!(max);
    }
    json!({
        "type": "object",
        "properties": {"rows": rows},
        "required": ["rows"],
        "additionalProperties": false
    })
}

/// The rows of a structured reply (`{"rows": [...]}`) as a table with the target columns.
pub fn table_from_structured(value: &Json, columns: &[Column]) -> Option<(Table, Vec<String>)> {
    let rows = value.get("rows")?.as_array()?;
    let mut issues = Vec::new();
    let mut table = Table {
        columns: columns.to_vec(),
        rows: Vec::with_capacity(rows.len()),
    };
    for (r, row) in rows.iter().enumerate() {
        let obj = row.as_object()?;
        let cells = columns
            .iter()
            .map(|c| {
                let raw = obj.get(&c.name).unwrap_or(&Json::Null);
                Value::from_json(raw, c.ty).unwrap_or_else(|e| {
                    issues.push(format!("row {}: {e}", r + 1));
                    Value::Null
                })
            })
            .collect();
        table.rows.push(cells);
    }
    Some((table, issues))
}

/// Gives a found table exactly the target columns: matched by name (case and spaces aside),
/// converted to the target types (cells that do not convert become null and are reported),
/// missing columns empty, extra columns left out.
pub fn conform(found: &Table, columns: &[Column]) -> (Table, Vec<String>) {
    let mut issues = Vec::new();
    let map: Vec<Option<usize>> = columns
        .iter()
        .map(|c| find_column(&found.columns, &c.name))
        .collect();
    for (c, m) in columns.iter().zip(&map) {
        if m.is_none() {
            issues.push(format!("column `{}` was not in the reply", c.name));
        }
    }
    for (i, fc) in found.columns.iter().enumerate() {
        if !map.contains(&Some(i)) {
            issues.push(format!(
                "column `{}` is not in the target schema and was left out",
                fc.name
            ));
        }
    }
    let rows = found
        .rows
        .iter()
        .enumerate()
        .map(|(r, row)| {
            columns
                .iter()
                .zip(&map)
                .map(|(c, m)| match m.and_then(|i| row.get(i)) {
                    None => Value::Null,
                    Some(v) => v.convert(c.ty).unwrap_or_else(|e| {
                        issues.push(format!("row {}: {e}", r + 1));
                        Value::Null
                    }),
                })
                .collect()
        })
        .collect();
    (
        Table {
            columns: columns.to_vec(),
            rows,
        },
        issues,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Vec<Column> {
        let mut pop = Column::new("c2", "population", ColumnType::Integer);
        pop.rules.required = true;
        vec![
            Column::new("c1", "city", ColumnType::Text),
            pop,
            Column::new("c3", "country", ColumnType::Text),
        ]
    }

    #[test]
    fn the_schema_names_every_column_with_its_json_type() {
        let s = json_schema(&target(), RowBounds::default());
        assert_eq!(s["properties"]["rows"]["minItems"], 1, "at least one row");
        assert!(s["properties"]["rows"].get("maxItems").is_none());
        let bounded = json_schema(
            &target(),
            RowBounds {
                min: 10,
                max: Some(10),
            },
        );
        assert_eq!(bounded["properties"]["rows"]["minItems"], 10);
        assert_eq!(bounded["properties"]["rows"]["maxItems"], 10);
        let item = &s["properties"]["rows"]["items"];
        assert_eq!(item["required"], json!(["city", "population", "country"]));
        assert_eq!(item["properties"]["population"]["type"], "integer");
        assert_eq!(
            item["properties"]["city"]["type"],
            json!(["string", "null"])
        );
    }

    #[test]
    fn a_found_table_is_conformed_to_exactly_the_target_columns() {
        let found = Table::from_text(
            &["City".into(), "Population".into(), "Mayor".into()],
            &[
                vec!["Paris".into(), "2,102,650".into(), "A".into()],
                vec!["Lyon".into(), "many".into(), "B".into()],
            ],
        );
        let (t, issues) = conform(&found, &target());
        let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["city", "population", "country"]);
        assert_eq!(
            t.rows[0],
            [
                Value::Text("Paris".into()),
                Value::Integer(2_102_650),
                Value::Null
            ]
        );
        assert_eq!(t.rows[1][1], Value::Null);
        assert_eq!(issues.len(), 3, "{issues:?}");
    }

    #[test]
    fn structured_rows_become_a_typed_table() {
        let v = json!({"rows": [{"city": "Paris", "population": 2102650, "country": "France"}]});
        let (t, issues) = table_from_structured(&v, &target()).unwrap_or_default();
        assert!(issues.is_empty());
        assert_eq!(t.rows[0][1], Value::Integer(2_102_650));
    }
}
