"""The served model's metadata, as training recorded it next to the artifact."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app

bp = Blueprint("model_info", __name__)


# Recorded for drift checks (reference.py), and as long as the features and their categories
# are many: not what a client asking about the model wants on every call.
LEFT_OUT = frozenset({"drift_reference"})


@bp.get("/model")
def model_info() -> tuple[dict[str, Any], dict[str, str]]:
    """Model version, estimator, features, classes, scikit-learn version, artifact, metrics
    (holdout, baseline's, cross-validated) and the features that matter most."""
    model = current_app.extensions["model"].get()
    shown = {key: value for key, value in model.metadata.items() if key not in LEFT_OUT}
    return shown, {"X-Model-Version": model.version}


def openapi_paths(components: dict[str, Any]) -> dict[str, Any]:
    """This module's part of the OpenAPI document (see openapi.py)."""
    version = {
        "type": "string",
        "description": "The model version's id: when it was saved (UTC), then its artifact's "
        "SHA-256, abridged. `make versions` lists those kept; `make rollback` serves the "
        "previous one again.",
        "example": "20260101T120000.000Z-3f2a9c1b",
    }
    components["schemas"]["ModelVersion"] = version
    # Every response a model answered names it, as its body's model_version does.
    components.setdefault("headers", {})["ModelVersion"] = {
        "description": "The model version that answered",
        "schema": {"$ref": "#/components/schemas/ModelVersion"},
    }
    components["schemas"]["Metrics"] = {
        "type": "object",
        "additionalProperties": {"type": "number"},
        "description": "Each metric's score, by name.",
    }
    components["schemas"]["ModelInfo"] = {
        "type": "object",
        "properties": {
            "project": {"type": "string"},
            "version": {"type": "string", "description": "The project's version"},
            "model_version": {"$ref": "#/components/schemas/ModelVersion"},
            "problem_type": {"type": "string", "enum": ["classification", "regression"]},
            "estimator": {"type": "string", "example": "LogisticRegression"},
            "feature_names": {"type": "array", "items": {"type": "string"}},
            "feature_types": {
                "type": "object",
                "additionalProperties": {
                    "type": "string",
                    "enum": ["number", "boolean", "category"],
                },
                "description": "Each feature's type, by name.",
            },
            "categories": {
                "type": "object",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
                "description": "Each category feature's categories known from training.",
            },
            "target_name": {"type": "string"},
            "classes": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/Target"},
                "description": "Classification only: the labels the model predicts.",
            },
            "sklearn_version": {"type": "string"},
            "trained_at": {"type": "string", "format": "date-time"},
            "metrics": {
                "$ref": "#/components/schemas/Metrics",
                "description": "Scores on the rows held out from training.",
            },
            "baseline": {
                "type": "object",
                "description": "A model that ignores the features, scored on the same rows.",
                "properties": {
                    "estimator": {"type": "string", "example": "DummyClassifier"},
                    "strategy": {"type": "string", "example": "most_frequent"},
                    "predicts": {"type": "string"},
                    "metrics": {"$ref": "#/components/schemas/Metrics"},
                },
            },
            "cross_validation": {
                "type": "object",
                "description": (
                    "k-fold cross-validation on the training part: each metric's mean and "
                    "standard deviation over the folds. folds is 0 (and skipped says why) "
                    "when there are too few rows."
                ),
                "properties": {
                    "folds": {"type": "integer"},
                    "splitter": {"type": "string", "enum": ["StratifiedKFold", "KFold"]},
                    "n_rows": {"type": "integer"},
                    "sampled": {
                        "type": "boolean",
                        "description": "Whether n_rows is a random sample of the training part.",
                    },
                    "mean": {"$ref": "#/components/schemas/Metrics"},
                    "std": {"$ref": "#/components/schemas/Metrics"},
                    "per_fold": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/Metrics"},
                    },
                    "skipped": {"type": "string"},
                },
            },
            "feature_importance": {
                "type": "object",
                "description": (
                    "Permutation importance on the holdout rows: how much metric drops when "
                    "one feature is shuffled, most important first."
                ),
                "properties": {
                    "metric": {"type": "string"},
                    "repeats": {"type": "integer"},
                    "n_rows": {"type": "integer"},
                    "sampled": {"type": "boolean"},
                    "features": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "name": {"type": "string"},
                                "mean": {"type": "number"},
                                "std": {"type": "number"},
                            },
                        },
                    },
                },
            },
            "n_train": {"type": "integer"},
            "n_holdout": {"type": "integer"},
            "example": {"$ref": "#/components/schemas/Features"},
            "imported": {
                "type": "object",
                "description": "A model imported (`import-model`) rather than trained here: "
                "the file it came from, and the sample it was checked, and scored, on.",
                "properties": {
                    "source": {"type": "string"},
                    "format": {"type": "string", "enum": ["skops", "onnx", "pickle"]},
                    "sha256": {"type": "string"},
                    "sample": {"type": "string"},
                    "n_sample": {"type": "integer"},
                    "imported_at": {"type": "string", "format": "date-time"},
                },
            },
            "artifact": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "format": {"type": "string", "enum": ["numpy", "onnx", "skops", "joblib"]},
                    "sha256": {"type": "string"},
                    "path": {
                        "type": "string",
                        "description": "Where the artifact is, in the model directory",
                    },
                },
            },
        },
    }
    return {
        "/model": {
            "get": {
                "tags": ["model"],
                "summary": "The served model's metadata",
                "operationId": "model_info",
                "responses": {
                    "200": {
                        "description": "The metadata training recorded",
                        "headers": {
                            "X-Model-Version": {"$ref": "#/components/headers/ModelVersion"}
                        },
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/ModelInfo"}
                            }
                        },
                    },
                    "503": {"$ref": "#/components/responses/ModelNotReady"},
                },
            }
        }
    }
