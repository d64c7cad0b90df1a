"""Podman for the image tests: the engine checked, the base images made locally, and builds and
runs with the flags this machine needs, all in one place.

The generated Dockerfile and Compose file stay what a Docker user runs unchanged: what a
machine without a registry or a Docker engine needs (see /work/shared/CONTAINERS.md, "Building
and running the generated image on these machines") is given here, as command-line flags and
as tests/containers.conf, which CONTAINERS_CONF points Podman at, so that a user's own
/etc/containers/containers.conf is neither read nor changed.

No registry is reachable, so `FROM python:3.11-slim-bookworm` finds a STAND-IN for the official
image: Debian bookworm (debootstrap's minbase) with Debian's own python3, made here once and
kept in Podman's storage between runs, keyed by a hash of the recipe below. It has Debian's
Python 3.11 (3.11.2), not the official image's build; what the tests prove about the generated
image (it builds, serves, is healthy, runs unprivileged, stops cleanly) does not depend on it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.processes import free_port
from tests.conftest import run_gate

REPO_ROOT = Path(__file__).resolve().parent.parent
CONTAINERS_CONF = Path(__file__).with_name("containers.conf")
# Files the tests write for the builds (the pip.conf), beside the other build products.
WORK_DIR = REPO_ROOT / "build" / "containers"
# One lock for the whole machine: Podman's image storage is shared by every checkout on it.
STANDIN_LOCK = Path(tempfile.gettempdir()) / "copier-ml-deploy-standin.lock"
RECIPE_LABEL = "org.copier-ml-deploy.standin-recipe"

# What every `podman build` needs here: HEALTHCHECK kept (the OCI format drops it), RUN steps
# on the host's network (the package indexes). Nothing is pulled: the base images are the
# local stand-ins.
BASE_BUILD_FLAGS = ["--format=docker", "--network=host", "--pull=never"]
# A project's build also has pip trust this machine's CA bundle (and a pip.conf saying so,
# see build_image). Not the stand-in's: its ca-certificates package writes that folder.
BUILD_FLAGS = [*BASE_BUILD_FLAGS, "--volume=/etc/ssl/certs:/etc/ssl/certs:ro"]
# What every `podman run` needs here: the host's network, the simplest way to reach the
# container on a loopback port (the service listens on PORT, which the test picks).
RUN_FLAGS = ["--network=host"]

# Debian bookworm's minimal root filesystem, imported as an image.
DEBIAN_MINBASE = "localhost/copier-ml-deploy/debian:bookworm-minbase"
DEBOOTSTRAP = ["debootstrap", "--variant=minbase", "bookworm"]
# The official image's name, for `FROM python:<version>-slim-bookworm`; Debian bookworm ships
# Python 3.11 alone, so no other version has a stand-in.
PYTHON_STANDINS = {"3.11": "docker.io/library/python:3.11-slim-bookworm"}
# Stands in for the official python:3.11-slim-bookworm: Debian's python3 on a minimal
# bookworm, `python` and `pip` on PATH as in the official image, and the official Debian
# images' apt settings (docker-clean: no package caches left in a layer by apt-get), without
# which every `apt-get install` layer built on it would carry ~100 MB of apt's caches.
APT_CLEAN = "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"
PYTHON_STANDIN_CONTAINERFILE = f"""\
FROM {DEBIAN_MINBASE}
ENV LANG=C.UTF-8
RUN printf '%s\\n' \\
        'DPkg::Post-Invoke {{ "{APT_CLEAN}"; }};' \\
        'APT::Update::Post-Invoke {{ "{APT_CLEAN}"; }};' \\
        'Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";' \\
        > /etc/apt/apt.conf.d/docker-clean \\
    && echo 'Acquire::Languages "none";' > /etc/apt/apt.conf.d/docker-no-languages \\
    && apt-get update \\
    && apt-get install --yes --no-install-recommends \\
        python3 python3-venv python3-pip ca-certificates \\
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \\
    && ln -s /usr/bin/python3 /usr/local/bin/python
