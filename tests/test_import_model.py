"""Both ways in, through the production stack on loopback: an estimator fitted outside the
project is imported (`make import`) and served without training, and a pipeline edited to
call the user's own function trains (`make train`) and serves.

Two rendered projects: gradient boosting in skops behind nginx and supervisord (the skops
import, then the custom pipeline), and a random forest in ONNX under gunicorn alone (the
.onnx import). Both on the same CSV of numbers, text categories and empty cells.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import render, run_gate, system_tool
from tests.test_live_mixed_types import write_training_csv
from tests.test_live_stack import Stack, wait_until_ready

pytestmark = pytest.mark.live  # rendered services on loopback ports (pytest -m 'not live')

PACKAGE = "iris_classifier"  # the default project name's package
TARGET = "churned"
NUMBERS, TEXTS = ["age", "income", "tenure"], ["plan", "region"]

# The user's own fit, in their own environment (here the template's, which has pandas; the
# service has not): read with pandas, where an empty cell is NaN in the text columns too;
# categories by HistGradientBoosting's native support, columns chosen by name.
FIT_WITH_PANDAS_AND_SAVE_WITH_SKOPS = """
import json, sys
import numpy as np, pandas as pd, skops.io as sio
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

sample, destination = sys.argv[1:]
data = pd.read_csv(sample)
features = data.drop(columns="churned")
encode = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan)
prepare = ColumnTransformer([("texts", encode, ["plan", "region"])], remainder="passthrough")
model = HistGradientBoostingClassifier(categorical_features=[0, 1], random_state=0)
pipeline = Pipeline([("prepare", prepare), ("model", model)]).fit(features, data["churned"])
sio.dump(pipeline, destination)
print(json.dumps(pipeline.predict(features).tolist()))
"""

# The user's own ONNX export (skl2onnx, one named input per column), from arrays read with
# the csv module: an empty text cell is "", the one missing string ONNX graphs take.
FIT_AND_EXPORT_ONNX = """
import csv, json, sys
import numpy as np
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

sample, destination = sys.argv[1:]
with open(sample, newline="") as table:
    header, *rows = list(csv.reader(table))
column = {name: [row[index] for row in rows] for index, name in enumerate(header)}
numbers, texts = ["age", "income", "tenure"], ["plan", "region"]
x = np.empty((len(rows), 5), dtype=object)
for index, name in enumerate(numbers):
    x[:, index] = [float(value) if value else np.nan for value in column[name]]
for index, name in enumerate(texts, start=3):
    x[:, index] = column[name]
encode = Pipeline([
    ("impute", SimpleImputer(missing_values="", strategy="most_frequent")),
    ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
])
prepare = ColumnTransformer([("numbers", SimpleImputer(), [0, 1, 2]), ("texts", encode, [3, 4])])
model = RandomForestClassifier(n_estimators=30, random_state=0)
pipeline = Pipeline([("prepare", prepare), ("model", model)]).fit(x, column["churned"])
inputs = [(name, FloatTensorType([None, 1])) for name in numbers]
inputs += [(name, StringTensorType([None, 1])) for name in texts]
options = {RandomForestClassifier: {"zipmap": False}}  # probabilities as one array
graph = to_onnx(pipeline, initial_types=inputs, options=options)
with open(destination, "wb") as output:
    output.write(graph.SerializeToString())
labels, probabilities = pipeline.predict(x).tolist(), pipeline.predict_proba(x).tolist()
print(json.dumps({"labels": labels, "probabilities": probabilities}))
"""

# The user's own preprocessing, in a module of theirs in the package, which pipeline.py calls.
PREPROCESSING_MODULE = '''"""Our own preprocessing, called by the pipeline (pipeline.py)."""

import numpy as np


def signed_log(values: np.ndarray) -> np.ndarray:
    """Large values compressed, signs kept: sign(x) * log(1 + |x|)."""
    return np.sign(values) * np.log1p(np.abs(values))
'''

THE_SERVED_MODEL = f"""
import json
from pathlib import Path
from {PACKAGE}.model import load_model
from {PACKAGE}.tables import read_features

