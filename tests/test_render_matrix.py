"""Every supported combination renders, is fully rendered, lints clean, and passes its own tests.

The model formats: linear models default to NumPy (the defaults, binary and multiclass
classifiers, regressors, with and without serving), forests to ONNX, gradient boosting to
skops; ONNX for a linear model, joblib and skops are asked for explicitly. The sample data
sets are all numbers; a training_data=csv case trains on mixed types (numbers, categories,
a boolean, empty cells), so each estimator family x format meets those too.

The combinations follow cookiecutter-django's list-of-cases style: the options that interact
(problem type x estimator x serving x APIs x docs x format x data) are crossed deliberately,
the independent ones (Python version, log format, and the runtime and packaging options, whose
every combination tests/test_stack_configs.py renders) cycle through the cases.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, mypy_environment, run_gate

# Every combination rendered and put through its own lint, types and tests.
# Minutes, no services: `pytest -m 'not slow'` leaves them out.
pytestmark = pytest.mark.slow

CLF, REG = "classification", "regression"

ALL_CLF_APIS = ["predict", "predict_proba", "evaluate"]

COMBINATIONS = {
    "defaults": {},
    "clf-linear-joblib-predict-only-gunicorn-alone": dict(
        model_format="joblib",
        apis=["predict"],
        openapi_docs=False,
        web_server="gunicorn",
        process_manager="none",
        dockerfile=False,
    ),
    "clf-forest-onnx-proba-evaluate-gthread": dict(
        estimator="random_forest",
        model_format="onnx",
        apis=["predict_proba", "evaluate"],
        gunicorn_worker_class="gthread",
        gunicorn_workers=2,
    ),
    "clf-boosting-csv-json-logs-gunicorn-supervised": dict(
        estimator="gradient_boosting",
        training_data="csv",
        log_format="json",
        python_version="3.10",
        web_server="gunicorn",
        process_manager="supervisor",
        public_port=8080,
    ),
    "clf-forest-csv-joblib-no-docs": dict(
        estimator="random_forest",
        training_data="csv",
        model_format="joblib",
        apis=ALL_CLF_APIS,
        openapi_docs=False,
        python_version="3.13",
        docker_compose=False,
    ),
    "reg-linear-onnx-gunicorn-alone-sync": dict(
        problem_type=REG, model_format="onnx", web_server="gunicorn", gunicorn_worker_class="sync"
    ),
    "reg-forest-onnx-csv-predict-evaluate": dict(
        problem_type=REG,
        estimator="random_forest",
        model_format="onnx",
        training_data="csv",
        python_version="3.13",
    ),
    "reg-forest-joblib-evaluate-only": dict(
        problem_type=REG,
        estimator="random_forest",
        model_format="joblib",
        apis=["evaluate"],
        log_format="json",
    ),
    "reg-boosting-csv-no-docs-no-docker": dict(
        problem_type=REG,
        estimator="gradient_boosting",
        training_data="csv",
        openapi_docs=False,
        python_version="3.12",
        dockerfile=False,
    ),
    "reg-linear-skops-csv-predict-docs-gunicorn-supervised": dict(
        problem_type=REG,
        model_format="skops",
        training_data="csv",
        apis=["predict"],
        python_version="3.10",
        web_server="gunicorn",
        process_manager="supervisor",
        gunicorn_worker_class="gthread",
        gunicorn_workers=4,
    ),
    "clf-jobs-embedded-queue": dict(task_queue="sqlite"),
    # The security choices together, and API keys on gunicorn alone without docs.
    "clf-api-keys-tls-rate-limit": dict(auth="api_key", tls=True, rate_limit=10),
    "reg-api-keys-gunicorn-alone-no-docs": dict(
        problem_type=REG,
        auth="api_key",
        openapi_docs=False,
        web_server="gunicorn",
        process_manager="none",
        model_format="onnx",
    ),
    "reg-jobs-redis-queue-gunicorn-alone": dict(
        problem_type=REG,
        task_queue="redis",
        python_version="3.13",
        apis=["predict", "jobs"],
        web_server="gunicorn",
        process_manager="none",
    ),
    "clf-redis-queue-without-jobs-api-no-docs": dict(
        task_queue="redis",
        apis=["predict"],
        openapi_docs=False,
        training_data="csv",
        python_version="3.10",
    ),
    # The prediction store: its own tests run on SQLite for both choices (the PostgreSQL
    # server is tests/test_prediction_store.py's), across Python versions and API sets.
    # Both embedded: the queue's and the store's SQLite files share var/.
    "clf-sqlite-store-and-queue-gthread": dict(
        prediction_store="sqlite", task_queue="sqlite", gunicorn_worker_class="gthread"
    ),
    "clf-sqlite-store-proba-only": dict(
        prediction_store="sqlite", apis=["predict_proba"], python_version="3.13"
    ),
    "reg-postgresql-store-csv-py310": dict(
        problem_type=REG,
        prediction_store="postgresql",
        training_data="csv",
        apis=["predict", "evaluate"],
        python_version="3.10",
    ),
    # Kubernetes manifests (tests/test_kubernetes.py validates them): their project's own gates,
    # with the gunicorn.conf.py test of MIGRATE_ON_START for the store.
    "clf-kubernetes-gunicorn-alone": dict(kubernetes=True, web_server="gunicorn"),
    "reg-kubernetes-redis-queue-postgresql-store": dict(
        problem_type=REG,
        kubernetes=True,
        web_server="gunicorn",
        task_queue="redis",
        prediction_store="postgresql",
        python_version="3.12",
    ),
    # granian behind nginx: its own module and its tests, for each worker count and with the
    # prediction store's migrations and record flushing.
    "clf-granian": dict(wsgi_server="granian"),
    "reg-granian-sqlite-store-json-logs-4-workers": dict(
        problem_type=REG,
        wsgi_server="granian",
        prediction_store="sqlite",
        task_queue="sqlite",
        log_format="json",
        gunicorn_workers=4,
        python_version="3.12",
    ),
    "batch-clf-boosting": dict(serve_model=False, estimator="gradient_boosting", log_format="json"),
    "batch-reg-forest-csv-joblib": dict(
        serve_model=False,
        problem_type=REG,
        estimator="random_forest",
        training_data="csv",
        model_format="joblib",
        python_version="3.13",
    ),
    "batch-reg-linear-numpy": dict(serve_model=False, problem_type=REG, python_version="3.12"),
    # Mixed-type features: every training_data=csv case trains on a CSV of numbers, text
    # categories and a boolean, with empty cells (the project's tests/conftest.py). With the
    # cases above, each estimator family meets each format it converts to on such data.
    "clf-linear-onnx-csv-mixed": dict(
        model_format="onnx", training_data="csv", python_version="3.12"
    ),
    "reg-linear-numpy-csv-mixed-docs": dict(
        problem_type=REG, training_data="csv", apis=["predict", "evaluate"]
    ),
    "clf-forest-skops-csv-mixed-jobs-store": dict(
        estimator="random_forest",
        model_format="skops",
        training_data="csv",
        task_queue="sqlite",
        prediction_store="sqlite",
        python_version="3.13",
    ),
}

# Openings are enough: a closing "}}" is ordinary Python (nested dict literals).
UNRENDERED = re.compile(r"\{\{|\{%|%\}|\{#")
# Generated files carry reasons, not measurements: the figures live in this repository's
# bench/, which a generated project does not have.
MEASURED = re.compile(r"\bbench/|\d\s*(µs|us|ns)\b|\d\s*req/s\b|\d\s*requests?/s\b")


@pytest.fixture(params=COMBINATIONS.values(), ids=COMBINATIONS.keys())
def project(request, copier, tmp_path) -> Path:
    return copier.copy(tmp_path / "project", **request.param).path


def test_combination_passes_its_own_gates(project, service_bin):
    assert_passes_its_own_gates(project, service_bin)


def assert_passes_its_own_gates(
    project: Path, service_bin: Path, tests: Sequence[str] = ()
) -> None:
    """Fully rendered, its dependencies installable, lint and type clean, and its own tests
    pass: all of them, or the files and folders in `tests` that the project has."""
    assert not leftover_jinja(project)
    assert not lines_matching(project, MEASURED), "a measured figure or bench/ in a generated file"
    assert declared_dependencies(project) <= service_requirements(), (
        "tests/service-requirements.txt must list every dependency a rendered project declares"
    )
    run_gate([str(service_bin / "ruff"), "check", "."], project)
    run_gate([str(service_bin / "ruff"), "format", "--check", "."], project)
    # `make typecheck`: the files and settings are the project's own (pyproject.toml).
    run_gate([str(service_bin / "mypy")], project, mypy_environment())
    # A temporary folder of its own: pytest's shared, numbered ones race between the many
    # pytest processes of this suite (a warning on cleanup, which the project makes an error).
    basetemp = project.with_name(f"{project.name}-pytest")
    pytest_command = ["-m", "pytest", "-q", "-p", "no:cacheprovider", f"--basetemp={basetemp}"]
    selected = [test for test in tests if (project / test).exists()]
    if tests and not selected:
        pytest.fail(f"none of {list(tests)} is in {project}")
    run_gate([str(service_bin / "python"), *pytest_command, *selected], project)


def leftover_jinja(project: Path) -> list[str]:
    """Files (and lines) where template syntax survived rendering."""
    return lines_matching(project, UNRENDERED)


def lines_matching(project: Path, pattern: re.Pattern[str]) -> list[str]:
    """Every `file:line: text` of the project where `pattern` is found."""
    found = []
    for path in project.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                if pattern.search(line):
                    found.append(f"{path.relative_to(project)}:{number}: {line.strip()}")
    return found


def declared_dependencies(project: Path) -> set[str]:
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    extras = pyproject["optional-dependencies"].values()
    return set(pyproject["dependencies"]).union(*extras)


def service_requirements() -> set[str]:
    lines = (REPO_ROOT / "tests" / "service-requirements.txt").read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}
