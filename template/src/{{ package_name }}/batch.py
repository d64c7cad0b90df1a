"""Predict and evaluate on CSV files: the batch path, which needs no web server."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from . import metrics
from .features import unknown_categories
from .finite import NonFiniteOutputError
from .model import TrainedModel
from .tables import TableError, read_columns, read_features, write_table

log = logging.getLogger(__name__)


def predict_csv(
    model: TrainedModel, source: Path, destination: Path | TextIO, keep: Sequence[str] = ()
) -> int:
    """Write one prediction per input row to `destination`; return the number of rows.

    The columns of the input named in `keep` (an id, say) go beside each prediction, first.
    """
    schema = model.schema
    kept = read_columns(source, keep)  # before predicting: a misspelt name fails at once
    features, _ = read_features(source, model.feature_names, feature_types=schema.types_by_name)
    for name, values in unknown_categories(features, schema).items():
        # Predicted all the same, as none of the known categories (features.py).
        log.warning("%s: categories unseen in training in column %r: %s", source, name, values)
    predictions = _predict(model, features, source)
    write_table(destination, [*keep, model.metadata["target_name"]], [*kept, predictions])
    return len(predictions)


def evaluate_csv(model: TrainedModel, source: Path) -> dict[str, float]:
    """Score the model on a CSV holding the features and the true target column."""
    target_name = model.metadata["target_name"]
    features, target = read_features(
        source, model.feature_names, target_name, model.schema.types_by_name
    )
    assert target is not None  # asked for by name: read_features reads it or raises
    return metrics.score(_as_training_labels(model, target), _predict(model, features, source))


def _predict(model: TrainedModel, features: np.ndarray, source: Path) -> list[Any]:
    """The model's predictions; a row it has no finite output for is named by its CSV line."""
    try:
        return model.predict(features)
    except NonFiniteOutputError as error:
        # Line 1 is the header, so the first row is line 2 (as tables.py counts them).
        raise TableError(f"{source}, {error.describe(lambda index: f'row {index + 2}')}") from None


def _as_training_labels(model: TrainedModel, values: list[str]) -> list[Any]:
    """CSV cells are text; compare them in the type the model was trained on."""
    if model.metadata["problem_type"] == "regression":
        try:
            return [float(value) for value in values]
        except ValueError as error:
            raise TableError(f"target column: {error}") from None
    by_text = {str(label): label for label in model.metadata["classes"]}
    return [by_text.get(value, value) for value in values]
