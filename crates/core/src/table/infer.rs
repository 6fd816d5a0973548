//! Type inference: the most specific type that every non-empty value of a column parses as.

use super::value::{Conventions, DateOrder, DateReading, DecidedBy, DecimalMark, Reading, Value};
use super::{Column, ColumnType};

/// Markers people write for "no value".
pub fn is_null_token(t: &str) -> bool {
    const TOKENS: [&str; 12] = [
        "n/a", "na", "-", "--", "—", "–", "null", "none", "nil", "nan", "#n/a", "?",
    ];
    let t = t.trim();
    // Compared without lower-casing a copy: this runs for every cell of every import.
    t.is_empty() || (t.len() <= 4 && TOKENS.iter().any(|k| t.eq_ignore_ascii_case(k)))
}

/// Whether `t` is written as an identifier rather than a quantity, so that no numeric type
/// may read it (its digits would change): a leading zero (`08123`, `007`, `-012`; not `0`
/// or `0.5`), a phone number (`+44 20 7946 0958`, `+1-555-123-4567`, `(555) 123-4567`), or a
/// digit string of more than 15 significant digits (card numbers, ids above 2^53, which a
/// spreadsheet or a JavaScript client would round).
pub fn is_identifier(t: &str) -> bool {
    let t = t.trim();
    let unsigned = t.strip_prefix(['-', '+', '\u{2212}']).unwrap_or(t);
    let b = unsigned.as_bytes();
    if b.len() >= 2 && b[0] == b'0' && b[1].is_ascii_digit() {
        return true;
    }
    if t.starts_with('+')
        && unsigned.starts_with(|c: char| c.is_ascii_digit())
        && unsigned.contains([' ', '-', '(', '\u{a0}'])
    {
        return true;
    }
    if t.starts_with('(') && t.bytes().filter(u8::is_ascii_digit).count() >= 7 {
        return true;
    }
    b.len() > 15
        && b.iter().all(u8::is_ascii_digit)
        && b.iter().skip_while(|d| **d == b'0').count() > 15
}

/// Candidates from most to least specific. Integer before Decimal before Float; Boolean only
/// from words (a column of 0/1 stays integer); text when nothing else fits.
const ORDER: [ColumnType; 10] = [
    ColumnType::Integer,
    ColumnType::Decimal,
    ColumnType::Float,
    ColumnType::Percent,
    ColumnType::Currency,
    ColumnType::Date,
    ColumnType::Datetime,
    ColumnType::Boolean,
    ColumnType::Url,
    ColumnType::Email,
];

/// Incremental inference over a stream of values (a million-row upload is inferred in one
/// pass without keeping its cells).
///
/// Numbers are tried with both decimal marks: a point (`1,234.5`) and a comma (`1.234,5`,
/// `1 234,5`). A column takes one mark for all its values: the point when every value reads
/// with it, else the comma when every value reads with that; a column whose values need both
/// (`1.234.567` and `1.5`) is not numeric.
///
/// Dates with slashes are tried day first and month first. A column takes one order for all
/// its values: the only one that reads them all (`14/02/2024` settles day first), else, when
/// both do, the preferred one (the user's locale; month first unless told), reported as
/// chosen by the locale. A column whose values need both orders is not a date column.
#[derive(Clone, Debug)]
pub struct Inference {
    /// Every type every value so far parses as, numbers with a decimal point.
    candidates: Vec<ColumnType>,
    /// The numeric types every value so far parses as with a decimal comma.
    comma: Vec<ColumnType>,
    /// The grouping separator first seen, for each mark.
    grouping: [Option<char>; 2],
    /// Whether a number with the mark itself was seen (`1.5`, `1,5`), for each mark.
    marked: [bool; 2],
    /// Date and datetime: which orders read every slashed value.
    dates: [Orders; 2],
    prefer: DateOrder,
    seen: usize,
}

