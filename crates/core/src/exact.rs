//! Numbers kept as written, on the way in and on the way out.
//!
//! serde_json holds a JSON number as an `i64`, a `u64` or an `f64`: `12345678901234567890123`
//! or `0.1000000000000000055` would arrive rounded, silently. [`json_numbers_as_written`]
//! finds the number literals that none of the three holds exactly and turns each into a JSON
//! string of the same digits, so that the cell's value is read from what the client wrote
//! (a text or exact decimal column keeps every digit; an integer column refuses it with a
//! reason). `serde_json`'s `float_roundtrip` feature is on, so that a literal judged exact here
//! is also parsed to that same `f64` by serde_json.
//!
//! Spreadsheets hold numbers as `f64` and show 15 significant digits: [`spreadsheet_number`]
//! is the `f64` for a decimal only when it reads back as the same decimal, so writers can put
//! the others as text instead of rounding them.

use std::borrow::Cow;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

/// Significant digits a spreadsheet number keeps (Excel, LibreOffice and Google Sheets).
pub const SPREADSHEET_DIGITS: usize = 15;

/// `bytes` (JSON text) with every number literal that serde_json cannot hold exactly written
/// as a string of its digits. Borrowed when there is none (the common case). Linear, without
/// recursion; text that is not valid JSON is passed through for the parser to refuse.
pub fn json_numbers_as_written(bytes: &[u8]) -> Cow<'_, [u8]> {
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() {
                    match bytes[i] {
                        b'\\' => i += 2,
                        b'"' => break,
                        _ => i += 1,
                    }
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len()
                    && matches!(bytes[i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                {
                    i += 1;
                }
                let literal = std::str::from_utf8(&bytes[start..i]).unwrap_or_default();
                if !literal_is_exact(literal) && valid_literal(literal) {
                    let buf = out.get_or_insert_with(|| Vec::with_capacity(bytes.len() + 16));
                    buf.extend_from_slice(&bytes[copied..start]);
                    buf.push(b'"');
                    buf.extend_from_slice(literal.as_bytes());
                    buf.push(b'"');
                    copied = i;
                }
            }
            _ => i += 1,
        }
    }
    match out {
        None => Cow::Borrowed(bytes),
        Some(mut buf) => {
            buf.extend_from_slice(&bytes[copied.min(bytes.len())..]);
            Cow::Owned(buf)
        }
    }
}

/// `json_numbers_as_written` for text.
pub fn json_text_as_written(text: &str) -> Cow<'_, str> {
    match json_numbers_as_written(text.as_bytes()) {
        Cow::Borrowed(_) => Cow::Borrowed(text),
        // Only ASCII quotes were added around ASCII digits.
        Cow::Owned(bytes) => {
            Cow::Owned(String::from_utf8(bytes).unwrap_or_else(|_| text.to_owned()))
        }
    }
}

