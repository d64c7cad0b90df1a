"""The questionnaire: defaults render a service; impossible answers are refused with a message."""

from __future__ import annotations

import fcntl
import itertools
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
import tomllib

import pytest
import yaml
from copier._main import Worker
from copier._user_data import Question

from tests.conftest import copy_template

REFUSED = [
    pytest.param(
        {"problem_type": "regression", "apis": ["predict", "predict_proba"]},
        "predict_proba needs a classifier",
        id="predict_proba-with-regression",
    ),
    pytest.param(
        {"serve_model": False, "apis": ["predict"]},
        "need serve_model=true",
        id="apis-without-serving",
    ),
    pytest.param(
        {"serve_model": False, "openapi_docs": True},
        "OpenAPI docs need serve_model=true",
        id="docs-without-serving",
    ),
    pytest.param({"apis": []}, "Choose at least one API", id="serving-without-apis"),
    pytest.param(
        {"estimator": "gradient_boosting", "model_format": "onnx"},
        "HistGradientBoostingClassifier does not convert to ONNX",
        id="onnx-for-boosting-classifier",
    ),
    pytest.param(
        {"problem_type": "regression", "estimator": "gradient_boosting", "model_format": "onnx"},
        "HistGradientBoostingRegressor does not convert to ONNX",
        id="onnx-for-boosting-regressor",
    ),
    pytest.param(
        {"estimator": "random_forest", "model_format": "numpy"},
        "RandomForestClassifier is not a linear model.* model_format=onnx, skops or joblib",
        id="numpy-for-forest",
    ),
    pytest.param(
        {"problem_type": "regression", "estimator": "gradient_boosting", "model_format": "numpy"},
        "HistGradientBoostingRegressor is not a linear model.* model_format=skops or joblib",
        id="numpy-for-boosting-regressor",
    ),
    pytest.param({"project_name": "2 Fast"}, "must start with a letter", id="bad-slug"),
    pytest.param({"project_name": "!!!"}, "at least one letter", id="empty-slug"),
    pytest.param({"description": "  "}, "short description", id="empty-description"),
    pytest.param(
        {"training_data": "csv", "target_column": " "}, "cannot be empty", id="empty-target"
    ),
    pytest.param(
        {"training_data": "csv", "dataset_path": "data/train.xlsx"},
        "must be a .csv file",
        id="not-a-csv",
    ),
    pytest.param(
        {"training_data": "csv", "dataset_path": "../elsewhere/train.csv"},
        "inside the project",
        id="csv-outside-project",
    ),
    pytest.param({"python_version": "3.9"}, "Invalid choice", id="unsupported-python"),
    pytest.param(
        {"web_server": "nginx", "process_manager": "none"},
        "choose process_manager=supervisor, or web_server=gunicorn",
        id="nginx-without-a-process-manager",
    ),
    pytest.param(
        {"serve_model": False, "web_server": "gunicorn"},
        "web_server needs serve_model=true",
        id="web-server-without-serving",
    ),
    pytest.param(
        {"serve_model": False, "process_manager": "supervisor"},
        "process_manager needs serve_model=true",
        id="supervisor-without-serving",
    ),
    pytest.param(
        {"web_server": "gunicorn", "wsgi_server": "granian"},
        "granian runs behind nginx only",
        id="granian-alone",
    ),
    pytest.param(
        {"web_server": "gunicorn", "process_manager": "supervisor", "wsgi_server": "granian"},
        "granian runs behind nginx only",
        id="granian-supervised-without-nginx",
    ),
    pytest.param(
        {"serve_model": False, "wsgi_server": "granian"},
        "wsgi_server needs serve_model=true",
        id="granian-without-serving",
    ),
    pytest.param(
        {"serve_model": False, "gunicorn_worker_class": "gthread"},
        "gunicorn_worker_class needs serve_model=true",
        id="worker-class-without-serving",
    ),
    pytest.param(
        {"task_queue": "none", "apis": ["predict", "jobs"]},
        "the jobs API needs a task queue",
        id="jobs-without-a-queue",
    ),
    pytest.param(
        {"serve_model": False, "task_queue": "sqlite"},
        "task_queue needs serve_model=true",
        id="queue-without-serving",
    ),
    pytest.param({"public_port": 80}, "between 1024 and 65535", id="privileged-port"),
    pytest.param({"public_port": 70000}, "between 1024 and 65535", id="port-out-of-range"),
    pytest.param({"gunicorn_workers": -1}, "one worker per CPU", id="negative-workers"),
    pytest.param(
        {"dockerfile": False, "docker_compose": True},
        "builds the image from the Dockerfile",
        id="compose-without-dockerfile",
    ),
    pytest.param(
        {"serve_model": False, "dockerfile": True},
        "A Dockerfile needs serve_model=true",
        id="dockerfile-without-serving",
    ),
    pytest.param(
        {"serve_model": False, "prediction_store": "sqlite"},
        "prediction_store needs serve_model=true",
        id="prediction-store-without-serving",
    ),
    pytest.param(
        {"serve_model": False, "kubernetes": True},
        "Kubernetes manifests need serve_model=true",
        id="kubernetes-without-serving",
    ),
    pytest.param(
        {
            "web_server": "gunicorn",
            "dockerfile": False,
            "docker_compose": False,
            "kubernetes": True,
        },
        "run the image the Dockerfile builds",
        id="kubernetes-without-dockerfile",
    ),
    pytest.param(
        {"kubernetes": True},
        "choose web_server=gunicorn",
        id="kubernetes-with-nginx",
    ),
    pytest.param(
        {"web_server": "gunicorn", "process_manager": "supervisor", "kubernetes": True},
        "choose process_manager=none",
        id="kubernetes-with-supervisor",
    ),
    pytest.param(
        {"web_server": "gunicorn", "task_queue": "sqlite", "kubernetes": True},
        "choose task_queue=redis",
        id="kubernetes-with-the-embedded-queue",
    ),
    pytest.param(
        {"web_server": "gunicorn", "prediction_store": "sqlite", "kubernetes": True},
        "choose prediction_store=postgresql",
        id="kubernetes-with-the-embedded-store",
    ),
    pytest.param(
        {"serve_model": False, "auth": "api_key"},
        "auth needs serve_model=true",
        id="api-keys-without-serving",
    ),
    pytest.param(
        {"web_server": "gunicorn", "process_manager": "none", "tls": True},
        "TLS is terminated by nginx",
        id="tls-without-nginx",
    ),
    pytest.param(
        {"web_server": "gunicorn", "process_manager": "none", "rate_limit": 10},
        "Rate limits are nginx's",
        id="rate-limit-without-nginx",
    ),
    pytest.param({"rate_limit": -1}, "rate_limit must be 0", id="negative-rate-limit"),
    pytest.param(
        {"rate_limit": 5, "rate_limit_burst": -1},
        "rate_limit_burst must be 0 or more",
        id="negative-burst",
    ),
]


