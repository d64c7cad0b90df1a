"""copier update: change your mind later, lose nothing.

Each test copies a project from a throwaway git repository of the template, commits it,
edits it like a user would, then updates it with copier's API and checks what survived.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from copier import run_copy, run_recopy, run_update

from tests.conftest import (
    REPO_ROOT,
    TEMPLATE_PATHS,
    TEMPLATE_VERSION,
    render_refused,
    run_gate,
    snapshot_template,
)

# copier copy, then copier update between versions and answers.
# Minutes, no services: `pytest -m 'not slow'` leaves them out.
pytestmark = pytest.mark.slow

PACKAGE = Path("src", "iris_classifier")
# Files that legitimately differ between an updated project and a fresh copy.
IGNORED_PARTS = {".git", "__pycache__", ".pytest_cache", ".ruff_cache"}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def commit_all(cwd: Path, message: str) -> None:
    git(cwd, "add", "-A")
    git(cwd, "commit", "-q", "--allow-empty", "-m", message)


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """The template as a git repository with one tagged version (what copier copy resolves)."""
    return snapshot_template(tmp_path_factory.mktemp("update") / "template")


def put_template(repo: Path) -> None:
    """Write this checkout's template into `repo`, replacing any template already there."""
    for name in TEMPLATE_PATHS:
        source, target = REPO_ROOT / name, repo / name
        if target.is_dir():
            shutil.rmtree(target)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, target)


def copy(template: Path, destination: Path, vcs_ref: str | None = None, **answers) -> Path:
    """`copier copy --trust --defaults` with `answers`, then commit the result like a user."""
    run_copy(
        str(template),
        destination,
        data=answers,
        vcs_ref=vcs_ref,
        defaults=True,
        unsafe=True,
        quiet=True,
    )
    git(destination, "init", "-q")
    commit_all(destination, "generated")
    return destination


def update(project: Path, **answers) -> None:
    """`copier update --trust --defaults` with `answers` changed; conflicts inline."""
    run_update(project, data=answers, defaults=True, overwrite=True, unsafe=True, quiet=True)


def tree(root: Path) -> dict[str, bytes]:
    """Every file under root, by relative path, leaving out git and tool caches."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not IGNORED_PARTS & set(path.relative_to(root).parts)
    }


def recorded_answers(project: Path) -> dict:
    """The questionnaire answers in the project's answers file."""
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    return {key: value for key, value in answers.items() if not key.startswith("_")}


def unmerged(project: Path) -> list[str]:
    """Files git reports as unmerged (both modified), as `git status` shows them."""
    status = git(project, "status", "--porcelain").splitlines()
    return [line[3:] for line in status if line[:2] in {"UU", "AA", "DU", "UD"}]


