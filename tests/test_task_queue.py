"""The task queue of rendered projects, with real worker processes and a real Redis.

- embedded (SQLite): jobs submitted through the app (Flask's test client, in a process of its
  own, no server), a worker stopped gracefully, stopped at once and killed mid-job while jobs
  wait: every accepted job ends done.
- Redis: jobs round-trip through a redis-server started on a loopback port; with Redis stopped
  the jobs endpoints answer 503 and /predict goes on; Redis back, jobs work again, in the same
  app process and the same worker, which SIGHUP then restarts in place.
- the live stack: supervisord runs the worker beside nginx and gunicorn; a job submitted
  through nginx completes, one made to fail fails, and /metrics counts exactly those from
  every gunicorn worker and across a worker restart; stopping the stack leaves nothing behind.

Every wait is bounded; every process started here is stopped here.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import select
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import render, run_gate, system_tool
from tests.test_live_stack import (
    IRIS_CLASSES,
    IRIS_ROWS,
    Stack,
    free_port,
    wait_until_ready,
)
from tests.test_stack_configs import check_compose

pytestmark = pytest.mark.live  # rendered services on loopback ports (pytest -m 'not live')

PACKAGE = "iris_classifier"
JOB_WITHIN = 120  # seconds for queued jobs to be done once a worker runs
STOP_WITHIN = 60  # seconds for a worker (or redis-server) to exit once signalled
ANSWER_WITHIN = 60  # seconds for the app process to answer one request
LEASE = 2  # JOB_LEASE for the workers here, in seconds
# A row of iris features the linear model's arithmetic overflows on: no finite output.
HUGE_ROW = [1.7e308, -1.7e308, 1.7e308, -1.7e308]

# The app, in a process of its own, as the project's environment runs it: one JSON request
# per line in, one JSON answer per line out. The same app object serves every request, so
# it shows what a long-running web process does across a worker restart or a Redis outage.
APP_DRIVER = """
import json, sys
from {package}.app import create_app

client = create_app().test_client()
for line in sys.stdin:
    method, path, body = json.loads(line)
    response = client.open(path, method=method, json=body)
    answer = {{"status": response.status_code, "json": response.get_json(silent=True)}}
    print(json.dumps(answer), flush=True)
