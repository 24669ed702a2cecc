#!/usr/bin/python3
"""The coordinator's journal (--state) against none, measured side by side.

1. Overhead: sequential spawn+wait, spawn throughput and the empty queue round
   trip (jobs of build/bench/kappa_bench_app) with no journal, the SQLite
   journal (a file on the disk, not tmpfs) and the Redis journal (a
   redis-server on loopback with its append-only file, fsynced every second),
   in alternating rounds; medians. Beside them, from the same rounds: Redis's
   loopback round trip (redis-benchmark PING) and the Redis journal's writes
   per operation (EXEC calls: one transaction per group, INFO commandstats),
   whose product is the least a synchronous write per event can add.
2. Restart: a job of N tasks (restart_probe: each creates a marker file as it
   starts, then computes for a while) is SIGKILLed once all its tasks are in
   its journal; the time from starting `run` again to the first task running
   is measured, next to the same time for a fresh job without a journal.

    /usr/bin/python3 bench/journal_bench.py [--reps N] [--tasks N]

Starts and stops its own redis-server (by PID). Prints Markdown tables.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP = os.path.join(ROOT, "build", "bench", "kappa_bench_app")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    def __init__(self, workdir):
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", workdir,
             "--save", "", "--appendonly", "yes", "--appendfsync", "everysec"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(500):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                return
            except OSError:
                time.sleep(0.01)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def redis_cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True,
                          check=True).stdout


def redis_writes(port):
    """Transactions (EXEC calls) Redis has run so far (INFO commandstats)."""
    m = re.search(r"cmdstat_exec:calls=(\d+)", redis_cli(port, "info", "commandstats"))
    return int(m.group(1)) if m else 0


def redis_ping_ms(port):
    """One loopback round trip to Redis: redis-benchmark's PING p50, one client."""
    out = subprocess.run(["redis-benchmark", "-p", str(port), "-c", "1", "-n", "5000", "-t",
                          "ping_mbulk", "--csv"], capture_output=True, text=True, check=True)
    row = out.stdout.strip().splitlines()[-1].replace('"', "").split(",")
    return float(row[4])


def job(event, *extra):
    out = subprocess.run([APP, "run", "--event", json.dumps(event), *extra],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def overhead(reps, journals, redis):
    workloads = [
        ("sequential spawn+wait", {"bench": "seq_spawn_wait", "n": 200}, "median_ms", "ms", True),
        ("spawn throughput", {"bench": "spawn_throughput", "n": 2000}, "tasks_per_s", "tasks/s",
         False),
        ("queue round trip, empty", {"bench": "queue_rtt", "n": 200}, "median_ms", "ms", True),
    ]
    samples = {(w[0], j): [] for w in workloads for j in journals}
    writes = {w[0]: [] for w in workloads}  # Redis journal writes per operation
    pings = []
    for rep in range(reps):
        pings.append(redis_ping_ms(redis.port))
        for name, event, key, _, _ in workloads:
            for j, state in journals.items():
                before = redis_writes(redis.port)
                samples[(name, j)].append(job(event, *state(f"{rep}-{event['bench']}"))[key])
                if j == "redis":
                    writes[name].append((redis_writes(redis.port) - before) / event["n"])
    names = list(journals)
    print(f"Journal overhead (median of {reps} jobs each, alternating)\n")
    print("| workload | " + " | ".join(names) + " | " +
          " | ".join(f"{n} / none" for n in names[1:]) + " |")
    print("|---" * (2 * len(names)) + "|")
    for name, _, _, unit, lower in workloads:
        med = {j: statistics.median(samples[(name, j)]) for j in names}
        ratios = [(med[j] / med["none"]) if lower else (med["none"] / med[j]) for j in names[1:]]
        print(f"| {name} | " + " | ".join(f"{med[j]:.3g} {unit}" for j in names) + " | " +
              " | ".join(f"{r:.2f}x" for r in ratios) + " |")
    print("\n(ratios: time per operation against no journal; 1.00x is no overhead)\n")
    ping = statistics.median(pings)
    print(f"Redis, in the same rounds: one loopback round trip (redis-benchmark PING, 1 client, "
          f"p50) {ping:.3f} ms; the Redis journal's writes (one transaction per group) per operation, "
          f"with the floor they put under its added time:\n")
    print("| workload | writes per operation | writes × round trip |")
    print("|---|---|---|")
    for name, _, _, unit, _ in workloads:
        per = statistics.median(writes[name])
        print(f"| {name} | {per:.2f} | {per * ping:.3f} ms |")
    print()


def wait_for(path, timeout):
    t0 = time.monotonic()
    while not os.path.exists(path):
        if time.monotonic() - t0 > timeout:
            raise RuntimeError(f"{path} never appeared")
        time.sleep(0.0005)
    return time.monotonic()


def kill(proc):
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def restart(reps, tasks, journals, scratch):
    print(f"Restart of a job with {tasks} tasks in its journal (median of {reps})\n")
    print("| journal | first task after a fresh start | first task after a restart | "
          "tasks continued |")
    print("|---|---|---|---|")
    for j, state in journals.items():
        fresh, again, live = [], [], []
        for rep in range(reps):
            mark = os.path.join(scratch, f"mark-{j}-{rep}")
            event = json.dumps({"bench": "restart_probe", "n": tasks, "mark": mark, "ms": 20})
            # (The store under scratch: the killed runs leave their images.)
            argv = [APP, "run", "--event", event, "--store", f"file://{scratch}/store-{j}-{rep}",
                    *state(f"restart-{rep}")]
            t0 = time.monotonic()
            first = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            fresh.append(wait_for(mark, 120) - t0)
            # Every task is in the journal once the first one runs: map_spawn's
            # call is recorded before it is answered.
            time.sleep(0.5)
            kill(first)
            os.unlink(mark)
            err = os.path.join(scratch, "err")
            with open(err, "w") as e:
                t0 = time.monotonic()
                second = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=e)
                again.append(wait_for(mark, 120) - t0)
            kill(second)
            os.unlink(mark)
            with open(err) as e:
                m = re.search(r"continuing job \S+ from \S+: (\d+) tasks live", e.read())
            live.append(int(m.group(1)) if m else 0)
        print(f"| {j} | {statistics.median(fresh) * 1e3:.0f} ms | "
              f"{statistics.median(again) * 1e3:.0f} ms | {min(live)}–{max(live)} |")
    print()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--tasks", type=int, default=10000)
    a = ap.parse_args()
    scratch = tempfile.mkdtemp(prefix="kappa-journal-bench-", dir="/var/tmp")
    redis = Redis(scratch)
    try:
        journals = {
            "none": lambda name: [],
            "sqlite": lambda name: ["--state", f"sqlite://{scratch}/{name}.db"],
            "redis": lambda name: ["--state",
                                   f"redis://127.0.0.1:{redis.port}?name={name.replace('_', '-')}"],
        }
        overhead(a.reps, journals, redis)
        restart(max(1, a.reps // 2), a.tasks, {k: v for k, v in journals.items() if k != "none"},
                scratch)
    finally:
        redis.stop()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
