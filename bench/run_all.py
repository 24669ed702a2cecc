#!/usr/bin/python3
"""Kappa's benchmark suite: one command, Markdown tables and PNG plots.

Runs, in one sitting on this machine:
  * the microbenchmarks: sequential spawn+wait, spawn throughput, queue round
    trip against message size (beside a bare Unix-socket ping-pong, the floor),
    checkpoint time against state size, the cost of maybe_checkpoint();
  * every application of examples/ against its hand-written baselines (one
    process; one forked worker per core merging through pipes) and its Dask
    version (bench/peers/dask_*.py on a LocalCluster of 2 worker processes),
    checking that all of them give the same answer.

It prints the tables, writes them with the machine and the date to
OUT/RESULTS.md, and draws OUT/plots/*.png with gnuplot (OUT is bench/ unless
--out says otherwise). Build first (cmake --build build); Dask and gnuplot come
with `scripts/setup.sh --bench`, and without them their columns and plots are
skipped with a one-line hint.

    /usr/bin/python3 bench/run_all.py                 # everything (~15 min)
    /usr/bin/python3 bench/run_all.py --quick         # small inputs, 1 repetition
    /usr/bin/python3 bench/run_all.py --only apps --apps wordcount

Timings: an application's Kappa and baseline figures are the wall time of the
whole command (Kappa's includes starting its coordinator and workers); Dask's
is the computation after its cluster is up, which is kind to Dask. Each figure
is the median of --reps runs, the variants of one application alternating.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = "/usr/bin/python3"  # Debian's, where python3-distributed lives


class Suite:
    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build)
        self.reps = 1 if args.quick and args.reps is None else (args.reps or 3)
        self.tmp = tempfile.mkdtemp(prefix="kappa-bench-")
        self.sections = []  # (title, markdown)
        self.plots = []  # (name, gnuplot script, {file: data})
        self.hints = []
        self.failures = []
        self.dask = not args.no_dask and self._has_dask()
        self.gnuplot = shutil.which("gnuplot")

    # ------------------------------------------------------------ helpers

    def path(self, *parts):
        p = os.path.join(self.build, *parts)
        if not os.path.exists(p):
            sys.exit(f"run_all: {p} is missing: build first (cmake --build {self.args.build})")
        return p

    def _has_dask(self):
        ok = subprocess.run([PYTHON, "-c", "import distributed"], capture_output=True).returncode == 0
        if not ok:
            self.hints.append("Dask columns skipped: Dask is not installed "
                              "(scripts/setup.sh --bench installs Debian's python3-distributed).")
        return ok

    def run_json(self, argv, timeout=3600):
        """Runs argv; returns (wall seconds, the JSON of its last stdout line)."""
        t0 = time.monotonic()
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        dt = time.monotonic() - t0
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr[-2000:]}")
        return dt, json.loads(r.stdout.strip().splitlines()[-1])

    def log(self, msg):
        print(f"[run_all] {msg}", file=sys.stderr, flush=True)

    def section(self, title, lines):
        md = "\n".join(lines)
        self.sections.append((title, md))
        print(f"\n## {title}\n\n{md}\n", flush=True)

    # ------------------------------------------------------------ microbenchmarks

    def bench_app(self, event):
        app = self.path("bench", "kappa_bench_app")
        return self.run_json([app, "run", "--event", json.dumps(event)])[1]

    def median_bench(self, event, key):
        return statistics.median(self.bench_app(event)[key] for _ in range(self.reps))

    def pingpong(self, size):
        rounds = 2000 if size >= 1 << 20 else 20000
        out = self.run_json([self.path("bench", "kappa_pingpong"), "--bytes", str(size),
                             "--rounds", str(rounds // (10 if self.args.quick else 1))])[1]
        return out["median_us"] / 1e3

    def micro(self):
        self.log("microbenchmarks: spawn, queues")
        n = 100 if self.args.quick else 300
        floor = self.pingpong(64)
        seq = self.median_bench({"bench": "seq_spawn_wait", "n": n}, "median_ms")
        thr = self.median_bench({"bench": "spawn_throughput", "n": 20 * n}, "tasks_per_s")
        sizes = [0, 1 << 10, 64 << 10, 1 << 20]
        rtt = {}
        for size in sizes:
            count = n if size < (1 << 20) else max(20, n // 6)
            rtt[size] = (self.median_bench({"bench": "queue_rtt", "n": count, "bytes": size},
                                           "median_ms"), self.pingpong(max(size, 64)))
        rows = [
            ("sequential spawn+wait", f"{seq:.3f} ms", seq / floor, "≤ 0.1 ms", seq <= 0.1),
            ("spawn throughput", f"{thr:,.0f} tasks/s", None, "≥ 25,000 tasks/s", thr >= 25000),
            ("empty queue round trip", f"{rtt[0][0]:.3f} ms", rtt[0][0] / floor, "≤ 0.08 ms",
             rtt[0][0] <= 0.08),
        ]
        lines = [f"Median of {self.reps} jobs; the floor is a bare round trip of 64 bytes between "
                 f"two processes over a Unix socket (build/bench/kappa_pingpong): "
                 f"{floor * 1e3:.1f} µs.", "",
                 "| metric | Kappa | × floor | goal | meets goal |", "|---|---|---|---|---|"]
        for name, value, ratio, goal, ok in rows:
            lines.append(f"| {name} | {value} | {'' if ratio is None else f'{ratio:.1f}x'} | "
                         f"{goal} | {'yes' if ok else 'no'} |")
        self.section("Coordinator round trips", lines)

        lines = ["| message | Kappa queue round trip | socket ping-pong | × floor |",
                 "|---|---|---|---|"]
        data = ""
        for size in sizes:
            k, p = rtt[size]
            lines.append(f"| {human_bytes(size)} | {k:.3f} ms | {p:.4f} ms | {k / p:.1f}x |")
            data += f"{max(size, 1)} {k} {p}\n"
        self.section("Queue round trip against message size", lines)
        self.plots.append(("queue_rtt", f"""
