"""The served model's metadata, as training recorded it next to the artifact."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app

bp = Blueprint("model_info", __name__)


@bp.get("/model")
def model_info() -> dict[str, Any]:
    """Version, estimator, features, classes, scikit-learn version, artifact hash, metrics."""
    return current_app.extensions["model"].get().metadata


def openapi_paths(components: dict[str, Any]) -> dict[str, Any]:
    """This module's part of the OpenAPI document (see openapi.py)."""
    components["schemas"]["ModelInfo"] = {
        "type": "object",
        "properties": {
            "project": {"type": "string"},
            "version": {"type": "string"},
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
                "type": "object",
                "additionalProperties": {"type": "number"},
                "description": "Scores on the rows held out from training.",
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
