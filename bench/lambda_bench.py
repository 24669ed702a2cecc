#!/usr/bin/python3
"""The Lambda path's own costs, on the local Lambda fixture
(tests/fixtures/lambda/lambda_service.py).

1. Per-invocation overhead of the runtime loop: RequestResponse invokes of
   {"ping": true} answered by the app's custom runtime (GET invocation/next,
   the answer, POST response), warm (the same environment, thawed), beside
   the same invokes answered by a minimal bootstrap (a shell loop with curl)
   in the same fixture: the difference is what the app's runtime adds.
2. Warm against cold start: the first invoke after the function's
   configuration changed (a new environment: unzip the package, start
   bootstrap through the bundled loader, the ADDR_NO_RANDOMIZE re-exec,
   initialization) against warm ones.

    /usr/bin/python3 bench/lambda_bench.py [--app build/tests/semantics_app] [--reps N]

Starts and stops its own fixture (by PID). Invokes are signed with botocore's
SigV4Auth, as the fixture checks them. Prints Markdown tables of medians.
"""

import argparse
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request
import zipfile

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "lambda", "lambda_service.py")
KEY, SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
ROLE = "arn:aws:iam::123456789012:role/kappa-bench"

# A runtime as small as one can be: the loop in sh, curl for HTTP.
SHELL_BOOTSTRAP = """#!/bin/sh
api="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation"
while true; do
  id=$(curl -sS -D - -o /dev/null "$api/next" | tr -d '\\r' |
       sed -n 's/^[Ll]ambda-[Rr]untime-[Aa]ws-[Rr]equest-[Ii]d: //p')
  curl -sS -o /dev/null -X POST -d '{"pong":true}' "$api/$id/response"
done
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lambda:
    def __init__(self, endpoint):
        self.endpoint = endpoint
        self.creds = Credentials(KEY, SECRET)

    def call(self, method, path, body=b"", headers=None):
        req = AWSRequest(method=method, url=self.endpoint + path, data=body,
                         headers=dict(headers or {}, **{"Content-Type": "application/json"}))
        SigV4Auth(self.creds, "lambda", "us-east-1").add_auth(req)
        r = urllib.request.Request(req.url, data=body or None, method=method,
                                   headers=dict(req.headers.items()))
        with urllib.request.urlopen(r, timeout=120) as resp:
            return resp.status, resp.read()

    def invoke(self, name, payload):
        start = time.perf_counter()
        status, body = self.call("POST", "/2015-03-31/functions/%s/invocations" % name,
                                 json.dumps(payload).encode(),
                                 {"X-Amz-Invocation-Type": "RequestResponse"})
        elapsed = time.perf_counter() - start
        assert status == 200 and b"pong" in body, (status, body)
        return elapsed

    def touch(self, name, n):
        """A configuration change: the next invoke starts a new environment."""
        # The memory size, not the environment (which would replace KAPPA_KEY).
        body = json.dumps({"MemorySize": 1024 + n % 2}).encode()
        self.call("PUT", "/2015-03-31/functions/%s/configuration" % name, body)


def shell_function(lam, name):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o100755 << 16
        z.writestr(info, SHELL_BOOTSTRAP)
    import base64
    body = {"FunctionName": name, "Role": ROLE, "Runtime": "provided.al2023",
            "Handler": "x", "Timeout": 30, "MemorySize": 128,
            "Code": {"ZipFile": base64.b64encode(buf.getvalue()).decode()}}
    lam.call("POST", "/2015-03-31/functions", json.dumps(body).encode())


def ms(xs):
    return "%.2f" % (1000 * statistics.median(xs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--app", default=os.path.join(ROOT, "build", "tests", "semantics_app"))
    ap.add_argument("--reps", type=int, default=200, help="warm invokes per runtime")
    ap.add_argument("--cold", type=int, default=5, help="cold starts per runtime")
    args = ap.parse_args()

    port = free_port()
    work = tempfile.mkdtemp(prefix="kappa-lambda-bench-")
    fixture = subprocess.Popen(["/usr/bin/python3", FIXTURE, "--port", str(port),
                                "--work-dir", work], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL)
    try:
        fixture.stdout.readline()  # "listening ..."
        endpoint = "http://127.0.0.1:%d" % port
        env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET,
                   AWS_REGION="us-east-1", AWS_ENDPOINT_URL_LAMBDA=endpoint,
                   KAPPA_KEY="lambda-bench-key-0123456789")
        start = time.perf_counter()
        subprocess.run([args.app, "deploy", "--function", "kappa", "--role", ROLE,
                        "--timeout", "30"], env=env, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        deploy_s = time.perf_counter() - start
        lam = Lambda(endpoint)
        shell_function(lam, "shell")

        rows = []
        for name in ("kappa", "shell"):
            cold = []
            for i in range(args.cold):
                lam.touch(name, i)
                cold.append(lam.invoke(name, {"ping": True}))
            lam.invoke(name, {"ping": True})  # warm up
            warm = [lam.invoke(name, {"ping": True}) for _ in range(args.reps)]
            rows.append((name, warm, cold))

        size = os.path.getsize(args.app)
        print("## Lambda fixture: runtime loop and start-up (medians, ms)\n")
        print("app: %s (%.1f MB); deploy (package + CreateFunction): %.1f s\n" %
              (os.path.basename(args.app), size / 1e6, deploy_s))
        print("| runtime | warm invoke | cold invoke | cold - warm | warm invokes | cold starts |")
        print("|---|---|---|---|---|---|")
        names = {"kappa": "Kappa app (C++ runtime loop)", "shell": "sh + curl loop (floor)"}
        for name, warm, cold in rows:
            print("| %s | %s | %s | %s | %d | %d |" % (
                names[name], ms(warm), ms(cold),
                "%.2f" % (1000 * (statistics.median(cold) - statistics.median(warm))),
                len(warm), len(cold)))
        kw, sw = statistics.median(rows[0][1]), statistics.median(rows[1][1])
        print("\nThe app's runtime loop adds %.2f ms per warm invocation over the sh+curl floor "
              "(negative: it is cheaper than forking curl twice)." % (1000 * (kw - sw)))
    finally:
        fixture.send_signal(signal.SIGTERM)
        fixture.wait(timeout=30)
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
