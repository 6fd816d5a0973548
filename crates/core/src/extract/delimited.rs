//! Delimited tables: CSV, TSV, and text separated by semicolons or pipes.
//!
//! There are two readers, for two kinds of input:
//! - a delimited block ([`parse_delimited`], a fenced `csv` block) is all table: the `csv`
//!   crate reads it exactly (RFC 4180 quoting, embedded line breaks), after the delimiter is
//!   sniffed from a sample by the import's sniffer ([`crate::import::sniff`]), the one that
//!   uploads and `sheetgpt convert` use too (uploaded files are read by [`crate::import`]);
//! - a reply ([`find`]) is prose that may hold a table. A small scanner reads it line by line
//!   so that a stray quote in a sentence cannot swallow the table after it (a record that
//!   does not parse is skipped and the scan goes on at the next line). It is lenient the way
//!   models write CSV: spaces may come before an opening quote.
//!
//! Telling a table from prose in a reply (a sentence with a comma is not a CSV):
//! 1. A table is a run of two or more consecutive records (a header and at least one row)
//!    with the same number of fields, at least two, for one delimiter.
//! 2. Lines that start like Markdown prose (list items, headings, quotes) are not records.
//! 3. For commas and semicolons, which prose uses all the time, a record with an unquoted
//!    field that reads like part of a sentence is not a record either: more than 12 words;
//!    4 or more words ending in `.`, `!` or `?`; 2 or more ending in `:` (a lead-in like
//!    "The totals, by region:"); or, after the first field, starting with a conjunction
//!    ("red, green, and blue"). Quoted fields are exempt: a CSV whose cells are sentences is
//!    recognised when they are quoted, or when the CSV is fenced.
//! 4. The header must look like one: no empty name (but the first, as pandas and R write an
//!    index column), none longer than 8 words, none of 3 or more words ending like a
//!    sentence.
//! 5. Two comma (or semicolon) separated parts per line is what plain prose looks like most
//!    ("Hello, world"), so such a run also needs some sign of data: either no space after any
//!    delimiter (and the delimiter not a thousands separator, `1,000`), or a column whose
//!    values have a type other than text.
//!    When the first record of a run fails rule 4 or 5, the table may start at one of the
//!    next two records that pass rule 4 (a line of prose above a table can share its shape).
//! 6. Rows whose fields are all empty (`,,,`, spreadsheets' trailing rows) are not data; a run
//!    needs at least one row left.
//! 7. When runs for different delimiters overlap, the one covering more text wins, then the
//!    one with more columns, then tabs before commas, semicolons and pipes.
//!
//! Spaces are part of a field (RFC 4180): a text cell keeps the spaces written around it, in
//! both readers (typed cells are read from the trimmed text; `trim` removes spaces when the
//! user asks). Pipe-separated text is the exception: `a | b` is a display layout, padded for
//! the eye like a Markdown table, so its fields are trimmed. Header names are trimmed.
//! Records of only empty fields are spacing rather than data.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;

use super::build::build_table;
use super::{ExtractError, Extracted, Format, Line, MAX_COLUMNS};
use crate::table::{ColumnType, DateOrder, Table, Value, infer_column_type};

// The delimiters tried, in the sniffer's order of preference when the evidence is equal.
use crate::import::{DELIMITERS, sniff};

/// How many records of a run may be tried as its header (rules 4 and 5).
const MAX_HEADER_TRIES: usize = 3;

/// Reads an uploaded delimited file as one table: the first non-empty record is the header.
/// `delimiter` is sniffed when `None` (tab, comma, semicolon or pipe, whichever splits the
/// first records most consistently into two or more fields; a comma when none does). Ragged
/// rows are padded, and rows longer than the header add columns.
pub fn parse_delimited(text: &str, delimiter: Option<u8>) -> Result<Table, ExtractError> {
    parse_with(text, delimiter, DateOrder::MonthFirst).map(|(table, _)| table)
}

