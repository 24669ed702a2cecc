#!/usr/bin/python3
"""The primes example against its baselines, and what checkpointing costs it.

Runs, in rounds (one run of each per round, so that a noisy neighbour hits
them all alike):
  - build/examples/primes/primes run --workers 2 with
      "no checkpoints"   --checkpoint-interval 1e9: maybe_checkpoint() never due
      "interval 1 s"     the default: a checkpoint a second per task
      "--time-limit 2"   the default interval, and every worker cut at 2 s: the
                         task is checkpointed and handed over to a fresh worker
  - build/bench/baselines/primes_baseline --procs 2 (and --procs 1 unless
    --no-procs1)
  - Dask (bench/peers/dask_primes.py) in the first --dask-reps rounds, unless
    --no-dask
and prints the median wall time of each (whole command), the CPU time of the
C++ runs (user + system, every process of the job: steadier than wall time
when the machine is shared), the checkpoints the
workers persisted (their debug logs), the hand-overs (the trace's "yield"
invocations), and the app's overhead against "no checkpoints". Every run
must give the same count. Goal (issue 11): checkpointing costs at most 1%.

    /usr/bin/python3 bench/primes_bench.py [--reps 3] [--n 20000000000] [--tasks 2]
        [--no-procs1] [--no-dask | --dask-reps 1]
"""

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP = os.path.join(ROOT, "build", "examples", "primes", "primes")
BASELINE = os.path.join(ROOT, "build", "bench", "baselines", "primes_baseline")
DASK = os.path.join(ROOT, "bench", "peers", "dask_primes.py")


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(argv, env=None):
    c0, t0 = children_cpu(), time.monotonic()
    out = subprocess.run(argv, capture_output=True, text=True, check=True, env=env)
    return (time.monotonic() - t0, children_cpu() - c0,
            json.loads(out.stdout.strip().splitlines()[-1]), out.stderr)


def app_run(event, extra):
    with tempfile.TemporaryDirectory(prefix="kappa-primes-bench-") as d:
        trace, logs = os.path.join(d, "trace.json"), os.path.join(d, "logs")
        env = dict(os.environ, KAPPA_LOG_LEVEL="debug")  # the workers log every image
        wall, cpu, out, err = timed([APP, "run", "--workers", "2", "--event", json.dumps(event),
                                     "--trace", trace, "--log-dir", logs, *extra], env)
        events = json.load(open(trace))["traceEvents"]
        yields = sum(1 for e in events if e.get("args", {}).get("outcome") == "yield")
        images = 0
        for f in os.listdir(logs):
            text = open(os.path.join(logs, f)).read()
            images += len(re.findall(r"^kappa worker \d+: debug: (full|delta) image ", text, re.M))
        summary = next((l for l in err.splitlines() if "done in" in l), "")
        return wall, cpu, out, {"yields": yields, "images": images, "summary": summary}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--n", type=int, default=20_000_000_000)
    ap.add_argument("--tasks", type=int, default=2)
    ap.add_argument("--segment-kb", type=int, default=256)
    ap.add_argument("--no-procs1", action="store_true")
    ap.add_argument("--no-dask", action="store_true")
    ap.add_argument("--dask-reps", type=int, default=1, help="Dask runs (minutes each)")
    a = ap.parse_args()
    event = {"n": a.n, "tasks": a.tasks, "segment_kb": a.segment_kb}
    apps = {"no checkpoints": ["--checkpoint-interval", "1e9"],
            "interval 1 s": [],
            "--time-limit 2": ["--time-limit", "2"]}
    walls = {k: [] for k in list(apps) + ["baseline --procs 2", "baseline --procs 1", "Dask"]}
    cpus = {k: [] for k in list(apps) + ["baseline --procs 2", "baseline --procs 1"]}
    counts = {k: [] for k in apps}
    answers = set()
    for rep in range(a.reps):
        for name, extra in apps.items():
            wall, cpu, out, c = app_run(event, extra)
            walls[name].append(wall)
            cpus[name].append(cpu)
            counts[name].append(c)
            answers.add(out["primes"])
            print(f"round {rep + 1} {name}: {wall:.2f} s wall, {cpu:.2f} s CPU, "
                  f"{c['images']} images, {c['yields']} hand-overs; {c['summary']}", flush=True)
        procs = [2] if a.no_procs1 else [2, 1]
        for p in procs:
            wall, cpu, out, _ = timed([BASELINE, "--procs", str(p), "--event", json.dumps(event)])
            walls[f"baseline --procs {p}"].append(wall)
            cpus[f"baseline --procs {p}"].append(cpu)
            answers.add(out["primes"])
            print(f"round {rep + 1} baseline --procs {p}: {wall:.2f} s wall, {cpu:.2f} s CPU",
                  flush=True)
        if not a.no_dask and rep < a.dask_reps:
            try:
                _, _, out, _ = timed(["/usr/bin/python3", DASK, "--event", json.dumps(event)])
            except (subprocess.SubprocessError, OSError) as e:
                print(f"(Dask skipped: {e}; install python3-distributed python3-numpy)")
                a.no_dask = True
            else:
                walls["Dask"].append(out["seconds"])
                answers.add(out["primes"])
                print(f"round {rep + 1} Dask: {out['seconds']:.2f} s "
                      f"(cluster {out['cluster_seconds']:.2f} s)", flush=True)
    print(f"\nevent {json.dumps(event)}; answers {sorted(answers)}"
          + ("" if len(answers) == 1 else "  ** THE ANSWERS DIFFER **"))
    base = statistics.median(walls["no checkpoints"])
    base_cpu = statistics.median(cpus["no checkpoints"])
    b2 = statistics.median(walls["baseline --procs 2"])
    print("\n| run | wall (median) | vs no checkpoints | CPU (median) | vs no checkpoints "
          "| images | hand-overs | vs baseline --procs 2 |")
    print("|---|---|---|---|---|---|---|---|")
    for name, ws in walls.items():
        if not ws:
            continue
        w = statistics.median(ws)
        if name in apps:
            c = statistics.median(cpus[name])
            imgs = statistics.median(x["images"] for x in counts[name])
            ys = statistics.median(x["yields"] for x in counts[name])
            print(f"| Kappa, {name} | {w:.2f} s | {100 * (w / base - 1):+.1f}% | {c:.2f} s "
                  f"| {100 * (c / base_cpu - 1):+.1f}% | {imgs:g} | {ys:g} | {w / b2:.2f}x |")
        else:
            c = f"{statistics.median(cpus[name]):.2f} s" if cpus.get(name) else ""
            print(f"| {name} | {w:.2f} s | | {c} | | | | {w / b2:.2f}x |")


if __name__ == "__main__":
    main()
