//! An external merge sort of a `sort` change's keys: entries are held in memory up to a
//! budget in bytes (`tables.sort_memory_bytes`); past it each sorted run is written to a
//! temporary file and the runs are merged, so a table of any size is sorted in bounded
//! memory. The files are removed when the sorter (or a merge) is dropped, on error too.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use chrono::{NaiveDate, NaiveDateTime};
use rust_decimal::Decimal;
use sheetgpt_core::table::{Money, Value};
use sheetgpt_core::version::{RowId, compare_sort_values};
use tempfile::NamedTempFile;

/// One row's place in a sort: its key cells (one per sort column), position and id.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub keys: Box<[Value]>,
    pub position: i64,
    pub id: RowId,
    /// The row's stored cells (JSON), carried through the sort so that writing the rows in
    /// their new order reads nothing back from the database.
    pub data: String,
}

impl Entry {
    /// Bytes the entry takes in memory (its heap parts included), for the budget.
    fn weight(&self) -> u64 {
        let heap: usize = self
            .keys
            .iter()
            .map(|v| match v {
                Value::Url(s) | Value::Email(s) | Value::Text(s) => s.capacity(),
                Value::Currency(m) => m.currency.capacity(),
                _ => 0,
            })
            .sum();
        (std::mem::size_of::<Self>()
            + std::mem::size_of_val(&*self.keys)
            + heap
            + self.data.capacity()
            + 16) as u64
    }
}

/// The directions of the sort keys; compares entries as `version::apply` orders rows.
#[derive(Clone, Debug)]
pub struct Order(pub Vec<bool>);

impl Order {
    pub fn cmp(&self, a: &Entry, b: &Entry) -> Ordering {
        for ((x, y), desc) in a.keys.iter().zip(b.keys.iter()).zip(&self.0) {
            let ord = compare_sort_values(x, y, *desc);
            if ord.is_ne() {
                return ord;
            }
        }
        (a.position, a.id).cmp(&(b.position, b.id))
    }
}

/// Runs merged at once; more are merged in passes.
const FAN_IN: usize = 64;

pub struct Sorter {
    dir: PathBuf,
    budget: u64,
    order: Order,
    buffer: Vec<Entry>,
    held: u64,
    runs: Vec<NamedTempFile>,
}

impl Sorter {
    pub fn new(dir: &Path, budget: u64, order: Order) -> Self {
        Self {
            dir: dir.to_owned(),
            budget,
            order,
            buffer: Vec::new(),
            held: 0,
            runs: Vec::new(),
        }
    }

    /// Whether the buffer is over budget and should be spilled before more entries come.
    pub fn full(&self) -> bool {
        self.held >= self.budget
    }

    pub fn push(&mut self, entry: Entry) {
        self.held += entry.weight();
        self.buffer.push(entry);
    }

    /// Sorts the buffer and writes it out as a run (blocking: call off the async runtime).
    pub fn spill(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let mut buffer = std::mem::take(&mut self.buffer);
        self.held = 0;
        buffer.sort_by(|a, b| self.order.cmp(a, b));
        let run = write_run(&self.dir, buffer.into_iter())?;
        self.runs.push(run);
        Ok(())
    }

    /// Runs written so far.
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    /// All entries in order (blocking: call off the async runtime).
    pub fn finish(mut self) -> io::Result<Sorted> {
        if self.runs.is_empty() {
            let mut buffer = std::mem::take(&mut self.buffer);
            buffer.sort_by(|a, b| self.order.cmp(a, b));
            return Ok(Sorted::Memory(buffer.into_iter()));
        }
        self.spill()?;
        let mut runs = std::mem::take(&mut self.runs);
        while runs.len() > FAN_IN {
            let mut next = Vec::with_capacity(runs.len() / FAN_IN + 1);
            let mut rest = runs.into_iter().peekable();
            while rest.peek().is_some() {
                let group: Vec<NamedTempFile> = rest.by_ref().take(FAN_IN).collect();
                let merge = Merge::new(group, self.order.clone())?;
                next.push(write_run(&self.dir, merge.map_while(Result::ok))?);
            }
            runs = next;
        }
        Ok(Sorted::Merge(Merge::new(runs, self.order.clone())?))
    }
}

