"""Mixed-type features through the production stack: a CSV of numbers, text categories and
empty cells trains, serves, and answers rows sent as objects with strings exactly as
scikit-learn predicts them, through nginx, gunicorn and supervisord on loopback.

One stack (the defaults with training_data=csv: the NumPy artifact), started once.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import render, run_gate, system_tool
from tests.test_live_stack import Stack, trained_and_serving

pytestmark = pytest.mark.live  # rendered services on loopback ports (pytest -m 'not live')

FEATURE_TYPES = {
    "age": "number",
    "income": "number",
    "tenure": "number",
    "plan": "category",
    "region": "category",
}

# What scikit-learn predicts for the project's holdout rows, computed in the service's own
# environment from the project's own code: the pipeline refitted as training fits it.
SKLEARN_ON_THE_HOLDOUT = """
import json
from sklearn.model_selection import train_test_split
from iris_classifier import training
from iris_classifier.data import load_training_data
from iris_classifier.pipeline import build_pipeline

data = load_training_data()
x_train, x_holdout, y_train, _ = train_test_split(
    data.features, data.target, test_size=training.HOLDOUT_FRACTION,
    random_state=training.RANDOM_STATE, stratify=data.target,
)
pipeline = build_pipeline(data.feature_types).fit(x_train, y_train)
complete = [all(v == v and v != "" for v in row) for row in x_holdout.tolist()]
rows = [dict(zip(data.feature_names, row)) for row in x_holdout[complete].tolist()]
print(json.dumps({"rows": rows, "predictions": pipeline.predict(x_holdout[complete]).tolist()}))
"""


def write_training_csv(path: Path) -> None:
    """400 customers: three numbers, two text categories, empty cells, a yes/no target."""
    rng = np.random.default_rng(0)
    n = 400
    age = rng.integers(18, 80, n)
    income = rng.normal(50_000, 15_000, n).round(2)
    tenure = rng.integers(0, 20, n)
    plan = rng.choice(["basic", "plus", "premium"], n)
    region = rng.choice(["north", "south", "east", "west"], n)
    score = (age - 45) / 15 + (plan == "premium") * 1.5 - (region == "south") + rng.normal(0, 1, n)
    churned = np.where(score > 0.3, "yes", "no")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as table:
        writer = csv.writer(table)
        writer.writerow([*FEATURE_TYPES, "churned"])
        for index in range(n):
            row = [age[index], income[index], tenure[index], plan[index], region[index]]
            if index % 11 == 5:
                row[index % 5] = ""  # an empty cell, in each column by turns
            writer.writerow([*row, churned[index]])


@pytest.fixture(scope="module")
def stack(copier_template, tmp_path_factory, service_bin) -> Iterator[Stack]:
    system_tool("envsubst")
    system_tool("nginx")
    answers = {"training_data": "csv", "target_column": "churned"}
    project = render(copier_template, tmp_path_factory.mktemp("mixed") / "project", answers)
    write_training_csv(project / "data" / "train.csv")
    with trained_and_serving(project, service_bin) as running:
        yield running


def test_types_are_inferred_and_recorded(stack):
    metadata = json.loads((stack.project / "models" / "metadata.json").read_text())
    assert metadata["feature_types"] == FEATURE_TYPES
    assert metadata["categories"] == {
        "plan": ["basic", "plus", "premium"],
        "region": ["east", "north", "south", "west"],
    }
    assert metadata["artifact"]["format"] == "numpy"


def test_holdout_rows_as_objects_get_scikit_learns_predictions(stack, service_bin):
    run = run_gate(
        [str(service_bin / "python"), "-c", SKLEARN_ON_THE_HOLDOUT],
        stack.project,
        {**os.environ, "PYTHONPATH": "src"},
    )
    expected = json.loads(run.splitlines()[-1])
    assert len(expected["rows"]) > 50
    assert isinstance(expected["rows"][0]["plan"], str)
    response = stack.post_json("/predict", {"rows": expected["rows"]})
    assert response.status == 200, response.body
    assert response.json()["predictions"] == expected["predictions"]


def test_an_unknown_category_is_answered_and_reported(stack):
    metadata = json.loads((stack.project / "models" / "metadata.json").read_text())
    row = {**metadata["example"], "region": "atlantis"}
    response = stack.post_json("/predict", {"row": row})
    assert response.status == 200
    answer = response.json()
    assert answer["prediction"] in {"yes", "no"}
    assert answer["unknown_categories"] == {"region": ["atlantis"]}


def test_a_number_in_a_text_column_is_refused_by_name(stack):
    metadata = json.loads((stack.project / "models" / "metadata.json").read_text())
    response = stack.post_json("/predict", {"rows": [{**metadata["example"], "plan": 3}]})
    assert response.status == 422
    message = response.json()["error"]["message"]
    assert message == "rows[0]['plan'] must be a string, got a number"


def test_the_openapi_document_lists_types_and_categories(stack):
    schemas = stack.request("GET", "/openapi.json").json()["components"]["schemas"]
    properties = schemas["Features"]["properties"]
    assert {name: schema["type"] for name, schema in properties.items()} == {
        "age": "number",
        "income": "number",
        "tenure": "number",
        "plan": "string",
        "region": "string",
    }
    assert properties["plan"]["x-categories"] == ["basic", "plus", "premium"]
    assert isinstance(schemas["Features"]["example"]["region"], str)
