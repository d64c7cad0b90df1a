"""The generated project's CI, pre-commit hooks and `make clean`, checked offline.

The workflows are validated against the schemas GitHub Actions and GitLab CI publish, as
check-jsonschema vendors them (nothing downloads). The pre-commit hooks are local ones, so
pre-commit runs them here as it does for a user, without cloning anything.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT, copy_template, mypy_environment, render

BIN = Path(sys.executable).parent
WORKFLOW = ".github/workflows/ci.yml"
GITLAB = ".gitlab-ci.yml"
SCHEMAS = {WORKFLOW: "vendor.github-workflows", GITLAB: "vendor.gitlab-ci"}

CASES = {
    "github": ({}, WORKFLOW),
    "github-csv": ({"training_data": "csv", "dataset_path": "data/raw/train.csv"}, WORKFLOW),
    "github-batch": ({"serve_model": False}, WORKFLOW),
    "gitlab": ({"ci": "gitlab"}, GITLAB),
    "gitlab-csv-onnx-queue": (
        {"ci": "gitlab", "training_data": "csv", "model_format": "onnx", "task_queue": "sqlite"},
        GITLAB,
    ),
    "gitlab-batch": ({"ci": "gitlab", "serve_model": False}, GITLAB),
}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_template(tmp_path_factory.mktemp("ci") / "template")


@pytest.fixture(scope="module")
def projects(template: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("ci-projects")
    return {name: render(template, base / name, answers) for name, (answers, _) in CASES.items()}


def check_schema(path: Path, schema: str) -> subprocess.CompletedProcess[str]:
    command = [str(BIN / "check-jsonschema"), "--builtin-schema", schema, str(path)]
    return subprocess.run(command, capture_output=True, text=True, check=False)


@pytest.mark.parametrize("name", CASES)
def test_the_ci_file_validates_against_its_published_schema(projects, name):
    checked = check_schema(projects[name] / CASES[name][1], SCHEMAS[CASES[name][1]])
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("name", CASES)
def test_ci_runs_the_makefiles_lint_and_tests_and_builds_the_image_where_there_is_one(
    projects, name
):
    project = projects[name]
    ci = yaml.safe_load((project / CASES[name][1]).read_text())
    if CASES[name][1] == WORKFLOW:
        commands = [step.get("run") for step in ci["jobs"]["check"]["steps"] if "run" in step]
    else:
        commands = [
            line for job in ci.values() if isinstance(job, dict) for line in job.get("script", [])
        ]
    assert commands[:3] == ["make install", "make lint", "make test"]
    builds = any("docker" in command for command in commands)
    assert builds == (project / "Dockerfile").exists()
    makefile = (project / "Makefile").read_text()
    for target in ("install", "lint", "test", *(["docker-build", "lock"] if builds else [])):
        if f"make {target}" in " ".join(commands):
            assert f"\n{target}:" in makefile, target


def test_the_image_build_waits_for_the_training_csv(projects):
    # The image trains on the CSV: a project whose data is not committed skips the build.
    step = yaml.safe_load((projects["github-csv"] / WORKFLOW).read_text())["jobs"]["check"]
    (build,) = [s for s in step["steps"] if s.get("run") == "make docker-build"]
    assert build["if"] == "hashFiles('data/raw/train.csv') != ''"
    gitlab = yaml.safe_load((projects["gitlab-csv-onnx-queue"] / GITLAB).read_text())
    assert gitlab["build-image"]["rules"] == [{"exists": ["data/train.csv"]}]


def test_the_schema_refuses_a_broken_workflow(projects, tmp_path):
    # The check can fail: a job without runs-on, a GitLab job named like a global keyword.
    workflow = yaml.safe_load((projects["github"] / WORKFLOW).read_text())
    del workflow["jobs"]["check"]["runs-on"]
    (tmp_path / "ci.yml").write_text(yaml.safe_dump(workflow))
    assert check_schema(tmp_path / "ci.yml", SCHEMAS[WORKFLOW]).returncode == 1
    gitlab = yaml.safe_load((projects["gitlab"] / GITLAB).read_text())
    gitlab["image"] = gitlab.pop("build-image")
    (tmp_path / "gitlab-ci.yml").write_text(yaml.safe_dump(gitlab))
    assert check_schema(tmp_path / "gitlab-ci.yml", SCHEMAS[GITLAB]).returncode == 1


def test_no_ci_no_ci_file(template, tmp_path):
    project = render(template, tmp_path / "project", {"ci": "none"})
    assert not (project / ".github").exists() and not (project / GITLAB).exists()
    assert (project / ".pre-commit-config.yaml").exists()


# The markers `copier update` leaves where the user's and the template's changes meet.
CONFLICT = "a = 1\n<<<<<<< before updating\nb = 2\n=======\nb = 3\n>>>>>>> after updating\n"


@pytest.fixture
def committed(projects, tmp_path) -> Path:
    """The default project as a git repository, as pre-commit needs it."""
    project = tmp_path / "project"
    subprocess.run(["cp", "-a", str(projects["github"]), str(project)], check=True)
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    return project


def pre_commit(project: Path, *arguments: str, **environ: str) -> subprocess.CompletedProcess[str]:
    subprocess.run(["git", "add", "--all"], cwd=project, check=True)
    # Its cache of hook environments, which local hooks leave empty: never the user's own.
    env = {**os.environ, "PRE_COMMIT_HOME": str(project.parent / "pre-commit-home"), **environ}
    command = [str(BIN / "pre-commit"), *arguments]
    return subprocess.run(command, cwd=project, capture_output=True, text=True, env=env)


def test_the_pre_commit_config_is_valid(committed):
    checked = pre_commit(committed, "validate-config")
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("name", ["src/iris_classifier/config.py", "README.md", "Makefile"])
def test_pre_commit_refuses_a_file_with_conflict_markers(committed, name):
    clean = pre_commit(committed, "run", "conflict-markers", "--files", name)
    assert clean.returncode == 0, clean.stdout
    path = committed / name
    path.write_text(path.read_text() + CONFLICT)
    refused = pre_commit(committed, "run", "conflict-markers", "--files", name)
    assert refused.returncode == 1, refused.stdout
    lines = len(path.read_text().splitlines())
    for offset, marker in ((4, "<<<<<<< before updating"), (2, "======="), (0, ">>>>>>> after")):
        assert f"{name}:{lines - offset}:{marker}" in refused.stdout, refused.stdout


def test_pre_commit_lints_as_make_lint_does(committed, service_bin):
    module = "src/iris_classifier/config.py"
    environ = {"VENV": str(service_bin.parent), **mypy_environment()}
    clean = pre_commit(committed, "run", "lint", "--files", module, **environ)
    assert clean.returncode == 0, clean.stdout
    (committed / module).write_text((committed / module).read_text() + "x=[1,\n2]\n")
    refused = pre_commit(committed, "run", "lint", "--files", module, **environ)
    assert refused.returncode == 1 and "ruff format --check" in refused.stdout, refused.stdout


def test_make_clean_removes_caches_and_keeps_the_environment_and_models(committed):
    made = [
        "dist/x.zip",
        ".pytest_cache/v",
        ".ruff_cache/v",
        ".mypy_cache/v",
        "src/iris_classifier/__pycache__/a.pyc",
    ]
    kept = [".venv/lib/__pycache__/b.pyc", "models/model.npz", "tests/test_cli.py"]
    for name in made + kept:
        (committed / name).parent.mkdir(parents=True, exist_ok=True)
        (committed / name).touch()
    subprocess.run(["make", "clean"], cwd=committed, check=True, capture_output=True)
    assert [name for name in made if (committed / name).exists()] == []
    assert [name for name in kept if not (committed / name).exists()] == []


# The template repository's own hooks (.pre-commit-config.yaml at its root).
REPO_HOOKS = REPO_ROOT / ".pre-commit-config.yaml"


def hooks(config: Path) -> dict[str, dict]:
    (repo,) = yaml.safe_load(config.read_text())["repos"]
    return {hook["id"]: hook for hook in repo["hooks"]}


def test_the_template_repos_pre_commit_config_is_valid():
    command = [str(BIN / "pre-commit"), "validate-config", str(REPO_HOOKS)]
    checked = subprocess.run(command, capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_template_repo_refuses_conflict_markers_as_its_projects_do():
    ours = hooks(REPO_HOOKS)["conflict-markers"]
    assert ours == hooks(REPO_ROOT / "template" / ".pre-commit-config.yaml")["conflict-markers"]


@pytest.fixture
def template_repo(tmp_path) -> Path:
    """A repository with the template's hooks and lint settings, and its .venv's ruff."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in (".pre-commit-config.yaml", "pyproject.toml", ".gitignore"):
        (repo / name).write_text((REPO_ROOT / name).read_text())
    (repo / ".venv").symlink_to(BIN.parent)
    (repo / "tests").mkdir()
    (repo / "tests" / "clean.py").write_text('"""Formatted."""\n\nVALUE = [1, 2]\n')
    # A rendered project's module: the render matrix lints it, under its own settings.
    (repo / "template").mkdir()
    (repo / "template" / "module.py").write_text("x=[1,\n2]\n")
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    return repo


def test_the_template_repos_hooks_run_offline_and_refuse(template_repo):
    passed = pre_commit(template_repo, "run", "--all-files")
    assert passed.returncode == 0, passed.stdout
    assert passed.stdout.count("Passed") == 3, passed.stdout
    (template_repo / "tests" / "clean.py").write_text("import os\nx=[1,\n2]\n")
    (template_repo / "README.md").write_text(CONFLICT)
    refused = pre_commit(template_repo, "run", "--all-files")
    assert refused.returncode == 1
    failed = [line for line in refused.stdout.splitlines() if line.endswith("Failed")]
    assert [line.split(".")[0] for line in failed] == [
        "no conflict markers (git merge, copier update)",
        "ruff check",
        "ruff format --check",
    ], refused.stdout