set title "Queue round trip against message size"
set logscale xy
set xlabel "message (the empty one drawn at 1 B)"; set ylabel "round trip (ms)"
set xtics ({xtics(sizes)})
set key top left
plot "queue_rtt.dat" using 1:2 with linespoints lw 2 title "Kappa queue (enqueue + echo + dequeue)", \\
     "queue_rtt.dat" using 1:3 with linespoints lw 2 title "Unix socket ping-pong (floor)"
""", {"queue_rtt.dat": data}))

    def checkpoints(self):
        self.log("microbenchmarks: checkpoints")
        sizes = "16777216" if self.args.quick else "[0-9]+"
        filt = f"BM_MaybeCheckpointNotDue|BM_Checkpoint/(full|delta_wp)/{sizes}/10/0"
        r = subprocess.run([self.path("bench", "kappa_runtime_bench"), f"--benchmark_filter={filt}",
                            "--benchmark_format=json"], capture_output=True, text=True, check=True)
        results = json.loads(r.stdout)["benchmarks"]
        maybe_ns = next(b["real_time"] for b in results if b["name"] == "BM_MaybeCheckpointNotDue")
        table = {}
        for b in results:
            parts = b["name"].split("/")
            if parts[0] == "BM_Checkpoint":
                table.setdefault(int(parts[2]), {})[parts[1]] = (b["real_time"], b["image_bytes"])
        lines = ["A task whose state is S bytes of 4 KiB blocks, 10 of which change between "
                 "checkpoints (build/bench/kappa_runtime_bench; image written to memory). "
                 f"`maybe_checkpoint()` when no checkpoint is due: **{maybe_ns:.2f} ns**.", "",
                 "| state | full checkpoint | image | incremental checkpoint | delta image |",
                 "|---|---|---|---|---|"]
        data = ""
        for size in sorted(table):
            full, delta = table[size]["full"], table[size].get("delta_wp", (float("nan"), 0))
            lines.append(f"| {human_bytes(size)} | {full[0]:.1f} ms | {human_bytes(full[1])} | "
                         f"{delta[0]:.3f} ms | {human_bytes(delta[1])} |")
            data += f"{size} {full[0]} {delta[0]}\n"
        self.section("Checkpoint time against state size", lines)
        self.plots.append(("checkpoint", f"""
set title "Checkpoint time against state size (10 changed pages)"
set logscale xy
set xlabel "task state"; set ylabel "checkpoint (ms)"
set xtics ({xtics(sorted(table))})
set key top left
plot "checkpoint.dat" using 1:2 with linespoints lw 2 title "full image", \\
     "checkpoint.dat" using 1:3 with linespoints lw 2 title "incremental (changed pages)"