@pytest.mark.parametrize(("answers", "message"), REFUSED)
def test_impossible_answers_are_refused_with_a_message(copier, tmp_path, answers, message):
    with pytest.raises(ValueError, match=message):
        copier.copy(tmp_path / "project", **answers)
    assert not (tmp_path / "project" / "pyproject.toml").exists()


def test_defaults_give_the_served_classifier(copier, tmp_path):
    project = copier.copy(tmp_path / "project")
    answers = yaml.safe_load((project.path / ".copier-answers.yml").read_text())
    assert answers["problem_type"] == "classification"
    assert answers["serve_model"] is True
    assert answers["apis"] == ["predict", "predict_proba", "evaluate"]
    assert answers["openapi_docs"] is True
    assert answers["model_format"] == "numpy"
    # Derived names are computed, not asked, so they are not stored as answers.
    assert "package_name" not in answers
    assert (project.path / "src" / "iris_classifier" / "app.py").exists()


@pytest.mark.parametrize(
    ("answers", "model_format"),
    [
        pytest.param({}, "numpy", id="logistic-regression"),
        pytest.param({"problem_type": "regression"}, "numpy", id="ridge"),
        pytest.param({"estimator": "random_forest"}, "onnx", id="forest"),
        # skl2onnx does not convert these (extensions/estimators.py says why): skops instead.
        pytest.param({"estimator": "gradient_boosting"}, "skops", id="boosting"),
    ],
)
def test_the_default_format_is_the_fastest_the_estimator_has(
    copier, tmp_path, answers, model_format
):
    project = copier.copy(tmp_path / "project", **answers)
    chosen = yaml.safe_load((project.path / ".copier-answers.yml").read_text())["model_format"]
    assert chosen == model_format
    artifact_code = project.path / "src" / "iris_classifier" / "serialization.py"
    extension = {"numpy": "npz"}.get(model_format, model_format)
    assert f'ARTIFACT_NAME = "model.{extension}"' in artifact_code.read_text()


