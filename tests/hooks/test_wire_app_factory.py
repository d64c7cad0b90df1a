"""wire_app_factory: before/after pairs, noop cases, and the layouts it refuses to edit."""

from __future__ import annotations

import re

import pytest

from hooks.source_edit import Unsafe
from hooks.wire_app_factory import wire_app_factory

ALL = frozenset({"docs", "predict", "predict_proba", "evaluate", "jobs", "predictions", "drift"})
USERS = ("inventory_forecasts", "quarterly_sales_report")
MODULES = ALL | {"health", "model_info", "admin", *USERS}


def app_py(api_import: str, *blueprints: str, body: str = "") -> str:
    """A trimmed app.py: the `.api` import and the function the pass edits."""
    calls = "".join(f"    app.register_blueprint({name}.bp)\n" for name in blueprints)
    return (
        "from flask import Flask\n\n"
        f"{api_import}\n\n\n"
        "def register_blueprints(app: Flask) -> None:\n"
        '    """Mount one Blueprint per API."""\n'
        f"{body}{calls}"
    )


BASE = app_py("from .api import health, model_info", "health", "model_info")
ALL_WIRED = app_py(
    "from .api import (\n"
    "    docs,\n    drift,\n    evaluate,\n    health,\n    jobs,\n    model_info,\n"
    "    predict,\n    predict_proba,\n    predictions,\n)",
    *("health", "model_info", "docs", "predict", "predict_proba", "evaluate"),
    *("jobs", "predictions", "drift"),
)
ALIASED = "from .api import health, model_info\nfrom .api import predict as predict_api"
WRAPPED = """\
from .api import (
    docs,
    evaluate,
    health,
    inventory_forecasts,
    model_info,
    predict,
    quarterly_sales_report,
)"""
NOTE = "  # the AST pass keeps this import in step with the questionnaire"
LOOP = "    for module in (health, model_info):\n        app.register_blueprint(module.bp)\n"

# name: (before, wired APIs, after)
CASES = {
    "predict on": (
        BASE,
        {"predict"},
        app_py("from .api import health, model_info, predict", "health", "model_info", "predict"),
    ),
    "all on": (BASE, ALL, ALL_WIRED),
    # An import wrapped over lines (ruff's, beyond 100 columns) keeps its layout.
    "all off": (
        ALL_WIRED,
        set(),
        app_py("from .api import (\n    health,\n    model_info,\n)", "health", "model_info"),
    ),
    "one off": (
        ALL_WIRED,
        ALL - {"predict_proba", "drift"},
        app_py(
            "from .api import (\n    docs,\n    evaluate,\n    health,\n    jobs,\n"
            "    model_info,\n    predict,\n    predictions,\n)",
            *("health", "model_info", "docs", "predict", "evaluate", "jobs", "predictions"),
        ),
    ),
    # The jobs API and the prediction store's GET /predictions rank after the four others.
    "jobs and predictions after the others": (
        app_py("from .api import health, model_info, predict", "health", "model_info", "predict"),
        {"predict", "jobs", "predictions"},
        app_py(
            "from .api import health, jobs, model_info, predict, predictions",
            *("health", "model_info", "predict", "jobs", "predictions"),
        ),
    ),
    "canonical order among optional APIs": (
        app_py("from .api import evaluate, health, model_info", "health", "model_info", "evaluate"),
        {"docs", "predict", "evaluate"},
        app_py(
            "from .api import docs, evaluate, health, model_info, predict",
            *("health", "model_info", "docs", "predict", "evaluate"),
        ),
    ),
    # New template lines go after the template's own, apart from lines the user appended,
    # so that copier update's three-way merge sees two separate changes, not one conflict.
    "user blueprint kept, API added before it": (
        app_py("from .api import admin, health, model_info", "health", "model_info", "admin"),
        {"predict"},
        app_py(
            "from .api import admin, health, model_info, predict",
            *("health", "model_info", "predict", "admin"),
        ),
    ),
    "user blueprint kept, API removed": (
        app_py(
            "from .api import admin, health, model_info, predict",
            *("health", "model_info", "predict", "admin"),
        ),
        set(),
        app_py("from .api import admin, health, model_info", "health", "model_info", "admin"),
    ),
    "dangling import pruned with its registration": (
        app_py("from .api import health, legacy, model_info", "health", "legacy", "model_info"),
        {"predict"},
        app_py("from .api import health, model_info, predict", "health", "model_info", "predict"),
    ),
    "aliased import removed with its registration": (
        app_py(ALIASED, "health", "model_info", "predict_api"),
        set(),
        BASE,
    ),
    "import too long for one line is wrapped": (
        app_py(
            f"from .api import health, {', '.join(USERS)}, model_info",
            "health",
            "model_info",
            *USERS,
        ),
        {"docs", "predict", "evaluate"},
        app_py(WRAPPED, "health", "model_info", "docs", "predict", "evaluate", *USERS),
    ),
    "wrapped import stays wrapped": (
        app_py("from .api import (\n    health,\n)", "health"),
        {"predict"},
        app_py("from .api import (\n    health,\n    predict,\n)", "health", "predict"),
    ),
    "comment after the import kept": (
        app_py("from .api import health  # one module per API", "health"),
        {"predict"},
        app_py("from .api import health, predict  # one module per API", "health", "predict"),
    ),
    "a trailing comment counts toward the line length": (
        app_py(f"from .api import health, model_info{NOTE}", "health", "model_info"),
        {"docs", "predict"},
        app_py(
            f"from .api import (\n    docs,\n    health,\n    model_info,\n    predict,\n){NOTE}",
            *("health", "model_info", "docs", "predict"),
        ),
    ),
    "registrations in a loop: appended to the function": (
        app_py("from .api import health, model_info", body=LOOP),
        {"predict"},
        app_py("from .api import health, model_info, predict", "predict", body=LOOP),
    ),
}
NOOPS = {
    "nothing chosen": (BASE, set()),
    "all already wired": (ALL_WIRED, ALL),
    "user blueprint": (app_py("from .api import admin, health", "health", "admin"), set()),
    "aliased import already wired": (
        app_py(ALIASED, "health", "model_info", "predict_api"),
        {"predict"},
    ),
}


