#!/usr/bin/env python3
"""Everyday endpoints under load (issue 18): throughput and latency of `GET /conversations`,
a 100-row page of a 10,000-row table, `POST /tables` (a 10-row table) and `GET /auth/me`,
beside `GET /healthz` in the same run, with wrk at 64 connections on SQLite. Every answer
must be 2xx (rate limits and quotas are off: one user from one address would otherwise be
throttled and the figure would be of 429s).

Usage: python3 bench/endpoints.py [--duration 10] [--connections 64] [--rounds 1]
Builds the release binary unless SHEETGPT_BENCH_NO_BUILD is set. Needs wrk.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tables import BIN, ROOT, call, free_port  # noqa: E402


def wrk(port, path, args, token=None, script=None):
    cmd = ["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", f"{args.duration}s",
           "--latency"]
    if token:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run(cmd + [f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True,
                         check=True).stdout
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad:
        sys.exit(f"{path}: {bad.group(1)} answers were not 2xx; the figure would be wrong\n{out}")
    errors = re.search(r"Socket errors: (.*)", out)
    if errors:
        sys.exit(f"{path}: socket errors {errors.group(1)}\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {p: re.search(rf"{p}%\s+([\d.]+\w+)", out).group(1) for p in ("50", "99")}
    return rps, lat


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install -y wrk")
    if not os.environ.get("SHEETGPT_BENCH_NO_BUILD"):
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "sheetgpt"], cwd=ROOT, check=True)
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = dict(os.environ, SHEETGPT_LISTEN=f"127.0.0.1:{port}", SHEETGPT_DATA_DIR=tmp,
                   SHEETGPT_LOG_LEVEL="warn", SHEETGPT_RATE_LIMITS__ENABLED="false")
        for k in ("SHEETGPT_DATABASE_URL", "SHEETGPT_BIN", "SHEETGPT_BENCH_NO_BUILD"):
            env.pop(k, None)
        proc = subprocess.Popen([BIN, "serve"], env=env, cwd=tmp, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        try:
            for _ in range(1000):
                try:
                    if call(port, "GET", "/readyz")[0] == 200:
                        break
                except OSError:
                    time.sleep(0.01)
            creds = {"email": "bench@example.com", "password": "correct horse battery staple"}
            call(port, "POST", "/api/v1/auth/register", creds)
            token = call(port, "POST", "/api/v1/auth/login", creds)[1]["access_token"]
            for i in range(20):
                status, _ = call(port, "POST", "/api/v1/conversations", {"title": f"talk {i}"}, token)
                assert status == 201, status
            rows = [{"id": i, "name": f"user {i}", "score": i * 0.5, "city": f"City {i % 50}"}
                    for i in range(10_000)]
            status, table = call(port, "POST", "/api/v1/tables", {"name": "ten thousand", "rows": rows}, token)
            assert status == 201, (status, table)
            tid = table["id"]
            status, page = call(port, "GET", f"/api/v1/tables/{tid}/rows?limit=100", token=token)
            assert status == 200 and len(page["rows"]) == 100, status
            # A page half-way down, by the cursor the previous page returned.
            cursor = page["next_cursor"]
            for _ in range(49):
                cursor = call(port, "GET", f"/api/v1/tables/{tid}/rows?limit=100&cursor={cursor}", token=token)[1]["next_cursor"]
            script = os.path.join(tmp, "create.lua")
            small = json.dumps({"name": "small", "rows": [{"a": i, "b": f"x{i}", "c": i / 4} for i in range(10)]})
            with open(script, "w") as f:
                f.write('wrk.method = "POST"\n'
                        f'wrk.body = {json.dumps(small)}\n'
                        'wrk.headers["Content-Type"] = "application/json"\n')
            routes = [
                ("GET /healthz", "/healthz", None, None),
                ("GET /api/v1/auth/me", "/api/v1/auth/me", token, None),
                ("GET /api/v1/conversations (20)", "/api/v1/conversations", token, None),
                ("GET rows page (100 of 10,000, row 5,000)", f"/api/v1/tables/{tid}/rows?limit=100&cursor={cursor}", token, None),
                ("POST /api/v1/tables (10 rows)", "/api/v1/tables", token, script),
            ]
            # Warm-up.
            wrk(port, "/healthz", argparse.Namespace(**{**vars(args), "duration": 2}))
            results = {name: [] for name, *_ in routes}
            for _ in range(args.rounds):
                for name, path, tok, scr in routes:
                    results[name].append(wrk(port, path, args, tok, scr))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    load = open("/proc/loadavg").read().split()[:3]
    print(f"== SheetGPT everyday endpoints (SQLite, release, wrk -t{args.threads} -c{args.connections} "
          f"-d{args.duration}s, {os.cpu_count()} cores shared with wrk; load after {' '.join(load)}) ==")
    for name, runs in results.items():
        figures = "; ".join(f"{rps:,.0f} req/s, p50 {lat['50']}, p99 {lat['99']}" for rps, lat in runs)
        print(f"{name:44} {figures}")


if __name__ == "__main__":
    main()
