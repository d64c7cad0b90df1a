"""The security choices, live: API keys, rate limits and TLS on the real stack, and a queue
that refuses a crafted pickle.

One project renders with every choice on (auth=api_key, tls, rate_limit) and the Redis queue
with the jobs API and the SQLite prediction store, and runs through its own `make serve`
(supervisord: nginx, gunicorn and the worker) on loopback, with a redis-server of its own.
Its keys come from API_KEYS and from a file outside the project (API_KEYS_FILE); its
certificate is one this module makes.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.client
import json
import os
import pickle
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import render, run_gate, system_tool
from tests.test_live_stack import IRIS_CLASSES, IRIS_ROWS, Response, Stack, exchange, free_port
from tests.test_stack_configs import make_certificate
from tests.test_task_queue import JOB_WITHIN, RedisServer

pytestmark = pytest.mark.live  # rendered services on loopback ports (pytest -m 'not live')

ENV_KEY = "env-key-7d1f0c9e5b2a4c86"  # in API_KEYS
FILE_KEY = "file-key-3a9e6b1d8c4f2e07"  # in the file API_KEYS_FILE names
RATE, BURST = 10, 20  # rate_limit and its default burst
READY_WITHIN = 60
QUEUE_KEY = b"huey.redis.iris_classifier"  # huey's list for the package's queue (RedisStorage)


@dataclass
class SecureStack(Stack):
    """The stack on HTTPS, trusting the module's certificate; HTTP_PORT only redirects."""

    http_port: int = 0
    certificate: Path = Path()

    def request(self, method, path, body=None, headers=None) -> Response:
        context = ssl.create_default_context(cafile=str(self.certificate))
        connection = http.client.HTTPSConnection(
            "127.0.0.1", self.port, timeout=30, context=context
        )
        return exchange(connection, method, path, body, headers)

    def keyed(self, method: str, path: str, key: str = ENV_KEY, document=None) -> Response:
        headers = {"X-API-Key": key}
        body = None
        if document is not None:
            body = json.dumps(document).encode()
            headers["Content-Type"] = "application/json"
        return self.request(method, path, body, headers)


