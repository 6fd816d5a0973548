//! Typed tables from text cells, without copying the cells first.
//!
//! This is `Table::from_text` for cells that borrow from the input: the readers hand over
//! slices of the text (or the few cells that had to be unescaped), so each cell's text is
//! allocated once, as the value it becomes. On a large table that halves the allocations.

use crate::table::{DateOrder, Table, Value, infer_typed, unique_names};

/// Builds a table from header names and `cells`, row after row, `width` cells a row. Gives the
/// same table as `Table::from_text` on the same cells: unique, non-empty names; each column's
/// type inferred from its cells (dates that read both ways in `dates`); a cell that does not parse as its column's type kept as text.
pub(super) fn build_table<S: AsRef<str>>(
    headers: &[String],
    cells: &[S],
    width: usize,
    dates: DateOrder,
) -> Table {
    if width == 0 {
        return Table::default();
    }
    let row_count = cells.len() / width;
    let cells = &cells[..row_count * width];
    let mut rows: Vec<Vec<Value>> = (0..row_count).map(|_| Vec::with_capacity(width)).collect();
    let mut columns = Vec::with_capacity(width);
    for (i, name) in unique_names(headers, width).into_iter().enumerate() {
        let column = || cells.iter().skip(i).step_by(width).map(AsRef::as_ref);
        let typed = infer_typed(column(), dates);
        let how = typed.conventions();
        for (row, cell) in rows.iter_mut().zip(column()) {
            row.push(
                Value::parse_with(cell, typed.ty, how)
                    .unwrap_or_else(|_| Value::Text(cell.to_owned())),
            );
        }
        columns.push(typed.column(format!("c{}", i + 1), name));
    }
    Table { columns, rows }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn building_from_borrowed_cells_gives_the_same_table_as_from_text(
            width in 1usize..5,
            headers in prop::collection::vec("[a-c ]{0,3}", 0..5),
            cells in prop::collection::vec(
                prop_oneof!["[0-9]{1,3}", "[0-9]\\.[0-9]", "yes|no|N/A|", "[a-z]{1,4}", "2024-0[1-9]-1[0-9]"],
                0..30,
            ),
        ) {
            let rows: Vec<Vec<String>> = cells.chunks_exact(width).map(<[String]>::to_vec).collect();
            let flat: Vec<&str> = rows.iter().flatten().map(String::as_str).collect();
            let mut headers = headers;
            headers.resize(width, String::new());
            prop_assert_eq!(build_table(&headers, &flat, width, DateOrder::MonthFirst), Table::from_text(&headers, &rows));
        }
    }
}
