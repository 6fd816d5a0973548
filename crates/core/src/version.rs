//! Changes to tables: a change is a list of operations; applying one gives a new version.
//!
//! Versions are stored row by row (see the server's table store), so applying a change must
//! not need the whole table unless the operation is about every row (sort, filter-delete, a
//! type change, a column with a default). `plan` says which rows a change needs; `apply`
//! works on just those rows and returns what changed. `diff` compares two versions' schemas
//! and rows.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::table::{
    Column, ColumnType, Conventions, ConvertError, Reading, Rules, Value, closest_column,
    find_column, number_mark,
};

/// A row's stable id within its table (kept through edits and sorts).
pub type RowId = i64;

/// The columns of one version, and the next column id to hand out.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    pub columns: Vec<Column>,
    pub next_column: u32,
}

impl Schema {
    pub fn new(columns: Vec<Column>) -> Self {
        let next_column = columns
            .iter()
            .filter_map(|c| c.id.strip_prefix('c')?.parse::<u32>().ok())
            .max()
            .unwrap_or(0)
            + 1;
        Self {
            columns,
            next_column,
        }
    }

    pub fn column(&self, name_or_id: &str) -> Option<&Column> {
        self.columns
            .iter()
            .find(|c| c.id == name_or_id)
            .or_else(|| find_column(&self.columns, name_or_id).map(|i| &self.columns[i]))
    }

    fn index(&self, name_or_id: &str) -> Result<usize, OpError> {
        self.columns
            .iter()
            .position(|c| c.id == name_or_id)
            .or_else(|| find_column(&self.columns, name_or_id))
            .ok_or_else(|| OpError::UnknownColumn {
                name: name_or_id.to_owned(),
                suggestion: closest_column(&self.columns, name_or_id).map(str::to_owned),
            })
    }
}

/// One row as stored: cells by column id (columns added later are absent: null).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Row {
    pub id: RowId,
    pub position: i64,
    pub cells: BTreeMap<String, Value>,
}

impl Row {
    pub fn get(&self, column: &Column) -> &Value {
        self.cells.get(&column.id).unwrap_or(&Value::Null)
    }

    /// The cells as stored: `{"c1": <canonical JSON>, …}`, nulls left out.
    pub fn data_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.cells
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect(),
        )
    }

    /// Reads stored cells back with the schema's types; unknown ids (dropped columns) are kept
    /// as they are so that a revert can bring them back.
    pub fn from_data(id: RowId, position: i64, data: &serde_json::Value, schema: &Schema) -> Self {
        let mut cells = BTreeMap::new();
        if let Some(obj) = data.as_object() {
            for (key, json) in obj {
                let value = match schema.columns.iter().find(|c| &c.id == key) {
                    Some(col) => Value::from_json(json, col.ty)
                        .unwrap_or_else(|_| Value::Text(json.to_string())),
                    None => Value::Text(json.to_string()),
                };
                cells.insert(key.clone(), value);
            }
        }
        Self {
            id,
            position,
            cells,
        }
    }
}

