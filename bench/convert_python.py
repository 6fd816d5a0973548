#!/usr/bin/env python3
"""The competitor of `sheetgpt convert big.csv out.xlsx`: the same CSV (bench/tables.py's
write_csv) read with Python's csv module and written by XlsxWriter in constant_memory mode,
each column typed as SheetGPT types it (told, not inferred: the competitor is given that work
for free). Usage: python3 bench/convert_python.py IN.csv OUT.xlsx"""
import csv
import datetime
import sys
import time

import xlsxwriter

src, out = sys.argv[1], sys.argv[2]
started = time.perf_counter()
wb = xlsxwriter.Workbook(out, {"constant_memory": True})
ws = wb.add_worksheet("Data")
bold = wb.add_format({"bold": True})
date = wb.add_format({"num_format": "yyyy-mm-dd"})
pct = wb.add_format({"num_format": "0%"})
with open(src, newline="") as f:
    reader = csv.reader(f)
    header = next(reader)
    for c, h in enumerate(header):
        ws.write_string(0, c, h, bold)
    ws.freeze_panes(1, 0)
    n = 0
    for n, row in enumerate(reader, start=1):
        ws.write_number(n, 0, int(row[0]))
        ws.write_string(n, 1, row[1])
        ws.write_datetime(n, 2, datetime.datetime.strptime(row[2], "%Y-%m-%d"), date)
        ws.write_number(n, 3, float(row[3]))
        ws.write_boolean(n, 4, row[4] == "true")
        ws.write_number(n, 5, float(row[5]))
        ws.write_number(n, 6, float(row[6][:-1]) / 100, pct)
        ws.write_string(n, 7, row[7])
        ws.write_string(n, 8, row[8])
        ws.write_string(n, 9, row[9])
    ws.autofilter(0, 0, n, len(header) - 1)
wb.close()
print(f"python csv + XlsxWriter constant_memory: {n} rows in {time.perf_counter() - started:.2f} s")
