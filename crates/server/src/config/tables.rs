//! `[tables]`: the bounds of tables and of imports into them.

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TablesConfig {
    /// Largest upload (CSV, TSV) accepted, in bytes.
    pub max_upload_bytes: usize,
    /// Most columns a table may have.
    pub max_columns: usize,
    /// Most rows a table may have.
    pub max_rows: u64,
    /// Longest formula of an `add_column`, in characters.
    pub max_formula_chars: usize,
    /// Parentheses a formula may have open at once.
    pub max_formula_depth: usize,
    /// Most characters one cell may hold, on every way in (uploads, JSON rows, changes,
    /// chat). Excel's own limit: no real cell is longer.
    pub max_cell_chars: usize,
    /// Bytes the parts of an uploaded XLSX, XLSB or ODS file may inflate to, all together.
    pub max_spreadsheet_inflated_bytes: u64,
    /// Bytes of a workbook's shared strings, which are held in memory while it is read.
    pub max_shared_strings_bytes: u64,
    /// Cells of the grid an XLS or ODS workbook is read into (every sheet's bounding box).
    pub max_sheet_cells: u64,
    /// Bytes of sort keys a `sort` change holds in memory; past it, sorted runs are written
    /// to the data directory's `tmp` and merged from there.
    pub sort_memory_bytes: u64,
    /// Bytes of row orders kept for the deep pages of sorted and filtered views (8 bytes a
    /// row; least recently used first out). 0 keeps none: each such page sorts again.
    pub order_cache_bytes: u64,
    /// Uploads up to this many bytes are imported within the request (201 with the table);
    /// larger ones are imported by a job (202 with the job to follow). 0: every import is a job.
    pub import_sync_bytes: u64,
    /// A change that touches every row (`sort`, `filter_delete`, `change_type`, `trim`,
    /// `add_column` with a default or formula) or a revert, on a table of more rows than this,
    /// runs as a job (202 with the job to follow); such a change must then be one operation.
    /// 0: every such change is a job.
    pub max_sync_rows: u64,
}

impl Default for TablesConfig {
    fn default() -> Self {
        Self {
            max_upload_bytes: 256 * 1024 * 1024,
            max_columns: 1_000,
            max_rows: 5_000_000,
            max_formula_chars: sheetgpt_core::formula::Limits::default().max_chars,
            max_formula_depth: sheetgpt_core::formula::Limits::default().max_depth,
            max_cell_chars: sheetgpt_core::import::DEFAULT_MAX_CELL_CHARS,
            max_spreadsheet_inflated_bytes: 2 * 1024 * 1024 * 1024,
            max_shared_strings_bytes: 512 * 1024 * 1024,
            max_sheet_cells: 5_000_000,
            sort_memory_bytes: 64 * 1024 * 1024,
            order_cache_bytes: 128 * 1024 * 1024,
            import_sync_bytes: 8 * 1024 * 1024,
            max_sync_rows: 100_000,
        }
    }
}

impl TablesConfig {
    /// The bounds an import is held to.
    pub fn import_limits(&self) -> sheetgpt_core::import::Limits {
        sheetgpt_core::import::Limits {
            max_columns: self.max_columns,
            max_rows: self.max_rows,
            max_cell_chars: self.max_cell_chars,
            max_inflated_bytes: self.max_spreadsheet_inflated_bytes,
            max_shared_strings_bytes: self.max_shared_strings_bytes,
            max_sheet_cells: self.max_sheet_cells,
            dates: sheetgpt_core::table::DateOrder::MonthFirst,
        }
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_columns == 0 || self.max_rows == 0 {
            return Err(invalid(
                "tables.max_columns",
                "table limits must be at least 1",
            ));
        }
        if self.max_formula_chars == 0 || self.max_formula_depth == 0 {
            return Err(invalid(
                "tables.max_formula_chars",
                "max_formula_chars and max_formula_depth must be at least 1",
            ));
        }
        if self.max_upload_bytes < 1024 {
            return Err(invalid("tables.max_upload_bytes", "must be at least 1024"));
        }
        for (name, value) in [
            ("tables.max_cell_chars", self.max_cell_chars as u64),
            (
                "tables.max_spreadsheet_inflated_bytes",
                self.max_spreadsheet_inflated_bytes,
            ),
            (
                "tables.max_shared_strings_bytes",
                self.max_shared_strings_bytes,
            ),
            ("tables.max_sheet_cells", self.max_sheet_cells),
            ("tables.sort_memory_bytes", self.sort_memory_bytes),
        ] {
            if value == 0 {
                return Err(invalid(name, "must be at least 1"));
            }
        }
        Ok(())
    }
}