/// The sorted entries: from memory, or merged from runs on disk.
pub enum Sorted {
    Memory(std::vec::IntoIter<Entry>),
    Merge(Merge),
}

impl Sorted {
    /// Up to `n` next entries.
    pub fn take(&mut self, n: usize) -> io::Result<Vec<Entry>> {
        match self {
            Self::Memory(it) => Ok(it.by_ref().take(n).collect()),
            Self::Merge(m) => m.by_ref().take(n).collect(),
        }
    }
}

struct Head {
    entry: Entry,
    run: usize,
    order: std::sync::Arc<Order>,
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap is a max-heap: the smallest entry must compare greatest.
        self.order.cmp(&other.entry, &self.entry)
    }
}

/// A k-way merge of sorted runs; its files are removed when it is dropped.
pub struct Merge {
    readers: Vec<BufReader<std::fs::File>>,
    heap: BinaryHeap<Head>,
    order: std::sync::Arc<Order>,
    _files: Vec<NamedTempFile>,
}

impl Merge {
    fn new(files: Vec<NamedTempFile>, order: Order) -> io::Result<Self> {
        let order = std::sync::Arc::new(order);
        let mut readers = Vec::with_capacity(files.len());
        for f in &files {
            readers.push(BufReader::with_capacity(64 * 1024, f.reopen()?));
        }
        let mut merge = Self {
            readers,
            heap: BinaryHeap::new(),
            order,
            _files: files,
        };
        for run in 0..merge.readers.len() {
            merge.refill(run)?;
        }
        Ok(merge)
    }

    fn refill(&mut self, run: usize) -> io::Result<()> {
        if let Some(entry) = read_entry(&mut self.readers[run])? {
            self.heap.push(Head {
                entry,
                run,
                order: self.order.clone(),
            });
        }
        Ok(())
    }
}

impl Iterator for Merge {
    type Item = io::Result<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        let head = self.heap.pop()?;
        if let Err(e) = self.refill(head.run) {
            return Some(Err(e));
        }
        Some(Ok(head.entry))
    }
}

fn write_run(dir: &Path, entries: impl Iterator<Item = Entry>) -> io::Result<NamedTempFile> {
    let file = tempfile::Builder::new()
        .prefix("sort-run-")
        .tempfile_in(dir)?;
    let mut w = BufWriter::with_capacity(64 * 1024, file.as_file());
    for e in entries {
        write_entry(&mut w, &e)?;
    }
    w.flush()?;
    drop(w);
    Ok(file)
}

// The run format: per entry, the key count (u32), each key (a tag byte and its payload), the
// position and the id (i64). Little-endian throughout; lossless for every value.

fn write_entry(w: &mut impl Write, e: &Entry) -> io::Result<()> {
    w.write_all(&(e.keys.len() as u32).to_le_bytes())?;
    for v in e.keys.iter() {
        write_value(w, v)?;
    }
    w.write_all(&e.position.to_le_bytes())?;
    w.write_all(&e.id.to_le_bytes())?;
    write_str(w, &e.data)
}

fn write_str(w: &mut impl Write, s: &str) -> io::Result<()> {
    w.write_all(&(s.len() as u32).to_le_bytes())?;
    w.write_all(s.as_bytes())
}

