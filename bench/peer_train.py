"""Fit the rendered service's own pipeline and save it the way a peer serves models.

Run by bench/peers.py with a peer's Python (MLflow's or BentoML's virtual environment) and
the rendered project's src/ on PYTHONPATH:

    python bench/peer_train.py mlflow  iris_classifier <model folder>
    python bench/peer_train.py bentoml iris_classifier <BENTOML_HOME>

The pipeline comes from the project's pipeline.py and the data from its data.py, so every
stack serves the same estimator, with the same hyperparameters, fitted on the same rows.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path


def fitted_pipeline(package: str):
    """The project's pipeline, fitted on all of its training data."""
    data = importlib.import_module(f"{package}.data").load_training_data()
    pipeline = importlib.import_module(f"{package}.pipeline").build_pipeline(data.feature_types)
    return pipeline.fit(data.features, data.target), data


def save_for_mlflow(package: str, destination: Path) -> None:
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature

    pipeline, data = fitted_pipeline(package)
    # A signature, as MLflow's documentation asks for: the server then checks each request's
    # columns and types, as the template's service does.
    example = pd.DataFrame(data.features[:5], columns=data.feature_names)
    signature = infer_signature(example, pipeline.predict(data.features[:5]))
    # MLflow 3 saves in skops format too, and asks for the same trusted type as the service.
    mlflow.sklearn.save_model(
        pipeline, str(destination), signature=signature, skops_trusted_types=["numpy.dtype"]
    )


def save_for_bentoml(package: str, home: Path) -> None:
    # BENTOML_HOME (set by the caller to `home`) holds BentoML's model store.
    import bentoml

    pipeline, _ = fitted_pipeline(package)
    bentoml.sklearn.save_model("bench_model", pipeline)
    print(f"saved to the model store in {home}")


if __name__ == "__main__":
    peer, package, target = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    {"mlflow": save_for_mlflow, "bentoml": save_for_bentoml}[peer](package, target)
