//! What a workbook would cost to read, checked before calamine opens it.
//!
//! calamine trusts the file: it inflates zip parts as far as they go, holds the shared
//! strings in memory, reserves memory by counts the file declares, lets its XML parser buffer
//! a whole text or tag however long, and for XLS and ODS builds a dense grid of every sheet's
//! bounding box. A few kilobytes can ask for gigabytes (and an allocation that fails aborts
//! the process). So the file is first read here, in constant memory, and refused when:
//! - a zip has more than [`MAX_ZIP_ENTRIES`] entries (the central directory is held in memory);
//! - the parts calamine reads (`.xml`, `.rels`, `.bin`) declare, or actually inflate to, more
//!   than `max_inflated_bytes` together, or one inflates past its declared size (every part is
//!   inflated here through a counting reader: declared sizes alone are not trusted);
//! - the shared strings part is larger than `max_shared_strings_bytes`, declares far more
//!   strings than it holds, or holds one string longer than any cell may be;
//! - a piece of XML that a parser buffers whole (a text, a tag, a comment) or an XLSB record
//!   is longer than [`max_run`] (a cell at the character limit, written with escapes, and room
//!   for markup): a 400 MB string is refused here, never inflated into memory;
//! - an ODS sheet (its repeated rows and columns expanded, as calamine does) or an XLS sheet
//!   (declared dimensions and the cells present) spans more than `max_sheet_cells` cells.
//!
//! Cells themselves (characters, NUL) are checked exactly later, as they are read.

use std::io::{BufReader, Read, Seek, SeekFrom};

use super::{ImportError, Limits};

/// The signature of a compound file (XLS).
pub(crate) const CFB_MAGIC: [u8; 8] = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

/// A workbook has tens of parts (hundreds with many sheets or images); the zip reader keeps
/// an entry in memory for each one listed.
pub(crate) const MAX_ZIP_ENTRIES: u64 = 10_000;

/// Spreadsheets' own bounds (Excel's grid), used where calamine caps repeats.
const SHEET_ROWS: u64 = 1_048_576;
const SHEET_COLUMNS: u64 = 16_384;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Xlsx,
    Xlsb,
    Ods,
    Xls,
}

/// The longest piece of XML (or XLSB record) accepted: a cell of `max_cell_chars` characters
/// each written as the longest escape (`&#x10FFFF;`, 10 bytes), plus 64 KiB for markup.
pub(crate) fn max_run(limits: &Limits) -> u64 {
    (limits.max_cell_chars as u64)
        .saturating_mul(10)
        .saturating_add(64 * 1024)
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_000_000.0)
}

/// Checks `input` and tells what kind of workbook it is. Leaves the position anywhere.
pub(crate) fn check<R: Read + Seek>(input: &mut R, limits: &Limits) -> Result<Kind, ImportError> {
    let mut head = [0u8; 8];
    input.seek(SeekFrom::Start(0))?;
    let n = read_up_to(input, &mut head)?;
    let head = &head[..n];
    if head.starts_with(b"PK\x03\x04") {
        check_zip(input, limits)
    } else if head.starts_with(&CFB_MAGIC) {
        check_xls(input, limits)?;
        Ok(Kind::Xls)
    } else {
        Err(ImportError::NotASpreadsheet(
            "it is neither a zipped workbook (XLSX, XLSB, ODS) nor an XLS file".to_owned(),
        ))
    }
}

fn read_up_to<R: Read>(input: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// The number of entries the zip's end records declare, read before the zip reader builds
/// its index of them.
fn zip_entries<R: Read + Seek>(input: &mut R) -> Result<u64, ImportError> {
    let not_zip = || ImportError::NotASpreadsheet("its zip directory cannot be found".to_owned());
    let len = input.seek(SeekFrom::End(0))?;
    let tail_len = len.min(22 + 65_535);
    input.seek(SeekFrom::Start(len - tail_len))?;
    let mut tail = vec![0u8; tail_len as usize];
    input.read_exact(&mut tail)?;
    let at = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| tail[i..].starts_with(b"PK\x05\x06"))
        .ok_or_else(not_zip)?;
    let u16_at = |b: &[u8], i: usize| u64::from(u16::from_le_bytes([b[i], b[i + 1]]));
    let count = u16_at(&tail, at + 10);
    if count != 0xFFFF {
        return Ok(count);
    }
    // Zip64: the locator just before the end record points to the zip64 end record.
    let locator = at.checked_sub(20).ok_or_else(not_zip)?;
    if !tail[locator..].starts_with(b"PK\x06\x07") {
        return Err(not_zip());
    }
    let mut offset = [0u8; 8];
    offset.copy_from_slice(&tail[locator + 8..locator + 16]);
    input.seek(SeekFrom::Start(u64::from_le_bytes(offset)))?;
    let mut record = [0u8; 56];
    input.read_exact(&mut record).map_err(|_| not_zip())?;
    if !record.starts_with(b"PK\x06\x06") {
        return Err(not_zip());
    }
    let mut count = [0u8; 8];
    count.copy_from_slice(&record[32..40]);
    Ok(u64::from_le_bytes(count))
}