fn write_value(w: &mut impl Write, v: &Value) -> io::Result<()> {
    match v {
        Value::Null => w.write_all(&[0]),
        Value::Integer(i) => {
            w.write_all(&[1])?;
            w.write_all(&i.to_le_bytes())
        }
        Value::Decimal(d) => {
            w.write_all(&[2])?;
            w.write_all(&d.serialize())
        }
        Value::Float(f) => {
            w.write_all(&[3])?;
            w.write_all(&f.to_bits().to_le_bytes())
        }
        Value::Boolean(b) => w.write_all(&[4, u8::from(*b)]),
        Value::Date(d) => {
            w.write_all(&[5])?;
            write_str(w, &d.format("%Y-%m-%d").to_string())
        }
        Value::Datetime(dt) => {
            w.write_all(&[6])?;
            write_str(w, &dt.format("%Y-%m-%dT%H:%M:%S%.f").to_string())
        }
        Value::Currency(m) => {
            w.write_all(&[7])?;
            w.write_all(&m.amount.serialize())?;
            write_str(w, &m.currency)
        }
        Value::Percent(d) => {
            w.write_all(&[8])?;
            w.write_all(&d.serialize())
        }
        Value::Url(s) => {
            w.write_all(&[9])?;
            write_str(w, s)
        }
        Value::Email(s) => {
            w.write_all(&[10])?;
            write_str(w, s)
        }
        Value::Text(s) => {
            w.write_all(&[11])?;
            write_str(w, s)
        }
    }
}

fn bytes<const N: usize>(r: &mut impl Read) -> io::Result<[u8; N]> {
    let mut b = [0u8; N];
    r.read_exact(&mut b)?;
    Ok(b)
}

fn read_string(r: &mut impl Read) -> io::Result<String> {
    let len = u32::from_le_bytes(bytes(r)?) as usize;
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf)?;
    String::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("sort run: {what}"))
}

fn read_value(r: &mut impl Read) -> io::Result<Value> {
    let [tag] = bytes::<1>(r)?;
    Ok(match tag {
        0 => Value::Null,
        1 => Value::Integer(i64::from_le_bytes(bytes(r)?)),
        2 => Value::Decimal(Decimal::deserialize(bytes(r)?)),
        3 => Value::Float(f64::from_bits(u64::from_le_bytes(bytes(r)?))),
        4 => Value::Boolean(bytes::<1>(r)?[0] != 0),
        5 => Value::Date(
            NaiveDate::parse_from_str(&read_string(r)?, "%Y-%m-%d").map_err(|_| bad("date"))?,
        ),
        6 => Value::Datetime(
            NaiveDateTime::parse_from_str(&read_string(r)?, "%Y-%m-%dT%H:%M:%S%.f")
                .map_err(|_| bad("datetime"))?,
        ),
        7 => {
            let amount = Decimal::deserialize(bytes(r)?);
            Value::Currency(Money {
                amount,
                currency: read_string(r)?,
            })
        }
        8 => Value::Percent(Decimal::deserialize(bytes(r)?)),
        9 => Value::Url(read_string(r)?),
        10 => Value::Email(read_string(r)?),
        11 => Value::Text(read_string(r)?),
        _ => return Err(bad("unknown tag")),
    })
}