GUNICORN_ALONE = {"web_server": "gunicorn", "process_manager": "none"}
ANSWER_CHANGES = [
    pytest.param(
        {"apis": ["predict"], "openapi_docs": False},
        {"apis": ["predict", "predict_proba", "evaluate"], "openapi_docs": True},
        id="apis-and-docs-on",
    ),
    pytest.param(
        {"apis": ["predict", "predict_proba", "evaluate"]},
        {"apis": ["evaluate"], "openapi_docs": False},
        id="apis-and-docs-off",
    ),
    pytest.param({}, {"model_format": "joblib"}, id="numpy-to-joblib"),
    pytest.param({}, {"training_data": "csv"}, id="sample-to-csv"),
    pytest.param({"training_data": "csv"}, {"training_data": "sample"}, id="csv-to-sample"),
    # A project made before 0.4.0 keeps ONNX, its recorded answer, until it asks for NumPy.
    pytest.param({"model_format": "onnx"}, {"model_format": "numpy"}, id="onnx-to-numpy"),
    pytest.param({}, {"log_format": "json", "log_level": "DEBUG"}, id="logging"),
    pytest.param({}, {"web_server": "gunicorn", "process_manager": "none"}, id="drop-nginx"),
    pytest.param(
        {"web_server": "gunicorn", "process_manager": "none", "gunicorn_worker_class": "gthread"},
        {"web_server": "nginx", "process_manager": "supervisor"},
        id="add-nginx",
    ),
    # The Python server behind nginx, both ways: no gunicorn file left beside granian's, or
    # granian's beside gunicorn's.
    pytest.param({}, {"wsgi_server": "granian"}, id="gunicorn-to-granian"),
    pytest.param(
        {"wsgi_server": "granian", "prediction_store": "sqlite"},
        {"wsgi_server": "gunicorn"},
        id="granian-to-gunicorn",
    ),
    pytest.param({"wsgi_server": "granian"}, GUNICORN_ALONE, id="granian-to-gunicorn-alone"),
    pytest.param({}, {"dockerfile": False, "docker_compose": False}, id="drop-docker"),
    pytest.param(
        {},
        {"task_queue": "sqlite", "apis": ["predict", "predict_proba", "evaluate", "jobs"]},
        id="jobs-on-embedded-queue",
    ),
    pytest.param({"task_queue": "sqlite"}, {"task_queue": "redis"}, id="embedded-queue-to-redis"),
    pytest.param(
        {"task_queue": "redis"},
        {"task_queue": "none", "apis": ["predict", "predict_proba", "evaluate"]},
        id="jobs-off",
    ),
    pytest.param({}, {"prediction_store": "sqlite"}, id="add-prediction-store"),
    pytest.param(
        {"prediction_store": "sqlite"}, {"prediction_store": "postgresql"}, id="store-to-postgresql"
    ),
    pytest.param({"prediction_store": "postgresql"}, {"prediction_store": "none"}, id="drop-store"),
    pytest.param(GUNICORN_ALONE, {"kubernetes": True}, id="kubernetes-on"),
    pytest.param(
        {**GUNICORN_ALONE, "kubernetes": True}, {"kubernetes": False}, id="kubernetes-off"
    ),
    pytest.param(
        {**GUNICORN_ALONE, "kubernetes": True},
        {
            "task_queue": "redis",
            "prediction_store": "postgresql",
            "apis": ["predict", "predict_proba", "evaluate", "jobs"],
        },
        id="kubernetes-queue-and-store-on",
    ),
    pytest.param({}, {"ci": "gitlab"}, id="ci-github-to-gitlab"),
    pytest.param({"ci": "gitlab"}, {"ci": "none"}, id="ci-off"),
    pytest.param({"ci": "none", "dockerfile": False}, {"ci": "github"}, id="ci-on-without-docker"),
    pytest.param({}, {"serve_model": False, "apis": [], "openapi_docs": False}, id="stop-serving"),
    pytest.param(
        {"serve_model": False, "apis": [], "openapi_docs": False},
        {"serve_model": True, "apis": ["predict"], "openapi_docs": True},
        id="start-serving",
    ),
]


@pytest.mark.parametrize(("before", "after"), ANSWER_CHANGES)
def test_changed_answers_give_what_a_fresh_copy_gives(template, tmp_path, before, after):
    project = copy(template, tmp_path / "project", **before)
    update(project, **after)
    # The new answers are the changed ones plus those the project had recorded (Copier keeps
    # an answer once given, defaults included; questions no longer asked are not recorded).
    answers = recorded_answers(project)
    assert all(answers.get(question, answer) == answer for question, answer in after.items())
    fresh = copy(template, tmp_path / "fresh", **answers)
    assert tree(project) == tree(fresh)
    assert not unmerged(project)


def test_on_off_on_returns_to_the_same_tree(template, tmp_path):
    project = copy(template, tmp_path / "project")
    original = tree(project)
    update(project, apis=["predict"], openapi_docs=False)
    commit_all(project, "apis off")
    update(project, apis=["predict", "predict_proba", "evaluate"], openapi_docs=True)
    assert tree(project) == original


