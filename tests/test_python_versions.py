"""Generated projects run on the oldest and the newest Python they accept, not just ours.

The render matrix runs every combination on one interpreter; this runs two representative
ones (served, and batch-only on a CSV) on Python 3.10 and 3.13, each in a shared virtual
environment that `make test` builds from pyenv's interpreters.
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import REPO_ROOT, run_gate

# The generated project's tests on the oldest and newest Python.
# Minutes, no services: `pytest -m 'not slow'` leaves them out.
pytestmark = pytest.mark.slow

VERSIONS = ["3.10", "3.13"]
PROJECTS = {
    "served": {},
    "served-jobs": {"task_queue": "sqlite"},
    "batch-csv": {"serve_model": False, "training_data": "csv", "problem_type": "regression"},
}


@pytest.mark.parametrize("answers", PROJECTS.values(), ids=PROJECTS.keys())
@pytest.mark.parametrize("version", VERSIONS)
def test_project_passes_its_tests_on(version, answers, copier, tmp_path):
    python = REPO_ROOT / "build" / f"service-venv-{version}" / "bin" / "python"
    if not python.exists():
        reason = (
            f"no Python {version} environment at {python.parent.parent} (pyenv install {version})"
        )
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    project = copier.copy(tmp_path / "project", python_version=version, **answers).path
    run_gate([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"], project)