def test_regression_defaults_leave_out_predict_proba(copier, tmp_path):
    project = copier.copy(tmp_path / "project", problem_type="regression")
    answers = yaml.safe_load((project.path / ".copier-answers.yml").read_text())
    assert answers["apis"] == ["predict", "evaluate"]
    assert not (project.path / "src" / "iris_classifier" / "api" / "predict_proba.py").exists()


def test_batch_only_projects_have_no_web_code(copier, tmp_path):
    project = copier.copy(tmp_path / "project", serve_model=False)
    package = project.path / "src" / "iris_classifier"
    assert not (package / "api").exists()
    assert not (package / "app.py").exists()
    assert not (project.path / "tests" / "api").exists()
    assert "flask" not in (project.path / "pyproject.toml").read_text()


def test_batch_only_projects_have_no_stack(copier, tmp_path):
    project = copier.copy(tmp_path / "project", serve_model=False)
    assert sorted(path.name for path in (project.path / "deploy").iterdir()) == ["logging.conf"]
    for name in ["Dockerfile", ".dockerignore", "docker-compose.yml"]:
        assert not (project.path / name).exists()
    assert "gunicorn" not in (project.path / "pyproject.toml").read_text()
    assert "serve:" not in (project.path / "Makefile").read_text()


STACK_FILES = {
    "deploy/gunicorn.conf.py",
    "deploy/nginx.conf",
    "deploy/supervisord.conf",
    "Dockerfile",
    ".dockerignore",
    "docker-compose.yml",
}


@pytest.mark.parametrize(
    ("answers", "files"),
    [
        pytest.param({}, STACK_FILES, id="defaults"),
        pytest.param(
            {"web_server": "gunicorn"},
            {"deploy/gunicorn.conf.py", "Dockerfile", ".dockerignore", "docker-compose.yml"},
            id="gunicorn-alone",
        ),
        pytest.param(
            {"web_server": "gunicorn", "process_manager": "supervisor", "dockerfile": False},
            {"deploy/gunicorn.conf.py", "deploy/supervisord.conf"},
            id="gunicorn-supervised-no-docker",
        ),
        # granian's settings are in its module (src/<package>/granian_server.py).
        pytest.param(
            {"wsgi_server": "granian"}, STACK_FILES - {"deploy/gunicorn.conf.py"}, id="granian"
        ),
    ],
)
def test_the_stack_options_pick_files(copier, tmp_path, answers, files):
    project = copier.copy(tmp_path / "project", **answers).path
    assert {name for name in STACK_FILES if (project / name).exists()} == files


def test_gunicorn_alone_defaults_to_one_process_with_threads(copier, tmp_path):
    project = copier.copy(tmp_path / "project", web_server="gunicorn")
    answers = yaml.safe_load((project.path / ".copier-answers.yml").read_text())
    assert answers["process_manager"] == "none"
    assert answers["gunicorn_worker_class"] == "gthread"


def test_granian_replaces_every_gunicorn_file_and_setting(copier, tmp_path):
    project = copier.copy(tmp_path / "project", wsgi_server="granian").path
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["wsgi_server"] == "granian"
    assert "gunicorn_worker_class" not in answers  # a gunicorn setting, not asked
    package = project / "src" / "iris_classifier"
    assert (package / "granian_server.py").exists()
    gunicorn_files = [path for path in project.rglob("*gunicorn*") if ".git" not in path.parts]
    assert gunicorn_files == []
    dependencies = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    assert not [name for name in dependencies["dependencies"] if name.startswith("gunicorn")]
    assert [name for name in dependencies["dependencies"] if name.startswith("granian")]