/// The next entry of a run, or None at its end.
fn read_entry(r: &mut impl Read) -> io::Result<Option<Entry>> {
    let mut count = [0u8; 4];
    match r.read_exact(&mut count) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let n = u32::from_le_bytes(count) as usize;
    let mut keys = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        keys.push(read_value(r)?);
    }
    Ok(Some(Entry {
        keys: keys.into_boxed_slice(),
        position: i64::from_le_bytes(bytes(r)?),
        id: i64::from_le_bytes(bytes(r)?),
        data: read_string(r)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: Value, id: RowId) -> Entry {
        Entry {
            keys: vec![key].into_boxed_slice(),
            position: id * 10,
            id,
            data: format!("{{\"row\": {id}}}"),
        }
    }

    fn sorted(budget: u64, entries: &[Entry], desc: bool) -> (Vec<RowId>, usize) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Sorter::new(dir.path(), budget, Order(vec![desc]));
        for e in entries {
            s.push(e.clone());
            if s.full() {
                s.spill().unwrap();
            }
        }
        let runs = s.runs();
        let mut out = s.finish().unwrap();
        let mut ids = Vec::new();
        loop {
            let batch = out.take(7).unwrap();
            if batch.is_empty() {
                break;
            }
            ids.extend(batch.iter().map(|e| e.id));
        }
        drop(out);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "runs removed"
        );
        (ids, runs)
    }

    #[test]
    fn runs_on_disk_merge_to_the_order_of_the_in_memory_sort() {
        let values = [
            Value::Text("pear".into()),
            Value::Null,
            Value::Text("Apple".into()),
            Value::Text("apple".into()),
            Value::Text("zebra".into()),
            Value::Null,
            Value::Text("banana".into()),
        ];
        let entries: Vec<Entry> = (0..300)
            .map(|i| {
                entry(
                    values[(i * 7 + i / 3) % values.len()].clone(),
                    i as RowId + 1,
                )
            })
            .collect();
        for desc in [false, true] {
            let (memory, runs) = sorted(u64::MAX, &entries, desc);
            assert_eq!(runs, 0);
            // One entry a run: 300 runs, merged in passes of FAN_IN.
            let (disk, runs) = sorted(1, &entries, desc);
            assert_eq!(runs, 300);
            assert_eq!(memory, disk);
            let (some, runs) = sorted(2_000, &entries, desc);
            assert!(runs > 1 && runs < 300, "{runs}");
            assert_eq!(memory, some);
        }
    }

    #[test]
    fn runs_are_removed_when_a_sort_is_abandoned() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Sorter::new(dir.path(), 1, Order(vec![false]));
        for id in 0..10 {
            s.push(entry(Value::Integer(10 - id), id));
            s.spill().unwrap();
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 10);
        drop(s); // a change refused after its keys were spilled
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let mut s = Sorter::new(dir.path(), 1, Order(vec![false]));
        for id in 0..10 {
            s.push(entry(Value::Integer(id), id));
            s.spill().unwrap();
        }
        let mut merged = s.finish().unwrap();
        assert_eq!(merged.take(3).unwrap().len(), 3);
        drop(merged); // a merge given up half-way
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn every_value_reads_back_as_written() {
        let values = vec![
            Value::Null,
            Value::Integer(-7),
            Value::Decimal(Decimal::new(12345, 3)),
            Value::Float(f64::NAN),
            Value::Float(-0.5),
            Value::Boolean(true),
            Value::Date(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()),
            Value::Datetime(
                NaiveDate::from_ymd_opt(2024, 2, 29)
                    .unwrap()
                    .and_hms_micro_opt(23, 59, 1, 250)
                    .unwrap(),
            ),
            Value::Currency(Money {
                amount: Decimal::new(-995, 2),
                currency: "EUR".into(),
            }),
            Value::Percent(Decimal::new(125, 1)),
            Value::Url("https://example.com/ä".into()),
            Value::Email("a@b.example".into()),
            Value::Text("\"quoted\" ✓".into()),
        ];
        let e = Entry {
            keys: values.clone().into_boxed_slice(),
            position: i64::MAX,
            id: 42,
            data: r#"{"c1": "ä ✓"}"#.to_owned(),
        };
        let mut buf = Vec::new();
        write_entry(&mut buf, &e).unwrap();
        let back = read_entry(&mut buf.as_slice()).unwrap().unwrap();
        assert_eq!(back.position, i64::MAX);
        assert_eq!(back.id, 42);
        assert_eq!(back.data, r#"{"c1": "ä ✓"}"#);
        for (a, b) in values.iter().zip(back.keys.iter()) {
            match (a, b) {
                (Value::Float(x), Value::Float(y)) => assert_eq!(x.to_bits(), y.to_bits()),
                _ => assert_eq!(a, b),
            }
        }
        assert!(read_entry(&mut [].as_slice()).unwrap().is_none());
    }
}
