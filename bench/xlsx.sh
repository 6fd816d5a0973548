#!/usr/bin/env bash
# XLSX writer benchmark: sheetgpt-core's writer against Python's XlsxWriter (constant_memory)
# on the same typed table, at 100k and 1M rows; wall time and peak RSS of each.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c 'import xlsxwriter' 2>/dev/null || pip install -q XlsxWriter
cargo build --release -q -p sheetgpt-core --example bench_xlsx
out=$(mktemp -d)
for n in 100000 1000000; do
  /usr/bin/time -f "  peak RSS %M KB" target/release/examples/bench_xlsx "$n" "$out/rust.xlsx"
  /usr/bin/time -f "  peak RSS %M KB" python3 bench/xlsx_python.py "$n" "$out/python.xlsx"
done
rm -rf "$out"
