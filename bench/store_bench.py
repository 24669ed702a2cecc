#!/usr/bin/python3
"""The checkpoint stores against their raw stores, measured in the same run:
write (put) and read (get_checked) of 4 KiB, 1 MiB and 100 MiB values through
each of file://, redis:// and s3://, beside the same writes and reads done
without the store layer, in turn; and the streams workers use for images
(put_stream in 4 MiB pieces, as an image over 32 MiB is written; open_value
read in 4 MiB ranges into a reused buffer, as a restore reads the segments it
verifies). Prints one Markdown table of medians.

- file://DIR, DIR on the real disk (--dir, default /var/tmp; not a tmpfs).
  Raw: `kappa_store_bench --with-raw`, write() to a temporary file and
  rename() over the key's file, read() of the whole file into a reused
  buffer; no fsync, as the store. The table also shows dd's figures, from
  the same disk and without conv=fsync either: `dd if=/dev/zero of=F
  bs=SIZE count=1` and `dd if=F of=/dev/null bs=SIZE count=1`, the time dd
  reports. That leaves out its process start and open, but counts its
  buffer's page faults (4 KiB pages) and the printing of its statistics
  (~0.2 ms): which is why dd is not the baseline.
- redis://, a redis-server started here on loopback (no persistence). Raw:
  `kappa_store_bench --with-raw`, SET sent from the caller's bytes with one
  sendmsg, GET received up to its last byte into a reused buffer. The table
  also shows redis-benchmark's p50 (`-t set,get -d SIZE -c 1`), which times
  a GET only up to the reply's first byte: without the value's transfer.
- s3://, s3rver started here on loopback (tests/fixtures/s3, installed by
  scripts/setup.sh), its data in the work directory (on --dir's disk). Raw:
  the curl command line, PUT and GET of the same bytes, signed the same way
  (--aws-sigv4, the payload's SHA-256 computed beforehand and not timed; the
  store hashes inside its put), one curl process and connection for a
  round's requests (--next), each timed by curl (time_total), the first
  one not counted (the store, too, writes and reads once untimed at the
  start of each size, then the timed operations). At 100 MiB the
  store's put is a multipart upload (8 MiB parts, 4 at once) against one
  curl PUT; an extra row shows the store's single PutObject (its multipart
  threshold raised), and another the store's put against the same multipart
  upload made with curl (CreateMultipartUpload, the parts four at once,
  CompleteMultipartUpload: its wall-clock time, curl's three process starts
  included), where s3rver's CompleteMultipartUpload, which copies the parts
  into the object, costs both sides alike.

Every figure is the median of all samples of all rounds. In a round, the file
and Redis stores and their raw baselines take turns operation by operation
(in one process, on connections of their own); the S3 store, curl and the
other tools run one after the other, in an order reversed from one round to
the next. "store / raw" is the store's median time over the raw one's; the
goal is at most 1.2 from 1 MiB up.

    /usr/bin/python3 bench/store_bench.py [--build DIR] [--rounds 5] [--dir /var/tmp]
                                          [--stores file,redis,s3] [--quick]
"""

import argparse
import csv
import hashlib
import io
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
S3RVER = os.path.join(ROOT, "tests", "fixtures", "s3", "node_modules", "s3rver", "bin",
                      "s3rver.js")
KEY, SECRET, REGION, BUCKET = "S3RVER", "S3RVER", "us-east-1", "kappa"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
KiB, MiB = 1 << 10, 1 << 20
SIZES = [(4 * KiB, "4 KiB"), (1 * MiB, "1 MiB"), (100 * MiB, "100 MiB")]
STREAM = ["--stream", str(4 * MiB)]  # the pieces of a streamed image, a restore's segments
# Operations per round: (store, size) -> n.
REPS = {
    ("file", 4 * KiB): 200, ("file", MiB): 50, ("file", 100 * MiB): 4,
    ("redis", 4 * KiB): 200, ("redis", MiB): 50, ("redis", 100 * MiB): 3,
    ("s3", 4 * KiB): 30, ("s3", MiB): 10, ("s3", 100 * MiB): 2,
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc, name):
    for _ in range(400):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None:
                sys.exit(f"{name} exited at start")
            time.sleep(0.05)
    proc.kill()
    sys.exit(f"{name} did not start")


