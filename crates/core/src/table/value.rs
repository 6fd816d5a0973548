//! Cell values: parsing from text as people write it, the canonical JSON form, conversion
//! between types and ordering for sorts.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::ColumnType;
use super::infer::is_null_token;

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Decimal(Decimal),
    Float(f64),
    Boolean(bool),
    Date(NaiveDate),
    /// Date and time as written; an offset, when given, is applied to give UTC.
    Datetime(NaiveDateTime),
    Currency(Money),
    /// The number before the `%` sign.
    Percent(Decimal),
    Url(String),
    Email(String),
    Text(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Money {
    pub amount: Decimal,
    /// ISO 4217 code when known (`USD`), otherwise the symbol as written.
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a valid {ty}")]
pub struct ConvertError {
    pub value: String,
    pub ty: ColumnType,
}

fn err(value: &str, ty: ColumnType) -> ConvertError {
    let mut value = value.to_owned();
    if value.len() > 80 {
        let cut = (0..=80)
            .rev()
            .find(|i| value.is_char_boundary(*i))
            .unwrap_or(0);
        value.truncate(cut);
        value.push('…');
    }
    ConvertError { value, ty }
}

const CURRENCY_SYMBOLS: &[(&str, &str)] = &[
    ("US$", "USD"),
    ("$", "USD"),
    ("€", "EUR"),
    ("£", "GBP"),
    ("¥", "JPY"),
    ("₹", "INR"),
    ("₩", "KRW"),
    ("₽", "RUB"),
    ("₺", "TRY"),
    ("R$", "BRL"),
    ("CHF", "CHF"),
    ("kr", "SEK"),
    ("zł", "PLN"),
];

/// The mark between a number's whole part and its fraction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DecimalMark {
    /// `1,234.5` (English), `1'234.5` (Swiss), `1 234.5`.
    #[default]
    #[serde(rename = ".")]
    Point,
    /// `1.234,5` (German), `1 234,5` (French), `21,2 %`.
    #[serde(rename = ",")]
    Comma,
}

impl DecimalMark {
    pub fn as_char(self) -> char {
        match self {
            Self::Point => '.',
            Self::Comma => ',',
        }
    }

    /// Whether `c` separates groups of digits in numbers written with this mark.
    fn groups_with(self, c: char) -> bool {
        match self {
            Self::Point => matches!(c, ',' | '\u{a0}' | '\u{202f}' | ' ' | '_' | '\''),
            Self::Comma => matches!(c, '.' | '\u{a0}' | '\u{202f}' | ' ' | '\''),
        }
    }
}

/// How a column's numbers are written, decided once for the whole column from all of its
/// values (see `Inference`) and kept with its schema: the decimal mark, and the grouping
/// separator its values use (`None`: none seen).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Reading {
    pub decimal: DecimalMark,
    #[serde(default)]
    pub grouping: Option<char>,
}

impl Reading {
    pub const COMMA: Reading = Reading {
        decimal: DecimalMark::Comma,
        grouping: None,
    };

    /// The grouping separator `text` uses under this reading (the first one between two
    /// digits), if any.
    pub(crate) fn grouping_in(decimal: DecimalMark, text: &str) -> Option<char> {
        let mut chars = text.chars().peekable();
        let mut after_digit = false;
        while let Some(c) = chars.next() {
            if after_digit
                && decimal.groups_with(c)
                && chars.peek().is_some_and(char::is_ascii_digit)
            {
                return Some(c);
            }
            after_digit = c.is_ascii_digit();
        }
        None
    }
}

/// The order of day and month in dates written with slashes (`03/04/2024`), decided once for
/// a column from all of its values; ISO 8601 (`2024-04-03`), named months and dotted dates
/// (`03.04.2024`, always day first) read the same in every order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DateOrder {
    /// `03/04/2024` is 3 April (most of the world).
    DayFirst,
    /// `03/04/2024` is 4 March (the United States).
    MonthFirst,
}

