//! Column types from cells, and cells as values: the one place the import calls type
//! inference (`Inference`) and text parsing (`Value::parse`).
//!
//! A cell is what the file holds: text (every delimited cell; a spreadsheet's text cells), or
//! a spreadsheet's number, boolean or date. A column's type is decided from all of its cells:
//! - only text: the type inference finds for the texts (as for a CSV);
//! - only numbers: integer when every one is whole, else decimal when every one is exactly
//!   the decimal it prints as (what Excel shows), else float;
//! - only dates: date when none has a time of day, else datetime; only booleans: boolean;
//! - kinds mixed (numbers and words): text, each cell as it reads, so nothing is reinterpreted.
//!
//! Empty cells and texts that mean "no value" (`N/A`, `-`…) count for no kind.

use std::borrow::Cow;
use std::str::FromStr;

use chrono::{NaiveDateTime, NaiveTime};
use rust_decimal::Decimal;

use crate::table::{Column, ColumnType, DateOrder, Inference, Typed, Value, is_null_token};

/// One cell as read.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum CellRef<'a> {
    Empty,
    Text(Cow<'a, str>),
    Int(i64),
    Float(f64),
    Bool(bool),
    DateTime(NaiveDateTime),
}

impl CellRef<'_> {
    /// Whether the cell holds nothing a person would see.
    pub(crate) fn is_blank(&self) -> bool {
        match self {
            Self::Empty => true,
            Self::Text(t) => t.trim().is_empty(),
            _ => false,
        }
    }

    /// The text a person reads in the cell.
    pub(crate) fn display(&self) -> Cow<'_, str> {
        match self {
            Self::Empty => Cow::Borrowed(""),
            Self::Text(t) => Cow::Borrowed(t.as_ref()),
            Self::Int(i) => Cow::Owned(i.to_string()),
            // Rust prints the shortest text that reads back as the same float.
            Self::Float(f) => Cow::Owned(f.to_string()),
            Self::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            Self::DateTime(dt) => Cow::Owned(iso(dt)),
        }
    }
}

fn iso(dt: &NaiveDateTime) -> String {
    if dt.time() == NaiveTime::MIN {
        dt.format("%Y-%m-%d").to_string()
    } else {
        dt.format("%Y-%m-%d %H:%M:%S%.f").to_string()
    }
}

