"""wire_route_test: EXPECTED_ROUTES follows the chosen APIs; the user's entries stay."""

from __future__ import annotations

import re

import pytest

from hooks.source_edit import Unsafe
from hooks.wire_route_test import wire_route_test

ALL = frozenset({"docs", "predict", "predict_proba", "evaluate", "jobs", "predictions"})
# One line of the set each, as ruff format lays it out.
BASE_ROUTES = ('("GET", "/livez"),', '("GET", "/readyz"),', '("GET", "/model"),')
DOCS = ('("GET", "/openapi.json"),', '("GET", "/docs/"),', '("GET", "/docs/start.js"),')
PREDICT, PROBA = '("POST", "/predict"),', '("POST", "/predict_proba"),'
EVALUATE = '("POST", "/evaluate"),'
JOBS = ('("POST", "/jobs"),', '("POST", "/jobs/train"),', '("GET", "/jobs/<job_id>"),')
PREDICTIONS = '("GET", "/predictions"),'
ADMIN = '("GET", "/admin"),  # ours, not the template\'s'


def routes_py(*lines: str, head: str = "EXPECTED_ROUTES = {") -> str:
    """A trimmed test_routes.py: the comment, then the set literal."""
    body = "".join(f"    {line}\n" for line in lines)
    return f'"""The routes."""\n\n# Kept in step by the pass.\n{head}\n{body}}}\n'


BASE = routes_py(*BASE_ROUTES)
ALL_WIRED = routes_py(*BASE_ROUTES, *DOCS, PREDICT, PROBA, EVALUATE, *JOBS, PREDICTIONS)

# name: (before, wired APIs, after)
CASES = {
    "predict on": (BASE, {"predict"}, routes_py(*BASE_ROUTES, PREDICT)),
    "docs on: all its routes": (BASE, {"docs"}, routes_py(*BASE_ROUTES, *DOCS)),
    "all on": (BASE, ALL, ALL_WIRED),
    "all off": (ALL_WIRED, set(), BASE),
    "one off": (
        ALL_WIRED,
        ALL - {"predict_proba"},
        routes_py(*BASE_ROUTES, *DOCS, PREDICT, EVALUATE, *JOBS, PREDICTIONS),
    ),
    "jobs on: its three routes": (BASE, {"jobs"}, routes_py(*BASE_ROUTES, *JOBS)),
    "jobs off, the prediction store's route kept": (
        routes_py(*BASE_ROUTES, PREDICT, *JOBS, PREDICTIONS, ADMIN),
        {"predict", "predictions"},
        routes_py(*BASE_ROUTES, PREDICT, PREDICTIONS, ADMIN),
    ),
    "canonical order": (
        routes_py(*BASE_ROUTES, EVALUATE, ADMIN),
        {"predict", "evaluate"},
        routes_py(*BASE_ROUTES, PREDICT, EVALUATE, ADMIN),
    ),
    "user entry kept, routes added before it": (
        routes_py(*BASE_ROUTES, ADMIN),
        {"predict"},
        routes_py(*BASE_ROUTES, PREDICT, ADMIN),
    ),
    "user entry kept, routes removed": (
        routes_py(*BASE_ROUTES, PREDICT, ADMIN, EVALUATE),
        set(),
        routes_py(*BASE_ROUTES, ADMIN),
    ),
    "annotated assignment": (
        routes_py(*BASE_ROUTES, head="EXPECTED_ROUTES: set[tuple[str, str]] = {"),
        {"evaluate"},
        routes_py(*BASE_ROUTES, EVALUATE, head="EXPECTED_ROUTES: set[tuple[str, str]] = {"),
    ),
}
NOOPS = {
    "nothing chosen": (BASE, set()),
    "all already there": (ALL_WIRED, ALL),
    "user entry": (routes_py(*BASE_ROUTES, ADMIN), set()),
}


@pytest.mark.parametrize(("before", "wired", "after"), CASES.values(), ids=CASES)
def test_wire(before: str, wired: set[str], after: str) -> None:
    assert wire_route_test(before, wired) == after


@pytest.mark.parametrize(("before", "wired", "after"), CASES.values(), ids=CASES)
def test_wire_is_idempotent(before: str, wired: set[str], after: str) -> None:
    assert wire_route_test(after, wired) == after


@pytest.mark.parametrize(("source", "wired"), NOOPS.values(), ids=NOOPS)
def test_noop(source: str, wired: set[str]) -> None:
    assert wire_route_test(source, wired) == source


@pytest.mark.parametrize(("before", "wired", "after"), CASES.values(), ids=CASES)
def test_output_passes_ruff(before: str, wired: set[str], after: str, ruff_clean) -> None:
    ruff_clean(after)


UNSAFE = {
    "routes on one line": (
        'EXPECTED_ROUTES = {("GET", "/livez"), ("POST", "/predict")}\n',
        set(),
        "line 1 holds more than the one item",
    ),
    "last entry without a trailing comma": (
        'EXPECTED_ROUTES = {\n    ("GET", "/livez")\n}\n',
        {"predict"},
        "line 2 holds more than the one item",
    ),
    "no set literal": (
        'EXPECTED_ROUTES = frozenset({("GET", "/livez")})\n',
        {"predict"},
        "there is no `EXPECTED_ROUTES = {...}` set literal to edit",
    ),
}


@pytest.mark.parametrize(("source", "wired", "reason"), UNSAFE.values(), ids=UNSAFE)
def test_refuses_layouts_it_cannot_edit_safely(source: str, wired: set[str], reason: str) -> None:
    with pytest.raises(Unsafe, match=re.escape(reason)):
        wire_route_test(source, wired)
