"""Faults on the live stack under load: what the clients see of each, with a figure.

The default stack (supervisord keeping nginx in front of gunicorn, the rendered project's own
`make serve`), then the same with granian in gunicorn's place, answers a steady stream of
predictions, about 120 a second from a few client threads, while each fault is injected:
workers, masters and nginx killed, reloads, a damaged model file, a stop, and malformed
requests. Each test records what the clients saw (requests, failures, the slowest answer,
seconds until predictions were back) in build/faults/, and the session's summary prints them
as one table (the README's reliability section quotes it).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FAULT_FIGURES, render, run_gate, system_tool
from tests.test_live_stack import (
    IRIS_ROWS,
    MALFORMED_REQUESTS,
    Load,
    Malformed,
    Stack,
    alive,
    assert_json_refusal,
    assert_reload_failures,
    send_raw,
    wait_until_ready,
)

pytestmark = pytest.mark.live  # rendered services on loopback ports (pytest -m 'not live')

BACK_WITHIN = 5.0  # seconds from a master's SIGKILL to predictions answered again
HUP_SLOWEST = 0.5  # seconds: no request may take longer while gunicorn reloads
RECOVER_WITHIN = 10.0  # seconds from a good model file back to predictions answered


# The Python server behind nginx: each runs the whole battery, on a project of its own.
SERVERS = ["gunicorn", "granian"]


def record(figures: dict[str, object], server: str = "gunicorn") -> None:
    """Keep a test's figures for the session's summary table (tests/conftest.py)."""
    FAULT_FIGURES.mkdir(parents=True, exist_ok=True)
    # gunicorn's rows keep the names the README quotes; granian's say so, once.
    if server != "gunicorn" and server not in str(figures["fault"]).split():
        figures = {**figures, "fault": f"{figures['fault']} ({server})"}
    name = (
        str(figures["fault"]).replace(" ", "-").replace("/", "-").replace("(", "").replace(")", "")
    )
    (FAULT_FIGURES / f"{name}.json").write_text(json.dumps(figures))


def start_stack(project: Path, service_bin: Path) -> Stack:
    running = Stack.serve(project, service_bin, {**os.environ, "PYTHONPATH": "src"})
    wait_until_ready(running)
    return running


def trained_project(
    template: Path, destination: Path, service_bin: Path, server: str = "gunicorn"
) -> Path:
    """The default project, on `server`, rendered in `destination`, trained, ready for
    `make serve`."""
    system_tool("envsubst")
    system_tool("nginx")
    project = render(template, destination, {"wsgi_server": server})
    environment = {**os.environ, "PYTHONPATH": "src"}
    run_gate(["make", "train", f"VENV={service_bin.parent}"], project, environment)
    return project


@pytest.fixture(scope="module", params=SERVERS)
def server(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def project(copier_template, tmp_path_factory, service_bin, server) -> Path:
    return trained_project(
        copier_template, tmp_path_factory.mktemp("faults") / "project", service_bin, server
    )


@pytest.fixture(scope="module")
def stack(project, service_bin) -> Iterator[Stack]:
    """One stack for the faults it survives; each test leaves it serving as it found it."""
    running = start_stack(project, service_bin)
    try:
        yield running
    finally:
        left = running.stop()
        assert left == [], f"left behind: {left}"


def wait_until_gone(pids: set[int], within: float) -> float:
    """Seconds until none of `pids` runs; fails naming those still running after `within`."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        if not any(alive(pid) for pid in pids):
            return time.monotonic() - started
        time.sleep(0.05)
    pytest.fail(f"still running {within} s later: {sorted(p for p in pids if alive(p))}")


def settled_workers(stack: Stack, quiet: float = 4.0, within: float = 60.0) -> tuple[int, set[int]]:
    """The server's master and workers once no worker has changed for `quiet` seconds.

    granian replaces its workers one by one on SIGHUP, HANDOVER (3 s) apart, and runs a reload
    asked for during another one after it: after a burst of HUPs, workers keep being replaced
    for a while. A worker counted mid-way may be replaced by a reload already asked for, after
    the one a test is about to ask for took the others.
    """
    deadline = time.monotonic() + within
    seen, since = stack.gunicorn_workers(), time.monotonic()
    while time.monotonic() - since < quiet:
        if time.monotonic() > deadline:
            pytest.fail(f"workers still changing {within} s later: {seen}")
        time.sleep(0.1)
        now = stack.gunicorn_workers()
        if now != seen:
            seen, since = now, time.monotonic()
    return seen


