"""The default render's image: its size above the base image, and its cold start.

    .venv/bin/python bench/image.py             # build, measure 5 cold starts, update RESULTS.md
    .venv/bin/python bench/image.py --runs 3 --output /tmp/image.md

Run from the repository root with the repository's `.venv` and `build/service-venv` (`make
test` builds both) and Podman (.ci/run installs it). It renders the default project from the
template as checked out, runs its `make lock` and `make docker-build` with Podman, the flags
this machine needs coming from tests/containers.py, as in the image tests. The base image is
the local stand-in for python:3.11-slim-bookworm those tests make (Debian's Python 3.11 on a
debootstrapped bookworm): the size is measured above it, so the base's own size is left out.

- size above the base: the image's bytes less the base image's (its own layers), in MB;
- cold start: seconds from `podman run` to GET /readyz answering 200 (the
  model loaded in every gunicorn worker), from a container created afresh each time.

It writes its results as the "Image" section of bench/RESULTS.md, which bench/run.py keeps.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # bench/, harness/ and tests/ import as packages

from bench.projects import RESULTS, render, snapshot_template  # noqa: E402
from bench.report import write_section  # noqa: E402
from tests.containers import (  # noqa: E402
    build_flags,
    image_size_above,
    podman_env,
    podman_problem,
    python_base_image,
    run_container,
)

SERVICE_VENV = REPO / "build" / "service-venv"
TAG = "localhost/copier-ml-deploy-bench/default:latest"
SECTION = "## Image"


def make(project: Path, *arguments: str) -> float:
    started = time.perf_counter()
    completed = subprocess.run(
        ["make", *arguments, f"VENV={SERVICE_VENV}"],
        cwd=project,
        env=podman_env(),
        capture_output=True,
        text=True,
    )
    if completed.returncode != 0:
        raise SystemExit(
            f"make {' '.join(arguments)} failed:\n{completed.stdout}\n{completed.stderr}"
        )
    return time.perf_counter() - started


def cold_start() -> float:
    """Seconds from `podman run` of a fresh container to /readyz answering 200."""
    started = time.monotonic()
    container = run_container(TAG, f"bench-image-{time.monotonic_ns()}")
    try:
        container.wait_ready(within=120)
        return time.monotonic() - started
    finally:
        container.remove()


def section(base: str, above: int, build: float, starts: list[float]) -> list[str]:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return [
        SECTION,
        "",
        f"Written by `python bench/image.py` on {when}: the default render built by its own "
        "`make docker-build` (Podman), FROM a local stand-in for "
        f"`{base}` (Debian's Python 3.11 on a debootstrapped bookworm).",
        "",
        "| image | MB above the base | start to /readyz 200 (median), s | runs, s | build, s |",
        "| --- | ---: | ---: | --- | ---: |",
        f"| default render | {above / 1e6:.1f} | {statistics.median(starts):.2f} | "
        f"{' / '.join(f'{s:.2f}' for s in starts)} | {build:.0f} |",
        "",
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="cold starts to measure")
    parser.add_argument("--output", type=Path, default=RESULTS, help="the results file")
    arguments = parser.parse_args(argv)
    if problem := podman_problem():
        raise SystemExit(problem)
    base = python_base_image("3.11")
    with tempfile.TemporaryDirectory() as scratch:
        template = snapshot_template(Path(scratch) / "template")
        project = Path(scratch) / "default"
        render(template, project, {})
        make(project, "lock")
        flags = " ".join(shlex.quote(flag) for flag in build_flags())
        build = make(
            project,
            "docker-build",
            "CONTAINER_ENGINE=podman",
            f"CONTAINER_BUILD_FLAGS={flags}",
            f"IMAGE={TAG}",
        )
    above = image_size_above(TAG, base)
    starts = [cold_start() for _ in range(arguments.runs)]
    lines = section(base, above, build, starts)
    write_section(arguments.output, lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