/// Space between the positions of neighbouring rows, so that rows can be inserted between
/// them without renumbering.
pub const POSITION_STEP: i64 = 1 << 20;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// Set cells: `{"row": 12, "column": "Population", "value": 2100000}`.
    SetCells {
        cells: Vec<CellEdit>,
    },
    /// Insert rows (objects keyed by column name or id) after a row, or at the end.
    InsertRows {
        rows: Vec<serde_json::Map<String, serde_json::Value>>,
        #[serde(default)]
        after: Option<RowId>,
    },
    DeleteRows {
        rows: Vec<RowId>,
    },
    AddColumn {
        name: String,
        /// Required, except with a formula: its result's type is then the column's
        /// (`formula::Formula::result_type`); given, the results are converted to it.
        #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
        ty: Option<ColumnType>,
        /// Put it after this column (name or id); at the end when absent.
        #[serde(default)]
        after: Option<String>,
        /// A value for every existing row.
        #[serde(default)]
        default: Option<serde_json::Value>,
        #[serde(default)]
        description: Option<String>,
        #[serde(default)]
        rules: Option<Rules>,
        /// Fill every row with this arithmetic over other columns (`price * qty`).
        #[serde(default)]
        formula: Option<String>,
    },
    RenameColumn {
        column: String,
        to: String,
    },
    DropColumn {
        column: String,
    },
    /// The new order, by name or id; it must name every column once.
    ReorderColumns {
        order: Vec<String>,
    },
    /// Convert every cell; with `invalid: "null"` cells that do not convert become null
    /// (reported), otherwise the change is refused listing them.
    ///
    /// Text becomes numbers read with `reading` when given, else with the decimal mark every
    /// number of the column reads with (`1.234,5` with a comma), else the column's own.
    ChangeType {
        column: String,
        to: ColumnType,
        #[serde(default)]
        invalid: InvalidCells,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reading: Option<Reading>,
    },
    SetRules {
        column: String,
        rules: Rules,
    },
    Sort {
        by: Vec<SortKey>,
    },
    /// Delete every row matching the filter.
    FilterDelete {
        filter: Filter,
    },
    /// Remove the spaces (any Unicode whitespace) before and after the text of cells: in the
    /// named text columns, or every text column when `columns` is absent. Only this removes
    /// them: text is stored as given. The cells changed are counted in the outcome.
    Trim {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        columns: Option<Vec<String>>,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellEdit {
    pub row: RowId,
    pub column: String,
    pub value: serde_json::Value,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvalidCells {
    #[default]
    Reject,
    Null,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SortKey {
    pub column: String,
    #[serde(default)]
    pub desc: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    pub column: String,
    pub cmp: Cmp,
    #[serde(default)]
    pub value: serde_json::Value,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Lte,
    Gt,
    Gte,
    /// Text contains, case-insensitive.
    Contains,
    IsNull,
    NotNull,
}

impl Filter {
    /// The filter with its value parsed for the column it names.
    pub fn compile(&self, schema: &Schema) -> Result<CompiledFilter, OpError> {
        let col = schema.columns[schema.index(&self.column)?].clone();
        let value = match self.cmp {
            Cmp::IsNull | Cmp::NotNull => Value::Null,
            Cmp::Contains => Value::Text(match &self.value {
                serde_json::Value::String(s) => s.to_lowercase(),
                other => other.to_string().to_lowercase(),
            }),
            // In the column's conventions (its order of dates, its decimal mark); ISO dates
            // and JSON numbers read the same in every one.
            _ => col.read_json(&self.value).map_err(|e| OpError::BadValue {
                column: col.name.clone(),
                error: e,
            })?,
        };
        Ok(CompiledFilter {
            column: col,
            cmp: self.cmp,
            value,
        })
    }
}

#[derive(Clone, Debug)]
pub struct CompiledFilter {
    pub column: Column,
    pub cmp: Cmp,
    pub value: Value,
}

impl CompiledFilter {
    pub fn matches(&self, row: &Row) -> bool {
        let cell = row.get(&self.column);
        use std::cmp::Ordering::*;
        match self.cmp {
            Cmp::IsNull => cell.is_null(),
            Cmp::NotNull => !cell.is_null(),
            Cmp::Contains => cell
                .to_string()
                .to_lowercase()
                .contains(&self.value.to_string()),
            _ if cell.is_null() => self.cmp == Cmp::Ne && !self.value.is_null(),
            Cmp::Eq => cell.sort_cmp(&self.value) == Equal,
            Cmp::Ne => cell.sort_cmp(&self.value) != Equal,
            Cmp::Lt => cell.sort_cmp(&self.value) == Less,
            Cmp::Lte => cell.sort_cmp(&self.value) != Greater,
            Cmp::Gt => cell.sort_cmp(&self.value) == Greater,
            Cmp::Gte => cell.sort_cmp(&self.value) != Less,
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OpError {
    #[error("no column named `{name}`{}", suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default())]
    UnknownColumn {
        name: String,
        /// The column the name most likely meant.
        suggestion: Option<String>,
    },
    #[error("no row with id {0}")]
    UnknownRow(RowId),
    #[error("a column named `{0}` already exists")]
    DuplicateColumn(String),
    #[error("a column name must not be empty")]
    EmptyName,
    #[error("column `{column}`: {error}")]
    BadValue { column: String, error: ConvertError },
    #[error("the order must name every column exactly once")]
    BadOrder,
    #[error("a table must keep at least one column")]
    LastColumn,
    #[error("invalid rules for `{column}`: {message}")]
    BadRules { column: String, message: String },
    #[error("{} cells of `{column}` cannot become {to}", cells.len())]
    Unconvertible {
        column: String,
        to: ColumnType,
        cells: Vec<(RowId, String)>,
    },
    #[error("a change needs at least one operation")]
    Empty,
    #[error("formula for `{column}`: {error}")]
    BadFormula {
        column: String,
        error: crate::formula::FormulaError,
    },
    /// Rows for which a formula gives no value (two currencies, a result too large, a value
    /// that does not fit the requested type): `(row, why)`, by row id.
    #[error("the formula for `{column}` cannot be computed for {} rows", cells.len())]
    FormulaCells {
        column: String,
        cells: Vec<(RowId, String)>,
    },
    #[error("column `{0}` needs a type (only a column with a formula takes the formula's)")]
    NoType(String),
    #[error("`trim` works on text columns; `{column}` is {ty} (its values have no spaces to keep)")]
    NotText { column: String, ty: ColumnType },
}

/// Bounds on what a change may ask for, from the server's configuration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub formula: crate::formula::Limits,
}

/// What the rows of a change need to be loaded.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// Every row of the version.
    pub all_rows: bool,
    /// These rows (when not all).
    pub rows: HashSet<RowId>,
    /// The row that follows each of these rows in position order (for inserts after them).
    pub successors_of: HashSet<RowId>,
}

pub fn plan(ops: &[Op]) -> Needs {
    let mut needs = Needs::default();
    for op in ops {
        match op {
            Op::SetCells { cells } => needs.rows.extend(cells.iter().map(|c| c.row)),
            Op::DeleteRows { rows } => needs.rows.extend(rows.iter().copied()),
            Op::InsertRows { after, .. } => {
                if let Some(after) = after {
                    needs.rows.insert(*after);
                    needs.successors_of.insert(*after);
                }
            }
            Op::AddColumn {
                default, formula, ..
            } => {
                if default.as_ref().is_some_and(|d| !d.is_null()) || formula.is_some() {
                    needs.all_rows = true;
                }
            }
            Op::ChangeType { .. } | Op::Sort { .. } | Op::FilterDelete { .. } | Op::Trim { .. } => {
                needs.all_rows = true;
            }
            Op::RenameColumn { .. }
            | Op::DropColumn { .. }
            | Op::ReorderColumns { .. }
            | Op::SetRules { .. } => {}
        }
    }
    needs
}

/// The working set a change is applied to: the rows loaded per the plan, keyed by id.
#[derive(Clone, Debug, Default)]
pub struct Working {
    pub rows: HashMap<RowId, Row>,
    /// Position of the row after each `successors_of` row (None: it is the last row).
    pub successors: HashMap<RowId, Option<i64>>,
    /// Highest position in the version (for appends).
    pub max_position: i64,
    /// Next free row id of the table.
    pub next_row_id: RowId,
}

/// What a change did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub schema: Schema,
    /// Rows written as new row versions (new or changed).
    pub upserted: BTreeMap<RowId, Row>,
    pub deleted: HashSet<RowId>,
    /// All rows must be renumbered before the upserts (positions ran out between two rows).
    pub renumber: bool,
    pub next_row_id: RowId,
    /// Cells set to null by `ChangeType { invalid: null }`.
    pub nulled: Vec<(RowId, String)>,
    /// Cells whose spaces `Trim` removed.
    pub trimmed: u64,
}

/// Applies `ops` in order to `schema` and the working rows, within `limits`.
pub fn apply(
    schema: &Schema,
    ops: &[Op],
    mut working: Working,
    limits: &Limits,
) -> Result<Outcome, OpError> {
    if ops.is_empty() {
        return Err(OpError::Empty);
    }
    let mut out = Outcome {
        schema: schema.clone(),
        next_row_id: working.next_row_id,
        ..Outcome::default()
    };
    let mut max_position = working.max_position;
    for op in ops {
        let s = &mut out.schema;
        match op {
            Op::SetCells { cells } => {
                for edit in cells {
                    let col = s.columns[s.index(&edit.column)?].clone();
                    let value = col
                        .read_json(&edit.value)
                        .map_err(|error| OpError::BadValue {
                            column: col.name.clone(),
                            error,
                        })?;
                    let row = working
                        .rows
                        .get_mut(&edit.row)
                        .filter(|_| !out.deleted.contains(&edit.row))
                        .ok_or(OpError::UnknownRow(edit.row))?;
                    row.cells.insert(col.id.clone(), value);
                    out.upserted.insert(row.id, row.clone());
                }
            }
            Op::InsertRows { rows, after } => {
                let (mut pos, step) = match after {
                    None => (max_position, POSITION_STEP),
                    Some(after) => {
                        let anchor = working
                            .rows
                            .get(after)
                            .filter(|_| !out.deleted.contains(after))
                            .ok_or(OpError::UnknownRow(*after))?;
                        let next = working.successors.get(after).copied().flatten();
                        let lo = anchor.position;
                        let gap = next.map_or(POSITION_STEP * (rows.len() as i64 + 1), |n| n - lo);
                        let step = gap / (rows.len() as i64 + 1);
                        if step < 1 {
                            out.renumber = true;
                        }
                        (lo, step.max(1))
                    }
                };
                for object in rows {
                    let mut row = Row {
                        id: out.next_row_id,
                        position: 0,
                        cells: BTreeMap::new(),
                    };
                    out.next_row_id += 1;
                    pos += step;
                    row.position = pos;
                    for (key, json) in object {
                        let col = s.columns[s.index(key)?].clone();
                        let value = col.read_json(json).map_err(|error| OpError::BadValue {
                            column: col.name.clone(),
                            error,
                        })?;
                        row.cells.insert(col.id.clone(), value);
                    }
                    max_position = max_position.max(pos);
                    working.rows.insert(row.id, row.clone());
                    out.upserted.insert(row.id, row);
                }
            }
            Op::DeleteRows { rows } => {
                for id in rows {
                    if working.rows.remove(id).is_none() {
                        return Err(OpError::UnknownRow(*id));
                    }
                    out.upserted.remove(id);
                    out.deleted.insert(*id);
                }
            }
            Op::AddColumn {
                name,
                ty,
                after,
                default,
                description,
                rules,
                formula,
            } => {
                let name = name.trim();
                if name.is_empty() {
                    return Err(OpError::EmptyName);
                }
                if find_column(&s.columns, name)
                    .is_some_and(|i| s.columns[i].name.eq_ignore_ascii_case(name))
                {
                    return Err(OpError::DuplicateColumn(name.to_owned()));
                }
                // Compiled against the columns before this one: a formula cannot name itself.
                let formula = formula
                    .as_deref()
                    .map(|text| crate::formula::compile(text, &s.columns, &limits.formula))
                    .transpose()
                    .map_err(|error| OpError::BadFormula {
                        column: name.to_owned(),
                        error,
                    })?;
                let ty = match (ty, &formula) {
                    (Some(ty), _) => *ty,
                    (None, Some(f)) => f.result_type(),
                    (None, None) => return Err(OpError::NoType(name.to_owned())),
                };
                let mut col = Column::new(format!("c{}", s.next_column), name, ty);
                s.next_column += 1;
                col.description = description.clone();
                if let Some(rules) = rules {
                    rules.check().map_err(|message| OpError::BadRules {
                        column: name.to_owned(),
                        message,
                    })?;
                    col.rules = rules.clone();
                }
                let at = match after {
                    Some(a) => s.index(a)? + 1,
                    None => s.columns.len(),
                };
                if let Some(default) = default.as_ref().filter(|d| !d.is_null()) {
                    let value =
                        Value::from_json(default, ty).map_err(|error| OpError::BadValue {
                            column: name.to_owned(),
                            error,
                        })?;
                    for row in working.rows.values_mut() {
                        row.cells.insert(col.id.clone(), value.clone());
                        out.upserted.insert(row.id, row.clone());
                    }
                }
                if let Some(formula) = formula {
                    let columns = &s.columns;
                    let convert = ty != formula.result_type();
                    let mut failures = Vec::new();
                    for row in working.rows.values_mut() {
                        let result = formula
                            .eval(|i| row.get(&columns[i]))
                            .map_err(|e| e.to_string())
                            .and_then(|v| {
                                if convert {
                                    crate::formula::convert_result(v, ty).map_err(|e| e.to_string())
                                } else {
                                    Ok(v)
                                }
                            });
                        match result {
                            Ok(value) => {
                                row.cells.insert(col.id.clone(), value);
                                out.upserted.insert(row.id, row.clone());
                            }
                            Err(why) => failures.push((row.id, why)),
                        }
                    }
                    if !failures.is_empty() {
                        failures.sort_by_key(|f| f.0);
                        return Err(OpError::FormulaCells {
                            column: name.to_owned(),
                            cells: failures,
                        });
                    }
                }
                s.columns.insert(at, col);
            }
            Op::RenameColumn { column, to } => {
                let i = s.index(column)?;
                let to = to.trim();
                if to.is_empty() {
                    return Err(OpError::EmptyName);
                }
                if s.columns
                    .iter()
                    .enumerate()
                    .any(|(j, c)| j != i && c.name.eq_ignore_ascii_case(to))
                {
                    return Err(OpError::DuplicateColumn(to.to_owned()));
                }
                s.columns[i].name = to.to_owned();
            }
            Op::DropColumn { column } => {
                let i = s.index(column)?;
                if s.columns.len() == 1 {
                    return Err(OpError::LastColumn);
                }
                // The cells stay in the stored rows (invisible), so a revert brings them back
                // without copying the table.
                s.columns.remove(i);
            }
            Op::ReorderColumns { order } => {
                let mut idx: Vec<usize> =
                    order.iter().map(|c| s.index(c)).collect::<Result<_, _>>()?;
                let unique: HashSet<usize> = idx.iter().copied().collect();
                if unique.len() != s.columns.len() || idx.len() != s.columns.len() {
                    return Err(OpError::BadOrder);
                }
                let old = std::mem::take(&mut s.columns);
                let mut slots: Vec<Option<Column>> = old.into_iter().map(Some).collect();
                s.columns = idx.drain(..).filter_map(|i| slots[i].take()).collect();
            }
            Op::ChangeType {
                column,
                to,
                invalid,
                reading,
            } => {
                let i = s.index(column)?;
                let col = s.columns[i].clone();
                let reading = match reading {
                    _ if !to.is_numeric() => None,
                    Some(given) => Some(*given),
                    None => {
                        let texts = working.rows.values().filter_map(|r| match r.get(&col) {
                            Value::Text(t) => Some(t.as_str()),
                            _ => None,
                        });
                        number_mark(texts, *to).or(col.reading)
                    }
                };
                let how = Conventions {
                    decimal: reading.map(|r| r.decimal).unwrap_or_default(),
                    dates: col.dates.map(|d| d.order),
                };
                let mut failures = Vec::new();
                let mut converted = Vec::new();
                for row in working.rows.values() {
                    let cell = row.get(&col);
                    let value = match cell {
                        Value::Text(t) => Value::parse_with(t, *to, how),
                        other => other.convert(*to),
                    };
                    match value {
                        Ok(v) => converted.push((row.id, v)),
                        Err(_) => {
                            failures.push((row.id, cell.to_string()));
                            converted.push((row.id, Value::Null));
                        }
                    }
                }
                if !failures.is_empty() && *invalid == InvalidCells::Reject {
                    failures.sort_by_key(|f| f.0);
                    return Err(OpError::Unconvertible {
                        column: col.name,
                        to: *to,
                        cells: failures,
                    });
                }
                for (id, v) in converted {
                    if let Some(row) = working.rows.get_mut(&id)
                        && row.get(&col) != &v
                    {
                        row.cells.insert(col.id.clone(), v);
                        out.upserted.insert(id, row.clone());
                    }
                }
                failures.sort_by_key(|f| f.0);
                out.nulled.extend(failures);
                s.columns[i].ty = *to;
                s.columns[i].reading = reading;
            }
            Op::SetRules { column, rules } => {
                let i = s.index(column)?;
                rules.check().map_err(|message| OpError::BadRules {
                    column: s.columns[i].name.clone(),
                    message,
                })?;
                s.columns[i].rules = rules.clone();
            }
            Op::Sort { by } => {
                let keys = sort_columns(s, by)?;
                let mut rows: Vec<&Row> = working.rows.values().collect();
                rows.sort_by(|a, b| {
                    for (col, desc) in &keys {
                        let ord = compare_sort_values(a.get(col), b.get(col), *desc);
                        if ord.is_ne() {
                            return ord;
                        }
                    }
                    (a.position, a.id).cmp(&(b.position, b.id))
                });
                let order: Vec<(RowId, i64)> = rows
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (r.id, (i as i64 + 1) * POSITION_STEP))
                    .collect();
                for (id, pos) in order {
                    if let Some(row) = working.rows.get_mut(&id)
                        && row.position != pos
                    {
                        row.position = pos;
                        out.upserted.insert(id, row.clone());
                    }
                }
                max_position = working.rows.len() as i64 * POSITION_STEP;
            }
            Op::Trim { columns } => {
                let targets: Vec<Column> = match columns {
                    Some(names) => names
                        .iter()
                        .map(|n| s.index(n).map(|i| s.columns[i].clone()))
                        .collect::<Result<_, _>>()?,
                    None => s
                        .columns
                        .iter()
                        .filter(|c| c.ty == ColumnType::Text)
                        .cloned()
                        .collect(),
                };
                if let Some(typed) = targets.iter().find(|c| c.ty != ColumnType::Text) {
                    return Err(OpError::NotText {
                        column: typed.name.clone(),
                        ty: typed.ty,
                    });
                }
                for row in working.rows.values_mut() {
                    let mut changed = false;
                    for col in &targets {
                        if let Some(Value::Text(t)) = row.cells.get_mut(&col.id) {
                            let trimmed = t.trim();
                            if trimmed.len() != t.len() {
                                *t = trimmed.to_owned();
                                out.trimmed += 1;
                                changed = true;
                            }
                        }
                    }
                    if changed {
                        out.upserted.insert(row.id, row.clone());
                    }
                }
            }
            Op::FilterDelete { filter } => {
                let f = filter.compile(s)?;
                let doomed: Vec<RowId> = working
                    .rows
                    .values()
                    .filter(|r| f.matches(r))
                    .map(|r| r.id)
                    .collect();
                for id in doomed {
                    working.rows.remove(&id);
                    out.upserted.remove(&id);
                    out.deleted.insert(id);
                }
            }
        }
    }
    // Rows inserted and deleted in the same change never existed.
    out.deleted.retain(|id| *id < working.next_row_id);
    Ok(out)
}

/// The order of two cells under one key of a `sort`: nulls stay last whichever the direction.
pub fn compare_sort_values(x: &Value, y: &Value, desc: bool) -> std::cmp::Ordering {
    match (x.is_null(), y.is_null(), desc) {
        (false, false, true) => y.sort_cmp(x),
        _ => x.sort_cmp(y),
    }
}

/// The columns a `sort` orders by (resolved by name or id), each with its direction.
pub fn sort_columns(schema: &Schema, by: &[SortKey]) -> Result<Vec<(Column, bool)>, OpError> {
    by.iter()
        .map(|k| Ok((schema.columns[schema.index(&k.column)?].clone(), k.desc)))
        .collect()
}

/// How two versions differ.
#[derive(Debug, Default, PartialEq, Serialize)]
pub struct Diff {
    pub schema: Vec<SchemaChange>,
    pub rows_added: Vec<RowId>,
    pub rows_removed: Vec<RowId>,
    pub cells_changed: Vec<CellChange>,
    /// Rows whose place in the order changed (sorts, inserts in between).
    pub rows_moved: usize,
}

#[derive(Debug, PartialEq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum SchemaChange {
    Added {
        column: String,
        name: String,
    },
    Removed {
        column: String,
        name: String,
    },
    Renamed {
        column: String,
        from: String,
        to: String,
    },
    TypeChanged {
        column: String,
        name: String,
        from: ColumnType,
        to: ColumnType,
    },
    Reordered {
        from: Vec<String>,
        to: Vec<String>,
    },
}

#[derive(Debug, PartialEq, Serialize)]
pub struct CellChange {
    pub row: RowId,
    pub column: String,
    pub column_name: String,
    pub from: serde_json::Value,
    pub to: serde_json::Value,
}

pub fn diff_schema(from: &Schema, to: &Schema) -> Vec<SchemaChange> {
    let mut out = Vec::new();
    for c in &from.columns {
        match to.columns.iter().find(|d| d.id == c.id) {
            None => out.push(SchemaChange::Removed {
                column: c.id.clone(),
                name: c.name.clone(),
            }),
            Some(d) => {
                if d.name != c.name {
                    out.push(SchemaChange::Renamed {
                        column: c.id.clone(),
                        from: c.name.clone(),
                        to: d.name.clone(),
                    });
                }
                if d.ty != c.ty {
                    out.push(SchemaChange::TypeChanged {
                        column: c.id.clone(),
                        name: d.name.clone(),
                        from: c.ty,
                        to: d.ty,
                    });
                }
            }
        }
    }
    for d in &to.columns {
        if !from.columns.iter().any(|c| c.id == d.id) {
            out.push(SchemaChange::Added {
                column: d.id.clone(),
                name: d.name.clone(),
            });
        }
    }
    let common_from: Vec<String> = from
        .columns
        .iter()
        .filter(|c| to.columns.iter().any(|d| d.id == c.id))
        .map(|c| c.id.clone())
        .collect();
    let common_to: Vec<String> = to
        .columns
        .iter()
        .filter(|d| from.columns.iter().any(|c| c.id == d.id))
        .map(|d| d.id.clone())
        .collect();
    if common_from != common_to {
        out.push(SchemaChange::Reordered {
            from: common_from,
            to: common_to,
        });
    }
    out
}

/// Compares the states of the rows that changed between two versions: `before` and `after`
/// hold each such row as it was in the `from` and the `to` version (absent: not present).
pub fn diff_rows(
    from: &Schema,
    to: &Schema,
    before: &HashMap<RowId, Row>,
    after: &HashMap<RowId, Row>,
) -> Diff {
    let mut d = Diff {
        schema: diff_schema(from, to),
        ..Diff::default()
    };
    let mut ids: Vec<RowId> = before.keys().chain(after.keys()).copied().collect();
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        match (before.get(&id), after.get(&id)) {
            (None, Some(_)) => d.rows_added.push(id),
            (Some(_), None) => d.rows_removed.push(id),
            (Some(a), Some(b)) => {
                if a.position != b.position {
                    d.rows_moved += 1;
                }
                // Cells of columns present in both versions (by id), in the new order.
                for col in &to.columns {
                    let Some(old_col) = from.columns.iter().find(|c| c.id == col.id) else {
                        continue;
                    };
                    let old = a.get(old_col);
                    let new = b.get(col);
                    if old_col.ty == col.ty && old == new {
                        continue;
                    }
                    if old.to_json() != new.to_json() {
                        d.cells_changed.push(CellChange {
                            row: id,
                            column: col.id.clone(),
                            column_name: col.name.clone(),
                            from: old.to_json(),
                            to: new.to_json(),
                        });
                    }
                }
            }
            (None, None) => {}
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use rust_decimal::Decimal;

    use super::*;
    use crate::table::Table;

    fn fixture() -> (Schema, Working) {
        let t = Table::from_text(
            &["city".into(), "population".into()],
            &[
                vec!["Paris".into(), "2102650".into()],
                vec!["Lyon".into(), "522250".into()],
                vec!["Nice".into(), "".into()],
            ],
        );
        let schema = Schema::new(t.columns.clone());
        let mut working = Working {
            next_row_id: 4,
            max_position: 3 * POSITION_STEP,
            ..Working::default()
        };
        for (i, cells) in t.rows.iter().enumerate() {
            let id = i as i64 + 1;
            let row = Row {
                id,
                position: id * POSITION_STEP,
                cells: t
                    .columns
                    .iter()
                    .zip(cells)
                    .map(|(c, v)| (c.id.clone(), v.clone()))
                    .collect(),
            };
            working.rows.insert(id, row);
        }
        (schema, working)
    }

    fn ops(v: serde_json::Value) -> Vec<Op> {
        serde_json::from_value(v).unwrap()
    }

    /// A working set of the rows of `t`, ids from 1.
    fn working_of(t: &Table) -> (Schema, Working) {
        let mut working = Working {
            next_row_id: t.rows.len() as i64 + 1,
            max_position: t.rows.len() as i64 * POSITION_STEP,
            ..Working::default()
        };
        for (i, cells) in t.rows.iter().enumerate() {
            let id = i as i64 + 1;
            let cells = t
                .columns
                .iter()
                .zip(cells)
                .map(|(c, v)| (c.id.clone(), v.clone()));
            working.rows.insert(
                id,
                Row {
                    id,
                    position: id * POSITION_STEP,
                    cells: cells.collect(),
                },
            );
        }
        (Schema::new(t.columns.clone()), working)
    }

    #[test]
    fn trim_removes_spaces_only_when_asked_and_counts_the_cells() {
        let t = Table::from_text(
            &["name".into(), "city".into(), "n".into()],
            &[
                vec![" Ann ".into(), "Paris ".into(), "1".into()],
                vec!["Bob".into(), " Lyon".into(), "2".into()],
            ],
        );
        assert_eq!(t.rows[0][0], Value::Text(" Ann ".into()), "stored as given");
        let (schema, working) = working_of(&t);
        let out = apply(
            &schema,
            &ops(json!([{"op": "trim", "columns": ["city"]}])),
            working,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(out.trimmed, 2);
        assert_eq!(
            out.upserted[&1].cells["c1"],
            Value::Text(" Ann ".into()),
            "other columns kept"
        );
        assert_eq!(out.upserted[&1].cells["c2"], Value::Text("Paris".into()));
        let (schema, working) = working_of(&t);
        let out = apply(
            &schema,
            &ops(json!([{"op": "trim"}])),
            working,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(out.trimmed, 3, "every text column");
        let (schema, working) = working_of(&t);
        let err = apply(
            &schema,
            &ops(json!([{"op": "trim", "columns": ["n"]}])),
            working,
            &Limits::default(),
        )
        .unwrap_err();
        assert!(matches!(err, OpError::NotText { .. }), "{err}");
    }

    #[test]
    fn change_type_reads_european_numbers_in_text_with_the_columns_mark() {
        // `1.234,5` and `7,25` together are text until asked (the point cannot read them).
        let t = Table::from_text(
            &["amount".into()],
            &[
                vec!["1.234,5".into()],
                vec!["7,25".into()],
                vec!["n/a".into()],
                vec!["many".into()],
            ],
        );
        assert_eq!(t.columns[0].ty, ColumnType::Text);
        let (schema, working) = working_of(&t);
        let change =
            json!([{"op": "change_type", "column": "amount", "to": "decimal", "invalid": "null"}]);
        let out = apply(&schema, &ops(change), working, &Limits::default()).unwrap();
        assert_eq!(
            out.upserted[&1].cells["c1"],
            Value::Decimal(Decimal::new(12345, 1))
        );
        assert_eq!(
            out.upserted[&2].cells["c1"],
            Value::Decimal(Decimal::new(725, 2))
        );
        assert_eq!(out.nulled, [(4, "many".to_owned())]);
        assert_eq!(
            out.schema.columns[0].reading.map(|r| r.decimal),
            Some(crate::table::DecimalMark::Comma)
        );
        // Given in the op: `1.234` is then a thousand and more.
        let t = Table::from_text(&["n".into()], &[vec!["x".into()], vec!["1.234".into()]]);
        let (schema, working) = working_of(&t);
        let change = json!([{"op": "change_type", "column": "n", "to": "integer", "invalid": "null",
            "reading": {"decimal": ","}}]);
        let out = apply(&schema, &ops(change), working, &Limits::default()).unwrap();
        assert_eq!(out.upserted[&2].cells["c1"], Value::Integer(1234));
    }

    #[test]
    fn filters_read_dates_in_the_columns_order_and_iso_always() {
        let t = Table::from_text(
            &["day".into()],
            &[
                vec!["14/02/2024".into()],
                vec!["03/04/2024".into()],
                vec!["01/05/2024".into()],
            ],
        );
        assert_eq!(t.columns[0].ty, ColumnType::Date);
        for value in ["03/04/2024", "2024-04-03"] {
            let (schema, working) = working_of(&t);
            let change = json!([{"op": "filter_delete", "filter": {"column": "day", "cmp": "eq", "value": value}}]);
            let out = apply(&schema, &ops(change), working, &Limits::default()).unwrap();
            assert_eq!(out.deleted, HashSet::from([2]), "{value} is 3 April");
        }
    }

    #[test]
    fn setting_a_cell_touches_only_that_row_and_parses_for_the_column() {
        let (schema, working) = fixture();
        let out = apply(
            &schema,
            &ops(json!([{"op": "set_cells", "cells": [{"row": 2, "column": "Population", "value": "530,000"}]}])),
            working,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(out.upserted.len(), 1);
        assert_eq!(out.upserted[&2].cells["c2"], Value::Integer(530_000));
    }

    #[test]
    fn a_value_that_does_not_fit_the_column_is_refused() {
        let (schema, working) = fixture();
        let err = apply(
            &schema,
            &ops(json!([{"op": "set_cells", "cells": [{"row": 2, "column": "population", "value": "lots"}]}])),
            working,
            &Limits::default(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "column `population`: `lots` is not a valid integer"
        );
    }

    #[test]
    fn sorting_desc_keeps_nulls_last_and_renumbers_positions() {
        let (schema, working) = fixture();
        let out = apply(
            &schema,
            &ops(json!([{"op": "sort", "by": [{"column": "population", "desc": true}]}])),
            working,
            &Limits::default(),
        )
        .unwrap();
        let mut order: Vec<(i64, RowId)> =
            out.upserted.values().map(|r| (r.position, r.id)).collect();
        order.sort_unstable();
        // Paris was already first; Lyon second; Nice (null) last: nothing moved.
        assert!(order.is_empty(), "{order:?}");
        let (schema, working) = fixture();
        let out = apply(
            &schema,
            &ops(json!([{"op": "sort", "by": [{"column": "population"}]}])),
            working,
            &Limits::default(),
        )
        .unwrap();
        let pos = |id: RowId| out.upserted.get(&id).map(|r| r.position);
        assert_eq!(pos(2), Some(POSITION_STEP));
        assert_eq!(pos(1), Some(2 * POSITION_STEP));
        assert_eq!(pos(3), None, "Nice stays last, where it was");
    }

    #[test]
    fn schema_operations_do_not_touch_rows() {
        let (schema, working) = fixture();
        let out = apply(
            &schema,
            &ops(json!([
                {"op": "add_column", "name": "country", "type": "text"},
                {"op": "rename_column", "column": "city", "to": "City"},
                {"op": "reorder_columns", "order": ["country", "City", "population"]},
                {"op": "drop_column", "column": "population"}
            ])),
            working,
            &Limits::default(),
        )
        .unwrap();
        assert!(out.upserted.is_empty());
        let names: Vec<&str> = out.schema.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["country", "City"]);
        assert_eq!(out.schema.columns[0].id, "c3");
    }

    #[test]
    fn a_type_change_reports_cells_that_do_not_convert() {
        let (schema, working) = fixture();
        let err = apply(
            &schema,
            &ops(json!([{"op": "change_type", "column": "city", "to": "integer"}])),
            working,
            &Limits::default(),
        )
        .unwrap_err();
        match err {
            OpError::Unconvertible { cells, .. } => assert_eq!(cells.len(), 3),
            other => panic!("{other}"),
        }
        let (schema, working) = fixture();
        let out = apply(
            &schema,
            &ops(json!([{"op": "change_type", "column": "population", "to": "decimal"}])),
            working,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(out.schema.columns[1].ty, ColumnType::Decimal);
        assert!(out.nulled.is_empty());
    }

    #[test]
    fn rows_insert_between_neighbours_and_filter_delete_removes_matches() {
        let (schema, mut working) = fixture();
        working.successors.insert(1, Some(2 * POSITION_STEP));
        let out = apply(
            &schema,
            &ops(json!([
                {"op": "insert_rows", "after": 1, "rows": [{"city": "Lille", "population": 236000}]},
                {"op": "filter_delete", "filter": {"column": "population", "cmp": "lt", "value": 300000}}
            ])),
            working,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(
            out.deleted,
            HashSet::new(),
            "Lille was inserted and deleted: it never existed"
        );
        assert!(out.upserted.is_empty());
        assert_eq!(out.next_row_id, 5);
    }

    #[test]
    fn diff_reports_cells_rows_and_schema() {
        let (schema, working) = fixture();
        let before = working.rows.clone();
        let out = apply(
            &schema,
            &ops(json!([
                {"op": "set_cells", "cells": [{"row": 1, "column": "population", "value": 1}]},
                {"op": "delete_rows", "rows": [3]},
                {"op": "insert_rows", "rows": [{"city": "Lille"}]},
                {"op": "rename_column", "column": "city", "to": "town"}
            ])),
            working,
            &Limits::default(),
        )
        .unwrap();
        let mut after = before.clone();
        for id in &out.deleted {
            after.remove(id);
        }
        for (id, row) in &out.upserted {
            after.insert(*id, row.clone());
        }
        let d = diff_rows(&schema, &out.schema, &before, &after);
        assert_eq!(d.rows_added, [4]);
        assert_eq!(d.rows_removed, [3]);
        assert_eq!(d.cells_changed.len(), 1);
        assert_eq!(d.cells_changed[0].to, json!(1));
        assert_eq!(
            d.schema,
            [SchemaChange::Renamed {
                column: "c1".into(),
                from: "city".into(),
                to: "town".into()
            }]
        );
    }

    /// Airports: revenue in USD, passengers, growth as a percent.
    fn airports() -> (Schema, Working) {
        let t = Table::from_text(
            &[
                "code".into(),
                "Revenue".into(),
                "Passengers 2023".into(),
                "Growth".into(),
            ],
            &[
                vec![
                    "CDG".into(),
                    "$1,234,567.89".into(),
                    "43123".into(),
                    "38%".into(),
                ],
                vec![
                    "LHR".into(),
                    "$2,000,000".into(),
                    "80000".into(),
                    "-5%".into(),
                ],
                vec!["FRA".into(), "".into(), "60000".into(), "".into()],
            ],
        );
        let schema = Schema::new(t.columns.clone());
        let mut working = Working {
            next_row_id: 4,
            max_position: 3 * POSITION_STEP,
            ..Working::default()
        };
        for (i, cells) in t.rows.iter().enumerate() {
            let id = i as i64 + 1;
            let cells = t
                .columns
                .iter()
                .zip(cells)
                .map(|(c, v)| (c.id.clone(), v.clone()))
                .collect();
            working.rows.insert(
                id,
                Row {
                    id,
                    position: id * POSITION_STEP,
                    cells,
                },
            );
        }
        (schema, working)
    }

    fn added(out: &Outcome, row: RowId) -> serde_json::Value {
        let col = out.schema.columns.last().unwrap();
        out.upserted[&row].get(col).to_json()
    }

    #[test]
    fn a_formula_column_takes_the_type_of_its_result_and_a_scale_a_person_would_choose() {
        let (schema, working) = airports();
        let out = apply(
            &schema,
            &ops(json!([
                {"op": "add_column", "name": "per passenger", "formula": "Revenue / Passengers 2023"}
            ])),
            working,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(out.schema.columns[4].ty, ColumnType::Currency);
        assert_eq!(
            added(&out, 1),
            json!({"amount": "28.63", "currency": "USD"})
        );
        assert_eq!(
            added(&out, 2),
            json!({"amount": "25.00", "currency": "USD"})
        );
        assert_eq!(added(&out, 3), json!(null), "no revenue, no result");

        let (schema, working) = airports();
        let out = apply(
            &schema,
            &ops(json!([
                {"op": "add_column", "name": "before", "formula": "Passengers 2023 / (1 + Growth)"}
            ])),
            working,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(out.schema.columns[4].ty, ColumnType::Decimal);
        assert_eq!(added(&out, 1), json!("31248.5507246377"), "38 % is 0.38");
        assert_eq!(added(&out, 2), json!("84210.5263157895"));
    }

    #[test]
    fn a_formula_column_with_a_type_converts_its_results_or_lists_the_rows_that_do_not_fit() {
        let (schema, working) = airports();
        let out = apply(
            &schema,
            &ops(json!([
                {"op": "add_column", "name": "share", "type": "percent", "formula": "Passengers 2023 / 100000"}
            ])),
            working,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(
            added(&out, 1),
            json!("43.123"),
            "a fraction asked as a percent"
        );

        let (schema, working) = airports();
        let err = apply(
            &schema,
            &ops(json!([
                {"op": "add_column", "name": "half", "type": "integer", "formula": "Passengers 2023 / 2"}
            ])),
            working,
            &Limits::default(),
        )
        .unwrap_err();
        match err {
            OpError::FormulaCells { column, cells } => {
                assert_eq!(column, "half");
                assert_eq!(cells, [(1, "`21561.5` is not a valid integer".to_owned())]);
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn a_formula_mixing_currencies_is_refused_naming_the_rows() {
        let (schema, mut working) = airports();
        working.rows.get_mut(&2).unwrap().cells.insert(
            "c2".into(),
            Value::parse("€5", ColumnType::Currency).unwrap(),
        );
        let err = apply(
            &schema,
            &ops(json!([
                {"op": "add_column", "name": "x", "formula": "Revenue + Revenue * Growth"},
                {"op": "add_column", "name": "y", "formula": "Revenue - 1"}
            ])),
            working,
            &Limits::default(),
        );
        assert!(err.is_ok(), "one currency per row is fine: {err:?}");

        let (schema, mut working) = airports();
        let t = Table::from_text(&["Cost".into()], &[vec!["€5".into()]]);
        let mut schema = schema;
        schema
            .columns
            .push(Column::new("c5", "Cost", t.columns[0].ty));
        working
            .rows
            .get_mut(&1)
            .unwrap()
            .cells
            .insert("c5".into(), t.rows[0][0].clone());
        let err = apply(
            &schema,
            &ops(json!([{"op": "add_column", "name": "margin", "formula": "Revenue - Cost"}])),
            working,
            &Limits::default(),
        )
        .unwrap_err();
        assert_eq!(
            err,
            OpError::FormulaCells {
                column: "margin".into(),
                cells: vec![(1, "`USD` and `EUR` are different currencies".into())]
            }
        );
    }

    #[test]
    fn a_formula_past_the_limits_is_refused_with_the_limit_and_a_column_without_formula_needs_a_type()
     {
        let (schema, working) = airports();
        let limits = Limits {
            formula: crate::formula::Limits {
                max_chars: 10,
                max_depth: 2,
            },
        };
        let err = apply(
            &schema,
            &ops(json!([{"op": "add_column", "name": "x", "formula": "Growth + 1 + 1"}])),
            working,
            &limits,
        )
        .unwrap_err();
        assert_eq!(
            err,
            OpError::BadFormula {
                column: "x".into(),
                error: crate::formula::FormulaError::TooLong { chars: 14, max: 10 }
            }
        );
        let (schema, working) = airports();
        let err = apply(
            &schema,
            &ops(json!([{"op": "add_column", "name": "x"}])),
            working,
            &limits,
        )
        .unwrap_err();
        assert_eq!(err, OpError::NoType("x".into()));
    }
}
