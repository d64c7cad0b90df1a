"""The model's features: each one's name and type, as training recorded them in metadata.json.

A feature is one of three types, each with its own JSON value and its own preprocessing:

    number    a JSON number; missing cells in CSV files get the training median
    boolean   JSON true or false (true/false in CSV files); the model sees 1 and 0
    category  a JSON string; one indicator column per category seen in training. A category
              the model has not seen is answered as none of the known ones, and reported
              (payload.py), never refused: new values turn up in real data. The empty
              string is a missing value, which gets the most frequent category.

A model whose features are all numbers takes its rows as one float64 array; any other takes
them as an object array of Python values (float, bool, str), which the pipeline's
ColumnTransformer splits by column. An empty CSV cell is NaN in a number or boolean column
and "" in a category column (the only missing value skl2onnx converts for strings).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

NUMBER, BOOLEAN, CATEGORY = "number", "boolean", "category"
TYPES = (NUMBER, BOOLEAN, CATEGORY)


@dataclass(frozen=True, eq=False)  # hashed by identity: one per loaded model, a cache key
class Schema:
    names: tuple[str, ...]
    types: tuple[str, ...]
    # Per category feature, the categories seen in training.
    categories: Mapping[str, frozenset[str]]

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> Schema:
        names = tuple(metadata["feature_names"])
        # Models trained before feature types were recorded had numbers only.
        types = metadata.get("feature_types") or dict.fromkeys(names, NUMBER)
        categories = metadata.get("categories") or {}
        return cls(
            names=names,
            types=tuple(types[name] for name in names),
            categories={name: frozenset(values) for name, values in categories.items()},
        )

    @cached_property  # read on every request: worked out once
    def types_by_name(self) -> dict[str, str]:
        return dict(zip(self.names, self.types, strict=True))

    @cached_property
    def category_columns(self) -> list[tuple[int, str, frozenset[str]]]:
        """Per category feature: its column, its name, and what is not unknown in it."""
        return [
            (column, name, self.categories[name] | {""})
            for column, name in enumerate(self.names)
            if name in self.categories
        ]

    @cached_property
    def all_numbers(self) -> bool:
        return all(kind == NUMBER for kind in self.types)

    def array(self, rows: Sequence[Sequence[Any]]) -> np.ndarray:
        """Rows of Python values (JSON's, or a CSV's) as the model's input array."""
        return as_model_input(rows, all_numbers=self.all_numbers, n_features=len(self.names))


def as_model_input(
    rows: Sequence[Sequence[Any]], *, all_numbers: bool, n_features: int
) -> np.ndarray:
    """float64 for numbers only; otherwise an object array, one Python value per cell."""
    if all_numbers:
        return np.asarray(rows, dtype=np.float64).reshape(len(rows), n_features)
    array = np.empty((len(rows), n_features), dtype=object)
    if len(rows):
        # Assigned into an object array, the values keep their types: np.array(rows) would
        # turn every one into a string as soon as one is.
        array[:] = rows
    return array


def unknown_categories(features: np.ndarray, schema: Schema) -> dict[str, list[str]]:
    """Per category feature, the values in `features` that training never saw (sorted)."""
    unknown = {}
    for column, name, known in schema.category_columns:
        # "" is a missing value, imputed rather than unknown.
        if new := {value for value in features[:, column].tolist() if value not in known}:
            unknown[name] = sorted(new)
    return unknown


def empty_as_nan(features: np.ndarray, columns: Sequence[int]) -> np.ndarray:
    """`features` with the empty strings of `columns` as NaN, on a copy.

    An imported estimator (importing.py) fitted where a missing text cell is NaN, as pandas
    reads one, takes its category features' missing values in that form rather than as "".
    """
    features = features.copy()
    for column in columns:
        cells = features[:, column]
        cells[cells == ""] = np.nan
    return features
