"""The stacks being measured: each a project's own `make serve` (supervisord -> nginx ->
gunicorn) in a session of its own on a free loopback port, and what /proc says of its
processes (which part each is, its workers, their memory and CPU time)."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bench import peers
from bench.projects import BENCH, SERVICE_VENV
from harness.processes import (
    NotReady,
    free_port,
    session_processes,
    start_make_serve,
    stop_session,
    wait_until_answers,
)

WORKERS = 2  # gunicorn workers, for every stack (WEB_CONCURRENCY)
READY_WITHIN = 60  # seconds from `make serve` to /readyz answering 200
STOP_WITHIN = 60  # seconds for supervisord to stop its programs gracefully
# The keys stack's API keys (auth=api_key): made up here, for this run only.
API_KEY = "bench-key-0f6c2d8e9a7b4135"
OTHER_API_KEYS = ["bench-key-retired-1", "bench-key-retired-2"]


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
    make = start_make_serve(project, SERVICE_VENV, port, environment, log)
    stack = Stack(name, project, port, make, log, headers=headers)
    if peer is not None:
        stack.predict_path, stack.ready_path = peer.predict_path, peer.ready_path
    wait_until_ready(stack)
    return stack


def wait_until_ready(stack: Stack) -> None:
    """Poll its ready path until it answers 200; stop the stack and exit if it never does."""
    try:
        wait_until_answers(stack.port, stack.ready_path, stack.make, stack.log, READY_WITHIN)
    except NotReady as error:
        stop(stack)
        raise SystemExit(f"{stack.name}: {error}") from None


def stop(stack: Stack) -> list[str]:
    """SIGTERM to the stack's process group (make and supervisord), then SIGKILL to what is left.

    Returns the command lines that had to be killed: empty when the graceful stop worked.
    """
    return stop_session(stack.make, STOP_WITHIN)


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
