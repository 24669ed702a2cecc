#!/usr/bin/python3
"""The s3:// checkpoint store against the raw S3 server, measured in the same
run: put and get of 4 KiB, 1 MiB and 100 MiB values through Kappa's store
(build/bench/kappa_store_bench) and with the curl command line (PUT/GET of the
same bytes to the same s3rver, signed the same way: --aws-sigv4 with the
payload's SHA-256 in x-amz-content-sha256, hashed beforehand and not timed;
the store hashes inside its put). Both reuse one connection across requests.
Prints a Markdown table of medians.

At 100 MiB the store's put is a multipart upload (8 MiB parts, 4 at once):
it is measured against a single curl PUT and against the same multipart
upload done with curl (create, the 13 parts one after the other, complete),
and the store's single PutObject (its threshold raised) against curl's PUT.

    /usr/bin/python3 bench/s3_store_bench.py [--build build] [--reps 15] [--big-reps 5]

s3rver (tests/fixtures/s3, installed by scripts/setup.sh) runs on loopback
with its data in a temporary directory under $TMPDIR (or /tmp).
"""

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "s3")
KEY, SECRET, REGION, BUCKET = "S3RVER", "S3RVER", "us-east-1", "kappa"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
SIZES = [(4 << 10, "4 KiB"), (1 << 20, "1 MiB"), (100 << 20, "100 MiB")]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_s3rver(data):
    port = free_port()
    server = subprocess.Popen(
        ["node", "--openssl-legacy-provider",  # s3rver's continuation tokens use DES
         os.path.join(FIXTURE, "node_modules", "s3rver", "bin", "s3rver.js"), "--silent",
         "--directory", data, "--address", "127.0.0.1", "--port", str(port),
         "--configure-bucket", BUCKET], stdout=subprocess.DEVNULL)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server, "http://127.0.0.1:%d" % port
        except OSError:
            if server.poll() is not None:
                sys.exit("s3rver exited at start")
            time.sleep(0.05)
    server.kill()
    sys.exit("s3rver did not start")


def curl_times(args_per_transfer, reps, write_out="%{time_total}\\n"):
    """Runs `reps` transfers in one curl process (one connection, --next)."""
    argv = ["curl", "-sS", "--fail"]
    for i in range(reps):
        if i:
            argv.append("--next")
        argv += args_per_transfer + ["-o", "/dev/null", "-w", write_out]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def signed(digest):
    return ["--aws-sigv4", "aws:amz:%s:s3" % REGION, "-u", "%s:%s" % (KEY, SECRET), "-H",
            "x-amz-content-sha256: " + digest]