""", {"checkpoint.dat": data}))

    # ------------------------------------------------------------ applications

    def apps(self):
        selected = self.args.apps.split(",") if self.args.apps else [a.name for a in APPS]
        unknown = set(selected) - {a.name for a in APPS}
        if unknown:
            sys.exit(f"run_all: unknown app(s) {', '.join(sorted(unknown))}; "
                     f"known: {', '.join(a.name for a in APPS)}")
        rows, data = [], ""
        for app in [a for a in APPS if a.name in selected]:
            rows += self.app(app)
        lines = ["Wall time of the whole command, median of "
                 f"{self.reps}; Dask: the computation once its cluster is up. "
                 "Goals: Kappa within 1.25x of the hand-written 2-process program, "
                 "and at least 5x faster than Dask.", "",
                 "| application | input | Kappa | 1 process | 2 processes | Dask | "
                 "Kappa ÷ 2 processes | Dask ÷ Kappa | same answer |",
                 "|---|---|---|---|---|---|---|---|---|"]
        for i, row in enumerate(rows):
            (label, what, k, one, two, dk, same) = row
            ratio = k / two
            vs_dask = "" if dk is None else f"{dk / k:.1f}x"
            lines.append(f"| {label} | {what} | {k:.2f} s | {one:.2f} s | {two:.2f} s | "
                         f"{'' if dk is None else f'{dk:.2f} s'} | "
                         f"{ratio:.2f}x {'✓' if ratio <= 1.25 else '✗'} | "
                         f"{vs_dask} {'' if dk is None else ('✓' if dk / k >= 5 else '✗')} | "
                         f"{'yes' if same else '**no**'} |")
            data += (f"{i} \"{label}\" {one / two} 1 {k / two} "
                     f"{'NaN' if dk is None else dk / two}\n")
        self.section("Applications against hand-written C++ and Dask", lines)
        # gnuplot refuses a histogram series without a point: no Dask, no bar.
        dask_series = ', "" using 6 title "Dask, 2 workers"' if self.dask else ""
        self.plots.append(("apps", f"""
set title "Applications: time relative to the hand-written 2-process program"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y
set ylabel "time ÷ hand-written 2 processes (log)"
set xtics rotate by -20
set key top left
plot "apps.dat" using 3:xtic(2) title "plain, 1 process", \\
     "" using 4 title "hand-written, 2 processes", \\
     "" using 5 title "Kappa, 2 workers"{dask_series}
