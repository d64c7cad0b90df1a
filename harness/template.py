"""This checkout's template, as Copier reads it: a plain folder, or a tagged git snapshot."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# What makes up the template: what a template repository built from this checkout holds.
TEMPLATE_PATHS = ["copier.yml", "template", "hooks", "extensions", "includes"]
# The version this checkout will be released as: the tag a snapshot gets.
TEMPLATE_VERSION = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
GIT = ["git", "-c", "user.name=snapshot", "-c", "user.email=snapshot@localhost"]


def copy_template(destination: Path) -> Path:
    """This checkout's template, as a plain folder (Copier renders it as it is, no clone)."""
    destination.mkdir(parents=True)
    for name in TEMPLATE_PATHS:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(
                source, destination / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy(source, destination / name)
    return destination


def snapshot_template(destination: Path) -> Path:
    """The template as checked out (uncommitted changes included) in a throwaway git repository,
    committed and tagged TEMPLATE_VERSION: `copier update` needs a commit it can find again,
    which `--vcs-ref HEAD` of a dirty checkout is not."""
    copy_template(destination)
    for command in (
        ["git", "init", "--quiet"],
        ["git", "add", "--all"],
        [*GIT, "commit", "--quiet", "-m", "snapshot"],
        ["git", "tag", TEMPLATE_VERSION],
    ):
        subprocess.run(command, cwd=destination, check=True, capture_output=True)
    return destination