UP, DOWN, SPACE, ENTER = b"\x1b[A", b"\x1b[B", b" ", b"\r"

# Copier's prompt for a question with choices (select) or a yes/no question (confirm) runs no
# validator: a question-level refusal would let the prompt pick an impossible answer. So each
# choice the earlier answers rule out has a validator of its own, which the prompt shows as
# disabled. Each case asks one question in a real terminal with the other answers given, and
# types the keys that would pick the refused choice if it were offered.
PROMPTS = [
    # (answers given, question asked, keys, refused value, the reason shown beside it)
    pytest.param(
        {"web_server": "nginx"},
        "process_manager",
        [DOWN, ENTER],  # supervisor (the default), then none
        "none",
        "nginx in front of the Python server needs something to keep both alive",
        id="process-manager-none-behind-nginx",
    ),
    pytest.param(
        {"estimator": "gradient_boosting"},
        "model_format",
        [UP, ENTER],  # skops (the default), then ONNX above it
        "onnx",
        "HistGradientBoostingClassifier does not convert to ONNX",
        id="onnx-for-boosting",
    ),
    pytest.param(
        {"estimator": "random_forest"},
        "model_format",
        [UP, ENTER],  # ONNX (the default), then NumPy above it
        "numpy",
        "RandomForestClassifier is not a linear model",
        id="numpy-for-forest",
    ),
    pytest.param(
        {"problem_type": "regression"},
        "apis",
        [DOWN, SPACE, ENTER],  # predict, then predict_proba below it, ticked
        "predict_proba",
        "predict_proba needs a classifier",
        id="predict-proba-for-regression",
    ),
    pytest.param(
        {"task_queue": "none"},
        "apis",
        [UP, SPACE, ENTER],  # predict, then jobs (up wraps to the last), ticked
        "jobs",
        "the jobs API needs a task queue",
        id="jobs-without-a-queue",
    ),
]


@pytest.mark.parametrize(("answers", "question", "keys", "refused", "reason"), PROMPTS)
def test_the_prompt_cannot_pick_a_refused_choice(
    copier_template, tmp_path, answers, question, keys, refused, reason
):
    project = tmp_path / "project"
    given = [f"--data={name}={value}" for name, value in answers.items()]
    command = [sys.executable, "-m", "copier", "copy", "--trust", "--defaults", *given]
    help_text = yaml.safe_load((copier_template / "copier.yml").read_text())[question]["help"]

    transcript = run_in_terminal(
        [*command, f"--ask={question}", str(copier_template), str(project)],
        prompt=help_text.encode(),
        keys=keys,
    )
    chosen = yaml.safe_load((project / ".copier-answers.yml").read_text())[question]
    assert refused not in (chosen if isinstance(chosen, list) else [chosen]), transcript
    # Offered, but disabled, with the reason (the terminal is wide enough for one line).
    assert reason in transcript, transcript


def test_a_question_refused_by_earlier_answers_is_not_asked(copier_template, tmp_path):
    """Yes/no questions have no per-choice validator: `when` keeps the refused ones unasked."""
    project = tmp_path / "project"
    command = [sys.executable, "-m", "copier", "copy", "--trust", "--defaults"]
    asked = [f"--ask={name}" for name in ("openapi_docs", "dockerfile", "docker_compose")]
    transcript = run_in_terminal(
        [*command, "--data=serve_model=false", *asked, str(copier_template), str(project)],
        prompt=None,
        keys=[],
    )
    assert "Swagger" not in transcript and "Dockerfile" not in transcript, transcript
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert not {"openapi_docs", "dockerfile", "docker_compose"} & answers.keys()


