"""The prediction store, live: rendered services recording to a real PostgreSQL, and to SQLite
behind the whole supervisord/nginx/gunicorn stack.

PostgreSQL is Debian's (`apt-get install postgresql`; .ci/run installs it), started by these
tests as the `postgres` user in a temporary folder, on a free loopback port, with a password
they generate (harness/postgres.py). Each service is the rendered project's own `make serve`,
from the shared service environment, stopped by the test that started it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.postgres import Postgres, throwaway_postgres
from tests.conftest import render, require_postgres, run_gate
from tests.test_live_stack import IRIS_ROWS, Stack, wait_until_ready

pytestmark = pytest.mark.live  # rendered services on loopback ports (pytest -m 'not live')

RECORDED_WITHIN = 60  # seconds for a record to reach the database through the writer thread


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with throwaway_postgres(require_postgres()) as server:
        yield server


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