/// A part's name as calamine looks it up.
fn normalized(name: &str) -> String {
    name.replace('\\', "/").to_ascii_lowercase()
}

fn check_zip<R: Read + Seek>(input: &mut R, limits: &Limits) -> Result<Kind, ImportError> {
    let entries = zip_entries(input)?;
    if entries > MAX_ZIP_ENTRIES {
        return Err(ImportError::TooLarge(format!(
            "the workbook has {entries} parts; at most {MAX_ZIP_ENTRIES} are read"
        )));
    }
    input.seek(SeekFrom::Start(0))?;
    let mut zip = zip::ZipArchive::new(&mut *input)
        .map_err(|e| ImportError::NotASpreadsheet(format!("its zip cannot be read ({e})")))?;
    let unreadable = |e: zip::result::ZipError| {
        ImportError::NotASpreadsheet(format!("its zip cannot be read ({e})"))
    };
    let names: Vec<String> = zip
        .file_names()
        .map(|n| n.map(|n| normalized(&n)))
        .collect::<Result<_, _>>()
        .map_err(unreadable)?;
    let kind = if names.iter().any(|n| n == "xl/workbook.bin") {
        Kind::Xlsb
    } else if names.iter().any(|n| n == "content.xml") {
        Kind::Ods
    } else {
        Kind::Xlsx
    };
    // Declared sizes first: refuse what claims too much before inflating anything.
    let mut parts = Vec::new();
    let mut declared_total: u64 = 0;
    for i in 0..zip.len() {
        let entry = zip.by_index_raw(i).map_err(unreadable)?;
        let name = normalized(&entry.name().map_err(unreadable)?);
        if entry.is_dir()
            || !(name.ends_with(".xml") || name.ends_with(".rels") || name.ends_with(".bin"))
        {
            continue;
        }
        let size = entry.size();
        declared_total = declared_total.saturating_add(size);
        if declared_total > limits.max_inflated_bytes {
            return Err(inflated_too_much(limits));
        }
        let shared = name.ends_with("sharedstrings.xml") || name.ends_with("sharedstrings.bin");
        if shared && size > limits.max_shared_strings_bytes {
            return Err(shared_too_large(limits));
        }
        parts.push((i, name, size, shared));
    }
    let run = max_run(limits);
    for (i, name, declared, shared) in parts {
        let entry = zip.by_index(i).map_err(|e| {
            ImportError::NotASpreadsheet(format!("part {name} cannot be read ({e})"))
        })?;
        let mut part = entry.take(declared.saturating_add(1));
        let mut actual: u64 = 0;
        let mut buf = vec![0u8; 64 * 1024];
        let mut scanner = if name.ends_with(".bin") {
            Scanner::Records(RecordScan::new(run))
        } else {
            Scanner::Xml(Box::new(XmlScan::new(
                run,
                shared,
                kind == Kind::Ods && name == "content.xml",
                limits.max_sheet_cells,
            )))
        };
        loop {
            let n = part.read(&mut buf).map_err(|e| {
                ImportError::NotASpreadsheet(format!("part {name} cannot be inflated ({e})"))
            })?;
            if n == 0 {
                break;
            }
            actual += n as u64;
            if actual > declared {
                return Err(ImportError::NotASpreadsheet(format!(
                    "part {name} inflates to more than the {declared} bytes it declares"
                )));
            }
            match &mut scanner {
                Scanner::Xml(x) => x.feed(&buf[..n], &name)?,
                Scanner::Records(r) => r.feed(&buf[..n], &name)?,
            }
        }
        if let Scanner::Xml(x) = &scanner {
            x.finish(&name)?;
        }
    }
    Ok(kind)
}

