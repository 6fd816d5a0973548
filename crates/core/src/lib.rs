//! SheetGPT domain: tables, extraction, versions, templates and export writers. Pure logic:
//! no async, no database, no HTTP.

pub mod exact;
pub mod export;
pub mod extract;
pub mod formula;
pub mod import;
pub mod locale;
pub mod offline;
pub mod paste;
pub mod query;
pub mod table;
pub mod target;
pub mod template;
pub mod version;

pub use table::{Column, ColumnType, Rules, Table, Value};