def sha256_of(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def raw(endpoint, path, size, reps):
    url = "%s/%s/raw/value-%d" % (endpoint, BUCKET, size)
    put = curl_times(signed(sha256_of(path)) + ["-T", path, url], reps)
    get = curl_times(signed(EMPTY_SHA256) + [url], reps)
    return [float(x) for x in put.split()], [float(x) for x in get.split()]


def raw_multipart(endpoint, parts, reps):
    """Seconds of each of `reps` multipart uploads of `parts` (paths) with curl."""
    url = "%s/%s/raw/multipart" % (endpoint, BUCKET)
    digests = [sha256_of(p) for p in parts]
    times = []
    for _ in range(reps):
        out = subprocess.run(["curl", "-sS", "--fail", "-X", "POST", *signed(EMPTY_SHA256),
                              url + "?uploads=", "-w", "\n%{time_total}"],
                             capture_output=True, text=True, check=True).stdout
        body, _, took = out.rpartition("\n")
        upload = body.split("<UploadId>")[1].split("</UploadId>")[0]
        total = float(took)
        argv = ["curl", "-sS", "--fail"]
        for i, (part, digest) in enumerate(zip(parts, digests)):
            if i:
                argv.append("--next")
            argv += signed(digest) + ["-T", part, "%s?partNumber=%d&uploadId=%s" % (
                url, i + 1, upload), "-o", "/dev/null", "-w", "%{time_total} %header{etag}\\n"]
        etags = []
        for line in subprocess.run(argv, capture_output=True, text=True,
                                   check=True).stdout.splitlines():
            took, etag = line.split(" ", 1)
            total += float(took)
            etags.append(etag)
        complete = "<CompleteMultipartUpload>%s</CompleteMultipartUpload>" % "".join(
            "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>" % (i + 1, e)
            for i, e in enumerate(etags))
        took = subprocess.run(["curl", "-sS", "--fail", *signed(
            hashlib.sha256(complete.encode()).hexdigest()), "-H", "Content-Type: application/xml",
            "--data-binary", complete, url + "?uploadId=" + upload, "-o", "/dev/null", "-w",
            "%{time_total}"], capture_output=True, text=True, check=True).stdout
        times.append(total + float(took))
    return times


def store(build, endpoint, size, reps, *extra):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET,
               AWS_REGION=REGION, AWS_ENDPOINT_URL_S3=endpoint)
    out = subprocess.run([os.path.join(build, "bench", "kappa_store_bench"), "--store",
                          "s3://%s/store" % BUCKET, "--sizes", str(size), "--reps", str(reps),
                          *extra], env=env, capture_output=True, text=True, check=True).stdout
    samples = {}
    for line in out.splitlines():
        row = json.loads(line)
        samples[row["op"]] = row["seconds"]
    return samples["put"], samples["get"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--reps", type=int, default=15, help="samples per size up to 1 MiB")
    parser.add_argument("--big-reps", type=int, default=6, help="samples at 100 MiB")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternations of store and raw runs (each takes reps/rounds)")
    options = parser.parse_args()

    work = tempfile.mkdtemp(prefix="kappa-s3-bench-")
    server, endpoint = start_s3rver(os.path.join(work, "data"))
    rows = []  # (size name, op, store samples, raw samples, note)
    try:
        for size, name in SIZES:
            path = os.path.join(work, "value-%d" % size)
            with open(path, "wb") as f:
                f.write(random.Random(size).randbytes(size))
            big = size >= (64 << 20)
            per_round = max(1, (options.big_reps if big else options.reps) // options.rounds)
            runs = {
                "store": lambda: store(options.build, endpoint, size, per_round),
                "raw": lambda: raw(endpoint, path, size, per_round),
            }
            if big:
                part = 8 << 20
                parts = []
                with open(path, "rb") as f:
                    for i, at in enumerate(range(0, size, part)):
                        parts.append(os.path.join(work, "part-%d" % i))
                        with open(parts[-1], "wb") as out:
                            out.write(f.read(part))
                runs["store single"] = lambda: store(options.build, endpoint, size, per_round,
                                                     "--s3-multipart-threshold", str(1 << 40))
                runs["raw multipart"] = lambda: (raw_multipart(endpoint, parts, per_round), [])
            samples = {}
            # Alternate, so that a busy moment of the machine hits all alike.
            for _ in range(options.rounds):
                for who, run in runs.items():
                    put, get = run()
                    samples.setdefault((who, "put"), []).extend(put)
                    samples.setdefault((who, "get"), []).extend(get)
            if big:
                rows.append((name, "put (multipart)", samples[("store", "put")],
                             samples[("raw", "put")], "raw: one PUT"))
                rows.append((name, "put (multipart)", samples[("store", "put")],
                             samples[("raw multipart", "put")],
                             "raw: the same multipart upload, parts one at a time"))
                rows.append((name, "put (one PutObject)", samples[("store single", "put")],
                             samples[("raw", "put")], "store's multipart threshold raised"))
            else:
                rows.append((name, "put", samples[("store", "put")], samples[("raw", "put")], ""))
            rows.append((name, "get", samples[("store", "get")], samples[("raw", "get")], ""))
            for f in os.listdir(work):
                if f.startswith(("value-", "part-")):
                    os.unlink(os.path.join(work, f))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait()
        shutil.rmtree(work, ignore_errors=True)

    sizes = dict((name, size) for size, name in SIZES)
    print("| size | op | s3:// store | raw curl | store / raw | store MB/s | raw MB/s | "
          "samples | note |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, op, store_samples, raw_samples, note in rows:
        s, r = statistics.median(store_samples), statistics.median(raw_samples)
        print("| %s | %s | %.2f ms | %.2f ms | %.2fx | %.1f | %.1f | %d | %s |" % (
            name, op, s * 1e3, r * 1e3, s / r, sizes[name] / s / 1e6, sizes[name] / r / 1e6,
            len(store_samples), note))


if __name__ == "__main__":
    main()
