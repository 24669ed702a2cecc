#!/usr/bin/python3
"""The live view's API latency on a job of many tasks (issue 12).

Runs tests' ui_app (build/tests/ui_app) with N leaf tasks (default 100,000)
and --ui 127.0.0.1:0; once every leaf has finished (the job still runs: its
holder task holds it open), times GET /api/job, a page of /api/tasks
(first, middle and last pages), a filtered page (/api/tasks?state=parked:
a scan of every task) and one task's history, each --reps times in turn,
sequentially, from this process (urllib on loopback). Also reports how long
the job took to spawn and finish the N leaves.

    /usr/bin/python3 bench/live_view_bench.py [--tasks N] [--reps R]

Stops the job it started (by PID). Prints a Markdown table (milliseconds).
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP = os.path.join(ROOT, "build", "tests", "ui_app")


def get(url):
    t = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as r:
        body = r.read()
    return (time.perf_counter() - t) * 1000, body


def start(tasks, errfile, store):
    event = {"leaves": tasks, "hold_ms": 600000, "backlog": 2}
    # The job is killed at the end: its checkpoints go to a directory of
    # this run's, removed with it.
    argv = [APP, "run", "--event", json.dumps(event), "--workers", "2", "--ui", "127.0.0.1:0",
            "--store", "file://" + store]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=errfile)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=100000)
    ap.add_argument("--reps", type=int, default=100)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        err_path = os.path.join(tmp, "err")
        with open(err_path, "w") as err:
            t0 = time.time()
            job = start(args.tasks, err, os.path.join(tmp, "store"))
            try:
                url = None
                while url is None:
                    m = re.search(r"live view at (http://\S+/)", open(err_path).read())
                    url = m and m.group(1)
                    time.sleep(0.05)
                while True:
                    _, body = get(url + "api/job")
                    j = json.loads(body)
                    if j["tasks"]["finished"] >= args.tasks:
                        break
                    time.sleep(0.2)
                leaves_s = time.time() - t0
                n = j["tasks"]["total"]
                paths = {
                    "/api/job": "api/job",
                    "/api/tasks (first page of 50)": "api/tasks?offset=0&limit=50",
                    "/api/tasks (middle page of 50)": "api/tasks?offset=%d&limit=50" % (n // 2),
                    "/api/tasks (last page of 50)": "api/tasks?offset=%d&limit=50" % (n - 50),
                    "/api/tasks?state=parked (scans all)": "api/tasks?state=parked&limit=20",
                    "/api/tasks?state=finished&offset=N/2": "api/tasks?state=finished&offset=%d&limit=50" % (n // 2),
                    "/api/tasks/ID": "api/tasks/%d" % (n // 2),
                    "/api/queues": "api/queues",
                }
                times = {k: [] for k in paths}
                sizes = {}
                for _ in range(args.reps):
                    for k, p in paths.items():
                        ms, body = get(url + p)
                        times[k].append(ms)
                        sizes[k] = len(body)
            finally:
                job.kill()
                job.wait()
    print("Job: %d tasks (%d leaves), all leaves finished %.1f s after the start (view on)." %
          (n, args.tasks, leaves_s))
    print()
    print("| request | median ms | p95 ms | max ms | bytes |")
    print("|---|---|---|---|---|")
    for k, v in times.items():
        v = sorted(v)
        p95 = v[min(len(v) - 1, int(len(v) * 0.95))]
        print("| %s | %.2f | %.2f | %.2f | %d |" % (k, statistics.median(v), p95, v[-1], sizes[k]))


if __name__ == "__main__":
    main()
