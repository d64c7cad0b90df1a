"""CSV in and out for training and batch jobs, with errors that name the row and column."""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


class TableError(ValueError):
    """A CSV file that cannot be read as the model's features."""


@dataclass(frozen=True)
class Dataset:
    features: np.ndarray
    target: np.ndarray
    feature_names: list[str]
    target_name: str


def identifier(name: str) -> str:
    """'sepal length (cm)' -> 'sepal_length_cm': feature names that read well as JSON keys."""
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()


def read_features(
    path: Path, feature_names: Sequence[str], target_name: str | None = None
) -> tuple[np.ndarray, list[str] | None]:
    """The feature matrix in `feature_names` order and, if asked, the raw target column."""
    header, rows = _read(path)
    wanted = [*feature_names, *([target_name] if target_name else [])]
    missing = [name for name in wanted if name not in header]
    if missing:
        raise TableError(f"{path}: missing column(s) {missing}; the header has {header}")
    columns = [header.index(name) for name in feature_names]
    features = np.empty((len(rows), len(columns)), dtype=np.float64)
    for row_number, row in enumerate(rows, start=2):
        for j, column in enumerate(columns):
            features[row_number - 2, j] = _number(row[column], path, row_number, header[column])
    target = [row[header.index(target_name)] for row in rows] if target_name else None
    return features, target


def header_of(path: Path) -> list[str]:
    return _read(path)[0]


def write_column(path: Path, name: str, values: Sequence[Any]) -> None:
    with path.open("w", newline="", encoding="utf-8") as output:
        writer = csv.writer(output)
        writer.writerow([name])
        writer.writerows([value] for value in values)


def _read(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        with path.open(newline="", encoding="utf-8") as table:
            header, *rows = list(csv.reader(table))
    except FileNotFoundError:
        raise TableError(f"{path}: no such file") from None
    except UnicodeDecodeError as error:  # a ValueError too: caught before the next clause
        raise TableError(f"{path}: not UTF-8 text (byte {error.start} cannot be decoded)") from None
    except ValueError:  # an empty file has no header to unpack
        raise TableError(f"{path}: the file is empty; it needs a header row") from None
    if not rows:
        raise TableError(f"{path}: the file has a header but no rows")
    for row_number, row in enumerate(rows, start=2):
        if len(row) != len(header):
            raise TableError(
                f"{path}, row {row_number}: {len(row)} values for {len(header)} columns"
            )
    return header, rows


def _number(text: str, path: Path, row_number: int, column: str) -> float:
    if not text.strip():
        return math.nan  # an empty cell is a missing value: the pipeline imputes it
    try:
        value = float(text)
    except ValueError:
        raise TableError(
            f"{path}, row {row_number}, column {column!r}: {text!r} is not a number"
        ) from None
    if not math.isfinite(value):
        raise TableError(f"{path}, row {row_number}, column {column!r}: {text!r} is not finite")
    return value
