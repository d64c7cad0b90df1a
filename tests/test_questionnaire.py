"""The questionnaire: defaults render a service; impossible answers are refused with a message."""

from __future__ import annotations

import pytest
import yaml

REFUSED = [
    pytest.param(
        {"problem_type": "regression", "apis": ["predict", "predict_proba"]},
        "predict_proba needs a classifier",
        id="predict_proba-with-regression",
    ),
    pytest.param(
        {"serve_model": False, "apis": ["predict"]},
        "need serve_model=true",
        id="apis-without-serving",
    ),
    pytest.param(
        {"serve_model": False, "openapi_docs": True},
        "OpenAPI docs need serve_model=true",
        id="docs-without-serving",
    ),
    pytest.param({"apis": []}, "Choose at least one API", id="serving-without-apis"),
    pytest.param({"project_name": "2 Fast"}, "must start with a letter", id="bad-slug"),
    pytest.param({"project_name": "!!!"}, "at least one letter", id="empty-slug"),
    pytest.param({"description": "  "}, "short description", id="empty-description"),
    pytest.param(
        {"training_data": "csv", "target_column": " "}, "cannot be empty", id="empty-target"
    ),
    pytest.param(
        {"training_data": "csv", "dataset_path": "data/train.xlsx"},
        "must be a .csv file",
        id="not-a-csv",
    ),
    pytest.param(
        {"training_data": "csv", "dataset_path": "../elsewhere/train.csv"},
        "inside the project",
        id="csv-outside-project",
    ),
    pytest.param({"python_version": "3.9"}, "Invalid choice", id="unsupported-python"),
]


@pytest.mark.parametrize(("answers", "message"), REFUSED)
def test_impossible_answers_are_refused_with_a_message(copier, tmp_path, answers, message):
    with pytest.raises(ValueError, match=message):
        copier.copy(tmp_path / "project", **answers)
    assert not (tmp_path / "project" / "pyproject.toml").exists()


def test_defaults_give_the_served_classifier(copier, tmp_path):
    project = copier.copy(tmp_path / "project")
    answers = yaml.safe_load((project.path / ".copier-answers.yml").read_text())
    assert answers["problem_type"] == "classification"
    assert answers["serve_model"] is True
    assert answers["apis"] == ["predict", "predict_proba", "evaluate"]
    assert answers["openapi_docs"] is True
    assert answers["model_format"] == "skops"
    # Derived names are computed, not asked, so they are not stored as answers.
    assert "package_name" not in answers
    assert (project.path / "src" / "iris_classifier" / "app.py").exists()


def test_regression_defaults_leave_out_predict_proba(copier, tmp_path):
    project = copier.copy(tmp_path / "project", problem_type="regression")
    answers = yaml.safe_load((project.path / ".copier-answers.yml").read_text())
    assert answers["apis"] == ["predict", "evaluate"]
    assert not (project.path / "src" / "iris_classifier" / "api" / "predict_proba.py").exists()


def test_batch_only_projects_have_no_web_code(copier, tmp_path):
    project = copier.copy(tmp_path / "project", serve_model=False)
    package = project.path / "src" / "iris_classifier"
    assert not (package / "api").exists()
    assert not (package / "app.py").exists()
    assert not (project.path / "tests" / "api").exists()
    assert "flask" not in (project.path / "pyproject.toml").read_text()
