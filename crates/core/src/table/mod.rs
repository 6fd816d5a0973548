//! Tables: typed columns, cell values, type inference from text, conversion and validation.

mod infer;
mod rules;
mod value;

pub use infer::{
    Inference, MarkGuess, Typed, infer_column, infer_column_type, infer_typed, is_identifier,
    is_null_token, number_mark,
};
pub use rules::{RowChecker, Rules, Violation, validate};
pub use value::{
    Conventions, ConvertError, DateOrder, DateReading, DecidedBy, DecimalMark, Money, Reading,
    Value,
};

use serde::{Deserialize, Serialize};

/// The type of a column. Every cell of the column is either null or a value of this type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    Integer,
    /// Exact decimal number (no binary rounding): amounts, measurements as written.
    Decimal,
    Float,
    Boolean,
    Date,
    Datetime,
    /// An amount with a currency code (`USD`, `EUR`…).
    Currency,
    /// A percentage, stored as the number before the `%` sign (`12.5` for 12.5 %).
    Percent,
    Url,
    Email,
    Text,
}

impl ColumnType {
    pub const ALL: [ColumnType; 11] = [
        Self::Integer,
        Self::Decimal,
        Self::Float,
        Self::Boolean,
        Self::Date,
        Self::Datetime,
        Self::Currency,
        Self::Percent,
        Self::Url,
        Self::Email,
        Self::Text,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Integer => "integer",
            Self::Decimal => "decimal",
            Self::Float => "float",
            Self::Boolean => "boolean",
            Self::Date => "date",
            Self::Datetime => "datetime",
            Self::Currency => "currency",
            Self::Percent => "percent",
            Self::Url => "url",
            Self::Email => "email",
            Self::Text => "text",
        }
    }

    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            Self::Integer | Self::Decimal | Self::Float | Self::Currency | Self::Percent
        )
    }
}

impl std::fmt::Display for ColumnType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ColumnType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .or(match s.as_str() {
                "int" | "number" | "bigint" => Some(Self::Integer),
                "numeric" | "money_amount" => Some(Self::Decimal),
                "double" | "real" => Some(Self::Float),
                "bool" => Some(Self::Boolean),
                "timestamp" | "date_time" => Some(Self::Datetime),
                "money" => Some(Self::Currency),
                "percentage" => Some(Self::Percent),
                "string" | "str" => Some(Self::Text),
                _ => None,
            })
            .ok_or_else(|| {
                format!(
                    "unknown column type `{s}` (expected one of integer, decimal, float, boolean, \
                     date, datetime, currency, percent, url, email, text)"
                )
            })
    }
}

/// A column: a stable id (kept through renames and reorders), a name unique in its table, a
/// type and optional rules.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ColumnType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Rules::is_empty")]
    pub rules: Rules,
    /// How the column's numbers were written where they came from (decimal mark, grouping),
    /// decided once for the column and reported; absent for columns that are not numbers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reading: Option<Reading>,
    /// How the column's dates with slashes read (day or month first), decided once for the
    /// column from all its values, or by the user's locale, and reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dates: Option<DateReading>,
}

impl Column {
    pub fn new(id: impl Into<String>, name: impl Into<String>, ty: ColumnType) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            ty,
            description: None,
            rules: Rules::default(),
            reading: None,
            dates: None,
        }
    }

    /// The column with the reading its numbers were decided with.
    pub fn with_reading(mut self, reading: Option<Reading>) -> Self {
        self.reading = reading;
        self
    }

    /// A value given for this column in an edit, a filter or a query (JSON): as the API
    /// writes values first (a decimal point; ISO dates), then with the column's decimal mark.
    /// Dates with slashes are read in the column's order either way.
    pub fn read_json(&self, json: &serde_json::Value) -> Result<Value, ConvertError> {
        let how = self.conventions();
        let api = Conventions {
            decimal: DecimalMark::Point,
            ..how
        };
        Value::from_json_as(json, self.ty, api).or_else(|e| {
            if how == api {
                Err(e)
            } else {
                Value::from_json_as(json, self.ty, how)
            }
        })
    }

    /// `read_json` for text (a query string's value).
    pub fn read_text(&self, text: &str) -> Result<Value, ConvertError> {
        self.read_json(&serde_json::Value::String(text.to_owned()))
    }

    /// How to read text for this column: its decimal mark and its order of dates.
    pub fn conventions(&self) -> Conventions {
        Conventions {
            decimal: self.reading.map(|r| r.decimal).unwrap_or_default(),
            dates: self.dates.map(|d| d.order),
        }
    }
}

/// An in-memory table: columns and rows of cells aligned with them.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Table {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Value>>,
}

