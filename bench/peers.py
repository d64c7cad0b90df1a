"""The peers: the same model served by MLflow's model server and by BentoML, on the same stack.

Each peer gets a virtual environment of its own (build/bench-<peer>, installed from PyPI on
first use) and a copy of the rendered default project in which only two lines change:

  * supervisord.conf's gunicorn program runs the peer's server on a loopback TCP port, with
    as many worker processes as gunicorn has (WEB_CONCURRENCY);
  * nginx.conf's upstream points at that port instead of gunicorn's unix socket.

So nginx, its settings and supervisord are the ones the service runs with, and the model is
the service's own pipeline (pipeline.py), fitted on its own data (data.py) by
bench/peer_train.py in the peer's environment. Each peer is fed its documented JSON input
format, with the same rows as the service.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
BUILD = BENCH.parent / "build"


@dataclass(frozen=True)
class Peer:
    name: str
    requirements: list[str]  # what pip installs into the peer's environment
    predict_path: str  # the prediction endpoint
    ready_path: str  # answers 200 once the model is loaded
    body: Callable[[list[dict[str, float]]], dict[str, Any]]  # rows -> the peer's JSON input

    @property
    def venv(self) -> Path:
        return BUILD / f"bench-{self.name}"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"


PEERS = {
    "mlflow": Peer(
        "mlflow",
        ["mlflow>=3.17,<4", "scikit-learn>=1.6,<2"],
        "/invocations",
        "/ping",
        # pandas' "records" orientation: one object per row, keyed by column, as ours.
        lambda rows: {"dataframe_records": rows},
    ),
    "bentoml": Peer(
        "bentoml",
        ["bentoml>=1.4,<1.5", "scikit-learn>=1.6,<2"],
        "/predict",
        "/readyz",
        # The array argument of Predictor.predict (bench/bentoml_service.py), in feature order.
        lambda rows: {"input": [list(row.values()) for row in rows]},
    ),
}


def install(peer: Peer) -> str | None:
    """Create the peer's environment if it is missing; None when ready, else why not."""
    marker = peer.venv / ".installed"
    if marker.exists():
        return None
    steps = [
        [sys.executable, "-m", "venv", str(peer.venv)],
        [str(peer.python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
        [str(peer.python), "-m", "pip", "install", "--quiet", *peer.requirements],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            return f"`{' '.join(step)}` failed: {(done.stdout + done.stderr)[-2000:]}"
    marker.touch()
    return None


def version(peer: Peer) -> str:
    """The peer package's installed version, for the results."""
    script = f"import importlib.metadata as m; print(m.version({peer.name!r}))"
    done = subprocess.run([str(peer.python), "-c", script], capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def peer_project(peer: Peer, service: Path, destination: Path, package: str, port: int) -> Path:
    """A copy of the rendered `service` in which supervisord runs `peer` on 127.0.0.1:`port`."""
    shutil.copytree(service, destination, ignore=shutil.ignore_patterns(".git", "run", "*.log"))
    model = destination / "peer-model"
    train = [str(peer.python), str(BENCH / "peer_train.py"), peer.name, package, str(model)]
    environment = {"PYTHONPATH": str(destination / "src"), "BENTOML_HOME": str(model)}
    done = subprocess.run(
        train, env=environment, capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{peer.name}: training failed:\n{done.stdout}{done.stderr}")

    point_stack_at_peer(peer, destination, model, port)
    return destination


def point_stack_at_peer(peer: Peer, project: Path, model: Path, port: int) -> None:
    """Rewrite the project's supervisord.conf and nginx.conf to serve `model` with `peer`."""
    bin_ = peer.venv / "bin"
    if peer.name == "mlflow":
        command = (
            f"{bin_}/mlflow models serve -m {model} -h 127.0.0.1 -p {port} "
            "-w %(ENV_WEB_CONCURRENCY)s --env-manager local"
        )
        # It starts uvicorn through a shell, from PATH.
        environment_line = f'environment=PATH="{bin_}:%(ENV_PATH)s"\n'
    else:
        command = (
            f"{bin_}/bentoml serve bentoml_service:Predictor --working-dir {BENCH} "
            f"--host 127.0.0.1 --port {port}"
        )
        environment_line = f'environment=BENTOML_HOME="{model}",BENTOML_DO_NOT_TRACK="true"\n'
    _replace_one(
        project / "deploy" / "supervisord.conf",
        r"(?m)^command=gunicorn .*\n",
        f"command={command}\n{environment_line}",
    )
    _replace_one(
        project / "deploy" / "nginx.conf",
        r"(?m)^(\s*)server unix:run/gunicorn\.sock;",
        rf"\g<1>server 127.0.0.1:{port};",
    )


def _replace_one(path: Path, pattern: str, replacement: str) -> None:
    text, count = re.subn(pattern, replacement, path.read_text())
    if count != 1:
        raise SystemExit(f"{path}: expected one match of {pattern!r}, found {count}")
    path.write_text(text)
