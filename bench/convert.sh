#!/usr/bin/env bash
# `sheetgpt convert` of bench/tables.py's 1,000,000-row x 10-column CSV to .xlsx, the user's
# command, against Python's csv + XlsxWriter (constant_memory) on the same file, alternating
# (ROUNDS times each); wall time, peak RSS and file size of each. Also the floors: reading and
# typing the CSV alone (convert to .json into /dev/null is close: it types every cell) and
# deflating the sheet XML. Usage: bench/convert.sh [ROWS] [ROUNDS] [LEVELS...]
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
rounds=${2:-2}
shift $(( $# > 2 ? 2 : $# )) || true
levels=${*:-3}
python3 -c 'import xlsxwriter' 2>/dev/null || pip install -q XlsxWriter
[ -n "${SHEETGPT_BENCH_NO_BUILD:-}" ] || cargo build --release -q -p sheetgpt
# The server reads every SHEETGPT_ variable as configuration.
unset SHEETGPT_BENCH_NO_BUILD SHEETGPT_BIN
bin=${SHEETGPT_BIN:-target/release/sheetgpt}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
python3 - "$out/big.csv" "$rows" <<'PY'
import sys
sys.path.insert(0, "bench")
from tables import write_csv
write_csv(sys.argv[1], int(sys.argv[2]))
PY
echo "input: $(du -m "$out/big.csv" | cut -f1) MB, $rows rows; load $(cut -d' ' -f1-3 /proc/loadavg)"
measure() { # label, command...
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$out/time" "$@" > /dev/null
  read -r secs kib < "$out/time"
  printf '%-34s %7.2f s  peak RSS %5d MiB' "$label" "$secs" $((kib / 1024))
}
for round in $(seq "$rounds"); do
  for level in $levels; do
    measure "sheetgpt convert (level $level)" env SHEETGPT_DATA_DIR="$out/data" "$bin" convert "$out/big.csv" "$out/s.xlsx" --level "$level"
    echo "  $(du -k "$out/s.xlsx" | cut -f1) KiB"
  done
  measure "python csv + XlsxWriter" python3 bench/convert_python.py "$out/big.csv" "$out/p.xlsx"
  echo "  $(du -k "$out/p.xlsx" | cut -f1) KiB"
done
# Floors: reading and typing every cell (convert to CSV, whose writing is cheap), and
# deflating the sheet's XML at the same level (gzip, i.e. zlib's deflate).
measure "floor: read + type (convert to csv)" env SHEETGPT_DATA_DIR="$out/data" "$bin" convert "$out/big.csv" "$out/s.csv"
echo
(cd "$out" && unzip -q -o s.xlsx xl/worksheets/sheet1.xml)
for level in $levels; do
  measure "floor: deflate sheet XML (gzip -$level)" gzip "-$level" -k -f "$out/xl/worksheets/sheet1.xml"
  echo "  XML $(du -m "$out/xl/worksheets/sheet1.xml" | cut -f1) MB"
done
