//! Delimited files, streamed twice: the first pass checks every record and infers the
//! columns, the second hands over rows. Memory is one record at a time, whatever the rows.
//!
//! The file is read as written: RFC 4180 quoting (embedded delimiters, quotes, line breaks), a
//! UTF-8 byte order mark skipped, text kept as given (not trimmed). The first record that is
//! not blank is the header; later records whose fields are all blank are not rows (Excel
//! writes `,,,` for formatted empty rows) and are counted in [`Scan::empty_rows_skipped`].
//! Short rows are padded with empty cells and long ones add columns.

use std::borrow::Cow;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::ops::ControlFlow;

use super::sniff::{SNIFF_BYTES, sniff};
use super::typing::{CellRef, ColumnGuess, to_value};
use super::{ImportError, Limits, Place, Scan, chars_over};
use crate::table::{Column, Value, unique_names};

pub(crate) struct Delimited<R> {
    input: R,
    delimiter: u8,
}

fn blank(record: &csv::ByteRecord) -> bool {
    record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace))
}

fn text(field: &[u8], line: u64) -> Result<&str, ImportError> {
    std::str::from_utf8(field).map_err(|_| ImportError::NotUtf8 { line })
}

/// Refuses a cell that cannot be stored as given.
pub(crate) fn check_cell(
    text: &str,
    at: impl Fn() -> Place,
    max: usize,
) -> Result<(), ImportError> {
    if text.as_bytes().contains(&0) {
        return Err(ImportError::Nul { at: at() });
    }
    if chars_over(text, max) {
        return Err(ImportError::CellTooLong { at: at(), max });
    }
    Ok(())
}

impl<R: Read + Seek> Delimited<R> {
    pub(crate) fn open(
        mut input: R,
        delimiter: Option<u8>,
        limits: &Limits,
    ) -> Result<(Self, Scan), ImportError> {
        let delimiter = match delimiter {
            Some(d) if d == b'"' || d == b'\n' || d == b'\r' || !d.is_ascii() => {
                return Err(ImportError::Delimiter(char::from(d)));
            }
            Some(d) => d,
            None => {
                let mut head = Vec::with_capacity(SNIFF_BYTES);
                input.seek(SeekFrom::Start(0))?;
                (&mut input)
                    .take(SNIFF_BYTES as u64)
                    .read_to_end(&mut head)?;
                sniff(&head)
            }
        };
        let mut this = Self { input, delimiter };
        let scan = this.scan(limits)?;
        Ok((this, scan))
    }

    fn records(&mut self) -> Result<csv::Reader<BufReader<&mut R>>, ImportError> {
        self.input.seek(SeekFrom::Start(0))?;
        let mut reader = BufReader::with_capacity(1 << 20, &mut self.input);
        if reader.fill_buf()?.starts_with(b"\xEF\xBB\xBF") {
            reader.consume(3);
        }
        Ok(csv::ReaderBuilder::new()
            .delimiter(self.delimiter)
            .has_headers(false)
            .flexible(true)
            .from_reader(reader))
    }

    fn scan(&mut self, limits: &Limits) -> Result<Scan, ImportError> {
        let max_cell = limits.max_cell_chars;
        let delimiter = self.delimiter;
        let mut reader = self.records()?;
        let mut record = csv::ByteRecord::new();
        let mut header: Option<Vec<String>> = None;
        let mut guesses: Vec<ColumnGuess> = Vec::new();
        let mut rows: u64 = 0;
        let mut skipped: u64 = 0;
        while read(&mut reader, &mut record)? {
            let line = record.position().map_or(0, csv::Position::line);
            if record.len() > limits.max_columns {
                return Err(ImportError::TooManyColumns {
                    found: record.len() as u64,
                    max: limits.max_columns,
                    at: Some(Place::Line {
                        line,
                        column: record.len(),
                    }),
                });
            }
            let at = |i: usize| {
                move || Place::Line {
                    line,
                    column: i + 1,
                }
            };
            if header.is_none() {
                if blank(&record) {
                    continue;
                }
                let mut names = Vec::with_capacity(record.len());
                for (i, field) in record.iter().enumerate() {
                    let name = text(field, line)?;
                    check_cell(name, at(i), max_cell)?;
                    names.push(name.to_owned());
                }
                guesses = vec![ColumnGuess::preferring(limits.dates); names.len()];
                header = Some(names);
                continue;
            }
            if blank(&record) {
                skipped += 1;
                continue;
            }
            rows += 1;
            if rows > limits.max_rows {
                return Err(ImportError::TooManyRows {
                    max: limits.max_rows,
                });
            }
            if record.len() > guesses.len() {
                guesses.resize(record.len(), ColumnGuess::preferring(limits.dates));
            }
            for (i, field) in record.iter().enumerate() {
                let cell = text(field, line)?;
                check_cell(cell, at(i), max_cell)?;
                guesses[i].push(&CellRef::Text(Cow::Borrowed(cell)));
            }
        }
        let header = header.ok_or(ImportError::Empty)?;
        if rows == 0 {
            return Err(ImportError::NoRows);
        }
        let columns = unique_names(&header, guesses.len())
            .into_iter()
            .zip(&guesses)
            .enumerate()
            .map(|(i, (name, guess))| guess.finish_typed().column(format!("c{}", i + 1), name))
            .collect();
        Ok(Scan {
            columns,
            rows,
            empty_rows_skipped: skipped,
            delimiter: Some(delimiter),
            sheet: None,
        })
    }

