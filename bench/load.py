"""Loading a stack: the request bodies, wrk's runs against it, and the CPU each run cost."""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bench.projects import BENCH
from bench.stacks import Stack, children_cpu_seconds, cpu_seconds

WARMUP_SECONDS = 2

# Rows 0, 50 and 100 of scikit-learn's iris data set, one of each class.
IRIS_ROWS = [
    {"sepal_length_cm": 5.1, "sepal_width_cm": 3.5, "petal_length_cm": 1.4, "petal_width_cm": 0.2},
    {"sepal_length_cm": 7.0, "sepal_width_cm": 3.2, "petal_length_cm": 4.7, "petal_width_cm": 1.4},
    {"sepal_length_cm": 6.3, "sepal_width_cm": 3.3, "petal_length_cm": 6.0, "petal_width_cm": 2.5},
]
PAYLOAD_ROWS = {"1 row": IRIS_ROWS[:1], "100 rows": [IRIS_ROWS[i % 3] for i in range(100)]}
# The service's (and the references') bodies; the peers get theirs from bench/peers.py.
PAYLOADS = {"1 row": {"row": IRIS_ROWS[0]}, "100 rows": {"rows": PAYLOAD_ROWS["100 rows"]}}
CONCURRENCIES = [8, 64]


@dataclass
class Measurement:
    """One wrk run against one stack."""

    stack: str
    payload: str
    connections: int
    round: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    # CPU microseconds per request: the stack's parts (cpu_seconds) and the load generator.
    cpu_us: dict[str, float] = field(default_factory=dict)


def wrk(
    url: str,
    body: Path,
    connections: int,
    seconds: float,
    threads: int,
    headers: dict[str, str] | None = None,
) -> dict:
    """POST `body` to `url` for `seconds`; wrk's summary as a dict (bench/post.lua)."""
    command = [
        "wrk",
        f"--threads={min(threads, connections)}",
        f"--connections={connections}",
        f"--duration={max(1, round(seconds))}s",
        "--timeout=30s",
        f"--script={BENCH / 'post.lua'}",
        *(f"--header={name}: {value}" for name, value in (headers or {}).items()),
        url,
    ]
    done = subprocess.run(
        command,
        env={**os.environ, "BENCH_BODY": str(body)},
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    match = re.search(r"^BENCH_JSON (.*)$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or match is None:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
    return json.loads(match.group(1))


def measure(
    stack: Stack,
    payload: str,
    body: Path,
    connections: int,
    seconds: float,
    threads: int,
    round_: int,
) -> Measurement:
    """One measurement, as a Measurement; any error or non-2xx response is counted."""
    stack_before, wrk_before = cpu_seconds(stack), children_cpu_seconds()
    summary = wrk(
        stack.url + stack.predict_path, body, connections, seconds, threads, stack.headers
    )
    stack_after, wrk_after = cpu_seconds(stack), children_cpu_seconds()
    errors = sum(summary[key] for key in ("connect", "read", "write", "status", "timeout"))
    per_request = 1e6 / max(summary["requests"], 1)
    cpu_us = {part: (stack_after[part] - stack_before[part]) * per_request for part in stack_after}
    cpu_us["wrk"] = (wrk_after - wrk_before) * per_request
    return Measurement(
        stack.name,
        payload,
        connections,
        round_,
        rps=summary["requests"] / (summary["duration_us"] / 1e6),
        p50_ms=summary["p50_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
        errors=errors,
        cpu_us=cpu_us,
    )


def check_answers(stack: Stack, body: Path) -> None:
    """One request with the body: it must answer 200, or the numbers would measure errors."""
    request = urllib.request.Request(
        stack.url + stack.predict_path,
        data=body.read_bytes(),
        headers={"Content-Type": "application/json", **stack.headers},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.status != 200:
            raise SystemExit(f"{stack.name}: POST {stack.predict_path} answered {response.status}")
