"""Upgrading a project from template 0.1.0 to this version: edits to moved files survive; and
from 0.6.0, whose tasks.py became the jobs/ package.

tests/fixtures/template-<version>.tar.gz is the template as released (`git archive <commit>
copier.yml template hooks extensions`, the commit the CHANGELOG names), frozen so that these
tests keep proving the upgrade paths whatever the template becomes, in any clone, shallow ones
included.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, TEMPLATE_VERSION
from tests.test_update import commit_all, copy, git, put_template, tree, unmerged, update

# copier update across the template's migrations.
# Minutes, no services: `pytest -m 'not slow'` leaves them out.
pytestmark = pytest.mark.slow

PACKAGE = Path("src", "iris_classifier")
V1_FIXTURE = REPO_ROOT / "tests" / "fixtures" / "template-0.1.0.tar.gz"


def released_and_current(repo: Path, fixture: Path, released: str) -> Path:
    """A template repository at `repo`: the release in `fixture`, then this version, both
    committed and tagged."""
    with tarfile.open(fixture) as archive:
        archive.extractall(repo, filter="data")
    git(repo, "init", "-q")
    commit_all(repo, released)
    git(repo, "tag", released)
    put_template(repo)
    commit_all(repo, TEMPLATE_VERSION)
    git(repo, "tag", TEMPLATE_VERSION)
    return repo


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A template repository holding 0.1.0 (from the fixture) and this version, both tagged."""
    return released_and_current(tmp_path_factory.mktemp("template"), V1_FIXTURE, "0.1.0")


def copy_v1(template, destination, **answers):
    return copy(template, destination, vcs_ref="0.1.0", **answers)


def test_an_unedited_project_upgrades_to_exactly_a_fresh_copy(template, tmp_path):
    project = copy_v1(template, tmp_path / "project")
    assert (project / "logging.conf").is_file()
    update(project)
    # 0.1.0 recorded its default format, skops, as the project's answer, and an update keeps
    # answers: the project does not switch to ONNX (nor its models/ to another file) unasked.
    assert tree(project) == tree(copy(template, tmp_path / "fresh", model_format="skops"))


def test_edits_to_the_moved_logging_conf_follow_it(template, tmp_path):
    project = copy_v1(template, tmp_path / "project", log_format="text")
    edited = (
        (project / "logging.conf")
        .read_text()
        .replace("args = (sys.stderr,)", "args = (sys.stdout,)")
    )
    (project / "logging.conf").write_text(edited)
    commit_all(project, "our logs to stdout")

    update(project)

    assert not (project / "logging.conf").exists()
    fresh = (copy(template, tmp_path / "fresh") / "deploy" / "logging.conf").read_text()
    expected = fresh.replace("args = (sys.stderr,)", "args = (sys.stdout,)")
    assert expected != fresh
    assert (project / "deploy" / "logging.conf").read_text() == expected
    assert not unmerged(project)


def test_edits_the_template_also_made_are_unmerged_conflicts(template, tmp_path):
    project = copy_v1(template, tmp_path / "project")
    v1_lines = (project / "logging.conf").read_text().splitlines()
    fresh = copy(template, tmp_path / "fresh") / "deploy" / "logging.conf"
    changed_by_template = next(line for line in v1_lines if line not in fresh.read_text())
    (project / "logging.conf").write_text(
        "\n".join(f"{line} (ours)" if line == changed_by_template else line for line in v1_lines)
        + "\n"
    )
    commit_all(project, "our edit, on a line the template changed too")

    update(project)

    assert unmerged(project) == ["deploy/logging.conf"]
    merged = (project / "deploy" / "logging.conf").read_text()
    assert f"{changed_by_template} (ours)" in merged
    assert "<<<<<<< before updating" in merged and ">>>>>>> after updating" in merged


def test_the_answers_file_records_the_new_version(template, tmp_path):
    project = copy_v1(template, tmp_path / "project")
    update(project)
    assert f"_commit: {TEMPLATE_VERSION}" in (project / ".copier-answers.yml").read_text()


# ------------------------------------------------------------------ from 0.6.0

V6_FIXTURE = REPO_ROOT / "tests" / "fixtures" / "template-0.6.0.tar.gz"  # commit 8b0e6d3
JOB_ANSWERS = {"task_queue": "sqlite", "apis": ["predict", "predict_proba", "evaluate", "jobs"]}


@pytest.fixture(scope="module")
def template_v6(tmp_path_factory):
    """A template repository holding 0.6.0 (from the fixture) and this version, both tagged."""
    return released_and_current(tmp_path_factory.mktemp("template-v6"), V6_FIXTURE, "0.6.0")


def test_the_tasks_module_of_0_6_becomes_the_jobs_package(template_v6, tmp_path):
    project = copy(template_v6, tmp_path / "project", vcs_ref="0.6.0", **JOB_ANSWERS)
    assert (project / PACKAGE / "tasks.py").is_file()
    (project / "RUNBOOK.md").write_text("# Our runbook\n")
    commit_all(project, "our own file")

    update(project)

    assert not unmerged(project)
    assert not (project / PACKAGE / "tasks.py").exists()
    assert (project / PACKAGE / "jobs" / "backend.py").is_file()
    fresh = copy(template_v6, tmp_path / "fresh", **JOB_ANSWERS)
    assert tree(project) == {**tree(fresh), "RUNBOOK.md": b"# Our runbook\n"}