fn inflated_too_much(limits: &Limits) -> ImportError {
    ImportError::TooLarge(format!(
        "the workbook inflates to more than {}; at most {} are read",
        mb(limits.max_inflated_bytes),
        mb(limits.max_inflated_bytes)
    ))
}

fn shared_too_large(limits: &Limits) -> ImportError {
    ImportError::TooLarge(format!(
        "the workbook's shared strings take more than {}; at most {} are read",
        mb(limits.max_shared_strings_bytes),
        mb(limits.max_shared_strings_bytes)
    ))
}

fn run_too_long(name: &str, run: u64) -> ImportError {
    ImportError::TooLarge(format!(
        "part {name} holds a text or tag longer than {run} bytes, more than any cell may hold"
    ))
}

enum Scanner {
    Xml(Box<XmlScan>),
    Records(RecordScan),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum XmlState {
    Text,
    Markup,
}

/// A streaming look at XML: the length of every event a parser would buffer, and the few
/// tags whose attributes cost memory (shared strings' count, ODS repeats).
struct XmlScan {
    max_run: u64,
    state: XmlState,
    /// Bytes of the current text or markup.
    len: u64,
    /// The current markup's bytes (up to `max_run`, which bounds it anyway).
    tag: Vec<u8>,
    quote: u8,
    brackets: i64,
    last: [u8; 2],
    shared: Option<SharedStrings>,
    ods: Option<OdsCells>,
}

#[derive(Default)]
struct SharedStrings {
    declared: u64,
    seen: u64,
    in_string: bool,
    text: u64,
}

impl XmlScan {
    fn new(max_run: u64, shared: bool, ods: bool, max_cells: u64) -> Self {
        Self {
            max_run,
            state: XmlState::Text,
            len: 0,
            tag: Vec::new(),
            quote: 0,
            brackets: 0,
            last: [0; 2],
            shared: shared.then(SharedStrings::default),
            ods: ods.then(|| OdsCells::new(max_cells)),
        }
    }

    fn feed(&mut self, mut bytes: &[u8], name: &str) -> Result<(), ImportError> {
        while !bytes.is_empty() {
            match self.state {
                XmlState::Text => {
                    let end = bytes.iter().position(|&b| b == b'<');
                    let n = end.unwrap_or(bytes.len());
                    self.len += n as u64;
                    if let Some(s) = self.shared.as_mut().filter(|s| s.in_string) {
                        s.text += n as u64;
                        if s.text > self.max_run {
                            return Err(run_too_long(name, self.max_run));
                        }
                    }
                    if self.len > self.max_run {
                        return Err(run_too_long(name, self.max_run));
                    }
                    match end {
                        Some(i) => {
                            self.state = XmlState::Markup;
                            self.len = 1;
                            self.tag.clear();
                            self.quote = 0;
                            self.brackets = 0;
                            self.last = [0; 2];
                            bytes = &bytes[i + 1..];
                        }
                        None => bytes = &[],
                    }
                }
                XmlState::Markup => {
                    let mut consumed = bytes.len();
                    let mut ended = false;
                    for (i, &b) in bytes.iter().enumerate() {
                        if b == b'>' && self.markup_ends() {
                            consumed = i + 1;
                            ended = true;
                            break;
                        }
                        match b {
                            b'"' | b'\'' if self.is_plain_tag() => {
                                if self.quote == 0 {
                                    self.quote = b;
                                } else if self.quote == b {
                                    self.quote = 0;
                                }
                            }
                            b'[' => self.brackets += 1,
                            b']' => self.brackets -= 1,
                            _ => {}
                        }
                        self.last = [self.last[1], b];
                        if (self.tag.len() as u64) < self.max_run {
                            self.tag.push(b);
                        }
                    }
                    self.len += consumed as u64;
                    if self.len > self.max_run {
                        return Err(run_too_long(name, self.max_run));
                    }
                    bytes = &bytes[consumed..];
                    if ended {
                        self.end_markup()?;
                        self.state = XmlState::Text;
                        self.len = 0;
                    }
                }
            }
        }
        Ok(())
    }

    fn is_plain_tag(&self) -> bool {
        !self.tag.starts_with(b"!") && !self.tag.starts_with(b"?")
    }

