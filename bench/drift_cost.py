"""What `make drift` costs on a large prediction store: a million stored rows scored, on SQLite
and on PostgreSQL (issue 14's target: under 60 s on this machine).

    .venv/bin/python bench/drift_cost.py              # 1,000,000 rows, both databases; RESULTS.md
    .venv/bin/python bench/drift_cost.py --rows 5000 --output /tmp/drift.md

Run from the repository root with the repository's `.venv` and `build/service-venv` (`make
test` builds both). It renders the default service with prediction_store=sqlite and with
prediction_store=postgresql, trains each, migrates its store (`make migrate`), and fills it
with ROWS stored predictions at once, by bulk insert (sqlite3's executemany, PostgreSQL's
COPY), not through the service: one row per record, as a one-row POST /predict stores it,
of the model version the project serves, a second apart. Then it times `make drift
ROWS=<rows>` from start to exit: reading the window, scoring it, writing drift-report.html.
The peak RSS is the largest of the processes it ran (ru_maxrss).

PostgreSQL is a throwaway server of Debian's (harness/postgres.py), on a loopback port;
without it installed, that database is left out. The rows are the iris classes' means with
noise, petal lengths moved up for the newest third, so that the report has a drift to show.

It writes the "Drift" section of bench/RESULTS.md, which bench/run.py keeps.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/ imports as a package

from bench.projects import RESULTS, SERVICE_VENV, render, snapshot_template, train
from bench.report import write_section
from harness.postgres import postgres_bin, throwaway_postgres

TARGET_SECONDS = 60  # issue 14: a million stored rows scored within a minute
DATABASES = ["sqlite", "postgresql"]
COLUMNS = [
    "request_id",
    "created_at",
    "model_sha256",
    "model_version",
    "endpoint",
    "inputs",
    "outputs",
    "latency_ms",
]
# The iris classes' feature means (sepal length, sepal width, petal length, petal width, cm).
CLASS_MEANS = [[5.0, 3.4, 1.5, 0.2], [5.9, 2.8, 4.3, 1.3], [6.6, 3.0, 5.6, 2.0]]
CLASSES = ["setosa", "versicolor", "virginica"]


def records(rows: int, model_version: str) -> Iterator[tuple]:
    """`rows` stored predictions, oldest first, one row each, in COLUMNS' order."""
    rng = random.Random(0)
    start = datetime.now(UTC) - timedelta(seconds=rows)
    shifted = rows - rows // 3  # the newest third: petal lengths up by a centimetre
    sha256 = "0" * 64
    for index in range(rows):
        label = index % 3
        row = [round(mean + rng.gauss(0, 0.3), 1) for mean in CLASS_MEANS[label]]
        if index >= shifted:
            row[2] = round(row[2] + 1.0, 1)
        # SQLite keeps naive UTC times (the store's records.py); PostgreSQL reads them as UTC.
        created_at = (start + timedelta(seconds=index)).strftime("%Y-%m-%d %H:%M:%S.%f")
        yield (
            f"bench-{index}",
            created_at,
            sha256,
            model_version,
            "/predict",
            json.dumps([row]),
            json.dumps([CLASSES[label]]),
            1.0,
        )


def fill_sqlite(path: Path, rows: int, model_version: str) -> None:
    with sqlite3.connect(path) as database:
        database.executemany(
            f"INSERT INTO predictions ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * 8)})",
            records(rows, model_version),
        )


def fill_postgres(postgres, database: str, rows: int, model_version: str, work: Path) -> None:
    table = work / "predictions.csv"
    with table.open("w", newline="") as output:
        csv.writer(output).writerows(records(rows, model_version))
    postgres.psql(
        f"\\copy predictions ({', '.join(COLUMNS)}) FROM '{table}' WITH (FORMAT csv)", database
    )
    postgres.psql("ANALYZE predictions", database)  # as autovacuum would have, after a while
    table.unlink()


def make(project: Path, environment: dict[str, str], *arguments: str) -> tuple[float, float, str]:
    """`make ARGUMENTS` in the project: seconds taken, peak RSS in MiB, output."""
    started = time.perf_counter()
    process = subprocess.Popen(
        ["make", *arguments, f"VENV={SERVICE_VENV}"],
        cwd=project,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = process.stdout.read()
    # wait4: the resources of make and of every process it waited for, the drift command too.
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"make {' '.join(arguments)} failed:\n{output}")
    return seconds, usage.ru_maxrss / 1024, output


