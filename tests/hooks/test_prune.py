"""prune_empty_dirs: folders left empty (or holding only bytecode caches) go; the rest stays."""

from __future__ import annotations

from pathlib import Path

from hooks.prune import prune_empty_dirs


def make(root: Path, *paths: str) -> None:
    """Create files (or folders, for paths ending in /) under root."""
    for path in paths:
        target = root / path
        if path.endswith("/"):
            target.mkdir(parents=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()


def tree(root: Path) -> set[str]:
    """Every path under root, relative, folders ending in /."""
    return {f"{p.relative_to(root)}{'/' * p.is_dir()}" for p in root.rglob("*")}


def test_prunes_empty_and_cache_only_folders(tmp_path: Path) -> None:
    make(
        tmp_path,
        "api/predict.py",
        "api/__pycache__/predict.cpython-311.pyc",
        "gone/deeper/",
        "cached/__pycache__/old.cpython-311.pyc",
        "nested/cached/__pycache__/",
    )
    removed = prune_empty_dirs(tmp_path)
    assert tree(tmp_path) == {
        "api/",
        "api/predict.py",
        "api/__pycache__/",
        "api/__pycache__/predict.cpython-311.pyc",
    }
    assert {p.relative_to(tmp_path).as_posix() for p in removed} == {
        "gone/deeper",
        "gone",
        "cached",
        "nested/cached",
        "nested",
    }


def test_keeps_the_root_and_ignores_a_missing_one(tmp_path: Path) -> None:
    assert prune_empty_dirs(tmp_path) == []
    assert tmp_path.is_dir()
    assert prune_empty_dirs(tmp_path / "absent") == []
