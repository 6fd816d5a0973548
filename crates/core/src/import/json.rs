//! Tables from JSON rows, as API clients send them: arrays of values or objects keyed by
//! column name, with declared columns (name, type, description, rules) or inferred ones.

use crate::table::{Column, ColumnType, DateOrder, Rules, Table, Value, unique_names};

/// A column as a client declares it; a missing type is inferred from the values.
#[derive(Clone, Debug, Default)]
pub struct Declared {
    pub name: String,
    pub ty: Option<ColumnType>,
    pub description: Option<String>,
    pub rules: Option<Rules>,
}

/// Why JSON rows do not make a table.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JsonRowsError {
    #[error("The table has {columns} columns; at most {max} are allowed.")]
    TooWide { columns: usize, max: usize },
    #[error("rows[{index}] is neither an array of values nor an object keyed by column name")]
    NotARow { index: usize },
    /// Cells (and rules) that do not hold: the field (`rows[3][1]`, `columns[2].rules`) and
    /// what is wrong, the first 100 cells.
    #[error("{} cells or rules are invalid", .0.len())]
    Cells(Vec<(String, String)>),
}

/// A table from JSON rows (arrays of values, or objects keyed by column name), with the
/// declared columns or ones inferred from every value. Columns past `max_columns` are refused
/// before anything is sized by them.
pub fn table(
    columns: Option<Vec<Declared>>,
    rows: Vec<serde_json::Value>,
    max_columns: usize,
    dates: DateOrder,
) -> Result<Table, JsonRowsError> {
    // Refuse too many columns before anything is sized by them: rows are padded to the
    // widest one, so one long row must not make every row huge.
    let too_wide = |n: usize| JsonRowsError::TooWide {
        columns: n,
        max: max_columns,
    };
    if let Some(cols) = &columns
        && cols.len() > max_columns
    {
        return Err(too_wide(cols.len()));
    }
    for row in &rows {
        match row {
            serde_json::Value::Array(values) if values.len() > max_columns => {
                return Err(too_wide(values.len()));
            }
            serde_json::Value::Object(obj) if obj.len() > max_columns => {
                return Err(too_wide(obj.len()));
            }
            _ => {}
        }
    }
    let header: Vec<String> = match &columns {
        Some(cols) => cols.iter().map(|c| c.name.clone()).collect(),
        None => {
            // Column names from the objects' keys, in first-seen order.
            let mut names: Vec<String> = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for row in &rows {
                if let Some(obj) = row.as_object() {
                    for key in obj.keys() {
                        if seen.insert(key.as_str()) {
                            names.push(key.clone());
                        }
                    }
                }
                if names.len() > max_columns {
                    return Err(too_wide(names.len()));
                }
            }
            names
        }
    };
    let width = header.len().max(
        rows.iter()
            .filter_map(|r| r.as_array())
            .map(Vec::len)
            .max()
            .unwrap_or(0),
    );
    let mut cells: Vec<Vec<serde_json::Value>> = Vec::with_capacity(rows.len());
    for (i, row) in rows.into_iter().enumerate() {
        match row {
            serde_json::Value::Array(mut values) => {
                values.resize(width, serde_json::Value::Null);
                cells.push(values);
            }
            serde_json::Value::Object(mut obj) => cells.push(
                (0..width)
                    .map(|c| {
                        header
                            .get(c)
                            .and_then(|h| obj.remove(h))
                            .unwrap_or(serde_json::Value::Null)
                    })
                    .collect(),
            ),
            _ => {
                return Err(JsonRowsError::NotARow { index: i });
            }
        }
    }
    let names = unique_names(&header, width);
    let mut table = Table::default();
    let mut errors = Vec::new();
    for (c, name) in names.into_iter().enumerate() {
        let spec = columns.as_ref().and_then(|cols| cols.get(c));
        let mut column = match spec.and_then(|s| s.ty) {
            Some(ty) => Column::new(format!("c{}", c + 1), name, ty),
            None => {
                let texts: Vec<String> = cells.iter().map(|r| json_text(&r[c])).collect();
                crate::table::infer_typed(texts.iter().map(String::as_str), dates)
                    .column(format!("c{}", c + 1), name)
            }
        };
        let (ty, how) = (column.ty, column.conventions());
        if let Some(spec) = spec {
            column.description = spec.description.clone();
            if let Some(rules) = &spec.rules {
                if let Err(msg) = rules.check() {
                    errors.push((format!("columns[{c}].rules"), msg));
                }
                column.rules = rules.clone();
            }
        }
        for (r, row) in cells.iter().enumerate() {
            match Value::from_json_as(&row[c], ty, how) {
                Ok(v) => {
                    if table.rows.len() <= r {
                        table.rows.push(Vec::with_capacity(width));
                    }
                    table.rows[r].push(v);
                }
                Err(e) => {
                    if errors.len() < 100 {
                        errors.push((format!("rows[{r}][{c}]"), e.to_string()));
                    }
                }
            }
        }
        table.columns.push(column);
    }
    if !errors.is_empty() {
        return Err(JsonRowsError::Cells(errors));
    }
    if table.rows.len() < cells.len() {
        table.rows.resize(cells.len(), Vec::new());
    }
    Ok(table)
}

fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_take_their_keys_as_columns_in_first_seen_order() {
        let t = table(
            None,
            vec![json!({"a": 1, "b": "x"}), json!({"c": true, "a": 2})],
            10,
            DateOrder::MonthFirst,
        )
        .unwrap();
        let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.rows[1][0], Value::Integer(2));
        assert_eq!(t.rows[1][1], Value::Null);
    }

    #[test]
    fn too_many_columns_and_rows_that_are_not_rows_are_refused() {
        let wide = vec![json!([1, 2, 3])];
        assert_eq!(
            table(None, wide, 2, DateOrder::MonthFirst).unwrap_err(),
            JsonRowsError::TooWide { columns: 3, max: 2 }
        );
        assert_eq!(
            table(None, vec![json!([1]), json!(7)], 5, DateOrder::MonthFirst).unwrap_err(),
            JsonRowsError::NotARow { index: 1 }
        );
    }

    #[test]
    fn a_value_that_does_not_fit_its_declared_type_names_its_cell() {
        let cols = vec![Declared {
            name: "n".into(),
            ty: Some(ColumnType::Integer),
            ..Declared::default()
        }];
        let err = table(
            Some(cols),
            vec![json!([1]), json!(["x"])],
            5,
            DateOrder::MonthFirst,
        )
        .unwrap_err();
        let JsonRowsError::Cells(cells) = err else {
            panic!("{err:?}")
        };
        assert_eq!(cells[0].0, "rows[1][0]");
    }
}
