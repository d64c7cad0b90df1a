"""Fixtures for the template's own tests: rendering projects and running their gates."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from copier import run_copy

# The template's paths, its version, copy_template and snapshot_template are
# harness/template.py's, shared with bench/; the tests import them from here.
from harness.postgres import postgres_bin
from harness.template import TEMPLATE_PATHS as TEMPLATE_PATHS
from harness.template import TEMPLATE_VERSION as TEMPLATE_VERSION
from harness.template import copy_template as copy_template
from harness.template import snapshot_template as snapshot_template

REPO_ROOT = Path(__file__).resolve().parent.parent

# One OpenMP thread per process for everything the suite starts (rendered projects' tests,
# training, services): xdist already keeps every core busy, and OpenMP's threads spinning at
# its barriers on a machine with no core to spare make a gradient-boosting fit take minutes
# instead of seconds.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Rendered projects run in one shared virtual environment holding every dependency any
# combination declares; `make test` builds it from tests/service-requirements.txt.
SERVICE_VENV = REPO_ROOT / os.environ.get("SERVICE_VENV", "build/service-venv")


def mypy_environment() -> dict[str, str]:
    """Where the rendered projects' mypy keeps its cache: one per xdist worker (mypy's cache
    takes one writer at a time), shared by that worker's projects, so the analysis of their
    common dependencies (NumPy, Flask, SQLAlchemy...) is done once rather than per project."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return {"MYPY_CACHE_DIR": str(REPO_ROOT / "build" / "mypy-cache" / worker)}


@pytest.fixture(scope="session")
def copier_template_paths() -> list[str]:
    """What pytest-copier copies into its throwaway template repository (not .git, not build/)."""
    return TEMPLATE_PATHS


@pytest.fixture(scope="session")
def service_bin() -> Path:
    """The bin/ folder of the shared virtual environment the rendered projects run in."""
    python = SERVICE_VENV / "bin" / "python"
    if not python.exists():
        pytest.fail(f"{python} is missing: run `make test` (it builds {SERVICE_VENV} first)")
    return python.parent


def run_gate(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run one of a rendered project's gates; on failure, fail with its whole output."""
    completed = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    if completed.returncode != 0:
        pytest.fail(
            f"`{' '.join(command)}` failed in {cwd} (exit {completed.returncode}):\n"
            f"{completed.stdout}\n{completed.stderr}",
            pytrace=False,
        )
    return completed.stdout


# Programs the stack tests take from the system, and the Debian package that has each.
SYSTEM_TOOLS = {
    "nginx": "nginx",
    "envsubst": "gettext-base",
    "wrk": "wrk",
    "redis-server": "redis-server",
    "strace": "strace",
    # The generated README's requests, pasted as printed (tests/test_readme_examples.py).
    "curl": "curl",
    "openssl": "openssl",
    # The generator page's browser test (tests/test_generator_page.py).
    "chromium": "chromium",
    "chromedriver": "chromium-driver",
}


def system_tool(name: str) -> str:
    """The path of a program from SYSTEM_TOOLS: a test without it is skipped, or under CI failed."""
    # Debian installs nginx in /usr/sbin, which is not on every user's PATH.
    path = shutil.which(name, path=f"{os.environ.get('PATH', '')}{os.pathsep}/usr/sbin")
    if path is None:
        reason = (
            f"{name} is not installed: apt-get install {SYSTEM_TOOLS[name]} "
            "(.ci/run installs it; the stack, queue and browser tests need it)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return path


def require_postgres() -> Path:
    """The folder of Debian's PostgreSQL programs (harness/postgres.py starts a server of them):
    a test without them is skipped, or under CI failed."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        reason = "PostgreSQL is not installed: apt-get install postgresql (.ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return bin_dir


def render(template: Path, destination: Path, answers: Mapping[str, Any]) -> Path:
    """`copier copy --trust --defaults` with `answers`, usable outside any fixture's scope."""
    run_copy(str(template), destination, data=dict(answers), defaults=True, unsafe=True)
    return destination


@pytest.fixture(scope="session")
def podman_ready() -> None:
    """Podman runs containers here (tests/containers.py), or the test is skipped; under CI,
    failed."""
    from tests.containers import require_podman

    require_podman()


@pytest.fixture(scope="session")
def python_base(podman_ready) -> str:
    """The local stand-in for the official python:3.11-slim-bookworm image the generated
    Dockerfile starts from (tests/containers.py), made once and kept between runs."""
    from tests.containers import python_base_image

    return python_base_image("3.11")


# The modules whose tests take longest, longest first (the suite's --durations says which).
# xdist hands tests out in collection order, so these start first and the quick ones fill in
# at the end, instead of one worker finishing a long test while the other idles.
SLOWEST_MODULES = [
    "test_image.py",
    "test_kubernetes.py",
    "test_render_matrix.py",
    "test_stack_configs.py",
    "test_python_versions.py",
    "test_task_queue.py",
    "test_faults.py",
    "test_live_stack.py",
    "test_update.py",
]


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: index for index, name in enumerate(SLOWEST_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: order kept within
    for item in items:
        # One worker runs every Podman test, one after another (`make test` passes
        # --dist loadgroup): the images they share are built once, and a build reuses the
        # layers of the one before it, where concurrent builds would each make their own.
        if item.get_closest_marker("image"):
            item.add_marker(pytest.mark.xdist_group("podman"))


# The fault battery's figures (tests/test_faults.py), one JSON file per fault, printed as one
# table at the end of the session: the controller's, when xdist runs the tests in workers.
FAULT_FIGURES = REPO_ROOT / "build" / "faults"


def pytest_sessionstart(session: pytest.Session) -> None:
    if not hasattr(session.config, "workerinput"):
        shutil.rmtree(FAULT_FIGURES, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    figures = [json.loads(path.read_text()) for path in sorted(FAULT_FIGURES.glob("*.json"))]
    if not figures:
        return
    terminalreporter.section("faults under load (tests/test_faults.py)")
    for row in figures:
        terminalreporter.line(" | ".join(f"{key}: {value}" for key, value in row.items()))


def render_refused(destination: Path, answers: Mapping[str, Any], questions: list[str]) -> Path:
    """Render `answers` that the questionnaire refuses, as older versions let the prompt do.

    The template is copied with every validator of `questions` removed (the question's own and
    its choices'), so the project holds what such a render gave: the files and the answers.
    """
    scratch = copy_template(destination.with_name(f"{destination.name}-template"))
    config = yaml.safe_load((scratch / "copier.yml").read_text())
    for question in questions:
        config[question].pop("validator")
        choices = config[question]["choices"]
        config[question]["choices"] = {
            label: value["value"] if isinstance(value, dict) else value
            for label, value in choices.items()
        }
    (scratch / "copier.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    return render(scratch, destination, answers)
