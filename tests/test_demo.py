"""The README's first command, `make demo` (scripts/demo.sh), run as a user runs it.

It renders the defaults from this checkout, installs the service into its own fresh `.venv`
with pip (as on a fresh machine: not the suite's shared environment), trains, serves through
supervisord, nginx and gunicorn, prints one real prediction and the Swagger URL, and serves until
Ctrl-C, which must stop every process it started.

`make demo` itself adds one step before the script: Copier and the extensions installed into
the template's `.venv` (its `render` group), which the suite's own `.venv` already holds.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from harness.processes import free_port, kill_session, session_processes, stop_session
from tests.conftest import REPO_ROOT, system_tool
from tests.test_live_stack import get

pytestmark = [pytest.mark.live, pytest.mark.slow]

# Rendering, pip installing the service and its training stack into a new .venv, training and
# starting the stack: about a minute here; pip on a cold cache takes longer.
WITHIN = 600


def read_until(process: subprocess.Popen, marker: str, within: float) -> list[str]:
    """The lines `process` prints until one starting with `marker` (that one included)."""
    lines: list[str] = []

    def read() -> None:  # a thread: a pipe's readline cannot be given a deadline
        try:
            for line in process.stdout:
                lines.append(line.rstrip("\n"))
                if line.startswith(marker):
                    return
        finally:
            done.set()  # the marker, or the script's end

    done = threading.Event()
    threading.Thread(target=read, daemon=True).start()
    if not done.wait(within) or not lines or not lines[-1].startswith(marker):
        output = "\n".join(lines)
        raise AssertionError(f"no {marker!r} line (in {within} s, before it ended):\n{output}")
    return lines


def test_the_demo_serves_a_prediction_and_swagger_and_ctrl_c_stops_it():
    system_tool("nginx")
    system_tool("curl")
    port = free_port()
    # A short folder, not pytest's: supervisord binds its control socket at the project's
    # run/supervisor.sock.<pid>, an absolute path that must fit in 107 bytes, and pytest's
    # folders under xdist leave too little of it (a known limit of make serve, not the demo's).
    destination = Path(tempfile.mkdtemp(prefix="demo-")) / "demo-service"
    # `make demo` puts the template's .venv first on PATH, for copier: this suite's is it.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"], "/usr/sbin"])
    demo = subprocess.Popen(
        [REPO_ROOT / "scripts" / "demo.sh", destination],
        env={**os.environ, "PATH": path, "PORT": str(port)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        lines = read_until(demo, "==> Swagger UI:", WITHIN)
        assert any("through nginx -> gunicorn, under supervisord" in line for line in lines)
        # The answer to the example row, printed as the service sent it, under the request.
        [asked] = [i for i, line in enumerate(lines) if line.startswith("==> POST /predict")]
        answer = json.loads(lines[asked + 1])
        assert len(answer["predictions"]) == 1
        assert (
            answer["predictions"][0]
            in json.loads((destination / "models" / "metadata.json").read_text())["classes"]
        )
        url = lines[-1].split()[3]
        assert url == f"http://127.0.0.1:{port}/docs/"
        docs = get(port, "/docs/")
        assert docs.status == 200 and b"swagger-ui" in docs.body
        serving = session_processes(demo.pid)
        assert any("gunicorn" in command for _, command in serving.values())

        # Ctrl-C: the terminal's SIGINT to the foreground process group, the script's.
        killed = stop_session(demo, 60, signal.SIGINT)
        assert killed == [], "processes outlived the demo's Ctrl-C"
        with pytest.raises(OSError):
            get(port, "/livez")
    finally:
        kill_session(demo.pid, demo)
        demo.stdout.close()
        shutil.rmtree(destination.parent)
