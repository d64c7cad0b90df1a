"""The generator page's server: Copier's questionnaire as the page sees it, and its limits.

The questions are checked against Copier's own prompt loop (Worker._ask): the same defaults,
the same refusals word for word. Renders here stop before the template runs (refused answers,
a timeout); tests/test_generator_page.py renders for real, through a browser.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from copier._main import Worker
from werkzeug.exceptions import HTTPException

from generator.app import Renders, create_app
from tests.conftest import copy_template


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    return copy_template(tmp_path_factory.mktemp("generator") / "template")


@pytest.fixture(scope="module")
def app(template, tmp_path_factory):
    scratch = tmp_path_factory.mktemp("scratch")
    app = create_app(str(template), scratch=str(scratch))
    app.config["scratch"] = scratch
    yield app
    app.extensions["questionnaire"].close()


@pytest.fixture()
def client(app):
    return app.test_client()


def page_state(client, **answers) -> dict:
    response = client.post("/api/state", json={"answers": answers})
    assert response.status_code == 200, response.text
    return {item["name"]: item for item in response.json["questions"]} | {
        "errors": response.json["errors"]
    }


def copier_answers(template: Path, tmp_path: Path, **data) -> dict:
    """What `copier copy --defaults --data ...` asks and records, or its refusal."""
    with Worker(
        src_path=str(template), dst_path=tmp_path / "nowhere", data=data, defaults=True
    ) as worker:
        worker._ask()
        return dict(worker.answers.combined)


def test_the_page_offers_copier_s_defaults(app, client, template, tmp_path):
    walk = app.extensions["questionnaire"].walk({})
    expected = copier_answers(template, tmp_path)
    assert walk.answers == {name: expected[name] for name in walk.answers}
    state = page_state(client)
    assert state["errors"] == {}
    assert state["public_port"]["value"] == "5000"  # the text the terminal pre-fills
    assert state["apis"]["value"] == ["predict", "predict_proba", "evaluate"]
    assert state["project_name"]["message"].startswith("Project name, in words")
    # Computed values (`when: false`) are no questions; `when` ones are there, hidden.
    assert "package_name" not in state
    assert state["dataset_path"]["visible"] is False


REFUSED = [
    pytest.param({"public_port": "80"}, "public_port", id="port-below-1024"),
    pytest.param({"project_name": "2 Fast"}, "project_name", id="bad-slug"),
    pytest.param({"gunicorn_workers": "-1"}, "gunicorn_workers", id="negative-workers"),
    pytest.param(
        {"estimator": "gradient_boosting", "model_format": "onnx"}, "model_format", id="onnx"
    ),
    pytest.param(
        {"problem_type": "regression", "apis": ["predict", "predict_proba"]},
        "apis",
        id="proba-for-regression",
    ),
    pytest.param(
        {"web_server": "nginx", "process_manager": "none"}, "process_manager", id="nginx-alone"
    ),
    pytest.param({"apis": []}, "apis", id="no-api"),
]


@pytest.mark.parametrize(("answers", "question"), REFUSED)
def test_a_refusal_reads_as_copier_words_it(client, template, tmp_path, answers, question):
    with pytest.raises(ValueError) as copier_refusal:
        copier_answers(template, tmp_path, **answers)
    state = page_state(client, **answers)
    assert state["errors"] == {question: str(copier_refusal.value)}
    assert state[question]["error"] == str(copier_refusal.value)
    assert state[question]["value"] == answers[question]  # shown as given, to be corrected


def test_text_the_terminal_cannot_parse_is_invalid_input(client):
    assert page_state(client, public_port="five")["errors"] == {"public_port": "Invalid input"}


def test_earlier_answers_change_choices_defaults_and_questions(client):
    state = page_state(client, problem_type="regression", web_server="gunicorn")
    choices = {choice["value"]: choice for choice in state["apis"]["choices"]}
    assert choices["predict_proba"]["disabled"].startswith("predict_proba needs a classifier")
    assert state["apis"]["value"] == ["predict", "evaluate"]
    assert "Ridge" in state["estimator"]["choices"][0]["label"]
    assert state["process_manager"]["value"] == "none"  # a Jinja default reading web_server
    assert state["kubernetes"]["visible"] is True

    batch = page_state(client, serve_model=False, web_server="gunicorn", public_port="80")
    assert batch["errors"] == {}  # answers to questions no longer asked are dropped
    assert not batch["web_server"]["visible"] and not batch["apis"]["visible"]


def test_only_the_template_s_questions_reach_copier(app):
    walk = app.extensions["questionnaire"].walk({"log_level": "DEBUG"})
    assert walk.data == {"log_level": "DEBUG"}
    client = app.test_client()
    response = client.post("/api/state", json={"answers": {"../../etc": "x", "log_level": "X"}})
    assert response.json["errors"] == {"log_level": response.json["errors"]["log_level"]}
    assert client.post("/api/state", json=["not", "a", "mapping"]).status_code == 400


def test_refused_answers_are_not_rendered(app, client):
    response = client.post("/download", data={"answers": '{"answers": {"public_port": "80"}}'})
    assert response.status_code == 422
    assert "public_port" in response.json["errors"]
    assert not any(app.config["scratch"].iterdir())


def test_a_render_over_its_time_is_stopped_and_leaves_nothing(template, tmp_path):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    app = create_app(str(template), render_timeout=0.2, scratch=str(scratch))
    try:
        response = app.test_client().post("/api/preview", json={"answers": {}})
    finally:
        app.extensions["questionnaire"].close()
    assert response.status_code == 504
    assert "longer than 0.2 s" in response.json["error"]
    assert not any(scratch.iterdir())


def test_one_render_at_a_time_per_client_and_a_limit_for_all(app):
    renders = Renders(limit=1)
    with app.test_request_context(), renders.slot("alice", wait=0.1):
        with pytest.raises(HTTPException) as again, renders.slot("alice", wait=0.1):
            pass
        assert again.value.response.status_code == 429
        with pytest.raises(HTTPException) as other, renders.slot("bob", wait=0.1):
            pass
        assert other.value.response.status_code == 503
    with app.test_request_context(), renders.slot("bob", wait=0.1):
        pass  # both slots were given back