/// How a column's dates were read: the order, and whether its values settled it (a value
/// such as `14/02/2024`) or, every value reading both ways, the user's locale did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DateReading {
    pub order: DateOrder,
    pub decided_by: DecidedBy,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecidedBy {
    /// At least one value reads only one way.
    Values,
    /// Every value reads both ways: the user's locale chose.
    Locale,
}

/// How to read one column's text: its decimal mark, and (for dates with slashes) the order
/// of day and month. `dates: None` reads each date the one way it can be read, month first
/// when both can: only for a single value with no column around it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Conventions {
    pub decimal: DecimalMark,
    pub dates: Option<DateOrder>,
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Self::Null)
    }

    /// Parses text as written in a reply or a spreadsheet into a value of type `ty`, numbers
    /// with a decimal point (`1,234.5`). Empty markers (`""`, `N/A`, `-`, `null`…) give `Null`.
    pub fn parse(text: &str, ty: ColumnType) -> Result<Self, ConvertError> {
        Self::parse_as(text, ty, DecimalMark::Point)
    }

    /// `parse`, numbers read with `decimal` as their decimal mark (`1.234,5` with a comma).
    /// A text value is kept exactly as given, spaces included; the others are read from the
    /// trimmed text.
    pub fn parse_as(
        text: &str,
        ty: ColumnType,
        decimal: DecimalMark,
    ) -> Result<Self, ConvertError> {
        Self::parse_with(
            text,
            ty,
            Conventions {
                decimal,
                dates: None,
            },
        )
    }

    /// `parse` with a column's conventions: its decimal mark and its order of dates.
    pub fn parse_with(text: &str, ty: ColumnType, how: Conventions) -> Result<Self, ConvertError> {
        let decimal = how.decimal;
        let t = text.trim();
        if is_null_token(t) {
            return Ok(Self::Null);
        }
        let parsed = match ty {
            ColumnType::Text => Some(Self::Text(text.to_owned())),
            ColumnType::Integer => parse_integer(t, decimal).map(Self::Integer),
            ColumnType::Decimal => parse_decimal(t, decimal).map(Self::Decimal),
            ColumnType::Float => parse_float(t, decimal).map(Self::Float),
            ColumnType::Boolean => parse_bool(t).map(Self::Boolean),
            ColumnType::Date => parse_date(t, how.dates).map(Self::Date),
            ColumnType::Datetime => parse_datetime(t, how.dates).map(Self::Datetime),
            ColumnType::Currency => parse_money(t, decimal).map(Self::Currency),
            ColumnType::Percent => parse_percent(t, decimal).map(Self::Percent),
            ColumnType::Url => parse_url(t).map(Self::Url),
            ColumnType::Email => parse_email(t).map(Self::Email),
        };
        parsed.ok_or_else(|| err(t, ty))
    }

    /// The canonical JSON form, as stored and as the API shows it: numbers for integers and
    /// floats, strings for exact decimals and percents (no rounding), ISO 8601 for dates,
    /// `{"amount", "currency"}` for money.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Self::Null => serde_json::Value::Null,
            Self::Integer(i) => json!(i),
            Self::Float(f) => json!(f),
            Self::Boolean(b) => json!(b),
            Self::Decimal(d) | Self::Percent(d) => json!(d.normalize().to_string()),
            Self::Date(d) => json!(d.format("%Y-%m-%d").to_string()),
            Self::Datetime(dt) => json!(dt.format("%Y-%m-%dT%H:%M:%S%.f").to_string()),
            Self::Currency(m) => json!({"amount": m.amount.to_string(), "currency": m.currency}),
            Self::Url(s) | Self::Email(s) | Self::Text(s) => json!(s),
        }
    }

    /// Reads a JSON value (canonical or as a person would send it) as type `ty`.
    pub fn from_json(value: &serde_json::Value, ty: ColumnType) -> Result<Self, ConvertError> {
        Self::from_json_as(value, ty, Conventions::default())
    }

    /// `from_json`, strings read with a column's conventions (JSON numbers are always
    /// written with a point).
    pub fn from_json_as(
        value: &serde_json::Value,
        ty: ColumnType,
        how: Conventions,
    ) -> Result<Self, ConvertError> {
        use serde_json::Value as J;
        match (value, ty) {
            (J::Null, _) => Ok(Self::Null),
            (J::Bool(b), ColumnType::Boolean) => Ok(Self::Boolean(*b)),
            (J::Bool(b), ColumnType::Text) => Ok(Self::Text(b.to_string())),
            (J::Number(n), ColumnType::Integer) => n
                .as_i64()
                .map(Self::Integer)
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                        .map(|f| Self::Integer(f as i64))
                })
                .ok_or_else(|| err(&n.to_string(), ty)),
            (J::Number(n), ColumnType::Float) => n
                .as_f64()
                .map(Self::Float)
                .ok_or_else(|| err(&n.to_string(), ty)),
            (J::Number(n), _) => Self::parse(&n.to_string(), ty),
            (J::String(s), _) => Self::parse_with(s, ty, how),
            (J::Object(o), ColumnType::Currency) => {
                let amount = o.get("amount").ok_or_else(|| err(&value.to_string(), ty))?;
                let amount = match amount {
                    J::String(s) => parse_decimal(s, DecimalMark::Point),
                    J::Number(n) => parse_decimal(&n.to_string(), DecimalMark::Point),
                    _ => None,
                }
                .ok_or_else(|| err(&value.to_string(), ty))?;
                let currency = o
                    .get("currency")
                    .and_then(J::as_str)
                    .map(|c| c.trim().to_uppercase())
                    .filter(|c| !c.is_empty() && c.len() <= 8)
                    .ok_or_else(|| err(&value.to_string(), ty))?;
                Ok(Self::Currency(Money { amount, currency }))
            }
            (other, ColumnType::Text) => Ok(Self::Text(other.to_string())),
            (other, _) => Err(err(&other.to_string(), ty)),
        }
    }

    /// Converts to another column type; what cannot be converted is an error naming the value.
    pub fn convert(&self, to: ColumnType) -> Result<Self, ConvertError> {
        match (self, to) {
            (Self::Null, _) => Ok(Self::Null),
            (Self::Integer(i), ColumnType::Decimal) => Ok(Self::Decimal(Decimal::from(*i))),
            (Self::Integer(i), ColumnType::Float) => Ok(Self::Float(*i as f64)),
            (Self::Integer(i), ColumnType::Percent) => Ok(Self::Percent(Decimal::from(*i))),
            (Self::Decimal(d), ColumnType::Float) => {
                Ok(Self::Float(d.to_string().parse().unwrap_or(f64::NAN)))
            }
            (Self::Decimal(d), ColumnType::Integer) if d.fract().is_zero() => i64::try_from(*d)
                .map(Self::Integer)
                .map_err(|_| err(&d.to_string(), to)),
            (Self::Decimal(d), ColumnType::Percent) => Ok(Self::Percent(*d)),
            (Self::Percent(d), ColumnType::Decimal) => Ok(Self::Decimal(*d)),
            (Self::Float(f), ColumnType::Decimal) => Decimal::from_str(&f.to_string())
                .map(Self::Decimal)
                .map_err(|_| err(&f.to_string(), to)),
            (Self::Float(f), ColumnType::Integer) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
                Ok(Self::Integer(*f as i64))
            }
            (Self::Currency(m), ColumnType::Decimal) => Ok(Self::Decimal(m.amount)),
            (Self::Date(d), ColumnType::Datetime) => Ok(Self::Datetime(d.and_time(NaiveTime::MIN))),
            (Self::Datetime(dt), ColumnType::Date) => Ok(Self::Date(dt.date())),
            (v, ColumnType::Text) => Ok(Self::Text(v.to_string())),
            (v, _) => Self::parse(&v.to_string(), to),
        }
    }

    /// Total order for sorts: nulls last, numbers by value across numeric types, then text.
    pub fn sort_cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Self::Null, Self::Null) => Ordering::Equal,
            (Self::Null, _) => Ordering::Greater,
            (_, Self::Null) => Ordering::Less,
            (Self::Integer(a), Self::Integer(b)) => a.cmp(b),
            (Self::Decimal(a) | Self::Percent(a), Self::Decimal(b) | Self::Percent(b)) => a.cmp(b),
            (Self::Currency(a), Self::Currency(b)) => {
                a.currency.cmp(&b.currency).then(a.amount.cmp(&b.amount))
            }
            (Self::Boolean(a), Self::Boolean(b)) => a.cmp(b),
            (Self::Date(a), Self::Date(b)) => a.cmp(b),
            (Self::Datetime(a), Self::Datetime(b)) => a.cmp(b),
            (a, b) => match (a.as_f64(), b.as_f64()) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                _ => a
                    .to_string()
                    .to_lowercase()
                    .cmp(&b.to_string().to_lowercase()),
            },
        }
    }

    /// The value as a float, for arithmetic and comparisons across numeric types.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Integer(i) => Some(*i as f64),
            Self::Float(f) => Some(*f),
            Self::Decimal(d) | Self::Percent(d) => d.to_string().parse().ok(),
            Self::Currency(m) => m.amount.to_string().parse().ok(),
            _ => None,
        }
    }

    pub fn as_decimal(&self) -> Option<Decimal> {
        match self {
            Self::Integer(i) => Some(Decimal::from(*i)),
            Self::Decimal(d) | Self::Percent(d) => Some(*d),
            Self::Currency(m) => Some(m.amount),
            Self::Float(f) => Decimal::from_str(&f.to_string()).ok(),
            _ => None,
        }
    }
}

