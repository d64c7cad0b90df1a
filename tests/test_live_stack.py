"""The production stack, live on loopback: a rendered project's own `make serve`, driven through
its front door, a worker killed under load, then stopped with nothing left behind.

Three stacks: the defaults (supervisord keeping nginx in front of gunicorn), the same with
granian in gunicorn's place, and gunicorn alone, one process for an orchestrator. Each runs
from the shared service environment on a free port, started once per xdist worker that runs
its tests; the last of those tests stops it.
"""

from __future__ import annotations

import contextlib
import csv
import http.client
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from configparser import ConfigParser
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urljoin, urlsplit

import pytest

from harness.processes import (
    NotReady,
    free_port,
    kill_session,
    session_processes,
    start_make_serve,
    wait_until_answers,
)
from tests.conftest import SERVICE_VENV, render, run_gate, system_tool
from tests.test_stack_configs import instructions

pytestmark = pytest.mark.live  # rendered services on loopback ports (pytest -m 'not live')

STACKS = {
    "nginx-supervisor": {},
    "nginx-granian": dict(wsgi_server="granian"),
    "gunicorn-alone": dict(web_server="gunicorn", process_manager="none"),
}

# Rows 0, 50 and 100 of scikit-learn's iris data set, one of each class.
IRIS_ROWS = [
    {"sepal_length_cm": 5.1, "sepal_width_cm": 3.5, "petal_length_cm": 1.4, "petal_width_cm": 0.2},
    {"sepal_length_cm": 7.0, "sepal_width_cm": 3.2, "petal_length_cm": 4.7, "petal_width_cm": 1.4},
    {"sepal_length_cm": 6.3, "sepal_width_cm": 3.3, "petal_length_cm": 6.0, "petal_width_cm": 2.5},
]
IRIS_CLASSES = ["setosa", "versicolor", "virginica"]


class Malformed(NamedTuple):
    """A request that is not valid HTTP/1.1, as raw bytes, and the 4xx status it must get."""

    name: str
    raw: bytes
    status: int


def _request(line: bytes, *headers: bytes, body: bytes = b"") -> bytes:
    return b"\r\n".join([line, *headers, b""]) + b"\r\n" + body


_HOST = b"Host: localhost"
_JSON = b"Content-Type: application/json"
_CHUNKED = b"Transfer-Encoding: chunked"
_PREDICT = b"POST /predict HTTP/1.1"
_READYZ = b"GET /readyz HTTP/1.1"

# Every one gets the same status, in JSON in the app's shape, from both stacks: nginx refuses
# it in front of gunicorn; gunicorn alone refuses it itself (gunicorn_workers.py), or the app
# does. Requests nginx accepts but gunicorn alone does not (a bare LF line ending, a header
# name beyond ASCII, which nginx drops) are not here: test_header_lines_nginx_drops_...
MALFORMED_REQUESTS = [
    Malformed(
        "request line over 8 KiB", _request(b"GET /" + b"a" * 9000 + b" HTTP/1.1", _HOST), 414
    ),
    Malformed("header line over 8 KiB", _request(_READYZ, _HOST, b"X-Big: " + b"a" * 9000), 431),
    Malformed(
        "headers over 32 KiB, 400 of them",
        _request(_READYZ, _HOST, *(b"X-H%d: %s" % (i, b"v" * 100) for i in range(400))),
        431,
    ),
    Malformed("garbage request line", b"GARBAGE\r\n\r\n", 400),
    Malformed("method alone", b"GET\r\n\r\n", 400),
    Malformed("HTTP/0.9 request", b"GET /readyz\r\n", 400),
    Malformed("unknown HTTP version", _request(b"GET /readyz HTTP/3.7", _HOST), 400),
    Malformed("HTTP/2.0 as text", _request(b"GET /readyz HTTP/2.0", _HOST), 400),
    Malformed("malformed HTTP version", _request(b"GET /readyz HTTP/1.x", _HOST), 400),
    Malformed("lowercase method", _request(b"get /readyz HTTP/1.1", _HOST), 400),
    Malformed("unknown method", _request(b"FROB /readyz HTTP/1.1", _HOST), 405),
    Malformed("TRACE", _request(b"TRACE /readyz HTTP/1.1", _HOST), 405),
    Malformed("URI without a leading slash", _request(b"GET readyz HTTP/1.1", _HOST), 400),
    Malformed("space in the URI", _request(b"GET /a b HTTP/1.1", _HOST), 400),
    Malformed("NUL in the URI", _request(b"GET /a\x00b HTTP/1.1", _HOST), 400),
    Malformed("DEL in the URI", _request(b"GET /a\x7fb HTTP/1.1", _HOST), 400),
    Malformed("HTTP/1.1 without Host", _request(_READYZ), 400),
    Malformed("two Host headers", _request(_READYZ, _HOST, b"Host: other"), 400),
    Malformed("space in a header name", _request(_READYZ, _HOST, b"X Bad: 1"), 400),
    Malformed("control byte in a header name", _request(_READYZ, _HOST, b"X-\x01A: 1"), 400),
    Malformed("empty header name", _request(_READYZ, _HOST, b": value"), 400),
    Malformed("NUL in a header value", _request(_READYZ, _HOST, b"X-A: a\x00b"), 400),
    Malformed("CR in a header value", _request(_READYZ, _HOST, b"X-A: a\rb"), 400),
    Malformed("obsolete line folding", _request(_READYZ, _HOST, b"X-A: a", b" b"), 400),
    Malformed(
        "Transfer-Encoding: gzip",
        _request(_PREDICT, _HOST, _JSON, b"Transfer-Encoding: gzip", body=b"{}"),
        400,
    ),
    Malformed(
        "Transfer-Encoding: chunked, chunked",
        _request(_PREDICT, _HOST, _JSON, b"Transfer-Encoding: chunked, chunked", body=b"0\r\n\r\n"),
        400,
    ),
    Malformed(
        "chunked in HTTP/1.0",
        _request(b"POST /predict HTTP/1.0", _HOST, _JSON, _CHUNKED, body=b"0\r\n\r\n"),
        400,
    ),
    Malformed(
        "invalid chunk size",
        _request(_PREDICT, _HOST, _JSON, _CHUNKED, body=b"zz\r\n{}\r\n0\r\n\r\n"),
        400,
    ),
    Malformed(
        "chunk without its CRLF",
        _request(_PREDICT, _HOST, _JSON, _CHUNKED, body=b"2\r\n{}XX0\r\n\r\n"),
        400,
    ),
    Malformed(
        "Content-Length and Transfer-Encoding",
        _request(_PREDICT, _HOST, _JSON, b"Content-Length: 5", _CHUNKED, body=b"0\r\n\r\n"),
        400,
    ),
    Malformed(
        "Content-Length not a number",
        _request(_PREDICT, _HOST, _JSON, b"Content-Length: abc", body=b"{}"),
        400,
    ),
    Malformed(
        "negative Content-Length",
        _request(_PREDICT, _HOST, _JSON, b"Content-Length: -1", body=b"{}"),
        400,
    ),
    Malformed(
        "Content-Length with a sign",
        _request(_PREDICT, _HOST, _JSON, b"Content-Length: +2", body=b"{}"),
        400,
    ),
    Malformed(
        "two different Content-Lengths",
        _request(_PREDICT, _HOST, _JSON, b"Content-Length: 2", b"Content-Length: 3", body=b"{}"),
        400,
    ),
    Malformed(
        "Content-Length over the body limit",
        _request(_PREDICT, _HOST, _JSON, b"Content-Length: 9999999"),
        413,
    ),
]

