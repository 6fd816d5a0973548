//! Spreadsheets: one sheet of an XLSX, XLSM, XLSB, XLS or ODS workbook, read with calamine
//! after [`bounds::check`](super::bounds::check) has made sure opening it costs what the
//! limits allow.
//!
//! XLSX and XLSB sheets are streamed cell by cell (`worksheet_cells_reader`), twice: nothing is
//! sized by the sheet's bounding box, so a sheet with cells at A1 and XFD1048576 costs two
//! cells (and is refused for its 16,384 columns). Only cells that hold something count: a
//! styled empty cell far to the right does not widen the table. XLS and ODS have no such API
//! in calamine (it builds each sheet's grid at open); their grids are bounded by
//! `max_sheet_cells` before opening, and read once.
//!
//! The first row with a value is the header; later rows with none are not data. A row's
//! cells must come in row order (a file that goes back is refused), and a row cannot list
//! more cells than the table may have columns.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::ops::ControlFlow;

use calamine::{Data, DataRef, ExcelDateTime, Reader};

use super::bounds::{self, Kind};
use super::delimited::check_cell;
use super::typing::{CellRef, ColumnGuess, to_value};
use super::{ImportError, Limits, Place, Scan};
use crate::table::{Column, Value, unique_names};

pub(crate) struct Sheet<R: Read + Seek> {
    book: Book<R>,
    name: String,
    /// The first column with a value, and how many columns from there.
    first_col: u32,
    width: usize,
    max_columns: usize,
}

enum Book<R: Read + Seek> {
    Xlsx(calamine::Xlsx<R>),
    Xlsb(calamine::Xlsb<R>),
    /// XLS and ODS: calamine's grid of the sheet, bounded before it was built.
    Grid(calamine::Range<Data>),
}

fn unreadable(e: impl std::fmt::Display) -> ImportError {
    ImportError::NotASpreadsheet(e.to_string())
}

fn pick(names: Vec<String>, wanted: Option<&str>) -> Result<String, ImportError> {
    match wanted {
        Some(w) => names
            .into_iter()
            .find(|n| n == w)
            .ok_or_else(|| ImportError::NoSuchSheet(w.to_owned())),
        None => names.into_iter().next().ok_or(ImportError::NoSheets),
    }
}

fn excel_datetime(dt: ExcelDateTime) -> CellRef<'static> {
    if dt.is_duration() {
        return CellRef::Text(Cow::Owned(dt.as_f64().to_string()));
    }
    match dt.as_datetime() {
        Some(d) => CellRef::DateTime(d),
        None => CellRef::Float(dt.as_f64()),
    }
}

fn iso_datetime(s: &str) -> Option<chrono::NaiveDateTime> {
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .map(|d| d.and_time(chrono::NaiveTime::MIN))
        })
}

fn from_ref(d: DataRef<'_>) -> CellRef<'_> {
    match d {
        DataRef::Empty => CellRef::Empty,
        DataRef::String(s) => CellRef::Text(Cow::Owned(s)),
        DataRef::SharedString(s) => CellRef::Text(Cow::Borrowed(s)),
        DataRef::Int(i) => CellRef::Int(i),
        DataRef::Float(f) => CellRef::Float(f),
        DataRef::Bool(b) => CellRef::Bool(b),
        DataRef::DateTime(dt) => excel_datetime(dt),
        DataRef::DateTimeIso(s) => match iso_datetime(&s) {
            Some(dt) => CellRef::DateTime(dt),
            None => CellRef::Text(Cow::Owned(s)),
        },
        DataRef::DurationIso(s) => CellRef::Text(Cow::Owned(s)),
        // `#DIV/0!` and the like stay visible as text (`#N/A` reads as "no value").
        DataRef::Error(e) => CellRef::Text(Cow::Owned(e.to_string())),
    }
}

fn from_data(d: &Data) -> CellRef<'_> {
    match d {
        Data::Empty => CellRef::Empty,
        Data::String(s) | Data::DurationIso(s) => CellRef::Text(Cow::Borrowed(s)),
        Data::Int(i) => CellRef::Int(*i),
        Data::Float(f) => CellRef::Float(*f),
        Data::Bool(b) => CellRef::Bool(*b),
        Data::DateTime(dt) => excel_datetime(*dt),
        Data::DateTimeIso(s) => match iso_datetime(s) {
            Some(dt) => CellRef::DateTime(dt),
            None => CellRef::Text(Cow::Borrowed(s)),
        },
        Data::Error(e) => CellRef::Text(Cow::Owned(e.to_string())),
    }
}