CMD ["python3"]
"""


def podman_env() -> dict[str, str]:
    """The environment of every Podman command: the tests' own containers.conf."""
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def podman(
    *arguments: str, check: bool = True, timeout: float = 600, input: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `podman ARGUMENTS`; on failure (with check), fail the test with its output."""
    completed = subprocess.run(
        ["podman", *arguments],
        env=podman_env(),
        capture_output=True,
        text=input is None,
        input=input,
        timeout=timeout,
    )
    if check and completed.returncode != 0:
        pytest.fail(
            f"`podman {' '.join(arguments)}` failed (exit {completed.returncode}):\n"
            f"{completed.stdout}\n{completed.stderr}",
            pytrace=False,
        )
    return completed


def unavailable(reason: str) -> None:
    """Skip a test that cannot run here; under CI (CI=true), where it must run, fail it."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def podman_problem() -> str | None:
    """Why Podman cannot run containers here, in one line; None when it can."""
    if shutil.which("podman") is None:
        return "podman is not installed: apt-get install podman runc (.ci/run installs it)"
    try:
        info = subprocess.run(
            ["podman", "info", "--format", "json"],
            env=podman_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        return "`podman info` did not answer within 120 s"
    if info.returncode != 0:
        lines = info.stderr.strip().splitlines() or ["(no output)"]
        return f"podman cannot run here: {lines[-1]}"
    return None


def require_podman() -> None:
    """Podman works here, or the test is skipped (failed under CI) with the reason."""
    problem = podman_problem()
    if problem is not None:
        unavailable(problem)


def image_label(image: str, label: str) -> str | None:
    """A label of a local image; None when there is no such image."""
    inspected = podman("image", "inspect", image, check=False)
    if inspected.returncode != 0:
        return None
    (found,) = json.loads(inspected.stdout)
    return (found.get("Labels") or {}).get(label)


def debian_mirror() -> str:
    """The Debian mirror this machine's apt uses (its sources), for debootstrap."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    text = sources.read_text() if sources.exists() else ""
    listing = Path("/etc/apt/sources.list")
    if listing.exists():
        text += listing.read_text()
    for url in re.findall(r"(?:URIs:|deb)\s+(https?://\S+/debian)/?\s", text):
        return url
    return "http://deb.debian.org/debian"


def recipe_hash(*recipe: object) -> str:
    """The hash that labels a stand-in: a change to how it is made makes a new one."""
    return hashlib.sha256(json.dumps(recipe).encode()).hexdigest()[:16]


def python_base_image(python_version: str = "3.11") -> str:
    """The stand-in for python:<version>-slim-bookworm, made once per recipe and kept."""
    tag = PYTHON_STANDINS.get(python_version)
    if tag is None:
        unavailable(
            f"no stand-in for python:{python_version}-slim-bookworm: Debian bookworm has "
            f"Python 3.11 only (tests/containers.py)"
        )
    mirror = debian_mirror()
    minbase_recipe = recipe_hash(DEBOOTSTRAP, mirror)
    recipe = recipe_hash(minbase_recipe, PYTHON_STANDIN_CONTAINERFILE)
    STANDIN_LOCK.touch()
    # xdist workers, and other checkouts on this machine, wait for the one making it.
    with STANDIN_LOCK.open() as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if image_label(tag, RECIPE_LABEL) != recipe:
            if image_label(DEBIAN_MINBASE, RECIPE_LABEL) != minbase_recipe:
                make_debian_minbase(mirror, minbase_recipe)
            with tempfile.TemporaryDirectory() as context:
                containerfile = Path(context) / "Containerfile"
                containerfile.write_text(PYTHON_STANDIN_CONTAINERFILE)
                podman(
                    "build",
                    *BASE_BUILD_FLAGS,
                    f"--label={RECIPE_LABEL}={recipe}",
                    f"--tag={tag}",
                    f"--file={containerfile}",
                    context,
                )
    return tag


def make_debian_minbase(mirror: str, recipe: str) -> None:
    """debootstrap's minimal bookworm, imported into Podman (about a minute)."""
    if shutil.which("debootstrap") is None:
        unavailable("debootstrap is not installed: apt-get install debootstrap (.ci/run does)")
    with tempfile.TemporaryDirectory(dir="/var/tmp") as scratch:
        rootfs = Path(scratch) / "rootfs"
        completed = subprocess.run(
            [*DEBOOTSTRAP, str(rootfs), mirror], capture_output=True, text=True, timeout=1200
        )
        if completed.returncode != 0:
            pytest.fail(f"debootstrap failed:\n{completed.stdout}\n{completed.stderr}")
        archive = subprocess.run(
            ["tar", "-C", str(rootfs), "-c", "."], capture_output=True, check=True
        ).stdout
    podman("import", f"--change=LABEL {RECIPE_LABEL}={recipe}", "-", DEBIAN_MINBASE, input=archive)


def pip_conf() -> Path:
    """A pip.conf for the builds' RUN steps: this machine's CA bundle, and its index if it
    has one of its own (PIP_INDEX_URL), since PyPI may be reachable only through it."""
    lines = ["[global]", "cert = /etc/ssl/certs/ca-certificates.crt"]
    index = os.environ.get("PIP_INDEX_URL", "")
    if index.startswith(("http://", "https://")):
        lines.append(f"index-url = {index}")
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    path = WORK_DIR / "pip.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Build:
    tag: str
    seconds: float
    output: str


def build_flags() -> list[str]:
    """Every flag a project's `podman build` needs here (for `make docker-build`, too)."""
    return [*BUILD_FLAGS, f"--volume={pip_conf()}:/etc/pip.conf:ro"]


def build_image(project: Path, tag: str, *extra: str) -> Build:
    """`podman build` of the project's own Dockerfile, unchanged, as `tag`."""
    started = time.monotonic()
    completed = podman(
        "build",
        *build_flags(),
        f"--tag={tag}",
        *extra,
        str(project),
        timeout=1800,
    )
    return Build(tag, time.monotonic() - started, completed.stdout + completed.stderr)


def image_size_above(image: str, base: str) -> int:
    """Bytes the image's own layers add to `base` (its layers beyond the base's)."""
    return image_bytes(image) - image_bytes(base)


def image_bytes(image: str) -> int:
    return int(podman("image", "inspect", "--format", "{{.Size}}", image).stdout.strip())


@dataclass
class Container:
    """A running container on the host's network, answering on 127.0.0.1:port."""

    name: str
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def inspect(self, template: str) -> str:
        return podman("container", "inspect", "--format", template, self.name).stdout.strip()

    def running(self) -> bool:
        return self.inspect("{{.State.Running}}") == "true"

    def logs(self) -> str:
        completed = podman("logs", self.name, check=False)
        return completed.stdout + completed.stderr

    def exec(self, *command: str) -> subprocess.CompletedProcess[str]:
        return podman("exec", self.name, *command, check=False)

    def health(self) -> str:
        """Run the image's HEALTHCHECK now, as the engine's timer would, and return the
        status the engine then reports (starting, healthy, unhealthy)."""
        podman("healthcheck", "run", self.name, check=False)
        return self.inspect("{{.State.Healthcheck.Status}}")

    def wait_ready(self, within: float, path: str = "/readyz") -> float:
        """Seconds until GET path answers 200; fails the test after `within` seconds."""
        started = time.monotonic()
        while time.monotonic() - started < within:
            if not self.running():
                pytest.fail(f"{self.name} exited before it was ready:\n{self.logs()}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(self.url + path, timeout=2) as response,
            ):
                if response.status == 200:
                    return time.monotonic() - started
            time.sleep(0.1)
        pytest.fail(f"{self.name}: {path} not 200 within {within} s:\n{self.logs()}")

    def stop(self, timeout: int) -> tuple[float, int]:
        """`podman stop` (SIGTERM, SIGKILL after `timeout` s): seconds taken, exit code."""
        started = time.monotonic()
        podman("stop", f"--time={timeout}", self.name, timeout=timeout + 60)
        return time.monotonic() - started, int(self.inspect("{{.State.ExitCode}}"))

    def remove(self) -> None:
        podman("rm", "--force", "--time=0", self.name, check=False)


def run_container(
    image: str,
    name: str,
    *,
    env: dict[str, str] | None = None,
    options: Sequence[str] = (),
    command: Sequence[str] = (),
) -> Container:
    """`podman run --detach` of the image on a free port (PORT), with this machine's flags."""
    port = free_port()
    environment = [f"--env={key}={value}" for key, value in {"PORT": port, **(env or {})}.items()]
    podman("rm", "--force", "--time=0", name, check=False)
    podman("run", "--detach", f"--name={name}", *RUN_FLAGS, *environment, *options, image, *command)
    return Container(name, port)


@contextlib.contextmanager
def running_container(image: str, name: str, **kwargs) -> Iterator[Container]:
    """A container for the length of a `with` block, removed afterwards whatever happened."""
    container = run_container(image, name, **kwargs)
    try:
        yield container
    finally:
        container.remove()


def lock_requirements(project: Path, service_bin: Path) -> None:
    """The project's `make lock`, done once per pyproject.toml and Makefile and kept in build/:
    the image tests' projects and test_make_lock share a few of them. The lock files are
    copied in after it, so that make sees them up to date."""
    inputs = b"".join((project / name).read_bytes() for name in ("pyproject.toml", "Makefile"))
    key = hashlib.sha256(inputs).hexdigest()[:16]
    cached = WORK_DIR / "locks" / key
    cached.parent.mkdir(parents=True, exist_ok=True)
    # xdist workers asking for the same lock wait for the one making it.
    with cached.with_suffix(".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not cached.is_dir():
            run_gate(["make", "lock", f"VENV={service_bin.parent}"], project)
            staging = cached.with_name(f"{key}.{os.getpid()}")
            staging.mkdir()
            for lock_file in project.glob("requirements*.lock"):
                shutil.copy(lock_file, staging)
            staging.rename(cached)
    # requirements-train.lock is made from requirements.lock: it must be the newer.
    now = time.time()
    for offset, lock_file in enumerate(sorted(cached.iterdir())):
        shutil.copy(lock_file, project)
        os.utime(project / lock_file.name, (now + offset, now + offset))
