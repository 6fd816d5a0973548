//! Tables out of text: a language model's reply, a pasted snippet or an uploaded file.
//!
//! [`extract_tables`] finds every table in free text — structured-output JSON (bare, at the
//! start of a line, or in a ```` ```json ```` fence), Markdown pipe tables and CSV/TSV blocks —
//! and returns them typed, in the order they appear, each with the byte range it was read
//! from. It never fails: text without a table gives an empty list.
//!
//! [`parse_delimited`] and [`parse_json_table`] read a whole pasted snippet (or a JSON file)
//! as one table and say clearly why when they cannot; uploaded files are read by
//! [`crate::import`], whose delimiter sniffer `parse_delimited` shares. The writers [`to_csv`], [`to_markdown`] and [`to_json`]
//! produce text that these readers read back to the same table.
//!
//! How text is walked: it is split into lines once. Fenced code blocks, JSON values that start
//! a line and Markdown tables (a row followed by an alignment row) are recognised first,
//! because each has an unmistakable start. The lines left between them are then searched for
//! delimited tables, which need heuristics to be told apart from prose (see `delimited`).

mod build;
mod delimited;
mod json;
mod markdown;

use std::ops::Range;

use serde::Serialize;

use crate::table::{DateOrder, Table};

pub use delimited::{parse_delimited, to_csv};
pub use json::{parse_json_table, to_json};
pub use markdown::to_markdown;

/// The widest table read. Wider input is an error for uploads and is skipped in replies: no
/// spreadsheet a person works with has that many columns, and each column costs memory per row.
pub const MAX_COLUMNS: usize = 10_000;

/// A table found in text.
#[derive(Clone, Debug, PartialEq)]
pub struct Extracted {
    pub table: Table,
    pub format: Format,
    /// Byte range of the input the table was read from. For a fenced block that held just the
    /// table (```` ```json ````, ```` ```csv ````) it covers the whole block, fences included;
    /// otherwise the table's own lines, without the final line break.
    pub span: Range<usize>,
}

/// How a table was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// A JSON value on its own (the whole reply, or starting a line).
    Json,
    /// A JSON value in a fenced code block.
    FencedJson,
    Markdown,
    /// Delimited by commas, semicolons or pipes.
    Csv,
    /// Delimited by tabs.
    Tsv,
}

/// Why an upload could not be read as a table.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    #[error("the file is empty")]
    Empty,
    #[error("the file has a header row but no data rows")]
    NoRows,
    #[error("the file has {found} columns; at most {max} are supported", max = MAX_COLUMNS)]
    TooManyColumns { found: usize },
    #[error("`{}` cannot separate fields (use a comma, tab, semicolon or pipe)", char::from(*.byte))]
    Delimiter { byte: u8 },
    #[error("the file is not valid CSV (line {line}): {message}")]
    Csv { line: u64, message: String },
    #[error("the file is not valid JSON: {message}")]
    Json { message: String },
    #[error(
        "the JSON holds no table: expected {{\"columns\": [...], \"rows\": [...]}} or an array \
         of objects"
    )]
    NotATable,
    #[error("the JSON holds {count} tables; upload one table at a time")]
    SeveralTables { count: usize },
}

/// Finds every table in `text`, in order of appearance. A column of dates that all read both
/// ways (`03/04/2024`) is read month first: [`extract_tables_reading`] takes the user's order.
pub fn extract_tables(text: &str) -> Vec<Extracted> {
    extract_tables_reading(text, DateOrder::MonthFirst)
}

/// [`extract_tables`], reading a column of dates that all read both ways in `dates` (the
/// user's locale); a column with a value that reads one way only is read that way.
pub fn extract_tables_reading(text: &str, dates: DateOrder) -> Vec<Extracted> {
    let lines = Line::split(text);
    let mut walk = Walk {
        text,
        dates,
        json_budget: text.len().saturating_mul(4).saturating_add(1 << 20),
        out: Vec::new(),
    };
    walk.scan(&lines, Place::Top);
    // Tables are pushed region by region, already in order; the sort is a cheap guarantee.
    walk.out.sort_by_key(|e| e.span.start);
    walk.out
}

