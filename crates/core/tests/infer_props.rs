//! Inference decides a column's type and conventions (decimal mark, order of dates) from
//! every value: whatever the values, each one that is not a no-value marker must then read
//! with what was decided, so a conversion of the column never finds a value it cannot keep.

use proptest::prelude::*;
use sheetgpt_core::table::{DateOrder, infer_typed, is_null_token};
use sheetgpt_core::{ColumnType, Value};

/// Number-like text in every form inference weighs: either mark, groupings, exponents,
/// underscores, signs, percents, currencies, slashed dates, and some words.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,6}",
        "-?[0-9]{1,4}[.,][0-9]{1,3}",
        "[1-9]{1,3}([.,' _][0-9]{3}){1,2}([.,][0-9]{1,2})?",
        "[0-9]{1,2}[eE][+-]?[0-9]{1,2}",
        "[0-9]{1,3}([.,][0-9])? ?%",
        "[$€]?[0-9]{1,3}([.,][0-9]{2})? ?(€|EUR)?",
        "[0-9]{1,2}/[0-9]{1,2}/[0-9]{2,4}",
        "(yes|no|n/a|x|0[0-9])",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_value_reads_with_what_inference_decided(
        values in prop::collection::vec(value(), 1..6),
        day_first in any::<bool>(),
    ) {
        let prefer = if day_first { DateOrder::DayFirst } else { DateOrder::MonthFirst };
        let typed = infer_typed(values.iter().map(String::as_str), prefer);
        if typed.ty != ColumnType::Text {
            for v in values.iter().filter(|v| !is_null_token(v)) {
                prop_assert!(
                    Value::parse_with(v, typed.ty, typed.conventions()).is_ok(),
                    "{v:?} does not read as {:?} with {:?} (column {values:?})",
                    typed.ty,
                    typed.conventions()
                );
            }
        }
    }
}