/// [`parse_delimited`], also telling which delimiter was used.
pub(super) fn parse_with(
    text: &str,
    delimiter: Option<u8>,
    dates: DateOrder,
) -> Result<(Table, u8), ExtractError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(ExtractError::Empty);
    }
    let delimiter = match delimiter {
        Some(d) if d == b'"' || d == b'\n' || d == b'\r' || !d.is_ascii() => {
            return Err(ExtractError::Delimiter { byte: d });
        }
        Some(d) => d,
        None => sniff(text.as_bytes()),
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(text.as_bytes());
    let mut records = Vec::new();
    let mut width = 0;
    for record in reader.records() {
        let record = record.map_err(|e| ExtractError::Csv {
            line: e.position().map_or(0, csv::Position::line),
            message: e.to_string(),
        })?;
        if record.len() > MAX_COLUMNS {
            return Err(ExtractError::TooManyColumns {
                found: record.len(),
            });
        }
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        width = width.max(record.len());
        records.push(record);
    }
    let Some((header, rows)) = records.split_first() else {
        return Err(ExtractError::Empty);
    };
    if rows.is_empty() {
        return Err(ExtractError::NoRows);
    }
    let headers: Vec<String> = header.iter().map(|h| h.trim().to_owned()).collect();
    let padded = delimiter == b'|';
    let mut cells: Vec<&str> = Vec::with_capacity(rows.len() * width);
    for row in rows {
        cells.extend(
            (0..width).map(|i| row.get(i).map_or("", |c| if padded { c.trim() } else { c })),
        );
    }
    Ok((build_table(&headers, &cells, width, dates), delimiter))
}

/// CSV text of a table: a header of column names, then one line per row. Cells are `Value`'s
/// display text (nulls empty), quoted as RFC 4180 says when they hold the delimiter, a quote
/// or a line break, and also when they start or end with whitespace, which readers trim.
/// Lines end with `\n`: every reader accepts it, and CRLF would leak `\r` into replies.
pub fn to_csv(table: &Table, delimiter: u8) -> String {
    let delimiter = char::from(delimiter);
    let width = table.columns.len();
    let mut out = String::new();
    push_record(
        &mut out,
        table.columns.iter().map(|c| c.name.as_str()),
        delimiter,
        width,
    );
    for row in &table.rows {
        push_record(&mut out, row.iter().map(Value::to_string), delimiter, width);
    }
    out
}

fn push_record<S: AsRef<str>>(
    out: &mut String,
    cells: impl Iterator<Item = S>,
    delimiter: char,
    width: usize,
) {
    for (i, cell) in cells.enumerate() {
        if i > 0 {
            out.push(delimiter);
        }
        push_field(out, cell.as_ref(), delimiter, width);
    }
    out.push('\n');
}

fn push_field(out: &mut String, cell: &str, delimiter: char, width: usize) {
    let needs_quotes = cell.contains([delimiter, '"', '\n', '\r'])
        || cell.starts_with(char::is_whitespace)
        || cell.ends_with(char::is_whitespace)
        // A one-column row with an empty cell would be a blank line, which readers skip.
        || (cell.is_empty() && width == 1);
    if needs_quotes {
        out.push('"');
        out.push_str(&cell.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(cell);
    }
}

/// Words that start the last item of a list in a sentence ("red, green, and blue").
const CONJUNCTIONS: [&str; 5] = ["and ", "or ", "but ", "then ", "so "];

/// The punctuation ending `t` when it ends like a sentence: `.`, `!`, `?` or `:` after a
/// letter or a closing parenthesis (so `3.` or `...` do not count).
fn sentence_end(t: &str) -> Option<char> {
    let mut tail = t.chars().rev();
    let last = tail.next().filter(|c| matches!(c, '.' | '!' | '?' | ':'))?;
    tail.next()
        .is_some_and(|c| c.is_alphabetic() || c == ')')
        .then_some(last)
}

/// A field as scanned: `start..end` is its text (inside the quotes when quoted).
#[derive(Clone, Copy, Debug)]
struct Field {
    /// Where the field's text starts with the spaces before it (unquoted fields).
    lead: usize,
    start: usize,
    end: usize,
    quoted: bool,
    doubled_quotes: bool,
    space_before: bool,
}

impl Field {
    fn text(self, text: &str) -> Cow<'_, str> {
        let raw = &text[self.start..self.end];
        if self.doubled_quotes {
            Cow::Owned(raw.replace("\"\"", "\"").trim().to_owned())
        } else {
            Cow::Borrowed(raw.trim())
        }
    }

    /// The cell's text as written: inside the quotes, or the whole unquoted field with the
    /// spaces around it (trimmed only for a padded, pipe-separated layout).
    fn cell(self, text: &str, padded: bool) -> Cow<'_, str> {
        if padded {
            return self.text(text);
        }
        if self.quoted {
            let raw = &text[self.start..self.end];
            return if self.doubled_quotes {
                Cow::Owned(raw.replace("\"\"", "\""))
            } else {
                Cow::Borrowed(raw)
            };
        }
        let raw = &text[self.lead..self.end];
        Cow::Borrowed(raw.strip_suffix('\r').unwrap_or(raw))
    }
}

