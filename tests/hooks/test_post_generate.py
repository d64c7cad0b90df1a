"""The hook end to end: as Copier runs it, and what the user sees when it cannot do its job."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hooks.post_generate import main

HOOKS = Path(__file__).resolve().parents[2] / "hooks"
APP = "src/iris_classifier/app.py"
ROUTES = "tests/api/test_routes.py"
ALL_ON = {
    "package_name": "iris_classifier",
    "serve_model": True,
    "apis": ["predict", "predict_proba", "evaluate"],
    "openapi_docs": True,
}
RENDERED_APP = '''\
from flask import Flask

from .api import health, model_info


def register_blueprints(app: Flask) -> None:
    """Mount one Blueprint per API."""
    app.register_blueprint(health.bp)
    app.register_blueprint(model_info.bp)
'''
RENDERED_ROUTES = 'EXPECTED_ROUTES = {\n    ("GET", "/livez"),\n}\n'


def answers(**changes: object) -> str:
    """The task's JSON argument: every API on, with `changes`."""
    return json.dumps({**ALL_ON, **changes})


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A rendered project, before the pass, as the working directory."""
    api = tmp_path / "src/iris_classifier/api"
    api.mkdir(parents=True)
    for name in ("health", "model_info", "docs", "predict", "predict_proba", "evaluate", "jobs"):
        (api / f"{name}.py").write_text("bp = None\n")
    (tmp_path / APP).write_text(RENDERED_APP)
    (tmp_path / ROUTES).parent.mkdir(parents=True)
    (tmp_path / ROUTES).write_text(RENDERED_ROUTES)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_runs_as_copier_task(project: Path) -> None:
    (project / "tests/unit/__pycache__").mkdir(parents=True)
    command = [sys.executable, str(HOOKS), answers(apis=["predict"], openapi_docs=False)]
    for _ in range(2):  # Copier's update runs it again on its own output.
        run = subprocess.run(command, cwd=project, capture_output=True, text=True, check=False)
        assert (run.returncode, run.stderr) == (0, "")
    wired_app = RENDERED_APP.replace("model_info\n", "model_info, predict\n")
    assert (project / APP).read_text() == wired_app + "    app.register_blueprint(predict.bp)\n"
    wired_routes = RENDERED_ROUTES.replace("}", '    ("POST", "/predict"),\n}')
    assert (project / ROUTES).read_text() == wired_routes
    assert not (project / "tests/unit").exists()


def test_an_update_turning_an_api_off_cleans_its_wiring(project: Path) -> None:
    assert main([answers()]) == 0
    (project / "src/iris_classifier/api/evaluate.py").unlink()
    assert main([answers(apis=["predict", "predict_proba"])]) == 0
    app = (project / APP).read_text()
    assert "from .api import docs, health, model_info, predict, predict_proba\n" in app
    assert "evaluate" not in app + (project / ROUTES).read_text()


def test_the_jobs_api_and_the_prediction_store_answer_are_wired(project: Path) -> None:
    # GET /predictions and GET /drift follow the prediction store (with_store), not apis; jobs has
    # three routes.
    (project / "src/iris_classifier/api/predictions.py").write_text("bp = None\n")
    (project / "src/iris_classifier/api/drift.py").write_text("bp = None\n")
    chosen = answers(apis=["predict", "jobs"], openapi_docs=False, with_store=True)
    assert main([chosen]) == 0
    app = (project / APP).read_text()
    assert "from .api import drift, health, jobs, model_info, predict, predictions\n" in app
    assert app.endswith(
        "app.register_blueprint(jobs.bp)\n    app.register_blueprint(predictions.bp)\n"
        "    app.register_blueprint(drift.bp)\n"
    )
    routes = (project / ROUTES).read_text()
    for route in ('("POST", "/jobs")', '("POST", "/jobs/train")', '("GET", "/jobs/<job_id>")'):
        assert route in routes
    assert '("GET", "/predictions")' in routes
    assert '("GET", "/drift")' in routes

    assert main([answers(apis=["predict"], openapi_docs=False, with_store=False)]) == 0
    for wiring in ((project / APP).read_text(), (project / ROUTES).read_text()):
        assert "jobs" not in wiring and "predictions" not in wiring and "drift" not in wiring


def test_without_a_served_model_it_does_nothing(tmp_path: Path, monkeypatch, capsys) -> None:
    (tmp_path / "src/iris_classifier").mkdir(parents=True)
    (tmp_path / "src/iris_classifier/cli.py").write_text("")
    monkeypatch.chdir(tmp_path)
    assert main([answers(serve_model=False, apis=[], openapi_docs=False)]) == 0
    assert [p.name for p in tmp_path.rglob("*")] == ["src", "iris_classifier", "cli.py"]
    assert capsys.readouterr().err == ""


def test_missing_astor_says_how_to_install_it(project: Path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "astor", None)  # `import astor` now raises ImportError.
    assert main([answers()]) == 1
    assert capsys.readouterr().err == (
        "copier-ml-deploy: the template's hooks need astor in Copier's environment. "
        "Install it with: pipx inject copier astor copier-template-extensions  "
        "(or: uv tool install copier --with astor --with copier-template-extensions)\n"
    )
    assert (project / APP).read_text() == RENDERED_APP


def test_a_syntax_error_names_the_file_and_line(project: Path, capsys) -> None:
    (project / APP).write_text(RENDERED_APP + "def broken(:\n")
    assert main([answers()]) == 1
    assert capsys.readouterr().err == (
        f"copier-ml-deploy: {APP}:10: syntax error (invalid syntax); fix it and run Copier again\n"
    )
    assert (project / APP).read_text() == RENDERED_APP + "def broken(:\n"
    assert '("POST", "/evaluate")' in (project / ROUTES).read_text()


def test_a_layout_it_cannot_edit_is_left_untouched_with_a_warning(project: Path, capsys) -> None:
    (project / ROUTES).write_text('EXPECTED_ROUTES = {("GET", "/livez")}\n')
    assert main([answers()]) == 0
    assert capsys.readouterr().err == (
        f"copier-ml-deploy: warning: {ROUTES} left untouched: line 1 holds more than the one item"
        " the pass edits. Wire the optional APIs in it by hand.\n"
    )
    assert (project / ROUTES).read_text() == 'EXPECTED_ROUTES = {("GET", "/livez")}\n'


def test_a_chosen_api_without_its_module_is_reported(project: Path, capsys) -> None:
    (project / "src/iris_classifier/api/docs.py").unlink()
    assert main([answers()]) == 0
    assert capsys.readouterr().err == (
        "copier-ml-deploy: warning: docs is chosen but src/iris_classifier/api/docs.py"
        " is missing; it stays unwired\n"
    )
    assert "docs" not in (project / APP).read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "usage: python <template>/hooks '<answers as JSON>'"),
        (["{}"], "invalid answers: package_name must be a JSON str, got None"),
    ],
)
def test_bad_arguments(project: Path, capsys, argv: list[str], message: str) -> None:
    assert main(argv) == 2
    assert capsys.readouterr().err == f"copier-ml-deploy: {message}\n"
