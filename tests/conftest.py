"""Fixtures for the template's own tests: rendering projects and running their gates."""

from __future__ import annotations

import os
import subprocess
import tomllib
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# The version this checkout will be released as: the tag the update tests give it.
TEMPLATE_VERSION = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]

# Rendered projects run in one shared virtual environment holding every dependency any
# combination declares; `make test` builds it from tests/service-requirements.txt.
SERVICE_VENV = REPO_ROOT / os.environ.get("SERVICE_VENV", "build/service-venv")


@pytest.fixture(scope="session")
def copier_template_paths() -> list[str]:
    """What pytest-copier copies into its throwaway template repository (not .git, not build/)."""
    return ["copier.yml", "template", "hooks", "extensions"]


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
