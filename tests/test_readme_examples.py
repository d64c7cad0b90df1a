"""The generated README's examples, pasted as a user pastes them: every command of its shell
blocks that talks to the service or runs the batch command line, in order, in one bash session
in the project folder, against the project's own `make serve` on loopback. The lines run as
the README prints them, the port alone changed; each output is checked for sense.

Two projects: the defaults (iris: /predict, /predict_proba, /evaluate), and a CSV of numbers,
text categories and empty cells with the jobs API on the embedded queue and the SQLite
prediction store. The README's other lines (`make`, `copier update`, `docker`, `alembic`) start
or change the project rather than use it: the live stack, update, image and store tests run them.
"""

from __future__ import annotations

import csv
import io
import json
import re
import stat
import subprocess
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import render, system_tool
from tests.test_live_mixed_types import write_training_csv
from tests.test_live_stack import IRIS_CLASSES, IRIS_ROWS, Stack, trained_and_serving

pytestmark = pytest.mark.live  # rendered services on loopback ports (pytest -m 'not live')

PROJECTS = {
    "defaults": {},
    "csv-jobs-store": dict(
        training_data="csv", target_column="churned", task_queue="sqlite", prediction_store="sqlite"
    ),
}
README_PORT = 5000  # public_port's default: the port the README's URLs name
WITHIN = 120  # seconds for a queued job to be done, or a prediction to be recorded
PASTE_WITHIN = 300  # seconds for one paste of the README's commands to run
# Printed after each pasted command, with its exit status, to tell their outputs apart.
MARKER = "@@readme-example-exit@@"


@dataclass
class Pasted:
    """One command of the README as pasted, and what it printed."""

    command: str
    status: int
    output: str

    @property
    def path(self) -> str:
        """The path of the service's URL it names ('' for the batch command line)."""
        found = re.search(rf"http://127\.0\.0\.1:{README_PORT}(/[^\s'\"]*)", self.command)
        return found.group(1) if found else ""

    def json(self) -> Any:
        document = json.loads(self.output)
        assert "error" not in document, (self.command, document)
        return document


def shell_commands(readme: str) -> list[str]:
    """The commands of the README's bash blocks, continuation lines joined, comments left out."""
    blocks = re.findall(r"^```bash\n(.*?)^```$", readme, re.MULTILINE | re.DOTALL)
    lines = [line for block in blocks for line in re.sub(r"\\\n", " ", block).splitlines()]
    return [line for line in lines if line.strip() and not line.lstrip().startswith("#")]


def examples(project: Path) -> list[str]:
    """The README's commands that call the service or the batch command line."""
    slug = tomllib.loads((project / "pyproject.toml").read_text())["project"]["name"]
    # Requests (curl, or the example row piped into it, or a job's id kept), and the command line.
    starts = ("curl ", ".venv/bin/python -c ", "job=$(", f".venv/bin/{slug} ")
    return [
        command
        for command in shell_commands((project / "README.md").read_text())
        if command.startswith(starts)
    ]


def paste(project: Path, port: int, commands: list[str]) -> list[Pasted]:
    """`commands` run one after another in one bash session, as pasted into a terminal."""
    script = "".join(
        f"{command.replace(f'127.0.0.1:{README_PORT}', f'127.0.0.1:{port}')}\n"
        f"printf '\\n{MARKER} %d\\n' $?\n"
        for command in commands
    )
    bash = subprocess.run(
        ["bash", "-o", "pipefail"],
        input=script,
        cwd=project,
        capture_output=True,
        text=True,
        timeout=PASTE_WITHIN,
    )
    assert bash.returncode == 0, bash.stderr
    chunks = re.split(rf"\n{MARKER} (\d+)\n", bash.stdout)
    assert len(chunks) == 2 * len(commands) + 1 and chunks[-1] == "", bash.stdout
    pasted = [
        Pasted(command, int(status), output)
        for command, output, status in zip(commands, chunks[:-1:2], chunks[1::2], strict=True)
    ]
    for each in pasted:
        assert each.status == 0, f"{each.command}\nexit {each.status}\n{bash.stderr}"
    return pasted