def start_redis(workdir):
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", workdir,
         "--save", "", "--appendonly", "no", "--logfile", ""],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, proc, "redis-server")
    return proc, port


def start_s3rver(data):
    port = free_port()
    proc = subprocess.Popen(
        ["node", "--openssl-legacy-provider",  # s3rver's continuation tokens use DES
         S3RVER, "--silent", "--directory", data, "--address", "127.0.0.1", "--port", str(port),
         "--configure-bucket", BUCKET], stdout=subprocess.DEVNULL)
    wait_for_port(port, proc, "s3rver")
    return proc, f"http://127.0.0.1:{port}"


def stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# Each measurement below returns {(row, op): [seconds...]}, row "store", "raw"
# or another tool's name, op "write" or "read".

def bench_binary(binary, url, size, reps, *extra, env=None, row=None):
    """kappa_store_bench's samples; its targets are the rows, unless `row`."""
    out = subprocess.run([binary, "--store", url, "--sizes", str(size), "--reps", str(reps),
                          *extra], env=env, capture_output=True, text=True, check=True).stdout
    return {(row or r["target"], r["op"]): r["seconds"] for r in map(json.loads,
                                                                    out.splitlines())}


def dd(path, size, reps):
    """Seconds dd reports for `reps` writes and `reps` reads of `size` bytes."""
    def run(*args):
        err = subprocess.run(["dd", f"bs={size}", "count=1", *args], capture_output=True,
                             text=True, check=True).stderr
        return float(re.search(r"copied, ([0-9.e-]+) s", err).group(1))
    return {("dd", "write"): [run("if=/dev/zero", f"of={path}") for _ in range(reps)],
            ("dd", "read"): [run(f"if={path}", "of=/dev/null") for _ in range(reps)]}


def redis_benchmark(port, size, reps):
    """redis-benchmark's p50 (seconds) of SET and of GET."""
    out = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-t", "set,get", "-d", str(size), "-n", str(reps),
         "-c", "1", "--csv"], capture_output=True, text=True, check=True).stdout
    p50 = {row["test"]: float(row["p50_latency_ms"]) / 1e3 for row in csv.DictReader(
        io.StringIO(out))}
    return {("redis-benchmark", "write"): [p50["SET"]], ("redis-benchmark", "read"): [p50["GET"]]}


def curl(endpoint, path, size, reps):
    """PUT and GET of the file at `path` with curl, `reps` of each in one process."""
    url = f"{endpoint}/{BUCKET}/raw/value-{size}"
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()

    def times(*args, digest):
        argv = ["curl", "-sS", "--fail"]
        for i in range(reps + 1):  # the first one (connecting) is not counted
            argv += (["--next"] if i else []) + [
                "--aws-sigv4", f"aws:amz:{REGION}:s3", "-u", f"{KEY}:{SECRET}",
                "-H", "x-amz-content-sha256: " + digest, *args, url,
                "-o", "/dev/null", "-w", "%{time_total}\\n"]
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        return [float(x) for x in out.split()[1:]]
    return {("raw", "write"): times("-T", path, digest=digest),
            ("raw", "read"): times(digest=EMPTY_SHA256)}


PART = 8 * MiB  # the store's multipart part size (S3Tuning), for curl's multipart upload


