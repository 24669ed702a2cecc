#!/usr/bin/python3
"""Kappa's Slurm backend beside plain Slurm, measured in the same run, on a
single-node Slurm started here (Debian's slurm-wlm and munge, configured as
tests/support/slurm_cluster.cc does: loopback ports, munged with a key of its
own, the scheduler tuned for speed). Prints one Markdown table of medians.

- `sbatch --wrap true` (a command as short: `date` into a file): N jobs
  submitted back to back; submit latency (one sbatch call), start latency
  (sbatch called until the job's command runs, from a timestamp the job
  writes; queueing included) and throughput (jobs per second, from the first
  submission until squeue shows none left); and the start latency of one job
  on an idle cluster.
- Kappa worker launch latency: `APP run --backend slurm` of a job of one
  trivial task, minus the same job with the local backend: what Slurm adds
  to a job that needs one worker (sbatch, scheduling, the batch script, the
  worker's start).
- Kappa tasks/s: the semantics app's `tree_sum` (n tasks, each spawning and
  awaiting children) with --workers W, on Slurm and on the local backend:
  tasks over the job's wall time (including the coordinator's start).

    /usr/bin/python3 bench/slurm_bench.py [--build DIR] [--rounds 5] [--jobs 40]
"""

import argparse
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


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def program(name):
    path = shutil.which(name) or next(
        (d + name for d in ("/usr/sbin/", "/sbin/") if os.access(d + name, os.X_OK)), None)
    if not path:
        sys.exit(f"{name} is not installed: run scripts/setup.sh")
    return path


class Cluster:
    """A single-node Slurm in a temporary directory; stopped by pid."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="kappa-slurm-bench-")
        d = self.dir
        munge = os.path.join(d, "munge")
        os.mkdir(munge, 0o700)
        with open(os.path.join(munge, "key"), "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(os.path.join(munge, "key"), 0o400)
        for sub in ("state", "spool"):
            os.mkdir(os.path.join(d, sub))
        self.conf = os.path.join(d, "slurm.conf")
        with open(self.conf, "w") as f:
            f.write(f"""ClusterName=kappabench
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={munge}/socket,cred_expire=10
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_interval=1,sched_min_interval=0,bf_interval=1
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs={os.cpu_count()} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
""")
        self.env = dict(os.environ, SLURM_CONF=self.conf)
        out = open(os.path.join(d, "daemons.out"), "w")
        self.procs = [subprocess.Popen(
            [program("munged"), "--foreground", "--force", f"--socket={munge}/socket",
             f"--key-file={munge}/key", f"--pid-file={munge}/pid", f"--log-file={munge}/log",
             f"--seed-file={munge}/seed"], stdout=out, stderr=out)]
        deadline = time.time() + 10
        while not os.path.exists(f"{munge}/socket"):
            if time.time() > deadline:
                self.stop()
                sys.exit("munged did not start")
            time.sleep(0.01)
        self.procs.append(subprocess.Popen([program("slurmctld"), "-D", "-i", "-f", self.conf],
                                           env=self.env, stdout=out, stderr=out))
        self.procs.append(subprocess.Popen(
            [program("slurmd"), "-D", "-N", "localhost", "-f", self.conf], env=self.env,
            stdout=out, stderr=out))
        deadline = time.time() + 30
        while True:
            r = subprocess.run(["sinfo", "-h", "-o", "%t"], env=self.env, capture_output=True,
                               text=True)
            if r.stdout.startswith("idle"):
                return
            if time.time() > deadline:
                self.stop()
                sys.exit("the Slurm node did not become idle; see the logs in " + d)
            time.sleep(0.1)

    def active(self):
        r = subprocess.run(["squeue", "-h", "-o", "%i"], env=self.env, capture_output=True,
                           text=True, check=True)
        return r.stdout.split()

    def wait_idle(self, timeout=60):
        deadline = time.time() + timeout
        while self.active():
            if time.time() > deadline:
                raise RuntimeError("jobs still queued after %d s" % timeout)
            time.sleep(0.02)

    def stop(self):
        subprocess.run(["scancel", "--full", f"--user={os.getuid()}"], env=self.env,
                       capture_output=True)
        for p in reversed(self.procs):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        # What is left of the jobs carries SLURM_CONF in its environment.
        entry = ("SLURM_CONF=" + self.conf).encode()
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    if entry in f.read().split(b"\0"):
                        os.kill(int(pid), 9)
            except OSError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


def sbatch_start(cluster):
    """Milliseconds from an sbatch call until its job's command runs, on an idle cluster."""
    stamp = os.path.join(cluster.dir, "stamp")
    if os.path.exists(stamp):
        os.remove(stamp)
    start = time.time()
    subprocess.run(["sbatch", "--parsable", "--time=1", "-o", "/dev/null", "--wrap",
                    f"date +%s.%N > {stamp}.tmp && mv {stamp}.tmp {stamp}"], env=cluster.env,
                   capture_output=True, check=True)
    while not os.path.exists(stamp):
        time.sleep(0.005)
    with open(stamp) as f:
        ran = float(f.read())
    cluster.wait_idle()
    return (ran - start) * 1e3