# The earlier answers the validators of select and yes/no questions read, crossed (a validator
# that reads another needs it here). Batch-only projects are asked none of the serving ones;
# the Python server is asked only behind nginx.
RUNTIMES = [
    ("nginx", "supervisor", "gunicorn"),
    ("nginx", "supervisor", "granian"),
    ("gunicorn", "supervisor", "gunicorn"),
    ("gunicorn", "none", "gunicorn"),
]
DECIDING = [
    {"serve_model": False},
    *(
        {
            "serve_model": True,
            "web_server": web_server,
            "process_manager": process_manager,
            "wsgi_server": wsgi_server,
            "task_queue": queue,
            "prediction_store": store,
            "dockerfile": dockerfile,
        }
        for (web_server, process_manager, wsgi_server), queue, store, dockerfile in (
            itertools.product(RUNTIMES, ["none", "sqlite"], ["none", "sqlite"], [True, False])
        )
    ),
    # The security choices: API keys on every runtime, nginx's limits and TLS where it runs.
    *(
        {
            "serve_model": True,
            "web_server": web_server,
            "process_manager": process_manager,
            "wsgi_server": wsgi_server,
            "auth": "api_key",
            **({"rate_limit": 10, "tls": True} if web_server == "nginx" else {}),
        }
        for web_server, process_manager, wsgi_server in RUNTIMES
    ),
]


def test_what_a_prompt_without_a_validator_offers_is_accepted(tmp_path):
    """Every answer a select or yes/no prompt can give passes its question's validator.

    Copier attaches the question's validator to input and checkbox prompts only
    (Question.get_questionary_structure), so for the others the questionnaire itself must
    keep refused answers out of reach: disabled choices, or `when`. This walks the questions
    with Copier's own Question, as its prompt loop does, for every set of deciding answers.
    """
    template = copy_template(tmp_path / "template")
    offered_but_refused, checked = [], 0
    for given in DECIDING:
        worker = Worker(
            src_path=str(template), dst_path=tmp_path / "project", data=given, defaults=True
        )
        with worker:
            try:
                worker._ask()
            except ValueError as refusal:
                pytest.fail(f"{given} should be accepted: {refusal}")
            context = worker._render_context()
            for name, details in worker.template.questions_data.items():
                question = Question(
                    answers=worker.answers,
                    context=context,
                    jinja_env=worker.jinja_env,
                    settings=worker.settings,
                    var_name=name,
                    **details,
                )
                if not question.validator or not question.get_when():
                    continue
                prompt = question.get_questionary_structure()
                if "validate" in prompt:
                    continue
                offered = (
                    [True, False]
                    if prompt["type"] == "confirm"
                    else [choice.value for choice in prompt["choices"] if not choice.disabled]
                )
                for answer in offered:
                    checked += 1
                    try:
                        question.validate_answer(question.cast_answer(answer))
                    except ValueError as refusal:
                        offered_but_refused.append(f"{name}={answer!r} after {given}: {refusal}")
    assert checked, "no prompt without a validator was found: the walk checked nothing"
    assert not offered_but_refused, "\n".join(offered_but_refused)


def run_in_terminal(command: list[str], prompt: bytes | None, keys: list[bytes]) -> str:
    """Run `command` in a pseudo-terminal, type `keys` once `prompt` shows; its output.

    With no prompt, no question may be asked: the command must end with nothing typed.
    """
    controller, terminal = pty.openpty()
    # Wide, so that a choice and the reason it is disabled are drawn on one line.
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 400, 0, 0))
    process = subprocess.Popen(
        command,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env={**os.environ, "TERM": "xterm"},
    )
    os.close(terminal)
    output = bytearray()
    deadline = time.monotonic() + 120
    typed = False
    try:
        while process.poll() is None and time.monotonic() < deadline:
            if select.select([controller], [], [], 0.2)[0]:
                try:
                    output += os.read(controller, 65536)
                except OSError:  # the terminal closed: the process is ending
                    break
            if prompt is not None and not typed and prompt in output:
                time.sleep(0.5)  # let the prompt draw its choices before the keys arrive
                for key in keys:
                    os.write(controller, key)
                    time.sleep(0.2)
                typed = True
        process.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(controller)
    transcript = output.decode(errors="replace")
    assert typed == (prompt is not None), f"the prompt never showed:\n{transcript}"
    assert process.returncode == 0, transcript
    return transcript
