"""The generator page in a real browser: Debian's headless Chromium, driven through Selenium.

One page answers a few questions (one refused, then corrected), previews the files and
downloads the zip; the project in it equals `copier copy` with the same answers, byte for
byte, passes its own lint and tests, and takes a `copier update` after `git init`. Then a
question added to a copy of copier.yml shows on the page with no other edit.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from copier import run_copy, run_update
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait
from werkzeug.serving import make_server

from generator.app import create_app
from tests.conftest import (
    TEMPLATE_VERSION,
    copy_template,
    snapshot_template,
    system_tool,
)
from tests.test_render_matrix import assert_passes_its_own_gates

pytestmark = pytest.mark.browser

# What the page is given, as `copier copy --data` takes it (the port as typed, a string).
ANSWERS = {
    "project_name": "Churn Scorer",
    "problem_type": "regression",
    "public_port": "8080",
    "web_server": "gunicorn",
}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """The template as a git repository with one tagged version, as users clone it."""
    return snapshot_template(tmp_path_factory.mktemp("page") / "template")


@contextmanager
def serve(template: Path) -> Iterator[str]:
    """The page for `template` on a free loopback port, in a thread; its base URL."""
    app = create_app(str(template))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        thread.join()
        app.extensions["questionnaire"].close()


@pytest.fixture(scope="module")
def downloads(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads) -> Iterator[webdriver.Chrome]:
    """Debian's chromium and chromedriver, found on PATH: Selenium Manager downloads nothing."""
    chromium, driver = system_tool("chromium"), system_tool("chromedriver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SE_OFFLINE", "true")  # and should Selenium Manager run anyway, offline
        chrome = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    chrome.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    try:
        yield chrome
    finally:
        chrome.quit()


def settled(browser: webdriver.Chrome) -> WebDriverWait:
    # The page redraws a question when an answer changes: an element found just before a
    # redraw is stale, and the next poll finds the new one.
    return WebDriverWait(browser, 30, ignored_exceptions=(StaleElementReferenceException,))


def question(browser: webdriver.Chrome, name: str):
    return browser.find_element(By.ID, f"q-{name}")


def pick(browser: webdriver.Chrome, name: str, label_text: str) -> None:
    """Click the choice labelled `label_text`, as copier.yml words it."""
    for label in question(browser, name).find_elements(By.TAG_NAME, "label"):
        if label.text.strip().startswith(label_text):
            label.find_element(By.TAG_NAME, "input").click()
            return
    raise AssertionError(f"no choice {label_text!r} for {name}")


def type_into(browser: webdriver.Chrome, name: str, text: str) -> None:
    field = browser.find_element(By.ID, f"input-{name}")
    field.clear()
    field.send_keys(text, Keys.TAB)  # the answer is sent when the field is left


def error_of(browser: webdriver.Chrome, name: str) -> str:
    return browser.find_element(By.ID, f"error-{name}").text


@pytest.fixture(scope="module")
def downloaded(template, browser, downloads, tmp_path_factory) -> Path:
    """The page driven like a user, its zip downloaded and unzipped; the project's folder."""
    with serve(template) as base:
        browser.get(base)
        settled(browser).until(lambda _: question(browser, "project_name").is_displayed())
        type_into(browser, "project_name", ANSWERS["project_name"])
        label = next(  # the estimator's label follows the problem type
            label.text
            for label in question(browser, "estimator").find_elements(By.TAG_NAME, "label")
        )
        assert "LogisticRegression" in label
        pick(browser, "problem_type", "Regression (a number per row)")
        settled(browser).until(
            lambda _: (
                "Ridge" in question(browser, "estimator").text
                and "needs a classifier" in question(browser, "apis").text
            )
        )

        type_into(browser, "public_port", "80")
        settled(browser).until(lambda _: error_of(browser, "public_port"))
        assert error_of(browser, "public_port") == (
            "Validation error for question 'public_port': public_port must be between 1024 and"
            " 65535, got 80: the service runs as an unprivileged user, which cannot listen below"
            " 1024. Publish it on a low port from outside instead (docker run -p 80:5000)."
        )
        assert not browser.find_element(By.ID, "download").is_enabled()
        type_into(browser, "public_port", ANSWERS["public_port"])
        settled(browser).until(lambda _: not error_of(browser, "public_port"))

        pick(
            browser,
            "web_server",
            "gunicorn alone (an ingress or load balancer is already in front)",
        )
        settled(browser).until(lambda _: question(browser, "kubernetes").is_displayed())
        supervisor, none = question(browser, "process_manager").find_elements(By.TAG_NAME, "input")
        assert none.is_selected() and not supervisor.is_selected()  # the default follows

        settled(browser).until(lambda _: browser.find_element(By.ID, "preview").is_enabled())
        browser.find_element(By.ID, "preview").click()
        WebDriverWait(browser, 180).until(lambda _: browser.find_element(By.ID, "tree").text)
        preview = browser.find_element(By.ID, "tree").get_attribute("data-files")

        browser.find_element(By.ID, "download").click()
        archive = downloads / "churn-scorer.zip"
        deadline = time.monotonic() + 180
        while not archive.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert archive.exists(), f"no download in {sorted(downloads.iterdir())}"
    unzipped = tmp_path_factory.mktemp("unzipped")
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(unzipped)
        for info in zipped.infolist():  # extractall drops the modes the zip keeps
            mode = info.external_attr >> 16 & 0o777
            if mode:
                (unzipped / info.filename).chmod(mode)
    project = unzipped / "churn-scorer"
    assert json.loads(preview) == tree(project)
    return project