"""


@dataclass
class App:
    process: subprocess.Popen

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        self.process.stdin.write(json.dumps([method, path, body]) + "\n")
        self.process.stdin.flush()
        ready, _, _ = select.select([self.process.stdout], [], [], ANSWER_WITHIN)
        if not ready:
            pytest.fail(f"the app did not answer {method} {path} within {ANSWER_WITHIN} s")
        line = self.process.stdout.readline()
        if not line:
            pytest.fail(f"the app exited ({self.process.poll()}) on {method} {path}")
        answer = json.loads(line)
        return answer["status"], answer["json"]

    def submit(self, path: str, body: Any = None) -> str:
        status, document = self.request("POST", path, body)
        assert status == 202, document
        return document["job_id"]

    def job(self, job_id: str) -> dict[str, Any]:
        status, document = self.request("GET", f"/jobs/{job_id}")
        assert status == 200, document
        return document

    def wait_for(self, job_ids: list[str], *statuses: str) -> dict[str, dict[str, Any]]:
        """Poll until every job is in one of `statuses`; fail after JOB_WITHIN seconds."""
        deadline = time.monotonic() + JOB_WITHIN
        while True:
            jobs = {job_id: self.job(job_id) for job_id in job_ids}
            if all(job["status"] in statuses for job in jobs.values()):
                return jobs
            if time.monotonic() > deadline:
                pytest.fail(f"not {statuses} within {JOB_WITHIN} s: {jobs}")
            time.sleep(0.1)


@contextlib.contextmanager
def running_app(project: Path, service_bin: Path, env: dict[str, str]) -> Iterator[App]:
    driver = project.parent / "app_driver.py"
    driver.write_text(APP_DRIVER.format(package=PACKAGE))
    log = (project.parent / "app.log").open("a")
    process = subprocess.Popen(
        [str(service_bin / "python"), str(driver)],
        cwd=project,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        yield App(process)
    finally:
        process.stdin.close()
        try:
            process.wait(STOP_WITHIN)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()
        log.close()


@dataclass
class Worker:
    process: subprocess.Popen
    log: Path

    def stop(self, signum: int) -> int:
        """Send `signum`; the exit code (killed and failed if it does not exit in time)."""
        self.process.send_signal(signum)
        try:
            return self.process.wait(STOP_WITHIN)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"the worker ignored {signum!r} for {STOP_WITHIN} s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text()


@contextlib.contextmanager
def running_worker(project: Path, service_bin: Path, env: dict[str, str]) -> Iterator[Worker]:
    log = project.parent / f"worker-{time.monotonic_ns()}.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [str(service_bin / "python"), "-m", PACKAGE, "worker"],
            cwd=project,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = Worker(process, log)
    try:
        yield worker
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def project_env(**extra: str) -> dict[str, str]:
    # The project is not installed in the shared environment: it runs from src/.
    return {**os.environ, "PYTHONPATH": "src", "JOB_LEASE": str(LEASE), **extra}


# --------------------------------------------------------------------------- embedded


def write_training_csv(path: Path, rows: int) -> list[list[float]]:
    """A two-class problem big enough that retraining takes a while: a job to stop mid-way."""
    generator = random.Random(0)
    table = []
    for _ in range(rows):
        features = [round(generator.gauss(0, 1), 4) for _ in range(4)]
        noise = generator.gauss(0, 0.5)
        table.append([*features, int(features[0] + 0.5 * features[1] - features[2] + noise > 0)])
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["x0,x1,x2,x3,target", *(",".join(map(str, row)) for row in table)]
    path.write_text("\n".join(lines) + "\n")
    return [row[:4] for row in table]


def test_embedded_queue_loses_no_job_across_worker_restarts(copier_template, tmp_path, service_bin):
    project = render(
        copier_template,
        tmp_path / "project",
        dict(
            task_queue="sqlite",
            estimator="gradient_boosting",
            training_data="csv",
            web_server="gunicorn",
            process_manager="none",
        ),
    )
    # Rows enough for a retraining (a fit, cross-validation and the report) to run for
    # seconds, so that each signal below lands mid-retraining; few enough that one ends well
    # within STOP_WITHIN on a loaded machine.
    rows = write_training_csv(project / "data" / "train.csv", 5_000)
    env = project_env()
    run_gate(["make", "train", f"VENV={service_bin.parent}"], project, env)

    with running_app(project, service_bin, env) as app:
        predictions: list[str] = []

        def submit_batch(size: int) -> None:
            for start in range(0, size * 5, 5):
                predictions.append(app.submit("/jobs", {"rows": rows[start : start + 5]}))

        # 1. SIGINT while a retraining runs and predictions wait: the retraining finishes,
        #    the predictions stay queued.
        first_training = app.submit("/jobs/train")
        submit_batch(4)
        with running_worker(project, service_bin, env) as worker:
            app.wait_for([first_training], "running")
            assert worker.stop(signal.SIGINT) == 0, worker.output()
        assert app.job(first_training)["status"] == "done", worker.output()
        assert app.wait_for(predictions, "queued")

        # 2. SIGTERM mid-retraining: huey stops at once; the retraining goes back in the queue.
        second_training = app.submit("/jobs/train")
        submit_batch(4)
        with running_worker(project, service_bin, env) as worker:
            app.wait_for([second_training], "running")
            assert worker.stop(signal.SIGTERM) == 0, worker.output()
        interrupted = app.job(second_training)
        assert interrupted["status"] == "queued", worker.output()
        assert interrupted["attempts"] == 1

        # 3. SIGKILL mid-retraining: nothing can requeue it but the lease running out.
        with running_worker(project, service_bin, env) as worker:
            app.wait_for([second_training], "running")
            worker.process.kill()
            worker.process.wait()
        assert app.job(second_training)["status"] == "running"
        time.sleep(LEASE + 0.5)  # let the lease of the dead worker run out

        # 4. A new worker finds the job whose worker died, and runs everything left.
        with running_worker(project, service_bin, env) as worker:
            jobs = app.wait_for([first_training, second_training, *predictions], "done")
            assert worker.stop(signal.SIGINT) == 0, worker.output()

    assert jobs[second_training]["attempts"] == 3
    assert set(jobs[second_training]["metrics"]) == set(jobs[first_training]["metrics"])
    for job_id in predictions:
        assert jobs[job_id]["attempts"] == 1
        assert len(jobs[job_id]["predictions"]) == 5
        assert set(jobs[job_id]["predictions"]) <= {0, 1}
    assert (project / "var" / "queue.sqlite3").exists()


# ------------------------------------------------------------------------------ Redis


@dataclass
class RedisServer:
    executable: str
    port: int
    folder: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = (self.folder / "redis.log").open("a")
        # Loopback only; no persistence: an outage in this test loses what Redis held, which
        # the test does not rely on.
        command = [self.executable, "--port", str(self.port), "--bind", "127.0.0.1"]
        self.process = subprocess.Popen(
            [*command, "--save", "", "--appendonly", "no", "--dir", str(self.folder)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + STOP_WITHIN
        while not self.answers_ping():
            if self.process.poll() is not None or time.monotonic() > deadline:
                log_text = (self.folder / "redis.log").read_text()
                pytest.fail(f"redis-server did not start:\n{log_text}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_WITHIN)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(16).startswith(b"+PONG")
        except OSError:
            return False


@pytest.fixture
def redis_server(tmp_path) -> Iterator[RedisServer]:
    server = RedisServer(system_tool("redis-server"), free_port(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_redis_queue_round_trips_and_survives_an_outage(
    copier_template, tmp_path, service_bin, redis_server
):
    project = render(
        copier_template,
        tmp_path / "project",
        dict(task_queue="redis", web_server="gunicorn", process_manager="none"),
    )
    check_compose(project)  # the worker and redis services, gunicorn alone
    env = project_env(REDIS_URL=redis_server.url)
    run_gate(["make", "train", f"VENV={service_bin.parent}"], project, env)

    with (
        running_app(project, service_bin, env) as app,
        running_worker(project, service_bin, env) as worker,
    ):
        jobs = [app.submit("/jobs", {"rows": IRIS_ROWS}) for _ in range(3)]
        training = app.submit("/jobs/train")
        done = app.wait_for([*jobs, training], "done")
        assert all(done[job]["predictions"] == IRIS_CLASSES for job in jobs)
        assert done[training]["metrics"]

        redis_server.stop()
        for method, path, body in [
            ("POST", "/jobs", {"rows": IRIS_ROWS}),
            ("POST", "/jobs/train", None),
            ("GET", f"/jobs/{jobs[0]}", None),
        ]:
            status, document = app.request(method, path, body)
            assert status == 503, document
            assert document["error"]["message"] == (
                "the job queue is unavailable (Redis cannot be reached): try again shortly"
            )
        # The rest of the service goes on.
        status, document = app.request("POST", "/predict", {"rows": IRIS_ROWS})
        assert (status, document["predictions"]) == (200, IRIS_CLASSES)
        assert app.request("GET", "/readyz")[0] == 200

        # Redis back (empty: it kept nothing): the same app and worker serve jobs again.
        redis_server.start()
        job = app.submit("/jobs", {"rows": IRIS_ROWS})
        assert app.wait_for([job], "done")[job]["predictions"] == IRIS_CLASSES

        # SIGHUP: huey's graceful restart, in place (the same pid, the code read again).
        worker.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + STOP_WITHIN
        while worker.output().count("Huey consumer started") < 2:
            if worker.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the worker did not restart on SIGHUP:\n{worker.output()}")
            time.sleep(0.1)
        job = app.submit("/jobs", {"rows": IRIS_ROWS})
        assert app.wait_for([job], "done")[job]["predictions"] == IRIS_CLASSES
        assert worker.stop(signal.SIGINT) == 0, worker.output()
    assert "Error reading from queue" in worker.output()  # it did see the outage


# ------------------------------------------------------------------------- live stack


def test_the_stack_runs_the_worker_and_a_job_through_nginx(copier_template, tmp_path, service_bin):
    system_tool("envsubst")
    system_tool("nginx")
    project = render(copier_template, tmp_path / "project", dict(task_queue="sqlite"))
    # Two web workers whatever the machine's CPUs: /metrics must agree across them.
    env = project_env(WEB_CONCURRENCY="2")
    venv = f"VENV={service_bin.parent}"
    run_gate(["make", "train", venv], project, env)
    # Marked, so that the retrained model the service loads later is told apart from this one.
    metadata_path = project / "models" / "metadata.json"
    metadata = json.loads(metadata_path.read_text())
    metadata_path.write_text(json.dumps({**metadata, "trained_at": "2000-01-01T00:00:00Z"}))
    stack = Stack.serve(project, service_bin, env)
    try:
        wait_until_ready(stack)
        workers = [p for p in stack.processes().values() if f"-m {PACKAGE} worker" in p.command]
        assert len(workers) == 1, stack.processes()

        submitted = stack.post_json("/jobs", {"rows": IRIS_ROWS})
        assert submitted.status == 202
        location = submitted.headers["location"]
        assert location == submitted.json()["status_url"]
        assert wait_until_done(stack, location)["predictions"] == IRIS_CLASSES

        # A retraining in the worker; the web workers then serve the new model, unrestarted.
        assert stack.request("GET", "/model").json()["trained_at"] == "2000-01-01T00:00:00Z"
        queued = stack.request("POST", "/jobs/train")
        assert queued.status == 202, queued
        retrained = wait_until_done(stack, queued.headers["location"])
        deadline = time.monotonic() + JOB_WITHIN
        # Each web worker loads it in its own time: asked until one answers with it.
        while (answer := stack.post_json("/predict", {"rows": IRIS_ROWS}).json()) != {
            "predictions": IRIS_CLASSES,
            "model_version": retrained["model_version"],
        }:
            if time.monotonic() > deadline:
                pytest.fail(f"no prediction by the retrained model within {JOB_WITHIN} s: {answer}")
            time.sleep(0.1)

        # A job that fails on purpose: a row the model has no finite output for, which
        # /predict refuses (422) and a prediction job records as failed.
        assert stack.post_json("/predict", {"rows": [HUGE_ROW]}).status == 422
        failing = stack.post_json("/jobs", {"rows": [HUGE_ROW]})
        failed = wait_until_done(stack, failing.headers["location"], "failed")
        assert failed["error"].startswith("rows[0]: the model's output is not a finite number")

        # The worker's outcomes, at the web service's /metrics: the same exact counts from
        # whichever gunicorn worker each scrape reaches, and after the queue's worker and
        # gunicorn (whose start empties the metrics folder) are restarted.
        expected = {
            ("predict", "done"): 1,
            ("predict", "failed"): 1,
            ("train", "done"): 1,
            ("train", "failed"): 0,
        }
        _, gunicorn_workers = stack.gunicorn_workers()
        assert len(gunicorn_workers) == 2
        for _ in range(4 * len(gunicorn_workers)):
            assert finished_jobs(stack) == expected
        supervisorctl = [str(service_bin / "supervisorctl"), "-c", "deploy/supervisord.conf"]
        run_gate([*supervisorctl, "restart", "worker", "gunicorn"], project, env)
        wait_until_ready(stack)
        assert finished_jobs(stack) == expected
    finally:
        left = stack.stop()
    assert left == [], f"left behind; make serve's log:\n{stack.log.read_text()}"
    assert stack.make.returncode == 0, stack.log.read_text()


def wait_until_done(stack: Stack, location: str, status: str = "done") -> dict[str, Any]:
    deadline = time.monotonic() + JOB_WITHIN
    while (job := stack.request("GET", location).json())["status"] != status:
        assert job["status"] in {"queued", "running"}, job
        if time.monotonic() > deadline:
            pytest.fail(f"job not done within {JOB_WITHIN} s: {job}\n{stack.log.read_text()}")
        time.sleep(0.1)
    return job


def finished_jobs(stack: Stack) -> dict[tuple[str, str], float]:
    """jobs_finished_total as a scrape through nginx reads it, by (kind, outcome)."""
    response = stack.request("GET", "/metrics")
    assert response.status == 200, response
    pattern = r'^jobs_finished_total\{kind="(\w+)",outcome="(\w+)"\} (\S+)$'
    found = re.findall(pattern, response.body.decode(), re.M)
    return {(kind, outcome): float(value) for kind, outcome, value in found}