#[derive(Clone, Copy, Debug)]
struct Orders {
    /// A value with slashes was seen (only those have an order).
    slashed: bool,
    day_first: bool,
    month_first: bool,
    /// A value read differently in the two orders.
    ambiguous: bool,
}

impl Default for Orders {
    fn default() -> Self {
        Self {
            slashed: false,
            day_first: true,
            month_first: true,
            ambiguous: false,
        }
    }
}

impl Orders {
    /// The order decided: `Err` when no order reads every value; `Ok(None)` when no value
    /// had one.
    fn decided(self, prefer: DateOrder) -> Result<Option<DateReading>, ()> {
        let reading = |order, decided_by| Ok(Some(DateReading { order, decided_by }));
        if !self.slashed {
            return Ok(None);
        }
        match (self.day_first, self.month_first) {
            (true, true) => reading(prefer, DecidedBy::Locale),
            (true, false) => reading(DateOrder::DayFirst, DecidedBy::Values),
            (false, true) => reading(DateOrder::MonthFirst, DecidedBy::Values),
            (false, false) => Err(()),
        }
    }
}

impl Default for Inference {
    fn default() -> Self {
        Self::preferring(DateOrder::MonthFirst)
    }
}

/// Whether a value could read differently with a decimal comma than with a point: a mark,
/// a grouping, or what only a point reads (`1_000`, the exponent of `1e5`).
fn has_separator(v: &str) -> bool {
    v.bytes()
        .any(|b| matches!(b, b',' | b'.' | b' ' | b'\'' | b'_' | b'e' | b'E') || b >= 0x80)
}

/// The numeric types certain to read a value that `ty` reads, with the same mark: an
/// integer is a decimal and a float, a decimal a float and a percent (`Value::parse` of
/// each goes through the same digits), so those are not parsed again.
fn implied_by(ty: ColumnType) -> u32 {
    let bit = |t: ColumnType| 1u32 << t as u32;
    match ty {
        ColumnType::Integer => {
            bit(ColumnType::Decimal) | bit(ColumnType::Float) | bit(ColumnType::Percent)
        }
        ColumnType::Decimal => bit(ColumnType::Float) | bit(ColumnType::Percent),
        _ => 0,
    }
}

/// What inference decided for a column: its type and how its text reads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Typed {
    pub ty: ColumnType,
    /// Numbers: the decimal mark and grouping.
    pub reading: Option<Reading>,
    /// Dates and datetimes: the order of day and month.
    pub dates: Option<DateReading>,
}

impl Typed {
    pub fn conventions(&self) -> Conventions {
        Conventions {
            decimal: self.reading.map(|r| r.decimal).unwrap_or_default(),
            dates: self.dates.map(|d| d.order),
        }
    }

    /// The column `id` named `name`, of this type, with its readings.
    pub fn column(&self, id: impl Into<String>, name: impl Into<String>) -> Column {
        let mut column = Column::new(id, name, self.ty).with_reading(self.reading);
        column.dates = self.dates;
        column
    }
}

impl Inference {
    /// An inference that reads dates that read both ways (`03/04/2024`) in `order`.
    pub fn preferring(order: DateOrder) -> Self {
        Self {
            candidates: ORDER.to_vec(),
            comma: ORDER.iter().copied().filter(|t| t.is_numeric()).collect(),
            grouping: [None, None],
            marked: [false, false],
            dates: [Orders::default(); 2],
            prefer: order,
            seen: 0,
        }
    }

