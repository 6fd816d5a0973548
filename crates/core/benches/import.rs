//! Import throughput of the core reader (both passes: inference over every cell, then every
//! row as values), on the rows `bench/tables.py` uploads: 200,000 rows x 10 columns of
//! integers, text, dates, decimals, booleans, percents and e-mail addresses, in memory, so
//! that what is measured is the reading and typing, not the disk or the database.

use std::fmt::Write;
use std::hint::black_box;
use std::io::Cursor;
use std::ops::ControlFlow;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sheetgpt_core::import::{Import, Limits, Source};

const ROWS: u64 = 200_000;

fn csv() -> Vec<u8> {
    let mut out = String::from("id,name,signup,score,active,balance,share,email,city,notes\n");
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for i in 1..=ROWS {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let day = 1 + i % 28;
        let month = 1 + i % 12;
        let _ = writeln!(
            out,
            "{i},user {i},20{:02}-{month:02}-{day:02},{}.{:03},{},{}.{:02},{}%,u{i}@example.com,City {},note {}",
            i % 24,
            x % 1000,
            (x >> 10) % 1000,
            if i % 2 == 1 { "true" } else { "false" },
            (x >> 20) % 100_000,
            (x >> 40) % 100,
            i % 100,
            i % 500,
            i % 7
        );
    }
    out.into_bytes()
}

fn bench_import(c: &mut Criterion) {
    let bytes = csv();
    let mut group = c.benchmark_group("import");
    group.throughput(Throughput::Elements(ROWS));
    group.sample_size(10);
    group.bench_function("csv_200k_rows_10_columns", |b| {
        b.iter(|| {
            let import = Import::open(
                Cursor::new(bytes.as_slice()),
                &Source::Delimited { delimiter: None },
                &Limits::default(),
            )
            .unwrap_or_else(|e| panic!("{e}"));
            let mut n = 0u64;
            import
                .rows(|row| {
                    n += row.len() as u64;
                    black_box(row);
                    ControlFlow::Continue(())
                })
                .unwrap_or_else(|e| panic!("{e}"));
            black_box(n)
        });
    });
    group.finish();
}

criterion_group!(benches, bench_import);
criterion_main!(benches);