def test_api_keys_turn_on_and_off(template, tmp_path):
    """auth=api_key adds the key check, wired like an API by the pass; auth=none removes it."""
    project = copy(template, tmp_path / "project")
    original = tree(project)
    update(project, auth="api_key")
    assert "app.register_blueprint(auth.bp)" in (project / PACKAGE / "app.py").read_text()
    assert (project / PACKAGE / "api" / "auth.py").exists()
    assert (project / "tests" / "api" / "test_auth.py").exists()
    commit_all(project, "keys on")
    update(project, auth="none")
    assert tree(project) == original


def test_a_no_op_update_leaves_git_status_clean(template, tmp_path):
    project = copy(template, tmp_path / "project")
    update(project)
    assert git(project, "status", "--porcelain") == ""


# ---------------------------------------------------------------- the user's own edits

CUSTOM_ROUTE = '''

@bp.post("/predict/explain")
def explain():
    """Our own route: which features the model reads."""
    return {"features": current_app.extensions["model"].get().feature_names}
'''

OWN_BLUEPRINT = '''"""Our own Blueprint: operational endpoints."""

from flask import Blueprint

bp = Blueprint("admin", __name__)


@bp.get("/admin/ping")
def ping():
    return {"pong": True}
'''

OWN_TEST = '''"""Our own test."""


def test_admin_ping(client):
    assert client.get("/admin/ping").json == {"pong": True}
'''


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path} no longer holds {old!r}: update this test"
    path.write_text(text.replace(old, new, 1))


def make_user_edits(project: Path) -> None:
    """What a team does to its service in its first weeks."""
    predict = project / PACKAGE / "api" / "predict.py"
    predict.write_text(predict.read_text() + CUSTOM_ROUTE)
    (project / PACKAGE / "admin.py").write_text(OWN_BLUEPRINT)
    edit(
        project / PACKAGE / "app.py",
        "from .config import Settings\n",
        "from .admin import bp as admin_bp\nfrom .config import Settings\n",
    )
    own_blueprints = "    # Your own Blueprints go here, below the template's.\n"
    edit(
        project / PACKAGE / "app.py",
        own_blueprints,
        own_blueprints + "    app.register_blueprint(admin_bp)\n",
    )
    edit(
        project / "tests" / "api" / "test_routes.py",
        "    # Your own routes go here, below the template's.\n",
        "    # Your own routes go here, below the template's.\n"
        '    ("GET", "/admin/ping"),\n    ("POST", "/predict/explain"),\n',
    )
    (project / "tests" / "api" / "test_admin.py").write_text(OWN_TEST)
    edit(
        project / "pyproject.toml",
        '"numpy>=1.26,<3",',
        '"numpy>=1.26,<3",\n    "requests>=2.32,<3",',
    )
    edit(
        project / "README.md",
        "## Batch predictions\n",
        "## Batch predictions\n\nOur team runs these nightly.\n",
    )
    (project / ".env").write_text("FLASK_MAX_BATCH_ROWS=50\n")
    (project / "data").mkdir()
    (project / "data" / "train.csv").write_text("x0,target\n1.0,a\n")
    (project / "models").mkdir()
    (project / "models" / "metadata.json").write_text("{}\n")  # stands for a trained model
    commit_all(project, "our edits")


