"""Carrying a user's edits from a moved file's old path to its new one."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hooks.carry_moved_edits import main, merge_moved_file

BASE = "a = 1\nb = 2\nc = 3\nd = 4\ne = 5\n"  # the old template version's render
NEW = "# moved\na = 1\nb = 2\nc = 3\nd = 4\ne = 5\n"  # the new version's render, new path


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project whose HEAD holds the user's `old.conf`, mid-update: Copier has deleted it
    and written `conf/new.conf`."""
    root = tmp_path / "project"
    root.mkdir()
    git(root, "init", "-q")
    git(root, "config", "user.email", "user@example.com")
    git(root, "config", "user.name", "User")
    return root


def user_committed(project: Path, text: str) -> None:
    (project / "old.conf").write_text(text)
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "ours")
    (project / "old.conf").unlink()
    (project / "conf").mkdir()
    (project / "conf" / "new.conf").write_text(NEW)


@pytest.fixture
def base_project(tmp_path: Path) -> Path:
    root = tmp_path / "base"
    root.mkdir()
    (root / "old.conf").write_text(BASE)
    return root


def test_the_users_edit_is_merged_into_the_new_path(project, base_project):
    user_committed(project, BASE.replace("d = 4", "d = 40"))
    assert merge_moved_file(project, base_project, "old.conf", "conf/new.conf") is False
    assert (project / "conf" / "new.conf").read_text() == NEW.replace("d = 4", "d = 40")


def test_an_unedited_file_leaves_the_new_render_as_it_is(project, base_project):
    user_committed(project, BASE)
    assert merge_moved_file(project, base_project, "old.conf", "conf/new.conf") is False
    assert (project / "conf" / "new.conf").read_text() == NEW


def test_overlapping_edits_are_marked_and_unmerged(project, base_project):
    user_committed(project, "# ours\n" + BASE)
    assert merge_moved_file(project, base_project, "old.conf", "conf/new.conf") is True
    merged = (project / "conf" / "new.conf").read_text()
    assert "<<<<<<< before updating\n# ours\n=======\n# moved\n>>>>>>> after updating\n" in merged
    assert "UU conf/new.conf" in git(project, "status", "--porcelain")


def test_nothing_to_carry_when_the_user_had_deleted_the_file(project, base_project):
    user_committed(project, BASE)
    git(project, "rm", "-q", "--cached", "old.conf")
    git(project, "commit", "-q", "-m", "deleted")
    assert merge_moved_file(project, base_project, "old.conf", "conf/new.conf") is False
    assert (project / "conf" / "new.conf").read_text() == NEW


def test_a_malformed_move_is_reported_not_raised(capsys):
    assert main(["no-colon-here"]) == 1
    assert "usage" in capsys.readouterr().err
