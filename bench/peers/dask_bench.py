#!/usr/bin/python3
"""Baseline benchmark of Dask's distributed scheduler (peer comparison for the
Kappa C++ coordinator).

Cluster: LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
dashboard_address=None) plus a Client, all on this machine.

Metrics (each printed as one JSON object per line on stdout, with keys
"name", "median", "unit", "samples"; median is over the repetitions, after a
warm-up):
  spawn_throughput       submit N trivial tasks (identity, pure=False) and
                         gather all results; tasks per second.
  spawn_wait_roundtrip   sequential client.submit(f, i, pure=False).result();
                         median milliseconds per round trip.
  queue_roundtrip_empty  distributed.Queue put(b"") then get() from the client;
                         median milliseconds per put+get round trip.
  queue_roundtrip_1mb    same with a 1 MiB bytes object.

The queue measurement is client-side: the client itself puts an item into a
distributed.Queue (which lives on the scheduler) and gets it back. No worker
task is involved, so this measures client<->scheduler queue RPC cost.

Run (Debian packages python3-distributed / python3-dask; use the system
interpreter, not a pyenv python):
    /usr/bin/python3 bench/peers/dask_bench.py            # full run
    /usr/bin/python3 bench/peers/dask_bench.py --quick    # fast smoke run
    /usr/bin/python3 bench/peers/dask_bench.py --json-only  # only JSON lines
"""

import argparse
import json
import logging
import statistics
import sys
import time


def identity(x):
    return x


def emit(name, samples, unit, json_only):
    rec = {"name": name, "median": statistics.median(samples), "unit": unit,
           "samples": samples}
    print(json.dumps(rec), flush=True)
    if not json_only:
        print(f"# {name}: median {rec['median']:.3f} {unit} "
              f"(min {min(samples):.3f}, max {max(samples):.3f}, "
              f"n={len(samples)})", file=sys.stderr, flush=True)


def bench_spawn_throughput(client, n, reps):
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        futs = [client.submit(identity, i, pure=False) for i in range(n)]
        res = client.gather(futs)
        dt = time.perf_counter() - t0
        assert res == list(range(n))
        del futs
        out.append(n / dt)
    return out


def bench_spawn_wait(client, rounds, reps):
    out = []
    for _ in range(reps):
        lat = []
        for i in range(rounds):
            t0 = time.perf_counter()
            r = client.submit(identity, i, pure=False).result()
            lat.append((time.perf_counter() - t0) * 1e3)
            assert r == i
        out.append(statistics.median(lat))
    return out


def bench_queue(client, payload, rounds, reps):
    from distributed import Queue
    q = Queue("dask_bench_q", client=client)
    out = []
    for _ in range(reps):
        lat = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            q.put(payload)
            got = q.get()
            lat.append((time.perf_counter() - t0) * 1e3)
        assert len(got) == len(payload)
        out.append(statistics.median(lat))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="small N / fewer round trips / 3 repetitions")
    ap.add_argument("--json-only", action="store_true",
                    help="print only the JSON result lines")
    args = ap.parse_args()

    if args.quick:
        n, rounds, reps = 300, 50, 3
    else:
        n, rounds, reps = 2000, 200, 5

    # Keep Dask's own logging off stdout/stderr noise.
    logging.getLogger("distributed").setLevel(logging.ERROR)

    from distributed import Client, LocalCluster

    t_start = time.perf_counter()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=logging.ERROR) as cluster, \
            Client(cluster) as client:
        client.wait_for_workers(2, timeout=60)
        if not args.json_only:
            print(f"# dask {__import__('dask').__version__}, distributed "
                  f"{__import__('distributed').__version__}; N={n}, "
                  f"rounds={rounds}, reps={reps}", file=sys.stderr)

        # Warm-up: import/unpickle paths, connections, queue creation.
        bench_spawn_throughput(client, min(n, 200), 1)
        bench_spawn_wait(client, 20, 1)
        bench_queue(client, b"", 20, 1)
        bench_queue(client, b"\0" * (1 << 20), 5, 1)

        emit("spawn_throughput", bench_spawn_throughput(client, n, reps),
             "tasks/s", args.json_only)
        emit("spawn_wait_roundtrip", bench_spawn_wait(client, rounds, reps),
             "ms", args.json_only)
        emit("queue_roundtrip_empty", bench_queue(client, b"", rounds, reps),
             "ms", args.json_only)
        emit("queue_roundtrip_1mb",
             bench_queue(client, b"\0" * (1 << 20), rounds, reps),
             "ms", args.json_only)
    if not args.json_only:
        print(f"# total wall time {time.perf_counter() - t_start:.1f} s",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