def redis_command(port: int, *arguments: bytes) -> bytes:
    """One command in Redis' protocol, its raw reply (the tests need LPUSH and LLEN only)."""
    command = b"*%d\r\n" % len(arguments) + b"".join(
        b"$%d\r\n%s\r\n" % (len(argument), argument) for argument in arguments
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(command)
        return connection.recv(256)


class MakesADirectory:
    """A pickle that, once loaded, creates a folder: proof that something executed."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (str(self.path),))


@pytest.fixture(scope="module")
def redis(tmp_path_factory) -> Iterator[RedisServer]:
    server = RedisServer(system_tool("redis-server"), free_port(), tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def stack(copier_template, tmp_path_factory, service_bin, redis) -> Iterator[SecureStack]:
    system_tool("envsubst")
    system_tool("nginx")
    root = tmp_path_factory.mktemp("security")
    answers = dict(
        auth="api_key",
        tls=True,
        rate_limit=RATE,
        task_queue="redis",
        prediction_store="sqlite",
    )
    project = render(copier_template, root / "project", answers)
    certificate = make_certificate(project / "certs")
    keys_file = root / "secrets" / "api-keys"  # a mounted secret: outside the project
    keys_file.parent.mkdir()
    keys_file.write_text(f"# rotated in\n{FILE_KEY}\n")
    http_port = free_port()
    environment = {
        **os.environ,
        "PYTHONPATH": "src",
        "API_KEYS": ENV_KEY,
        "API_KEYS_FILE": str(keys_file),
        "REDIS_URL": redis.url,
        "HTTP_PORT": str(http_port),
    }
    run_gate(["make", "train", f"VENV={service_bin.parent}"], project, environment)
    running = SecureStack.serve(project, service_bin, environment)
    running.http_port, running.certificate = http_port, certificate
    try:
        deadline = time.monotonic() + READY_WITHIN
        while not ready(running):
            if running.make.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"not ready within {READY_WITHIN} s:\n{running.log.read_text()}")
            time.sleep(0.2)
        yield running
    finally:
        left = running.stop()
        assert left == [], running.log.read_text()


def ready(stack: SecureStack) -> bool:
    try:
        return stack.request("GET", "/readyz").status == 200
    except OSError:
        return False


def test_no_key_gets_a_401_json_answer_with_a_challenge(stack):
    for response in (
        stack.request("GET", "/model"),
        stack.request("POST", "/predict", b'{"rows": []}', {"Content-Type": "application/json"}),
        stack.keyed("GET", "/model", key="not-a-key"),
        stack.request("GET", "/model", headers={"Authorization": f"Basic {ENV_KEY}"}),
    ):
        assert response.status == 401, response
        assert response.json()["error"]["code"] == 401
        assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("key", [ENV_KEY, FILE_KEY])
def test_each_configured_key_predicts_in_either_header(stack, key):
    by_header = stack.keyed("POST", "/predict", key, {"rows": IRIS_ROWS})
    assert by_header.status == 200, by_header
    assert by_header.json()["predictions"] == IRIS_CLASSES
    bearer = stack.request("GET", "/model", headers={"Authorization": f"Bearer {key}"})
    assert bearer.status == 200, bearer


@pytest.mark.parametrize("path", ["/livez", "/readyz", "/openapi.json", "/docs/", "/docs/start.js"])
def test_health_and_docs_are_open(stack, path):
    assert stack.request("GET", path).status == 200
    assert stack.request("GET", "/docs").status == 308  # to /docs/, not refused


def test_every_answer_has_the_security_headers_and_no_version(stack):
    for response in (stack.request("GET", "/livez"), stack.request("GET", "/model")):
        assert response.headers["server"] == "nginx"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["strict-transport-security"] == "max-age=63072000"
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert "retry-after" not in response.headers
    # One value each: the app behind nginx adds none of its own.
    connection = http.client.HTTPSConnection(
        "127.0.0.1", stack.port, context=ssl.create_default_context(cafile=str(stack.certificate))
    )
    connection.request("GET", "/livez")
    answer = connection.getresponse()
    answer.read()
    connection.close()
    assert len(answer.msg.get_all("Content-Security-Policy")) == 1


def test_https_only_tls_1_2_and_up_and_plain_http_redirected(stack):
    context = ssl.create_default_context(cafile=str(stack.certificate))
    with (
        socket.create_connection(("127.0.0.1", stack.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.version() in {"TLSv1.2", "TLSv1.3"}
    pinned = ssl.create_default_context(cafile=str(stack.certificate))
    pinned.maximum_version = ssl.TLSVersion.TLSv1_2
    with (
        socket.create_connection(("127.0.0.1", stack.port), timeout=10) as raw,
        pinned.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.version() == "TLSv1.2"
    connection = http.client.HTTPConnection("127.0.0.1", stack.http_port, timeout=30)
    redirect = exchange(connection, "GET", "/model?x=1", None, {"Host": "127.0.0.1"})
    assert redirect.status == 301
    assert redirect.headers["location"] == f"https://127.0.0.1:{stack.port}/model?x=1"
    # The HTTPS port does not answer plain HTTP.
    plain = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
    assert exchange(plain, "GET", "/livez", None, None).status == 400


def test_a_crafted_pickle_in_redis_is_refused_with_nothing_executed(stack, redis, tmp_path):
    marker = tmp_path / "executed"
    reply = redis_command(redis.port, b"LPUSH", QUEUE_KEY, pickle.dumps(MakesADirectory(marker)))
    assert reply.startswith(b":"), reply
    deadline = time.monotonic() + JOB_WITHIN
    while redis_command(redis.port, b"LLEN", QUEUE_KEY) != b":0\r\n":
        if time.monotonic() > deadline:
            pytest.fail(f"the worker did not take the message:\n{stack.log.read_text()}")
        time.sleep(0.1)
    deadline = time.monotonic() + JOB_WITHIN
    while "refused a queue entry that is not JSON" not in stack.log.read_text():
        if time.monotonic() > deadline:
            pytest.fail(f"no refusal in the log:\n{stack.log.read_text()}")
        time.sleep(0.1)
    assert not marker.exists()
    # The worker goes on: a real job, submitted with a key, is done.
    submitted = stack.keyed("POST", "/jobs", document={"rows": IRIS_ROWS})
    assert submitted.status == 202, submitted
    deadline = time.monotonic() + JOB_WITHIN
    while (job := stack.keyed("GET", submitted.headers["location"]).json())["status"] != "done":
        assert job["status"] in {"queued", "running"}, job
        if time.monotonic() > deadline:
            pytest.fail(f"job not done within {JOB_WITHIN} s: {job}")
        time.sleep(0.1)
    assert job["predictions"] == IRIS_CLASSES


def test_a_load_over_the_limit_gets_429_json_then_200_again(stack):
    """Past the rate and its burst, nginx answers 429 JSON with Retry-After; then serves again."""

    def one(_: int) -> Response:
        return stack.request("GET", "/livez")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, range(4 * BURST + 40)))
    statuses = [answer.status for answer in answers]
    # Some answered (the burst, less what the tests before used of it), the rest refused.
    assert set(statuses) == {200, 429}, statuses
    refused = next(answer for answer in answers if answer.status == 429)
    assert refused.json()["error"]["name"] == "Too Many Requests"
    assert refused.headers["retry-after"] == "1"
    time.sleep(int(refused.headers["retry-after"]))  # what the answer asks of the client
    deadline = time.monotonic() + 10
    while (status := stack.request("GET", "/livez").status) != 200:
        assert status == 429
        assert time.monotonic() < deadline, "still refused 10 s after the load"
        time.sleep(0.2)


def test_no_key_is_in_any_project_file_log_or_the_store(stack):
    """Run last: the requests above wrote the logs and the prediction store it reads."""
    predictions = stack.keyed("GET", "/predictions").json()
    assert predictions, "the store recorded nothing: the check below would prove nothing"
    assert (stack.project / "var" / "predictions.sqlite3").exists()
    found = []
    for path in stack.project.rglob("*"):
        if path.is_file() and not path.is_symlink():
            content = path.read_bytes()
            found += [f"{path}: {key}" for key in (ENV_KEY, FILE_KEY) if key.encode() in content]
    assert not found, found
    log = stack.log.read_text()
    assert "/predict" in log  # the access log is in it
    with contextlib.suppress(FileNotFoundError):
        assert ENV_KEY not in (stack.project / ".copier-answers.yml").read_text()


@pytest.mark.browser
def test_swagger_ui_runs_under_the_csp_and_authorize_takes_a_key(stack):
    """In headless Chromium: the page renders with no CSP violation, "Authorize" takes a key,
    and "Try it out" on a guarded operation then gets a 200, all from the service alone."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as until
    from selenium.webdriver.support.ui import WebDriverWait

    chromium, driver = system_tool("chromium"), system_tool("chromedriver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    # The module's self-signed certificate; what TLS does is tested above.
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--ignore-certificate-errors")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SE_OFFLINE", "true")
        chrome = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    try:
        wait = WebDriverWait(chrome, 30)
        chrome.get(f"https://127.0.0.1:{stack.port}/docs/")
        wait.until(until.presence_of_element_located((By.CSS_SELECTOR, ".information-container")))
        chrome.find_element(By.CSS_SELECTOR, ".scheme-container button.authorize").click()
        field = wait.until(
            until.visibility_of_element_located((By.CSS_SELECTOR, ".auth-container input"))
        )
        field.send_keys(FILE_KEY)
        chrome.find_element(By.CSS_SELECTOR, ".auth-container button.authorize").click()
        chrome.find_element(By.CSS_SELECTOR, "button.btn-done").click()
        operation = wait.until(
            until.element_to_be_clickable((By.CSS_SELECTOR, "#operations-model-model_info"))
        )
        operation.find_element(By.CSS_SELECTOR, ".opblock-summary").click()
        wait.until(until.element_to_be_clickable((By.CSS_SELECTOR, "button.try-out__btn"))).click()
        wait.until(until.element_to_be_clickable((By.CSS_SELECTOR, "button.execute"))).click()
        status = wait.until(
            until.visibility_of_element_located(
                (By.CSS_SELECTOR, ".live-responses-table .response .response-col_status")
            )
        )
        assert status.text.strip() == "200"
        violations = [
            entry["message"]
            for entry in chrome.get_log("browser")
            if "Content Security Policy" in entry["message"] or entry["level"] == "SEVERE"
        ]
        assert not violations, violations
    finally:
        chrome.quit()


def test_plain_http_answers_the_probes_for_the_healthcheck(stack):
    for path in ("/livez", "/readyz"):
        connection = http.client.HTTPConnection("127.0.0.1", stack.http_port, timeout=30)
        assert exchange(connection, "GET", path, None, None).status == 200
