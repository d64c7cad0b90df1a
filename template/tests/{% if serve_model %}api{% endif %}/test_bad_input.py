"""Every bad input is a 4xx JSON error whose message names the problem; none is a 5xx or HTML.

The matrix runs against every model endpoint the app serves. Each case builds its input
from a `Sample` of the model's features, and says what the error message must contain.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import pytest

# The endpoints that take rows of features, and those that also take one, as {"row": ...}.
MODEL_ENDPOINTS = {"/predict", "/predict_proba", "/evaluate"}
SINGLE_ROW_ENDPOINTS = {"/predict", "/predict_proba"}


@dataclass(frozen=True)
class Sample:
    """A valid row of the model, to break in one place at a time."""

    names: list[str]
    row: dict[str, float]
    max_rows: int
    max_bytes: int

    @property
    def first(self) -> str:
        return self.names[0]

    @property
    def values(self) -> list[float]:
        return [self.row[name] for name in self.names]

    def row_with(self, value: Any) -> dict[str, Any]:
        """The row, its first feature set to `value`."""
        return {**self.row, self.first: value}

    def row_without_first(self) -> dict[str, float]:
        return {name: value for name, value in self.row.items() if name != self.first}


# (rows, status, what the message says): each posted as {"rows": rows}, with as many valid
# targets for /evaluate. Python's json.dumps writes NaN and Infinity as bare tokens.
# Any: pytest.param types its values as object, and each case's first is a function.
BAD_ROWS: list[Any] = [
    pytest.param(
        lambda s: "x", 422, "'rows' must be an array of rows, got a string", id="rows str"
    ),
    pytest.param(
        lambda s: s.row, 422, "'rows' must be an array of rows, got an object", id="rows obj"
    ),
    pytest.param(lambda s: [], 422, "'rows' is empty", id="empty batch"),
    pytest.param(lambda s: [s.row] * (s.max_rows + 1), 413, "MAX_BATCH_ROWS", id="batch too large"),
    pytest.param(lambda s: [s.row, "x"], 422, "rows[1]: must be an object", id="row is a string"),
    pytest.param(lambda s: [s.row, 1.5], 422, "rows[1]: must be an object", id="row is a number"),
    pytest.param(lambda s: [None], 422, "rows[0]: must be an object", id="row is null"),
    pytest.param(
        lambda s: [s.row_without_first()],
        422,
        "rows[0]: missing feature(s) '{first}'",
        id="missing feature",
    ),
    pytest.param(
        lambda s: [{**s.row, "colour": 1.0}],
        422,
        "rows[0]: unknown feature(s) 'colour'",
        id="unknown feature",
    ),
    pytest.param(
        lambda s: [s.row, {**s.row_without_first(), "colour": 1.0}],
        422,
        "rows[1]: missing feature(s) '{first}'; unknown feature(s) 'colour'",
        id="misspelt feature",
    ),
    pytest.param(lambda s: [{}], 422, "rows[0]: missing feature(s) '{first}'", id="empty object"),
    pytest.param(
        lambda s: [s.row_with("5.1")],
        422,
        "rows[0]['{first}'] must be a finite number, got a string",
        id="string value",
    ),
    pytest.param(lambda s: [s.row_with(True)], 422, "got a boolean", id="boolean value"),
    pytest.param(lambda s: [s.row_with(None)], 422, "['{first}'] must be", id="null value"),
    pytest.param(lambda s: [s.row_with([1.0])], 422, "got an array", id="nested array"),
    pytest.param(lambda s: [s.row_with({"v": 1.0})], 422, "got an object", id="nested object"),
    pytest.param(lambda s: [s.row_with(10**400)], 422, "beyond float64", id="huge integer"),
    pytest.param(lambda s: [s.row_with(float("nan"))], 400, "NaN is not valid JSON", id="NaN"),
    pytest.param(lambda s: [s.row_with(float("inf"))], 400, "Infinity is not", id="Infinity"),
    pytest.param(lambda s: [s.row_with(-float("inf"))], 400, "-Infinity is not", id="-Infinity"),
    pytest.param(lambda s: [s.values[:-1]], 422, "rows[0]: {short} values, expected", id="short"),
    pytest.param(lambda s: [[*s.values, 1.0]], 422, "rows[0]: {long} values", id="long array"),
    pytest.param(lambda s: [s.values, s.values[1:]], 422, "rows[1]: {short} values", id="ragged"),
    pytest.param(lambda s: [[]], 422, "rows[0]: 0 values", id="empty array"),
    pytest.param(
        lambda s: [s.values, ["5.1", *s.values[1:]]],
        422,
        "rows[1][0] must be a finite number, got a string",
        id="string in array",
    ),
    pytest.param(lambda s: [[None, *s.values[1:]]], 422, "rows[0][0] must be", id="null in array"),
    pytest.param(lambda s: [[True, *s.values[1:]]], 422, "got a boolean", id="boolean in array"),
    pytest.param(lambda s: [[s.values, *s.values[1:]]], 422, "got an array", id="array in array"),
]

# (body, status, what the message says): bodies the same for every endpoint.
BAD_BODIES: list[Any] = [
    pytest.param(
        lambda s: [s.row], 422, "must be a JSON object, got an array", id="top-level array"
    ),
    pytest.param(
        lambda s: "rows", 422, "must be a JSON object, got a string", id="top-level string"
    ),
    pytest.param(lambda s: None, 422, "must be a JSON object, got null", id="top-level null"),
    pytest.param(lambda s: {}, 422, "the body needs 'rows'", id="no rows"),
    pytest.param(lambda s: {"Rows": [s.row]}, 422, "unknown field(s) 'Rows'", id="typo in field"),
    pytest.param(
        lambda s: {"rows": [s.row], "extra": 1}, 422, "unknown field(s) 'extra'", id="extra field"
    ),
]

# (raw bytes, Content-Type, status, what the message says)
BAD_REQUESTS: list[Any] = [
    pytest.param(b'{"rows": []}', "text/plain", 415, "Content-Type: application/json", id="text"),
    pytest.param(b'{"rows": []}', None, 415, "no Content-Type", id="no content type"),
    pytest.param(
        b"rows=1",
        "application/x-www-form-urlencoded",
        415,
        "not 'application/x-www-form-urlencoded'",
        id="form",
    ),
    pytest.param(b'{"rows": [', "application/json", 400, "malformed JSON", id="truncated JSON"),
    pytest.param(b"", "application/json", 400, "malformed JSON", id="empty body"),
    pytest.param(b"{'rows': []}", "application/json", 400, "malformed JSON", id="single quotes"),
    pytest.param(b'{"rows": [\xff]}', "application/json", 400, "malformed JSON", id="not UTF-8"),
    pytest.param(b"[" * 100_000, "application/json", 400, "nested too deeply", id="deep nesting"),
]

# (body, what the message says): sent to the endpoints that also take {"row": ...}.
BAD_SINGLE_ROWS: list[Any] = [
    pytest.param(lambda s: {"row": "x"}, "row: must be an object keyed by", id="string"),
    pytest.param(lambda s: {"row": s.values[:-1]}, "row: {short} values, expected", id="short"),
    pytest.param(lambda s: {"row": s.row_without_first()}, "row: missing feature(s)", id="missing"),
    pytest.param(lambda s: {"row": s.row_with("5.1")}, "row['{first}'] must be", id="string value"),
    pytest.param(lambda s: {"row": s.row, "rows": [s.row]}, "not both", id="row and rows"),
]


@pytest.fixture(scope="module")
def sample(app, model) -> Sample:
    return Sample(
        names=model.feature_names,
        row=model.metadata["example"],
        max_rows=app.config["MAX_BATCH_ROWS"],
        max_bytes=app.config["MAX_CONTENT_LENGTH"],
    )


@pytest.fixture(scope="module")
def endpoints(app) -> list[str]:
    """The model endpoints this app serves: each one is held to the whole matrix.

    Named rather than discovered, so that routes you add are not held to rules they never
    promised; add yours to MODEL_ENDPOINTS if they take rows like /predict does.
    """
    served = {rule.rule for rule in app.url_map.iter_rules() if "POST" in rule.methods}
    return sorted(MODEL_ENDPOINTS & served)


@pytest.fixture(scope="module")
def target(dataset) -> Any:
    """A valid target, for /evaluate, so that only the rows are wrong."""
    return dataset.target[:1].tolist()[0]


def rows_body(endpoint: str, rows: Any, target: Any) -> dict[str, Any]:
    if endpoint != "/evaluate":
        return {"rows": rows}
    return {"rows": rows, "targets": [target] * (len(rows) if isinstance(rows, list) else 1)}


def post_json(client, endpoint: str, body: Any):
    return client.post(endpoint, data=json.dumps(body), content_type="application/json")


def assert_refused(response, endpoint: str, status: int, says: str) -> None:
    """A JSON error of the one shape the service uses, with `says` in its message."""
    assert response.status_code == status, (endpoint, response.get_data(as_text=True)[:500])
    assert response.mimetype == "application/json", endpoint
    error = response.json["error"]
    assert error["code"] == status
    assert error["name"]
    assert says in error["message"], (endpoint, error["message"])


def expected(says: str, sample: Sample) -> str:
    n = len(sample.names)
    return says.format(first=sample.first, short=n - 1, long=n + 1)


@pytest.mark.parametrize(("make_rows", "status", "says"), BAD_ROWS)
def test_bad_rows(client, endpoints, sample, target, make_rows, status, says):
    for endpoint in endpoints:
        body = rows_body(endpoint, make_rows(sample), target)
        response = post_json(client, endpoint, body)
        assert_refused(response, endpoint, status, expected(says, sample))


@pytest.mark.parametrize(("make_body", "status", "says"), BAD_BODIES)
def test_bad_bodies(client, endpoints, sample, make_body, status, says):
    for endpoint in endpoints:
        response = post_json(client, endpoint, make_body(sample))
        assert_refused(response, endpoint, status, expected(says, sample))


@pytest.mark.parametrize(("data", "content_type", "status", "says"), BAD_REQUESTS)
def test_bad_requests(client, endpoints, data, content_type, status, says):
    for endpoint in endpoints:
        response = client.post(endpoint, data=data, content_type=content_type)
        assert_refused(response, endpoint, status, says)


def test_a_body_over_max_content_length_is_413(client, endpoints, sample):
    data = b'{"rows": [' + b" " * sample.max_bytes + b"]}"
    for endpoint in endpoints:
        response = client.post(endpoint, data=data, content_type="application/json")
        assert_refused(response, endpoint, 413, "MAX_CONTENT_LENGTH")


def test_a_chunked_body_over_max_content_length_is_413(client, endpoints, sample):
    # No Content-Length to refuse up front: the limit is found while reading.
    data = b'{"rows": [' + b" " * sample.max_bytes + b"]}"
    for endpoint in endpoints:
        response = client.post(
            endpoint,
            input_stream=io.BytesIO(data),
            content_type="application/json",
            headers={"Transfer-Encoding": "chunked"},
            environ_overrides={"wsgi.input_terminated": True},
        )
        assert_refused(response, endpoint, 413, "MAX_CONTENT_LENGTH")


def test_a_chunked_body_within_the_limit_is_read_whole(client, endpoints, dataset):
    # The other path through the body reader: no Content-Length, read to its end.
    features, targets = dataset.features[::3][:50].tolist(), dataset.target[::3][:50].tolist()
    rows = [dict(zip(dataset.feature_names, row, strict=True)) for row in features]
    for endpoint in endpoints:
        body = {"rows": rows, **({"targets": targets} if endpoint == "/evaluate" else {})}
        response = client.post(
            endpoint,
            input_stream=io.BytesIO(json.dumps(body).encode()),
            content_type="application/json",
            headers={"Transfer-Encoding": "chunked"},
            environ_overrides={"wsgi.input_terminated": True},
        )
        assert response.status_code == 200, response.json
        if endpoint != "/evaluate":  # its answer is the metrics, not one result per row
            (results,) = [v for k, v in response.json.items() if k != "model_version"]
            assert len(results) == 50


def test_a_number_beyond_float64_is_refused(client, endpoints, sample, target):
    for endpoint in endpoints:
        body = rows_body(endpoint, [sample.row_with(float("inf"))], target)
        # 1e999 is valid JSON, unlike Infinity, but no float64 can hold it.
        data = json.dumps(body).replace("Infinity", "1e999")
        response = client.post(endpoint, data=data, content_type="application/json")
        says = f"rows[0]['{sample.first}'] must be a finite number, got a number beyond float64"
        assert_refused(response, endpoint, 422, says)


@pytest.mark.parametrize(("make_body", "says"), BAD_SINGLE_ROWS)
def test_bad_single_rows(client, endpoints, sample, make_body, says):
    served = sorted(SINGLE_ROW_ENDPOINTS.intersection(endpoints))
    if not served:
        pytest.skip("no endpoint here takes a single row")
    for endpoint in served:
        response = post_json(client, endpoint, make_body(sample))
        assert_refused(response, endpoint, 422, expected(says, sample))


def test_nothing_in_the_matrix_is_a_5xx_or_html(app, client, endpoints, sample, target):
    """Every input above, sent to every endpoint and method, whether meant for it or not."""
    bodies = [rows_body(e, case.values[0](sample), target) for e in endpoints for case in BAD_ROWS]
    bodies += [case.values[0](sample) for case in BAD_BODIES]
    bodies += [case.values[0](sample) for case in BAD_SINGLE_ROWS]
    requests = [(json.dumps(body).encode(), "application/json") for body in bodies]
    requests += [case.values[:2] for case in BAD_REQUESTS]
    for endpoint in [*endpoints, "/no/such/route"]:
        for method in ("POST", "GET", "PUT"):
            for data, content_type in requests:
                response = client.open(
                    endpoint, method=method, data=data, content_type=content_type
                )
                assert 400 <= response.status_code < 500, (method, endpoint, data[:200])
                assert response.mimetype == "application/json", (method, endpoint, data[:200])
