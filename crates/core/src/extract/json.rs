//! Tables in JSON: the structured-output shape `{"columns": [...], "rows": [...]}`, several of
//! them under `"tables"`, arrays of flat objects, and arrays of arrays headed by names.
//!
//! JSON is read into [`Json`], which keeps object members in the order written (serde_json's
//! own map sorts keys unless a crate-wide feature is on), so columns taken from object keys
//! come out in the order the model wrote them.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::json;

use super::{ExtractError, MAX_COLUMNS};
use crate::table::{ColumnType, DateOrder, Table, Typed, Value, infer_typed, unique_names};

/// The table in a JSON upload. The whole text must be one JSON value holding exactly one table.
pub fn parse_json_table(text: &str) -> Result<Table, ExtractError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text).trim();
    if text.is_empty() {
        return Err(ExtractError::Empty);
    }
    let text = crate::exact::json_text_as_written(text);
    let value: Json = serde_json::from_str(&text).map_err(|e| ExtractError::Json {
        message: e.to_string(),
    })?;
    let mut tables = Vec::new();
    collect_tables(&value, DateOrder::MonthFirst, &mut tables);
    match tables.len() {
        0 => Err(ExtractError::NotATable),
        1 => tables.swap_remove(0),
        count => Err(ExtractError::SeveralTables { count }),
    }
}

/// The structured-output form of a table: `{"columns": [{"name", "type"}], "rows": [[...]]}`,
/// cells in their canonical JSON form (`Value::to_json`). A column's description is included
/// when it has one.
pub fn to_json(table: &Table) -> serde_json::Value {
    let columns: Vec<serde_json::Value> = table
        .columns
        .iter()
        .map(|c| {
            let mut column = json!({ "name": c.name, "type": c.ty.as_str() });
            if let Some(description) = &c.description {
                column["description"] = json!(description);
            }
            column
        })
        .collect();
    let rows: Vec<serde_json::Value> = table
        .rows
        .iter()
        .map(|row| row.iter().map(Value::to_json).collect())
        .collect();
    json!({ "columns": columns, "rows": rows })
}

/// Reads the JSON value starting at byte `at` (and ending before `limit`) and the tables in
/// it: none when it is JSON but not a table. The `usize` is where the value ends; when no
/// JSON value starts there, the error is how many bytes were read before that was clear.
pub(super) fn tables_at(
    text: &str,
    at: usize,
    limit: usize,
    dates: DateOrder,
) -> Result<(Vec<Table>, usize), usize> {
    let source = &text[at..limit.max(at)];
    let mut stream = serde_json::Deserializer::from_str(source).into_iter::<Json>();
    let value = match stream.next() {
        Some(Ok(value)) => value,
        Some(Err(e)) => return Err(error_offset(source, &e)),
        None => return Err(source.len()),
    };
    let read = stream.byte_offset();
    let end = at + read;
    // Numbers serde_json would round are read again as the strings of their digits (only
    // when there is one: the offsets above are the text's as written).
    let value = match crate::exact::json_text_as_written(&source[..read]) {
        Cow::Borrowed(_) => value,
        Cow::Owned(exact) => serde_json::from_str(&exact).unwrap_or(value),
    };
    let mut tables = Vec::new();
    collect_tables(&value, dates, &mut tables);
    // A table too wide to keep is skipped: a reply never fails to be read.
    Ok((tables.into_iter().filter_map(Result::ok).collect(), end))
}

/// The byte offset in `source` of a parse error, from its line and column.
fn error_offset(source: &str, e: &serde_json::Error) -> usize {
    let line_start: usize = source
        .split_inclusive('\n')
        .take(e.line().saturating_sub(1))
        .map(str::len)
        .sum();
    (line_start + e.column()).min(source.len())
}