def test_user_edits_survive_apis_turning_on_and_off(template, tmp_path, service_bin):
    project = copy(template, tmp_path / "project", apis=["predict", "predict_proba"])
    make_user_edits(project)
    edited = tree(project)

    update(project, apis=["predict", "evaluate"], openapi_docs=False)

    assert not unmerged(project)
    assert not list(project.rglob("*.rej"))
    updated = tree(project)
    for path in [
        "src/iris_classifier/admin.py",
        "tests/api/test_admin.py",
        ".env",
        "data/train.csv",
        "models/metadata.json",
    ]:
        assert updated[path] == edited[path], f"{path} changed"
    assert CUSTOM_ROUTE.encode() in updated["src/iris_classifier/api/predict.py"]
    assert b"requests>=2.32,<3" in updated["pyproject.toml"]
    assert b"Our team runs these nightly." in updated["README.md"]
    app = updated["src/iris_classifier/app.py"].decode()
    assert "app.register_blueprint(admin_bp)" in app
    assert "app.register_blueprint(evaluate.bp)" in app
    assert "predict_proba" not in app and "docs" not in app.split("def create_app")[0]
    assert "src/iris_classifier/api/predict_proba.py" not in updated
    assert "tests/api/test_evaluate.py" in updated

    # The edited, updated project still passes its own gates (the trained-model stand-in
    # aside: the suite trains its own model in a temporary folder).
    (project / "models" / "metadata.json").unlink()
    run_gate([str(service_bin / "ruff"), "check", "."], project)
    run_gate([str(service_bin / "ruff"), "format", "--check", "."], project)
    run_gate([str(service_bin / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"], project)


def test_pinned_feature_types_survive_a_new_template_version(tmp_path):
    """features.toml is the user's once rendered: a version that changes the template's
    copy of it (its comments) leaves the user's pins as they wrote them."""
    repo = snapshot_template(tmp_path / "template")
    project = copy(repo, tmp_path / "project", training_data="csv")
    pins = project / "features.toml"
    pins.write_text(pins.read_text() + 'zip_code = "category"\n')
    commit_all(project, "our pins")
    edited = pins.read_bytes()

    source = next((repo / "template").glob("*features.toml*"))
    source.write_text("# Rewritten by the next version.\n" + source.read_text())
    commit_all(repo, "the template's features.toml changes")
    git(repo, "tag", "99.0.0")
    update(project)

    assert "_commit: 99.0.0" in (project / ".copier-answers.yml").read_text()
    assert pins.read_bytes() == edited
    assert not unmerged(project)


def test_edits_to_the_same_lines_are_unmerged_conflicts_not_lost(template, tmp_path):
    project = copy(template, tmp_path / "project")
    # A .gitignore'd *.rej would hide conflicts in files nobody sees; inline markers cannot hide.
    edit(project / ".gitignore", "# Python\n", "# Python\n*.rej\n")
    edit(project / PACKAGE / "app.py", "from .api import docs,", "from .api import admin, docs,")
    (project / PACKAGE / "api" / "admin.py").write_text(OWN_BLUEPRINT)
    commit_all(project, "our import, on the template's line")

    update(project, openapi_docs=False)

    assert unmerged(project) == ["src/iris_classifier/app.py"]
    app = (project / PACKAGE / "app.py").read_text()
    assert "<<<<<<< before updating" in app and ">>>>>>> after updating" in app
    assert "from .api import admin, docs," in app  # ours, shown beside the template's
    assert not list(project.rglob("*.rej"))
    ignored = git(project, "status", "--porcelain", "--ignored").splitlines()
    assert not [line for line in ignored if line.endswith(".rej")]


def test_the_answers_file_records_answers_not_derived_values(template, tmp_path):
    project = copy(template, tmp_path / "project")
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["_commit"] == TEMPLATE_VERSION
    assert not {"package_name", "project_slug", "estimator_class"} & answers.keys()


def test_a_changed_nginx_directive_survives_a_change_the_template_makes_there(template, tmp_path):
    project = copy(template, tmp_path / "project")
    nginx = project / "deploy" / "nginx.conf"
    edit(nginx, "worker_processes auto;", "worker_processes 2;")
    edit(nginx, "client_max_body_size 1m;", "client_max_body_size 1m;\n        gzip on;")
    commit_all(project, "our nginx tuning")

    update(project, log_format="json")  # rewrites nginx.conf's access log

    text = nginx.read_text()
    assert "worker_processes 2;" in text and "gzip on;" in text
    assert "access_log /dev/stdout json buffer=64k flush=1s;" in text
    assert not unmerged(project)


def test_edited_kubernetes_manifests_survive_an_update(template, tmp_path):
    project = copy(template, tmp_path / "project", **GUNICORN_ALONE, kubernetes=True)
    hpa = project / "deploy" / "kubernetes" / "base" / "hpa.yaml"
    edit(hpa, "maxReplicas: 10", "maxReplicas: 40")
    commit_all(project, "our cluster's ceiling")
    update(project, task_queue="redis", apis=["predict", "predict_proba", "evaluate", "jobs"])
    assert "maxReplicas: 40" in hpa.read_text()
    assert (hpa.parent / "worker-scaledobject.yaml").exists()
    assert not unmerged(project)


# ------------------------------------------------------ answers the questionnaire now refuses

# After the recopy that repairs a refused answer, an update to what the project should be.
THEN = [
    pytest.param({}, id="keep-nginx"),
    pytest.param({"web_server": "gunicorn", "process_manager": "none"}, id="then-gunicorn-alone"),
]


def refused_project(template: Path, destination: Path) -> Path:
    """A project of this version holding nginx with process_manager=none, committed.

    The prompt let that pair through before 0.5.0; it is rendered here with the refusal taken
    out of the questionnaire, then its answers file points at the tagged version, as if that
    version's prompt had let it through.
    """
    render_refused(destination, {"process_manager": "none"}, questions=["process_manager"])
    answers_file = destination / ".copier-answers.yml"
    answers = yaml.safe_load(answers_file.read_text())
    assert (answers["web_server"], answers["process_manager"]) == ("nginx", "none")
    answers.update(_src_path=str(template), _commit=TEMPLATE_VERSION)
    answers_file.write_text(yaml.safe_dump(answers, sort_keys=False))
    git(destination, "init", "-q")
    commit_all(destination, "generated by a prompt that let nginx run without supervisor")
    return destination


def stack_test(project: Path, service_bin: Path) -> subprocess.CompletedProcess[str]:
    """The project's own test that its stack can start."""
    command = [str(service_bin / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    return subprocess.run(
        [*command, f"--basetemp={project.with_name('pytest')}", "tests/test_stack_layout.py"],
        cwd=project,
        capture_output=True,
        text=True,
    )


@pytest.mark.parametrize("then", THEN)
def test_a_refused_recorded_answer_is_left_by_a_recopy(template, tmp_path, service_bin, then):
    project = refused_project(template, tmp_path / "project")
    (project / "RUNBOOK.md").write_text("# Our runbook\n")
    with (project / "README.md").open("a") as readme:
        readme.write("\nOur deployment notes.\n")
    commit_all(project, "our own file, our edit of one of the template's")
    assert stack_test(project, service_bin).returncode == 1

    # `copier update` first renders the project's own version with its recorded answers,
    # before any --data applies, and that version's questionnaire refuses them: it stops
    # there, having written nothing.
    with pytest.raises(ValueError, match="Invalid choice for 'process_manager'"):
        update(project, process_manager="supervisor")
    assert git(project, "status", "--porcelain") == ""

    # `copier recopy` renders the newest version over the project, with no such replay.
    run_recopy(
        project,
        data={"process_manager": "supervisor"},
        defaults=True,
        overwrite=True,
        unsafe=True,
        quiet=True,
    )
    assert recorded_answers(project)["process_manager"] == "supervisor"
    # The edit to the template's README is undone, for the user to take back from the diff.
    assert "-Our deployment notes." in git(project, "diff", "README.md")
    assert stack_test(project, service_bin).returncode == 0
    commit_all(project, "recopied onto answers that work")

    # From then on updates work, and delete what new answers leave out (a recopy does not).
    update(project, **then)
    assert not unmerged(project)
    fresh = copy(template, tmp_path / "fresh", **recorded_answers(project))
    assert tree(project) == {**tree(fresh), "RUNBOOK.md": b"# Our runbook\n"}
    assert stack_test(project, service_bin).returncode == 0