""", {"apps.dat": data}))

    def app(self, app):
        q = self.args.quick
        event = app.quick_event if q else app.event
        self.log(f"{app.name}: preparing the input")
        event = app.prepare(self, event) if app.prepare else event
        kappa_cmd = [self.path(*app.binary), "run", "--workers", "2", "--event", json.dumps(event),
                     "--data", f"file://{self.tmp}/data"]
        base_cmd = [self.path("bench", "baselines", f"{app.name}_baseline"), "--event",
                    json.dumps(event)]
        variants = [("kappa", kappa_cmd)]
        for label, extra in app.variants:
            variants.append((label, kappa_cmd + extra))
        variants += [("one", base_cmd + ["--procs", "1"]), ("two", base_cmd + ["--procs", "2"])]
        if self.dask:
            variants.append(("dask", [PYTHON, os.path.join(ROOT, "bench", "peers",
                                                           f"dask_{app.name}.py"),
                                      "--event", json.dumps(event)]))
        times = {v: [] for v, _ in variants}
        answers = {}
        for rep in range(self.reps):
            for v, cmd in variants:
                self.log(f"{app.name}: {v} (run {rep + 1} of {self.reps})")
                wall, out = self.run_json(cmd)
                times[v].append(out["seconds"] if v == "dask" else wall)
                answers[v] = {k: out.get(k) for k in app.answer}
        same = all(a == answers["kappa"] for a in answers.values())
        if not same:
            self.failures.append(f"{app.name}: the answers differ: " + json.dumps(answers)[:2000])
        med = {v: statistics.median(t) for v, t in times.items()}
        rows = [(app.title, app.describe(event), med["kappa"], med["one"], med["two"],
                 med.get("dask"), same)]
        for label, _ in app.variants:
            rows.append((f"{app.title}, {label}", app.describe(event), med[label], med["one"],
                         med["two"], None, same))
        return rows

    # ------------------------------------------------------------ output

    def machine(self):
        cpu = "unknown"
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            mem_gib = int(f.readline().split()[1]) / (1 << 20)
        commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip() or "unknown"
        # What this run writes (RESULTS.md, plots/) does not make the tree dirty.
        status = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True).stdout.splitlines()
        ours = os.path.relpath(os.path.abspath(self.args.out), ROOT) + "/"
        dirty = [line for line in status
                 if not (line[3:] == ours + "RESULTS.md" or line[3:].startswith(ours + "plots/"))]
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        return (f"{now}; commit {commit}{' (with uncommitted changes)' if dirty else ''}; "
                f"{os.cpu_count()} cores ({cpu}), {mem_gib:.0f} GiB, Linux {platform.release()}"
                f"{halt_polling()}{'; --quick' if self.args.quick else ''}")

    def draw(self, out_dir):
        if not self.plots:
            return []
        if not self.gnuplot:
            self.hints.append("Plots skipped: gnuplot is not installed "
                              "(scripts/setup.sh --bench installs Debian's gnuplot-nox).")
            return []
        plots_dir = os.path.join(out_dir, "plots")
        os.makedirs(plots_dir, exist_ok=True)
        drawn = []
        for name, script, data in self.plots:
            work = tempfile.mkdtemp(dir=self.tmp)
            for fname, content in data.items():
                with open(os.path.join(work, fname), "w") as f:
                    f.write(content)
            png = os.path.join(plots_dir, f"{name}.png")
            full = (f'set terminal pngcairo size 900,540 font "sans,11"\n'
                    f'set output "{png}"\nset grid\n{script}')
            r = subprocess.run([self.gnuplot], input=full, text=True, cwd=work,
                               capture_output=True)
            if r.returncode != 0:
                self.failures.append(f"gnuplot failed on {name}: {r.stderr[-500:]}")
            else:
                drawn.append(name)
        return drawn

    def write(self):
        out_dir = os.path.abspath(self.args.out)
        os.makedirs(out_dir, exist_ok=True)
        drawn = self.draw(out_dir)
        md = ["# Benchmark results", "",
              "Written by `bench/run_all.py` (run it again to refresh them); "
              "docs/benchmarks.md explains each measurement.", "",
              f"Machine and date: {self.machine()}.", ""]
        md += [f"> {h}" for h in self.hints] + ([""] if self.hints else [])
        for title, body in self.sections:
            md += [f"## {title}", "", body, ""]
        for name in drawn:
            md += [f"![{name}](plots/{name}.png)", ""]
        with open(os.path.join(out_dir, "RESULTS.md"), "w") as f:
            f.write("\n".join(md))
        self.log(f"wrote {os.path.join(out_dir, 'RESULTS.md')}"
                 + (f" and {len(drawn)} plots in {os.path.join(out_dir, 'plots')}" if drawn else ""))


# ---------------------------------------------------------------- the applications


class App:
    """One application: its binary, its events, and how to compare answers."""

    def __init__(self, name, title, binary, event, quick_event, answer, describe,
                 prepare=None, variants=()):
        self.name, self.title, self.binary = name, title, binary
        self.event, self.quick_event, self.answer = event, quick_event, answer
        self.describe, self.prepare, self.variants = describe, prepare, list(variants)


def wordcount_input(suite, event):
    """Generates the text once (deterministic; kept between runs in $TMPDIR)."""
    files, mb = event.pop("generate")
    folder = os.path.join(tempfile.gettempdir(), f"kappa-bench-wordcount-{files}x{mb}")
    suite.run_json([suite.path("examples", "wordcount", "wordcount"), "run", "--event",
                    json.dumps({"input": folder, "files": files, "mb_per_file": mb}),
                    "--data", f"file://{suite.tmp}/gen"])
    return dict(event, paths=[folder])


def tpch_q1_input(suite, event):
    """Generates the lineitem table once (deterministic; kept between runs in
    $TMPDIR)."""
    path = os.path.join(tempfile.gettempdir(), "kappa-bench-tpch-q1",
                        f"lineitem-sf{event['scale']:g}.tbl")
    suite.run_json([suite.path("examples", "tpch_q1", "tpch_q1"), "run", "--event",
                    json.dumps({"paths": [path], "scale": event["scale"]}),
                    "--data", f"file://{suite.tmp}/gen"])
    return dict(event, paths=[path])


def grep_input(suite, event):
    """The word count's generated text (kept between runs in $TMPDIR), which
    grep scans for a regex."""
    return wordcount_input(suite, dict(event))


def hashtags_input(suite, event):
    """A JSON-lines file of posts, written once by the baseline (deterministic;
    kept between runs in $TMPDIR). The app reads it as the other versions do."""
    posts = event.pop("generate")
    path = os.path.join(tempfile.gettempdir(), f"kappa-bench-hashtags-{posts}.jsonl")
    if not os.path.exists(path):
        suite.run_json([suite.path("bench", "baselines", "hashtags_baseline"), "--event",
                        json.dumps({"posts": posts, "write": path + ".tmp"})])
        os.rename(path + ".tmp", path)
    return dict(event, input=path)


def lineitem_bytes(event):
    return f"TPC-H lineitem SF {event['scale']:g}, {human_bytes(os.path.getsize(event['paths'][0]))}"


def input_bytes(event):
    total = 0
    for p in event["paths"] if "paths" in event else [event["input"]]:
        for root, _, names in os.walk(p) if os.path.isdir(p) else [("", [], [p])]:
            total += sum(os.path.getsize(os.path.join(root, n)) for n in names)
    return f"{human_bytes(total)} of text" if "paths" in event else \
        f"{human_bytes(total)} of JSON posts"


APPS = [
    App("wordcount", "word count", ("examples", "wordcount", "wordcount"),
        event={"generate": (16, 64), "top": 10}, quick_event={"generate": (4, 8), "top": 10},
        answer=["words", "distinct", "top"], describe=input_bytes, prepare=wordcount_input),
    App("tpch_q1", "TPC-H Q1", ("examples", "tpch_q1", "tpch_q1"),
        event={"scale": 10}, quick_event={"scale": 1},
        answer=["rows", "lineitems"], describe=lineitem_bytes, prepare=tpch_q1_input),
    App("grep", "grep (regex)", ("examples", "grep", "grep"),
        event={"generate": (16, 64), "pattern": r"(?i)\bmi[a-z]*pa\b"},
        quick_event={"generate": (4, 8), "pattern": r"(?i)\bmi[a-z]*pa\b"},
        answer=["matching_lines", "lines", "crc32"], describe=input_bytes, prepare=grep_input),
    App("hashtags", "streaming hashtags", ("examples", "hashtags", "hashtags"),
        event={"generate": 1000000, "report": False},
        quick_event={"generate": 300000, "report": False},
        answer=["posts", "hashtags", "distinct", "windows"], describe=input_bytes,
        prepare=hashtags_input),
    App("primes", "primes below n", ("examples", "primes", "primes"),
        event={"n": 3 * 10**10, "tasks": 2}, quick_event={"n": 10**10, "tasks": 2},
        answer=["primes"], describe=lambda e: f"n = {e['n']:.0e}, segmented sieve",
        variants=[("--time-limit 2", ["--time-limit", "2"])]),
]


def halt_polling():
    """How long an idle vCPU of a KVM guest polls before it halts, when the
    guest's haltpoll cpuidle driver is in use: every wake-up of a halted
    vCPU costs an interrupt and a VM entry (tens of µs), which sets the floor
    of the round trips between processes on different cores."""
    try:
        with open("/sys/devices/system/cpu/cpuidle/current_driver") as f:
            if f.read().strip() != "haltpoll":
                return ""
        with open("/sys/module/haltpoll/parameters/guest_halt_poll_ns") as f:
            ns = int(f.read())
    except (OSError, ValueError):
        return ""
    return (f"; KVM guest halt polling {ns / 1000:g} µs"
            f"{' (off)' if ns == 0 else ''} (guest_halt_poll_ns; Linux's default is 200 µs)")


def xtics(sizes):
    """gnuplot tic labels for byte sizes (0 drawn at 1)."""
    return ", ".join(f'"{human_bytes(s)}" {max(s, 1)}' for s in sizes)


def human_bytes(n):
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" or n >= 100 else f"{n:.3g} {unit}"
        n /= 1024
    return f"{n} B"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("--quick", action="store_true", help="small inputs, one repetition")
    ap.add_argument("--reps", type=int, help="repetitions of each measurement (3; --quick: 1)")
    ap.add_argument("--only", default="micro,checkpoints,apps",
                    help="sections to run, comma-separated: micro, checkpoints, apps")
    ap.add_argument("--apps", help="applications to run, comma-separated (default: all: "
                    + ", ".join(a.name for a in APPS) + ")")
    ap.add_argument("--no-dask", action="store_true", help="skip the Dask versions")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"), help="the build folder")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench"),
                    help="where RESULTS.md and plots/ go (default: bench/)")
    args = ap.parse_args()
    suite = Suite(args)
    sections = args.only.split(",")
    bad = set(sections) - {"micro", "checkpoints", "apps"}
    if bad:
        ap.error(f"unknown section(s): {', '.join(sorted(bad))}")
    try:
        for name in sections:
            getattr(suite, name)()
        suite.write()
    finally:
        shutil.rmtree(suite.tmp, ignore_errors=True)
    for h in suite.hints:
        print(h, file=sys.stderr)
    for f in suite.failures:
        print(f"run_all: FAILED: {f}", file=sys.stderr)
    return 1 if suite.failures else 0


if __name__ == "__main__":
    sys.exit(main())
