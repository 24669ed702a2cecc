"""What the Dask versions of the examples share (bench/peers/dask_*.py).

Each script is run with Debian's interpreter, as bench/run_all.py does:

    /usr/bin/python3 bench/peers/dask_APP.py --event JSON

It starts a LocalCluster of 2 worker processes with one thread each (this
machine kind has 2 cores), runs the application on it, and prints one JSON
line: the application's answer fields, "seconds" (the computation alone, after
the cluster is up: the comparison is kind to Dask) and "cluster_seconds" (the
cluster's start).
"""

import argparse
import json
import logging
import sys
import time


def list_files(paths):
    """Every regular file the paths name, as examples/common/inputs.h lists
    them: a file itself, a directory every file beneath it in path order
    (component by component, as std::filesystem::path compares: "a/x" before
    "a-b/x"), each once, lexically normalised. Raises FileNotFoundError naming
    a path that does not exist."""
    import os

    files = []
    for p in paths:
        if os.path.isdir(p):
            found = [os.path.join(root, n) for root, _, names in os.walk(p) for n in names]
            found = sorted((f for f in found if os.path.isfile(f)), key=lambda f: f.split(os.sep))
        elif os.path.isfile(p):
            found = [p]
        else:
            raise FileNotFoundError(f"no such file or directory: {p}")
        for f in map(os.path.normpath, found):
            if f not in files:
                files.append(f)
    return files


def main(compute, description):
    """Parses --event, starts the cluster, times compute(client, event) -> dict
    and prints its answer with the timings."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--event", default="{}", help="the same event JSON as the Kappa app's")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (2)")
    args = parser.parse_args()
    try:
        event = json.loads(args.event)
    except json.JSONDecodeError as e:
        sys.exit(f"{parser.prog}: bad --event: {e}")

    # Imported here so that --help works without Dask installed.
    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.ERROR)
    t0 = time.perf_counter()
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        t1 = time.perf_counter()
        out = compute(client, event)
        t2 = time.perf_counter()
    out["seconds"] = t2 - t1
    out["cluster_seconds"] = t1 - t0
    print(json.dumps(out), flush=True)
