"""The benchmark harness keeps working: a smoke run, the peers' rewiring of the stack, and the
drift timing on a small store.

Benchmarks are not tests: nothing here looks at a number. The smoke run only proves that
bench/run.py still renders, trains, serves and loads the service, and stops everything;
the drift run, that bench/drift_cost.py still fills both stores and times `make drift`.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from configparser import ConfigParser

import pytest

from bench import peers
from bench.report import Summary, kept_sections, ratio, write_section
from harness.processes import session_processes
from tests.conftest import REPO_ROOT, render, require_postgres, system_tool
from tests.test_stack_configs import check_nginx

BENCH = REPO_ROOT / "bench"


def run_script(name: str, *arguments: str) -> str:
    """`python bench/<name> ARGUMENTS` from the repository root, as documented; its output,
    once it has exited 0."""
    done = subprocess.run(
        [sys.executable, str(BENCH / name), *arguments],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


@pytest.mark.parametrize("peer_name", ["mlflow", "bentoml"])
def test_a_peer_takes_gunicorns_place_and_nothing_else_changes(
    peer_name, copier_template, tmp_path, service_bin
):
    project = render(copier_template, tmp_path / "project", {})
    before = {
        name: (project / "deploy" / name).read_text() for name in ("supervisord.conf", "nginx.conf")
    }
    peer = peers.PEERS[peer_name]

    peers.point_stack_at_peer(peer, project, tmp_path / "model", 18080)

    supervisor = ConfigParser(interpolation=None)
    supervisor.read(project / "deploy" / "supervisord.conf")
    command = supervisor["program:gunicorn"]["command"]
    assert command.startswith(f"{peer.venv}/bin/{peer_name} ")
    assert "127.0.0.1" in command and "18080" in command
    nginx = (project / "deploy" / "nginx.conf").read_text()
    assert "server 127.0.0.1:18080;" in nginx and "gunicorn.sock" not in nginx
    # Only those lines changed: nginx and supervisord keep every other setting.
    changed = [
        line
        for name, text in before.items()
        for line in text.splitlines()
        if line not in (project / "deploy" / name).read_text().splitlines()
    ]
    assert len(changed) == 2, changed
    check_nginx(project, service_bin)


@pytest.mark.live
def test_the_smoke_run_serves_and_stops_everything(service_bin):
    for tool in ("wrk", "nginx", "envsubst"):
        system_tool(tool)
    results = (BENCH / "RESULTS.md").read_text()
    output = run_script("run.py", "--smoke")
    assert "service / ceiling, 1 row, c=8: req/s" in output
    assert "mixed / ceiling, 1 row, c=8: req/s" in output
    assert "keys / service, 1 row, c=8: req/s" in output  # the API-key check, on vs off
    assert "granian / ceiling, 1 row, c=8: req/s" in output
    assert "killed after" not in output, output  # every stack stopped gracefully
    assert (BENCH / "RESULTS.md").read_text() == results, "a smoke run writes no results"


def test_a_stacks_processes_include_children_that_start_sessions_of_their_own():
    """BentoML's workers call setsid(): found through their parent, so measured and stopped."""
    grandchild = "import os, time; os.setsid(); time.sleep(60)"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time; "
            f"subprocess.Popen([sys.executable, '-c', {grandchild!r}]); time.sleep(60)",
        ],
        start_new_session=True,
    )
    try:
        for _ in range(100):
            found = session_processes(child.pid)
            if len(found) == 2:
                break
            time.sleep(0.1)
        assert sorted(command.split(" -c ")[1][:10] for _, command in found.values()) == [
            "import os,",
            "import sub",
        ]
    finally:
        for pid in session_processes(child.pid):
            os.kill(pid, signal.SIGKILL)
        child.wait(10)


@pytest.mark.live
def test_the_drift_cost_script_fills_both_stores_and_times_make_drift(service_bin):
    """bench/drift_cost.py on 2,000 rows (about a minute: two renders trained, a PostgreSQL
    started): the stores filled, `make drift` scoring every row, the section printed."""
    require_postgres()
    results = (BENCH / "RESULTS.md").read_text()
    output = run_script("drift_cost.py", "--rows=2000", "--runs=1", "--no-write")
    # drift_cost.py checks that make drift said it scored all 2,000 rows; each store has a row.
    assert re.search(r"^\| sqlite \| 2,000 \| [\d.]+ \| \d+ \| [\d.]+ \| < 60 s: ", output, re.M)
    assert re.search(r"^\| postgresql \| 2,000 \| [\d.]+ \| ", output, re.M), output
    assert (BENCH / "RESULTS.md").read_text() == results, "--no-write writes no results"


def test_the_sections_other_scripts_write_survive_a_rewrite_of_the_results(tmp_path):
    """image.py and drift_cost.py replace their own section; run.py keeps both (instant)."""
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## Targets\n\n- old\n")
    write_section(results, ["## Drift", "", "first", ""])
    write_section(results, ["## Image", "", "the image", ""])
    write_section(results, ["## Drift", "", "second", ""])
    text = results.read_text()
    assert text.count("## Drift") == 1 and "second" in text and "first" not in text
    assert text.startswith("# Benchmark results\n\n## Targets\n\n- old\n")
    # run.py writes its own sections, then what kept_sections found: Image first, then Drift.
    assert kept_sections(results) == "\n## Image\n\nthe image\n\n## Drift\n\nsecond\n"


def test_a_ratio_pairs_the_stacks_round_by_round():
    """The machine slowed down by half between two rounds; within each round the stack was at
    0.9x its reference. The ratio of the means would say 0.93x."""
    stack = Summary(rps=1350, p50_ms=1, p99_ms=1, spread=0, errors=0, rounds=[1800, 900])
    reference = Summary(rps=1500, p50_ms=1, p99_ms=1, spread=0, errors=0, rounds=[2000, 1000])
    assert ratio(stack, reference) == pytest.approx(0.9)
    unpaired = Summary(rps=1350, p50_ms=1, p99_ms=1, spread=0, errors=0, rounds=[1350])
    assert ratio(unpaired, reference) == pytest.approx(0.9)