def until(check: Callable[[], Any], what: str) -> Any:
    """`check()`'s first true answer, within WITHIN seconds."""
    deadline = time.monotonic() + WITHIN
    while not (answer := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {WITHIN} s")
        time.sleep(0.2)
    return answer


def install_venv(project: Path, service_bin: Path) -> None:
    """`.venv` as `make install` leaves it, for the README's `.venv/bin/...` lines, without
    installing anything: a virtual environment that sees the shared service environment's
    packages and the project's src/ (as an editable install does), with the console script
    pip writes for each of the project's [project.scripts]."""
    venv = project / ".venv"
    # Made by the service environment's Python, so that both are the same version.
    subprocess.run([service_bin / "python", "-m", "venv", "--without-pip", venv], check=True)
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"

    def site_packages(python: Path) -> str:
        return subprocess.run(
            [python, "-c", purelib], capture_output=True, text=True, check=True
        ).stdout.strip()

    (Path(site_packages(venv / "bin" / "python")) / "_project.pth").write_text(
        f"import site; site.addsitedir({site_packages(service_bin / 'python')!r})\n"
        f"{project / 'src'}\n"
    )
    scripts = tomllib.loads((project / "pyproject.toml").read_text())["project"]["scripts"]
    for name, target in scripts.items():
        module, function = target.split(":")
        script = venv / "bin" / name
        script.write_text(
            f"#!{venv / 'bin' / 'python'}\nimport sys\nfrom {module} import {function}\n"
            f"sys.exit({function}())\n"
        )
        script.chmod(script.stat().st_mode | stat.S_IXUSR)


def write_tables(project: Path, target: str) -> list[dict[str, str]]:
    """The user's rows.csv (an id, then the features) and labelled.csv (the features and the
    target) the README's commands read; the rows, target included."""
    if (project / "data" / "train.csv").exists():
        with (project / "data" / "train.csv").open() as table:
            rows = list(csv.DictReader(table))[:5]
    else:
        rows = [{**row, target: label} for row, label in zip(IRIS_ROWS, IRIS_CLASSES, strict=True)]
    features = [name for name in rows[0] if name != target]
    for name, columns, with_id in [("rows", features, True), ("labelled", [*rows[0]], False)]:
        with (project / f"{name}.csv").open("w", newline="") as table:
            writer = csv.writer(table)
            writer.writerow([*(["id"] if with_id else []), *columns])
            for index, row in enumerate(rows):
                writer.writerow([*([f"r{index}"] if with_id else []), *(row[c] for c in columns)])
    return rows


@pytest.fixture(scope="module", params=list(PROJECTS))
def stack(request, copier_template, tmp_path_factory, service_bin) -> Iterator[Stack]:
    system_tool("curl")
    system_tool("envsubst")
    system_tool("nginx")
    folder = tmp_path_factory.mktemp("readme")
    project = render(copier_template, folder / "project", PROJECTS[request.param])
    if request.param == "csv-jobs-store":
        write_training_csv(project / "data" / "train.csv")
    install_venv(project, service_bin)
    with trained_and_serving(project, service_bin) as running:
        yield running


def test_the_readme_examples_run_as_pasted_and_answer_sensibly(stack):
    project = stack.project
    metadata = json.loads((project / "models" / "metadata.json").read_text())
    target, classes = metadata["target_name"], metadata.get("classes")
    rows = write_tables(project, target)
    commands = examples(project)
    pasted = paste(project, stack.port, commands)
    by_path: dict[str, list[Pasted]] = {}
    for each in pasted:
        by_path.setdefault(each.path, []).append(each)

    # The README shows each API the project serves, with the project's own feature names.
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    shown = {"/model", *(f"/{api}" for api in answers["apis"] if api != "jobs")}
    if "jobs" in answers["apis"]:
        shown |= {"/jobs", "/jobs/$job", "/jobs/train"}
    if answers["prediction_store"] != "none":
        shown |= {"/predictions?limit=2", "/drift?rows=5000"}
    assert set(by_path) == {"", *shown}, commands

    assert by_path["/model"][0].json()["feature_names"] == metadata["feature_names"]
    (predicted,) = by_path["/predict"]
    expected = predicted.json()["prediction"]
    if "-d @-" in predicted.command:  # the example row training recorded
        assert expected in classes, expected
    else:  # the README's literal row: the first iris flower
        assert expected == "setosa"
    if classes:
        (probabilities,) = by_path["/predict_proba"]
        answer = probabilities.json()["probabilities"]
        assert set(answer) == set(classes)
        assert max(answer, key=answer.get) == expected
        assert sum(answer.values()) == pytest.approx(1)
    (evaluated,) = by_path["/evaluate"]
    answer = evaluated.json()
    assert answer["n_rows"] == 1 and set(answer["metrics"]) <= set(metadata["metrics"]), answer

    check_batch_commands(project, metadata, rows, by_path[""])
    if "jobs" in answers["apis"]:
        check_jobs(stack, by_path, len(rows), expected)
    if answers["prediction_store"] != "none":
        check_the_store(stack, *by_path["/predictions?limit=2"])
        # Pasted after the retraining job: the new version may have no stored rows yet.
        drift = json.loads(by_path["/drift?rows=5000"][0].output)  # a refusal is an answer
        if "error" in drift:
            assert "no stored predictions" in drift["error"]["message"], drift
        else:
            assert set(drift["features"]) == set(metadata["feature_names"]), drift


def check_batch_commands(
    project: Path, metadata: dict[str, Any], rows: list[dict[str, str]], pasted: list[Pasted]
) -> None:
    target = metadata["target_name"]
    to_file, to_stdout, evaluated = pasted
    assert "-o predictions.csv" in to_file.command and to_file.output == ""
    with (project / "predictions.csv").open() as table:
        written = list(csv.DictReader(table))
    assert [list(row) for row in written] == [[target]] * len(rows)
    if target == "species":
        assert [row[target] for row in written] == IRIS_CLASSES
    # -o - --keep id: the same predictions on standard output, each beside its row's id.
    assert "-o - --keep id" in to_stdout.command
    kept = list(csv.DictReader(io.StringIO(to_stdout.output)))
    assert kept == [{"id": f"r{i}", target: row[target]} for i, row in enumerate(written)]
    # evaluate: the holdout's metrics, on the labelled rows.
    assert "evaluate labelled.csv" in evaluated.command
    metrics = json.loads(evaluated.output)
    assert set(metrics) == set(metadata["metrics"]), metrics
    if target == "species":
        assert metrics["accuracy"] == 1.0


def check_jobs(stack: Stack, by_path: dict[str, list[Pasted]], n_rows: int, expected: Any) -> None:
    # The rows queued as JSON, the id kept in $job, silently; then the job read back with it.
    kept, *csvs = by_path["/jobs"]
    assert kept.command.startswith("job=$(") and kept.output == "", kept
    (read,) = by_path["/jobs/$job"]
    job = read.json()
    assert job["status"] in {"queued", "running", "done"}, job

    def read_again() -> dict[str, Any] | None:
        # The same line, pasted again in a session that kept the same id.
        again = paste(stack.project, stack.port, [f"job={job['job_id']}", read.command])[1].json()
        return again if again["status"] == "done" else None

    assert until(read_again, read.command)["predictions"] == [expected, expected]
    # rows.csv as the body and as a form upload, then the retraining: each accepted, then done.
    assert len(csvs) == 2, csvs
    for each in [*csvs, *by_path["/jobs/train"]]:
        accepted = each.json()
        assert accepted["status"] == "queued", accepted
        assert accepted["status_url"] == f"/jobs/{accepted['job_id']}", accepted

        def finished(url: str = accepted["status_url"]) -> dict[str, Any] | None:
            answer = stack.request("GET", url).json()
            assert answer["status"] in {"queued", "running", "done"}, answer
            return answer if answer["status"] == "done" else None

        done = until(finished, each.command)
        if each in csvs:
            assert len(done["predictions"]) == n_rows, done


def check_the_store(stack: Stack, listed: Pasted) -> None:
    # The /predict and /predict_proba above, recorded within a flush interval: the same line,
    # pasted again until they are, lists the two, newest first.
    listed.json()

    def two_records() -> list[dict[str, Any]] | None:
        answer = paste(stack.project, stack.port, [listed.command])[0].json()
        return answer["predictions"] if len(answer["predictions"]) == 2 else None

    newest, older = until(two_records, listed.command)
    assert [older["endpoint"], newest["endpoint"]] == ["/predict", "/predict_proba"], newest
    assert newest["id"] > older["id"]