    /// Whether a `>` now ends the markup (comments, CDATA and processing instructions end
    /// only with their own terminators; quotes may hold `>` in a tag).
    fn markup_ends(&self) -> bool {
        let t = &self.tag;
        if t.starts_with(b"!--") {
            t.len() >= 5 && &self.last == b"--"
        } else if t.starts_with(b"![CDATA[") {
            t.len() >= 10 && &self.last == b"]]"
        } else if t.starts_with(b"?") {
            t.len() >= 2 && self.last[1] == b'?'
        } else if t.starts_with(b"!") {
            self.brackets <= 0
        } else {
            self.quote == 0
        }
    }

    fn end_markup(&mut self) -> Result<(), ImportError> {
        let tag = std::mem::take(&mut self.tag);
        if !self.is_plain_tag_bytes(&tag) {
            self.tag = tag;
            return Ok(());
        }
        let closing = tag.first() == Some(&b'/');
        let body = if closing { &tag[1..] } else { &tag[..] };
        let name_end = body
            .iter()
            .position(|b| b.is_ascii_whitespace() || *b == b'/')
            .unwrap_or(body.len());
        let full = &body[..name_end];
        let local = full
            .iter()
            .rposition(|&b| b == b':')
            .map_or(full, |i| &full[i + 1..]);
        let empty = !closing && tag.last() == Some(&b'/');
        if let Some(s) = &mut self.shared {
            match (local, closing) {
                (b"sst", false) => {
                    s.declared = attr_u64(body, b"uniqueCount").unwrap_or(0);
                }
                (b"si", false) => {
                    s.seen += 1;
                    s.in_string = !empty;
                    s.text = 0;
                }
                (b"si", true) => s.in_string = false,
                _ => {}
            }
        }
        if let Some(ods) = &mut self.ods {
            ods.tag(full, body, closing, empty)?;
        }
        self.tag = tag;
        self.tag.clear();
        Ok(())
    }

    fn is_plain_tag_bytes(&self, tag: &[u8]) -> bool {
        !tag.starts_with(b"!") && !tag.starts_with(b"?")
    }

