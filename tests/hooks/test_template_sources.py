"""The pass on the template's own app.py and test_routes.py, as Copier renders them."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from hooks.wire_app_factory import wire_app_factory
from hooks.wire_route_test import wire_route_test

TEMPLATE = Path(__file__).resolve().parents[2] / "template"
ALL = frozenset({"docs", "predict", "predict_proba", "evaluate"})
MODULES = ALL | {"health", "model_info"}
PASSES = {
    "app.py": (next(TEMPLATE.glob("src/*/*app.py*")), lambda s, w: wire_app_factory(s, w, MODULES)),
    "test_routes.py": (next(TEMPLATE.glob("tests/*api*/test_routes.py*")), wire_route_test),
}


@pytest.mark.parametrize(("path", "transform"), PASSES.values(), ids=PASSES)
def test_all_on_only_adds_lines_and_all_off_restores(path: Path, transform, ruff_clean) -> None:
    rendered = path.read_text()
    wired = transform(rendered, ALL)
    diff = difflib.ndiff(rendered.splitlines(), wired.splitlines())
    changed = [line for line in diff if line[:1] in "+-"]
    assert [line[0] for line in changed].count("-") <= 1  # At most the `from .api import` line.
    assert transform(wired, ALL) == wired
    assert transform(wired, set()) == rendered
    ruff_clean(wired)