/// A JSON value whose objects keep their members in the order written.
#[derive(Clone, Debug, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// The member `key`; the last one wins when a key repeats, as in serde_json.
    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Self::Object(members) => members.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    /// The cell's text as a person would have typed it: strings as they are, nested values as
    /// their JSON.
    fn text(&self) -> Cow<'_, str> {
        match self {
            Self::Null => Cow::Borrowed(""),
            Self::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            Self::Number(n) => Cow::Owned(n.to_string()),
            Self::String(s) => Cow::Borrowed(s),
            Self::Array(_) | Self::Object(_) => {
                Cow::Owned(serde_json::to_string(self).unwrap_or_default())
            }
        }
    }

    fn to_serde(&self) -> serde_json::Value {
        match self {
            Self::Null => serde_json::Value::Null,
            Self::Bool(b) => serde_json::Value::Bool(*b),
            Self::Number(n) => serde_json::Value::Number(n.clone()),
            Self::String(s) => serde_json::Value::String(s.clone()),
            Self::Array(items) => items.iter().map(Self::to_serde).collect(),
            Self::Object(members) => serde_json::Value::Object(
                members
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_serde()))
                    .collect(),
            ),
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Json::Null, Json::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut members = Vec::new();
        while let Some(member) = map.next_entry()? {
            members.push(member);
        }
        Ok(Json::Object(members))
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Null => serializer.serialize_unit(),
            Self::Bool(b) => serializer.serialize_bool(*b),
            Self::Number(n) => n.serialize(serializer),
            Self::String(s) => serializer.serialize_str(s),
            Self::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Self::Object(members) => {
                let mut map = serializer.serialize_map(Some(members.len()))?;
                for (k, v) in members {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

/// The tables a JSON value holds, in order. Recognised shapes:
/// - `{"tables": [t1, t2, ...]}`: each `t` read as below;
/// - `{"columns": [...], "rows": [...]}` (`"data"` also names the rows, as pandas writes it);
/// - `{"rows": [{...}, ...]}` and `[{...}, ...]`: columns from the objects' keys;
/// - `[["name", ...], [cell, ...], ...]`: an array of arrays whose first row is all strings;
/// - an object with a single member holding one of these (`{"result": [...]}`).
fn collect_tables(value: &Json, dates: DateOrder, out: &mut Vec<Result<Table, ExtractError>>) {
    if let Some(Json::Array(tables)) = value.get("tables") {
        out.extend(tables.iter().filter_map(|t| table_of(t, dates)));
        return;
    }
    if let Some(table) = table_of(value, dates) {
        out.push(table);
        return;
    }
    // serde_json stops at 128 levels of nesting, which bounds this recursion.
    if let Json::Object(members) = value
        && let [(_, only)] = members.as_slice()
    {
        collect_tables(only, dates, out);
    }
}

/// A column as declared in JSON.
#[derive(Default)]
struct ColumnSpec {
    name: String,
    ty: Option<ColumnType>,
    description: Option<String>,
}

impl ColumnSpec {
    fn from_json(value: &Json) -> Self {
        match value {
            Json::Object(_) => Self {
                name: ["name", "title", "header", "key", "id"]
                    .iter()
                    .find_map(|k| value.get(k).map(Json::text))
                    .map(Cow::into_owned)
                    .unwrap_or_default(),
                // An unknown type is not an error: the column's type is inferred instead.
                ty: value
                    .get("type")
                    .and_then(Json::as_str)
                    .and_then(|t| ColumnType::from_str(t).ok()),
                description: value
                    .get("description")
                    .and_then(Json::as_str)
                    .map(str::to_owned),
            },
            other => Self {
                name: other.text().into_owned(),
                ..Self::default()
            },
        }
    }
}

fn table_of(value: &Json, dates: DateOrder) -> Option<Result<Table, ExtractError>> {
    match value {
        Json::Object(_) => {
            let Some(Json::Array(rows)) = value.get("rows").or_else(|| value.get("data")) else {
                return None;
            };
            let columns = match value.get("columns") {
                Some(Json::Array(columns)) => columns.iter().map(ColumnSpec::from_json).collect(),
                Some(_) => return None,
                None if !rows.is_empty() && rows.iter().all(|r| matches!(r, Json::Object(_))) => {
                    Vec::new()
                }
                None => return None,
            };
            Some(build(columns, rows, dates))
        }
        Json::Array(items) if !items.is_empty() => {
            if items.iter().all(|r| matches!(r, Json::Object(_))) {
                return Some(build(Vec::new(), items, dates));
            }
            let (Json::Array(header), rest) = (&items[0], &items[1..]) else {
                return None;
            };
            let named = !header.is_empty() && header.iter().all(|h| matches!(h, Json::String(_)));
            let tabular = !rest.is_empty() && rest.iter().all(|r| matches!(r, Json::Array(_)));
            (named && tabular).then(|| {
                build(
                    header.iter().map(ColumnSpec::from_json).collect(),
                    rest,
                    dates,
                )
            })
        }
        _ => None,
    }
}

/// Lays rows out under columns: arrays by position, objects by column name (a key that names
/// no column adds one, so nothing the model wrote is lost), anything else as a one-cell row.
fn build(
    mut specs: Vec<ColumnSpec>,
    rows: &[Json],
    dates: DateOrder,
) -> Result<Table, ExtractError> {
    if specs.len() > MAX_COLUMNS {
        return Err(ExtractError::TooManyColumns { found: specs.len() });
    }
    let mut by_name: HashMap<String, usize> = HashMap::new();
    let mut by_key: HashMap<String, usize> = HashMap::new();
    for (i, spec) in specs.iter().enumerate() {
        by_name.entry(spec.name.clone()).or_insert(i);
        by_key.entry(name_key(&spec.name)).or_insert(i);
    }
    // Column-major, as each column is typed on its own.
    let mut cells: Vec<Vec<Option<&Json>>> = vec![Vec::with_capacity(rows.len()); specs.len()];
    for (r, row) in rows.iter().enumerate() {
        for column in &mut cells {
            column.push(None);
        }
        match row {
            Json::Array(items) => {
                if items.len() > MAX_COLUMNS {
                    return Err(ExtractError::TooManyColumns { found: items.len() });
                }
                for (i, cell) in items.iter().enumerate() {
                    place(&mut cells, r, i, cell);
                }
            }
            Json::Object(members) => {
                for (key, cell) in members {
                    let i = match by_name.get(key).or_else(|| by_key.get(&name_key(key))) {
                        Some(&i) => i,
                        None => {
                            let i = specs.len().max(cells.len());
                            if i >= MAX_COLUMNS {
                                return Err(ExtractError::TooManyColumns { found: i + 1 });
                            }
                            by_name.insert(key.clone(), i);
                            by_key.entry(name_key(key)).or_insert(i);
                            specs.resize_with(i, ColumnSpec::default);
                            specs.push(ColumnSpec {
                                name: key.clone(),
                                ..ColumnSpec::default()
                            });
                            i
                        }
                    };
                    place(&mut cells, r, i, cell);
                }
            }
            other => place(&mut cells, r, 0, other),
        }
    }
    let width = specs.len().max(cells.len());
    if width == 0 {
        return Err(ExtractError::NotATable);
    }
    cells.resize_with(width, || vec![None; rows.len()]);
    specs.resize_with(width, ColumnSpec::default);
    let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
    let mut table_rows: Vec<Vec<Value>> =
        (0..rows.len()).map(|_| Vec::with_capacity(width)).collect();
    let mut columns = Vec::with_capacity(width);
    for (i, ((name, spec), column)) in unique_names(&names, width)
        .into_iter()
        .zip(specs)
        .zip(cells)
        .enumerate()
    {
        let (typed, values) = typed_column(spec.ty, &column, dates);
        for (row, value) in table_rows.iter_mut().zip(values) {
            row.push(value);
        }
        let mut c = typed.column(format!("c{}", i + 1), name);
        c.description = spec.description;
        columns.push(c);
    }
    Ok(Table {
        columns,
        rows: table_rows,
    })
}

/// Puts `cell` in column `i` of row `r`, adding the column if it is new.
fn place<'j>(cells: &mut Vec<Vec<Option<&'j Json>>>, r: usize, i: usize, cell: &'j Json) {
    while cells.len() <= i {
        cells.push(vec![None; r + 1]);
    }
    cells[i][r] = Some(cell);
}

/// A column's type and values: the declared type when every cell converts to it, otherwise the
/// type inferred from the cells' text (a cell that does not fit is never dropped).
fn typed_column(
    declared: Option<ColumnType>,
    cells: &[Option<&Json>],
    dates: DateOrder,
) -> (Typed, Vec<Value>) {
    if let Some(ty) = declared {
        let converted: Result<Vec<Value>, _> = cells
            .iter()
            .map(|cell| match cell {
                None => Ok(Value::Null),
                // Nested values kept as text keep their members in the order written.
                Some(nested @ (Json::Array(_) | Json::Object(_))) if ty == ColumnType::Text => {
                    Ok(Value::Text(nested.text().into_owned()))
                }
                Some(cell) => Value::from_json(&cell.to_serde(), ty),
            })
            .collect();
        if let Ok(values) = converted {
            return (
                Typed {
                    ty,
                    reading: None,
                    dates: None,
                },
                values,
            );
        }
    }
    let texts: Vec<Cow<'_, str>> = cells
        .iter()
        .map(|c| c.map_or(Cow::Borrowed(""), Json::text))
        .collect();
    let typed = infer_typed(texts.iter().map(AsRef::as_ref), dates);
    let how = typed.conventions();
    let values = texts
        .iter()
        .map(|t| Value::parse_with(t, typed.ty, how).unwrap_or_else(|_| Value::Text(t.to_string())))
        .collect();
    (typed, values)
}

/// Row objects are matched to columns by exact name first, then ignoring case, spaces and
/// underscores (`"Unit price"` and `"unit_price"`), as `find_column` does.
fn name_key(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_whitespace() && *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use rust_decimal::Decimal;

    use super::*;

    fn table(text: &str) -> Table {
        parse_json_table(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn names(t: &Table) -> Vec<&str> {
        t.columns.iter().map(|c| c.name.as_str()).collect()
    }

    fn types(t: &Table) -> Vec<ColumnType> {
        t.columns.iter().map(|c| c.ty).collect()
    }

    #[test]
    fn declared_types_are_honoured_even_when_text_would_infer_another() {
        let t = table(
            r#"{"columns": [{"name": "Code", "type": "text"}, {"name": "Price", "type": "decimal",
                "description": "net"}], "rows": [["007", 3], ["12", "4.50"]]}"#,
        );
        assert_eq!(types(&t), [ColumnType::Text, ColumnType::Decimal]);
        assert_eq!(t.rows[0][0], Value::Text("007".into()));
        assert_eq!(t.rows[1][1], Value::Decimal(Decimal::new(450, 2)));
        assert_eq!(t.columns[1].description.as_deref(), Some("net"));
    }

    #[test]
    fn a_cell_that_does_not_fit_the_declared_type_makes_the_column_inferred_and_keeps_the_cell() {
        let t = table(r#"{"columns": [{"name": "n", "type": "integer"}], "rows": [[1], ["two"]]}"#);
        assert_eq!(t.columns[0].ty, ColumnType::Text);
        assert_eq!(t.rows[1][0], Value::Text("two".into()));
        assert_eq!(t.rows[0][0], Value::Text("1".into()));
    }

    #[test]
    fn unknown_or_missing_types_are_inferred() {
        let t = table(
            r#"{"columns": [{"name": "a", "type": "blob"}, "b"], "rows": [[1, "x"], [2, "y"]]}"#,
        );
        assert_eq!(types(&t), [ColumnType::Integer, ColumnType::Text]);
    }

    #[test]
    fn arrays_of_objects_take_columns_from_keys_in_the_order_first_seen() {
        let t =
            table(r#"[{"zeta": 1, "alpha": "x"}, {"alpha": "y", "mid": {"k": [1, 2], "a": 0}}]"#);
        assert_eq!(names(&t), ["zeta", "alpha", "mid"]);
        assert_eq!(t.rows[1][0], Value::Null);
        assert_eq!(t.rows[1][2], Value::Text(r#"{"k":[1,2],"a":0}"#.into()));
    }

    #[test]
    fn row_objects_are_matched_to_declared_columns_by_name() {
        let t = table(
            r#"{"columns": ["Unit price", "Name"], "rows": [{"name": "a", "unit_price": 2, "extra": true}]}"#,
        );
        assert_eq!(names(&t), ["Unit price", "Name", "extra"]);
        assert_eq!(
            t.rows[0],
            [
                Value::Integer(2),
                Value::Text("a".into()),
                Value::Boolean(true)
            ]
        );
    }

    #[test]
    fn ragged_array_rows_are_padded_and_widened() {
        let t = table(r#"{"columns": ["a"], "rows": [[1, 2], [3]]}"#);
        assert_eq!(names(&t), ["a", "Column 2"]);
        assert_eq!(t.rows[1], [Value::Integer(3), Value::Null]);
    }

    #[test]
    fn arrays_of_arrays_headed_by_names_are_tables() {
        let t = table(r#"[["city", "pop"], ["Paris", 2100000], ["Lyon", 520000]]"#);
        assert_eq!(names(&t), ["city", "pop"]);
        assert_eq!(t.rows[1][1], Value::Integer(520_000));
    }

    #[test]
    fn a_single_wrapping_member_is_looked_through() {
        let t = table(r#"{"result": {"data": [{"a": 1}]}}"#);
        assert_eq!(t.rows, [[Value::Integer(1)]]);
    }

    #[test]
    fn uploads_say_why_they_are_not_a_table() {
        assert_eq!(parse_json_table("  "), Err(ExtractError::Empty));
        assert_eq!(
            parse_json_table(r#"{"a": 1}"#),
            Err(ExtractError::NotATable)
        );
        assert_eq!(parse_json_table("[1, 2]"), Err(ExtractError::NotATable));
        assert!(matches!(
            parse_json_table("{\"rows\": ["),
            Err(ExtractError::Json { .. })
        ));
        assert_eq!(
            parse_json_table(r#"{"tables": [[{"a": 1}], [{"b": 2}]]}"#),
            Err(ExtractError::SeveralTables { count: 2 })
        );
    }

    #[test]
    fn more_columns_than_the_limit_is_an_error() {
        let row: Vec<u32> = vec![0; MAX_COLUMNS + 1];
        let text = json!({ "columns": ["a"], "rows": [row] }).to_string();
        assert_eq!(
            parse_json_table(&text),
            Err(ExtractError::TooManyColumns {
                found: MAX_COLUMNS + 1
            })
        );
    }

    #[test]
    fn the_written_form_reads_back_to_the_same_table() {
        let t = table(
            r#"{"columns": [{"name": "when", "type": "date"}, {"name": "cost", "type": "currency"},
                {"name": "x", "type": "float"}], "rows": [["2024-01-02", "$5", 0.5], [null, "3 EUR", 2]]}"#,
        );
        let back = table(&to_json(&t).to_string());
        assert_eq!(back, t);
    }
}