/// Collects cells into rows and hands each row over (its index and its cells, by column).
struct RowBuilder<'c> {
    row: Option<u32>,
    cells: Vec<(u32, CellRef<'c>)>,
    max_cells: usize,
}

type OnRow<'f> = dyn FnMut(u32, &[(u32, CellRef<'_>)]) -> Result<ControlFlow<()>, ImportError> + 'f;

impl<'c> RowBuilder<'c> {
    fn new(max_cells: usize) -> Self {
        Self {
            row: None,
            cells: Vec::new(),
            max_cells,
        }
    }

    fn push(
        &mut self,
        (row, col): (u32, u32),
        cell: CellRef<'c>,
        on_row: &mut OnRow<'_>,
    ) -> Result<ControlFlow<()>, ImportError> {
        if matches!(cell, CellRef::Empty) {
            return Ok(ControlFlow::Continue(()));
        }
        let mut flow = ControlFlow::Continue(());
        match self.row {
            Some(current) if current == row => {}
            Some(current) if row < current => {
                return Err(ImportError::OutOfOrder {
                    row: u64::from(row) + 1,
                    after: u64::from(current) + 1,
                });
            }
            _ => {
                flow = self.flush(on_row)?;
                self.row = Some(row);
            }
        }
        if self.cells.len() >= self.max_cells {
            return Err(ImportError::TooManyColumns {
                found: self.cells.len() as u64 + 1,
                max: self.max_cells,
                at: Some(Place::Cell { row, column: col }),
            });
        }
        self.cells.push((col, cell));
        Ok(flow)
    }

    fn flush(&mut self, on_row: &mut OnRow<'_>) -> Result<ControlFlow<()>, ImportError> {
        let Some(row) = self.row.take() else {
            return Ok(ControlFlow::Continue(()));
        };
        self.cells.sort_by_key(|(c, _)| *c);
        let flow = on_row(row, &self.cells)?;
        self.cells.clear();
        Ok(flow)
    }
}

impl<R: Read + Seek> Sheet<R> {
    pub(crate) fn open(
        mut input: R,
        sheet: Option<&str>,
        limits: &Limits,
    ) -> Result<(Self, Scan), ImportError> {
        let kind = bounds::check(&mut input, limits)?;
        input.seek(SeekFrom::Start(0))?;
        let (book, name) = match kind {
            Kind::Xlsx => {
                let book = calamine::Xlsx::new(input).map_err(unreadable)?;
                let name = pick(book.sheet_names(), sheet)?;
                (Book::Xlsx(book), name)
            }
            Kind::Xlsb => {
                let book = calamine::Xlsb::new(input).map_err(unreadable)?;
                let name = pick(book.sheet_names(), sheet)?;
                (Book::Xlsb(book), name)
            }
            Kind::Xls => {
                let mut book = calamine::Xls::new(input).map_err(unreadable)?;
                let name = pick(book.sheet_names(), sheet)?;
                let grid = book.worksheet_range(&name).map_err(unreadable)?;
                (Book::Grid(grid), name)
            }
            Kind::Ods => {
                let mut book = calamine::Ods::new(input).map_err(unreadable)?;
                let name = pick(book.sheet_names(), sheet)?;
                let grid = book.worksheet_range(&name).map_err(unreadable)?;
                (Book::Grid(grid), name)
            }
        };
        let mut this = Self {
            book,
            name,
            first_col: 0,
            width: 0,
            max_columns: limits.max_columns,
        };
        let scan = this.scan(limits)?;
        Ok((this, scan))
    }

