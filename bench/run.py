"""Benchmark the rendered service against the null-endpoint ceiling, on the real stack.

One command (from the repository root):

    python bench/run.py              # the full run, 10 s per measurement; writes bench/RESULTS.md
    python bench/run.py --smoke      # 2 s, one payload, one concurrency, nothing written

It renders the default service with Copier into a temporary folder (timing `copier copy
--defaults` and a no-op `copier update`), renders the random-forest variant, trains both, and
serves each with the project's own `make serve` (supervisord -> nginx -> gunicorn, 2 sync
workers) on a free loopback port. Beside them, on the same stack, it serves:

  * ceiling: bench/null_app.py, a Flask app answering a constant (the null endpoint);
  * plain:   bench/plain_app.py, the same random forest in a plain Flask + scikit-learn view;
  * onnx:    the default service rendered with model_format=onnx (0.3.0's default), to show
             what the NumPy format gains on the same linear model;
  * mixed:   the mixed-type default: training_data=csv on a synthetic CSV of numbers and text
             categories (write_mixed_csv), the linear model in the NumPy format, its rows sent
             as objects with strings;
  * mlflow, bentoml: the default service's pipeline served by `mlflow models serve` and by
    `bentoml serve`, each from a virtual environment of its own (bench/peers.py), with the
    same nginx and supervisord in front. Left out with --no-peers, or if pip cannot install them.

The renders use their default model formats: NumPy for the linear service, ONNX for the forest
(no scikit-learn in the workers); plain is the scikit-learn reference.

Both are copies of the rendered default project with gunicorn's `wsgi_app` pointed at the
bench app, so nginx.conf, gunicorn.conf.py and supervisord.conf are byte for byte the ones the
service runs with. wrk loads each at c=8 and c=64 with a one-row and a 100-row body; every
(payload, concurrency) case measures all the stacks in turn, twice, alternating, so drift on the
machine shows up as spread between the two rounds instead of as a difference between stacks.

Benchmarks are not tests: nothing here asserts a time. Every process started is stopped
(each stack runs in a session of its own), everything listens on 127.0.0.1 only, and every
wait is bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import peers  # bench/peers.py: run.py runs as a script, so its folder is on sys.path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
SERVICE_VENV = REPO / "build" / "service-venv"
COPIER = REPO / ".venv" / "bin" / "copier"
RESULTS = BENCH / "RESULTS.md"
WORKERS = 2  # gunicorn workers, for every stack (WEB_CONCURRENCY)
READY_WITHIN = 60  # seconds from `make serve` to /readyz answering 200
STOP_WITHIN = 60  # seconds for supervisord to stop its programs gracefully
WARMUP_SECONDS = 2
PACKAGE = "iris_classifier"  # the default render's package
# The keys stack's API keys (auth=api_key): made up here, for this run only.
API_KEY = "bench-key-0f6c2d8e9a7b4135"
OTHER_API_KEYS = ["bench-key-retired-1", "bench-key-retired-2"]

# Rows 0, 50 and 100 of scikit-learn's iris data set, one of each class.
IRIS_ROWS = [
    {"sepal_length_cm": 5.1, "sepal_width_cm": 3.5, "petal_length_cm": 1.4, "petal_width_cm": 0.2},
    {"sepal_length_cm": 7.0, "sepal_width_cm": 3.2, "petal_length_cm": 4.7, "petal_width_cm": 1.4},
    {"sepal_length_cm": 6.3, "sepal_width_cm": 3.3, "petal_length_cm": 6.0, "petal_width_cm": 2.5},
]
PAYLOAD_ROWS = {"1 row": IRIS_ROWS[:1], "100 rows": [IRIS_ROWS[i % 3] for i in range(100)]}
# The service's (and the references') bodies; the peers get theirs from bench/peers.py.
PAYLOADS = {"1 row": {"row": IRIS_ROWS[0]}, "100 rows": {"rows": PAYLOAD_ROWS["100 rows"]}}
CONCURRENCIES = [8, 64]

# The mixed-type stack: its training CSV, and rows of it (the first complete ones) as bodies.
MIXED_TARGET = "churned"
MIXED_ROWS = 400


def write_mixed_csv(path: Path) -> list[dict]:
    """A deterministic customer table: 3 numbers, 2 text categories, some empty cells.

    Returns the first 100 rows without an empty cell, as the JSON objects a client sends.
    """
    rng = random.Random(0)
    rows, complete = [], []
    for index in range(MIXED_ROWS):
        row = {
            "age": rng.randint(18, 80),
            "income": round(rng.gauss(50_000, 15_000), 2),
            "tenure": rng.randint(0, 20),
            "plan": rng.choice(["basic", "plus", "premium"]),
            "region": rng.choice(["north", "south", "east", "west"]),
        }
        score = (row["age"] - 45) / 15 + 1.5 * (row["plan"] == "premium") + rng.gauss(0, 1)
        if index % 11 == 5:
            row[list(row)[index % 5]] = ""  # an empty cell, in each column by turns
        elif len(complete) < 100:
            complete.append(dict(row))
        rows.append({**row, MIXED_TARGET: "yes" if score > 0.3 else "no"})
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as table:
        writer = csv.DictWriter(table, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return complete


# ---------------------------------------------------------------------------- processes


@dataclass
class Stack:
    """A running `make serve`, in a session of its own, on 127.0.0.1:port."""

    name: str
    project: Path
    port: int
    make: subprocess.Popen
    log: Path
    predict_path: str = "/predict"
    ready_path: str = "/readyz"
    # Sent with every measured request (the keys stack's API key).
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def session(self) -> dict[int, tuple[int, str]]:
        """Every live process of this stack's session: pid -> (ppid, command line)."""
        return session_processes(self.make.pid)