/// One line of the input: `start..end` is its text without the line break, `next` where the
/// following line starts.
#[derive(Clone, Copy, Debug)]
struct Line {
    start: usize,
    end: usize,
    next: usize,
}

impl Line {
    fn split(text: &str) -> Vec<Line> {
        // A byte order mark is not text; skipping it keeps it out of the first header cell.
        let mut start = if text.starts_with('\u{feff}') { 3 } else { 0 };
        let mut lines = Vec::with_capacity(text.len() / 64 + 1);
        while start < text.len() {
            let (end, next) = match text[start..].find('\n') {
                Some(i) => (start + i, start + i + 1),
                None => (text.len(), text.len()),
            };
            let end = if text[start..end].ends_with('\r') {
                end - 1
            } else {
                end
            };
            lines.push(Line { start, end, next });
            start = next;
        }
        lines
    }

    fn text(self, text: &str) -> &str {
        &text[self.start..self.end]
    }
}

/// Whether lines are read at the top level (where fences open) or inside a fence.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Top,
    InFence,
}

/// The state of one extraction.
struct Walk<'t> {
    text: &'t str,
    /// How dates that read both ways are read.
    dates: DateOrder,
    /// Bytes that attempts to read JSON at the start of a line may still read. Most such
    /// attempts fail within a line, but text built for it (thousands of lines that each open
    /// a bracket) could make every attempt read far; past this budget, which ordinary text
    /// never reaches, lines are no longer tried as JSON and extraction stays linear.
    json_budget: usize,
    out: Vec<Extracted>,
}

impl Walk<'_> {
    fn scan(&mut self, lines: &[Line], place: Place) {
        let text = self.text;
        let json_format = match place {
            Place::Top => Format::Json,
            Place::InFence => Format::FencedJson,
        };
        let Some(region_end) = lines.last().map(|l| l.end) else {
            return;
        };
        let mut i = 0;
        let mut plain_from = 0;
        while i < lines.len() {
            let line = lines[i];
            let s = line.text(text);
            let t = s.trim_start();
            if place == Place::Top
                && let Some(fence) = Fence::open(t)
            {
                delimited::find(text, &lines[plain_from..i], self.dates, &mut self.out);
                let close = (i + 1..lines.len()).find(|&j| fence.closes(lines[j].text(text)));
                let content = &lines[i + 1..close.unwrap_or(lines.len())];
                let end = close.map_or(region_end, |j| lines[j].end);
                self.read_fence(fence.info, content, line.start..end);
                i = close.map_or(lines.len(), |j| j + 1);
                plain_from = i;
                continue;
            }
            if t.starts_with(['{', '[']) && self.json_budget > 0 {
                let at = line.end - t.len();
                let found = json::tables_at(text, at, region_end, self.dates);
                let read = match &found {
                    Ok((_, end)) => end - at,
                    Err(read) => *read,
                };
                self.json_budget = self.json_budget.saturating_sub(read.max(1));
                if let Ok((tables, end)) = found {
                    // The line holding the value's last byte (a value is never empty).
                    let last = i + lines[i..].partition_point(|l| l.next < end);
                    let last = last.min(lines.len() - 1);
                    let rest_is_blank = text[end..lines[last].end.max(end)].trim().is_empty();
                    // A JSON value that is not a table is still not prose: its lines are
                    // skipped rather than searched for CSV, unless its line goes on after it
                    // (`[1,2],3` is a CSV row).
                    if !tables.is_empty() || rest_is_blank {
                        delimited::find(text, &lines[plain_from..i], self.dates, &mut self.out);
                        self.out.extend(tables.into_iter().map(|table| Extracted {
                            table,
                            format: json_format,
                            span: at..end,
                        }));
                        i = last + 1;
                        plain_from = i;
                        continue;
                    }
                }
            }
            if let Some(next) = lines.get(i + 1)
                && markdown::opens_table(s, next.text(text))
            {
                delimited::find(text, &lines[plain_from..i], self.dates, &mut self.out);
                let (table, used) = markdown::read_table(text, &lines[i..], self.dates);
                if let Some(table) = table {
                    self.out.push(Extracted {
                        table,
                        format: Format::Markdown,
                        span: line.start..lines[i + used - 1].end,
                    });
                }
                i += used;
                plain_from = i;
                continue;
            }
            i += 1;
        }
        delimited::find(text, &lines[plain_from..], self.dates, &mut self.out);
    }

    fn read_fence(&mut self, info: FenceInfo, content: &[Line], span: Range<usize>) {
        let text = self.text;
        let (Some(first), Some(last)) = (content.first(), content.last()) else {
            return;
        };
        let body = &text[first.start..last.end];
        let body_at = first.start + (body.len() - body.trim_start().len());
        match info {
            FenceInfo::Code => {}
            FenceInfo::Json => {
                if let Ok((tables, _)) = json::tables_at(text, body_at, last.end, self.dates) {
                    self.push_fenced_json(tables, &span);
                }
            }
            FenceInfo::Delimited(delimiter) => {
                if let Ok((table, delimiter)) = delimited::parse_with(body, delimiter, self.dates) {
                    let format = if delimiter == b'\t' {
                        Format::Tsv
                    } else {
                        Format::Csv
                    };
                    self.out.push(Extracted {
                        table,
                        format,
                        span,
                    });
                }
            }
            FenceInfo::Anything => {
                // A block holding exactly one JSON table is fenced JSON, spanning the block.
                if body.trim_start().starts_with(['{', '['])
                    && let Ok((tables, end)) = json::tables_at(text, body_at, last.end, self.dates)
                    && !tables.is_empty()
                    && text[end..last.end].trim().is_empty()
                {
                    self.push_fenced_json(tables, &span);
                    return;
                }
                self.scan(content, Place::InFence);
            }
        }
    }

    fn push_fenced_json(&mut self, tables: Vec<Table>, span: &Range<usize>) {
        self.out.extend(tables.into_iter().map(|table| Extracted {
            table,
            format: Format::FencedJson,
            span: span.clone(),
        }));
    }
}

