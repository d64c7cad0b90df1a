"""The prediction store, live: rendered services recording to a real PostgreSQL, and to SQLite
behind the whole supervisord/nginx/gunicorn stack.

PostgreSQL is Debian's (`apt-get install postgresql`; .ci/run installs it), started by these
tests as the `postgres` user in a temporary folder, on a free loopback port, with a password
they generate. Each service is the rendered project's own `make serve`, from the shared
service environment, stopped by the test that started it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import render, run_gate
from tests.test_live_stack import IRIS_ROWS, Stack, free_port, wait_until_ready

pytestmark = pytest.mark.live  # rendered services on loopback ports (pytest -m 'not live')

POSTGRES_READY_WITHIN = 60  # seconds, from starting the server to it accepting connections
RECORDED_WITHIN = 60  # seconds for a record to reach the database through the writer thread
USER = "store_test"


def postgres_bin() -> Path:
    """Debian's PostgreSQL programs: skipped without them, or under CI failed."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if not found:
        reason = "PostgreSQL is not installed: apt-get install postgresql (.ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return found[-1].parent


@dataclass
class Postgres:
    """A PostgreSQL server of the tests' own, in `root`, listening on 127.0.0.1:`port`."""

    bin: Path
    root: Path
    port: int
    password: str
    process: subprocess.Popen | None = None

    def as_postgres(self, command: list[str]) -> list[str]:
        # PostgreSQL refuses to run as root: as root, run it as the `postgres` user. setpriv
        # execs the program (runuser would stay its parent, and not pass on every signal).
        if os.geteuid() != 0:
            return command
        return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", *command]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        log = (self.root / "postgres.log").open("a")
        self.process = subprocess.Popen(
            self.as_postgres(
                [
                    str(self.bin / "postgres"),
                    "-D",
                    str(self.root / "data"),
                    "-p",
                    str(self.port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"unix_socket_directories={self.root}",
                ]
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + POSTGRES_READY_WITHIN
        while self.psql("SELECT 1", check=False).returncode != 0:
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"PostgreSQL did not start:\n{self.log()}")
            time.sleep(0.2)

    def stop(self) -> None:
        """A fast shutdown (SIGINT): connections are cut, as in an outage."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(POSTGRES_READY_WITHIN)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def psql(self, sql: str, database: str = "postgres", check: bool = True):
        completed = subprocess.run(
            [
                self.bin / "psql",
                "--host=127.0.0.1",
                f"--port={self.port}",
                f"--username={USER}",
                f"--dbname={database}",
                "--tuples-only",
                "--no-align",
                f"--command={sql}",
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "PGPASSWORD": self.password, "PGCONNECT_TIMEOUT": "3"},
        )
        if check and completed.returncode != 0:
            pytest.fail(f"psql {sql!r}: {completed.stderr}")
        return completed

    def log(self) -> str:
        return (self.root / "postgres.log").read_text(errors="replace")


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    bin_dir = postgres_bin()
    # Not under pytest's temporary folder, which only root may enter.
    root = Path(tempfile.mkdtemp(prefix="store-postgres-"))
    server = Postgres(bin_dir, root, free_port(), secrets.token_hex(16))
    try:
        (root / "password").write_text(server.password)
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
            shutil.chown(root / "password", "postgres")
        subprocess.run(
            server.as_postgres(
                [
                    str(bin_dir / "initdb"),
                    f"--pgdata={root / 'data'}",
                    f"--username={USER}",
                    f"--pwfile={root / 'password'}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                ]
            ),
            check=True,
            capture_output=True,
        )
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def project(copier_template, tmp_path_factory, service_bin) -> Path:
    """The PostgreSQL combination, trained; gunicorn alone, so the test talks to it directly."""
    project = render(
        copier_template,
        tmp_path_factory.mktemp("store") / "project",
        dict(prediction_store="postgresql", web_server="gunicorn", process_manager="none"),
    )
    run_gate(["make", "train", f"VENV={service_bin.parent}"], project, {"PYTHONPATH": "src"})
    return project


ServiceFactory = Callable[..., Stack]


@pytest.fixture
def serve(service_bin) -> Iterator[ServiceFactory]:
    """Starts `make serve` in a project with extra environment; stops it after the test."""
    started: list[Stack] = []

    def start(project: Path, wait: bool = True, **environment: str) -> Stack:
        stack = Stack.serve(
            project,
            service_bin,
            {
                **os.environ,
                "PYTHONPATH": "src",
                "WEB_CONCURRENCY": "2",
                # Retry a lost database every half second, not every 10: tests stay short.
                "FLASK_PREDICTION_STORE_MAX_RETRY_INTERVAL": "0.5",
                **environment,
            },
        )
        started.append(stack)
        if wait:
            wait_until_ready(stack)
        return stack

    yield start
    for stack in started:
        stack.stop()


def predict(stack: Stack, request_id: str) -> dict:
    response = stack.request(
        "POST",
        "/predict",
        json.dumps({"row": IRIS_ROWS[0]}).encode(),
        {"Content-Type": "application/json", "X-Request-ID": request_id},
    )
    assert response.status == 200, response
    assert response.headers["x-request-id"] == request_id
    return response.json()


def wait_for_records(stack: Stack, request_ids: set[str]) -> list[dict]:
    """GET /predictions until it lists every one of `request_ids` (written in the background)."""
    deadline = time.monotonic() + RECORDED_WITHIN
    while True:
        response = stack.request("GET", "/predictions?limit=1000")
        if response.status == 200:
            records = response.json()["predictions"]
            if request_ids <= {record["request_id"] for record in records}:
                return records
        if time.monotonic() > deadline:
            pytest.fail(
                f"{sorted(request_ids)} not all in GET /predictions within {RECORDED_WITHIN} s "
                f"(last answer {response.status}):\n{stack.log.read_text()}"
            )
        time.sleep(0.2)


def wait_for_log(stack: Stack, text: str) -> None:
    deadline = time.monotonic() + RECORDED_WITHIN
    while text not in stack.log.read_text():
        if time.monotonic() > deadline:
            pytest.fail(f"{text!r} not logged within {RECORDED_WITHIN} s:\n{stack.log.read_text()}")
        time.sleep(0.1)


def fresh_database(postgres: Postgres) -> str:
    name = f"store_{secrets.token_hex(4)}"
    postgres.psql(f"CREATE DATABASE {name}")
    return name


def test_predictions_are_stored_and_survive_an_outage(postgres, project, serve):
    database = fresh_database(postgres)
    stack = serve(project, DATABASE_URL=postgres.url(database))
    # gunicorn's on_starting hook migrated the database before the workers started.
    assert postgres.psql("SELECT version_num FROM alembic_version", database).stdout.strip()

    answers = {f"before-{n}": predict(stack, f"before-{n}") for n in range(3)}
    records = wait_for_records(stack, set(answers))
    model = stack.request("GET", "/model").json()
    for record in records:
        assert record["endpoint"] == "/predict"
        assert record["outputs"] == [answers[record["request_id"]]["prediction"]]
        assert record["inputs"] == [list(IRIS_ROWS[0].values())]
        assert record["model_sha256"] == model["artifact"]["sha256"]

    postgres.stop()
    try:
        # Reads answer 503 at once; predictions are still served, and buffered.
        response = stack.request("GET", "/predictions")
        assert response.status == 503
        assert "unavailable" in response.json()["error"]["message"]
        during = {f"during-{n}" for n in range(4)}
        for request_id in during:
            predict(stack, request_id)
        assert stack.request("GET", "/readyz").status == 200
        # Not back before a writer thread has found the database gone.
        wait_for_log(stack, "buffering up to")
    finally:
        postgres.start()
    # Back by itself: the buffered records are written, reads answer again.
    wait_for_records(stack, during)
    log = stack.log.read_text()
    # The outage is logged once per worker that had records to write, not once per record.
    assert log.count("buffering up to") <= 2, log
    assert "writing again" in log


def test_a_service_started_while_the_database_is_down_catches_up(postgres, project, serve):
    database = fresh_database(postgres)
    postgres.stop()
    try:
        stack = serve(project, DATABASE_URL=postgres.url(database))
        predict(stack, "early")
        assert stack.request("GET", "/predictions").status == 503
    finally:
        postgres.start()
    # The workers migrate the fresh database themselves, then write what they buffered.
    wait_for_records(stack, {"early"})
    assert "prediction store not migrated" in stack.log.read_text()


def test_a_stopping_worker_writes_what_it_buffers(postgres, project, serve):
    database = fresh_database(postgres)
    # The writer thread would wait an hour: only the worker_exit hook can write the record.
    stack = serve(
        project, DATABASE_URL=postgres.url(database), FLASK_PREDICTION_STORE_FLUSH_INTERVAL="3600"
    )
    predict(stack, "at-shutdown")
    assert stack.stop() == []
    count = postgres.psql("SELECT count(*) FROM predictions", database).stdout.strip()
    assert count == "1", stack.log.read_text()


def test_the_migrations_match_the_models_on_postgresql(postgres, project, service_bin):
    """`make migrate`, then the `alembic` command line (pyproject.toml) finds nothing to add."""
    environment = {"PYTHONPATH": "src", "DATABASE_URL": postgres.url(fresh_database(postgres))}
    run_gate(["make", "migrate", f"VENV={service_bin.parent}"], project, environment)
    output = run_gate([str(service_bin / "alembic"), "check"], project, environment)
    assert "No new upgrade operations detected" in output


def test_no_password_in_the_answers_or_the_image(project):
    answers = (project / ".copier-answers.yml").read_text()
    assert "password" not in answers.lower()
    compose = (project / "docker-compose.yml").read_text()
    assert "${POSTGRES_PASSWORD:?" in compose
    # .env holds it beside docker-compose.yml: ignored by git, and out of the build context.
    assert ".env" in (project / ".gitignore").read_text().split()
    dockerignore = (project / ".dockerignore").read_text().splitlines()
    assert "*" in dockerignore
    assert "!.env" not in dockerignore


def test_sqlite_store_through_the_whole_stack(
    copier_template, tmp_path_factory, serve, service_bin
):
    """The defaults' stack (supervisord, nginx, gunicorn) with the SQLite store, through nginx."""
    project = render(
        copier_template,
        tmp_path_factory.mktemp("store") / "project",
        {"prediction_store": "sqlite"},
    )
    run_gate(["make", "train", f"VENV={service_bin.parent}"], project, {"PYTHONPATH": "src"})
    stack = serve(project)
    assert stack.with_nginx
    ids = {f"through-nginx-{n}" for n in range(3)}
    for request_id in ids:
        predict(stack, request_id)
    wait_for_records(stack, ids)
    assert stack.stop() == []
    with contextlib.closing(sqlite3.connect(project / "var" / "predictions.sqlite3")) as db:
        stored = {row[0] for row in db.execute("SELECT request_id FROM predictions")}
    assert ids <= stored