def session_processes(sid: int) -> dict[int, tuple[int, str]]:
    """pid -> (ppid, command line) of every process in session `sid` and of their descendants.

    Descendants count too: BentoML starts each worker in a session of its own.
    """
    processes, sessions = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ")
        except (FileNotFoundError, ProcessLookupError):
            continue  # it ended while being read
        if fields[0] != "Z":
            pid = int(stat.parent.name)
            processes[pid] = (int(fields[1]), command.decode(errors="replace"))
            sessions[pid] = int(fields[3])
    found = {pid for pid, session in sessions.items() if session == sid}
    while True:
        children = {pid for pid, (ppid, _) in processes.items() if ppid in found} - found
        if not children:
            return {pid: processes[pid] for pid in found}
        found |= children


def free_port() -> int:
    """A TCP port nothing listens on at the moment, on loopback."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run(
    command: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 300
) -> str:
    """Run a command to completion; its output, or SystemExit with that output if it failed."""
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise SystemExit(
            f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
        )
    return done.stdout


def stack_environment(gunicorn_args: str = "") -> dict[str, str]:
    """The environment every stack runs in: the project from src/, bench/ importable, 2 workers.

    `gunicorn_args` (--gunicorn-args), if any, go to every stack's gunicorn through
    GUNICORN_CMD_ARGS, which overrides gunicorn.conf.py: for diagnostics, e.g. "--max-requests 0".
    """
    environment = {
        **os.environ,
        "PYTHONPATH": f"src{os.pathsep}{BENCH}",
        "WEB_CONCURRENCY": str(WORKERS),
    }
    environment.pop("GUNICORN_CMD_ARGS", None)
    if gunicorn_args:
        environment["GUNICORN_CMD_ARGS"] = gunicorn_args
    return environment


def start(
    name: str, project: Path, gunicorn_args: str = "", peer: peers.Peer | None = None
) -> Stack:
    """`make serve` in `project` on a free port, as test_live_stack runs it; ready or SystemExit."""
    (project / "run").mkdir(exist_ok=True)
    port = free_port()
    log = project / "serve.log"
    environment = stack_environment(gunicorn_args)
    headers = {}
    if name == "keys":
        # Three keys, the one sent last: the check compares the key sent with every one.
        environment["API_KEYS"] = ",".join([*OTHER_API_KEYS, API_KEY])
        headers["X-API-Key"] = API_KEY
    with log.open("w") as output:
        make = subprocess.Popen(
            ["make", "serve", f"VENV={SERVICE_VENV}", "HOST=127.0.0.1", f"PORT={port}"],
            cwd=project,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a session of its own: all of it is findable, and stoppable
        )
    stack = Stack(name, project, port, make, log, headers=headers)
    if peer is not None:
        stack.predict_path, stack.ready_path = peer.predict_path, peer.ready_path
    wait_until_ready(stack)
    return stack


def wait_until_ready(stack: Stack) -> None:
    """Poll /readyz until it answers 200; stop the stack and exit if it never does."""
    deadline = time.monotonic() + READY_WITHIN
    while time.monotonic() < deadline:
        if stack.make.poll() is not None:
            stop(stack)
            raise SystemExit(f"{stack.name}: make serve exited:\n{stack.log.read_text()}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(stack.url + stack.ready_path, timeout=5) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.2)
    stop(stack)
    raise SystemExit(
        f"{stack.name}: {stack.ready_path} not 200 within {READY_WITHIN} s:\n"
        + stack.log.read_text()
    )


def stop(stack: Stack) -> list[str]:
    """SIGTERM to the stack's process group (make and supervisord), then SIGKILL to what is left.

    Returns the command lines that had to be killed: empty when the graceful stop worked.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(stack.make.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WITHIN
    while stack.session() and time.monotonic() < deadline:
        time.sleep(0.2)
    left = stack.session()
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        stack.make.wait(5)
    return [command for _, command in left.values()]


def stack_part(command: str) -> str | None:
    """Which part of a stack a process is, by its command line: "nginx", "supervisord",
    "server" (gunicorn, or a peer's server processes), or None for the make that started it."""
    if "make serve" in command:
        return None
    return next((name for name in ("nginx", "supervisord") if name in command), "server")


def server_processes(stack: Stack) -> list[int]:
    """The processes that run the model: gunicorn's workers, or a peer's server processes."""
    if workers := gunicorn_workers(stack):
        return workers
    return sorted(
        pid for pid, (_, command) in stack.session().items() if stack_part(command) == "server"
    )


def gunicorn_workers(stack: Stack) -> list[int]:
    """The pids of the stack's gunicorn or granian workers (children of the master; granian's
    workers are forks with its master's command line)."""
    processes = stack.session()
    masters = [
        pid
        for pid, (ppid, command) in processes.items()
        for marker in ("gunicorn", ".granian_server")
        if marker in command and marker not in processes.get(ppid, (0, ""))[1]
    ]
    return sorted(pid for pid, (ppid, _) in processes.items() if ppid in masters)


def worker_boots(stack: Stack) -> int:
    """How many workers the stack has booted so far (the first ones too), from its log:
    gunicorn's "Booting worker" lines, granian's "Spawning worker"."""
    log = stack.log.read_text(errors="replace")
    return len(re.findall(r"Booting worker with pid|Spawning worker-\d+ with PID", log))


def rss_mib(pid: int) -> float:
    """A process's resident set size, in MiB, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(stack: Stack) -> dict[str, float]:
    """CPU seconds (user + system) the stack's processes have used so far, by part.

    The parts are stack_part's: gunicorn's master and workers (or a peer's server processes),
    nginx and supervisord; the make that started the stack is left out.
    """
    parts = {"server": 0.0, "nginx": 0.0, "supervisord": 0.0}
    for pid, (_, command) in stack.session().items():
        if (part := stack_part(command)) is None:
            continue
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # it ended while being read
        parts[part] += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
    return parts


def children_cpu_seconds() -> float:
    """CPU seconds used by this process's finished children so far (wrk's, after each run)."""
    times = os.times()
    return times.children_user + times.children_system


# ------------------------------------------------------------------------------ projects


def timed(command: list[str], cwd: Path) -> float:
    """Seconds a command took, run to completion (SystemExit if it failed)."""
    started = time.perf_counter()
    run(command, cwd)
    return time.perf_counter() - started


TEMPLATE_PATHS = ["copier.yml", "template", "hooks", "extensions"]  # as tests/conftest.py


def snapshot_template(destination: Path) -> Path:
    """The template as checked out (uncommitted changes included) in a throwaway git repository,
    committed and tagged with pyproject.toml's version, as the update tests make it: `copier
    update` needs a commit it can find again, which `--vcs-ref HEAD` of a dirty checkout is not."""
    destination.mkdir()
    for name in TEMPLATE_PATHS:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(
                source, destination / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(source, destination / name)
    version = re.search(r'(?m)^version = "([^"]+)"', (REPO / "pyproject.toml").read_text()).group(1)
    run(["git", "init", "--quiet"], destination)
    run(["git", "add", "--all"], destination)
    run([*GIT, "commit", "--quiet", "-m", "snapshot"], destination)
    run(["git", "tag", version], destination)
    return destination


GIT = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]


def render(template: Path, destination: Path, answers: dict[str, str]) -> float:
    """`copier copy --trust --defaults` of the snapshot's tag, with `answers`; the seconds taken."""
    data = [argument for key, value in answers.items() for argument in ("-d", f"{key}={value}")]
    return timed(
        [
            str(COPIER),
            "copy",
            "--trust",
            "--defaults",
            "--quiet",
            *data,
            str(template),
            str(destination),
        ],
        destination.parent,
    )


def time_noop_update(project: Path) -> float:
    """Commit the rendered project to a fresh git repository, then time a `copier update` with
    nothing to change (same template, same answers)."""
    run(["git", "init", "--quiet"], project)
    run(["git", "add", "--all"], project)
    run([*GIT, "commit", "--quiet", "-m", "rendered"], project)
    seconds = timed([str(COPIER), "update", "--trust", "--defaults", "--quiet"], project)
    changed = run(["git", "status", "--porcelain"], project)
    if changed.strip():
        print(f"    warning: the no-op copier update changed files:\n{changed}", file=sys.stderr)
    return seconds


def train(project: Path) -> None:
    """`make train` with the shared service environment, the project running from src/."""
    run(["make", "train", f"VENV={SERVICE_VENV}"], project, {**os.environ, "PYTHONPATH": "src"})


def bench_copy(project: Path, destination: Path, wsgi_app: str) -> Path:
    """A copy of a rendered project whose gunicorn serves `wsgi_app` instead of the service.

    Only the `wsgi_app = ...` line of deploy/gunicorn.conf.py changes: nginx, supervisord and
    every other gunicorn setting stay the rendered ones.
    """
    shutil.copytree(project, destination, ignore=shutil.ignore_patterns(".git", "run", "*.log"))
    config = destination / "deploy" / "gunicorn.conf.py"
    text, count = re.subn(r"(?m)^wsgi_app = .*$", f'wsgi_app = "{wsgi_app}"', config.read_text())
    if count != 1:
        raise SystemExit(f"{config}: expected one `wsgi_app = ...` line, found {count}")
    config.write_text(text)
    return destination


def granian_copy(project: Path, destination: Path, app_module: str) -> Path:
    """A copy of a granian render whose workers serve `app_module`'s create_app instead.

    Only the import of create_app in src/<package>/granian_server.py changes: nginx,
    supervisord and every granian setting stay the rendered ones.
    """
    shutil.copytree(project, destination, ignore=shutil.ignore_patterns(".git", "run", "*.log"))
    server = destination / "src" / PACKAGE / "granian_server.py"
    line = f"from {PACKAGE}.app import create_app"
    text, count = re.subn(
        rf"(?m)^(\s*){re.escape(line)}$",
        rf"\1from {app_module} import create_app",
        server.read_text(),
    )
    if count != 1:
        raise SystemExit(f"{server}: expected one `{line}` line, found {count}")
    server.write_text(text)
    return destination


def keepalive_copy(project: Path, destination: Path, connections: int) -> Path:
    """A copy of a granian render whose nginx keeps `connections` idle connections to granian
    per nginx worker: `keepalive` in the upstream, and no Connection: close sent to it
    (proxy_http_version 1.1 is already there)."""
    shutil.copytree(project, destination, ignore=shutil.ignore_patterns(".git", "run", "*.log"))
    config = destination / "deploy" / "nginx.conf"
    text = config.read_text()
    upstream = "server unix:run/granian.sock;"
    proxy = "proxy_http_version 1.1;"
    if text.count(upstream) != 1 or text.count(proxy) != 1:
        raise SystemExit(f"{config}: expected granian's upstream and one {proxy}")
    text = text.replace(upstream, f"{upstream}\n        keepalive {connections};")
    text = text.replace(proxy, f'{proxy}\n            proxy_set_header Connection "";')
    config.write_text(text)
    return destination


# ------------------------------------------------------------------------------- loading


@dataclass
class Measurement:
    """One wrk run against one stack."""

    stack: str
    payload: str
    connections: int
    round: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    # CPU microseconds per request: the stack's parts (cpu_seconds) and the load generator.
    cpu_us: dict[str, float] = field(default_factory=dict)


def wrk(
    url: str,
    body: Path,
    connections: int,
    seconds: float,
    threads: int,
    headers: dict[str, str] | None = None,
) -> dict:
    """POST `body` to `url` for `seconds`; wrk's summary as a dict (bench/post.lua)."""
    command = [
        "wrk",
        f"--threads={min(threads, connections)}",
        f"--connections={connections}",
        f"--duration={max(1, round(seconds))}s",
        "--timeout=30s",
        f"--script={BENCH / 'post.lua'}",
        *(f"--header={name}: {value}" for name, value in (headers or {}).items()),
        url,
    ]
    done = subprocess.run(
        command,
        env={**os.environ, "BENCH_BODY": str(body)},
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    match = re.search(r"^BENCH_JSON (.*)$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or match is None:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
    return json.loads(match.group(1))


def measure(
    stack: Stack,
    payload: str,
    body: Path,
    connections: int,
    seconds: float,
    threads: int,
    round_: int,
) -> Measurement:
    """One measurement, as a Measurement; any error or non-2xx response is counted."""
    stack_before, wrk_before = cpu_seconds(stack), children_cpu_seconds()
    summary = wrk(
        stack.url + stack.predict_path, body, connections, seconds, threads, stack.headers
    )
    stack_after, wrk_after = cpu_seconds(stack), children_cpu_seconds()
    errors = sum(summary[key] for key in ("connect", "read", "write", "status", "timeout"))
    per_request = 1e6 / max(summary["requests"], 1)
    cpu_us = {part: (stack_after[part] - stack_before[part]) * per_request for part in stack_after}
    cpu_us["wrk"] = (wrk_after - wrk_before) * per_request
    return Measurement(
        stack.name,
        payload,
        connections,
        round_,
        rps=summary["requests"] / (summary["duration_us"] / 1e6),
        p50_ms=summary["p50_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        errors=errors,
        cpu_us=cpu_us,
    )


def check_answers(stack: Stack, body: Path) -> None:
    """One request with the body: it must answer 200, or the numbers would measure errors."""
    request = urllib.request.Request(
        stack.url + stack.predict_path,
        data=body.read_bytes(),
        headers={"Content-Type": "application/json", **stack.headers},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.status != 200:
            raise SystemExit(f"{stack.name}: POST {stack.predict_path} answered {response.status}")


# ------------------------------------------------------------------------------- reports


@dataclass
class Summary:
    """The rounds of one (stack, payload, concurrency), merged."""

    rps: float
    p50_ms: float
    p99_ms: float
    spread: float  # (max - min) / mean of the rounds' req/s
    errors: int
    rounds: list[float] = field(default_factory=list)
    cpu_us: dict[str, float] = field(default_factory=dict)  # median of the rounds, per part


def summarize(measurements: list[Measurement]) -> dict[tuple[str, str, int], Summary]:
    """Mean req/s, median p50, worst p99 and req/s spread per (stack, payload, concurrency)."""
    groups: dict[tuple[str, str, int], list[Measurement]] = {}
    for m in measurements:
        groups.setdefault((m.stack, m.payload, m.connections), []).append(m)
    summaries = {}
    for key, group in groups.items():
        rates = [m.rps for m in group]
        mean = statistics.fmean(rates)
        summaries[key] = Summary(
            rps=mean,
            p50_ms=statistics.median(m.p50_ms for m in group),
            p99_ms=max(m.p99_ms for m in group),
            spread=(max(rates) - min(rates)) / mean if mean else 0.0,
            errors=sum(m.errors for m in group),
            rounds=rates,
            cpu_us={
                part: statistics.median(m.cpu_us[part] for m in group) for part in group[0].cpu_us
            },
        )
    return summaries


# (stack, reference, payload or None for both, req/s target ratio, p99 target ratio or None)
TARGETS = [
    ("service", "ceiling", "1 row", 0.85, 2.0),
    ("service", "ceiling", "100 rows", 0.75, None),
    ("mixed", "ceiling", "1 row", 0.80, None),
    ("forest", "plain", None, 5.0, None),
    ("service", "mlflow", None, 3.0, None),
    ("service", "bentoml", None, 4.0, None),
    # The API-key check (auth=api_key) costs at most 2% of the default service's throughput.
    ("keys", "service", None, 0.98, None),
    # issue 18: granian behind the same nginx against gunicorn's own ceiling, and its own.
    ("granian", "ceiling", "1 row", 1.5, 2.0),
    ("granian", "ceiling", "100 rows", 1.3, None),
]


def result_table(summaries: dict[tuple[str, str, int], Summary]) -> list[str]:
    """Markdown rows: every measurement group, with its ratios to its reference stack."""
    references = {
        "service": "ceiling",
        "keys": "service",
        "forest": "plain",
        "onnx": "ceiling",
        "mixed": "ceiling",
        "plain": "ceiling",
        "mlflow": "ceiling",
        "bentoml": "ceiling",
        "granian": "ceiling",
        "granian-ceiling": "ceiling",
        "granian-keepalive": "granian",
    }
    lines = [
        "| stack | payload | c | req/s (mean of rounds) | rounds | spread | p50 ms | p99 ms "
        "| errors | req/s ratio | p99 ratio |",
        "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for (name, payload, c), s in sorted(
        summaries.items(), key=lambda i: (i[0][1], i[0][2], i[0][0])
    ):
        reference = summaries.get((references.get(name, ""), payload, c))
        ratio = f"{s.rps / reference.rps:.2f} x {references[name]}" if reference else ""
        p99 = f"{s.p99_ms / reference.p99_ms:.2f} x {references[name]}" if reference else ""
        rounds = " / ".join(f"{r:.0f}" for r in s.rounds)
        lines.append(
            f"| {name} | {payload} | {c} | {s.rps:.0f} | {rounds} | {s.spread:.1%} "
            f"| {s.p50_ms:.2f} | {s.p99_ms:.2f} | {s.errors} | {ratio} | {p99} |"
        )
    return lines


def cpu_table(summaries: dict[tuple[str, str, int], Summary]) -> list[str]:
    """Markdown rows: CPU microseconds per request, by part of the stack and for wrk.

    On a machine the load saturates, throughput is about CPUs / total CPU per request, so a
    stack's total against the ceiling's says what its ratio is made of, with less noise than
    req/s (each process's CPU time is its own, whatever else ran beside it).
    """
    parts = ["server", "nginx", "supervisord", "wrk"]
    lines = [
        "| stack | payload | c | " + " | ".join(parts) + " | total | ceiling's total / total |",
        "| --- | --- | ---: | " + "---: | " * len(parts) + "---: | ---: |",
    ]
    for (name, payload, c), s in sorted(
        summaries.items(), key=lambda i: (i[0][1], i[0][2], i[0][0])
    ):
        total = sum(s.cpu_us.get(part, 0.0) for part in parts)
        ceiling = summaries.get(("ceiling", payload, c))
        ceiling_total = sum(ceiling.cpu_us.get(part, 0.0) for part in parts) if ceiling else 0
        ratio = f"{ceiling_total / total:.2f}" if ceiling and total else ""
        cells = " | ".join(f"{s.cpu_us.get(part, 0.0):.0f}" for part in parts)
        lines.append(f"| {name} | {payload} | {c} | {cells} | {total:.0f} | {ratio} |")
    return lines


def target_lines(summaries: dict[tuple[str, str, int], Summary]) -> list[str]:
    """One line per issue target that this run measured: the ratio found, and the target."""
    lines = []
    for name, reference, payload, rps_target, p99_target in TARGETS:
        for (stack, pay, c), s in sorted(summaries.items()):
            ref = summaries.get((reference, pay, c))
            if stack != name or ref is None or (payload and pay != payload):
                continue
            ratio = s.rps / ref.rps
            text = (
                f"{name} / {reference}, {pay}, c={c}: req/s {ratio:.2f}x "
                f"(target ≥ {rps_target}x: {'met' if ratio >= rps_target else 'NOT met'})"
            )
            if p99_target:
                p99 = s.p99_ms / ref.p99_ms
                verdict = "met" if p99 <= p99_target else "NOT met"
                text += f"; p99 {p99:.2f}x (target ≤ {p99_target}x: {verdict})"
            lines.append(text)
    return lines


def versions() -> dict[str, str]:
    """Versions of what is measured: the service environment's packages, nginx, wrk, Copier."""
    python = SERVICE_VENV / "bin" / "python"
    script = (
        "import importlib.metadata as m, json, platform; "
        "print(json.dumps({'python': platform.python_version(), **{p: m.version(p) for p in "
        "['scikit-learn', 'numpy', 'onnxruntime', 'skl2onnx', 'msgspec', 'orjson', 'flask', "
        "'werkzeug', 'gunicorn', 'supervisor']}}))"
    )
    found = json.loads(run([str(python), "-c", script], REPO))
    nginx = subprocess.run(["/usr/sbin/nginx", "-v"], capture_output=True, text=True, check=False)
    found["nginx"] = nginx.stderr.strip().split("/")[-1]
    wrk_out = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    found["wrk"] = (wrk_out.stdout + wrk_out.stderr).split()[1]
    found["copier"] = run([str(COPIER), "--version"], REPO).split()[-1]
    return found


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.MULTILINE)
    memory = re.search(r"^MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text(), re.MULTILINE)
    return {
        "CPUs (nproc)": str(len(os.sched_getaffinity(0))),
        "CPU model": model.group(1) if model else "unknown",
        "memory": f"{int(memory.group(1)) / 1024 / 1024:.1f} GiB" if memory else "unknown",
        "kernel": platform.release(),
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def write_results(
    path: Path,
    context: dict,
    summaries,
    rss: dict[str, list[float]],
    restarts: dict[str, int],
    rss_after: dict[str, list[float]],
) -> None:
    """bench/RESULTS.md: the table, the targets, per-worker RSS, timings, versions, machine."""
    spreads = [s.spread for s in summaries.values()]
    lines = [
        "# Benchmark results",
        "",
        f"Written by `{' '.join(['python bench/run.py', *context['argv']])}` on "
        f"{context['date']} ({context['elapsed']:.0f} s for the whole run). Numbers from one run "
        "on one machine: compare the ratios, not the absolute rates.",
        "",
        f"Each measurement: wrk, {context['seconds']:g} s, {context['threads']} threads, "
        f"POST /predict through nginx -> gunicorn ({WORKERS} sync workers) under supervisord, "
        f"after a {WARMUP_SECONDS} s warm-up per stack and payload. Every case measured all "
        f"stacks in turn, {context['rounds']} rounds, alternating. p50 is the median of the "
        "rounds' p50, p99 the worst round's p99. Spread is (max - min) / mean of the rounds' "
        "req/s.",
        "",
        "Stacks: **service** = the default render (linear model, NumPy format); **onnx** = the "
        "same with `model_format=onnx`; **mixed** = the mixed-type default (`training_data=csv`, "
        "a CSV of 3 numbers and 2 text categories with empty cells, `write_mixed_csv`; the "
        "linear model in the NumPy format; rows sent as objects with strings); **forest** = the "
        "`estimator=random_forest` render (ONNX); **ceiling** = bench/null_app.py (constant "
        "answer); **plain** = bench/plain_app.py (the same forest in a plain Flask + "
        "scikit-learn view). All six "
        "run the "
        "rendered nginx.conf, gunicorn.conf.py and supervisord.conf; only gunicorn's `wsgi_app` "
        "differs. **mlflow** and **bentoml** = the default render's pipeline, fitted on the same "
        "data in each peer's own environment, served by `mlflow models serve` (uvicorn) and "
        "`bentoml serve` with as many workers, behind the same nginx.conf (upstream pointed at "
        "the peer's loopback port) and supervisord.conf; each gets its documented JSON input "
        "(`dataframe_records`, and BentoML's `input` array) holding the same rows.",
        "",
        *result_table(summaries),
        "",
        "## Targets",
        "",
        *[f"- {line}" for line in target_lines(summaries)],
        "",
        "## CPU per request",
        "",
        "Microseconds of CPU (user + system, from /proc) per answered request, the median of "
        "the rounds: **server** = gunicorn's master and workers (a peer's server processes), "
        "**nginx** and **supervisord** = the stack's, **wrk** = the load generator's. The "
        "machine is saturated under this load, so req/s is about CPUs / total; the last column "
        "is the ceiling's total over the stack's, the ratio that CPU alone predicts.",
        "",
        *cpu_table(summaries),
        "",
        "## Noise",
        "",
        f"req/s spread between rounds: median {statistics.median(spreads):.1%}, "
        f"max {max(spreads):.1%} over {len(spreads)} groups. Targets whose ratio is within "
        "the spread of 1.0 are not distinguishable on this machine.",
        "",
        "## Workers: RSS after warm-up and after measuring, replacements while measured",
        "",
        'Replacements count gunicorn\'s "Booting worker" lines during the measurements '
        "(gunicorn.conf.py sets max_requests = 0, so any is a crash or a timeout; a new worker "
        "imports the app and loads the model before it serves). RSS after measuring shows "
        "whether a worker grows under load.",
        "",
        "| stack | each worker's RSS after warm-up (MiB) | after measuring (MiB) "
        "| workers replaced while measured |",
        "| --- | --- | --- | ---: |",
        *[
            f"| {name} | {', '.join(f'{r:.1f}' for r in values)} "
            f"| {', '.join(f'{r:.1f}' for r in rss_after.get(name, []))} "
            f"| {restarts.get(name, '')} |"
            for name, values in rss.items()
        ],
        "",
        "## Copier",
        "",
        "- `copier copy --trust --defaults` (snapshot of the checkout, tagged): "
        f"{context['copy_s']:.2f} s "
        f"(target < 3 s: {'met' if context['copy_s'] < 3 else 'NOT met'})",
        f"- no-op `copier update --trust --defaults`: {context['update_s']:.2f} s "
        f"(target < 6 s: {'met' if context['update_s'] < 6 else 'NOT met'})",
        "",
        "## Versions",
        "",
        *[f"- {name}: {version}" for name, version in context["versions"].items()],
        "",
        "## Machine",
        "",
        *[f"- {name}: {value}" for name, value in context["machine"].items()],
        "",
        "Load generator, nginx, gunicorn's workers and supervisord share these CPUs "
        "(the load average includes whatever ran just before, e.g. an earlier run).",
        "",
    ]
    path.write_text("\n".join(lines) + image_section(path))


def image_section(path: Path) -> str:
    """The "Image" section bench/image.py wrote in `path`, kept when the rest is rewritten."""
    text = path.read_text() if path.exists() else ""
    _, marker, section = text.partition("\n## Image\n")
    return f"\n## Image\n{section.split(chr(10) + '## ', 1)[0]}" if marker else ""


# ---------------------------------------------------------------------------------- main


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10, help="per measurement (default 10)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per case (default 2)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="2 s, one payload, one concurrency, one round, no forest, nothing written",
    )
    parser.add_argument("--no-forest", action="store_true", help="skip the random-forest pair")
    parser.add_argument("--no-mixed", action="store_true", help="skip the mixed-type stack")
    parser.add_argument(
        "--no-keys", dest="keys", action="store_false", help="skip the API-key stack"
    )
    parser.add_argument(
        "--no-peers", action="store_true", help="skip MLflow and BentoML (bench/peers.py)"
    )
    parser.add_argument(
        "--no-granian", dest="granian", action="store_false", help="skip the granian stacks"
    )
    parser.add_argument(
        "--keepalive",
        type=int,
        default=0,
        metavar="N",
        help="also granian with nginx keeping N idle connections to it (upstream keepalive)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="the results file")
    parser.add_argument(
        "--gunicorn-args",
        default="",
        help='diagnostics: GUNICORN_CMD_ARGS for every stack, e.g. "--max-requests 0"',
    )
    return parser.parse_args(argv)


def check_tools() -> None:
    """Exit with the install line for whatever the harness needs and is missing."""
    missing = []
    if not (SERVICE_VENV / "bin" / "gunicorn").exists():
        missing.append(f"{SERVICE_VENV} (make test builds it)")
    if not COPIER.exists():
        missing.append(f"{COPIER} (the repository's .venv)")
    if shutil.which("wrk") is None:
        missing.append("wrk (apt-get install wrk)")
    if not Path("/usr/sbin/nginx").exists() and shutil.which("nginx") is None:
        missing.append("nginx (apt-get install nginx)")
    if shutil.which("envsubst") is None:
        missing.append("envsubst (apt-get install gettext-base)")
    if missing:
        raise SystemExit("missing: " + "; ".join(missing))


def main(argv: list[str]) -> int:
    options = parse_arguments(argv)
    if options.smoke:
        options.seconds, options.rounds = 2, 1
    payloads = ["1 row"] if options.smoke else list(PAYLOADS)
    concurrencies = [8] if options.smoke else CONCURRENCIES
    with_forest = not (options.smoke or options.no_forest)
    with_peers = not (options.smoke or options.no_peers)
    check_tools()
    started = time.monotonic()
    machine_at_start = machine()
    stacks: list[Stack] = []
    interrupted = False

    def on_signal(number, _frame):
        raise KeyboardInterrupt(f"signal {number}")

    signal.signal(signal.SIGTERM, on_signal)
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch:
        work = Path(scratch)
        try:
            print("==> rendering the default service (copier copy), timing a no-op copier update")
            template = snapshot_template(work / "template")
            copy_s = render(template, work / "service", {})
            update_s = time_noop_update(work / "service")
            print(f"    copier copy {copy_s:.2f} s, copier update {update_s:.2f} s")
            projects = {"service": work / "service"}
            if options.keys:
                render(template, work / "keys", {"auth": "api_key"})
                projects["keys"] = work / "keys"
            if not options.smoke:
                render(template, work / "onnx", {"model_format": "onnx"})
                projects["onnx"] = work / "onnx"
            if options.granian:
                render(template, work / "granian", {"wsgi_server": "granian"})
                projects["granian"] = work / "granian"
            if with_forest:
                render(template, work / "forest", {"estimator": "random_forest"})
                projects["forest"] = work / "forest"
            mixed_rows = []
            if not options.no_mixed:
                answers = {"training_data": "csv", "target_column": MIXED_TARGET}
                render(template, work / "mixed", answers)
                mixed_rows = write_mixed_csv(work / "mixed" / "data" / "train.csv")
                projects["mixed"] = work / "mixed"
            print("==> training")
            for project in projects.values():
                train(project)
            projects["ceiling"] = bench_copy(
                work / "service", work / "ceiling", "null_app:create_app()"
            )
            if options.granian:
                projects["granian-ceiling"] = granian_copy(
                    work / "granian", work / "granian-ceiling", "null_app"
                )
            if options.granian and options.keepalive:
                projects["granian-keepalive"] = keepalive_copy(
                    work / "granian", work / "granian-keepalive", options.keepalive
                )
            if with_forest:
                projects["plain"] = bench_copy(
                    work / "service", work / "plain", "plain_app:create_app()"
                )
            running_peers = {}
            if with_peers:
                for peer in peers.PEERS.values():
                    print(f"==> {peer.name}: environment {peer.venv}, training the same pipeline")
                    if problem := peers.install(peer):
                        print(f"    {peer.name} left out: {problem}", file=sys.stderr)
                        continue
                    projects[peer.name] = peers.peer_project(
                        peer, work / "service", work / peer.name, PACKAGE, free_port()
                    )
                    running_peers[peer.name] = peer
            order = ["ceiling", "service", "keys"]
            order += ["granian-ceiling", "granian", "granian-keepalive"]
            order += ["mixed", "onnx", "plain", "forest", *running_peers]
            print("==> serving", ", ".join(name for name in order if name in projects))
            for name in order:
                if name in projects:
                    stacks.append(
                        start(name, projects[name], options.gunicorn_args, running_peers.get(name))
                    )
            bodies = {}
            for stack in stacks:
                for payload in payloads:
                    peer = running_peers.get(stack.name)
                    if stack.name == "mixed":
                        one = payload == "1 row"
                        body = {"row": mixed_rows[0]} if one else {"rows": mixed_rows}
                    else:
                        body = peer.body(PAYLOAD_ROWS[payload]) if peer else PAYLOADS[payload]
                    path = bodies[stack.name, payload] = (
                        work / f"{stack.name}-{payload.replace(' ', '-')}.json"
                    )
                    path.write_text(json.dumps(body))
                    check_answers(stack, path)
                    wrk(
                        stack.url + stack.predict_path,
                        path,
                        8,
                        WARMUP_SECONDS,
                        options.threads,
                        stack.headers,
                    )
            rss = {s.name: [rss_mib(pid) for pid in server_processes(s)] for s in stacks}
            boots_before = {s.name: worker_boots(s) for s in stacks}
            measurements = []
            for payload in payloads:
                for connections in concurrencies:
                    for round_ in range(1, options.rounds + 1):
                        # Alternate the order each round, so neither stack always goes first.
                        ordered = stacks if round_ % 2 else stacks[::-1]
                        for stack in ordered:
                            m = measure(
                                stack,
                                payload,
                                bodies[stack.name, payload],
                                connections,
                                options.seconds,
                                options.threads,
                                round_,
                            )
                            measurements.append(m)
                            print(
                                f"    {m.stack:17} {payload:8} c={connections:<3} round {round_}: "
                                f"{m.rps:8.0f} req/s  p50 {m.p50_ms:6.2f} ms  "
                                f"p99 {m.p99_ms:6.2f} ms  errors {m.errors}",
                                flush=True,
                            )
            # Workers replaced while measured (max_requests, or crashes): each replacement
            # re-imports the app and reloads the model while its share of requests waits.
            restarts = {s.name: worker_boots(s) - boots_before[s.name] for s in stacks}
            rss_after = {s.name: [rss_mib(pid) for pid in server_processes(s)] for s in stacks}
        except KeyboardInterrupt:
            interrupted = True
        finally:
            for stack in stacks:
                left = stop(stack)
                if left:
                    print(
                        f"    {stack.name}: killed after {STOP_WITHIN} s: {left}", file=sys.stderr
                    )
        if interrupted:
            print("interrupted: every process stopped", file=sys.stderr)
            return 130
    summaries = summarize(measurements)
    print()
    print("\n".join(result_table(summaries)))
    print()
    print("\n".join(target_lines(summaries)))
    print()
    print("\n".join(cpu_table(summaries)))
    print("per-worker RSS (MiB):", {k: [round(v, 1) for v in vs] for k, vs in rss.items()})
    print("... after measuring:", {k: [round(v, 1) for v in vs] for k, vs in rss_after.items()})
    print("workers replaced while measured:", restarts)
    elapsed = time.monotonic() - started
    print(
        f"copier copy {copy_s:.2f} s, no-op copier update {update_s:.2f} s; "
        f"whole run {elapsed:.0f} s"
    )
    if not options.smoke:
        context = dict(
            argv=argv,
            date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            elapsed=elapsed,
            seconds=options.seconds,
            threads=options.threads,
            rounds=options.rounds,
            copy_s=copy_s,
            update_s=update_s,
            gunicorn_args=options.gunicorn_args,
            versions={
                **versions(),
                **{name: peers.version(peer) for name, peer in running_peers.items()},
            },
            machine=machine_at_start,
        )
        write_results(options.output, context, summaries, rss, restarts, rss_after)
        print(f"written: {options.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
