#!/usr/bin/python3
"""The Redis checkpoint store against the raw server, measured in one run and
printed as a Markdown table of medians.

Starts a redis-server on a free loopback port (no persistence, a temporary
directory), then measures against it, for 4 KiB, 1 MiB and 100 MiB values:

- the store: RedisStore put, get, and get_checked (how a worker reads an
  image: head and size first, then the value), from
  build/bench/kappa_redis_store_bench (one operation per Google Benchmark
  repetition, so the median is the median operation);
- the raw server, without the store layer (same binary, same runs): a client
  on its own socket that sends SET from the caller's bytes and receives GET
  into a buffer it reuses (no allocation), up to the reply's last byte; and
  plain hiredis (redisCommandArgv and its reply objects);
- redis-benchmark: `redis-benchmark -t set,get -d SIZE -n N -c 1`, its p50.
  It times a command from its first byte sent to the reply's first byte
  received: the whole upload for SET, but for GET only until the value starts
  to arrive, so its GET figures leave out the transfer of the value.

The machine may be shared: all are measured in alternation, in --rounds
rounds of N operations each, and each figure is the median over the rounds
of the per-round medians. "store / raw" is the store's figure over the raw
socket's; the goal is at most 1.2 from 1 MiB up.

    /usr/bin/python3 bench/redis_store_bench.py [--build DIR] [--rounds R]
"""

import argparse
import csv
import io
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZES = [(4 << 10, "4 KiB", 2000), (1 << 20, "1 MiB", 100), (100 << 20, "100 MiB", 3)]


def free_port():
    while True:
        port = random.randint(10000, 30000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                pass


def start_redis(port, workdir):
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", workdir,
         "--save", "", "--appendonly", "no", "--logfile", ""],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(500):
        try:
            out = subprocess.run(["redis-cli", "-p", str(port), "PING"], capture_output=True,
                                 text=True, timeout=2).stdout
            if out.strip() == "PONG":
                return proc
        except subprocess.TimeoutExpired:
            pass
        time.sleep(0.02)
    proc.kill()
    sys.exit("redis-server did not start")


def store_and_hiredis(binary, port, size, n):
    """Medians (ms) of n operations of each benchmark at `size`."""
    out = subprocess.run(
        [binary, "--benchmark_format=json", f"--benchmark_repetitions={n}",
         "--benchmark_report_aggregates_only=true", f"--benchmark_filter=/bytes:{size}/"],
        env={**os.environ, "KAPPA_BENCH_REDIS": f"redis://127.0.0.1:{port}"},
        capture_output=True, text=True, check=True).stdout
    medians = {}
    for b in json.loads(out)["benchmarks"]:
        if b.get("aggregate_name") == "median":
            medians[b["run_name"].split("/")[0]] = b["real_time"] / 1000.0
    return medians


def redis_benchmark(port, size, n):
    out = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-t", "set,get", "-d", str(size), "-n", str(n),
         "-c", "1", "--csv"], capture_output=True, text=True, check=True).stdout
    p50 = {}
    for row in csv.DictReader(io.StringIO(out)):
        p50[row["test"]] = float(row["p50_latency_ms"])
    return p50


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    binary = os.path.join(args.build, "bench", "kappa_redis_store_bench")
    if not os.access(binary, os.X_OK):
        sys.exit(f"{binary} not found: build the project first")
    for tool in ("redis-server", "redis-cli", "redis-benchmark"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found (scripts/setup.sh installs redis-server)")

    workdir = tempfile.mkdtemp(prefix="kappa-redis-bench-")
    port = free_port()
    server = start_redis(port, workdir)
    rounds = {}  # (size, name) -> per-round medians
    try:
        for _ in range(args.rounds):
            for size, _, n in SIZES:
                for name, ms in redis_benchmark(port, size, n).items():
                    rounds.setdefault((size, name), []).append(ms)
                for name, ms in store_and_hiredis(binary, port, size, n).items():
                    rounds.setdefault((size, name), []).append(ms)
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(workdir, ignore_errors=True)

    median = {k: statistics.median(v) for k, v in rounds.items()}
    print(f"Medians over {args.rounds} rounds; ms per operation (MB/s in brackets).\n")
    print("| size | op | store | raw socket | store / raw | plain hiredis | "
          "redis-benchmark p50 |")
    print("|---|---|---|---|---|---|---|")
    rows = (("write (put)", "BM_StorePut", "BM_RawSocketSet", "BM_RawSet", "SET"),
            ("read (get)", "BM_StoreGet", "BM_RawSocketGet", "BM_RawGet", "GET"),
            ("read (get_checked)", "BM_StoreGetChecked", "BM_RawSocketGet", "BM_RawGet", "GET"))
    for size, label, n in SIZES:
        mbps = lambda ms: size / 1e6 / (ms / 1e3)
        cell = lambda ms: f"{ms:.3f} ({mbps(ms):.0f})"
        for op, store, sock, hiredis, bench in rows:
            s, r = median[(size, store)], median[(size, sock)]
            print(f"| {label} | {op} | {cell(s)} | {cell(r)} | {s / r:.2f}x | "
                  f"{cell(median[(size, hiredis)])} | {median[(size, bench)]:.3f} |")


if __name__ == "__main__":
    main()