/// A record: `start..end` its text without the final line break, `fields` its range in the
/// scan's field list (empty for a line that is not a record).
#[derive(Clone, Debug)]
struct Record {
    start: usize,
    end: usize,
    fields: Range<usize>,
}

/// One delimiter's reading of a stretch of prose.
struct Scan<'a> {
    text: &'a str,
    delimiter: u8,
    records: Vec<Record>,
    fields: Vec<Field>,
}

/// A run of records that passed the heuristics, for one delimiter.
struct Candidate {
    delimiter: u8,
    width: usize,
    span: Range<usize>,
    /// Index of the scan it came from and its records there (header first).
    scan: usize,
    records: Range<usize>,
}

/// Searches plain lines (no fences, JSON or Markdown tables) for delimited tables.
pub(super) fn find(text: &str, lines: &[Line], dates: DateOrder, out: &mut Vec<Extracted>) {
    let (Some(first), Some(last)) = (lines.first(), lines.last()) else {
        return;
    };
    // A table needs a header and a row: two lines at least.
    if lines.len() < 2 {
        return;
    }
    let region = first.start..last.next;
    let body = &text[region.clone()];
    let scans: Vec<Scan<'_>> = DELIMITERS
        .into_iter()
        .filter(|&d| body.contains(char::from(d)))
        .map(|d| Scan::read(text, region.clone(), d))
        .collect();
    let mut candidates: Vec<Candidate> = scans
        .iter()
        .enumerate()
        .flat_map(|(i, scan)| scan.candidates(i))
        .collect();
    candidates.sort_by_key(|c| {
        let rank = DELIMITERS.iter().position(|&d| d == c.delimiter);
        (
            std::cmp::Reverse(c.span.len()),
            std::cmp::Reverse(c.width),
            rank,
        )
    });
    // Chosen spans by start; they never overlap, so only the neighbours of a new span can.
    let mut chosen: BTreeMap<usize, Candidate> = BTreeMap::new();
    for c in candidates {
        let clear_before = chosen
            .range(..c.span.start + 1)
            .next_back()
            .is_none_or(|(_, k)| k.span.end <= c.span.start);
        let clear_after = chosen
            .range(c.span.start..)
            .next()
            .is_none_or(|(_, k)| c.span.end <= k.span.start);
        if clear_before && clear_after {
            chosen.insert(c.span.start, c);
        }
    }
    for c in chosen.into_values() {
        let format = if c.delimiter == b'\t' {
            Format::Tsv
        } else {
            Format::Csv
        };
        out.push(Extracted {
            table: scans[c.scan].table(c.records, c.width, dates),
            format,
            span: c.span,
        });
    }
}

impl<'a> Scan<'a> {
    fn read(text: &'a str, region: Range<usize>, delimiter: u8) -> Self {
        let mut scan = Self {
            text,
            delimiter,
            records: Vec::new(),
            fields: Vec::new(),
        };
        let mut pos = region.start;
        while pos < region.end {
            let (line_end, next_line) = match text[pos..region.end].find('\n') {
                Some(i) => (pos + i, pos + i + 1),
                None => (region.end, region.end),
            };
            let line = &text[pos..line_end];
            let simple = !line.contains(char::from(delimiter)) && !line.contains('"');
            let before = scan.fields.len();
            let record = if simple {
                None
            } else {
                scan.read_record(pos, region.end)
            };
            match record {
                Some((end, next)) => {
                    scan.strip_outer_pipes(before);
                    scan.records.push(Record {
                        start: pos,
                        end,
                        fields: before..scan.fields.len(),
                    });
                    pos = next;
                }
                None => {
                    scan.fields.truncate(before);
                    scan.records.push(Record {
                        start: pos,
                        end: line_end - usize::from(line.ends_with('\r')),
                        fields: before..before,
                    });
                    pos = next_line;
                }
            }
        }
        scan
    }

