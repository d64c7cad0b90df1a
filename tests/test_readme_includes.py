"""The generated README is assembled from includes/readme/: each section a file of its own.

template/README.md.jinja keeps the order and the conditions; the section files sit beside
template/, where Copier's Jinja loader (rooted at the template repository) reaches them and its
render never does. Two renders, a few seconds.
"""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO_ROOT

README = REPO_ROOT / "template" / "README.md.jinja"
SECTIONS = REPO_ROOT / "includes" / "readme"
INCLUDE = re.compile(r'\{%-?\s*include\s+"([^"]+)"')
# Whitespace control does not cross an include: a section opening with `{%-` would no longer
# trim the blank line before it, and one closing on `-%}` would swallow its own last newline.
TRIMS_BEFORE = re.compile(r"^\{[%{#]-")
TRIMS_AFTER = re.compile(r"-[%}#]\}$")


def included() -> list[str]:
    return INCLUDE.findall(README.read_text())


def test_every_section_file_is_included_once():
    names = included()
    assert len(names) == len(set(names))
    on_disk = {f"includes/readme/{path.name}" for path in SECTIONS.glob("*")}
    assert set(names) == on_disk


def test_section_files_end_with_one_newline_and_trim_nothing_outside():
    for path in SECTIONS.glob("*"):
        text = path.read_text()
        assert text.endswith("\n") and not text.endswith("\n\n"), path.name
        lines = text.splitlines()
        assert not TRIMS_BEFORE.search(lines[0]), path.name
        assert not TRIMS_AFTER.search(lines[-1]), path.name


# Between them, every optional section (kubernetes runs gunicorn alone, so no "gunicorn or
# granian"), each with the sections its answers leave out.
RENDERS = {
    "nginx-jobs-store": (
        dict(task_queue="sqlite", prediction_store="sqlite", apis=["predict", "jobs"]),
        {"kubernetes"},
    ),
    "kubernetes": (
        dict(kubernetes=True, web_server="gunicorn", process_manager="none"),
        {"wsgi_server", "jobs", "prediction_store"},
    ),
}


@pytest.mark.parametrize(("answers", "left_out"), RENDERS.values(), ids=RENDERS.keys())
def test_sections_render_in_the_readme_and_never_as_files(copier, tmp_path, answers, left_out):
    project = copier.copy(tmp_path / "project", **answers).path
    readme = (project / "README.md").read_text()
    # The first section's first line is the project's name, a Jinja expression: the others
    # open on a plain heading.
    absent = {
        name.removeprefix("includes/readme/").removesuffix(".md.jinja")
        for name in included()[1:]
        if f"\n{(REPO_ROOT / name).read_text().splitlines()[0]}\n" not in readme
    }
    assert absent == left_out
    leaked = [
        path.relative_to(project)
        for path in project.rglob("*")
        if path.name.endswith(".jinja") or path.name == "includes"
    ]
    assert not leaked