    /// Every row with a value, in order.
    fn each_row(&mut self, on_row: &mut OnRow<'_>) -> Result<(), ImportError> {
        let mut rows = RowBuilder::new(self.max_columns);
        match &mut self.book {
            Book::Xlsx(book) => {
                let mut cells = book
                    .worksheet_cells_reader(&self.name)
                    .map_err(unreadable)?;
                while let Some(cell) = cells.next_cell().map_err(unreadable)? {
                    let at = cell.get_position();
                    let value = from_ref(cell.get_value().clone());
                    if rows.push(at, value, on_row)?.is_break() {
                        return Ok(());
                    }
                }
            }
            Book::Xlsb(book) => {
                let mut cells = book
                    .worksheet_cells_reader(&self.name)
                    .map_err(unreadable)?;
                while let Some(cell) = cells.next_cell().map_err(unreadable)? {
                    let at = cell.get_position();
                    let value = from_ref(cell.get_value().clone());
                    if rows.push(at, value, on_row)?.is_break() {
                        return Ok(());
                    }
                }
            }
            Book::Grid(grid) => {
                let (r0, c0) = grid.start().unwrap_or((0, 0));
                for (r, c, value) in grid.used_cells() {
                    let at = (r0 + r as u32, c0 + c as u32);
                    if rows.push(at, from_data(value), on_row)?.is_break() {
                        return Ok(());
                    }
                }
            }
        }
        // Stopped or not, this was the last row.
        let _ = rows.flush(on_row)?;
        Ok(())
    }

    fn scan(&mut self, limits: &Limits) -> Result<Scan, ImportError> {
        let max_cell = limits.max_cell_chars;
        let mut header: Option<BTreeMap<u32, String>> = None;
        let mut guesses: BTreeMap<u32, ColumnGuess> = BTreeMap::new();
        let (mut first, mut last) = (u32::MAX, 0u32);
        let mut rows: u64 = 0;
        let mut skipped: u64 = 0;
        self.each_row(&mut |row, cells| {
            let blank = cells.iter().all(|(_, c)| c.is_blank());
            if blank {
                skipped += u64::from(header.is_some());
                return Ok(ControlFlow::Continue(()));
            }
            for (col, cell) in cells {
                if let CellRef::Text(t) = cell {
                    check_cell(t, || Place::Cell { row, column: *col }, max_cell)?;
                }
                first = first.min(*col);
                last = last.max(*col);
                let span = u64::from(last - first) + 1;
                if span > limits.max_columns as u64 {
                    return Err(ImportError::TooManyColumns {
                        found: span,
                        max: limits.max_columns,
                        at: Some(Place::Cell { row, column: *col }),
                    });
                }
            }
            match &mut header {
                None => {
                    header = Some(
                        cells
                            .iter()
                            .map(|(c, cell)| (*c, cell.display().into_owned()))
                            .collect(),
                    );
                }
                Some(_) => {
                    rows += 1;
                    if rows > limits.max_rows {
                        return Err(ImportError::TooManyRows {
                            max: limits.max_rows,
                        });
                    }
                    for (col, cell) in cells {
                        guesses
                            .entry(*col)
                            .or_insert_with(|| ColumnGuess::preferring(limits.dates))
                            .push(cell);
                    }
                }
            }
            Ok(ControlFlow::Continue(()))
        })?;
        let header = header.ok_or(ImportError::Empty)?;
        if rows == 0 {
            return Err(ImportError::NoRows);
        }
        self.first_col = first;
        self.width = (last - first) as usize + 1;
        let names: Vec<String> = (first..=last)
            .map(|c| header.get(&c).cloned().unwrap_or_default())
            .collect();
        let columns = unique_names(&names, self.width)
            .into_iter()
            .zip(first..=last)
            .enumerate()
            .map(|(i, (name, col))| match guesses.get(&col) {
                Some(guess) => guess.finish_typed().column(format!("c{}", i + 1), name),
                None => Column::new(format!("c{}", i + 1), name, crate::table::ColumnType::Text),
            })
            .collect();
        Ok(Scan {
            columns,
            rows,
            empty_rows_skipped: skipped,
            delimiter: None,
            sheet: Some(self.name.clone()),
        })
    }

    pub(crate) fn rows(
        mut self,
        columns: &[Column],
        mut each: impl FnMut(Vec<Value>) -> ControlFlow<()>,
    ) -> Result<u64, ImportError> {
        let first = self.first_col;
        let width = self.width.min(columns.len());
        let mut seen_header = false;
        let mut count = 0;
        self.each_row(&mut |_, cells| {
            if cells.iter().all(|(_, c)| c.is_blank()) {
                return Ok(ControlFlow::Continue(()));
            }
            if !seen_header {
                seen_header = true;
                return Ok(ControlFlow::Continue(()));
            }
            let mut row = vec![Value::Null; width];
            for (col, cell) in cells {
                let i = (col - first) as usize;
                if let (Some(slot), Some(column)) = (row.get_mut(i), columns.get(i)) {
                    *slot = to_value(cell, column);
                }
            }
            count += 1;
            Ok(each(row))
        })?;
        Ok(count)
    }
}