model = load_model(Path("models"))
types = model.schema.types_by_name
features, _ = read_features(Path("data/train.csv"), model.feature_names, feature_types=types)
steps = [name for name, _ in model.pipeline.steps]
predictions = model.predict(features)
print(json.dumps({{"steps": steps, "version": model.version, "predictions": predictions}}))
"""


def sample_rows(path: Path) -> list[dict[str, object] | None]:
    """Each CSV row as the JSON object a client sends, or None where a number is missing
    (JSON has no empty number; an empty text cell is "")."""
    with path.open(newline="") as table:
        rows = list(csv.DictReader(table))
    objects = []
    for row in rows:
        if any(not row[name] for name in NUMBERS):
            objects.append(None)
            continue
        numbers = {name: float(row[name]) for name in NUMBERS}
        objects.append({**numbers, **{name: row[name] for name in TEXTS}})
    return objects


def fit_outside(script: str, python: str, sample: Path, destination: Path) -> object:
    """Run the user's own fitting script in a process of its own; what it printed."""
    output = run_gate([python, "-c", script, str(sample), str(destination)], destination.parent)
    return json.loads(output.splitlines()[-1])


@contextlib.contextmanager
def serving(project: Path, service_bin: Path) -> Iterator[Stack]:
    """The project's `make serve` on what models/ holds, ready; stopped at the end."""
    running = Stack.serve(project, service_bin, {**os.environ, "PYTHONPATH": "src"})
    try:
        wait_until_ready(running)
        yield running
    finally:
        running.stop()


def make(project: Path, service_bin: Path, *arguments: str) -> str:
    environment = {**os.environ, "PYTHONPATH": "src"}
    return run_gate(["make", *arguments, f"VENV={service_bin.parent}"], project, environment)


@pytest.fixture(scope="module")
def skops_project(copier_template, tmp_path_factory, service_bin) -> Iterator[tuple[Stack, list]]:
    """Gradient boosting in skops behind nginx: the user's skops file imported and served."""
    system_tool("envsubst")
    system_tool("nginx")
    answers = {"estimator": "gradient_boosting", "training_data": "csv", "target_column": TARGET}
    project = render(copier_template, tmp_path_factory.mktemp("import-skops") / "project", answers)
    sample = project / "data" / "train.csv"
    write_training_csv(sample)
    source = project / "fitted.skops"
    expected = fit_outside(FIT_WITH_PANDAS_AND_SAVE_WITH_SKOPS, sys.executable, sample, source)
    make(project, service_bin, "import", f"MODEL={source}", f"SAMPLE={sample}")
    with serving(project, service_bin) as running:
        yield running, expected


def test_a_skops_import_is_served_as_the_user_fitted_it(skops_project):
    stack, expected = skops_project
    metadata = stack.request("GET", "/model").json()
    assert metadata["imported"]["source"] == "fitted.skops"
    assert metadata["estimator"] == "HistGradientBoostingClassifier"
    types = {**dict.fromkeys(NUMBERS, "number"), **dict.fromkeys(TEXTS, "category")}
    assert metadata["feature_types"] == types
    assert metadata["categories"]["plan"] == ["basic", "plus", "premium"]

    rows = sample_rows(stack.project / "data" / "train.csv")
    sent = [index for index, row in enumerate(rows) if row is not None]
    # Some rows with an empty text cell: "" reaches the estimator as the NaN pandas gave it.
    assert any(rows[index][name] == "" for index in sent for name in TEXTS)
    response = stack.post_json("/predict", {"rows": [rows[index] for index in sent]})
    assert response.status == 200, response.body
    assert response.json()["predictions"] == [expected[index] for index in sent]


