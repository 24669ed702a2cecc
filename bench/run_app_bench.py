#!/usr/bin/python3
"""Whole-job benchmarks of Kappa's coordinator and local backend, with Dask
measured in the same run, printed as a Markdown table.

Each Kappa workload is a job of build/bench/kappa_bench_app (bench/apps/
bench_app.cc), which measures from inside the job; every job is repeated and
the median reported. The coordinator's peak RSS comes from /usr/bin/time on
fib(15) (the workers are separate processes and not counted). The reference
implementation's figures were measured on this machine kind (shared/NOTES.md);
Dask's come from bench/peers/dask_bench.py, run now.

    /usr/bin/python3 bench/run_app_bench.py [--reps N] [--quick] [--no-dask]
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP = os.path.join(ROOT, "build", "bench", "kappa_bench_app")


def job(event, *extra):
    out = subprocess.run([APP, "run", "--event", json.dumps(event), *extra],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def median_of(reps, event, key, *extra):
    return statistics.median(job(event, *extra)[key] for _ in range(reps))


def coordinator_rss_mb(event):
    out = subprocess.run(["/usr/bin/time", "-v", APP, "run", "--event", json.dumps(event)],
                         capture_output=True, text=True, check=True)
    kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr).group(1))
    return kb / 1024


def dask(quick):
    script = os.path.join(ROOT, "bench", "peers", "dask_bench.py")
    try:
        out = subprocess.run(["/usr/bin/python3", script, "--json-only"] + (["--quick"] if quick else []),
                             capture_output=True, text=True, check=True, timeout=300)
    except (subprocess.SubprocessError, OSError) as e:
        print(f"(Dask skipped: {e}; install python3-distributed)", file=sys.stderr)
        return {}
    return {r["name"]: r["median"] for r in map(json.loads, out.stdout.splitlines()) if r}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-dask", action="store_true")
    ap.add_argument("--app", help="the bench app binary (default: build/bench/kappa_bench_app); "
                    "give an older build's to compare")
    a = ap.parse_args()
    if a.app:
        global APP
        APP = os.path.abspath(a.app)
    reps = 3 if a.quick else a.reps
    n = 100 if a.quick else 200

    rows = []  # (metric, kappa, unit, reference, dask, goal, lower_is_better)
    seq = median_of(reps, {"bench": "seq_spawn_wait", "n": n}, "median_ms")
    thr = median_of(reps, {"bench": "spawn_throughput", "n": 10 * n}, "tasks_per_s")
    q0 = median_of(reps, {"bench": "queue_rtt", "n": n}, "median_ms")
    q1 = median_of(reps, {"bench": "queue_rtt", "n": n // 4, "bytes": 1 << 20}, "median_ms")
    q1r = median_of(reps, {"bench": "queue_rtt", "n": n // 4, "bytes": 1 << 20, "random": True},
                    "median_ms")
    ck = median_of(reps, {"bench": "checkpoint_loop", "n": 1000}, "seconds")
    fib = median_of(reps, {"bench": "fib", "n": 15}, "seconds")
    rss = coordinator_rss_mb({"bench": "fib", "n": 15})
    d = {} if a.no_dask else dask(a.quick)

    rows = [
        ("sequential spawn+wait", seq, "ms", 73.5, d.get("spawn_wait_roundtrip"), 0.5, True),
        ("spawn throughput (trivial tasks)", thr, "tasks/s", 23, d.get("spawn_throughput"), 5000,
         False),
        ("queue round trip, empty", q0, "ms", 2.6, d.get("queue_roundtrip_empty"), 0.2, True),
        # Issue 10's goal for large values (issue 3's was 3 ms).
        ("queue round trip, 1 MiB", q1, "ms", 28.9, d.get("queue_roundtrip_1mb"), 1, True),
        ("queue round trip, 1 MiB incompressible", q1r, "ms", 28.9, d.get("queue_roundtrip_1mb"),
         1, True),
        ("1000-checkpoint loop", ck, "s", 1.27, None, 0.1, True),
        ("parallel fib(15)", fib, "s", 159.7, None, 2, True),
        ("coordinator peak RSS, fib(15)", rss, "MB", 56, None, 30, True),
    ]
    print(f"Kappa (median of {reps} jobs), reference implementation and Dask "
          "(2 worker processes) on this machine\n")
    print("| metric | Kappa | reference | Dask | goal | meets goal | vs reference | vs Dask |")
    print("|---|---|---|---|---|---|---|---|")
    for name, k, unit, ref, dk, goal, lower in rows:
        ok = k <= goal if lower else k >= goal
        vs_ref = ref / k if lower else k / ref
        vs_dask = "" if dk is None else f"{(dk / k if lower else k / dk):.1f}x"
        dask_cell = "" if dk is None else f"{dk:.3g} {unit}"
        print(f"| {name} | {k:.3g} {unit} | {ref:.3g} {unit} | {dask_cell} | {goal:g} {unit} | "
              f"{'yes' if ok else 'no'} | {vs_ref:.1f}x | {vs_dask} |")
    print("\n(vs columns: how many times better Kappa is; Dask's queue figures are "
          "client<->scheduler, see bench/peers/dask_bench.py)")


if __name__ == "__main__":
    main()