impl Table {
    /// Builds a typed table from text cells: names are made unique and non-empty, ragged rows
    /// are padded or cut to the header, each column's type is inferred from its values and
    /// each cell parsed to it (a cell that does not parse keeps the column as text).
    pub fn from_text(headers: &[String], rows: &[Vec<String>]) -> Self {
        let width = headers
            .len()
            .max(rows.iter().map(Vec::len).max().unwrap_or(0));
        let names = unique_names(headers, width);
        let mut columns = Vec::with_capacity(width);
        let mut typed_rows: Vec<Vec<Value>> = vec![Vec::with_capacity(width); rows.len()];
        for (i, name) in names.into_iter().enumerate() {
            let cells: Vec<&str> = rows
                .iter()
                .map(|r| r.get(i).map_or("", String::as_str))
                .collect();
            // Every value, not a sample: each cell must parse as the column's type.
            let mut inference = Inference::default();
            for cell in &cells {
                inference.push(cell);
            }
            let typed = inference.finish_typed();
            let how = typed.conventions();
            for (row, cell) in typed_rows.iter_mut().zip(&cells) {
                row.push(
                    Value::parse_with(cell, typed.ty, how)
                        .unwrap_or_else(|_| Value::Text((*cell).to_owned())),
                );
            }
            columns.push(typed.column(format!("c{}", i + 1), name));
        }
        Self {
            columns,
            rows: typed_rows,
        }
    }

    pub fn column_index(&self, name: &str) -> Option<usize> {
        find_column(&self.columns, name)
    }
}

/// Finds a column by name: exact match first, then case- and space-insensitive.
pub fn find_column(columns: &[Column], name: &str) -> Option<usize> {
    columns.iter().position(|c| c.name == name).or_else(|| {
        let key = normalize_name(name);
        columns.iter().position(|c| normalize_name(&c.name) == key)
    })
}

/// The column a mistyped or shortened name most likely meant (`passengers` →
/// `Passengers 2023`), for "did you mean" hints. Compared in `find_column`'s terms (case,
/// spaces and underscores ignored): a name that starts or ends another wins, then the most
/// similar by Jaro-Winkler above 0.8. Long names get no hint (the comparison is quadratic).
pub fn closest_column<'a>(columns: &'a [Column], name: &str) -> Option<&'a str> {
    const LONGEST: usize = 200;
    let key = normalize_name(name);
    if key.is_empty() || key.chars().count() > LONGEST {
        return None;
    }
    let mut best: Option<(f64, &str)> = None;
    for column in columns {
        let other = normalize_name(&column.name);
        if other.is_empty() || other.chars().count() > LONGEST {
            continue;
        }
        let affix = key.chars().count() >= 3
            && (other.starts_with(&key) || other.ends_with(&key) || key.starts_with(&other));
        let score = if affix {
            2.0
        } else {
            strsim::jaro_winkler(&key, &other)
        };
        if score > 0.8 && best.is_none_or(|(b, _)| score > b) {
            best = Some((score, column.name.as_str()));
        }
    }
    best.map(|(_, n)| n)
}

/// The key `find_column` compares names by when they are not equal as written.
pub(crate) fn normalize_name(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_whitespace() && *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Column names made non-empty (`Column 3`) and unique (`Name`, `Name 2`).
pub fn unique_names(headers: &[String], width: usize) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    (0..width)
        .map(|i| {
            let base = headers
                .get(i)
                .map(|h| h.trim())
                .filter(|h| !h.is_empty())
                .map_or_else(|| format!("Column {}", i + 1), str::to_owned);
            let mut name = base.clone();
            let mut n = 2;
            while !seen.insert(name.to_lowercase()) {
                name = format!("{base} {n}");
                n += 1;
            }
            name
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn from_text_infers_each_column_and_parses_its_cells() {
        let t = Table::from_text(
            &s(&["City", "Population", "Share", "Founded", "Capital"]),
            &[
                s(&["Paris", "2,102,650", "3.1%", "0052-01-01", "yes"]),
                s(&["Lyon", "522,250", "0.8%", "N/A", "no"]),
            ],
        );
        let types: Vec<ColumnType> = t.columns.iter().map(|c| c.ty).collect();
        assert_eq!(
            types,
            [
                ColumnType::Text,
                ColumnType::Integer,
                ColumnType::Percent,
                ColumnType::Date,
                ColumnType::Boolean
            ]
        );
        assert_eq!(t.rows[0][1], Value::Integer(2_102_650));
        assert_eq!(t.rows[1][3], Value::Null);
        assert_eq!(t.rows[1][4], Value::Boolean(false));
    }

    #[test]
    fn names_are_made_unique_and_non_empty_and_rows_are_squared() {
        let t = Table::from_text(&s(&["a", "A", ""]), &[s(&["1", "2", "3", "4"]), s(&["5"])]);
        let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "A 2", "Column 3", "Column 4"]);
        assert!(t.rows.iter().all(|r| r.len() == 4));
    }

    #[test]
    fn the_closest_column_is_suggested_for_a_shortened_or_mistyped_name() {
        let columns = [
            Column::new("c1", "Airport", ColumnType::Text),
            Column::new("c2", "Passengers 2023", ColumnType::Integer),
            Column::new("c3", "Country", ColumnType::Text),
        ];
        assert_eq!(
            closest_column(&columns, "passengers"),
            Some("Passengers 2023")
        );
        assert_eq!(closest_column(&columns, "contry"), Some("Country"));
        assert_eq!(closest_column(&columns, "airports"), Some("Airport"));
        assert_eq!(closest_column(&columns, "revenue"), None);
        assert_eq!(closest_column(&columns, &"x".repeat(10_000)), None);
    }

    #[test]
    fn column_types_parse_from_their_names_and_aliases() {
        assert_eq!("Integer".parse::<ColumnType>(), Ok(ColumnType::Integer));
        assert_eq!("money".parse::<ColumnType>(), Ok(ColumnType::Currency));
        assert!("blob".parse::<ColumnType>().is_err());
    }
}
