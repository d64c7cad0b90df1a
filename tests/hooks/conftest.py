"""Shared fixtures for the hook tests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

TEMPLATE_ROOT = Path(__file__).resolve().parents[2]
# The `hooks` package sits at the template root, which pytest does not put on sys.path itself.
sys.path.insert(0, str(TEMPLATE_ROOT))

# The generated project's gates: ruff check and ruff format at line length 100.
RUFF_OPTIONS = ("--isolated", "--line-length", "100", "--target-version", "py310")


def _ruff(*args: str, source: str) -> subprocess.CompletedProcess[str]:
    """Run ruff on `source` through stdin."""
    command = [sys.executable, "-m", "ruff", *args, *RUFF_OPTIONS, "--stdin-filename", "m.py", "-"]
    return subprocess.run(command, input=source, capture_output=True, text=True, check=False)


def assert_ruff_clean(source: str) -> None:
    """ruff check (E, F, I, UP, B) passes and ruff format leaves the source as it is."""
    check = _ruff("check", "--select", "E,F,I,UP,B", source=source)
    assert check.returncode == 0, check.stdout + check.stderr
    formatted = _ruff("format", source=source)
    assert formatted.returncode == 0, formatted.stderr
    assert formatted.stdout == source


@pytest.fixture(scope="session")
def ruff_clean() -> Callable[[str], None]:
    """The assertion that a generated source passes the project's ruff gates."""
    return assert_ruff_clean
