"""A route of your own, added the way the generated README and app.py say, keeps the tests green.

The user writes a Blueprint in a module of their own, imports it above the template's
`from .api import` line, registers it below the template's registrations, and appends its
route to EXPECTED_ROUTES. No OpenAPI is written for it: the document describes it from its
docstring, so the project's own tests (routes, OpenAPI document) pass as they are.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import copy_template, render, run_gate

ADMIN = '''\
"""Operations endpoints of our own."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("admin", __name__)


@bp.get("/admin/batches/<int:batch_id>")
def batch(batch_id: int) -> dict[str, int]:
    """One nightly batch, by id.

    Read from the batch log.
    """
    return {"batch_id": batch_id}
'''


def edit(path: Path, anchor: str, new: str, *, before: bool) -> None:
    """Insert `new` on its own line before or after the line holding `anchor` (once)."""
    lines = path.read_text().splitlines(keepends=True)
    (index,) = [number for number, line in enumerate(lines) if anchor in line]
    indent = lines[index][: len(lines[index]) - len(lines[index].lstrip())]
    lines.insert(index if before else index + 1, f"{indent}{new}\n")
    path.write_text("".join(lines))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default project, with the user's own Blueprint added as the README says."""
    base = tmp_path_factory.mktemp("own-route")
    project = render(copy_template(base / "template"), base / "project", {})
    package = project / "src" / "iris_classifier"
    (package / "admin.py").write_text(ADMIN)
    app = package / "app.py"
    edit(
        app,
        "# The template's AST pass owns the next line",
        "from .admin import bp as admin_bp\n",  # ruff's isort wants the comment apart
        before=True,
    )
    edit(app, "# Your own Blueprints go here", "app.register_blueprint(admin_bp)", before=False)
    routes = project / "tests" / "api" / "test_routes.py"
    edit(
        routes,
        "# Your own routes go here",
        '("GET", "/admin/batches/<int:batch_id>"),',
        before=False,
    )
    return project


def test_the_projects_own_gates_pass_with_a_route_of_ones_own(project, service_bin):
    run_gate([str(service_bin / "ruff"), "check", "."], project)
    run_gate([str(service_bin / "ruff"), "format", "--check", "."], project)
    basetemp = project.with_name("own-route-pytest")
    command = [
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--basetemp={basetemp}",
        "tests/api",
    ]
    run_gate([str(service_bin / "python"), *command], project)


def test_the_document_describes_it_from_its_docstring(project, service_bin):
    script = (
        "import json, tempfile\n"
        "from iris_classifier.app import create_app\n"
        "app = create_app({'MODEL_DIR': tempfile.mkdtemp(), 'TESTING': True})\n"
        "print(json.dumps(app.test_client().get('/openapi.json').json['paths']))\n"
    )
    output = run_gate([str(service_bin / "python"), "-c", script], project, {"PYTHONPATH": "src"})
    operation = json.loads(output)["/admin/batches/{batch_id}"]["get"]
    assert operation["summary"] == "One nightly batch, by id."
    assert operation["description"] == "Read from the batch log."
    assert operation["tags"] == ["admin"]
