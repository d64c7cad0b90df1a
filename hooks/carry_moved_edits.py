"""Carry a user's edits over to the new path of a file the template moved (a migration).

Copier's update replays the user's changes file by file. When a new template version moves
a file, the user's edits to the old path have nowhere to go, and Copier drops them without a
word. Run as an `after` migration, this merges them into the new path with a three-way merge:
the old version's render is the base, the user's committed file is one side and the new
render that Copier just wrote is the other. Overlapping edits become conflict markers that
git reports as unmerged, exactly like Copier's own conflicts.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import yaml

ANSWERS_FILE = ".copier-answers.yml"
# Copier's own conflict labels, so every conflict of an update reads the same.
LABELS = ("before updating", "last update", "after updating")


def main(argv: Sequence[str]) -> int:
    """argv: `old/path:new/path` pairs, relative to the project in the working directory."""
    try:
        moves = [tuple(pair.split(":", 1)) for pair in argv]
        if not moves or any(len(move) != 2 for move in moves):
            raise ValueError("usage: python <template>/hooks carry-moved-edits OLD:NEW ...")
        conflicted = carry_moved_edits(Path.cwd(), moves)
    except (ValueError, subprocess.CalledProcessError) as error:
        print(f"copier-ml-deploy: could not carry edits over moved files: {error}", file=sys.stderr)
        return 1
    for path in conflicted:
        print(
            f"copier-ml-deploy: {path}: your edits and the template's overlap; resolve the"
            " conflict markers, then `git add` it",
            file=sys.stderr,
        )
    return 0


def carry_moved_edits(project: Path, moves: Sequence[tuple[str, str]]) -> list[str]:
    """Merge the user's edits of each moved file into its new path; return the conflicted."""
    previous = yaml.safe_load(_git(project, "show", f"HEAD:{ANSWERS_FILE}"))
    with tempfile.TemporaryDirectory() as scratch:
        base_project = render_previous_version(previous, Path(scratch) / "project")
        conflicted = []
        for old, new in moves:
            if merge_moved_file(project, base_project, old, new):
                conflicted.append(new)
    return conflicted


def render_previous_version(answers: dict, destination: Path) -> Path:
    """The project as the template version recorded in `answers` rendered it."""
    from copier import run_copy  # The migration runs in Copier's own interpreter.

    run_copy(
        answers["_src_path"],
        destination,
        data={key: value for key, value in answers.items() if not key.startswith("_")},
        vcs_ref=answers["_commit"],
        defaults=True,
        unsafe=True,
        quiet=True,
    )
    return destination


def merge_moved_file(project: Path, base_project: Path, old: str, new: str) -> bool:
    """Three-way merge old's user edits into `new`; True if they conflict."""
    base_file, new_file = base_project / old, project / new
    try:
        ours = _git(project, "show", f"HEAD:{old}")
    except subprocess.CalledProcessError:
        return False  # the user had deleted it: nothing to carry
    if not base_file.is_file() or not new_file.is_file():
        return False  # not a file the template moved, or the user excluded its new path
    base = base_file.read_text()
    if ours == base:
        return False  # never edited: the new render is already right
    with tempfile.TemporaryDirectory() as scratch:
        sides = {name: Path(scratch, name) for name in ("ours", "base", "theirs")}
        sides["ours"].write_text(ours)
        sides["base"].write_text(base)
        sides["theirs"].write_text(new_file.read_text())
        merge = subprocess.run(
            ["git", "merge-file", "-p", *(f"-L{label}" for label in LABELS)]
            + [str(sides[name]) for name in ("ours", "base", "theirs")],
            capture_output=True,
            text=True,
            check=False,
        )
        if merge.returncode < 0 or merge.returncode > 127:
            raise subprocess.CalledProcessError(merge.returncode, "git merge-file", merge.stderr)
        new_file.write_text(merge.stdout)
        if merge.returncode:
            _record_conflict(project, new, sides)
    return merge.returncode > 0


def _record_conflict(project: Path, path: str, sides: dict[str, Path]) -> None:
    """List `path` as unmerged in the index (stages 1-3), as a real merge would."""
    stages = {"base": 1, "ours": 2, "theirs": 3}
    lines = [f"0 {'0' * 40}\t{path}"]
    for name, stage in stages.items():
        sha = _git(project, "hash-object", "-w", "--", str(sides[name])).strip()
        lines.append(f"100644 {sha} {stage}\t{path}")
    subprocess.run(
        ["git", "update-index", "--index-info"],
        cwd=project,
        input="\n".join(lines) + "\n",
        text=True,
        check=True,
    )


def _git(project: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=project, capture_output=True, text=True, check=True
    ).stdout
