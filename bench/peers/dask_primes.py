#!/usr/bin/python3
"""The primes example (examples/primes) written with Dask: the primes below n,
[2, n) split into `tasks` ranges, one Dask task per range running a numpy
segmented sieve of Eratosthenes, the counts summed.

This is what a Dask user would write: client.map over the ranges, and in each
task a sieve over odd numbers held in a numpy bool array, crossing out each
sieving prime's multiples with one strided slice assignment. The segment is
large (2^22 odd numbers, 4 MiB) because the per-prime loop runs in Python:
smaller segments would multiply its cost.

    /usr/bin/python3 bench/peers/dask_primes.py --event '{"n": 10000000000, "tasks": 2}'
    -> {"n": ..., "primes": ..., "tasks": ..., "seconds": ..., "cluster_seconds": ...}

"seconds" is the computation after the cluster is up; "cluster_seconds" the
cluster's start (LocalCluster, 2 worker processes of one thread each).
"""

import argparse
import json
import logging
import math
import time

import numpy as np

SEGMENT = 1 << 22  # odd numbers per segment


def odd_primes_up_to(limit):
    """The odd primes <= limit, by a plain numpy sieve."""
    if limit < 3:
        return np.array([], dtype=np.int64)
    is_prime = np.ones(limit + 1, dtype=bool)
    is_prime[:2] = False
    is_prime[4::2] = False
    for p in range(3, math.isqrt(limit) + 1, 2):
        if is_prime[p]:
            is_prime[p * p::2 * p] = False
    return np.flatnonzero(is_prime)[1:]  # without 2


def count_range(lo, hi):
    """The primes p with lo <= p < hi."""
    count = 1 if lo <= 2 < hi else 0
    start = max(lo, 3) | 1  # the first odd number in range
    if start >= hi:
        return count
    primes = [int(p) for p in odd_primes_up_to(math.isqrt(hi - 1))]
    for s in range(start, hi, 2 * SEGMENT):
        e = min(s + 2 * SEGMENT, hi)  # this segment: the odd numbers s, s + 2, ... < e
        sieve = np.ones((e - s + 1) // 2, dtype=bool)
        for p in primes:
            if p * p >= e:
                break
            m = max(p * p, (s + p - 1) // p * p)  # the first multiple to cross out
            if m % 2 == 0:
                m += p
            sieve[(m - s) // 2::p] = False
        count += int(np.count_nonzero(sieve))
    return count


def range_begin(n, parts, i):
    """As primes_kernel.h splits [2, n)."""
    return 2 if n <= 2 else 2 + (n - 2) * i // parts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--event", default="{}")
    a = ap.parse_args()
    event = json.loads(a.event)
    n = int(event.get("n", 1_000_000_000))
    tasks = max(1, int(event.get("tasks", 8)))

    from dask.distributed import Client, LocalCluster

    t0 = time.perf_counter()
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=logging.ERROR)
    client = Client(cluster)
    cluster_seconds = time.perf_counter() - t0

    t1 = time.perf_counter()
    los = [range_begin(n, tasks, i) for i in range(tasks)]
    his = [range_begin(n, tasks, i + 1) for i in range(tasks)]
    futures = client.map(count_range, los, his)
    primes = client.submit(sum, futures).result()
    seconds = time.perf_counter() - t1

    print(json.dumps({"n": n, "primes": primes, "tasks": tasks, "seconds": seconds,
                      "cluster_seconds": cluster_seconds}), flush=True)
    client.close()
    cluster.close()


if __name__ == "__main__":
    main()