/// The text a person would read; `Value::parse` of it under the same type gives the value back.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Null => Ok(()),
            Self::Integer(i) => write!(f, "{i}"),
            Self::Float(x) => write!(f, "{x}"),
            Self::Decimal(d) => write!(f, "{d}"),
            Self::Percent(d) => write!(f, "{}%", d.normalize()),
            Self::Boolean(b) => write!(f, "{b}"),
            Self::Date(d) => write!(f, "{}", d.format("%Y-%m-%d")),
            Self::Datetime(dt) => write!(f, "{}", dt.format("%Y-%m-%dT%H:%M:%S%.f")),
            Self::Currency(m) => write!(f, "{} {}", m.amount, m.currency),
            Self::Url(s) | Self::Email(s) | Self::Text(s) => f.write_str(s),
        }
    }
}

/// Digits with optional sign and consistent thousand separators (`1,234,567`, `1 234`,
/// `1_000`; with a decimal comma `1.234.567`, `1 234,5`), as `-1234.5`. A lone group that
/// is not three digits long is not a separator.
fn strip_thousands(t: &str, decimal: DecimalMark) -> Option<String> {
    let (sign, body) = match t.strip_prefix('-').or_else(|| t.strip_prefix('−')) {
        Some(rest) => ("-", rest),
        None => ("", t.strip_prefix('+').unwrap_or(t)),
    };
    let (int_part, frac) = match body.split_once(decimal.as_char()) {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    let sep = int_part.chars().find(|c| decimal.groups_with(*c));
    let int_clean = match sep {
        None => int_part.to_owned(),
        Some(sep) => {
            let groups: Vec<&str> = int_part.split(sep).collect();
            let ok = !groups[0].is_empty()
                && groups[0].len() <= 3
                && groups[1..].iter().all(|g| g.len() == 3);
            if !ok {
                return None;
            }
            groups.concat()
        }
    };
    if int_clean.is_empty() && frac.is_none_or(str::is_empty) {
        return None;
    }
    if !int_clean.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    match frac {
        Some(f) if !f.chars().all(|c| c.is_ascii_digit()) || f.is_empty() => None,
        Some(f) => Some(format!(
            "{sign}{}.{f}",
            if int_clean.is_empty() {
                "0"
            } else {
                &int_clean
            }
        )),
        None => Some(format!("{sign}{int_clean}")),
    }
}

fn parse_integer(t: &str, decimal: DecimalMark) -> Option<i64> {
    let clean = strip_thousands(t, decimal)?;
    if clean.contains('.') {
        return None;
    }
    clean.parse().ok()
}

fn parse_decimal(t: &str, decimal: DecimalMark) -> Option<Decimal> {
    let clean = strip_thousands(t, decimal)?;
    Decimal::from_str(&clean).ok()
}

fn parse_float(t: &str, decimal: DecimalMark) -> Option<f64> {
    if let Some(clean) = strip_thousands(t, decimal) {
        return clean.parse().ok();
    }
    if decimal == DecimalMark::Comma {
        return None;
    }
    // Scientific notation, as written by programs.
    let lower = t.to_ascii_lowercase();
    if lower.contains('e')
        && lower
            .chars()
            .all(|c| c.is_ascii_digit() || "+-.e".contains(c))
    {
        return lower.parse::<f64>().ok().filter(|f| f.is_finite());
    }
    None
}

fn parse_bool(t: &str) -> Option<bool> {
    match t.to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "t" | "✓" | "✔" => Some(true),
        "false" | "no" | "n" | "f" | "✗" | "✘" => Some(false),
        _ => None,
    }
}

