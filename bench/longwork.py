#!/usr/bin/env python3
"""Whole-table work benchmark (issue 13): peak RSS and time of the server (release build,
SQLite) for the requests that touch every row of a 1,000,000-row x 10-column typed table:
- validation: GET /tables/{id}/validation with rules on five columns (unique, required,
  pattern, max), so every cell is checked;
- sort: one `sort` op by a random float column (every row moves);
- filter_delete: the rows whose `notes` is `note 3` (1/7 of them);
- change_type: the boolean column `active` to text (every cell changes);
- add_column: with the formula `balance * 2`;
- revert: back to the version with the rules (every row written again);
- diff: between the versions before and after the sort (every row compared).

Each request's peak is its own: the kernel's peak-RSS mark is reset (/proc/PID/clear_refs)
before it. A request answered with 202 (a job: the import of a large file, a change of every
row of a table past `tables.max_sync_rows`) is followed to the job's end and timed to it; the
time the request itself took is shown apart (`answered in`). The request timeout is raised so
that slow requests are measured rather than cut off; a request that took longer than the
default `http.request_timeout_secs` (30 s) is flagged.

Usage: python3 bench/longwork.py [--rows 1000000] [--only sort,diff] [--sort-memory-bytes N]
Set SHEETGPT_BIN to measure another build (e.g. main's) with the same table.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tables import BIN, ROOT, call, free_port, multipart, status_kib, write_csv  # noqa: E402

DEFAULT_TIMEOUT_SECS = 30


def reset_peak(pid):
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--sort-memory-bytes", type=int, default=None,
                    help="tables.sort_memory_bytes for the server (default: its own default)")
    ap.add_argument("--only", default=None,
                    help="comma-separated steps to run (validation,sort,filter_delete,"
                         "change_type,add_column,revert,diff); default: all")
    args = ap.parse_args()
    only = set(args.only.split(",")) if args.only else None
    if not os.environ.get("SHEETGPT_BENCH_NO_BUILD") and not os.environ.get("SHEETGPT_BIN"):
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "sheetgpt"], cwd=ROOT, check=True)
    print(f"== SheetGPT whole-table work, {args.rows} rows x 10 columns ({BIN}) ==")
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = os.path.join(tmp, "big.csv")
        write_csv(csv_path, args.rows)
        data_dir = os.path.join(tmp, "data")
        port = free_port()
        env = dict(os.environ, SHEETGPT_LISTEN=f"127.0.0.1:{port}", SHEETGPT_DATA_DIR=data_dir,
                   SHEETGPT_LOG_LEVEL="warn", SHEETGPT_HTTP__REQUEST_TIMEOUT_SECS="3600")
        if args.sort_memory_bytes is not None:
            env["SHEETGPT_TABLES__SORT_MEMORY_BYTES"] = str(args.sort_memory_bytes)
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
            def settle(status, answer):
                """The job's outcome for a 202: (200 and its result, or its status and error)."""
                if status != 202:
                    return status, answer
                while True:
                    _, job = call(port, "GET", f"/api/v1/jobs/{answer['id']}", token=token)
                    if job["status"] == "succeeded":
                        return 200, job["result"]
                    if job["status"] in ("failed", "cancelled"):
                        return job["status"], {"code": job["error"]}
                    time.sleep(0.2)

            body, ctype = multipart(csv_path, "big")
            started = time.perf_counter()
            status, answer = call(port, "POST", "/api/v1/tables/import", token=token,
                                  headers={"content-type": ctype}, raw=body)
            answered = time.perf_counter() - started
            status, result = settle(status, answer)
            assert status in (200, 201), (status, result)
            tid = result["table_id"] if "table_id" in result else result["id"]
            _, table = call(port, "GET", f"/api/v1/tables/{tid}", token=token)
            print(f"import: answered in {answered:.1f} s, done in "
                  f"{time.perf_counter() - started:.1f} s, "
                  f"types {[c['type'] for c in table['columns']]}")
            status, changed = call(port, "POST", f"/api/v1/tables/{tid}/changes", {"ops": [
                {"op": "set_rules", "column": "id", "rules": {"unique": True, "required": True}},
                {"op": "set_rules", "column": "name", "rules": {"unique": True}},
                {"op": "set_rules", "column": "email", "rules": {"pattern": "u[0-9]+@example\\.com"}},
                {"op": "set_rules", "column": "score", "rules": {"max": 900}},
                {"op": "set_rules", "column": "notes", "rules": {"required": True}},
            ]}, token=token)
            assert status == 201, (status, changed)
            ruled = changed["version"]

            results = []

            def measure(name, method, path, body=None, check=None):
                if only is not None and name not in only:
                    return None, None
                time.sleep(0.5)
                reset_peak(proc.pid)
                before = status_kib(proc.pid, "VmRSS")
                t = time.perf_counter()
                status, answer = call(port, method, path, body, token=token)
                answered = time.perf_counter() - t
                first = status
                status, answer = settle(status, answer)
                secs = time.perf_counter() - t
                peak = status_kib(proc.pid, "VmHWM")
                note = check(answer) if (check and status in (200, 201)) else (
                    answer.get("code") if isinstance(answer, dict) else "")
                results.append((name, status, secs, before, peak, note))
                how = f"job (answered {first} in {answered:.2f} s)" if first == 202 else str(status)
                print(f"{name:14} {how:28} {status} {secs:7.2f} s  RSS {before / 1024:6.0f} -> peak "
                      f"{peak / 1024:6.0f} MiB"
                      f"{'  REQUEST OVER 30 s' if answered > DEFAULT_TIMEOUT_SECS else ''}"
                      f"  {note}", flush=True)
                return status, answer

            def version(answer):
                return f"v{answer['version']}, {answer['rows_written']} written, " \
                       f"{answer['rows_deleted']} deleted"

            changes = f"/api/v1/tables/{tid}/changes"
            measure("validation", "GET", f"/api/v1/tables/{tid}/validation", check=lambda a:
                    f"{a['total']} violations")
            measure("sort", "POST", changes, {"ops": [
                {"op": "sort", "by": [{"column": "score", "desc": True}]}]}, version)
            sorted_version = ruled + 1
            measure("filter_delete", "POST", changes, {"ops": [
                {"op": "filter_delete", "filter": {"column": "notes", "cmp": "eq",
                                                   "value": "note 3"}}]}, version)
            measure("change_type", "POST", changes, {"ops": [
                {"op": "change_type", "column": "active", "to": "text"}]}, version)
            measure("add_column", "POST", changes, {"ops": [
                {"op": "add_column", "name": "double", "formula": "balance * 2"}]}, version)
            measure("revert", "POST", f"/api/v1/tables/{tid}/revert", {"version": ruled}, version)
            measure("diff", "GET", f"/api/v1/tables/{tid}/diff?from={ruled}&to={sorted_version}",
                    check=lambda a: f"{a['rows_moved']} rows moved")
            alive = proc.poll() is None
            print(f"server still up: {alive}")
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
