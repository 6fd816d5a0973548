//! Writing a version of a table to a file: rows are read from the database page by page (a
//! keyset over position) and handed to the blocking writer through a small bounded channel, so
//! memory does not grow with the table. The same path serves direct downloads and export jobs.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use chrono::Utc;
use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};
use sheetgpt_core::export::{self, ExportError, JsonLayout};
use sheetgpt_core::table::Value;
use sheetgpt_core::template::Resolved;
use sheetgpt_core::version::Schema;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::tables as store;

/// A file format for exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    Xlsx,
    Csv,
    Json,
}

impl FileFormat {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "xlsx" => Some(Self::Xlsx),
            "csv" => Some(Self::Csv),
            "json" => Some(Self::Json),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Xlsx => "xlsx",
            Self::Csv => "csv",
            Self::Json => "json",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Self::Csv => "text/csv; charset=utf-8",
            Self::Json => "application/json",
        }
    }
}

/// JSON layout of a JSON export.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JsonShape {
    /// `[{"column": value, …}, …]`
    #[default]
    Records,
    /// `{"columns": [...], "rows": [[...], …]}`
    Columns,
}

/// How to write the file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileOptions {
    pub format: FileFormat,
    /// CSV: start with a UTF-8 byte order mark (for Excel).
    #[serde(default)]
    pub bom: bool,
    /// JSON: records or columns.
    #[serde(default)]
    pub layout: JsonShape,
}

/// The version of a table to write.
pub struct Source {
    pub table_id: Uuid,
    pub table_name: String,
    pub version: i32,
    /// The version is the table's current one (its rows are read through the current index).
    pub current: bool,
    pub schema: Schema,
}

/// Why a file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Export(ExportError),
    #[error("cancelled")]
    Cancelled,
    #[error("the writer stopped: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl RenderError {
    /// Worth another attempt: the database or the disk may be back.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Db(_) | Self::Io(_) | Self::Join(_) => true,
            Self::Export(ExportError::Io(_)) => true,
            Self::Export(_) | Self::Cancelled => false,
        }
    }

    /// A sentence for the user (no paths, no SQL).
    pub fn public_message(&self) -> String {
        match self {
            Self::Export(ExportError::TooLargeForXlsx {
                max_rows,
                max_columns,
            }) => format!(
                "The table is larger than an Excel sheet can hold ({max_rows} rows, \
                 {max_columns} columns); export it as CSV."
            ),
            Self::Export(ExportError::Io(_)) | Self::Io(_) => {
                "The file could not be written (storage error).".to_owned()
            }
            Self::Export(_) => "The file could not be written.".to_owned(),
            Self::Db(_) => "The table could not be read (database error).".to_owned(),
            Self::Cancelled => "The export was cancelled.".to_owned(),
            Self::Join(_) => "The export stopped unexpectedly.".to_owned(),
        }
    }
}

/// Progress and cancellation shared between a running render and whoever watches it.
#[derive(Default)]
pub struct Control {
    /// Data rows written so far.
    pub rows: AtomicU64,
    /// Rows in all, when the work finds out only as it goes (an import's first pass); 0 if
    /// unknown.
    pub total: AtomicU64,
    pub cancelled: AtomicBool,
}

/// Writes `source` through `resolved` into a new temporary file in `tmp_dir`; returns the
/// file (deleted when dropped unless persisted) and the number of data rows.
pub async fn render(
    db: &DatabaseConnection,
    tmp_dir: &Path,
    source: Source,
    resolved: Resolved,
    options: &FileOptions,
    exports: &crate::config::ExportsConfig,
    control: Arc<Control>,
) -> Result<(tempfile::NamedTempFile, u64), RenderError> {
    let (page_rows, compression) = (exports.page_rows, exports.xlsx_compression);
    crate::secrets::ensure_data_dir(tmp_dir).map_err(std::io::Error::other)?;
    let tmp = tempfile::Builder::new()
        .prefix(".export-")
        .tempfile_in(tmp_dir)?;
    let out = tmp.reopen()?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<store::RawRow>>(2);
    let meta = export::XlsxMeta {
        title: source.table_name.clone(),
        source: format!("SheetGPT table {}", source.table_id),
        version: Some(source.version),
        exported_at: Utc::now(),
    };
    let key = source_key(&source);
    let schema = source.schema;
    let options_for_writer = options.clone();
    let counter = Arc::clone(&control);
    let writer = tokio::task::spawn_blocking(move || -> Result<u64, ExportError> {
        let rows = std::iter::from_fn(|| rx.blocking_recv())
            .flatten()
            .map(|raw| {
                let row = raw.into_row(&schema);
                let cells: Vec<Value> = schema.columns.iter().map(|c| row.get(c).clone()).collect();
                counter.rows.fetch_add(1, Ordering::Relaxed);
                resolved.map_row_owned(cells)
            });
        write(
            std::io::BufWriter::new(out),
            &resolved,
            rows,
            &meta,
            &options_for_writer,
            compression,
        )
    });

    let fed = feed(db, &key, page_rows, &control, &tx).await;
    drop(tx);
    let written = writer.await?;
    fed?;
    let rows = written.map_err(RenderError::Export)?;
    Ok((tmp, rows))
}

struct SourceKey {
    table_id: Uuid,
    version: i32,
    current: bool,
}

fn source_key(source: &Source) -> SourceKey {
    SourceKey {
        table_id: source.table_id,
        version: source.version,
        current: source.current,
    }
}

/// Reads the pages and sends them to the writer until the rows end, the writer stops (its
/// own result says why) or the render is cancelled.
async fn feed(
    db: &DatabaseConnection,
    key: &SourceKey,
    page_rows: u64,
    control: &Control,
    tx: &tokio::sync::mpsc::Sender<Vec<store::RawRow>>,
) -> Result<(), RenderError> {
    let mut after = None;
    loop {
        if control.cancelled.load(Ordering::Relaxed) {
            return Err(RenderError::Cancelled);
        }
        let page =
            store::rows_after(db, key.table_id, key.version, key.current, after, page_rows).await?;
        let full = page.len() as u64 == page_rows;
        after = page.last().map(|r| (r.position, r.id));
        if page.is_empty() || tx.send(page).await.is_err() || !full {
            return Ok(());
        }
    }
}

fn write<W: std::io::Write + Send>(
    out: W,
    resolved: &Resolved,
    rows: impl Iterator<Item = Vec<Value>>,
    meta: &export::XlsxMeta,
    options: &FileOptions,
    compression: u8,
) -> Result<u64, ExportError> {
    match options.format {
        FileFormat::Xlsx => export::write_xlsx(
            out,
            &resolved.columns,
            rows,
            meta,
            &export::XlsxOptions {
                compression_level: compression,
                ..export::XlsxOptions::for_template(resolved)
            },
        ),
        FileFormat::Csv => export::write_csv(
            out,
            &resolved.columns,
            rows,
            &export::CsvOptions {
                bom: options.bom,
                ..Default::default()
            },
        ),
        FileFormat::Json => export::write_json(
            out,
            &resolved.columns,
            rows,
            &export::JsonOptions {
                layout: match options.layout {
                    JsonShape::Records => JsonLayout::Records,
                    JsonShape::Columns => JsonLayout::Columns,
                },
            },
        ),
    }
}

/// A file name for a version of a table: its name with only safe characters, the version and
/// the extension.
pub fn file_name(table_name: &str, version: i32, format: FileFormat) -> String {
    let stem: String = table_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let stem = stem.trim_matches('_');
    let stem = if stem.is_empty() { "table" } else { stem };
    format!("{stem}-v{version}.{}", format.extension())
}
