//! Type inference: the most specific type that every non-empty value of a column parses as.

use super::ColumnType;
use super::value::Value;

/// Markers people write for "no value".
pub fn is_null_token(t: &str) -> bool {
    const TOKENS: [&str; 12] = [
        "n/a", "na", "-", "--", "—", "–", "null", "none", "nil", "nan", "#n/a", "?",
    ];
    let t = t.trim();
    // Compared without lower-casing a copy: this runs for every cell of every import.
    t.is_empty() || (t.len() <= 4 && TOKENS.iter().any(|k| t.eq_ignore_ascii_case(k)))
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
#[derive(Clone, Debug)]
pub struct Inference {
    candidates: Vec<ColumnType>,
    seen: usize,
}

impl Default for Inference {
    fn default() -> Self {
        Self {
            candidates: ORDER.to_vec(),
            seen: 0,
        }
    }
}

impl Inference {
    pub fn push(&mut self, value: &str) {
        if self.candidates.is_empty() || is_null_token(value) {
            return;
        }
        self.seen += 1;
        self.candidates
            .retain(|ty| Value::parse(value, *ty).is_ok());
    }

    pub fn finish(&self) -> ColumnType {
        if self.seen == 0 {
            return ColumnType::Text;
        }
        self.candidates.first().copied().unwrap_or(ColumnType::Text)
    }
}

/// Looks at up to 10,000 values (enough to decide, cheap on million-row columns).
pub fn infer_column_type<'a>(values: impl IntoIterator<Item = &'a str>) -> ColumnType {
    let mut candidates: Vec<ColumnType> = ORDER.to_vec();
    let mut seen = 0usize;
    for v in values.into_iter().take(10_000) {
        if is_null_token(v) {
            continue;
        }
        seen += 1;
        candidates.retain(|ty| Value::parse(v, *ty).is_ok());
        if candidates.is_empty() {
            return ColumnType::Text;
        }
    }
    if seen == 0 {
        return ColumnType::Text;
    }
    candidates.first().copied().unwrap_or(ColumnType::Text)
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
    fn zero_one_columns_stay_integers() {
        assert_eq!(infer_column_type(["0", "1", "1"]), ColumnType::Integer);
    }
}