def curl_multipart(endpoint, path, size, reps):
    """Multipart uploads of the file at `path` with curl, as the store makes them:
    CreateMultipartUpload, parts of 8 MiB four at once (one curl process,
    --parallel), CompleteMultipartUpload. Each upload's wall-clock time,
    curl's three process starts included (~2 ms each); the parts and their
    SHA-256 are prepared beforehand, untimed."""
    url = f"{endpoint}/{BUCKET}/raw/multipart-{size}"
    parts = []
    with open(path, "rb") as f:
        for number in range(1, (size + PART - 1) // PART + 1):
            data = f.read(PART)
            part_path = f"{path}.part{number}"
            with open(part_path, "wb") as out:
                out.write(data)
            parts.append((number, part_path, hashlib.sha256(data).hexdigest()))
    sign = ["--aws-sigv4", f"aws:amz:{REGION}:s3", "-u", f"{KEY}:{SECRET}"]

    def curl_out(*args):
        return subprocess.run(["curl", "-sS", "--fail", *args], capture_output=True, text=True,
                              check=True).stdout

    seconds = []
    for _ in range(reps + 1):  # the first one is not counted, as with the other rows
        t0 = time.perf_counter()
        created = curl_out(*sign, "-H", "x-amz-content-sha256: " + EMPTY_SHA256, "-X", "POST",
                           url + "?uploads")
        upload = re.search(r"<UploadId>([^<]+)</UploadId>", created).group(1)
        argv = ["--parallel", "--parallel-max", "4"]
        for i, (number, part_path, digest) in enumerate(parts):
            argv += (["--next"] if i else []) + [
                *sign, "-H", "x-amz-content-sha256: " + digest, "-T", part_path,
                f"{url}?partNumber={number}&uploadId={upload}", "-o", "/dev/null",
                "-w", "%{url} %header{etag}\\n"]
        etags = {}
        for line in curl_out(*argv).splitlines():
            number = int(re.search(r"partNumber=(\d+)", line).group(1))
            etags[number] = line.split(" ", 1)[1]
        body = "<CompleteMultipartUpload>" + "".join(
            f"<Part><PartNumber>{n}</PartNumber><ETag>{etags[n]}</ETag></Part>"
            for n, _, _ in parts) + "</CompleteMultipartUpload>"
        curl_out(*sign, "-H", "x-amz-content-sha256: " + hashlib.sha256(body.encode()).hexdigest(),
                 "-X", "POST", "--data-binary", body, url + f"?uploadId={upload}")
        seconds.append(time.perf_counter() - t0)
    for _, part_path, _ in parts:
        os.remove(part_path)
    head = curl_out(*sign, "-H", "x-amz-content-sha256: " + EMPTY_SHA256, "-I", url)
    length = re.search(r"(?im)^content-length: *(\d+)", head)
    if not length or int(length.group(1)) != size:
        raise RuntimeError(f"curl's multipart upload left {url} with headers {head!r}")
    return {("curl, multipart", "write"): seconds[1:]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", default="/var/tmp",
                        help="where the file store, dd and s3rver write (a real disk)")
    parser.add_argument("--stores", default="file,redis,s3")
    parser.add_argument("--quick", action="store_true", help="a tenth of the operations")
    args = parser.parse_args()
    binary = os.path.join(args.build, "bench", "kappa_store_bench")
    stores = args.stores.split(",")
    if not os.access(binary, os.X_OK):
        sys.exit(f"{binary} not found: build the target kappa_store_bench first")
    need = {"file": ["dd"], "redis": ["redis-server", "redis-benchmark"], "s3": ["node", "curl"]}
    for tool in sum((need[s] for s in stores), []):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found (scripts/setup.sh installs what the benchmarks need)")
    if "s3" in stores and not os.path.exists(S3RVER):
        sys.exit("s3rver not found: run `npm ci` in tests/fixtures/s3 (or scripts/setup.sh)")

    work = tempfile.mkdtemp(prefix="kappa-store-bench-", dir=args.dir)
    servers = []
    samples = {}  # (store, size, row, op) -> seconds
    try:
        # Each store: the measurements of a round, each a function of (size, reps).
        runs = {}
        if "file" in stores:
            runs["file"] = [
                lambda size, n: bench_binary(binary, f"file://{work}/file", size, n,
                                             "--with-raw", *STREAM),
                lambda size, n: dd(os.path.join(work, "dd-value"), size, max(1, n // 10)),
            ]
        if "redis" in stores:
            redis, port = start_redis(work)
            servers.append(redis)
            url = f"redis://127.0.0.1:{port}"
            runs["redis"] = [
                lambda size, n: bench_binary(binary, url, size, n, "--with-raw", *STREAM),
                lambda size, n: redis_benchmark(port, size, n),
            ]
        if "s3" in stores:
            s3rver, endpoint = start_s3rver(os.path.join(work, "s3"))
            servers.append(s3rver)
            env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET,
                       AWS_REGION=REGION, AWS_ENDPOINT_URL_S3=endpoint)
            values = {}
            for size, _ in SIZES:
                values[size] = os.path.join(work, f"s3-value-{size}")
                with open(values[size], "wb") as f:
                    f.write(os.urandom(size))
            s3_url = f"s3://{BUCKET}/store"
            runs["s3"] = [
                lambda size, n: bench_binary(binary, s3_url, size, n, *STREAM, env=env),
                lambda size, n: curl(endpoint, values[size], size, n),
                lambda size, n: bench_binary(
                    binary, s3_url, size, n, "--writes-only", "--s3-multipart-threshold",
                    str(1 << 40), env=env, row="store, one PutObject") if size >= 16 * MiB
                else {},
                lambda size, n: curl_multipart(endpoint, values[size], size, n)
                if size >= 16 * MiB else {},
            ]

        for round_no in range(args.rounds):
            for store, measurements in runs.items():
                order = measurements[::-1 if round_no % 2 else 1]
                for size, _ in SIZES:
                    n = max(1, REPS[(store, size)] // (10 if args.quick else 1))
                    for measure in order:
                        for (row, op), seconds in measure(size, n).items():
                            samples.setdefault((store, size, row, op), []).extend(seconds)
            print(f"round {round_no + 1} of {args.rounds} done", file=sys.stderr)
    finally:
        for proc in servers:
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)

    print_table(samples, stores, args.rounds)


def print_table(samples, stores, rounds):
    median = {k: statistics.median(v) for k, v in samples.items()}
    ms = lambda s: f"{s * 1e3:.3f} ms" if s < 0.1 else f"{s * 1e3:.0f} ms"
    mbps = lambda size, s: f"{size / s / 1e6:.0f}"
    names = {"file": "file://", "redis": "redis://", "s3": "s3://"}
    ops = {"write": "write (put)", "read": "read (get_checked)"}
    print(f"Medians of {rounds} rounds (samples per figure in the n column).\n")
    print("| store | size | op | store | raw | store / raw | store MB/s | raw MB/s | n | "
          "for comparison (dd: its own time; redis-benchmark: p50) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for store in stores:
        for size, label in SIZES:
            for op, op_label in ops.items():
                s, r = median[(store, size, "store", op)], median[(store, size, "raw", op)]
                n = len(samples[(store, size, "store", op)])
                tool = {"file": "dd", "redis": "redis-benchmark"}.get(store)
                extra = f"{tool}: {ms(median[(store, size, tool, op)])}" if tool else ""
                print(f"| {names[store]} | {label} | {op_label} | {ms(s)} | {ms(r)} | "
                      f"{s / r:.2f}x | {mbps(size, s)} | {mbps(size, r)} | {n} | {extra} |")
                stream = (store, size, "stream", op)
                if stream in median:
                    s = median[stream]
                    name = {"write": "write (put_stream)",
                            "read": "read (open_value, as restores)"}[op]
                    print(f"| {names[store]} | {label} | {name} | {ms(s)} | {ms(r)} | "
                          f"{s / r:.2f}x | {mbps(size, s)} | {mbps(size, r)} | "
                          f"{len(samples[stream])} | in 4 MiB pieces |")
                single = (store, size, "store, one PutObject", op)
                if store == "s3" and op == "write" and single in median:
                    s = median[single]
                    print(f"| s3:// | {label} | write (put), one PutObject | {ms(s)} | {ms(r)} | "
                          f"{s / r:.2f}x | {mbps(size, s)} | {mbps(size, r)} | "
                          f"{len(samples[single])} | store's multipart threshold raised |")
                multipart = (store, size, "curl, multipart", op)
                if multipart in median:
                    s, m = median[(store, size, "store", op)], median[multipart]
                    print(f"| s3:// | {label} | write (put) against curl's multipart upload | "
                          f"{ms(s)} | {ms(m)} | {s / m:.2f}x | {mbps(size, s)} | "
                          f"{mbps(size, m)} | {len(samples[multipart])} | raw: the same "
                          f"parts (8 MiB, 4 at once) with curl |")


if __name__ == "__main__":
    main()