const DATE_FORMATS: &[&str] = &[
    "%Y-%m-%d",
    "%Y/%m/%d",
    "%Y.%m.%d",
    "%d.%m.%Y",
    "%b %d, %Y",
    "%B %d, %Y",
    "%d %b %Y",
    "%d %B %Y",
    "%b %d %Y",
    "%B %d %Y",
    "%Y%m%d",
];

fn parse_date(t: &str, order: Option<DateOrder>) -> Option<NaiveDate> {
    // A year written first has four digits: chrono's `%Y` also takes `01` in `01/02/24`,
    // which would make it the year 1.
    let b = t.as_bytes();
    let year_first = b.len() > 4 && b[..4].iter().all(u8::is_ascii_digit) && !b[4].is_ascii_digit();
    for f in DATE_FORMATS {
        if *f == "%Y%m%d" && (t.len() != 8 || !t.starts_with(['1', '2'])) {
            continue;
        }
        if f.starts_with("%Y") && *f != "%Y%m%d" && !year_first {
            continue;
        }
        if let Ok(d) = NaiveDate::parse_from_str(t, f) {
            return Some(d);
        }
    }
    // Slashed dates: month first (US) unless the first number cannot be a month.
    let parts: Vec<&str> = t.split('/').collect();
    if parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
    {
        let a: u32 = parts[0].parse().ok()?;
        let b: u32 = parts[1].parse().ok()?;
        let y: i32 = parts[2].parse().ok()?;
        let y = if parts[2].len() == 2 { 2000 + y } else { y };
        let (m, d) = match order {
            Some(DateOrder::DayFirst) => (b, a),
            Some(DateOrder::MonthFirst) => (a, b),
            None if a > 12 => (b, a),
            None => (a, b),
        };
        return NaiveDate::from_ymd_opt(y, m, d);
    }
    None
}

