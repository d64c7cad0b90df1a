"""What the API-key check costs the default service, counted in instructions, not timed.

    .venv/bin/python bench/auth_cost.py     # ~8 min; needs valgrind; its section of RESULTS.md

bench/run.py's `keys` stack beside `service` compares their throughput through the whole
stack, but on a shared 2-core machine two identical stacks differ by several percent from run
to run (bench/RESULTS.md): a 2% cost is inside that noise. The instructions a process executes
are not: this counts them. The default service is rendered twice, with auth=none and
auth=api_key (three keys, the last one sent), both serving the same trained model, and each
runs as the stack runs it (`gunicorn --config deploy/gunicorn.conf.py`, one sync worker) under
Valgrind's callgrind. It takes one-row POST /predict requests on its unix socket, as nginx
sends them; callgrind counts the instructions of each connection the worker handles, and only
those (bench/counted_worker.py). Three runs: auth=none; auth=none sent the key's header all
the same (what carrying a key costs: gunicorn parses every header, and copies it into the WSGI
environ and its access-log fields); auth=api_key (what checking it adds). Counted, not timed,
the figures do not move with whatever else the machine does; runs differ by a few thousand
instructions a request (temporary paths, timestamps and model versions differ).

Each cost's share of the worker's instructions per request bounds the throughput it takes
from above: nginx also works on every request, and is not counted here.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/ imports as a package

from bench.load import IRIS_ROWS
from bench.projects import BENCH, RESULTS, SERVICE_VENV, render, snapshot_template, train
from bench.report import write_section
from bench.stacks import API_KEY, OTHER_API_KEYS

REQUESTS = 200
WARM_UP = 20  # requests not counted: lazy imports, the first metric files
READY_WITHIN = 600  # seconds for gunicorn to start under Valgrind (imports run ~50x slower)
BODY = json.dumps({"row": IRIS_ROWS[0]}).encode()


def request_bytes(headers: dict[str, str]) -> bytes:
    """One POST /predict as nginx forwards it to gunicorn (deploy/nginx.conf's proxy headers)."""
    lines = [
        "POST /predict HTTP/1.0",
        "Host: 127.0.0.1",
        "X-Real-IP: 127.0.0.1",
        "X-Forwarded-Proto: http",
        "X-Request-ID: 4f1b8c2d9e3a4b5c6d7e8f9a0b1c2d3e",
        "Connection: close",
        "Content-Type: application/json",
        f"Content-Length: {len(BODY)}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + BODY


def exchange(socket_path: Path, request: bytes) -> bytes:
    """Send one request on a new connection, as nginx does to a sync worker; the answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(120)
        connection.connect(str(socket_path))
        connection.sendall(request)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def send(socket_path: Path, request: bytes, count: int) -> None:
    for _ in range(count):
        answer = exchange(socket_path, request)
        if not answer.startswith(b"HTTP/1.0 200") and not answer.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"a request was not answered 200:\n{answer[:600].decode()}")


def counted(project: Path, environment: dict[str, str], headers: dict[str, str]) -> list[int]:
    """The worker's instructions for each measured request (bench/counted_worker.py)."""
    socket_path = project / "run" / "gunicorn.sock"
    (project / "run").mkdir(exist_ok=True)
    socket_path.unlink(missing_ok=True)
    dumps = project / "callgrind"
    shutil.rmtree(dumps, ignore_errors=True)  # an earlier run's
    dumps.mkdir()
    command = [
        "valgrind",
        "--tool=callgrind",
        "--collect-atstart=no",
        "--toggle-collect=functools_reduce",
        "--dump-after=functools_reduce",
        f"--callgrind-out-file={dumps}/out.%p",
        str(SERVICE_VENV / "bin" / "gunicorn"),
        "--config",
        "deploy/gunicorn.conf.py",
    ]
    environment = {
        **environment,
        "PATH": f"{SERVICE_VENV / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": f"src{os.pathsep}{BENCH}",
        "PYTHONHASHSEED": "0",  # the same dictionaries, in the same order, in every run
        # One worker, never timed out while Valgrind slows it, whose connections are counted.
        "GUNICORN_CMD_ARGS": "--workers 1 --timeout 0 --worker-class counted_worker.CountedWorker",
    }
    log_path = project / "gunicorn-valgrind.log"
    with log_path.open("w") as log:
        master = subprocess.Popen(
            command, cwd=project, env=environment, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + READY_WITHIN
            while not socket_path.exists():
                if master.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"gunicorn did not start:\n{log_path.read_text()}")
                time.sleep(1)
            # The worker imports the app before it accepts: the first answer waits for it.
            send(socket_path, request_bytes(headers), WARM_UP + REQUESTS)
        finally:
            master.send_signal(signal.SIGTERM)
            try:
                master.wait(timeout=300)
            except subprocess.TimeoutExpired:
                master.kill()
    # out.<pid>.<n>: one file a connection, numbered in order, from the worker alone.
    numbered = sorted(
        (int(path.name.rsplit(".", 1)[1]), path)
        for path in dumps.glob("out.*.*")
        if path.name.rsplit(".", 1)[1].isdigit()
    )
    if len(numbered) != WARM_UP + REQUESTS:
        raise SystemExit(f"{len(numbered)} dumps for {WARM_UP + REQUESTS} requests in {dumps}")
    return [instructions(path) for _, path in numbered[WARM_UP:]]


def instructions(dump: Path) -> int:
    """The instructions a callgrind dump counted: its `summary:` (or `totals:`) line."""
    for line in dump.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise SystemExit(f"{dump}: no summary line")


TARGET_PERCENT = 2
LABELS = {
    "off": "auth=none",
    "carried": "auth=none, sent the key header anyway",
    "on": "auth=api_key",
}


def section(results: dict[str, list[int]]) -> list[str]:
    """The "API keys" section of RESULTS.md: instructions per request, and what each part costs."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "## API keys",
        "",
        f"Written by `python bench/auth_cost.py` on {when}: the instructions gunicorn's worker "
        f"executes per one-row POST /predict under callgrind, over {REQUESTS} requests after "
        f"{WARM_UP} not counted (runs differ by a few thousand: paths, times and versions differ, "
        "not the machine's load). Each cost's share of the worker's "
        "instructions bounds the throughput it takes from above (nginx's work per request is "
        f"not counted). Target (issue 15): auth=api_key, all in, <= {TARGET_PERCENT}%.",
        "",
        "| worker | instructions per request (median) | min | max |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, label in LABELS.items():
        values = results[name]
        lines.append(
            f"| {label} | {statistics.median(values):,.0f} | {min(values):,} | {max(values):,} |"
        )
    off, carried, on = (statistics.median(results[name]) for name in LABELS)
    lines += ["", "| cost | instructions per request | share of the worker's | target |"]
    lines.append("| --- | ---: | ---: | --- |")
    all_in = 100 * (on - off) / on
    verdict = f"<= {TARGET_PERCENT}%: {'met' if all_in <= TARGET_PERCENT else 'NOT met'}"
    for label, cost, target in (
        ("carrying the key: gunicorn parses one more header", carried - off, ""),
        ("checking it: api/auth.py", on - carried, ""),
        ("auth=api_key, all in", on - off, verdict),
    ):
        lines.append(f"| {label} | {cost:,.0f} | {100 * cost / on:.2f}% | {target} |")
    return [*lines, ""]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=RESULTS, help="default: %(default)s")
    parser.add_argument("--no-write", action="store_true", help="print the section only")
    arguments = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="bench-auth-") as scratch:
        work = Path(scratch)
        print("==> rendering the default service with auth=none and auth=api_key; training once")
        template = snapshot_template(work / "template")
        off, on = work / "off", work / "on"
        render(template, off, {})
        render(template, on, {"auth": "api_key"})
        train(off)
        shutil.copytree(off / "models", on / "models", dirs_exist_ok=True)
        print(f"==> each under callgrind: {WARM_UP} + {REQUESTS} one-row POST /predict")
        keys = {**os.environ, "API_KEYS": ",".join([*OTHER_API_KEYS, API_KEY])}
        key_header = {"X-API-Key": API_KEY}
        results = {
            "off": counted(off, dict(os.environ), {}),
            "carried": counted(off, dict(os.environ), key_header),
            "on": counted(on, keys, key_header),
        }
    lines = section(results)
    print("\n".join(lines))
    if not arguments.no_write:
        write_section(arguments.output, lines)
        print(f"written: {arguments.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