def nginx_processes(stack: Stack) -> tuple[int, set[int]]:
    """nginx's master and its workers, in the stack's session."""
    processes = stack.processes().values()
    (master,) = [process.pid for process in processes if process.command.startswith("nginx: m")]
    workers = {process.pid for process in processes if process.command.startswith("nginx: w")}
    return master, workers


def test_a_killed_worker_costs_at_most_its_request(stack):
    _, workers = stack.gunicorn_workers()
    with Load(stack) as load:
        for worker in sorted(workers):
            os.kill(worker, signal.SIGKILL)
            time.sleep(2.0)
        back = load.wait_until_back(time.monotonic(), BACK_WITHIN)
    figures = load.figures("worker SIGKILL", kills=len(workers), **{"back (s)": round(back, 2)})
    record(figures, stack.python_server)
    assert len(load.failed()) <= len(workers), load.failed()


def test_a_killed_server_master_is_back_within_5_s_without_orphans(stack):
    master, workers = stack.gunicorn_workers()
    with Load(stack) as load:
        killed_at = time.monotonic()
        os.kill(master, signal.SIGKILL)
        back = load.wait_until_back(killed_at, BACK_WITHIN)
        orphans_gone = wait_until_gone(workers, BACK_WITHIN)
        time.sleep(1.0)
    new_master, new_workers = stack.gunicorn_workers()
    figures = {"back (s)": round(back, 2), "old workers gone (s)": round(orphans_gone, 2)}
    record(load.figures(f"{stack.python_server} master SIGKILL", **figures), stack.python_server)
    assert new_master != master and new_workers.isdisjoint(workers)
    assert back <= BACK_WITHIN


def test_a_killed_nginx_master_is_back_within_5_s_without_orphans(stack):
    master, workers = nginx_processes(stack)
    with Load(stack) as load:
        killed_at = time.monotonic()
        os.kill(master, signal.SIGKILL)
        back = load.wait_until_back(killed_at, BACK_WITHIN)
        orphans_gone = wait_until_gone(workers | {master}, BACK_WITHIN)
        time.sleep(1.0)
    new_master, _ = nginx_processes(stack)
    figures = {"back (s)": round(back, 2), "old nginx gone (s)": round(orphans_gone, 2)}
    record(load.figures("nginx master SIGKILL", **figures), stack.python_server)
    assert new_master != master
    assert back <= BACK_WITHIN
    # The new nginx holds the port: the predictions after the kill were answered by it.
    assert load.outcomes[-1].ok


def test_five_reloads_lose_and_stall_nothing(stack):
    master, workers = stack.gunicorn_workers()
    logged_before = stack.log.stat().st_size
    with Load(stack) as load:
        for _ in range(5):
            os.kill(master, signal.SIGHUP)
            time.sleep(3.0)
    record(load.figures("5 x HUP (reload)"), stack.python_server)
    assert_reload_failures(stack, load.failed(), logged_before, replaced=5 * len(workers))
    assert load.slowest() < HUP_SLOWEST
    assert stack.gunicorn_workers()[0] == master  # reloaded, not restarted


def test_a_damaged_model_file_gives_503s_then_recovers_without_a_restart(stack):
    models = stack.project / "models"
    # The served version's artifact, models/versions/<id>/model.npz, as metadata.json names it.
    artifact = models / json.loads((models / "metadata.json").read_text())["artifact"]["path"]
    good = artifact.read_bytes()
    master, holding_the_model = settled_workers(stack)
    logged_before = stack.log.stat().st_size
    with Load(stack) as load:
        artifact.write_bytes(os.urandom(len(good)))
        # Workers keep the model they hold; a reload brings workers that must load the file,
        # and the old ones retire once the new ones serve.
        os.kill(master, signal.SIGHUP)
        wait_until_gone(holding_the_model, RECOVER_WITHIN)
        alive_answer = stack.request("GET", "/livez")
        ready_answer = stack.request("GET", "/readyz")
        predict_answer = stack.post_json("/predict", {"rows": IRIS_ROWS})
        time.sleep(1.0)
        restored_at = time.monotonic()
        artifact.write_bytes(good)
        load.wait_until_back(restored_at, RECOVER_WITHIN)
        time.sleep(1.0)
    back = min(o.started + o.seconds for o in load.outcomes if o.started > restored_at and o.ok)
    back -= restored_at
    statuses = {outcome.status for outcome in load.outcomes}
    refused = sum(outcome.status == 503 for outcome in load.outcomes)
    figures = {"503s": refused, "back (s)": round(back, 2)}
    record(load.figures("damaged model file", **figures), stack.python_server)
    failed = [outcome for outcome in load.failed() if outcome.status != 503]
    assert_reload_failures(stack, failed, logged_before, replaced=len(holding_the_model))
    assert statuses <= {200, 502, 503}, statuses
    assert alive_answer.status == 200
    for answer in (ready_answer, predict_answer):
        assert answer.status == 503
        assert "model.npz" in answer.json()["error"]["message"]
    assert stack.gunicorn_workers()[0] == master  # recovered by itself, not restarted