def tree(root: Path) -> list[str]:
    return sorted(
        f"{path.relative_to(root).as_posix()}{'/' if path.is_dir() else ''}"
        for path in root.rglob("*")
    )


def test_the_zip_is_copier_copy_byte_for_byte(downloaded, template, tmp_path):
    copied = tmp_path / "copied"
    run_copy(str(template), copied, data=ANSWERS, defaults=True, unsafe=True, quiet=True)
    assert tree(downloaded) == tree(copied)
    for relative in tree(copied):
        left, right = downloaded / relative, copied / relative
        assert left.stat().st_mode == right.stat().st_mode, relative
        if left.is_file():
            assert left.read_bytes() == right.read_bytes(), relative
    answers = yaml.safe_load((downloaded / ".copier-answers.yml").read_text())
    assert answers["_src_path"] == str(template)
    assert answers["_commit"] == TEMPLATE_VERSION
    assert answers["public_port"] == 8080 and answers["process_manager"] == "none"


def test_the_downloaded_project_passes_its_own_gates(downloaded, service_bin, tmp_path):
    project = shutil.copytree(downloaded, tmp_path / "churn-scorer")
    assert_passes_its_own_gates(project, service_bin)


def test_copier_update_works_in_the_unzipped_project(downloaded, tmp_path):
    project = shutil.copytree(downloaded, tmp_path / "churn-scorer")
    git(project, "init", "-q")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "generated")
    run_update(
        str(project),
        data={"log_level": "DEBUG"},
        defaults=True,
        unsafe=True,
        quiet=True,
        overwrite=True,
    )
    assert "level=DEBUG" in (project / "deploy" / "logging.conf").read_text().replace(" ", "")
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["log_level"] == "DEBUG" and answers["public_port"] == 8080
    assert "UU " not in git(project, "status", "--porcelain")  # no conflict


def test_a_question_added_to_copier_yml_shows_on_the_page(browser, tmp_path):
    template = copy_template(tmp_path / "template")
    with (template / "copier.yml").open("a") as questionnaire:
        questionnaire.write(
            "\nci_provider:\n"
            "  type: str\n"
            "  help: Continuous integration service for the project\n"
            "  choices:\n"
            "    none: none\n"
            "    GitHub Actions: github\n"
            "  default: none\n"
            "\nci_badge:\n"
            "  type: bool\n"
            "  help: Show the CI status badge in the README?\n"
            "  when: \"{{ ci_provider != 'none' }}\"\n"
            "  default: true\n"
        )
    with serve(template) as base:
        browser.get(base)
        settled(browser).until(lambda _: question(browser, "ci_provider").is_displayed())
        assert "Continuous integration service" in question(browser, "ci_provider").text
        assert not question(browser, "ci_badge").is_displayed()
        pick(browser, "ci_provider", "GitHub Actions")
        settled(browser).until(lambda _: question(browser, "ci_badge").is_displayed())
        assert "CI status badge" in question(browser, "ci_badge").text
