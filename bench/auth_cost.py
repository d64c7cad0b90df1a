"""What the API-key check costs a request, in CPU time, measured in process.

    .venv/bin/python bench/auth_cost.py            # ~1 min; prints the figures, writes nothing

bench/run.py's `keys` stack beside `service` compares their throughput through the whole
stack, which needs a quiet machine: the check's microseconds are far inside the run-to-run
spread of a loaded one. This measures them directly, robust to other load. The default
service rendered with auth=api_key (three keys, the last one sent) and trained, then in one
process two apps of it: as rendered (on), and the same with its key check removed (off).
Each is called as gunicorn's worker calls it behind nginx (the WSGI app, BEHIND_NGINX) with
POST /predict of one row, in alternating blocks; CPU time (not wall time) per request, the
smallest block of each. And the check alone, called in a loop within one request's context.

Divided by the app's CPU time per request, the check's cost bounds what it can take of the
stack's throughput from above: the stack also spends CPU in nginx and gunicorn
(bench/RESULTS.md, the CPU table), which the check does not touch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/ imports as a package

from bench.load import IRIS_ROWS
from bench.projects import SERVICE_VENV, render, snapshot_template, train
from bench.stacks import API_KEY, OTHER_API_KEYS

BLOCKS = 15
REQUESTS = 2000  # per block
CHECKS = 20000  # key checks alone, per block
KEYS = [*OTHER_API_KEYS, API_KEY]

# Runs in the service environment, from the project folder; prints one JSON line of results.
CHILD = """
import functools, io, json, sys, time
from iris_classifier.app import create_app

blocks, requests, checks = map(int, sys.argv[2:5])
key = sys.argv[5]
body = json.dumps({"row": json.loads(sys.argv[1])}).encode()
apps = {"on": create_app({"BEHIND_NGINX": True}), "off": create_app({"BEHIND_NGINX": True})}
(check,) = [f for f in apps["on"].before_request_funcs[None] if isinstance(f, functools.partial)]
apps["off"].before_request_funcs[None].remove(
    next(f for f in apps["off"].before_request_funcs[None] if isinstance(f, functools.partial))
)


def environ(with_key):
    return {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/predict", "SCRIPT_NAME": "",
        "QUERY_STRING": "", "SERVER_NAME": "localhost", "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.0", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr, "wsgi.multithread": False, "wsgi.multiprocess": True,
        "wsgi.run_once": False, "wsgi.version": (1, 0), "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)), "HTTP_HOST": "localhost", "HTTP_X_REAL_IP": "127.0.0.1",
        **({"HTTP_X_API_KEY": key} if with_key else {}),
    }


statuses = []
def start_response(status, headers, exc_info=None):
    statuses.append(status)


def block(name):
    app = apps[name]
    statuses.clear()
    started = time.process_time()
    for _ in range(requests):
        b"".join(app(environ(name == "on"), start_response))
    elapsed = time.process_time() - started
    assert set(statuses) == {"200 OK"}, (name, set(statuses))
    return elapsed / requests * 1e6


def checks_alone():
    with apps["on"].request_context(environ(True)):
        started = time.process_time()
        for _ in range(checks):
            check()
        return (time.process_time() - started) / checks * 1e6


results = {"on": [], "off": [], "check": []}
for number in range(blocks + 1):  # the first round warms up, and is dropped
    order = ["on", "off"] if number % 2 else ["off", "on"]
    measured = {name: block(name) for name in order}
    measured["check"] = checks_alone()
    if number:
        for name, value in measured.items():
            results[name].append(value)
print(json.dumps(results))
"""


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-auth-") as scratch:
        work = Path(scratch)
        print("==> rendering and training the default service with auth=api_key")
        template = snapshot_template(work / "template")
        project = work / "keys"
        render(template, project, {"auth": "api_key"})
        train(project)
        print(f"==> {BLOCKS} rounds of {REQUESTS} requests to each app, and {CHECKS} checks")
        arguments = [json.dumps(IRIS_ROWS[0]), str(BLOCKS), str(REQUESTS), str(CHECKS)]
        done = subprocess.run(
            [str(SERVICE_VENV / "bin" / "python"), "-c", CHILD, *arguments, API_KEY],
            cwd=project,
            env={**os.environ, "PYTHONPATH": "src", "API_KEYS": ",".join(KEYS)},
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"the measuring process failed:\n{done.stderr}")
    results = json.loads(done.stdout.splitlines()[-1])
    off, on, check = (min(results[name]) for name in ("off", "on", "check"))
    print(f"app CPU per 1-row POST /predict, best of {BLOCKS} blocks of {REQUESTS}:")
    for name, label in (("off", "check removed"), ("on", "auth=api_key")):
        blocks = sorted(round(value) for value in results[name])
        print(f"    {label:13} {min(results[name]):7.1f} µs   (blocks: {blocks})")
    print(f"the key check alone: {check:.2f} µs (best of {BLOCKS} blocks of {CHECKS})")
    print(
        f"its share of the app's CPU per request: {100 * check / off:.1f}% (the check alone), "
        f"{100 * (on - off) / off:.1f}% (on - off). An upper bound on the stack's throughput it "
        "takes: nginx and gunicorn spend CPU on every request too"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