fn parse_datetime(t: &str, order: Option<DateOrder>) -> Option<NaiveDateTime> {
    parse_datetime_as_written(t, order).or_else(|| {
        // One zone suffix meaning UTC, stripped once: not by recursion, which a cell of
        // thousands of `Z`s turned into a stack overflow.
        let bare = t.strip_suffix(" UTC").or_else(|| t.strip_suffix('Z'))?;
        parse_datetime_as_written(bare, order)
    })
}

fn parse_datetime_as_written(t: &str, order: Option<DateOrder>) -> Option<NaiveDateTime> {
    if t.contains('/') && !t.starts_with(|c: char| c.is_ascii_digit() && t.find('/') == Some(4)) {
        // Day and month with slashes: in the column's order (month first on its own).
        let (date, time) = t.split_once([' ', 'T'])?;
        let date = parse_date(date, order.or(Some(DateOrder::MonthFirst)))?;
        for f in ["%H:%M:%S%.f", "%H:%M"] {
            if let Ok(time) = NaiveTime::parse_from_str(time, f) {
                return Some(date.and_time(time));
            }
        }
        return None;
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Some(dt.naive_utc());
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
        "%Y/%m/%d %H:%M:%S",
        "%Y/%m/%d %H:%M",
        "%d.%m.%Y %H:%M",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(t, f) {
            return Some(dt);
        }
    }
    for f in [
        "%Y-%m-%d %H:%M:%S%.f %z",
        "%Y-%m-%d %H:%M:%S%z",
        "%Y-%m-%d %H:%M:%S %Z",
    ] {
        if let Ok(dt) = DateTime::parse_from_str(t, f) {
            return Some(dt.naive_utc());
        }
    }
    None
}

