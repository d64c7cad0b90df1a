"""The generated image, built from its own Dockerfile, unchanged, by `make docker-build` on
Podman, and run.

Two answer sets: the defaults (supervisord keeping nginx in front of gunicorn), and gunicorn
alone with the embedded queue, its worker (a second container of the same image) and the
SQLite prediction store; the web container of the second is gunicorn alone, checked as the
first (tests/test_kubernetes.py runs gunicorn alone's image without the queue, in a pod).
Each container is ready within its HEALTHCHECK's start period, reported healthy by the engine,
predicts through its own entry point what the native stack predicts, runs every process as
the unprivileged user, and stops cleanly on SIGTERM within its grace period. The default
image also serves under docker-compose.yml's own hardening, on Podman's tmpfs semantics and
on Docker's; the embedded set runs its Compose file itself, with podman-compose.

FROM python:3.11-slim-bookworm finds a local STAND-IN for the official image (Debian's Python
on a debootstrapped bookworm, tests/containers.py): no registry is reachable here.
"""

from __future__ import annotations

import csv
import json
import re
import shlex
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import render, run_gate
from tests.containers import (
    Container,
    build_flags,
    free_port,
    lock_requirements,
    podman,
    podman_env,
    running_container,
)
from tests.test_live_stack import IRIS_ROWS
from tests.test_stack_configs import instructions

pytestmark = pytest.mark.image

GUNICORN_ALONE = dict(web_server="gunicorn", process_manager="none")
ANSWER_SETS = {
    "default": {},
    "embedded": dict(GUNICORN_ALONE, task_queue="sqlite", prediction_store="sqlite"),
}
PACKAGE = "iris_classifier"
APP_UID = 10001  # the Dockerfile's unprivileged user
JOB_DONE_WITHIN = 60  # seconds for the worker container to run a queued batch prediction
RECORDED_WITHIN = 10  # seconds for the prediction store's background writer to record one


@dataclass
class Image:
    tag: str
    project: Path
    build_seconds: float

    @property
    def compose(self) -> dict[str, Any]:
        return yaml.safe_load((self.project / "docker-compose.yml").read_text())

    @property
    def web_service(self) -> dict[str, Any]:
        (service,) = [s for s in self.compose["services"].values() if "build" in s]
        return service

    @property
    def start_period(self) -> float:
        healthcheck = instructions(self.project / "Dockerfile")["HEALTHCHECK"][-1]
        return duration(re.search(r"--start-period=(\S+)", healthcheck)[1])

    @property
    def grace_period(self) -> float:
        return duration(self.web_service["stop_grace_period"])


def duration(text: str) -> float:
    """A Compose or Dockerfile duration in seconds ("30s", "2m")."""
    value, unit = re.fullmatch(r"(\d+)(s|m)", text).groups()
    return int(value) * (60 if unit == "m" else 1)


@pytest.fixture(scope="session")
def images(python_base, copier_template, service_bin, tmp_path_factory):
    """Build an answer set's image once per test process (Podman's layer cache and pip's
    cache mount make a second process's build of the same set quick)."""
    built: dict[str, Image] = {}

    def build(name: str) -> Image:
        if name not in built:
            project = render(copier_template, tmp_path_factory.mktemp(name), ANSWER_SETS[name])
            lock_requirements(project, service_bin)
            tag = f"localhost/copier-ml-deploy-test/{name}:latest"
            built[name] = Image(tag, project, make_docker_build(project, tag, service_bin))
        return built[name]

    return build


def make_docker_build(project: Path, tag: str, service_bin: Path) -> float:
    """`make docker-build` with Podman and this machine's build flags: seconds it took."""
    flags = " ".join(shlex.quote(flag) for flag in build_flags())
    started = time.monotonic()
    completed = subprocess.run(
        [
            "make",
            "docker-build",
            "CONTAINER_ENGINE=podman",
            f"CONTAINER_BUILD_FLAGS={flags}",
            f"IMAGE={tag}",
            f"VENV={service_bin.parent}",
        ],
        cwd=project,
        env=podman_env(),
        capture_output=True,
        text=True,
        timeout=2400,
    )
    if completed.returncode != 0:
        pytest.fail(f"make docker-build failed:\n{completed.stdout}\n{completed.stderr}")
    return time.monotonic() - started


def unique(name: str) -> str:
    return f"cmd-test-{name}-{uuid.uuid4().hex[:8]}"