    pub fn push(&mut self, value: &str) {
        if (self.candidates.is_empty() && self.comma.is_empty()) || is_null_token(value) {
            return;
        }
        self.seen += 1;
        if is_identifier(value) {
            self.candidates.retain(|ty| !ty.is_numeric());
            self.comma.clear();
        }
        let slashed = value.contains('/');
        let dates = &mut self.dates;
        // Which types were tried with a decimal point, and which read: a value without
        // separators reads the same with a comma, so those are not tried twice.
        let (mut tried, mut read) = (0u32, 0u32);
        self.candidates.retain(|ty| match ty {
            ColumnType::Date | ColumnType::Datetime if slashed => {
                let track = &mut dates[usize::from(*ty == ColumnType::Datetime)];
                let read = |order| {
                    let how = Conventions {
                        decimal: DecimalMark::Point,
                        dates: Some(order),
                    };
                    Value::parse_with(value, *ty, how).ok()
                };
                let (day, month) = (read(DateOrder::DayFirst), read(DateOrder::MonthFirst));
                if day.is_none() && month.is_none() {
                    return false;
                }
                track.slashed = true;
                track.day_first &= day.is_some();
                track.month_first &= month.is_some();
                track.ambiguous |= day.is_some() && month.is_some() && day != month;
                track.day_first || track.month_first
            }
            _ => {
                let bit = 1 << *ty as u32;
                let ok = read & bit != 0 || Value::parse(value, *ty).is_ok();
                tried |= bit;
                if ok {
                    read |= bit | implied_by(*ty);
                }
                ok
            }
        });
        if !self.comma.is_empty() {
            let plain = !has_separator(value);
            let mut known = 0u32;
            self.comma.retain(|ty| {
                let bit = 1 << *ty as u32;
                let ok = if plain && tried & bit != 0 {
                    read & bit != 0
                } else {
                    known & bit != 0 || Value::parse_as(value, *ty, DecimalMark::Comma).is_ok()
                };
                if ok {
                    known |= implied_by(*ty);
                }
                ok
            });
        }
        let numbers = [
            self.candidates.first().is_some_and(|t| t.is_numeric()),
            !self.comma.is_empty(),
        ];
        for (i, mark) in [DecimalMark::Point, DecimalMark::Comma]
            .into_iter()
            .enumerate()
        {
            if numbers[i] && self.grouping[i].is_none() {
                self.grouping[i] = Reading::grouping_in(mark, value.trim());
            }
            self.marked[i] |= numbers[i] && value.contains(mark.as_char());
        }
    }

    pub fn finish(&self) -> ColumnType {
        self.finish_typed().ty
    }

    /// The column's type and, for a numeric type, how its numbers are written.
    pub fn finish_reading(&self) -> (ColumnType, Option<Reading>) {
        let typed = self.finish_typed();
        (typed.ty, typed.reading)
    }

    /// The column's type and how its text reads.
    pub fn finish_typed(&self) -> Typed {
        let plain = |ty| Typed {
            ty,
            reading: None,
            dates: None,
        };
        if self.seen == 0 {
            return plain(ColumnType::Text);
        }
        // Reported when it mattered: a value had the mark or grouped its digits.
        let reading = |i: usize, decimal| {
            (self.marked[i] || self.grouping[i].is_some()).then_some(Reading {
                decimal,
                grouping: self.grouping[i],
            })
        };
        if let Some(ty) = self.candidates.first().copied().filter(|t| t.is_numeric()) {
            return Typed {
                reading: reading(0, DecimalMark::Point),
                ..plain(ty)
            };
        }
        if let Some(ty) = self.comma.first().copied() {
            return Typed {
                reading: reading(1, DecimalMark::Comma),
                ..plain(ty)
            };
        }
        for ty in &self.candidates {
            match ty {
                ColumnType::Date | ColumnType::Datetime => {
                    let track = self.dates[usize::from(*ty == ColumnType::Datetime)];
                    if let Ok(dates) = track.decided(self.prefer) {
                        return Typed {
                            dates,
                            ..plain(*ty)
                        };
                    }
                }
                other => return plain(*other),
            }
        }
        plain(ColumnType::Text)
    }
}

/// The type of a column, from every one of its values (one that does not fit may come last).
pub fn infer_column_type<'a>(values: impl IntoIterator<Item = &'a str>) -> ColumnType {
    infer_column(values).0
}