def sbatch_round(cluster, jobs):
    """Submit latency, start latency (medians, ms) and jobs/s of `jobs` plain jobs."""
    stamps = tempfile.mkdtemp(dir=cluster.dir)
    submit, sent = [], {}
    t0 = time.time()
    for i in range(jobs):
        start = time.time()
        subprocess.run(["sbatch", "--parsable", "--time=1", "-o", "/dev/null", "--wrap",
                        f"date +%s.%N > {stamps}/{i}"], env=cluster.env, capture_output=True,
                       check=True)
        submit.append(time.time() - start)
        sent[i] = start
    cluster.wait_idle()
    elapsed = time.time() - t0
    starts = []
    for i, at in sent.items():
        with open(f"{stamps}/{i}") as f:
            starts.append(float(f.read()) - at)
    return (statistics.median(submit) * 1e3, statistics.median(starts) * 1e3, jobs / elapsed)


def kappa_job(app, event, backend_args, cluster, workdir):
    """Wall seconds and tasks of one `APP run`."""
    argv = [app, "run", "--event", json.dumps(event), "--store", f"file://{workdir}/store"]
    argv += backend_args
    start = time.time()
    r = subprocess.run(argv, env=cluster.env, capture_output=True, text=True, cwd=workdir)
    wall = time.time() - start
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{r.stderr}")
    tasks = int(re.search(r"(\d+) tasks", r.stderr).group(1))
    return wall, tasks


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=40, help="plain sbatch jobs per round")
    ap.add_argument("--tree", type=int, default=64, help="tree_sum's n (tasks per job)")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    app = os.path.join(args.build, "tests", "semantics_app")
    if not os.access(app, os.X_OK):
        sys.exit(f"{app} is missing: cmake --build {args.build} --target semantics_app")
    os.environ.setdefault("KAPPA_KEY", "kappa-bench-key-0123456789abcdef")

    cluster = Cluster()
    rows = {k: [] for k in ("submit", "start", "idle_start", "sbatch_rate", "slurm_one", "local_one",
                            "slurm_rate", "local_rate")}
    try:
        work = tempfile.mkdtemp(dir=cluster.dir)
        slurm = ["--backend", "slurm", "--listen", "127.0.0.1:0", "--time-limit", "60",
                 "--log-dir", f"{work}/logs", "--workers", str(args.workers)]
        local = ["--workers", str(args.workers)]
        one = {"program": "fib", "n": 1}
        tree = {"program": "tree_sum", "n": args.tree}
        for r in range(args.rounds):
            submit, start, rate = sbatch_round(cluster, args.jobs)
            rows["submit"].append(submit)
            rows["start"].append(start)
            rows["sbatch_rate"].append(rate)
            rows["idle_start"].append(sbatch_start(cluster))
            rows["slurm_one"].append(kappa_job(app, one, slurm, cluster, work)[0])
            rows["local_one"].append(kappa_job(app, one, local, cluster, work)[0])
            wall, tasks = kappa_job(app, tree, slurm, cluster, work)
            rows["slurm_rate"].append(tasks / wall)
            wall, tasks = kappa_job(app, tree, local, cluster, work)
            rows["local_rate"].append(tasks / wall)
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        cluster.stop()

    m = {k: statistics.median(v) for k, v in rows.items()}
    print(f"Slurm 22.05, single node ({os.cpu_count()} CPUs), medians of {args.rounds} rounds; "
          f"--workers {args.workers}, tree_sum n={args.tree}\n")
    print("| measure | plain Slurm | Kappa on Slurm | Kappa, local backend |")
    print("|---|---|---|---|")
    print(f"| sbatch call (ms) | {m['submit']:.0f} | | |")
    print(f"| sbatch until the job runs, idle cluster (ms) | {m['idle_start']:.0f} | | |")
    print(f"| sbatch until the job runs, {args.jobs} queued at once (ms) | {m['start']:.0f} | | |")
    print(f"| one-task job, wall (ms) | | {m['slurm_one'] * 1e3:.0f} | {m['local_one'] * 1e3:.0f} |")
    print(f"| worker launch latency (ms): the one-task job over local | | "
          f"{(m['slurm_one'] - m['local_one']) * 1e3:.0f} | |")
    print(f"| throughput: jobs/s (`sbatch --wrap true`) or tasks/s (tree_sum) | "
          f"{m['sbatch_rate']:.1f} | {m['slurm_rate']:.1f} | {m['local_rate']:.1f} |")


if __name__ == "__main__":
    main()
