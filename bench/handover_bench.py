#!/usr/bin/python3
"""Deadline-aware hand-over of a task with a large state (issue 10).

1. Hand-over: a job of build/bench/kappa_bench_app's large_state workload (a
   task holding MIB MiB of random bytes, changing CHANGE KiB per ~1 ms step,
   with a maybe_checkpoint() after every step, SECONDS of steps in all) runs
   on the local backend with `--time-limit 1 --chaos-kill 0.5`, several times
   per size. The worker deaths of each run are read from its summary line on
   stderr ("kappa: done in ... N worker deaths (X by --chaos-kill, Y at the
   time limit)"): every death at the time limit is a hand-over that started
   too late. Medians and totals per size.
2. Peak RSS: the same workload at each size, with no chaos and a time limit
   long enough for the first image, so that the task checkpoints, hands over
   and is restored; the peak RSS (VmHWM) of every worker process, read from
   /proc while the job runs, is reported against the issue's goal (the state
   plus 25%, plus ~100 MB).

    /usr/bin/python3 bench/handover_bench.py [--reps N] [--sizes 16,256]
        [--time-limit 1] [--rss-sizes 16,256,1024] [--app PATH] [--label TEXT]

Prints Markdown tables. Each job gets its own store (the default per-job
directory in /dev/shm, removed by the job itself).
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP = os.path.join(ROOT, "build", "bench", "kappa_bench_app")
CAUSES = ["exited", "crashed", "by --chaos-kill", "at the time limit", "hung", "lost"]


def deaths(stderr):
    """Worker deaths by cause, from the job's summary line."""
    counts = dict.fromkeys(CAUSES, 0)
    line = next((l for l in stderr.splitlines() if "done in" in l or "worker death" in l), "")
    for n, cause in re.findall(r"(\d+) (exited|crashed|by --chaos-kill|at the time limit|hung|lost)",
                               line):
        counts[cause] += int(n)
    return counts, line


def children(pid):
    """Every descendant of pid (from /proc/PID/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    kids = [int(c) for c in f.read().split()]
                out += kids
                todo += kids
        except OSError:
            pass
    return out


def vm_hwm_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_job(app, event, extra, watch_rss=False, timeout=600):
    """Runs one job; returns (ok, seconds, stderr, result, peak worker RSS in KiB)."""
    t0 = time.monotonic()
    proc = subprocess.Popen([app, "run", "--event", json.dumps(event), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = {}
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            for c in children(proc.pid):
                peak[c] = max(peak.get(c, 0), vm_hwm_kib(c))
            stop.wait(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    if watch_rss:
        watcher.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    stop.set()
    if watch_rss:
        watcher.join()
    seconds = time.monotonic() - t0
    result = None
    if proc.returncode == 0:
        try:
            result = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            pass
    return proc.returncode == 0, seconds, err, result, max(peak.values(), default=0)


def handover(app, sizes, reps, seconds, change_kib, limit, label):
    print(f"\n### Hand-over at `--time-limit {limit:g} --chaos-kill 0.5` ({label})\n")
    print("| state | runs ok | job s (median) | deaths (median) | chaos kills (total) "
          "| time-limit kills (total) | runs with a time-limit kill |")
    print("|---|---|---|---|---|---|---|")
    for mib in sizes:
        rows = []
        for rep in range(reps):
            event = {"bench": "large_state", "mib": mib, "change_kib": change_kib,
                     "seconds": seconds}
            ok, s, err, result, _ = run_job(app, event,
                                            ["--time-limit", str(limit), "--chaos-kill", "0.5"])
            d, line = deaths(err)
            rows.append((ok, s, d))
            print(f"  {mib} MiB run {rep + 1}: {'ok' if ok else 'FAILED'} {s:.1f} s; {line.strip()}",
                  file=sys.stderr)
            if not ok:
                print("\n".join(err.splitlines()[-5:]), file=sys.stderr)
        total = lambda k: sum(r[2][k] for r in rows)
        print(f"| {mib} MiB | {sum(r[0] for r in rows)}/{len(rows)} "
              f"| {statistics.median(r[1] for r in rows):.1f} "
              f"| {statistics.median(sum(r[2].values()) for r in rows):.0f} "
              f"| {total('by --chaos-kill')} | {total('at the time limit')} "
              f"| {sum(1 for r in rows if r[2]['at the time limit'])} |", flush=True)


def rss(app, sizes, change_kib, label):
    print(f"\n### Peak worker RSS, checkpoint + hand-over + restore ({label})\n")
    print("| state | time limit | job ok | peak worker RSS | x state | goal (state x 1.25 + 100 MB) |")
    print("|---|---|---|---|---|---|")
    for mib in sizes:
        # Long enough to build the state and write its first (full) image
        # (both take about 4 s per GiB here).
        limit = max(4.0, 12.0 * mib / 1024)
        event = {"bench": "large_state", "mib": mib, "change_kib": change_kib,
                 "seconds": 1.5 * limit}
        ok, s, err, result, peak_kib = run_job(app, event, ["--time-limit", str(limit)],
                                               watch_rss=True)
        d, line = deaths(err)
        print(f"  {mib} MiB: {'ok' if ok else 'FAILED'} {s:.1f} s; {line.strip()}", file=sys.stderr)
        peak_mb = peak_kib * 1024 / 1e6
        state_mb = mib * (1 << 20) / 1e6
        print(f"| {mib} MiB | {limit:g} s | {'yes' if ok else 'no'} | {peak_mb:.0f} MB "
              f"| {peak_mb / state_mb:.2f} | {state_mb * 1.25 + 100:.0f} MB |", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--sizes", default="16,256", help="MiB, for the hand-over runs")
    ap.add_argument("--rss-sizes", default="16,256,1024", help="MiB, for peak RSS (empty: skip)")
    ap.add_argument("--seconds", type=float, default=5.0, help="work per job")
    ap.add_argument("--change-kib", type=int, default=1,
                    help="KiB rewritten per ~1 ms step (1: ~1 MiB between checkpoints)")
    ap.add_argument("--time-limit", type=float, default=1.0, help="for the hand-over runs")
    ap.add_argument("--app", default=APP, help="the bench app binary")
    ap.add_argument("--label", default="", help="names the build in the table titles")
    a = ap.parse_args()
    label = a.label or os.path.relpath(a.app, ROOT)
    if a.sizes:
        handover(a.app, [int(x) for x in a.sizes.split(",")], a.reps, a.seconds, a.change_kib,
                 a.time_limit, label)
    if a.rss_sizes:
        rss(a.app, [int(x) for x in a.rss_sizes.split(",")], a.change_kib, label)


if __name__ == "__main__":
    main()