/// A JSON number literal by the grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
fn valid_literal(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    let int_start = i;
    let n = digits(&mut i);
    if n == 0 || (n > 1 && b[int_start] == b'0') {
        return false;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Whether serde_json holds the number `literal` exactly: as an `i64` or `u64`, or as an `f64`
/// whose shortest decimal form is the same number (`0.5`, `2.50`, `1e3`).
pub fn literal_is_exact(literal: &str) -> bool {
    if literal.parse::<i64>().is_ok() || literal.parse::<u64>().is_ok() {
        return true;
    }
    match literal.parse::<f64>() {
        Ok(f) if f.is_finite() => {
            let shortest = format!("{f:e}");
            match (decimal_key(literal), decimal_key(&shortest)) {
                (Some(a), Some(b)) => a == b,
                _ => false,
            }
        }
        _ => false,
    }
}

/// A decimal number as (negative, significant digits, exponent of the first digit): equal keys
/// are equal numbers, whatever the notation. Zero is `(false, "", 0)`.
fn decimal_key(s: &str) -> Option<(bool, String, i64)> {
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(at) => (&s[..at], s[at + 1..].parse::<i64>().ok()?),
        None => (s, 0),
    };
    let (neg, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let all: String = int.chars().chain(frac.chars()).collect();
    let leading = all.bytes().take_while(|b| *b == b'0').count();
    let digits = all[leading..].trim_end_matches('0');
    if digits.is_empty() {
        return Some((false, String::new(), 0));
    }
    let point = i64::try_from(int.len()).ok()? - i64::try_from(leading).ok()?;
    Some((neg, digits.to_owned(), exp.checked_add(point)?))
}

/// The `f64` a spreadsheet can hold for `value`, when it holds it exactly: at most
/// [`SPREADSHEET_DIGITS`] significant digits, and the `f64` reads back as the same decimal.
/// `None` means: write it as text, or it would be rounded.
pub fn spreadsheet_number(value: Decimal) -> Option<f64> {
    // Fast path, most cells: a mantissa under 10^15 and a power of ten up to 10^22 are both
    // exact in an f64, so their quotient is the f64 nearest the decimal, and 15 significant
    // digits always read back from it (f64 holds 15 decimal digits: DBL_DIG).
    const EXACT_BELOW: u128 = 1_000_000_000_000_000;
    const POWERS: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ];
    let mantissa = value.mantissa();
    if mantissa.unsigned_abs() < EXACT_BELOW
        && let Some(power) = usize::try_from(value.scale())
            .ok()
            .and_then(|s| POWERS.get(s))
    {
        return Some(mantissa as f64 / power);
    }
    spreadsheet_number_from_text(value)
}

/// [`spreadsheet_number`] through the decimal's text: any mantissa and scale.
fn spreadsheet_number_from_text(value: Decimal) -> Option<f64> {
    let text = value.normalize().to_string();
    let (_, digits, _) = decimal_key(&text)?;
    if digits.len() > SPREADSHEET_DIGITS {
        return None;
    }
    let f = value.to_f64()?;
    (decimal_key(&format!("{f:e}"))? == decimal_key(&text)?).then_some(f)
}

/// Whether `i` is held exactly by a spreadsheet number (15 significant digits).
pub fn spreadsheet_integer(i: i64) -> bool {
    i.unsigned_abs() <= 999_999_999_999_999
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn rewrite(s: &str) -> String {
        json_text_as_written(s).into_owned()
    }

    #[test]
    fn numbers_serde_json_holds_are_left_as_they_are() {
        for s in [
            r#"{"a": 1, "b": -2.5, "c": 12345678901234567890, "d": 1e3, "e": 0.1, "f": 2.50}"#,
            r#"[0, -0, 0.30000000000000004, 9007199254740993]"#,
            r#"{"x": "0.1000000000000000055", "y": true, "z": null}"#,
        ] {
            assert!(matches!(json_text_as_written(s), Cow::Borrowed(_)), "{s}");
        }
    }

    #[test]
    fn numbers_that_would_be_rounded_become_strings_of_their_digits() {
        assert_eq!(
            rewrite(r#"{"a": 0.1000000000000000055, "b": [123456789012345678901234, 7]}"#),
            r#"{"a": "0.1000000000000000055", "b": ["123456789012345678901234", 7]}"#
        );
        assert_eq!(rewrite("1e400"), "\"1e400\"");
        assert_eq!(
            rewrite("-18446744073709551616"),
            "\"-18446744073709551616\""
        );
        // Inside strings (escaped quotes too) nothing is touched.
        let s = r#"["a\"0.1000000000000000055", 0.1000000000000000055]"#;
        assert_eq!(
            rewrite(s),
            r#"["a\"0.1000000000000000055", "0.1000000000000000055"]"#
        );
        let rows: serde_json::Value =
            serde_json::from_str(&rewrite(r#"[[0.1000000000000000055]]"#)).unwrap_or_default();
        assert_eq!(rows[0][0], "0.1000000000000000055");
    }

    #[test]
    fn what_is_not_a_json_number_is_left_for_the_parser_to_refuse() {
        for s in ["[01.5]", "[1.]", "[-]", "[1e]", "[1.2.3]"] {
            assert_eq!(rewrite(s), s);
        }
        assert!(serde_json::from_str::<serde_json::Value>(&rewrite("[01.5]")).is_err());
    }

    proptest::proptest! {
        #[test]
        fn the_fast_path_gives_what_the_text_gives(
            mantissa in -999_999_999_999_999i64..=999_999_999_999_999,
            scale in 0u32..=22,
        ) {
            let value = Decimal::new(mantissa, scale);
            proptest::prop_assert_eq!(
                spreadsheet_number(value),
                spreadsheet_number_from_text(value),
                "{}", value
            );
        }
    }

    #[test]
    fn a_spreadsheet_number_is_given_only_for_decimals_it_holds_exactly() {
        let d = |s: &str| Decimal::from_str(s).unwrap_or_default();
        assert_eq!(spreadsheet_number(d("0.1")), Some(0.1));
        assert_eq!(spreadsheet_number(d("1234.50")), Some(1234.5));
        assert_eq!(spreadsheet_number(d("-3.25")), Some(-3.25));
        assert_eq!(spreadsheet_number(d("0.1000000000000000055")), None);
        assert_eq!(spreadsheet_number(d("1234567890123456.5")), None);
        assert_eq!(
            spreadsheet_number(d("123456789012345")),
            Some(123_456_789_012_345.0)
        );
        assert_eq!(spreadsheet_number(d("1234567890123456")), None);
        assert!(spreadsheet_integer(999_999_999_999_999));
        assert!(!spreadsheet_integer(1_000_000_000_000_000));
    }
}