    /// Reads one record from `pos`, pushing its fields. Returns where its text ends and where
    /// the next record starts, or `None` when the text is not a record (an unclosed quote, or
    /// text after a closing quote).
    fn read_record(&mut self, pos: usize, limit: usize) -> Option<(usize, usize)> {
        let b = self.text.as_bytes();
        let d = self.delimiter;
        let is_space = |x: u8| x == b' ' || (x == b'\t' && d != b'\t');
        let mut i = pos;
        loop {
            let raw_start = i;
            while i < limit && is_space(b[i]) {
                i += 1;
            }
            let space_before = i > raw_start;
            if i < limit && b[i] == b'"' {
                let start = i + 1;
                let mut j = start;
                let mut doubled_quotes = false;
                let close = loop {
                    let k = j + self.text[j..limit].find('"')?;
                    if k + 1 < limit && b[k + 1] == b'"' {
                        doubled_quotes = true;
                        j = k + 2;
                    } else {
                        break k;
                    }
                };
                self.fields.push(Field {
                    lead: start,
                    start,
                    end: close,
                    quoted: true,
                    doubled_quotes,
                    space_before,
                });
                i = close + 1;
                while i < limit && is_space(b[i]) {
                    i += 1;
                }
            } else {
                let end = b[i..limit]
                    .iter()
                    .position(|&x| x == d || x == b'\n')
                    .map_or(limit, |k| i + k);
                self.fields.push(Field {
                    lead: raw_start,
                    start: i,
                    end,
                    quoted: false,
                    doubled_quotes: false,
                    space_before,
                });
                i = end;
            }
            if i >= limit {
                return Some((limit - usize::from(b[..limit].ends_with(b"\r")), limit));
            }
            match b[i] {
                x if x == d => i += 1,
                b'\n' => return Some((i - usize::from(b[..i].ends_with(b"\r")), i + 1)),
                b'\r' if b.get(i + 1) == Some(&b'\n') && i + 1 < limit => {
                    return Some((i, i + 2));
                }
                _ => return None,
            }
        }
    }

    /// `| a | b |` read with `|` as the delimiter has an empty field at each end that is not
    /// data: drop both when both are there.
    fn strip_outer_pipes(&mut self, first: usize) {
        let fields = &self.fields[first..];
        let empty = |f: &Field| !f.quoted && f.text(self.text).is_empty();
        if self.delimiter == b'|'
            && fields.len() >= 3
            && fields.first().is_some_and(empty)
            && fields.last().is_some_and(empty)
        {
            self.fields.pop();
            self.fields.remove(first);
        }
    }

    fn fields_of(&self, r: usize) -> &[Field] {
        &self.fields[self.records[r].fields.clone()]
    }

    fn width(&self, r: usize) -> usize {
        self.records[r].fields.len()
    }

    /// Runs of records that look like tables (rules 1 to 6 of the module docs).
    fn candidates(&self, scan: usize) -> Vec<Candidate> {
        let eligible: Vec<bool> = (0..self.records.len())
            .map(|r| (2..=MAX_COLUMNS).contains(&self.width(r)) && !self.is_prose(r))
            .collect();
        let mut found = Vec::new();
        let mut r = 0;
        while r < self.records.len() {
            if !eligible[r] {
                r += 1;
                continue;
            }
            let width = self.width(r);
            let mut end = r + 1;
            while end < self.records.len() && eligible[end] && self.width(end) == width {
                end += 1;
            }
            // A line of prose just above a table can have the table's shape; the table may
            // start a little later. Only a few starts are tried, to stay linear.
            let header = (r..end.saturating_sub(1))
                .filter(|&h| self.is_header(h))
                .take(MAX_HEADER_TRIES)
                .find(|&h| self.has_data(h + 1..end) && self.looks_like_data(h..end));
            if let Some(header) = header {
                found.push(Candidate {
                    delimiter: self.delimiter,
                    width,
                    span: self.records[header].start..self.records[end - 1].end,
                    scan,
                    records: header..end,
                });
            }
            r = end;
        }
        found
    }