fn parse_money(t: &str, decimal: DecimalMark) -> Option<Money> {
    let t = t.trim();
    let (neg, t) = match t.strip_prefix('-').or_else(|| t.strip_prefix('−')) {
        Some(rest) => (true, rest.trim_start()),
        None => (false, t),
    };
    let (amount_text, currency) = split_currency(t)?;
    let mut amount = parse_decimal(amount_text.trim(), decimal)?;
    if neg {
        amount = -amount;
    }
    Some(Money { amount, currency })
}

/// `$1,234.50`, `1,234.50 $`, `USD 12`, `12 EUR`, `€12`.
fn split_currency(t: &str) -> Option<(&str, String)> {
    for (symbol, code) in CURRENCY_SYMBOLS {
        if let Some(rest) = t.strip_prefix(symbol) {
            return Some((rest, (*code).to_owned()));
        }
        if let Some(rest) = t.strip_suffix(symbol) {
            return Some((rest, (*code).to_owned()));
        }
    }
    let is_code = |s: &str| s.len() == 3 && s.chars().all(|c| c.is_ascii_uppercase());
    if let Some((a, b)) = t.split_once(' ') {
        if is_code(a) {
            return Some((b, a.to_owned()));
        }
        if is_code(b) {
            return Some((a, b.to_owned()));
        }
    }
    None
}

/// `12.5%`, `12.5 %`, or a bare number already meaning percent (the canonical JSON form).
fn parse_percent(t: &str, decimal: DecimalMark) -> Option<Decimal> {
    let body = t.strip_suffix('%').map_or(t, str::trim_end);
    parse_decimal(body, decimal)
}

fn parse_url(t: &str) -> Option<String> {
    let lower = t.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let ok = !host.is_empty()
        && !t.chars().any(char::is_whitespace)
        && host
            .chars()
            .all(|c| c.is_alphanumeric() || "-.:[]".contains(c));
    ok.then(|| t.to_owned())
}

