"""GET /model reports what is served: the metadata training wrote, and a hash that checks out."""

import hashlib
import math

import sklearn


def test_model_reports_its_metadata(client, model):
    response = client.get("/model")
    assert response.status_code == 200
    info = response.json
    assert info["feature_names"] == model.feature_names
    assert info["problem_type"] == model.metadata["problem_type"]
    assert info["estimator"] == model.metadata["estimator"]
    assert info.get("classes") == model.metadata.get("classes")
    assert info["sklearn_version"] == sklearn.__version__
    assert info["trained_at"] == model.metadata["trained_at"]
    assert info["version"] == model.metadata["version"]
    assert info["model_version"] == model.version == response.headers["X-Model-Version"]


def test_model_reports_holdout_metrics(client):
    metrics = client.get("/model").json["metrics"]
    assert metrics
    assert all(math.isfinite(value) for value in metrics.values())


def test_model_reports_the_baseline_cross_validation_and_importance(client, model):
    info = client.get("/model").json
    for key in ("baseline", "cross_validation", "feature_importance"):
        assert info[key] == model.metadata[key]
    assert info["cross_validation"]["folds"] >= 2
    assert set(info["baseline"]["metrics"]) == set(info["metrics"])


def test_model_leaves_out_the_drift_reference(client, model):
    assert "drift_reference" in model.metadata
    assert "drift_reference" not in client.get("/model").json


def test_model_artifact_hash_is_that_of_the_file(client, model_dir):
    artifact = client.get("/model").json["artifact"]
    # The served version's file: metadata.json names it by its path in the model directory.
    content = (model_dir / artifact["path"]).read_bytes()
    assert artifact["sha256"] == hashlib.sha256(content).hexdigest()


def test_model_is_503_json_before_training(untrained_app):
    response = untrained_app.test_client().get("/model")
    assert response.status_code == 503
    assert response.json["error"]["message"] == "model not loaded: run `make train`"