def post_json(container: Container, path: str, document: object) -> dict[str, Any]:
    request = urllib.request.Request(
        container.url + path,
        data=json.dumps(document).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def get_json(container: Container, path: str) -> dict[str, Any]:
    with urllib.request.urlopen(container.url + path, timeout=30) as response:
        return json.loads(response.read())


def native_predictions(project: Path, service_bin: Path) -> list[Any]:
    """What the native stack predicts for IRIS_ROWS: the project trained and its batch
    command run from the shared service environment, no container involved."""
    python = str(service_bin / "python")
    environment = {"PYTHONPATH": "src"}
    if not (project / "models").exists():
        run_gate([python, "-m", PACKAGE, "train"], project, environment)
    with (project / "rows.csv").open("w", newline="") as table:
        writer = csv.DictWriter(table, fieldnames=list(IRIS_ROWS[0]))
        writer.writeheader()
        writer.writerows(IRIS_ROWS)
    command = [python, "-m", PACKAGE, "predict", "rows.csv", "-o", "native.csv"]
    run_gate(command, project, environment)
    with (project / "native.csv").open() as table:
        return [row["species"] for row in csv.DictReader(table)]


def wait_healthy(container: Container, within: float) -> float:
    """Seconds until the engine reports the image's HEALTHCHECK healthy."""
    started = time.monotonic()
    while (status := container.health()) != "healthy":
        assert status != "unhealthy", container.logs()
        assert time.monotonic() - started < within, f"still {status}:\n{container.logs()}"
        time.sleep(0.5)
    return time.monotonic() - started


def process_users(container: Container) -> list[tuple[int, str]]:
    """Every process in the container: the UID it runs as, and its command (read by Podman
    from the host's /proc: the slim image has no ps). Rootful Podman maps no user namespace,
    so the host's UID is the container's, which no host account names."""
    listing = podman("top", container.name, "huser", "args").stdout.splitlines()[1:]
    processes = [(int(line.split(None, 1)[0]), line.split(None, 1)[1].strip()) for line in listing]
    assert processes, f"podman top found no process in {container.name}"
    return processes


def assert_serves_and_stops(
    image: Image, container: Container, service_bin: Path, programs: set[str]
) -> None:
    """Ready within the start period, healthy, predicting as the native stack, every process
    unprivileged, then stopped by SIGTERM within the grace period, with a clean exit."""
    container.wait_ready(within=image.start_period)
    wait_healthy(container, within=image.start_period)
    predicted = post_json(container, "/predict", {"rows": IRIS_ROWS})["predictions"]
    assert predicted == native_predictions(image.project, service_bin)
    assert_unprivileged(container, programs)
    assert_stops_cleanly(container, image.grace_period)


def assert_unprivileged(container: Container, programs: set[str]) -> None:
    """Every process runs as the image's user, and each of `programs` runs."""
    processes = process_users(container)
    assert {uid for uid, _ in processes} == {APP_UID}, processes
    missing = [name for name in programs if not any(name in command for _, command in processes)]
    assert not missing, f"{missing} not running: {processes}"


def assert_stops_cleanly(container: Container, grace_period: float) -> None:
    seconds, exit_code = container.stop(timeout=int(grace_period))
    assert exit_code == 0, f"exit {exit_code} after {seconds:.1f} s:\n{container.logs()}"
    assert seconds < grace_period


def test_the_default_image_serves_and_stops_cleanly(images, service_bin):
    image = images("default")
    with running_container(image.tag, unique("default")) as container:
        assert_serves_and_stops(image, container, service_bin, {"supervisord", "nginx", "gunicorn"})


def test_the_embedded_image_queues_to_its_worker_and_records(images, service_bin):
    """The web container and its worker, a second container of the same image, sharing the
    SQLite queue and store through the volumes docker-compose.yml gives them."""
    image = images("embedded")
    name = unique("embedded")
    volumes = [f"--volume={name}-models:/app/models", f"--volume={name}-var:/app/var"]
    worker_stop = image.compose["services"]["worker"]
    try:
        with (
            running_container(image.tag, name, options=volumes) as web,
            running_container(
                image.tag,
                f"{name}-worker",
                options=[*volumes, f"--stop-signal={worker_stop['stop_signal']}"],
                command=["python", "-m", PACKAGE, "worker"],
            ) as worker,
        ):
            web.wait_ready(within=image.start_period)
            submitted = post_json(web, "/jobs", {"rows": IRIS_ROWS})
            job = wait_job(web, submitted["job_id"])
            assert job["predictions"] == native_predictions(image.project, service_bin)
            post_json(web, "/predict", {"rows": IRIS_ROWS[:1]})
            wait_recorded(web)
            assert_unprivileged(worker, {PACKAGE})
            assert_stops_cleanly(worker, duration(worker_stop["stop_grace_period"]))
            assert_serves_and_stops(image, web, service_bin, {"gunicorn"})
    finally:
        podman("volume", "rm", "--force", f"{name}-models", f"{name}-var", check=False)


def wait_recorded(container: Container) -> None:
    """The prediction store's writer, which records in the background, has the prediction."""
    started = time.monotonic()
    while not get_json(container, "/predictions?limit=1")["predictions"]:
        assert time.monotonic() - started < RECORDED_WITHIN, container.logs()
        time.sleep(0.2)


def wait_job(container: Container, job_id: str) -> dict[str, Any]:
    started = time.monotonic()
    while (job := get_json(container, f"/jobs/{job_id}"))["status"] not in ("done", "failed"):
        assert time.monotonic() - started < JOB_DONE_WITHIN, job
        time.sleep(0.5)
    assert job["status"] == "done", job
    return job


def hardening(service: dict[str, Any], name: str, tmpfs_options: str) -> list[str]:
    """The Compose service's own hardening and volumes, as `podman run` flags."""
    flags = [f"--cap-drop={capability}" for capability in service["cap_drop"]]
    flags += [f"--security-opt={option}" for option in service["security_opt"]]
    if service["read_only"]:
        # Podman adds writable tmpfs mounts of its own to a read-only root; Docker does not.
        flags += ["--read-only", "--read-only-tmpfs=false"]
    flags += [f"--tmpfs={path}{tmpfs_options}" for path in service["tmpfs"]]
    for volume in service["volumes"]:
        source, target = volume.split(":", 1)
        flags.append(f"--volume={name}-{source}:{target}")
    return flags


# Podman fills a tmpfs with what the image holds in the folder it covers (tmpcopyup); Docker
# mounts it empty. Under both, runc gives it that folder's mode, owned by root: a `mode=` in
# the Compose file does not reach the mount under Podman 4.3 (seen here), so the image makes
# run/ mode 1777. A container of an image whose run/ is 755 and owned by its user fails both.
TMPFS_SEMANTICS = {"podman": "", "docker": ":notmpcopyup"}


@pytest.mark.parametrize("semantics", TMPFS_SEMANTICS)
def test_the_default_image_serves_under_the_compose_files_hardening(semantics, images, service_bin):
    image = images("default")
    name = unique(f"hardened-{semantics}")
    flags = hardening(image.web_service, name, TMPFS_SEMANTICS[semantics])
    try:
        with running_container(image.tag, name, options=flags) as container:
            assert container.inspect("{{.HostConfig.ReadonlyRootfs}}") == "true"
            assert_serves_and_stops(
                image, container, service_bin, {"supervisord", "nginx", "gunicorn"}
            )
    finally:
        podman("volume", "rm", "--force", f"{name}-models", check=False)


def test_the_embedded_compose_file_runs_with_podman_compose(images, service_bin):
    """docker-compose.yml itself, with podman-compose: only the published host port is
    changed (an override file), so that the test takes a free one."""
    image = images("embedded")
    compose = image.compose
    (web_name,) = [name for name, service in compose["services"].items() if "build" in service]
    podman("tag", image.tag, f"localhost/{image.web_service['image']}:latest")
    container = Container(unique("compose"), free_port())
    _, container_port = image.web_service["ports"][0].rsplit(":", 1)
    override = image.project / "compose.test.yml"
    override.write_text(
        f"services:\n  {web_name}:\n    ports: !override\n"
        f'      - "127.0.0.1:{container.port}:{container_port}"\n'
    )
    command = [
        str(Path(sys.executable).parent / "podman-compose"),
        f"--project-name={container.name}",
        "--file=docker-compose.yml",
        f"--file={override.name}",
    ]

    def compose_run(*arguments: str) -> str:
        completed = subprocess.run(
            [*command, *arguments],
            cwd=image.project,
            env=podman_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert completed.returncode == 0, f"{completed.stdout}\n{completed.stderr}"
        return completed.stdout

    try:
        compose_run("up", "--detach", "--no-build")
        names = podman(
            "ps",
            "--all",
            "--format={{.Names}}",
            f"--filter=label=io.podman.compose.project={container.name}",
        ).stdout.split()
        web = Container(next(n for n in names if web_name in n), container.port)
        worker = Container(next(n for n in names if "worker" in n), container.port)
        web.wait_ready(within=image.start_period)
        submitted = post_json(web, "/jobs", {"rows": IRIS_ROWS})
        job = wait_job(web, submitted["job_id"])
        assert job["predictions"] == native_predictions(image.project, service_bin)
        for running in (web, worker):
            assert running.inspect("{{.HostConfig.ReadonlyRootfs}}") == "true"
            assert {uid for uid, _ in process_users(running)} == {APP_UID}
        compose_run("stop")
        for stopped in (web, worker):
            assert stopped.inspect("{{.State.ExitCode}}") == "0", stopped.logs()
    finally:
        subprocess.run(
            [*command, "down", "--volumes"],
            cwd=image.project,
            env=podman_env(),
            capture_output=True,
            check=False,
        )
