#!/usr/bin/python3
"""How whole jobs scale with their number of tasks: wall time and the
coordinator's peak RSS for map_spawn + wait_all of n trivial tasks (all live
at once) and for parallel fib(n) (few live at a time), at growing n.

The time per task must stay flat, and the coordinator's memory must follow
the number of live tasks: flat for fib, proportional to n for map_spawn.

    /usr/bin/python3 bench/scale_bench.py [--baseline OLD_APP] [--reps N]

--baseline runs an older build's bench app (bench/apps/bench_app.cc) the same
way, in the same run, for a before/after table.
"""

import argparse
import json
import os
import re
import statistics
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP = os.path.join(ROOT, "build", "bench", "kappa_bench_app")


def job(app, event, timeout):
    """(seconds measured inside the job, coordinator peak RSS in MB, tasks)"""
    out = subprocess.run(["/usr/bin/time", "-v", app, "run", "--event", json.dumps(event)],
                         capture_output=True, text=True, check=True, timeout=timeout)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr).group(1))
    tasks = int(re.search(r"done in .* s: (\d+) tasks", out.stderr).group(1))
    return result["seconds"], kb / 1024, tasks


def measure(app, event, reps, timeout):
    runs = [job(app, event, timeout) for _ in range(reps)]
    return (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs),
            runs[0][2])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", help="an older build's kappa_bench_app, measured the same way")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--timeout", type=int, default=600, help="seconds per job")
    a = ap.parse_args()
    workloads = [("map_spawn + wait_all", {"bench": "spawn_throughput", "n": n}) for n in
                 (10_000, 40_000, 100_000)]
    workloads += [("parallel fib", {"bench": "fib", "n": n}) for n in (20, 23)]
    apps = [("now", APP)] + ([("baseline", os.path.abspath(a.baseline))] if a.baseline else [])
    print(f"Median of {a.reps} jobs; RSS is the coordinator's (the `run` process)\n")
    print("| workload | tasks | build | seconds | us per task | coordinator peak RSS |")
    print("|---|---|---|---|---|---|")
    for name, event in workloads:
        for label, app in apps:
            try:
                s, mb, tasks = measure(app, event, a.reps, a.timeout)
            except subprocess.TimeoutExpired:
                print(f"| {name} | | {label} | over {a.timeout} s | | |")
                continue
            print(f"| {name} (n={event['n']}) | {tasks} | {label} | {s:.2f} | {s / tasks * 1e6:.1f} "
                  f"| {mb:.1f} MB |", flush=True)


if __name__ == "__main__":
    main()