fn parse_email(t: &str) -> Option<String> {
    let (local, domain) = t.rsplit_once('@')?;
    let ok = !local.is_empty()
        && !local.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !t.chars().any(char::is_whitespace);
    ok.then(|| t.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str, ty: ColumnType) -> Value {
        Value::parse(text, ty).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn numbers_parse_with_thousand_separators_and_signs() {
        assert_eq!(
            p("1,234,567", ColumnType::Integer),
            Value::Integer(1_234_567)
        );
        assert_eq!(p("-42", ColumnType::Integer), Value::Integer(-42));
        assert_eq!(
            p("1 234.50", ColumnType::Decimal),
            Value::Decimal(Decimal::new(123_450, 2))
        );
        assert!(
            Value::parse("12,34", ColumnType::Integer).is_err(),
            "not a thousands group"
        );
        assert_eq!(p("1.5e3", ColumnType::Float), Value::Float(1500.0));
    }

    #[test]
    fn money_percent_and_empties_parse() {
        assert_eq!(
            p("$1,234.50", ColumnType::Currency),
            Value::Currency(Money {
                amount: Decimal::new(123_450, 2),
                currency: "USD".into()
            })
        );
        assert_eq!(
            p("12 EUR", ColumnType::Currency),
            Value::Currency(Money {
                amount: Decimal::from(12),
                currency: "EUR".into()
            })
        );
        assert_eq!(
            p("-€3", ColumnType::Currency).as_decimal(),
            Some(Decimal::from(-3))
        );
        assert_eq!(
            p("12.5%", ColumnType::Percent),
            Value::Percent(Decimal::new(125, 1))
        );
        for empty in ["", "N/A", "-", "null", "  "] {
            assert_eq!(p(empty, ColumnType::Integer), Value::Null);
        }
    }

    #[test]
    fn dates_parse_in_common_forms() {
        let d = NaiveDate::from_ymd_opt(2024, 1, 31).unwrap();
        for text in [
            "2024-01-31",
            "2024/01/31",
            "31.01.2024",
            "Jan 31, 2024",
            "31 January 2024",
            "1/31/2024",
            "31/1/2024",
        ] {
            assert_eq!(p(text, ColumnType::Date), Value::Date(d), "{text}");
        }
        assert!(Value::parse("2024-02-30", ColumnType::Date).is_err());
        let dt = p("2024-01-31T10:00:00+02:00", ColumnType::Datetime);
        assert_eq!(dt.to_string(), "2024-01-31T08:00:00");
    }

    #[test]
    fn json_form_round_trips_for_every_type() {
        let values = [
            (Value::Integer(7), ColumnType::Integer),
            (Value::Decimal(Decimal::new(1050, 2)), ColumnType::Decimal),
            (Value::Float(0.25), ColumnType::Float),
            (Value::Boolean(true), ColumnType::Boolean),
            (p("2024-05-01", ColumnType::Date), ColumnType::Date),
            (
                p("2024-05-01 12:30", ColumnType::Datetime),
                ColumnType::Datetime,
            ),
            (p("£5", ColumnType::Currency), ColumnType::Currency),
            (p("3%", ColumnType::Percent), ColumnType::Percent),
            (
                p("https://example.com/a?b=c", ColumnType::Url),
                ColumnType::Url,
            ),
            (p("a@b.io", ColumnType::Email), ColumnType::Email),
            (Value::Text("x".into()), ColumnType::Text),
            (Value::Null, ColumnType::Integer),
        ];
        for (v, ty) in values {
            assert_eq!(Value::from_json(&v.to_json(), ty).as_ref(), Ok(&v), "{ty}");
            assert_eq!(
                Value::parse(&v.to_string(), ty).as_ref(),
                Ok(&v),
                "display of {ty}"
            );
        }
    }

    #[test]
    fn conversions_report_what_does_not_fit() {
        assert_eq!(
            Value::Integer(3).convert(ColumnType::Decimal),
            Ok(Value::Decimal(Decimal::from(3)))
        );
        assert_eq!(
            Value::Text("12".into()).convert(ColumnType::Integer),
            Ok(Value::Integer(12))
        );
        let e = Value::Text("twelve".into())
            .convert(ColumnType::Integer)
            .unwrap_err();
        assert_eq!(e.to_string(), "`twelve` is not a valid integer");
    }

    #[test]
    fn sort_puts_nulls_last_and_compares_numbers_by_value() {
        let mut v = vec![
            Value::Null,
            Value::Integer(10),
            Value::Integer(9),
            Value::Null,
            Value::Integer(-1),
        ];
        v.sort_by(Value::sort_cmp);
        assert_eq!(
            v,
            [
                Value::Integer(-1),
                Value::Integer(9),
                Value::Integer(10),
                Value::Null,
                Value::Null
            ]
        );
    }

    /// The zone suffix was stripped by recursion, one level per `Z`: a cell of a few thousand
    /// of them (in an upload, a paste or a chat message) overflowed the stack and aborted the
    /// process.
    #[test]
    fn a_datetime_takes_one_zone_suffix_and_a_run_of_them_is_refused_in_bounded_stack() {
        let dt = p("2024-01-31 10:00:00 UTC", ColumnType::Datetime);
        assert_eq!(dt.to_string(), "2024-01-31T10:00:00");
        assert_eq!(
            p("2024-01-31 10:00Z", ColumnType::Datetime).to_string(),
            "2024-01-31T10:00:00"
        );
        for suffix in ["Z", " UTC"] {
            let text = format!("2024-01-31 10:00{}", suffix.repeat(200_000));
            assert!(Value::parse(&text, ColumnType::Datetime).is_err());
        }
        let inferred =
            crate::table::infer_column_type([
                format!("2024-01-31 10:00{}", "Z".repeat(200_000)).as_str()
            ]);
        assert_eq!(inferred, ColumnType::Text);
    }
}