    pub(crate) fn rows(
        mut self,
        columns: &[Column],
        mut each: impl FnMut(Vec<Value>) -> ControlFlow<()>,
    ) -> Result<u64, ImportError> {
        let mut reader = self.records()?;
        let mut record = csv::ByteRecord::new();
        let mut seen_header = false;
        let mut count = 0;
        while read(&mut reader, &mut record)? {
            if blank(&record) {
                continue;
            }
            if !seen_header {
                seen_header = true;
                continue;
            }
            let line = record.position().map_or(0, csv::Position::line);
            let mut row = Vec::with_capacity(columns.len());
            for (i, column) in columns.iter().enumerate() {
                let value = match record.get(i) {
                    Some(field) => {
                        to_value(&CellRef::Text(Cow::Borrowed(text(field, line)?)), column)
                    }
                    None => Value::Null,
                };
                row.push(value);
            }
            count += 1;
            if each(row).is_break() {
                break;
            }
        }
        Ok(count)
    }
}

fn read<R: Read>(
    reader: &mut csv::Reader<R>,
    record: &mut csv::ByteRecord,
) -> Result<bool, ImportError> {
    reader.read_byte_record(record).map_err(|e| match e.kind() {
        csv::ErrorKind::Io(io) => ImportError::Io(io.to_string()),
        _ => ImportError::Malformed(e.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::import::{Source, read_table};
    use crate::table::ColumnType;

    fn read_csv(text: &[u8], limits: &Limits) -> Result<crate::table::Table, ImportError> {
        read_table(
            Cursor::new(text),
            &Source::Delimited { delimiter: None },
            limits,
        )
        .map(|(t, _)| t)
    }

    #[test]
    fn a_csv_is_read_with_quotes_a_byte_order_mark_and_text_kept_as_given() {
        let t = read_csv(
            b"\xEF\xBB\xBFname,notes,n\n\"Smith, J\",\" two\nlines \",1\nLee,,2\n,,\n",
            &Limits::default(),
        )
        .unwrap_or_default();
        assert_eq!(t.columns.len(), 3);
        assert_eq!(t.columns[2].ty, ColumnType::Integer);
        assert_eq!(t.rows.len(), 2, "the blank row is not data");
        assert_eq!(t.rows[0][1], Value::Text(" two\nlines ".into()));
        assert_eq!(t.rows[1][1], Value::Null);
    }

    #[test]
    fn a_cell_at_the_limit_is_read_and_one_past_it_is_refused_naming_its_place() {
        let limits = Limits {
            max_cell_chars: 5,
            ..Limits::default()
        };
        assert!(read_csv("a,b\n1,ééééé\n".as_bytes(), &limits).is_ok());
        assert_eq!(
            read_csv(b"a,b\n1,2\n3,abcdef\n", &limits),
            Err(ImportError::CellTooLong {
                at: Place::Line { line: 3, column: 2 },
                max: 5
            })
        );
    }

    #[test]
    fn a_nul_byte_is_refused_naming_its_line_and_column() {
        assert_eq!(
            read_csv(b"a,b\n1,x\0y\n", &Limits::default()),
            Err(ImportError::Nul {
                at: Place::Line { line: 2, column: 2 }
            })
        );
    }

    #[test]
    fn bad_text_names_its_line_and_bounds_are_checked() {
        assert_eq!(
            read_csv(b"a,b\n1,2\nJos\xe9,3\n", &Limits::default()),
            Err(ImportError::NotUtf8 { line: 3 })
        );
        let limits = Limits {
            max_rows: 2,
            max_columns: 2,
            ..Limits::default()
        };
        assert!(read_csv(b"a,b\n1,2\n3,4\n", &limits).is_ok());
        assert_eq!(
            read_csv(b"a,b\n1,2\n3,4\n5,6\n", &limits),
            Err(ImportError::TooManyRows { max: 2 })
        );
        assert!(matches!(
            read_csv(b"a,b\n1,2,3\n", &limits),
            Err(ImportError::TooManyColumns { found: 3, .. })
        ));
        assert_eq!(read_csv(b" \n\n", &limits), Err(ImportError::Empty));
        assert_eq!(read_csv(b"a,b\n", &limits), Err(ImportError::NoRows));
    }
}
