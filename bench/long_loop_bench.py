#!/usr/bin/python3
"""The long-loop workload: a task computing for several times its time limit,
finished through hand-overs, against the same loop as a plain program.

Runs, alternating, the plain program (build/bench/kappa_plain_long_loop) and
the semantic suite's long_loop program (build/tests/semantics_app run
--time-limit 1; the whole run's wall time: start, hand-overs, end), checks
that both compute the same value, and prints each pair's ratio and the
median. Goal (issue 10): at most 1.05x.

    /usr/bin/python3 bench/long_loop_bench.py [--reps 5] [--iterations 2700000000]
"""

import argparse
import json
import os
import statistics
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(argv):
    t0 = time.monotonic()
    out = subprocess.run(argv, capture_output=True, text=True, check=True)
    return time.monotonic() - t0, out.stdout.strip().splitlines()[-1], out.stderr.strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--iterations", type=int, default=2_700_000_000, help="~5 s here")
    ap.add_argument("--time-limit", default="1")
    a = ap.parse_args()
    plain = os.path.join(ROOT, "build", "bench", "kappa_plain_long_loop")
    app = os.path.join(ROOT, "build", "tests", "semantics_app")
    event = json.dumps({"program": "long_loop", "iterations": a.iterations})
    ratios = []
    print("| run | plain | Kappa, --time-limit %s | ratio | Kappa's summary |" % a.time_limit)
    print("|---|---|---|---|---|")
    for r in range(a.reps):
        p, pv, _ = timed([plain, str(a.iterations)])
        k, kv, err = timed([app, "run", "--event", event, "--time-limit", a.time_limit])
        if pv != kv:
            raise SystemExit(f"different results: plain {pv}, Kappa {kv}")
        ratios.append(k / p)
        print(f"| {r + 1} | {p:.3f} s | {k:.3f} s | {k / p:.3f} | {err.splitlines()[-1]} |")
    print(f"\nmedian ratio {statistics.median(ratios):.3f} (goal: at most 1.05)")


if __name__ == "__main__":
    main()