    fn finish(&self, name: &str) -> Result<(), ImportError> {
        if let Some(s) = &self.shared {
            // calamine reserves room for the declared count up front; a file that declares
            // far more strings than it holds would make it reserve gigabytes for nothing.
            if s.declared > s.seen.saturating_mul(2).saturating_add(1024) {
                return Err(ImportError::NotASpreadsheet(format!(
                    "part {name} declares {} shared strings but holds {}",
                    s.declared, s.seen
                )));
            }
        }
        Ok(())
    }
}

/// The value of attribute `name` in a tag's bytes, as a number.
fn attr_u64(tag: &[u8], name: &[u8]) -> Option<u64> {
    let mut from = 0;
    while let Some(i) = find(&tag[from..], name) {
        let at = from + i;
        let before_ok = at == 0 || tag[at - 1].is_ascii_whitespace();
        let rest = &tag[at + name.len()..];
        let rest = rest.strip_prefix(b"=").map(|r| {
            r.strip_prefix(b"\"")
                .or_else(|| r.strip_prefix(b"'"))
                .unwrap_or(r)
        });
        if let (true, Some(rest)) = (before_ok, rest) {
            let digits: Vec<u8> = rest
                .iter()
                .copied()
                .take_while(u8::is_ascii_digit)
                .collect();
            // Saturate: a count too long for u64 is as large as a count gets.
            return Some(
                std::str::from_utf8(&digits)
                    .ok()
                    .and_then(|d| d.parse().ok())
                    .unwrap_or(if digits.is_empty() { 0 } else { u64::MAX }),
            );
        }
        from = at + 1;
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn has_attr(tag: &[u8], name: &[u8]) -> bool {
    let mut from = 0;
    while let Some(i) = find(&tag[from..], name) {
        let at = from + i;
        if (at == 0 || tag[at - 1].is_ascii_whitespace()) && tag.get(at + name.len()) == Some(&b'=')
        {
            return true;
        }
        from = at + 1;
    }
    false
}

/// The cells calamine's ODS reader would hold: per sheet, the bounding box of the cells with
/// content, repeated rows and columns expanded (it caps repeats at the sheet's grid, as here).
struct OdsCells {
    max: u64,
    total: u64,
    row: u64,
    row_repeats: u64,
    col: u64,
    row_first: Option<u64>,
    row_end: u64,
    first_row: Option<u64>,
    last_row_end: u64,
    col_min: u64,
    col_max_end: u64,
    pushed: u64,
}

impl OdsCells {
    fn new(max: u64) -> Self {
        Self {
            max,
            total: 0,
            row: 0,
            row_repeats: 1,
            col: 0,
            row_first: None,
            row_end: 0,
            first_row: None,
            last_row_end: 0,
            col_min: u64::MAX,
            col_max_end: 0,
            pushed: 0,
        }
    }

    fn too_many(&self) -> ImportError {
        ImportError::TooLarge(format!(
            "the workbook's sheets span more than {} cells (repeated rows and columns \
             included); at most {} are read from an ODS file",
            self.max, self.max
        ))
    }

    fn tag(
        &mut self,
        name: &[u8],
        body: &[u8],
        closing: bool,
        empty: bool,
    ) -> Result<(), ImportError> {
        match (name, closing) {
            (b"table:table", false) => {
                self.row = 0;
                self.first_row = None;
                self.last_row_end = 0;
                self.col_min = u64::MAX;
                self.col_max_end = 0;
            }
            (b"table:table", true) => {
                if let Some(first) = self.first_row {
                    let rows = self.last_row_end.saturating_sub(first);
                    let cols = self.col_max_end.saturating_sub(self.col_min);
                    self.total = self.total.saturating_add(rows.saturating_mul(cols));
                }
                if self.total > self.max {
                    return Err(self.too_many());
                }
            }
            (b"table:table-row", false) => {
                self.row_repeats = attr_u64(body, b"table:number-rows-repeated")
                    .unwrap_or(1)
                    .clamp(1, SHEET_ROWS);
                self.col = 0;
                self.row_first = None;
                self.row_end = 0;
                if empty {
                    self.end_row()?;
                }
            }
            (b"table:table-row", true) => self.end_row()?,
            (b"table:table-cell" | b"table:covered-table-cell", false) => {
                let repeats = attr_u64(body, b"table:number-columns-repeated")
                    .unwrap_or(1)
                    .clamp(1, SHEET_COLUMNS);
                let content = !empty
                    || has_attr(body, b"office:value-type")
                    || has_attr(body, b"table:formula");
                let end = self.col.saturating_add(repeats).min(SHEET_COLUMNS);
                if content {
                    self.row_first.get_or_insert(self.col);
                    self.row_end = end;
                }
                self.col = end;
            }
            _ => {}
        }
        Ok(())
    }

    fn end_row(&mut self) -> Result<(), ImportError> {
        if let Some(first) = self.row_first {
            self.first_row.get_or_insert(self.row);
            self.last_row_end = self.row.saturating_add(self.row_repeats);
            self.col_min = self.col_min.min(first);
            self.col_max_end = self.col_max_end.max(self.row_end);
            self.pushed = self.pushed.saturating_add(self.row_end);
            let so_far = self
                .last_row_end
                .saturating_sub(self.first_row.unwrap_or(0))
                .saturating_mul(self.col_max_end.saturating_sub(self.col_min));
            if self.pushed > self.max || self.total.saturating_add(so_far) > self.max {
                return Err(self.too_many());
            }
        }
        self.row = self.row.saturating_add(self.row_repeats);
        self.row_repeats = 1;
        Ok(())
    }
}

/// XLSB parts are records: a type (1–2 bytes) and a length (1–4 bytes, 7 bits each), then
/// the data, which calamine reads whole into a buffer.
struct RecordScan {
    max_run: u64,
    state: RecordState,
}

enum RecordState {
    Type { bytes: u8 },
    Len { bytes: u8, value: u64 },
    Skip { left: u64 },
}

impl RecordScan {
    fn new(max_run: u64) -> Self {
        Self {
            max_run,
            state: RecordState::Type { bytes: 0 },
        }
    }

    fn feed(&mut self, mut bytes: &[u8], name: &str) -> Result<(), ImportError> {
        while let Some((&b, rest)) = bytes.split_first() {
            match &mut self.state {
                RecordState::Type { bytes: n } => {
                    *n += 1;
                    bytes = rest;
                    if b & 0x80 == 0 || *n == 2 {
                        self.state = RecordState::Len { bytes: 0, value: 0 };
                    }
                }
                RecordState::Len { bytes: n, value } => {
                    *value |= u64::from(b & 0x7F) << (7 * u32::from(*n));
                    *n += 1;
                    bytes = rest;
                    if b & 0x80 == 0 || *n == 4 {
                        let len = *value;
                        if len > self.max_run {
                            return Err(run_too_long(name, self.max_run));
                        }
                        self.state = if len == 0 {
                            RecordState::Type { bytes: 0 }
                        } else {
                            RecordState::Skip { left: len }
                        };
                    }
                }
                RecordState::Skip { left } => {
                    let n = (*left).min(bytes.len() as u64);
                    *left -= n;
                    bytes = &bytes[n as usize..];
                    if *left == 0 {
                        self.state = RecordState::Type { bytes: 0 };
                    }
                }
            }
        }
        Ok(())
    }
}

/// XLS: calamine parses every sheet at open, reserving room for each sheet's declared
/// dimensions and then building the dense grid of the cells present. Both are bounded here by
/// walking the workbook stream's records (four bytes of header each) without keeping them.
fn check_xls<R: Read + Seek>(input: &mut R, limits: &Limits) -> Result<(), ImportError> {
    input.seek(SeekFrom::Start(0))?;
    let not_xls = |e: std::io::Error| {
        ImportError::NotASpreadsheet(format!("its compound file cannot be read ({e})"))
    };
    let mut file = cfb::CompoundFile::open(&mut *input).map_err(not_xls)?;
    let stream = match file.open_stream("/Workbook") {
        Ok(s) => s,
        Err(_) => file.open_stream("/Book").map_err(not_xls)?,
    };
    let mut stream = BufReader::with_capacity(64 * 1024, stream);
    let too_many = || {
        ImportError::TooLarge(format!(
            "the workbook's sheets span more than {} cells; at most {} are read from an XLS file",
            limits.max_sheet_cells, limits.max_sheet_cells
        ))
    };
    let mut total: u64 = 0;
    let mut depth = 0u32;
    let mut bbox: Option<(u64, u64, u64, u64)> = None;
    let mut header = [0u8; 4];
    let mut data = vec![0u8; 0xFFFF];
    loop {
        let n = read_up_to(&mut stream, &mut header)?;
        if n < 4 {
            break;
        }
        let typ = u16::from_le_bytes([header[0], header[1]]);
        let len = usize::from(u16::from_le_bytes([header[2], header[3]]));
        let got = read_up_to(&mut stream, &mut data[..len])?;
        let r = &data[..got];
        let u16_at = |i: usize| {
            r.get(i..i + 2)
                .map(|b| u64::from(u16::from_le_bytes([b[0], b[1]])))
        };
        let u32_at = |i: usize| {
            r.get(i..i + 4)
                .map(|b| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
        };
        match typ {
            0x0809 => {
                depth += 1;
                if depth == 1 {
                    bbox = None;
                }
            }
            0x000A => {
                if depth == 1
                    && let Some((r0, r1, c0, c1)) = bbox.take()
                {
                    total = total.saturating_add((r1 - r0 + 1).saturating_mul(c1 - c0 + 1));
                    if total > limits.max_sheet_cells {
                        return Err(too_many());
                    }
                }
                depth = depth.saturating_sub(1);
            }
            // Dimensions, read as calamine does; it reserves rows × columns cells.
            0x0200 => {
                let dims = match r.len() {
                    10 => (u16_at(0), u16_at(2), u16_at(4), u16_at(6)),
                    14 | 16 => (u32_at(0), u32_at(4), u16_at(8), u16_at(10)),
                    _ => continue,
                };
                let (Some(rf), Some(rl), Some(cf), Some(cl)) = dims else {
                    continue;
                };
                // calamine: a first column past 0xFF, or after the last, means 0.
                let cf = if cf > 0xFF || cl < cf { 0 } else { cf };
                let (end_r, end_c) = if rl >= 1 && cl >= 1 {
                    (rl - 1, cl - 1)
                } else {
                    (rf, cf)
                };
                if end_r < rf || end_c < cf {
                    return Err(ImportError::NotASpreadsheet(
                        "a sheet declares dimensions that end before they start".to_owned(),
                    ));
                }
                let declared = (end_r - rf + 1).saturating_mul(end_c - cf + 1);
                if total.saturating_add(declared) > limits.max_sheet_cells {
                    return Err(too_many());
                }
            }
            // Cell records: row and column first; MulRk ends with its last column.
            0x0203 | 0x0204 | 0x00D6 | 0x0205 | 0x027E | 0x00FD | 0x00BD | 0x0006 => {
                let (Some(row), Some(col)) = (u16_at(0), u16_at(2)) else {
                    continue;
                };
                let last = if typ == 0x00BD {
                    r.len()
                        .checked_sub(2)
                        .and_then(u16_at)
                        .unwrap_or(col)
                        .max(col)
                } else {
                    col
                };
                let b = bbox.get_or_insert((row, row, col, last));
                *b = (b.0.min(row), b.1.max(row), b.2.min(col), b.3.max(last));
                let cells = (b.1 - b.0 + 1).saturating_mul(b.3 - b.2 + 1);
                if total.saturating_add(cells) > limits.max_sheet_cells {
                    return Err(too_many());
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xml(text: &str, run: u64) -> Result<(), ImportError> {
        let mut scan = XmlScan::new(run, true, false, 0);
        // Fed in small pieces: state must carry over between chunks.
        for chunk in text.as_bytes().chunks(3) {
            scan.feed(chunk, "x.xml")?;
        }
        scan.finish("x.xml")
    }

    #[test]
    fn xml_texts_and_tags_are_bounded_whatever_the_chunks() {
        assert!(xml("<sst uniqueCount=\"1\"><si><t>abcdef</t></si></sst>", 25).is_ok());
        assert!(xml("<sst><si><t>abcdefghijklmnopqrstu</t></si></sst>", 20).is_err());
        assert!(
            xml(
                "<sst><si><r><t>abcdefghijk</t></r><r><t>abcdefghijk</t></r></si></sst>",
                20
            )
            .is_err(),
            "the runs of one string add up"
        );
        assert!(
            xml("<a b=\"x > y\"/>", 20).is_ok(),
            "a quoted > does not end the tag"
        );
        assert!(xml("<a b=\"x > yyyyyyyyyyyyyyyyyyy\"/>", 20).is_err());
        assert!(xml("<!-- a <b> c -->", 20).is_ok());
        assert!(xml("<!-- a <b> cccccccccccccccccccc -->", 20).is_err());
    }

    #[test]
    fn a_shared_string_table_that_declares_far_more_strings_than_it_holds_is_refused() {
        assert!(xml("<sst uniqueCount=\"1000\"><si><t>a</t></si></sst>", 100).is_ok());
        assert!(
            xml(
                "<sst uniqueCount=\"99999999999999999999\"><si><t>a</t></si></sst>",
                100
            )
            .is_err()
        );
    }

    #[test]
    fn ods_repeats_are_expanded_only_between_cells_with_content() {
        let count = |text: &str, max: u64| {
            let mut scan = XmlScan::new(1 << 20, false, true, max);
            scan.feed(text.as_bytes(), "content.xml")
        };
        // Formatting that repeats to the end of the grid holds nothing: not counted.
        let trailing = "<table:table><table:table-row><table:table-cell office:value-type=\"float\"><text:p>1</text:p></table:table-cell>\
            <table:table-cell table:number-columns-repeated=\"16383\"/></table:table-row>\
            <table:table-row table:number-rows-repeated=\"1048575\"><table:table-cell table:number-columns-repeated=\"16384\"/></table:table-row></table:table>";
        assert!(count(trailing, 10).is_ok());
        let wide = "<table:table><table:table-row table:number-rows-repeated=\"1000\"><table:table-cell office:value-type=\"float\" table:number-columns-repeated=\"1000\"/></table:table-row></table:table>";
        assert!(count(wide, 1_000_000).is_ok());
        assert!(count(wide, 999_999).is_err());
    }

    #[test]
    fn xlsb_records_longer_than_the_bound_are_refused() {
        let mut scan = RecordScan::new(100);
        // type 0x13, length 100 (one byte), then 100 bytes.
        let mut ok = vec![0x13, 100];
        ok.extend(std::iter::repeat_n(0u8, 100));
        assert!(scan.feed(&ok, "s.bin").is_ok());
        // type 0x13, length 0x81 0x01 = 129.
        assert!(scan.feed(&[0x13, 0x81, 0x01], "s.bin").is_err());
    }
}
