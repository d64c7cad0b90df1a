"""Metrics and request ids on the live stack (issue #14's "done when"): nginx in front of two
gunicorn workers, the prediction store on SQLite, JSON logs.

- Under load, the scraped request total is exactly what the app answered, a worker SIGKILLed
  and replaced midway: every request sent, less those nginx answered 502 because their worker
  died under them (at most one per kill; the app never answered them).
  The killed worker's live gauges (requests in progress, the model it served) go with it.
- A response's request id is in nginx's access log, the app's log and the stored row.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Iterator

import pytest

from tests.conftest import render, system_tool
from tests.test_live_stack import (
    IRIS_ROWS,
    Load,
    Stack,
    trained_and_serving,
    wait_for_new_worker,
)

pytestmark = pytest.mark.live

ANSWERS = dict(prediction_store="sqlite", log_format="json", gunicorn_workers=2)


@pytest.fixture(scope="module")
def stack(copier_template, tmp_path_factory, service_bin) -> Iterator[Stack]:
    system_tool("envsubst")
    system_tool("nginx")
    project = render(copier_template, tmp_path_factory.mktemp("metrics") / "project", ANSWERS)
    # gunicorn's access lines on (off behind nginx by default): the app's own log line of
    # each request, to find its id in.
    conf = project / "deploy" / "logging.conf"
    conf.write_text(conf.read_text().replace("level = WARNING", "level = NOTSET"))
    with trained_and_serving(project, service_bin) as running:
        yield running


def scrape(stack: Stack) -> str:
    response = stack.request("GET", "/metrics")
    assert response.status == 200, response
    return response.body.decode()


def predict_requests(stack: Stack) -> float:
    """The scraped total of POST /predict, every status."""
    # The exposition's lines, e.g. http_requests_total{method="POST",route="/predict",...} 12.0
    pattern = r'^http_requests_total\{method="POST",route="/predict",status="\d+"\} (\S+)$'
    return sum(float(value) for value in re.findall(pattern, scrape(stack), re.M))


def test_the_scraped_total_is_exact_with_a_worker_killed_under_load(stack):
    before = predict_requests(stack)
    master, workers = stack.gunicorn_workers()
    assert len(workers) == 2
    with Load(stack) as load:
        killed_at = time.monotonic()
        os.kill(min(workers), signal.SIGKILL)
        wait_for_new_worker(stack, master, workers, killed_at)
        load.wait_until_back(killed_at, within=10)
    _, now = stack.gunicorn_workers()
    assert len(now) == 2 and min(workers) not in now
    died_with_worker = [o for o in load.outcomes if o.status == 502]
    assert len(died_with_worker) <= 1, died_with_worker
    assert all(o.ok for o in load.outcomes if o.status != 502), load.failed()
    sent = len(load.outcomes)
    stack.timings["requests sent"] = sent
    assert predict_requests(stack) - before == sent - len(died_with_worker)
    # The killed worker's live gauges went with it (gunicorn_hooks.child_exit): killed under
    # load, it was most likely answering a request, yet none but this scrape is in progress
    # now; and model_info, which every worker sets once it starts, has one series per living
    # worker.
    exposition = scrape(stack)
    assert re.search(r"^http_requests_in_progress (\S+)$", exposition, re.M)[1] == "1.0"
    serving = re.findall(r'^model_info\{.*pid="(\d+)".*\} 1\.0$', exposition, re.M)
    assert sorted(map(int, serving)) == sorted(now)


def test_the_request_id_is_in_nginx_log_the_apps_log_and_the_stored_row(stack):
    response = stack.post_json("/predict", {"rows": IRIS_ROWS})
    assert response.status == 200
    request_id = response.headers["x-request-id"]
    assert len(request_id) == 32  # nginx's $request_id: the client sent none
    kept = stack.request(
        "POST",
        "/predict",
        json.dumps({"row": IRIS_ROWS[0]}).encode(),
        {"Content-Type": "application/json", "X-Request-ID": "client-chosen-1"},
    )
    assert kept.headers["x-request-id"] == "client-chosen-1"
    for wanted in (request_id, "client-chosen-1"):
        deadline = time.monotonic() + 10  # nginx flushes its log within a second
        while True:
            lines = [
                json.loads(line)
                for line in stack.log.read_text().splitlines()
                if line.startswith("{") and wanted in line
            ]
            loggers = {line["logger"] for line in lines if line.get("request_id") == wanted}
            stored = [
                row
                for row in stack.request("GET", "/predictions").json()["predictions"]
                if row["request_id"] == wanted
            ]
            if {"nginx.access", "gunicorn.access"} <= loggers and stored:
                break
            assert time.monotonic() < deadline, (wanted, loggers, stored)
            time.sleep(0.2)