    /// Rules 2 and 3: list items, headings and sentences are prose.
    fn is_prose(&self, r: usize) -> bool {
        let line = self.text[self.records[r].start..].trim_start();
        let digits = line.bytes().take_while(u8::is_ascii_digit).count();
        let hashes = line.bytes().take_while(|&b| b == b'#').count();
        let markdown_start = ["- ", "* ", "+ ", "• ", "> "]
            .iter()
            .any(|m| line.starts_with(m))
            || (hashes > 0 && line[hashes..].starts_with(' '))
            || (digits > 0
                && (line[digits..].starts_with(". ") || line[digits..].starts_with(") ")));
        if markdown_start {
            return true;
        }
        if self.delimiter != b',' && self.delimiter != b';' {
            return false;
        }
        self.fields_of(r)
            .iter()
            .enumerate()
            .filter(|(_, f)| !f.quoted)
            .any(|(i, f)| {
                let t = f.text(self.text);
                let words = t.split_whitespace().count();
                let conjunction = i > 0 && CONJUNCTIONS.iter().any(|c| t.starts_with(c));
                words > 12
                    || conjunction
                    || match sentence_end(&t) {
                        Some(':') => words >= 2,
                        Some(_) => words >= 4,
                        None => false,
                    }
            })
    }

    /// Rule 4: names, none empty, long or ending like a sentence. The first name alone may
    /// be empty when there are others: the index column that pandas' `to_csv` and R's
    /// `write.csv` write (`,zip,score`), whose header would otherwise be taken for data.
    fn is_header(&self, r: usize) -> bool {
        let fields = self.fields_of(r);
        fields.iter().enumerate().all(|(i, f)| {
            let t = f.text(self.text);
            let words = t.split_whitespace().count();
            let named = !t.is_empty() || (i == 0 && fields.len() > 2);
            named && words <= 8 && (words < 3 || sentence_end(&t).is_none())
        })
    }

    /// Rule 6: at least one row with a non-empty field.
    fn has_data(&self, rows: Range<usize>) -> bool {
        rows.into_iter().any(|r| !self.is_blank_row(r))
    }

    fn is_blank_row(&self, r: usize) -> bool {
        self.fields_of(r)
            .iter()
            .all(|f| f.text(self.text).is_empty())
    }

    /// Rule 5: two-part comma or semicolon lines need a sign of data.
    fn looks_like_data(&self, records: Range<usize>) -> bool {
        let width = self.width(records.start);
        if width != 2 || (self.delimiter != b',' && self.delimiter != b';') {
            return true;
        }
        let b = self.text.as_bytes();
        let thousands = |prev: &Field, f: &Field| {
            self.delimiter == b','
                && !prev.quoted
                && !f.quoted
                && prev.end > prev.start
                && b[prev.end - 1].is_ascii_digit()
                && b.get(f.start..f.start + 3)
                    .is_some_and(|g| g.iter().all(u8::is_ascii_digit))
                && !b.get(f.start + 3).is_some_and(u8::is_ascii_digit)
        };
        let tight = records.clone().all(|r| {
            self.fields_of(r)
                .windows(2)
                .all(|pair| !pair[1].space_before && !thousands(&pair[0], &pair[1]))
        });
        tight
            || (0..width).any(|c| {
                let cells: Vec<Cow<'_, str>> = (records.start + 1..records.end)
                    .map(|r| self.fields_of(r)[c].text(self.text))
                    .collect();
                infer_column_type(cells.iter().map(AsRef::as_ref)) != ColumnType::Text
            })
    }