def test_a_custom_pipeline_trains_and_serves(skops_project, service_bin):
    stack, _ = skops_project
    package = stack.project / "src" / PACKAGE
    (package / "preprocessing.py").write_text(PREPROCESSING_MODULE)
    pipeline = package / "pipeline.py"
    source = pipeline.read_text()
    returned = 'return Pipeline([("prepare", prepare), ("model", _estimator())])'
    assert returned in source
    custom = '("log", FunctionTransformer(signed_log))'
    source = source.replace(
        returned,
        returned.replace('("model"', f'{custom}, ("model"'),
    ).replace(
        "from .features import CATEGORY, NUMBER",
        "from sklearn.preprocessing import FunctionTransformer\n\n"
        "from .features import CATEGORY, NUMBER\nfrom .preprocessing import signed_log",
    )
    pipeline.write_text(source)
    make(stack.project, service_bin, "train")

    environment = {**os.environ, "PYTHONPATH": "src"}
    python = str(service_bin / "python")
    served = json.loads(run_gate([python, "-c", THE_SERVED_MODEL], stack.project, environment))
    assert served["steps"] == ["prepare", "log", "model"]
    rows = sample_rows(stack.project / "data" / "train.csv")
    sent = [index for index, row in enumerate(rows) if row is not None]

    # The service picks the new model up by itself (model.py's ModelSlot): no restart. Each
    # worker swaps on its own, after a request finds the files changed, so only an answer
    # naming the new version is the new model's: until then another worker may answer.
    deadline = time.monotonic() + 30
    while True:
        response = stack.post_json("/predict", {"rows": [rows[index] for index in sent]})
        assert response.status == 200, response.body
        if response.headers.get("x-model-version") == served["version"]:
            break
        assert time.monotonic() < deadline, "the trained model was not picked up"
        time.sleep(0.2)
    assert response.json()["predictions"] == [served["predictions"][index] for index in sent]


@pytest.fixture(scope="module")
def onnx_project(copier_template, tmp_path_factory, service_bin) -> Iterator[tuple[Stack, dict]]:
    """A random forest in ONNX under gunicorn alone: the user's .onnx file imported and served."""
    answers = {
        "estimator": "random_forest",
        "model_format": "onnx",
        "training_data": "csv",
        "target_column": TARGET,
        "web_server": "gunicorn",
        "process_manager": "none",
    }
    project = render(copier_template, tmp_path_factory.mktemp("import-onnx") / "project", answers)
    sample = project / "data" / "train.csv"
    write_training_csv(sample)
    source = project / "fitted.onnx"
    expected = fit_outside(FIT_AND_EXPORT_ONNX, str(service_bin / "python"), sample, source)
    make(project, service_bin, "import", f"MODEL={source}", f"SAMPLE={sample}")
    with serving(project, service_bin) as running:
        yield running, expected


def test_an_onnx_import_is_served_as_scikit_learn_predicts(onnx_project):
    stack, expected = onnx_project
    metadata = stack.request("GET", "/model").json()
    assert metadata["imported"] | {"imported_at": None} == {
        "source": "fitted.onnx",
        "format": "onnx",
        "sha256": metadata["imported"]["sha256"],
        "sample": "train.csv",
        "n_sample": len(expected["labels"]),
        "imported_at": None,
    }
    assert metadata["classes"] == ["no", "yes"]

    rows = sample_rows(stack.project / "data" / "train.csv")
    sent = [index for index, row in enumerate(rows) if row is not None]
    body = {"rows": [rows[index] for index in sent]}
    response = stack.post_json("/predict", body)
    assert response.status == 200, response.body
    assert response.json()["predictions"] == [expected["labels"][index] for index in sent]
    response = stack.post_json("/predict_proba", body)
    assert response.status == 200, response.body
    served = [row[label] for row in response.json()["probabilities"] for label in ("no", "yes")]
    wanted = [value for index in sent for value in expected["probabilities"][index]]
    # float32 in the graph: the tolerance training holds ONNX to (conversion.py).
    assert served == pytest.approx(wanted, rel=1e-4, abs=1e-5)
