#!/usr/bin/env python3
"""Foundation benchmark (issue 3): start-up time to /readyz, idle RSS, and GET /api/v1/auth/me
throughput and p99 with a JWT under 64 connections (wrk).

Usage: python3 bench/foundation.py [--duration 15] [--connections 64] [--runs 5]
Builds the release binary, runs it on SQLite in a temporary data dir, prints one summary.
Needs wrk (apt-get install wrk).
"""
import argparse
import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "sheetgpt")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def request(port, method, path, body=None, token=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, (json.loads(data) if data else None)


def start(data_dir, port):
    env = dict(os.environ)
    env.update(
        SHEETGPT_LISTEN=f"127.0.0.1:{port}",
        SHEETGPT_DATA_DIR=data_dir,
        SHEETGPT_LOG_LEVEL="warn",
        # The load comes from one address and one user: with the limits on, nearly every answer
        # would be a 429 (measured: 117,207 of 118,463), and the figure not what it says.
        SHEETGPT_RATE_LIMITS__ENABLED="false",
    )
    env.pop("SHEETGPT_DATABASE_URL", None)
    started = time.perf_counter()
    proc = subprocess.Popen([BIN, "serve"], env=env, cwd=data_dir,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        try:
            status, _ = request(port, "GET", "/readyz")
            if status == 200:
                return proc, time.perf_counter() - started
        except OSError:
            pass
        if proc.poll() is not None:
            sys.exit("server exited during start-up")
        time.sleep(0.002)


def stop(proc):
    proc.terminate()
    proc.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=15)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5, help="start-up measurements")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install -y wrk")
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "sheetgpt"], cwd=ROOT, check=True)

    with tempfile.TemporaryDirectory() as data_dir:
        # Start-up: the first start creates the database and the secret; later starts open it.
        cold = []
        warm = []
        for i in range(args.runs):
            fresh = os.path.join(data_dir, f"fresh{i}")
            os.makedirs(fresh)
            proc, t = start(fresh, free_port())
            cold.append(t)
            stop(proc)
            proc, t = start(fresh, free_port())
            warm.append(t)
            stop(proc)

        port = free_port()
        proc, _ = start(data_dir, port)
        time.sleep(1.0)
        idle_rss = rss_kib(proc.pid)
        creds = {"email": "bench@example.com", "password": "correct horse battery staple"}
        request(port, "POST", "/api/v1/auth/register", creds)
        _, tokens = request(port, "POST", "/api/v1/auth/login", creds)
        token = tokens["access_token"]
        status, _ = request(port, "GET", "/api/v1/auth/me", token=token)
        assert status == 200
        # Warm-up, then the measured run.
        subprocess.run(["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", "3s",
                        "-H", f"Authorization: Bearer {token}",
                        f"http://127.0.0.1:{port}/api/v1/auth/me"], capture_output=True, check=True)
        def load(path, headers=()):
            out = subprocess.run(["wrk", "-t", str(args.threads), "-c", str(args.connections),
                                  "-d", f"{args.duration}s", "--latency", *headers,
                                  f"http://127.0.0.1:{port}{path}"],
                                 capture_output=True, text=True, check=True).stdout
            bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
            if bad:
                sys.exit(f"{path}: {bad.group(1)} answers were not 2xx; the figure would be wrong\n{out}")
            return out
        # Beside the authenticated route, the cheapest one, in the same run.
        health = load("/healthz")
        out = load("/api/v1/auth/me", ("-H", f"Authorization: Bearer {token}"))
        loaded_rss = rss_kib(proc.pid)
        time.sleep(2.0)
        after_rss = rss_kib(proc.pid)
        stop(proc)

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+\w+)", out).group(1)
    p50 = re.search(r"50%\s+([\d.]+\w+)", out).group(1)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    print(out)
    print("== SheetGPT foundation benchmark ==")
    print(f"cores: {os.cpu_count()}  (wrk runs on the same machine: {args.threads} threads)")
    print(f"start to /readyz, fresh data dir (create db + migrate): median {statistics.median(cold)*1000:.0f} ms, max {max(cold)*1000:.0f} ms")
    print(f"start to /readyz, existing data dir:                   median {statistics.median(warm)*1000:.0f} ms, max {max(warm)*1000:.0f} ms")
    print(f"idle RSS after start: {idle_rss/1024:.1f} MiB; during load end: {loaded_rss/1024:.1f} MiB; 2 s after load: {after_rss/1024:.1f} MiB")
    print(f"GET /api/v1/auth/me, {args.connections} connections, {args.duration} s: {rps:,.0f} req/s, p50 {p50}, p99 {p99}")
    h_rps = float(re.search(r"Requests/sec:\s+([\d.]+)", health).group(1))
    h_p99 = re.search(r"99%\s+([\d.]+\w+)", health).group(1)
    print(f"GET /healthz, same run:                          {h_rps:,.0f} req/s, p99 {h_p99}")
    print(f"non-2xx: {non2xx.group(1) if non2xx else 0}; socket errors: {errors.group(1) if errors else 'none'}")


if __name__ == "__main__":
    main()
