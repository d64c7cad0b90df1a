"""The projects the benchmark serves: the template rendered and trained, and the copies of a
render that serve something else behind the same nginx, gunicorn and supervisord settings."""

from __future__ import annotations

import csv
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from harness.template import snapshot_template as snapshot_template

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
SERVICE_VENV = REPO / "build" / "service-venv"
COPIER = REPO / ".venv" / "bin" / "copier"
RESULTS = BENCH / "RESULTS.md"
PACKAGE = "iris_classifier"  # the default render's package
GIT = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]

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


def timed(command: list[str], cwd: Path) -> float:
    """Seconds a command took, run to completion (SystemExit if it failed)."""
    started = time.perf_counter()
    run(command, cwd)
    return time.perf_counter() - started


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
