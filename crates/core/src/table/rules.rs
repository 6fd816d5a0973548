//! Column rules and validation that reports every bad cell.

use std::collections::HashMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{Column, Value};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unique: bool,
    /// Smallest allowed number (numeric columns) or length (text columns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Decimal>,
    /// A regular expression the whole text of the cell must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// The only values allowed (compared as text, case-sensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_of: Option<Vec<String>>,
}

impl Rules {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Checks the rules themselves (a pattern that does not compile, min above max).
    pub fn check(&self) -> Result<(), String> {
        if let Some(p) = &self.pattern {
            regex::Regex::new(&format!("^(?:{p})$")).map_err(|e| format!("pattern: {e}"))?;
        }
        if let (Some(min), Some(max)) = (self.min, self.max)
            && min > max
        {
            return Err("min is greater than max".to_owned());
        }
        Ok(())
    }
}

/// One cell that breaks a rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Row index (0-based) in the rows given.
    pub row: usize,
    pub column: String,
    pub rule: &'static str,
    pub value: String,
    pub message: String,
}

/// Checks rows one at a time against each column's rules, so that a table of any size can be
/// validated page by page. `unique` needs the other rows: the caller says which earlier row
/// each cell duplicates (in memory for [`validate`], in the database for stored tables).
pub struct RowChecker<'a> {
    columns: Vec<(&'a Column, Option<regex::Regex>)>,
}

impl<'a> RowChecker<'a> {
    pub fn new(columns: &'a [Column]) -> Self {
        Self {
            columns: columns
                .iter()
                .map(|col| {
                    let pattern = col
                        .rules
                        .pattern
                        .as_ref()
                        .and_then(|p| regex::Regex::new(&format!("^(?:{p})$")).ok());
                    (col, pattern)
                })
                .collect(),
        }
    }

    /// The violations of row `ri` (0-based), in column order and, within a column, in the
    /// order `required`, `unique`, `min`, `max`, `pattern`, `one_of`. `cell(ci)` is the row's
    /// value in column `ci`; `duplicates(ci, text)` the index of the nearest earlier row with
    /// the same value in a `unique` column `ci`, if any.
    pub fn check<'v>(
        &self,
        ri: usize,
        cell: impl Fn(usize) -> &'v Value,
        mut duplicates: impl FnMut(usize, &str) -> Option<usize>,
        out: &mut impl FnMut(Violation),
    ) {
        for (ci, (col, pattern)) in self.columns.iter().enumerate() {
            let rules = &col.rules;
            if rules.is_empty() {
                continue;
            }
            let value = cell(ci);
            let mut bad = |rule: &'static str, message: String| {
                out(Violation {
                    row: ri,
                    column: col.name.clone(),
                    rule,
                    value: value.to_string(),
                    message,
                });
            };
            if value.is_null() {
                if rules.required {
                    bad("required", "a value is required".to_owned());
                }
                continue;
            }
            let text = value.to_string();
            if rules.unique
                && let Some(first) = duplicates(ci, &text)
            {
                bad("unique", format!("duplicates row {}", first + 1));
            }
            let measure = if col.ty.is_numeric() {
                value.as_decimal()
            } else {
                Some(Decimal::from(text.chars().count()))
            };
            let what = if col.ty.is_numeric() {
                ""
            } else {
                " characters"
            };
            if let (Some(min), Some(m)) = (rules.min, measure)
                && m < min
            {
                bad("min", format!("must be at least {min}{what}"));
            }
            if let (Some(max), Some(m)) = (rules.max, measure)
                && m > max
            {
                bad("max", format!("must be at most {max}{what}"));
            }
            if let Some(re) = pattern
                && !re.is_match(&text)
            {
                bad(
                    "pattern",
                    format!("must match {}", rules.pattern.as_deref().unwrap_or("")),
                );
            }
            if let Some(allowed) = &rules.one_of
                && !allowed.contains(&text)
            {
                bad("one_of", format!("must be one of {}", allowed.join(", ")));
            }
        }
    }
}

/// Validates rows (aligned with `columns`) against each column's rules, in memory: every
/// violation, by row, then column, then rule.
pub fn validate(columns: &[Column], rows: &[Vec<Value>]) -> Vec<Violation> {
    let checker = RowChecker::new(columns);
    let mut seen: Vec<HashMap<String, usize>> = vec![HashMap::new(); columns.len()];
    let mut out = Vec::new();
    for (ri, row) in rows.iter().enumerate() {
        checker.check(
            ri,
            |ci| row.get(ci).unwrap_or(&Value::Null),
            |ci, text| seen[ci].insert(text.to_owned(), ri),
            &mut |v| out.push(v),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::ColumnType;

    #[test]
    fn every_bad_cell_is_reported_with_row_column_and_rule() {
        let mut qty = Column::new("c1", "qty", ColumnType::Integer);
        qty.rules = Rules {
            required: true,
            min: Some(Decimal::from(1)),
            max: Some(Decimal::from(10)),
            ..Rules::default()
        };
        let mut code = Column::new("c2", "code", ColumnType::Text);
        code.rules = Rules {
            unique: true,
            pattern: Some("[A-Z]{3}".into()),
            ..Rules::default()
        };
        let mut status = Column::new("c3", "status", ColumnType::Text);
        status.rules = Rules {
            one_of: Some(vec!["open".into(), "closed".into()]),
            ..Rules::default()
        };
        let rows = vec![
            vec![
                Value::Integer(5),
                Value::Text("ABC".into()),
                Value::Text("open".into()),
            ],
            vec![
                Value::Null,
                Value::Text("ABC".into()),
                Value::Text("pending".into()),
            ],
            vec![Value::Integer(11), Value::Text("abcd".into()), Value::Null],
        ];
        let v = validate(&[qty, code, status], &rows);
        let found: Vec<(usize, &str, &str)> = v
            .iter()
            .map(|v| (v.row, v.column.as_str(), v.rule))
            .collect();
        assert_eq!(
            found,
            [
                (1, "qty", "required"),
                (1, "code", "unique"),
                (1, "status", "one_of"),
                (2, "qty", "max"),
                (2, "code", "pattern")
            ]
        );
    }

    #[test]
    fn a_bad_pattern_is_reported_when_rules_are_checked() {
        let r = Rules {
            pattern: Some("(".into()),
            ..Rules::default()
        };
        assert!(r.check().is_err());
    }
}