    fn table(&self, records: Range<usize>, width: usize, dates: DateOrder) -> Table {
        let headers: Vec<String> = self
            .fields_of(records.start)
            .iter()
            .map(|f| f.text(self.text).into_owned())
            .collect();
        let mut cells: Vec<Cow<'_, str>> = Vec::new();
        for r in records.start + 1..records.end {
            if !self.is_blank_row(r) {
                let padded = self.delimiter == b'|';
                cells.extend(self.fields_of(r).iter().map(|f| f.cell(self.text, padded)));
            }
        }
        build_table(&headers, &cells, width, dates)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(text: &str) -> Table {
        parse_delimited(text, None).unwrap_or_else(|e| panic!("{e}"))
    }

    fn names(t: &Table) -> Vec<&str> {
        t.columns.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn uploads_handle_quotes_embedded_newlines_and_a_byte_order_mark() {
        let t = upload("\u{feff}name,notes\n\"Smith, J\",\"said \"\"hi\"\"\nthen left\"\nLee,\n");
        assert_eq!(names(&t), ["name", "notes"]);
        assert_eq!(t.rows[0][0], Value::Text("Smith, J".into()));
        assert_eq!(t.rows[0][1], Value::Text("said \"hi\"\nthen left".into()));
        assert_eq!(t.rows[1][1], Value::Null);
    }

    #[test]
    fn uploads_pad_short_rows_and_widen_for_long_ones_and_skip_empty_rows() {
        let t = upload("a,b\n1\n2,3,4\n,,\n");
        assert_eq!(names(&t), ["a", "b", "Column 3"]);
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.rows[0], [Value::Integer(1), Value::Null, Value::Null]);
    }

    #[test]
    fn uploads_that_are_not_tables_say_why() {
        assert_eq!(parse_delimited("", None), Err(ExtractError::Empty));
        assert_eq!(
            parse_delimited("\u{feff} \n\n", None),
            Err(ExtractError::Empty)
        );
        assert_eq!(parse_delimited("a,b,c\n", None), Err(ExtractError::NoRows));
        assert_eq!(
            parse_delimited("a,b\n1,2", Some(b'"')),
            Err(ExtractError::Delimiter { byte: b'"' })
        );
        let wide = format!(
            "{}\n{}\n",
            ",".repeat(MAX_COLUMNS),
            "1,".repeat(MAX_COLUMNS)
        );
        assert_eq!(
            parse_delimited(&wide, Some(b',')),
            Err(ExtractError::TooManyColumns {
                found: MAX_COLUMNS + 1
            })
        );
    }

    #[test]
    fn thousands_of_small_tables_are_each_found() {
        let text = "a,b\nc,d\n\n".repeat(20_000);
        let lines = Line::split(&text);
        let mut found = Vec::new();
        find(&text, &lines, DateOrder::MonthFirst, &mut found);
        assert_eq!(found.len(), 20_000);
        assert_eq!(found[1].span, 9..16);
    }

    #[test]
    fn the_error_messages_read_as_sentences() {
        assert_eq!(
            ExtractError::NoRows.to_string(),
            "the file has a header row but no data rows"
        );
        assert_eq!(
            ExtractError::TooManyColumns { found: 12_000 }.to_string(),
            "the file has 12000 columns; at most 10000 are supported"
        );
    }

    #[test]
    fn csv_quotes_only_the_fields_that_need_it() {
        // The spaces of `" padded "` are part of the field: kept, so quoted on the way out.
        let t = upload("a,b\n\"x, y\",plain\n\"say \"\"hi\"\"\",\" padded \"\n");
        assert_eq!(
            to_csv(&t, b','),
            "a,b\n\"x, y\",plain\n\"say \"\"hi\"\"\",\" padded \"\n"
        );
        assert_eq!(
            to_csv(&t, b';'),
            "a;b\nx, y;plain\n\"say \"\"hi\"\"\";\" padded \"\n"
        );
    }

    #[test]
    fn a_one_column_table_writes_empty_cells_as_empty_quotes() {
        let t = upload("a\n1\n\"\"\n2\n");
        assert_eq!(to_csv(&t, b','), "a\n1\n2\n");
        let with_null = Table {
            rows: vec![vec![Value::Null], vec![Value::Integer(1)]],
            ..t
        };
        assert_eq!(to_csv(&with_null, b','), "a\n\"\"\n1\n");
    }
}