/// `infer_column_type` with the reading of a numeric column's numbers.
pub fn infer_column<'a>(
    values: impl IntoIterator<Item = &'a str>,
) -> (ColumnType, Option<Reading>) {
    let typed = infer_typed(values, DateOrder::MonthFirst);
    (typed.ty, typed.reading)
}

/// The type of a column and how its text reads, dates that read both ways in `prefer`, from
/// every value: one value in the last row can make a column text or choose its decimal mark.
/// Linear in the values, constant memory; it stops early only once nothing but text fits.
pub fn infer_typed<'a>(values: impl IntoIterator<Item = &'a str>, prefer: DateOrder) -> Typed {
    let mut inference = Inference::preferring(prefer);
    for v in values {
        inference.push(v);
        if inference.candidates.is_empty() && inference.comma.is_empty() {
            break;
        }
    }
    inference.finish_typed()
}

/// The decimal mark that reads every value of `values` that is a number of type `ty` with
/// either mark (for a type change of a text column): the point when it reads them all, else
/// the comma; `None` when they need both. Values that are numbers with neither are left for
/// the conversion to report.
pub fn number_mark<'a>(
    values: impl IntoIterator<Item = &'a str>,
    ty: ColumnType,
) -> Option<Reading> {
    let mut guess = MarkGuess::new(ty);
    for v in values {
        guess.push(v);
    }
    guess.finish()
}

/// [`number_mark`] one value at a time, for a column read page by page: the mark is decided
/// once from every value, never page by page.
#[derive(Clone, Debug)]
pub struct MarkGuess {
    ty: ColumnType,
    point: bool,
    comma: bool,
    grouping: [Option<char>; 2],
}

impl MarkGuess {
    pub fn new(ty: ColumnType) -> Self {
        Self {
            ty,
            point: true,
            comma: true,
            grouping: [None, None],
        }
    }

    pub fn push(&mut self, v: &str) {
        if is_null_token(v) || !has_separator(v) {
            return;
        }
        let p = Value::parse(v, self.ty).is_ok();
        let c = Value::parse_as(v, self.ty, DecimalMark::Comma).is_ok();
        if p || c {
            self.point &= p;
            self.comma &= c;
        }
        if p && self.grouping[0].is_none() {
            self.grouping[0] = Reading::grouping_in(DecimalMark::Point, v.trim());
        }
        if c && self.grouping[1].is_none() {
            self.grouping[1] = Reading::grouping_in(DecimalMark::Comma, v.trim());
        }
    }