READY_WITHIN = 60  # seconds, from `make serve` to /readyz answering 200
STOPPED_WITHIN = 60  # seconds for a graceful stop: supervisord waits for its programs
WORKER_BACK_WITHIN = 10  # seconds, from a worker's SIGKILL to a new one serving
ORPHANS_GONE_WITHIN = 5  # seconds from a master's SIGKILL: a waiting orphan lingers 15
MASTER_BACK_WITHIN = 60  # seconds, from a master's SIGKILL to serving again (a busy machine)
HANDOVER_WITHIN = 60  # seconds, from a HUP to the new workers serving alone (a busy machine)
HUPS = 5
HUP_SLOWEST = 0.5  # seconds: no request waits for the new workers to load


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        assert self.headers.get("content-type", "").startswith("application/json"), self
        return json.loads(self.body)


@dataclass
class Process:
    pid: int
    ppid: int
    command: str


@dataclass
class Stack:
    """A running `make serve`: its project, address, and the session it started."""

    project: Path
    port: int
    make: subprocess.Popen
    log: Path
    with_nginx: bool
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def python_server(self) -> str:
        """The Python server behind nginx, or alone: "gunicorn" or "granian"."""
        return "gunicorn" if (self.project / "deploy" / "gunicorn.conf.py").exists() else "granian"

    @classmethod
    def serve(cls, project: Path, service_bin: Path, environment: dict[str, str]) -> Stack:
        """Start the project's `make serve` on a free loopback port (not waiting for it).

        It runs in a session of its own, so that what is left of it is findable and stoppable.
        """
        port = free_port()
        log = project / f"serve-{port}.log"
        make = start_make_serve(project, service_bin.parent, port, environment, log)
        with_nginx = (project / "deploy" / "nginx.conf").exists()
        return cls(project, port, make, log, with_nginx)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None
    ) -> Response:
        """One request on a fresh connection, as a browser or a client library sends it."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        return exchange(connection, method, path, body, headers)

    def request_gunicorn(self, path: str, headers: dict[str, str]) -> Response:
        """A GET straight to the Python server's unix socket (gunicorn's or granian's), as
        nginx sends it on."""
        socket_path = self.project / "run" / f"{self.python_server}.sock"
        connection = UnixHTTPConnection(str(socket_path))
        return exchange(connection, "GET", path, None, headers)

    def post_json(self, path: str, document: object) -> Response:
        body = json.dumps(document).encode()
        return self.request("POST", path, body, {"Content-Type": "application/json"})

    def processes(self) -> dict[int, Process]:
        """Every process still in the session `make serve` started (or descended from it),
        by pid."""
        return {
            pid: Process(pid, ppid, command)
            for pid, (ppid, command) in session_processes(self.make.pid).items()
        }

    def gunicorn_workers(self) -> tuple[int, set[int]]:
        """The Python server's master pid (gunicorn's, or granian's), and its workers'.

        granian's workers are forks with the master's command line: the master is the one
        whose parent is not the server too, the workers its children.
        """
        marker = "gunicorn" if self.python_server == "gunicorn" else ".granian_server"
        processes = self.processes()
        (master,) = [
            process.pid
            for process in processes.values()
            if marker in process.command
            and marker not in processes.get(process.ppid, Process(0, 0, "")).command
        ]
        return master, {process.pid for process in processes.values() if process.ppid == master}

    def server(self) -> int:
        """The process `make serve` execs: supervisord, or gunicorn's master."""
        processes = self.processes().values()
        (pid,) = [process.pid for process in processes if process.ppid == self.make.pid]
        return pid

    def stop(self) -> list[Process]:
        """SIGTERM to the server, as `docker stop` sends it; the processes that outlived it.

        Those are then killed, so that a failing test leaves nothing running either.
        """
        if self.make.poll() is None:
            started = time.monotonic()
            os.kill(self.server(), signal.SIGTERM)
            # If it does not stop in time, what is still running is reported below.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.make.wait(STOPPED_WITHIN)
            self.timings["stop (s)"] = round(time.monotonic() - started, 2)
        left = list(self.processes().values())
        kill_session(self.make.pid, self.make)
        return left


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP on a unix socket: `path` is the socket's, the Host header localhost's."""

    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=30)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def exchange(
    connection: http.client.HTTPConnection,
    method: str,
    path: str,
    body: bytes | None,
    headers: dict | None,
) -> Response:
    """One request and its response on `connection`, which is then closed."""
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return Response(response.status, headers, response.read())
    finally:
        connection.close()


def send_raw(port: int, raw: bytes) -> Response:
    """`raw` as it is, on a fresh connection, and its answer (status 0: a bare HTTP/0.9 body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(raw)
        answer = http.client.HTTPResponse(connection)
        try:
            answer.begin()
        except http.client.BadStatusLine as error:  # an answer to HTTP/0.9: its body alone
            rest = connection.makefile("rb").read()
            return Response(0, {}, error.line.encode("latin-1") + rest)
        headers = {name.lower(): value for name, value in answer.getheaders()}
        return Response(answer.status, headers, answer.read())


def assert_json_refusal(stack: Stack, case: Malformed, response: Response) -> None:
    """A 4xx answer in the app's shape, {"error": {"code", "name", "message"}}."""
    if response.status == 0:
        # Only nginx answers HTTP/0.9, as the protocol must, with the error as a bare body.
        assert stack.with_nginx and case.raw.count(b" ") == 1, case.name
        document = json.loads(response.body)
    else:
        assert response.status == case.status, (case.name, response)
        document = response.json()
        if stack.with_nginx:
            assert response.headers["server"] == "nginx", case.name
    assert set(document) == {"error"}, case.name
    assert set(document["error"]) == {"code", "name", "message"}, case.name
    assert document["error"]["code"] == case.status, case.name


def wait_until_ready(stack: Stack) -> None:
    try:
        wait_until_answers(stack.port, "/readyz", stack.make, stack.log, READY_WITHIN)
    except NotReady as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(
    scope="module",
    params=list(STACKS),
)
def stack(request, copier_template, tmp_path_factory, service_bin) -> Iterator[Stack]:
    name, answers = request.param, STACKS[request.param]
    if answers.get("web_server", "nginx") == "nginx":
        system_tool("envsubst")
        system_tool("nginx")
    project = render(copier_template, tmp_path_factory.mktemp("live") / "project", answers)
    with trained_and_serving(project, service_bin) as running:
        yield running
    print(f"\n{name}: {running.timings}")


@contextlib.contextmanager
def trained_and_serving(project: Path, service_bin: Path) -> Iterator[Stack]:
    """The rendered `project` trained, then served by its own `make serve`, ready; stopped
    at the end, nothing left running."""
    # The project is not installed in the shared environment: it runs from src/.
    environment = {**os.environ, "PYTHONPATH": "src"}
    run_gate(["make", "train", f"VENV={service_bin.parent}"], project, environment)
    running = Stack.serve(project, service_bin, environment)
    try:
        wait_until_ready(running)
        yield running
    finally:
        running.stop()


def test_readyz_is_ok_through_the_front_door(stack):
    response = stack.request("GET", "/readyz")
    assert response.status == 200
    assert response.json() == {"status": "ok"}
    if stack.with_nginx:  # nginx answered, without its version (server_tokens off)
        assert response.headers["server"] == "nginx"


def test_predictions_through_the_front_door_are_correct(stack, service_bin):
    response = stack.post_json("/predict", {"rows": IRIS_ROWS})
    assert response.status == 200
    assert response.json()["predictions"] == IRIS_CLASSES
    assert response.json()["model_version"] == response.headers["x-model-version"]
    # The same model answers the batch command line, without any server, the same.
    rows = stack.project / "rows.csv"
    with rows.open("w", newline="") as table:
        writer = csv.DictWriter(table, fieldnames=list(IRIS_ROWS[0]))
        writer.writeheader()
        writer.writerows(IRIS_ROWS)
    command = [str(service_bin / "python"), "-m", "iris_classifier", "predict", "rows.csv"]
    run_gate([*command, "-o", "batch.csv"], stack.project, {"PYTHONPATH": "src"})
    with (stack.project / "batch.csv").open() as table:
        assert [row["species"] for row in csv.DictReader(table)] == IRIS_CLASSES


def test_the_docs_load_through_the_front_door(stack):
    redirect = stack.request("GET", "/docs")
    assert redirect.status == 308
    assert redirect.headers["location"] == f"{stack.url}/docs/"
    page = stack.request("GET", "/docs/")
    assert page.status == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.body.decode()
    assets = [
        ("swagger-ui-bundle.js", "javascript"),
        ("start.js", "javascript"),  # the page's start-up script: the CSP allows no inline one
        ("swagger-ui.css", "css"),
    ]
    for asset, media_type in assets:
        assert f'"{asset}"' in html
        loaded = stack.request("GET", urlsplit(urljoin(f"{stack.url}/docs/", asset)).path)
        assert loaded.status == 200, asset
        assert media_type in loaded.headers["content-type"], asset
        assert len(loaded.body) == int(loaded.headers["content-length"]), asset
    # The URL Swagger UI fetches the document from, resolved as the browser resolves it.
    start = stack.request("GET", "/docs/start.js").body.decode()
    (spec,) = re.findall(r'SwaggerUIBundle\(\{\s*url: "([^"]+)"', start)
    document = stack.request("GET", urlsplit(urljoin(f"{stack.url}/docs/", spec)).path).json()
    assert document["openapi"].startswith("3.")
    assert {"/predict", "/readyz"} <= set(document["paths"])
    assert document["servers"] == [{"url": "."}]


@contextlib.contextmanager
def nginx_deployed_with(stack: Stack, **environ: str) -> Iterator[int]:
    """The project's nginx, started as supervisord.conf starts it but with `environ` (PATH_PREFIX,
    say) and on a port of its own, in front of the same gunicorn; its port."""
    supervisor = ConfigParser(interpolation=None)
    supervisor.read(stack.project / "deploy" / "supervisord.conf")
    shell, flag, script = shlex.split(supervisor["program:nginx"]["command"])
    port = free_port()
    folder = f"run-{port}"
    (stack.project / folder).mkdir()
    environment = {
        **os.environ,
        # The project's python (for its leftovers step) as make serve has it, and nginx.
        "PATH": os.pathsep.join([str(SERVICE_VENV / "bin"), os.environ["PATH"], "/usr/sbin"]),
        "PYTHONPATH": "src",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        **environ,
    }
    with (stack.project / f"{folder}.log").open("w") as log:
        nginx = subprocess.Popen(
            [shell, flag, script.replace("run/", f"{folder}/")],
            cwd=stack.project,
            env=environment,
            stdout=log,
            stderr=log,
        )
    try:
        deadline = time.monotonic() + READY_WITHIN
        while not port_answers(port):
            assert nginx.poll() is None and time.monotonic() < deadline, (
                stack.project / f"{folder}.log"
            ).read_text()
            time.sleep(0.1)
        yield port
    finally:
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait(STOPPED_WITHIN)


def port_answers(port: int) -> bool:
    try:
        return get(port, "/readyz").status == 200
    except OSError:
        return False


def get(port: int, path: str, headers: dict[str, str] | None = None) -> Response:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    return exchange(connection, "GET", path, None, headers)


def test_the_docs_under_the_path_prefix_a_router_strips(stack):
    if not stack.with_nginx:
        pytest.skip("PATH_PREFIX is nginx's; gunicorn alone believes a proxy's headers only")
    # Deployed behind a router that serves the stack under /iris and strips the prefix.
    with nginx_deployed_with(stack, PATH_PREFIX="/iris") as port:
        url = f"http://127.0.0.1:{port}"
        redirect = get(port, "/docs")
        assert redirect.status == 308
        assert redirect.headers["location"] == f"{url}/iris/docs/"
        spec = urljoin(redirect.headers["location"], "../openapi.json")
        assert spec == f"{url}/iris/openapi.json"
        # What the router then asks for, once it has stripped /iris again.
        stripped = urlsplit(spec).path.removeprefix("/iris")
        assert get(port, stripped).json()["openapi"].startswith("3.")
        # With the client's Host, and whatever prefix the client claims.
        headers = {"Host": "models.example.com:8443", "X-Forwarded-Prefix": "/attacker"}
        redirect = get(port, "/docs", headers)
        assert redirect.headers["location"] == "http://models.example.com:8443/iris/docs/"


def test_urls_keep_the_host_and_port_the_client_asked_for(stack):
    # A client that reached the service as models.example.com:8443 (a published port, a name
    # in DNS): its Host header, passed on as it was sent, is the redirect's.
    redirect = stack.request("GET", "/docs", headers={"Host": "models.example.com:8443"})
    assert redirect.status == 308
    assert redirect.headers["location"] == "http://models.example.com:8443/docs/"


# Forwarding headers a client may send to pass itself off as a proxy: every stack ignores them
# (nginx sets or clears each; gunicorn alone believes none).
FORGED_FORWARDING = {
    "X-Forwarded-Prefix": "/attacker",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Port": "8443",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Ssl": "on",
    "X-Forwarded-Protocol": "https",
    "X-Forwarded-Scheme": "https",
    "X-Url-Scheme": "https",
    "X-Forwarded-For": "10.0.0.1",
    "X-Real-IP": "10.0.0.1",
    "Forwarded": "for=10.0.0.1;host=evil.example;proto=https",
}


def test_forwarding_headers_a_client_sends_change_nothing(stack):
    for name, value in FORGED_FORWARDING.items():
        redirect = stack.request("GET", "/docs", headers={name: value})
        assert (redirect.status, redirect.headers["location"]) == (308, f"{stack.url}/docs/"), name
    redirect = stack.request("GET", "/docs", headers=FORGED_FORWARDING)
    assert (redirect.status, redirect.headers["location"]) == (308, f"{stack.url}/docs/")


def test_header_names_nginx_drops_never_reach_the_app(stack):
    # gunicorn takes SCRIPT_NAME from a header of that name from a peer it trusts; nginx drops
    # names with underscores or bytes beyond ASCII (ignore_invalid_headers), and gunicorn, which
    # refuses those beyond ASCII, takes no WSGI variable from a header (forwarder_headers).
    raw = _request(b"GET /docs HTTP/1.1", _HOST, b"SCRIPT_NAME: /attacker", b"X-Prefix_: /a")
    response = send_raw(stack.port, raw)
    assert (response.status, response.headers["location"]) == (308, "http://localhost/docs/")
    beyond_ascii = send_raw(stack.port, _request(_READYZ, _HOST, "X-été: 1".encode()))
    if stack.with_nginx:  # dropped: the rest of the request is answered
        assert beyond_ascii.status == 200
    else:
        assert beyond_ascii.status == 400
        assert beyond_ascii.json()["error"]["code"] == 400


def test_every_malformed_request_gets_a_4xx_json_answer(stack):
    for case in MALFORMED_REQUESTS:
        assert_json_refusal(stack, case, send_raw(stack.port, case.raw))
    # The service still answers.
    assert stack.request("GET", "/readyz").status == 200


def test_what_nginx_lets_through_gunicorn_takes(stack):
    """gunicorn's limits sit above nginx's: a request nginx accepts is never refused behind it."""
    if not stack.with_nginx:
        pytest.skip("gunicorn alone has its own limits")
    near_the_limits = [
        _request(b"GET /readyz?pad=" + b"a" * 8000 + b" HTTP/1.1", _HOST),
        _request(_READYZ, _HOST, b"X-Big: " + b"a" * 8000),
        _request(_READYZ, _HOST, *(b"X-H%d: v" % i for i in range(500))),  # gunicorn: 100
    ]
    if stack.python_server == "granian":
        # granian (hyper) takes 100 header fields at most, a count nginx has no directive for:
        # past it granian answers a bare 431 itself (the generated README says so). nginx adds
        # 5 of its own, so a client may send 94 besides Host.
        near_the_limits[2] = _request(_READYZ, _HOST, *(b"X-H%d: v" % i for i in range(94)))
        fields = (b"X-H%d: v" % i for i in range(95))
        assert send_raw(stack.port, _request(_READYZ, _HOST, *fields)).status == 431
    for raw in near_the_limits:
        response = send_raw(stack.port, raw)
        assert response.status == 200, response


def test_the_scheme_is_the_one_nginx_saw_not_the_clients_claim(stack):
    if not stack.with_nginx:
        pytest.skip("nginx's X-Forwarded-Proto")
    # Over plain HTTP, a client's own X-Forwarded-Proto is replaced by nginx's, and gunicorn
    # reads no other scheme header (one the client sent would be believed, or refused with a
    # 400 when it disagreed with nginx's).
    for claim in [{"X-Forwarded-Proto": "https"}, {"X-Forwarded-Ssl": "on"}]:
        redirect = stack.request("GET", "/docs", headers=claim)
        assert (redirect.status, redirect.headers["location"]) == (308, f"{stack.url}/docs/")
    # What nginx sends on for a client that used TLS: gunicorn sets the scheme from it, which
    # the app's URLs then have. Straight to gunicorn's socket, as this nginx listens on HTTP.
    headers = {
        "Host": "models.example.com:8443",
        "X-Forwarded-Proto": "https",
        "X-Real-IP": "203.0.113.7",
        "X-Forwarded-For": "203.0.113.7",
        "X-Forwarded-Prefix": "/iris",
    }
    redirect = stack.request_gunicorn("/docs", headers)
    assert redirect.status == 308
    assert redirect.headers["location"] == "https://models.example.com:8443/iris/docs/"


def test_a_2_mb_body_gets_a_413_json_answer(stack):
    body = b'{"rows": [' + b"[1.0, 2.0, 3.0, 4.0], " * 95_000 + b"[1.0, 2.0, 3.0, 4.0]]}"
    assert len(body) > 2_000_000
    response = stack.request("POST", "/predict", body, {"Content-Type": "application/json"})
    assert response.status == 413
    assert response.json()["error"]["code"] == 413
    # nginx refuses it before gunicorn sees it; alone, the app refuses it before reading it.
    assert ("client_max_body_size" in response.json()["error"]["message"]) == stack.with_nginx


def test_the_dockerfile_healthcheck_passes(stack, service_bin):
    """The image's HEALTHCHECK command, run as Docker runs it in the container."""
    healthcheck = instructions(stack.project / "Dockerfile")["HEALTHCHECK"][-1]
    command = json.loads(healthcheck.split(" CMD ", 1)[1])
    path = f"{service_bin}{os.pathsep}{os.environ['PATH']}"  # `python`: the image's venv's
    run_gate(command, stack.project, {"PATH": path, "PORT": str(stack.port)})


def test_a_killed_worker_loses_at_most_its_request_and_is_replaced(stack):
    """SIGKILL each worker in turn under a steady stream of predictions."""
    master, original = stack.gunicorn_workers()
    outcomes: list[Response | str] = []
    stop = threading.Event()

    def predict_until_stopped() -> None:
        while not stop.is_set():
            try:
                outcomes.append(stack.post_json("/predict", {"rows": IRIS_ROWS}))
            except (OSError, http.client.HTTPException) as error:
                outcomes.append(type(error).__name__)  # the connection died with the worker

    client = threading.Thread(target=predict_until_stopped)
    client.start()
    try:
        time.sleep(0.5)
        respawns = []
        for worker in sorted(original):
            killed_at = time.monotonic()
            os.kill(worker, signal.SIGKILL)
            respawns.append(wait_for_new_worker(stack, master, original, killed_at))
        # Every worker now is a new one: a prediction that succeeds was served by one.
        served_at = wait_for_a_prediction(stack)
        time.sleep(0.5)
    finally:
        stop.set()
        client.join(30)
    stack.timings["workers killed"] = len(original)
    stack.timings["new worker forked, at most (s)"] = round(max(respawns), 2)
    stack.timings["new workers serving (s)"] = round(served_at - killed_at, 2)
    lost = [outcome for outcome in outcomes if not is_ok(outcome)]
    stack.timings["requests"] = len(outcomes)
    stack.timings["lost"] = [getattr(outcome, "status", outcome) for outcome in lost]
    assert len(lost) <= len(original), f"lost {lost} of {len(outcomes)} requests"
    assert is_ok(outcomes[-1])
    if stack.with_nginx:
        # nginx answers with a JSON 502 for a request whose worker died before answering.
        # gunicorn's workers send an answer whole or not at all, so none is a 200 cut short;
        # granian sends the head before the body, so one killed in between cuts its 200 short
        # (the client sees the body end before its Content-Length: IncompleteRead).
        cut = [o for o in lost if o == "IncompleteRead"] if stack.python_server == "granian" else []
        lost = [outcome for outcome in lost if outcome not in cut]
        assert all(isinstance(outcome, Response) for outcome in lost), lost
        assert all(outcome.json()["error"]["code"] == 502 for outcome in lost), lost
    assert served_at - killed_at < WORKER_BACK_WITHIN


def is_ok(outcome: Response | str) -> bool:
    return isinstance(outcome, Response) and outcome.status == 200


def wait_for_new_worker(stack: Stack, master: int, old: set[int], since: float) -> float:
    while time.monotonic() - since < WORKER_BACK_WITHIN:
        _, workers = stack.gunicorn_workers()
        if workers - old:
            return time.monotonic() - since
        time.sleep(0.05)
    pytest.fail(f"gunicorn ({master}) started no new worker within {WORKER_BACK_WITHIN} s")


def wait_for_a_prediction(stack: Stack) -> float:
    deadline = time.monotonic() + WORKER_BACK_WITHIN
    while time.monotonic() < deadline:
        try:
            if stack.post_json("/predict", {"rows": IRIS_ROWS}).status == 200:
                return time.monotonic()
        except OSError:
            pass
        time.sleep(0.05)
    pytest.fail(f"no prediction served within {WORKER_BACK_WITHIN} s of the last kill")


# The client load of the tests that hurt the stack while it serves (here and tests/test_faults.py).
REQUESTS_PER_SECOND = 120
CLIENT_THREADS = 4
STEADY = 1.5  # seconds of requests all answered ok: the service is back
PREDICT_BODY = json.dumps({"rows": IRIS_ROWS}).encode()


@dataclass(frozen=True)
class Outcome:
    """One request of the load: when it started, how long it took, and what came back."""

    started: float
    seconds: float
    status: int | str  # the HTTP status, or the name of the error the client got
    ok: bool  # 200 with the right predictions
    version: str | None = None  # the model version that answered (X-Model-Version)


@dataclass
class Load:
    """A steady stream of predictions through the stack's front door, from a few threads.

    Each request is a new connection, as from many independent clients, and counts as ok only
    with status 200 and the right predictions: a truncated or garbled answer is a failure.
    """

    stack: Stack
    rate: float = REQUESTS_PER_SECOND
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Load:
        for index in range(CLIENT_THREADS):
            thread = threading.Thread(target=self._send, args=(index,), daemon=True)
            thread.start()
            self._threads.append(thread)
        time.sleep(1.0)  # a second of normal service before any fault
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _send(self, index: int) -> None:
        interval = CLIENT_THREADS / self.rate
        next_at = time.monotonic() + index * interval / CLIENT_THREADS
        while not self._stop.is_set():
            pause = next_at - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            next_at = max(next_at + interval, time.monotonic() - interval)
            self.outcomes.append(self.predict())

    def predict(self) -> Outcome:
        started = time.monotonic()
        connection = http.client.HTTPConnection("127.0.0.1", self.stack.port, timeout=30)
        version = None
        try:
            connection.request(
                "POST", "/predict", PREDICT_BODY, {"Content-Type": "application/json"}
            )
            response = connection.getresponse()
            body = response.read()
            status: int | str = response.status
            version = response.getheader("X-Model-Version")
            ok = status == 200 and json.loads(body) == {
                "predictions": IRIS_CLASSES,
                "model_version": version,
            }
        except (OSError, http.client.HTTPException, ValueError) as error:
            status, ok = type(error).__name__, False
        finally:
            connection.close()
        return Outcome(started, time.monotonic() - started, status, ok, version)

    def failed(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if not outcome.ok]

    def slowest(self) -> float:
        return max(outcome.seconds for outcome in self.outcomes)

    def wait_until_back(self, since: float, within: float) -> float:
        """Seconds from `since` until predictions are answered again, and stay answered.

        Back means a second of requests, every one answered ok; the figure is when the
        last failure before that second ended (0 if none did).
        """
        deadline = since + within + STEADY
        while time.monotonic() < deadline:
            now = time.monotonic()
            # Requests that started in the last second and a half, but for the newest half
            # second's, which may still be on their way.
            steady = [o for o in list(self.outcomes) if now - STEADY <= o.started < now - 0.5]
            if now - STEADY >= since and steady and all(o.ok for o in steady):
                failures = [o for o in list(self.outcomes) if o.started > since and not o.ok]
                return max((o.started + o.seconds - since for o in failures), default=0.0)
            time.sleep(0.05)
        statuses = sorted({str(o.status) for o in self.outcomes if o.started > since})
        pytest.fail(f"not back within {within} s; the clients saw {statuses}")

    def figures(self, fault: str, **more: object) -> dict[str, object]:
        failed = self.failed()
        return {
            "fault": fault,
            "requests": len(self.outcomes),
            "failed": len(failed),
            "failures": sorted({str(outcome.status) for outcome in failed}),
            "slowest (s)": round(self.slowest(), 3),
            **more,
        }


def test_hups_under_load_fail_no_request_and_hold_none_up(stack):
    """`kill -HUP` reloads code and model: the old workers serve until the new ones can."""
    master, workers = stack.gunicorn_workers()
    logged_before = stack.log.stat().st_size
    with Load(stack) as load:
        for _ in range(HUPS):
            os.kill(master, signal.SIGHUP)
            workers = wait_for_handover(stack, master, workers)
    outcomes, failed, slowest = load.outcomes, load.failed(), load.slowest()
    stack.timings["HUPs"] = HUPS
    stack.timings["requests during HUPs"] = len(outcomes)
    stack.timings["failed during HUPs"] = len(failed)
    stack.timings["slowest during HUPs (s)"] = round(slowest, 3)
    assert_reload_failures(stack, failed, logged_before, replaced=HUPS * len(workers))
    assert slowest < HUP_SLOWEST, f"a request took {slowest:.2f} s during the HUPs"


def assert_reload_failures(stack: Stack, failed: list, logged_before: int, replaced: int) -> None:
    """No request fails while gunicorn reloads. granian may fail one per worker it replaces:
    a stopping worker closes a connection it has accepted but not yet read (its HTTP library
    takes it for idle), and nginx answers its JSON 502 for a request the app never saw, which
    is safe to retry. nginx's log says which: it failed sending the request."""
    if stack.python_server == "gunicorn":
        assert failed == [], f"{len(failed)} failed: {failed[:5]}"
        return
    assert len(failed) <= replaced, failed
    assert {outcome.status for outcome in failed} <= {502}, failed
    log = stack.log.read_bytes()[logged_before:].decode(errors="replace")
    upstream = [line for line in log.splitlines() if "[error]" in line and "upstream" in line]
    assert len(upstream) >= len(failed), upstream
    # Closed before nginx had written the request, or after, unread: in a reload no worker
    # dies mid-request (each finishes its own before it stops).
    unread = ("while sending request to upstream", "while reading response header from upstream")
    assert all(any(what in line for what in unread) for line in upstream), upstream


def wait_for_handover(stack: Stack, master: int, old: set[int]) -> set[int]:
    """The new workers, once they alone serve: as many as the old, none of them left."""
    deadline = time.monotonic() + HANDOVER_WITHIN
    while time.monotonic() < deadline:
        current_master, workers = stack.gunicorn_workers()
        assert current_master == master
        if len(workers) == len(old) and not workers & old:
            return workers
        time.sleep(0.1)
    pytest.fail(f"old workers {old} still there, or new ones missing, {HANDOVER_WITHIN} s on")


def test_a_killed_gunicorn_master_is_back_with_none_of_its_workers_left(stack):
    """supervisord starts a new gunicorn; the old master's workers do not linger.

    With no requests coming, an orphaned sync worker waits in accept for half gunicorn's
    timeout before it sees that its master is gone: that is what this test catches.
    """
    if not stack.with_nginx:
        pytest.skip("alone, gunicorn is the container's process: the orchestrator restarts it")
    master, workers = stack.gunicorn_workers()
    killed_at = time.monotonic()
    os.kill(master, signal.SIGKILL)
    orphans_gone = None
    while (waited := time.monotonic() - killed_at) < MASTER_BACK_WITHIN:
        left = workers & set(stack.processes())
        if left:
            assert waited < ORPHANS_GONE_WITHIN, f"the old master's workers {left} linger"
        elif orphans_gone is None:
            orphans_gone = round(waited, 2)
        with contextlib.suppress(ValueError):  # no gunicorn master, for a moment
            new_master, new_workers = stack.gunicorn_workers()
            if not left and new_master != master and new_workers and predicts(stack):
                server = stack.python_server
                stack.timings[f"{server} master back (s)"] = round(waited, 2)
                stack.timings[f"{server} old workers gone (s)"] = orphans_gone
                return
        time.sleep(0.1)
    pytest.fail(
        f"{MASTER_BACK_WITHIN} s after gunicorn's master was killed, not serving: "
        f"processes {stack.processes()}"
    )


def predicts(stack: Stack) -> bool:
    try:
        return stack.post_json("/predict", {"rows": IRIS_ROWS}).status == 200
    except (OSError, http.client.HTTPException):
        return False


ATTACHED = re.compile(r"Process (\d+) attached")


@contextlib.contextmanager
def killed_at(
    pids: set[int], syscall: str, nth: int, log: Path
) -> Iterator[Callable[[], set[int]]]:
    """strace on `pids`, SIGKILLing each at its `nth` call of `syscall` (counted in each thread),
    as the call is entered, before it does anything; yields a function returning those killed
    (waiting a few seconds for one, as a failed request may be noticed before the death).

    A worker killed where its timeout, the OOM killer or a deploy's SIGKILL could land, made
    deterministic: no timing, no code of the worker's changed.
    """
    strace = system_tool("strace")
    attach = [argument for pid in sorted(pids) for argument in ("-p", str(pid))]
    inject = f"inject={syscall}:signal=KILL:when={nth}"
    command = [strace, "-f", "-o", str(log), "-e", f"trace={syscall}", "-e", inject, *attach]
    messages = log.with_suffix(".stderr")
    with messages.open("w") as output:
        tracer = subprocess.Popen(command, stderr=output)
    try:
        deadline = time.monotonic() + 10
        while not pids <= set(map(int, ATTACHED.findall(messages.read_text()))):
            assert tracer.poll() is None and time.monotonic() < deadline, messages.read_text()
            time.sleep(0.05)

        def killed() -> set[int]:
            deadline = time.monotonic() + 5
            while all(map(alive, pids)) and time.monotonic() < deadline:
                time.sleep(0.05)
            return {pid for pid in pids if not alive(pid)}

        yield killed
    finally:
        tracer.terminate()  # detaches from the workers still alive
        try:
            tracer.wait(5)
        except subprocess.TimeoutExpired:
            tracer.kill()  # the kernel detaches a dead tracer's tracees
            tracer.wait(5)


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def attempt(request: Callable[[], Response]) -> Response | str:
    """`request`'s response, or how it failed: IncompleteRead for a body cut short."""
    try:
        return request()
    except (OSError, http.client.HTTPException) as error:
        return type(error).__name__


def skip_unless_gunicorn(stack: Stack) -> None:
    if stack.python_server != "gunicorn":
        pytest.skip(
            "the kill points are gunicorn's Python sends (sendto, sendfile); granian writes "
            "from its Rust threads (writev), and its answer whole or not at all is nginx's 502 "
            "for a killed worker (test_a_killed_worker_loses_at_most_its_request...)"
        )


def test_a_worker_killed_as_it_sends_a_json_answer_sends_all_of_it_or_nothing(stack, tmp_path):
    """SIGKILL at a worker's first send of an answer, then at its second: no 200 cut short.

    gunicorn's own Response sends the head, then the body: killed at its second send, a worker
    had sent a 200 whose body never came. The project's workers send both at once: the answer
    arrives whole, or nginx answers its JSON 502 (gunicorn alone: the connection closes
    without an answer).
    """
    skip_unless_gunicorn(stack)
    # gthread's threads each count their own sends (gunicorn.conf.py sets how many a worker has).
    threads = re.search(
        r"^threads = (\d+)$",
        (stack.project / "deploy" / "gunicorn.conf.py").read_text(),
        re.MULTILINE,
    )
    senders = int(threads[1]) if threads else 1
    for nth in (1, 2):
        _, workers = stack.gunicorn_workers()
        outcomes: list[Response | str] = []
        with killed_at(workers, "sendto", nth, tmp_path / f"sendto-{nth}.log") as killed:
            # Some worker's thread sends its nth answer within this many requests.
            for _ in range(len(workers) * senders * (nth - 1) + 1):
                outcomes.append(attempt(lambda: stack.post_json("/predict", {"rows": IRIS_ROWS})))
                if not is_ok(outcomes[-1]):
                    break
            assert len(killed()) == 1, (nth, outcomes)
        *answered, lost = outcomes
        assert all(is_ok(outcome) for outcome in answered), (nth, outcomes)
        assert all(outcome.json()["predictions"] == IRIS_CLASSES for outcome in answered)
        if stack.with_nginx:
            assert isinstance(lost, Response), (nth, outcomes)
            assert (lost.status, lost.json()["error"]["code"]) == (502, 502), (nth, lost)
        else:
            assert lost == "RemoteDisconnected", (nth, outcomes)
        wait_for_a_prediction(stack)  # the worker's replacement serves


def test_a_worker_killed_as_it_sends_a_large_file_cuts_it_visibly(stack, tmp_path):
    """Swagger UI's bundle goes out with sendfile(2) after its head: a worker killed in between,
    or while the body waits for room in the socket, cannot take back the 200. The client sees
    the body end short of its Content-Length, and nginx logs fewer bytes than that length."""
    skip_unless_gunicorn(stack)
    path = "/docs/swagger-ui-bundle.js"
    _, workers = stack.gunicorn_workers()
    logged_before = stack.log.stat().st_size
    with killed_at(workers, "sendfile", 1, tmp_path / "sendfile.log") as killed:
        connection = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            with pytest.raises(http.client.IncompleteRead) as cut:
                response.read()
        finally:
            connection.close()
        assert len(killed()) == 1
    assert response.status == 200
    # Not re-framed as chunked, which would let the end of the stream pass for the end of the body.
    assert response.getheader("Transfer-Encoding") is None
    length = int(response.getheader("Content-Length"))
    assert len(cut.value.partial) + cut.value.expected == length > len(cut.value.partial)
    if stack.with_nginx:
        sent, logged_length = access_log_bytes(stack, path, logged_before)
        assert (sent, logged_length) == (len(cut.value.partial), length)
    wait_for_a_prediction(stack)


def access_log_bytes(stack: Stack, path: str, since: int) -> tuple[int, int]:
    """nginx's access log line for a GET of `path`, past byte `since` of make serve's output:
    its body bytes sent, and its Content-Length.

    nginx writes its access log at most a second late (buffer=64k flush=1s in nginx.conf).
    """
    # ... 200 <bytes sent> ... <Content-Length> <request id>
    line = re.compile(rf'"GET {re.escape(path)} HTTP/1\.1" 200 (\d+) .* (\d+) \S+$', re.MULTILINE)
    deadline = time.monotonic() + 5
    while not (found := line.findall(stack.log.read_bytes()[since:].decode())):
        assert time.monotonic() < deadline, f"no access log line for {path}"
        time.sleep(0.2)
    ((sent, length),) = found
    return int(sent), int(length)


def test_stopping_it_leaves_no_process_behind(stack):
    """Last: SIGTERM to what `make serve` runs stops everything it started, gracefully."""
    running = stack.processes()
    assert any(stack.python_server in process.command for process in running.values())
    assert any("nginx" in process.command for process in running.values()) == stack.with_nginx
    assert stack.stop() == [], f"left behind; make serve's log:\n{stack.log.read_text()}"
    assert stack.make.returncode == 0, stack.log.read_text()
    if stack.with_nginx:  # nginx and the server removed their pid file and socket on the way out
        assert not (stack.project / "run" / "nginx.pid").exists()
        assert not (stack.project / "run" / f"{stack.python_server}.sock").exists()


def test_ctrl_c_on_make_serve_piped_to_tee_stops_everything(stack):
    """`make serve 2>&1 | tee log`, then Ctrl-C: the terminal's SIGINT reaches make, the
    server and tee at once. tee is gone before the server has said it is stopping."""
    # One stack at a time in a project folder (its run/ sockets): the module's stops first,
    # when xdist has not run test_stopping_it_leaves_no_process_behind on this worker.
    if stack.make.poll() is None:
        assert stack.stop() == []
    port = free_port()
    serve = f"make serve VENV={stack.make.args[2].split('=', 1)[1]} HOST=127.0.0.1 PORT={port}"
    shell = subprocess.Popen(
        ["/bin/sh", "-c", f"{serve} 2>&1 | tee serve-tee.log"],
        cwd=stack.project,
        env={**os.environ, "PYTHONPATH": "src"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    piped = Stack(stack.project, port, shell, stack.project / "serve-tee.log", stack.with_nginx)
    try:
        wait_until_ready(piped)
        # A terminal's Ctrl-C: SIGINT to the foreground process group, the whole pipeline.
        os.killpg(shell.pid, signal.SIGINT)
        deadline = time.monotonic() + STOPPED_WITHIN
        while time.monotonic() < deadline and set(piped.processes()) - {shell.pid}:
            time.sleep(0.2)
        left = [p for p in piped.processes().values() if p.pid != shell.pid]
        assert left == [], f"left running after Ctrl-C: {left}"
        with socket.socket() as probe:  # the port is free again
            probe.bind(("127.0.0.1", port))
    finally:
        shell.wait(10)
        for process in piped.processes().values():
            os.kill(process.pid, signal.SIGKILL)
