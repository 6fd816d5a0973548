#!/usr/bin/env python3
"""Tables benchmark (issue 5): import of a 1,000,000-row x 10-column CSV (time and peak RSS of
the server, SQLite), reading page 5,000 of its rows, and a one-cell change on it (time and
storage per change).

Usage: python3 bench/tables.py [--rows 1000000] [--repeat 30]
Builds the release binary, runs it on SQLite in a temporary data dir, prints a summary.
"""
import argparse
import datetime
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("SHEETGPT_BIN", os.path.join(ROOT, "target", "release", "sheetgpt"))
STEP = 1 << 20  # row position step (sheetgpt_core::version::POSITION_STEP)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


def call(port, method, path, body=None, token=None, headers=None, raw=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    h = dict(headers or {})
    if token:
        h["authorization"] = f"Bearer {token}"
    data = raw
    if body is not None:
        h["content-type"] = "application/json"
        data = json.dumps(body)
    conn.request(method, path, body=data, headers=h)
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    return resp.status, (json.loads(payload) if payload else None)


def write_csv(path, rows):
    random.seed(1)
    d0 = datetime.date(2000, 1, 1)
    with open(path, "w") as f:
        f.write("id,name,signup,score,active,balance,share,email,city,notes\n")
        for i in range(1, rows + 1):
            f.write(
                f"{i},user {i},{d0 + datetime.timedelta(days=i % 9000)},{random.random() * 1000:.3f},"
                f"{'true' if i % 2 else 'false'},{random.randint(0, 10**7) / 100:.2f},{i % 100}%,"
                f"u{i}@example.com,City {i % 500},note {i % 7}\n"
            )


def multipart(path, name):
    boundary = uuid.uuid4().hex
    with open(path, "rb") as f:
        content = f.read()
    head = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n{name}\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.csv\"\r\n"
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    return head + content + tail, f"multipart/form-data; boundary={boundary}"


def db_bytes(data_dir):
    """Logical size of the SQLite database (pages in use, WAL included) and row versions."""
    import sqlite3
    con = sqlite3.connect(os.path.join(data_dir, "sheetgpt.db"))
    try:
        pages = con.execute("PRAGMA page_count").fetchone()[0] - con.execute("PRAGMA freelist_count").fetchone()[0]
        size = pages * con.execute("PRAGMA page_size").fetchone()[0]
        versions = con.execute("SELECT COUNT(*) FROM table_rows").fetchone()[0]
        return size, versions
    finally:
        con.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--downloads", type=int, default=2)
    args = ap.parse_args()
    if not os.environ.get("SHEETGPT_BENCH_NO_BUILD"):
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "sheetgpt"], cwd=ROOT, check=True)
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = os.path.join(tmp, "big.csv")
        write_csv(csv_path, args.rows)
        csv_mb = os.path.getsize(csv_path) / 1e6
        data_dir = os.path.join(tmp, "data")
        port = free_port()
        env = dict(os.environ, SHEETGPT_LISTEN=f"127.0.0.1:{port}", SHEETGPT_DATA_DIR=data_dir,
                   SHEETGPT_LOG_LEVEL="warn")
        for k in ("SHEETGPT_DATABASE_URL", "SHEETGPT_BIN", "SHEETGPT_BENCH_NO_BUILD"):
            env.pop(k, None)
        proc = subprocess.Popen([BIN, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(500):
                try:
                    if call(port, "GET", "/readyz")[0] == 200:
                        break
                except OSError:
                    time.sleep(0.01)
            creds = {"email": "bench@example.com", "password": "correct horse battery staple"}
            call(port, "POST", "/api/v1/auth/register", creds)
            token = call(port, "POST", "/api/v1/auth/login", creds)[1]["access_token"]
            body, ctype = multipart(csv_path, "big")
            rss_before = status_kib(proc.pid, "VmRSS")
            started = time.perf_counter()
            status, table = call(port, "POST", "/api/v1/tables/import", token=token,
                                 headers={"content-type": ctype}, raw=body)
            answered_s = time.perf_counter() - started
            if status == 202:
                # Past `tables.import_sync_bytes` the import is a job: followed as a user would.
                job_id = table["id"]
                while True:
                    _, job = call(port, "GET", f"/api/v1/jobs/{job_id}", token=token)
                    if job["status"] in ("succeeded", "failed", "cancelled"):
                        break
                    time.sleep(0.05)
                assert job["status"] == "succeeded", job
                status, table = call(port, "GET", f"/api/v1/tables/{job['result']['table_id']}",
                                     token=token)
                assert status == 200, (status, table)
            else:
                assert status == 201, (status, table)
            import_s = time.perf_counter() - started
            peak_rss = status_kib(proc.pid, "VmHWM")
            tid = table["id"]
            types = [c["type"] for c in table["columns"]]

            # Page 5,000 at 100 rows a page: the cursor after row 499,900.
            limit = 100
            page = 5000
            cursor = f"p{(page - 1) * limit * STEP}"
            times = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                status, rows = call(port, "GET", f"/api/v1/tables/{tid}/rows?limit={limit}&cursor={cursor}", token=token)
                times.append((time.perf_counter() - t) * 1000)
                assert status == 200 and rows["rows"][0]["id"] == (page - 1) * limit + 1, rows
            page_ms = statistics.median(times)
            page_p95 = sorted(times)[int(len(times) * 0.95) - 1]

            # Deep pages of the table sorted by a column (issue 18): the first page of a sort
            # computes the view's order, every later page anywhere in it is a slice of it.
            half = args.rows // 2
            # The first page of a sort: the database's top-N.
            t = time.perf_counter()
            status, rows = call(port, "GET", f"/api/v1/tables/{tid}/rows?limit={limit}&sort=balance:desc", token=token)
            top_ms = (time.perf_counter() - t) * 1000
            assert status == 200 and len(rows["rows"]) == limit, rows
            sorted_first = {}
            for key in ("score:desc", "city"):
                t = time.perf_counter()
                status, rows = call(port, "GET", f"/api/v1/tables/{tid}/rows?limit={limit}&sort={key}&cursor=o{half}", token=token)
                sorted_first[key] = (time.perf_counter() - t) * 1000
                assert status == 200 and len(rows["rows"]) == limit, rows
            sorted_times = []
            for _ in range(args.repeat):
                offset = random.randint(0, args.rows - limit)
                t = time.perf_counter()
                status, rows = call(port, "GET", f"/api/v1/tables/{tid}/rows?limit={limit}&sort=score:desc&cursor=o{offset}", token=token)
                sorted_times.append((time.perf_counter() - t) * 1000)
                assert status == 200 and len(rows["rows"]) == limit, rows
                s = [float(r["cells"][3]) for r in rows["rows"]]
                assert s == sorted(s, reverse=True), s
            sorted_ms = statistics.median(sorted_times)
            sorted_p95 = sorted(sorted_times)[int(len(sorted_times) * 0.95) - 1]

            # The stored table downloaded as .xlsx over HTTP against `sheetgpt convert` of the
            # same CSV (issue 18: within 1.25x), alternating, in this run.
            download_s, convert_s = [], []
            for _ in range(args.downloads):
                t = time.perf_counter()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
                conn.request("GET", f"/api/v1/tables/{tid}/download?format=xlsx",
                             headers={"authorization": f"Bearer {token}"})
                resp = conn.getresponse()
                size = 0
                while chunk := resp.read(1 << 20):
                    size += len(chunk)
                conn.close()
                download_s.append(time.perf_counter() - t)
                assert resp.status == 200 and size > 0, resp.status
                xlsx_mb = size / 1e6
                t = time.perf_counter()
                subprocess.run([BIN, "convert", csv_path, os.path.join(tmp, "c.xlsx")], check=True,
                               env=dict(env, SHEETGPT_DATA_DIR=os.path.join(tmp, "convert")),
                               stdout=subprocess.DEVNULL)
                convert_s.append(time.perf_counter() - t)

            # The same as an export job (queued, written by a worker, downloaded), as a user
            # who wants the file later does it.
            export_s = []
            for _ in range(args.downloads):
                t = time.perf_counter()
                status, job = call(port, "POST", "/api/v1/exports", {"table_id": tid, "format": "xlsx"}, token)
                assert status == 202, (status, job)
                while True:
                    _, job = call(port, "GET", f"/api/v1/exports/{job['id']}", token=token)
                    if job["status"] in ("succeeded", "failed", "cancelled"):
                        break
                    time.sleep(0.05)
                assert job["status"] == "succeeded", job
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
                conn.request("GET", f"/api/v1/exports/{job['id']}/download",
                             headers={"authorization": f"Bearer {token}"})
                resp = conn.getresponse()
                got = len(resp.read())
                conn.close()
                assert resp.status == 200 and got > 0, resp.status
                export_s.append(time.perf_counter() - t)

            # One-cell changes, each a new version.
            before = db_bytes(data_dir)
            change_times = []
            version = table["version"]
            for i in range(args.repeat):
                row = random.randint(1, args.rows)
                t = time.perf_counter()
                status, res = call(port, "POST", f"/api/v1/tables/{tid}/changes", token=token,
                                   headers={"if-match": f'"{version}"'},
                                   body={"ops": [{"op": "set_cells", "cells": [{"row": row, "column": "score", "value": i}]}]})
                change_times.append((time.perf_counter() - t) * 1000)
                assert status == 201, res
                version = res["version"]
            after = db_bytes(data_dir)
            grown = after[0] - before[0]
            new_versions = after[1] - before[1]
            change_ms = statistics.median(change_times)
            final_rss = status_kib(proc.pid, "VmRSS")
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    print("== SheetGPT tables benchmark (SQLite, release) ==")
    print(f"CSV: {args.rows:,} rows x 10 columns, {csv_mb:.0f} MB; inferred types: {', '.join(types)}")
    print(f"import (upload + 2 parse passes + insert; answered in {answered_s:.2f} s): {import_s:.2f} s; server peak RSS {peak_rss/1024:.0f} MiB "
          f"(before {rss_before/1024:.0f} MiB, after {final_rss/1024:.0f} MiB)")
    print(f"rows page {page:,} ({limit} rows): median {page_ms:.2f} ms, p95 {page_p95:.2f} ms (HTTP round trip)")
    print(f"sorted view, first page (sort=balance:desc, the database's top-N): {top_ms:.0f} ms")
    print(f"sorted view, page at row {half:,}: first request (computes the order) "
          + ", ".join(f"sort={k} {v:.0f} ms" for k, v in sorted_first.items())
          + f"; then any depth (random offsets, sort=score:desc): median {sorted_ms:.2f} ms, p95 {sorted_p95:.2f} ms")
    print(f"download as .xlsx over HTTP ({xlsx_mb:.0f} MB): " + ", ".join(f"{x:.2f}" for x in download_s)
          + " s; sheetgpt convert of the CSV, alternating: " + ", ".join(f"{x:.2f}" for x in convert_s)
          + f" s; ratio {statistics.median(download_s) / statistics.median(convert_s):.2f}x")
    print("export job (.xlsx: queued, written, downloaded): " + ", ".join(f"{x:.2f}" for x in export_s)
          + f" s; ratio to convert {statistics.median(export_s) / statistics.median(convert_s):.2f}x")
    print(f"one-cell change: median {statistics.median(change_times):.2f} ms, max {max(change_times):.2f} ms; "
          f"{new_versions} row versions written; database grew {grown/1024:.1f} KiB over {args.repeat} changes "
          f"({grown/args.repeat/1024:.2f} KiB each)")


if __name__ == "__main__":
    sys.exit(main())