def test_a_graceful_stop_finishes_every_request_in_flight(
    copier_template, tmp_path, service_bin, server
):
    # A project of its own: the module's stack holds this one's run/ folder and sockets.
    running = start_stack(
        trained_project(copier_template, tmp_path / "project", service_bin, server), service_bin
    )
    try:
        with Load(running) as load:
            stopping_at = time.monotonic()
            os.kill(running.server(), signal.SIGTERM)
            running.make.wait(60)
            stopped = time.monotonic() - stopping_at
    finally:
        left = running.stop()
    # Requests sent before the stop were answered; after it, connections are refused, or
    # reset: one the kernel queued on nginx's listening socket as nginx closed it, never
    # accepted, so never started (Linux resets an unaccepted connection when its listener
    # closes; no server can answer it).
    before = [o for o in load.outcomes if o.started < stopping_at]
    after = [o for o in load.outcomes if o.started >= stopping_at]
    reset = [o for o in after if o.status == "ConnectionResetError"]
    cut = [o for o in load.outcomes if not o.ok and o.status != "ConnectionRefusedError"]
    cut = [o for o in cut if o not in reset]
    figures = {
        "answered after SIGTERM": sum(o.ok for o in after),
        "reset at the closing door": len(reset),
        "cut short": len(cut),
        "stop (s)": round(stopped, 2),
    }
    record(load.figures("graceful stop (SIGTERM)", **figures), server)
    assert all(outcome.ok for outcome in before)
    assert cut == [], cut
    assert left == []
    assert running.make.returncode == 0


def app_refusal(name: str, body: bytes, status: int) -> Malformed:
    """Well-formed HTTP whose JSON body the app refuses."""
    headers = [b"Host: localhost", b"Content-Type: application/json"]
    length = b"Content-Length: %d" % len(body)
    request = b"\r\n".join([b"POST /predict HTTP/1.1", *headers, length, b"", body])
    return Malformed(name, request, status)


def rows(*values: object) -> bytes:
    return json.dumps({"rows": list(values)}).encode()


# The protocol errors of the live-stack tests, and bodies the app refuses: the battery's table.
REFUSALS = [
    *MALFORMED_REQUESTS,
    app_refusal("not JSON", b"rows!", 400),
    app_refusal("NaN", b'{"rows": [[NaN, 3.5, 1.4, 0.2]]}', 400),
    app_refusal("a number past float64", b'{"rows": [[1e999, 3.5, 1.4, 0.2]]}', 422),
    app_refusal("rows not a list", b'{"rows": 3}', 422),
    app_refusal("no rows", rows(), 422),
    app_refusal("a row too short", rows([1.0, 2.0]), 422),
    app_refusal("a text value", rows(["a", 3.5, 1.4, 0.2]), 422),
    app_refusal("an unknown feature", rows({**IRIS_ROWS[0], "colour": 1.0}), 422),
    app_refusal("a missing feature", rows({"sepal_length_cm": 5.1}), 422),
    app_refusal("a prediction that overflows", rows([1.7e308, 3.5, 1.4, 0.2]), 422),
    app_refusal("1001 rows", rows(*[IRIS_ROWS[0]] * 1001), 413),
]


def test_malformed_requests_under_load_get_4xx_json_and_disturb_nothing(stack):
    """Every refusal in the table, 4xx JSON in the app's shape, while predictions go on."""
    with Load(stack) as load:
        answers = {case.name: send_raw(stack.port, case.raw) for case in REFUSALS}
        time.sleep(1.0)
    record(load.figures("malformed requests", refused=len(answers)), stack.python_server)
    assert len(REFUSALS) >= 30
    for case in REFUSALS:
        assert 400 <= case.status < 500, case.name
        assert_json_refusal(stack, case, answers[case.name])
    assert load.failed() == []