@pytest.mark.parametrize(("before", "wired", "after"), CASES.values(), ids=CASES)
def test_wire(before: str, wired: set[str], after: str) -> None:
    assert wire_app_factory(before, wired, MODULES) == after


@pytest.mark.parametrize(("before", "wired", "after"), CASES.values(), ids=CASES)
def test_wire_is_idempotent(before: str, wired: set[str], after: str) -> None:
    assert wire_app_factory(after, wired, MODULES) == after


@pytest.mark.parametrize(("source", "wired"), NOOPS.values(), ids=NOOPS)
def test_noop(source: str, wired: set[str]) -> None:
    assert wire_app_factory(source, wired, MODULES) == source


@pytest.mark.parametrize(("before", "wired", "after"), CASES.values(), ids=CASES)
def test_output_passes_ruff(before: str, wired: set[str], after: str, ruff_clean) -> None:
    ruff_clean(after)


def test_chosen_api_without_module_is_not_wired() -> None:
    assert wire_app_factory(BASE, {"predict"}, MODULES - {"predict"}) == BASE


LIVED_IN = '''\
"""An app.py its user has lived in: comments, match, walrus and f-strings."""

from flask import Flask

# One module per API; admin is ours.
from .api import admin, health, model_info  # sorted by ruff


def describe(status: int) -> str:
    """Name a status class."""
    match status // 100:  # a match statement astor cannot even parse
        case 2:
            return "ok"
        case 4 | 5:
            return f"error {status!r:>5}"
        case _:
            return f"{'other'}"


def register_blueprints(app: Flask) -> None:
    """Mount one Blueprint per API."""
    app.register_blueprint(health.bp)  # liveness first
    app.register_blueprint(model_info.bp)
    # Our own Blueprint, mounted under a prefix.
    app.register_blueprint(admin.bp, url_prefix="/admin")
    if (prefix := app.config.get("PREFIX")) is not None:
        app.logger.info(f"mounted under {prefix=}")
'''


def test_user_code_survives_byte_for_byte(ruff_clean) -> None:
    after = wire_app_factory(LIVED_IN, {"predict", "evaluate"}, MODULES)
    assert after == LIVED_IN.replace(
        "from .api import admin, health, model_info  # sorted",
        "from .api import admin, evaluate, health, model_info, predict  # sorted",
    ).replace(
        "    app.register_blueprint(model_info.bp)\n",
        "    app.register_blueprint(model_info.bp)\n"
        "    app.register_blueprint(predict.bp)\n"
        "    app.register_blueprint(evaluate.bp)\n",
    )
    assert wire_app_factory(after, set(), MODULES) == LIVED_IN
    ruff_clean(after)


UNSAFE = {
    "comment inside the import": (
        app_py("from .api import (\n    health,  # liveness\n)", "health"),
        {"predict"},
        "line 3: the pass would drop the comments inside this import",
    ),
    "two registrations on one line": (
        app_py(
            "from .api import health, predict",
            body="    app.register_blueprint(health.bp); app.register_blueprint(predict.bp)\n",
        ),
        set(),
        "line 8 holds more than the one item",
    ),
    "API used outside register_blueprints": (
        app_py("from .api import health, predict", "health", "predict") + "\nNAME = predict.bp\n",
        set(),
        "line 11 uses `predict`, whose import the pass would remove",
    ),
    "no register_blueprints": (
        "from .api import health\n\nAPIS = [health]\n",
        {"predict"},
        "there is no `register_blueprints(app)` to register `predict` in",
    ),
    "no import from .api": (
        app_py("from .health import bp", "health"),
        {"predict"},
        "there is no `from .api import ...` to add the chosen APIs to",
    ),
}


@pytest.mark.parametrize(("source", "wired", "reason"), UNSAFE.values(), ids=UNSAFE)
def test_refuses_layouts_it_cannot_edit_safely(source: str, wired: set[str], reason: str) -> None:
    with pytest.raises(Unsafe, match=re.escape(reason)):
        wire_app_factory(source, wired, MODULES)


def test_syntax_error_is_raised() -> None:
    with pytest.raises(SyntaxError):
        wire_app_factory(BASE + "def broken(:\n", set(), MODULES)
