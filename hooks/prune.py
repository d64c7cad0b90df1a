"""Remove the empty folders `copier update` can leave behind when it deletes files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def prune_empty_dirs(root: Path) -> list[Path]:
    """Remove the folders under `root` holding nothing but `__pycache__`, deepest first."""
    removed = []
    for path, _, _ in os.walk(root, topdown=False):
        folder = Path(path)
        if folder != root and folder.name != "__pycache__" and _only_caches(folder):
            for cache in folder.iterdir():
                shutil.rmtree(cache)
            folder.rmdir()
            removed.append(folder)
    return removed


def _only_caches(folder: Path) -> bool:
    """Whether the folder holds no entry but `__pycache__` folders (possibly none at all)."""
    return all(
        entry.name == "__pycache__" and entry.is_dir() and not entry.is_symlink()
        for entry in folder.iterdir()
    )
