#!/usr/bin/env python3
"""Long work as jobs (issue 13): a large CSV import and the account archive against the release
binary on SQLite, with the default request timeout (30 s). For each: the first answer (status,
seconds), then, when it is 202, the time until its job is done, and the server's peak RSS.

- archive table: `--archive-rows` (1,000,000) rows imported first (an upload that the server
  answers in time; on a build before jobs it is imported synchronously);
- large import: `--rows` (3,000,000) rows × 5 columns, within `tables.max_upload_bytes`;
- `GET /account/export` of the account (then holding both tables); a 202 is followed to the
  job's file, which is downloaded and checked to be a ZIP.

Usage: python3 bench/jobs.py [--rows 3000000] [--archive-rows 1000000]
Set SHEETGPT_BIN to measure another build (e.g. main's) with the same files.
"""
import argparse
import http.client
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tables import BIN, ROOT, call, free_port, status_kib  # noqa: E402


def write_csv(path, rows):
    with open(path, "w") as f:
        f.write("id,name,score,active,city\n")
        for i in range(1, rows + 1):
            f.write(f"{i},user {i},{(i * 37) % 1000}.5,{'true' if i % 2 else 'false'},City {i % 500}\n")


def upload(port, token, path, name):
    """Streams the file as a multipart upload; returns (status, body, seconds)."""
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            "Content-Type: text/csv\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    size = len(head) + os.path.getsize(path) + len(tail)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
    started = time.perf_counter()
    conn.putrequest("POST", "/api/v1/tables/import")
    conn.putheader("authorization", f"Bearer {token}")
    conn.putheader("content-type", f"multipart/form-data; boundary={boundary}")
    conn.putheader("content-length", str(size))
    conn.endheaders()
    conn.send(head)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            conn.send(chunk)
    conn.send(tail)
    resp = conn.getresponse()
    body = resp.read()
    secs = time.perf_counter() - started
    conn.close()
    try:
        body = json.loads(body)
    except ValueError:
        body = body[:200]
    return resp.status, body, secs


def follow(port, token, job, started):
    """Polls a job until it ends; returns (job, seconds since `started`)."""
    while job["status"] in ("queued", "running"):
        time.sleep(0.5)
        job = call(port, "GET", f"/api/v1/jobs/{job['id']}", token=token)[1]
    return job, time.perf_counter() - started


def get_raw(port, token, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
    started = time.perf_counter()
    conn.request("GET", path, headers={"authorization": f"Bearer {token}"})
    resp = conn.getresponse()
    body = resp.read()
    secs = time.perf_counter() - started
    conn.close()
    return resp.status, resp.getheader("content-type") or "", body, secs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=3_000_000)
    ap.add_argument("--archive-rows", type=int, default=1_000_000)
    args = ap.parse_args()
    if not os.environ.get("SHEETGPT_BENCH_NO_BUILD") and not os.environ.get("SHEETGPT_BIN"):
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "sheetgpt"], cwd=ROOT, check=True)
    print(f"== SheetGPT long work ({BIN}) ==")
    with tempfile.TemporaryDirectory() as tmp:
        small = os.path.join(tmp, "archive.csv")
        big = os.path.join(tmp, "big.csv")
        write_csv(small, args.archive_rows)
        write_csv(big, args.rows)
        port = free_port()
        env = dict(os.environ, SHEETGPT_LISTEN=f"127.0.0.1:{port}",
                   SHEETGPT_DATA_DIR=os.path.join(tmp, "data"), SHEETGPT_LOG_LEVEL="warn")
        for k in ("SHEETGPT_DATABASE_URL", "SHEETGPT_BIN", "SHEETGPT_BENCH_NO_BUILD"):
            env.pop(k, None)
        proc = subprocess.Popen([BIN, "serve"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
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
            print(f"server RSS at start {status_kib(proc.pid, 'VmRSS') / 1024:.0f} MiB")

            for label, path in ((f"import {args.archive_rows:,} rows", small),
                                (f"import {args.rows:,} rows", big)):
                started = time.perf_counter()
                status, body, secs = upload(port, token, path, os.path.basename(path))
                mib = os.path.getsize(path) / (1 << 20)
                line = f"{label} ({mib:.0f} MiB): {status} in {secs:.1f} s"
                if status == 202:
                    job, done = follow(port, token, body, started)
                    line += (f"; job {job['status']} after {done:.1f} s, "
                             f"{(job.get('result') or {}).get('rows')} rows")
                elif isinstance(body, dict):
                    line += f" ({body.get('code') or body.get('row_count')})"
                tables = call(port, "GET", "/api/v1/tables", token=token)[1]["items"]
                line += f"; tables now: {len(tables)}"
                line += f"; peak RSS {status_kib(proc.pid, 'VmHWM') / 1024:.0f} MiB"
                print(line, flush=True)

            rows = sum(t["row_count"] for t in call(port, "GET", "/api/v1/tables", token=token)[1]["items"])
            started = time.perf_counter()
            status, ctype, body, secs = get_raw(port, token, "/api/v1/account/export")
            line = f"GET /account/export ({rows:,} rows): {status} in {secs:.1f} s"
            if status == 202:
                job, done = follow(port, token, json.loads(body), started)
                line += f"; job {job['status']} after {done:.1f} s"
                if job["status"] == "succeeded":
                    status, ctype, body, secs = get_raw(port, token, job["download_url"])
                    line += f"; download {status} in {secs:.1f} s"
            if ctype == "application/zip":
                names = zipfile.ZipFile(io.BytesIO(body)).namelist()
                line += f"; ZIP {len(body) / (1 << 20):.0f} MiB: " + ", ".join(
                    n for n in names if n.startswith("tables/") and not n.endswith(".json"))
            line += f"; peak RSS {status_kib(proc.pid, 'VmHWM') / 1024:.0f} MiB"
            print(line, flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=60)


if __name__ == "__main__":
    sys.exit(main())