    pub fn finish(&self) -> Option<Reading> {
        if self.point {
            Some(Reading {
                decimal: DecimalMark::Point,
                grouping: self.grouping[0],
            })
        } else if self.comma {
            Some(Reading {
                decimal: DecimalMark::Comma,
                grouping: self.grouping[1],
            })
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_specific_type_that_fits_every_value_wins() {
        assert_eq!(infer_column_type(["1", "2", ""]), ColumnType::Integer);
        assert_eq!(infer_column_type(["1", "2.5"]), ColumnType::Decimal);
        assert_eq!(infer_column_type(["1e5", "2"]), ColumnType::Float);
        assert_eq!(infer_column_type(["$1,234.50", "$3"]), ColumnType::Currency);
        assert_eq!(infer_column_type(["12%", "N/A"]), ColumnType::Percent);
        assert_eq!(
            infer_column_type(["2024-01-01", "Jan 5, 2024"]),
            ColumnType::Date
        );
        assert_eq!(
            infer_column_type(["2024-01-01 10:00", "2024-01-02T11:00:00Z"]),
            ColumnType::Datetime
        );
        assert_eq!(infer_column_type(["yes", "No"]), ColumnType::Boolean);
        assert_eq!(
            infer_column_type(["https://a.io", "http://b.io/x"]),
            ColumnType::Url
        );
        assert_eq!(infer_column_type(["a@b.io"]), ColumnType::Email);
        assert_eq!(infer_column_type(["1", "one"]), ColumnType::Text);
        assert_eq!(infer_column_type(["", "N/A"]), ColumnType::Text);
    }

    #[test]
    fn identifiers_stay_text_and_one_leading_zero_keeps_the_whole_column_text() {
        for column in [
            &["08123", "75001", "10115"][..],
            &["007", "12"],
            &["1", "2", "0012.5"],
            &["+44 20 7946 0958", "+1 234 567 890"],
            &["+1-555-123-4567"],
            &["(555) 123-4567"],
            &["4111111111111111", "5500000000000004"],
            &["12345678901234567890"],
            &["9007199254740993", "1"],
        ] {
            assert_eq!(
                infer_column_type(column.iter().copied()),
                ColumnType::Text,
                "{column:?}"
            );
            let mut inference = Inference::default();
            for v in column {
                inference.push(v);
            }
            assert_eq!(inference.finish(), ColumnType::Text, "{column:?}");
        }
        assert_eq!(infer_column_type(["0", "10", "7"]), ColumnType::Integer);
        assert_eq!(infer_column_type(["0.5", "-0.25"]), ColumnType::Decimal);
        assert_eq!(
            infer_column_type(["123456789012345", "1"]),
            ColumnType::Integer,
            "15 digits are held exactly"
        );
        assert_eq!(
            infer_column_type(["-1,234", "+12"]),
            ColumnType::Integer,
            "a sign is not a phone number"
        );
    }

    #[test]
    fn european_numbers_take_one_decimal_mark_for_the_whole_column() {
        let comma = |grouping| {
            Some(Reading {
                decimal: DecimalMark::Comma,
                grouping,
            })
        };
        assert_eq!(
            infer_column(["59.359.536", "1.234", "12"]),
            (ColumnType::Integer, comma(Some('.')))
        );
        assert_eq!(
            infer_column(["3.998.000.000,00 €", "12,50 €"]),
            (ColumnType::Currency, comma(Some('.')))
        );
        assert_eq!(
            infer_column(["21,2 %", "3 %"]),
            (ColumnType::Percent, comma(None))
        );
        for grouping in [' ', '\u{a0}', '\u{202f}'] {
            let big = format!("1{grouping}234,5");
            assert_eq!(
                infer_column([big.as_str(), "7,25"]),
                (ColumnType::Decimal, comma(Some(grouping))),
                "{grouping:?}"
            );
        }
        assert_eq!(
            infer_column(["1'234.50", "12.5"]),
            (
                ColumnType::Decimal,
                Some(Reading {
                    decimal: DecimalMark::Point,
                    grouping: Some('\'')
                })
            )
        );
        // `1.234.567` needs a decimal comma and `1.5` a decimal point: never both.
        assert_eq!(infer_column(["1.234.567", "1.5"]), (ColumnType::Text, None));
        assert_eq!(infer_column(["1,5", "1,234.5"]), (ColumnType::Text, None));
        // Both read every value: the point, as written in English (reported with the column).
        assert_eq!(
            infer_column(["1.234", "5.678"]),
            (
                ColumnType::Decimal,
                Some(Reading {
                    decimal: DecimalMark::Point,
                    grouping: None
                })
            )
        );
        let values = ["59.359.536", "1.234,5"];
        let (ty, reading) = infer_column(values);
        assert_eq!(ty, ColumnType::Decimal);
        let mark = reading.map(|r| r.decimal).unwrap_or_default();
        assert_eq!(
            Value::parse_as(values[0], ty, mark).map(|v| v.to_string()),
            Ok("59359536".to_owned())
        );
        assert_eq!(
            Value::parse_as(values[1], ty, mark).map(|v| v.to_string()),
            Ok("1234.5".to_owned())
        );
    }

    #[test]
    fn what_only_a_decimal_point_reads_counts_against_a_decimal_comma() {
        // An exponent and an underscore grouping read only with a point: with a value that
        // needs a comma, the column needs both marks and is text (before, `1e5` was taken
        // as read the same with a comma, and then could not be converted).
        for values in [["1e5", "1.234,5"], ["1_000", "1.234,5"], ["0e0", "0,0"]] {
            assert_eq!(infer_column(values), (ColumnType::Text, None), "{values:?}");
        }
        assert_eq!(infer_column(["1e5", "2.5"]).0, ColumnType::Float);
        assert_eq!(
            number_mark(["1e5", "1,5"], ColumnType::Float),
            None,
            "a type change finds no one mark for them either"
        );
    }

    #[test]
    fn the_mark_for_a_type_change_comes_from_every_value_that_is_a_number() {
        assert_eq!(
            number_mark(["1,5", "n/a", "x", "2"], ColumnType::Decimal).map(|r| r.decimal),
            Some(DecimalMark::Comma)
        );
        assert_eq!(
            number_mark(["1.5", "2"], ColumnType::Decimal).map(|r| r.decimal),
            Some(DecimalMark::Point)
        );
        assert_eq!(
            number_mark(["1,5", "1.234.567,5", "1.5"], ColumnType::Decimal),
            None
        );
    }

    #[test]
    fn dates_take_one_order_for_the_whole_column() {
        let typed = infer_typed(["14/02/2024", "03/04/2024"], DateOrder::MonthFirst);
        assert_eq!(typed.ty, ColumnType::Date);
        assert_eq!(
            typed.dates,
            Some(DateReading {
                order: DateOrder::DayFirst,
                decided_by: DecidedBy::Values
            })
        );
        let how = typed.conventions();
        assert_eq!(
            Value::parse_with("03/04/2024", typed.ty, how).map(|v| v.to_string()),
            Ok("2024-04-03".to_owned()),
            "3 April, as 14/02 settles"
        );
        let us = infer_typed(["02/14/2024", "03/04/2024"], DateOrder::DayFirst);
        assert_eq!(
            us.dates.map(|d| (d.order, d.decided_by)),
            Some((DateOrder::MonthFirst, DecidedBy::Values))
        );
        for prefer in [DateOrder::DayFirst, DateOrder::MonthFirst] {
            let both = infer_typed(["03/04/2024", "2024-05-06"], prefer);
            assert_eq!(both.ty, ColumnType::Date);
            assert_eq!(
                both.dates.map(|d| (d.order, d.decided_by)),
                Some((prefer, DecidedBy::Locale))
            );
        }
        assert_eq!(
            infer_typed(["14/02/2024", "02/14/2024"], DateOrder::DayFirst).ty,
            ColumnType::Text,
            "no one order reads both"
        );
        let dt = infer_typed(
            ["31/01/2024 10:00", "01/02/2024 11:30:15"],
            DateOrder::MonthFirst,
        );
        assert_eq!(dt.ty, ColumnType::Datetime);
        assert_eq!(
            Value::parse_with("01/02/2024 11:30:15", dt.ty, dt.conventions())
                .map(|v| v.to_string()),
            Ok("2024-02-01T11:30:15".to_owned())
        );
    }

    #[test]
    fn a_value_past_the_ten_thousandth_still_decides_the_column() {
        for at in [9_999, 10_000, 10_001, 50_000] {
            let mut values = vec!["5"; at + 1];
            values[at] = "about 7";
            assert_eq!(
                infer_column_type(values.iter().copied()),
                ColumnType::Text,
                "{at}"
            );
            let mut values = vec!["1.234"; at + 1];
            values[at] = "2,5";
            assert_eq!(
                infer_column(values.iter().copied()),
                (
                    ColumnType::Decimal,
                    Some(Reading {
                        decimal: DecimalMark::Comma,
                        grouping: Some('.')
                    })
                ),
                "{at}"
            );
        }
    }

    #[test]
    fn zero_one_columns_stay_integers() {
        assert_eq!(infer_column_type(["0", "1", "1"]), ColumnType::Integer);
    }
}