/// A float that is a whole number a 64-bit integer holds exactly.
fn whole(f: f64) -> Option<i64> {
    (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
}

fn exact_decimal(f: f64) -> Option<Decimal> {
    Decimal::from_str(&f.to_string()).ok()
}

const TEXT: u8 = 1;
const WHOLE: u8 = 2;
const FRACTION: u8 = 4;
const BOOL: u8 = 8;
const DATE: u8 = 16;
const DATETIME: u8 = 32;
const NUMBER: u8 = WHOLE | FRACTION;

/// A column's type, decided incrementally (the first pass sees each cell once).
#[derive(Clone, Debug)]
pub(crate) struct ColumnGuess {
    kinds: u8,
    /// Every fractional number is exactly a decimal.
    decimals: bool,
    text: Inference,
}

impl Default for ColumnGuess {
    fn default() -> Self {
        Self {
            kinds: 0,
            decimals: true,
            text: Inference::default(),
        }
    }
}

impl ColumnGuess {
    /// A guess that reads dates that read both ways in `order`.
    pub(crate) fn preferring(order: DateOrder) -> Self {
        Self {
            text: Inference::preferring(order),
            ..Self::default()
        }
    }

    pub(crate) fn push(&mut self, cell: &CellRef<'_>) {
        match cell {
            CellRef::Empty => {}
            CellRef::Text(t) => {
                if !is_null_token(t) {
                    self.kinds |= TEXT;
                    self.text.push(t);
                }
            }
            CellRef::Int(_) => self.kinds |= WHOLE,
            CellRef::Float(f) => {
                if whole(*f).is_some() {
                    self.kinds |= WHOLE;
                } else {
                    self.kinds |= FRACTION;
                    self.decimals &= exact_decimal(*f).is_some();
                }
            }
            CellRef::Bool(_) => self.kinds |= BOOL,
            CellRef::DateTime(dt) => {
                self.kinds |= if dt.time() == NaiveTime::MIN {
                    DATE
                } else {
                    DATETIME
                };
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn finish(&self) -> ColumnType {
        self.finish_typed().ty
    }

    /// The column's type, and for text cells, how their numbers and dates read.
    pub(crate) fn finish_typed(&self) -> Typed {
        if matches!(self.kinds, 0 | TEXT) {
            return self.text.finish_typed();
        }
        let ty = match self.kinds {
            WHOLE => ColumnType::Integer,
            k if k & !NUMBER == 0 => {
                if self.decimals {
                    ColumnType::Decimal
                } else {
                    ColumnType::Float
                }
            }
            DATE => ColumnType::Date,
            k if k & !(DATE | DATETIME) == 0 => ColumnType::Datetime,
            BOOL => ColumnType::Boolean,
            _ => ColumnType::Text,
        };
        Typed {
            ty,
            reading: None,
            dates: None,
        }
    }
}

/// The value of `cell` in a column of type `ty` (decided from all the column's cells, so
/// every cell fits; a cell that somehow does not is kept as its text).
pub(crate) fn to_value(cell: &CellRef<'_>, column: &Column) -> Value {
    let ty = column.ty;
    let typed = match (cell, ty) {
        (CellRef::Empty, _) => Some(Value::Null),
        (CellRef::Int(i), ColumnType::Integer) => Some(Value::Integer(*i)),
        (CellRef::Int(i), ColumnType::Decimal) => Some(Value::Decimal(Decimal::from(*i))),
        (CellRef::Int(i), ColumnType::Float) => Some(Value::Float(*i as f64)),
        (CellRef::Float(f), ColumnType::Integer) => whole(*f).map(Value::Integer),
        (CellRef::Float(f), ColumnType::Decimal) => exact_decimal(*f).map(Value::Decimal),
        (CellRef::Float(f), ColumnType::Float) => Some(Value::Float(*f)),
        (CellRef::Bool(b), ColumnType::Boolean) => Some(Value::Boolean(*b)),
        (CellRef::DateTime(dt), ColumnType::Date) => Some(Value::Date(dt.date())),
        (CellRef::DateTime(dt), ColumnType::Datetime) => Some(Value::Datetime(*dt)),
        (CellRef::Text(_), _) => None,
        (_, ColumnType::Text) => Some(Value::Text(cell.display().into_owned())),
        _ => None,
    };
    typed.unwrap_or_else(|| {
        let text = cell.display();
        Value::parse_with(&text, ty, column.conventions())
            .unwrap_or_else(|_| Value::Text(text.into_owned()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guess(cells: &[CellRef<'_>]) -> ColumnType {
        let mut g = ColumnGuess::default();
        for c in cells {
            g.push(c);
        }
        g.finish()
    }

    fn col(ty: ColumnType) -> Column {
        Column::new("c1", "c", ty)
    }

    fn text(s: &str) -> CellRef<'_> {
        CellRef::Text(Cow::Borrowed(s))
    }

    #[test]
    fn numbers_are_integers_when_whole_and_decimals_when_exact() {
        assert_eq!(
            guess(&[CellRef::Float(1.0), CellRef::Int(2)]),
            ColumnType::Integer
        );
        assert_eq!(
            guess(&[CellRef::Float(0.1), CellRef::Int(2)]),
            ColumnType::Decimal
        );
        assert_eq!(
            guess(&[CellRef::Float(1e300), CellRef::Float(0.5)]),
            ColumnType::Float,
            "1e300 is not a decimal"
        );
        assert_eq!(
            to_value(&CellRef::Float(0.1), &col(ColumnType::Decimal)),
            Value::Decimal(Decimal::from_str("0.1").unwrap_or_default())
        );
    }

    #[test]
    fn text_cells_are_inferred_and_null_markers_do_not_make_a_column_text() {
        assert_eq!(guess(&[text("12"), text("13")]), ColumnType::Integer);
        assert_eq!(guess(&[CellRef::Int(12), text("N/A")]), ColumnType::Integer);
        assert_eq!(
            to_value(&text("N/A"), &col(ColumnType::Integer)),
            Value::Null
        );
    }

    #[test]
    fn a_column_mixing_numbers_and_words_is_text_as_each_cell_reads() {
        assert_eq!(guess(&[CellRef::Int(12), text("twelve")]), ColumnType::Text);
        assert_eq!(
            to_value(&CellRef::Float(61_900_000.5), &col(ColumnType::Text)),
            Value::Text("61900000.5".into())
        );
    }

    #[test]
    fn dates_with_a_time_make_a_datetime_column() {
        let day = chrono::NaiveDate::from_ymd_opt(2024, 3, 4).unwrap_or_default();
        let midnight = day.and_time(NaiveTime::MIN);
        let noon = day.and_hms_opt(12, 0, 0).unwrap_or_default();
        assert_eq!(guess(&[CellRef::DateTime(midnight)]), ColumnType::Date);
        assert_eq!(
            guess(&[CellRef::DateTime(midnight), CellRef::DateTime(noon)]),
            ColumnType::Datetime
        );
        assert_eq!(
            to_value(&CellRef::DateTime(midnight), &col(ColumnType::Datetime)),
            Value::Datetime(midnight)
        );
    }
}
