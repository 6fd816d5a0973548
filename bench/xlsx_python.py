#!/usr/bin/env python3
"""The same table as crates/core/examples/bench_xlsx.rs, written by Python's XlsxWriter in
constant_memory mode (pip install XlsxWriter). Usage: python3 bench/xlsx_python.py ROWS OUT.xlsx"""
import datetime
import sys
import time

import xlsxwriter

rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
out = sys.argv[2] if len(sys.argv) > 2 else "bench_py.xlsx"
started = time.perf_counter()
wb = xlsxwriter.Workbook(out, {"constant_memory": True})
ws = wb.add_worksheet("Data")
bold = wb.add_format({"bold": True})
date = wb.add_format({"num_format": "yyyy-mm-dd"})
dt = wb.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
money = wb.add_format({"num_format": "#,##0.00"})
pct = wb.add_format({"num_format": "0.00%"})
for c, h in enumerate(["id", "name", "signup", "score", "active", "balance", "share", "email", "seen", "notes"]):
    ws.write_string(0, c, h, bold)
ws.freeze_panes(1, 0)
d0 = datetime.date(2000, 1, 1)
for i in range(1, rows + 1):
    day = d0 + datetime.timedelta(days=i % 9000)
    ws.write_number(i, 0, i)
    ws.write_string(i, 1, f"user {i}")
    ws.write_datetime(i, 2, day, date)
    ws.write_number(i, 3, (i % 1000) * 1.25)
    ws.write_boolean(i, 4, i % 2 == 0)
    ws.write_number(i, 5, (i * 7 % 1_000_000) / 100, money)
    ws.write_number(i, 6, (i % 100) / 100, pct)
    ws.write_string(i, 7, f"u{i}@example.com")
    ws.write_datetime(i, 8, datetime.datetime.combine(day, datetime.time(12, 30)), dt)
    ws.write_string(i, 9, f"note {i % 7}")
ws.autofilter(0, 0, rows, 9)
wb.close()
print(f"python XlsxWriter constant_memory: {rows} rows in {time.perf_counter() - started:.2f} s")