/// What a fenced block may hold, from its info string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FenceInfo {
    Json,
    Delimited(Option<u8>),
    /// No language, or one that may hold anything (`text`, `markdown`): searched like prose.
    Anything,
    /// Program code: its commas and brackets are not tables.
    Code,
}

struct Fence {
    marker: u8,
    len: usize,
    info: FenceInfo,
}

impl Fence {
    /// A line (already trimmed at the start) that opens a fence: three or more backticks or
    /// tildes. Indentation is not limited as Markdown would, because models indent fences
    /// inside list items.
    fn open(t: &str) -> Option<Self> {
        let marker = *t.as_bytes().first()?;
        if marker != b'`' && marker != b'~' {
            return None;
        }
        let len = t.bytes().take_while(|&b| b == marker).count();
        let info = t[len..].trim();
        if len < 3 || (marker == b'`' && info.contains('`')) {
            return None;
        }
        let lang = info
            .split(|c: char| c.is_whitespace() || c == '{' || c == ',')
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let info = match lang.as_str() {
            "json" | "jsonc" | "json5" => FenceInfo::Json,
            "csv" => FenceInfo::Delimited(None),
            "tsv" => FenceInfo::Delimited(Some(b'\t')),
            "psv" => FenceInfo::Delimited(Some(b'|')),
            "" | "text" | "txt" | "plaintext" | "plain" | "markdown" | "md" | "table"
            | "output" | "data" => FenceInfo::Anything,
            _ => FenceInfo::Code,
        };
        Some(Self { marker, len, info })
    }

    fn closes(&self, line: &str) -> bool {
        let t = line.trim();
        t.len() >= self.len && t.bytes().all(|b| b == self.marker)
    }
}

#[cfg(test)]
mod tests;