def measure(project: Path, url: str, rows: int, runs: int, fill) -> dict:
    """Migrate, fill (fill(model_version)), then `make drift` `runs` times: the figures."""
    environment = {**os.environ, "PYTHONPATH": "src", "DATABASE_URL": url}
    make(project, environment, "migrate")
    metadata = json.loads((project / "models" / "metadata.json").read_text())
    started = time.perf_counter()
    fill(metadata["model_version"])
    fill_seconds = time.perf_counter() - started
    times, peaks = [], []
    for _ in range(runs):
        seconds, peak, output = make(project, environment, "drift", f"ROWS={rows}")
        if f": {rows} rows (" not in output:
            raise SystemExit(f"make drift did not score {rows} rows:\n{output}")
        times.append(seconds)
        peaks.append(peak)
        print(f"    make drift: {seconds:.1f} s, peak RSS {peak:.0f} MiB", flush=True)
    return {"fill": fill_seconds, "times": times, "peak": max(peaks), "output": output}


def section(rows: int, results: dict[str, dict]) -> list[str]:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "## Drift",
        "",
        f"Written by `python bench/drift_cost.py` on {when}: `make drift ROWS={rows}` on the "
        f"default render's prediction store holding {rows:,} stored rows (one per record, "
        "filled by bulk insert), timed from start to exit: reading the window, the PSI of "
        "every feature, drift-report.html. Target (issue 14): under "
        f"{TARGET_SECONDS} s on this machine, every run.",
        "",
        "| database | stored rows | make drift, s (runs) | peak RSS, MiB | bulk fill, s | target |",
        "| --- | ---: | --- | ---: | ---: | --- |",
    ]
    for database, found in results.items():
        runs = " / ".join(f"{seconds:.1f}" for seconds in found["times"])
        met = "met" if max(found["times"]) < TARGET_SECONDS else "NOT met"
        lines.append(
            f"| {database} | {rows:,} | {runs} | {found['peak']:.0f} | {found['fill']:.1f} "
            f"| < {TARGET_SECONDS} s: {met} |"
        )
    lines += ["", f"CPUs: {len(os.sched_getaffinity(0))}; load average at the end: "]
    lines[-1] += " ".join(f"{load:.2f}" for load in os.getloadavg())
    return [*lines, ""]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="stored rows to score")
    parser.add_argument("--runs", type=int, default=2, help="timed `make drift` runs each")
    parser.add_argument(
        "--databases", nargs="+", choices=DATABASES, default=DATABASES, help="which stores"
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="the results file")
    parser.add_argument("--no-write", action="store_true", help="print the section only")
    arguments = parser.parse_args(argv)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as scratch:
        work = Path(scratch)
        template = snapshot_template(work / "template")
        for database in arguments.databases:
            if database == "postgresql" and (bin_dir := postgres_bin()) is None:
                print("    postgresql left out: apt-get install postgresql", file=sys.stderr)
                continue
            print(f"==> {database}: rendering, training, filling {arguments.rows:,} rows")
            project = work / database
            render(template, project, {"prediction_store": database})
            train(project)
            if database == "sqlite":
                path = project / "var" / "predictions.sqlite3"
                results[database] = measure(
                    project,
                    f"sqlite:///{path}",
                    arguments.rows,
                    arguments.runs,
                    lambda version, path=path: fill_sqlite(path, arguments.rows, version),
                )
                continue
            with throwaway_postgres(bin_dir) as postgres:
                postgres.psql("CREATE DATABASE drift")
                results[database] = measure(
                    project,
                    postgres.url("drift"),
                    arguments.rows,
                    arguments.runs,
                    lambda version, postgres=postgres: fill_postgres(
                        postgres, "drift", arguments.rows, version, work
                    ),
                )
    lines = section(arguments.rows, results)
    print("\n".join(lines))
    if not arguments.no_write:
        write_section(arguments.output, lines)
        print(f"written: {arguments.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
