"""Processes of a rendered project's stack: ports, starting it, waiting for it, stopping it.

A stack runs in a session of its own (start_new_session), so that all of it is findable in
/proc by its session id, and stoppable, whatever it forks.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path


class NotReady(RuntimeError):
    """A stack that exited, or did not answer in time; the message holds its log."""


def free_port() -> int:
    """A TCP port nothing listens on at the moment, on loopback."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_make_serve(
    project: Path, venv: Path, port: int, environment: Mapping[str, str], log: Path
) -> subprocess.Popen:
    """The project's own `make serve` on 127.0.0.1:port, in a session of its own (not waited
    for); its output goes to `log`."""
    with log.open("w") as output:
        return subprocess.Popen(
            ["make", "serve", f"VENV={venv}", "HOST=127.0.0.1", f"PORT={port}"],
            cwd=project,
            env=dict(environment),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_until_answers(
    port: int, path: str, process: subprocess.Popen, log: Path, within: float
) -> None:
    """Poll GET `path` on 127.0.0.1:port until it answers 200; NotReady if `process` exits or
    `within` s pass first."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise NotReady(f"make serve exited ({process.returncode}):\n{log.read_text()}")
        # http.client, not urllib: no proxy from the environment between us and loopback.
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("GET", path)
            if connection.getresponse().status == 200:
                return
        except (OSError, http.client.HTTPException):
            pass  # not listening yet, or not speaking HTTP yet
        finally:
            connection.close()
        time.sleep(0.2)
    raise NotReady(f"GET {path} not 200 within {within} s:\n{log.read_text()}")


def session_processes(sid: int) -> dict[int, tuple[int, str]]:
    """pid -> (ppid, command line) of every process in session `sid` and of their descendants.

    Descendants count too: a program may start its workers in sessions of their own (BentoML's
    call setsid()), and they are still the stack's.
    """
    processes, sessions = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name, in parentheses, may hold spaces: split after it.
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ")
        except (FileNotFoundError, ProcessLookupError):
            continue  # it ended while being read
        if fields[0] != "Z":
            pid = int(stat.parent.name)
            processes[pid] = (int(fields[1]), command.decode(errors="replace").strip())
            sessions[pid] = int(fields[3])
    found = {pid for pid, session in sessions.items() if session == sid}
    while True:
        children = {pid for pid, (ppid, _) in processes.items() if ppid in found} - found
        if not children:
            return {pid: processes[pid] for pid in found}
        found |= children


def kill_session(sid: int, leader: subprocess.Popen | None = None) -> list[str]:
    """SIGKILL to whatever is left of session `sid`, then reap its leader; the command lines
    killed (empty when a graceful stop had already ended everything)."""
    left = session_processes(sid)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if leader is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            leader.wait(10)
    return [command for _, command in left.values()]


def stop_session(
    leader: subprocess.Popen, within: float, signum: signal.Signals = signal.SIGTERM
) -> list[str]:
    """`signum` to the leader's process group (make and supervisord; SIGINT for a terminal's
    Ctrl-C), up to `within` s for the session to end, then kill_session: the command lines
    that had to be killed."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(leader.pid, signum)
    deadline = time.monotonic() + within
    while session_processes(leader.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    return kill_session(leader.pid, leader)
