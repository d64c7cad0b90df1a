"""CSV in and out for training and batch jobs, with errors that name the row and column."""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from .features import BOOLEAN, CATEGORY, NUMBER, as_model_input


class TableError(ValueError):
    """A CSV file that cannot be read as the model's features."""


@dataclass(frozen=True)
class Dataset:
    features: np.ndarray
    target: np.ndarray
    feature_names: list[str]
    target_name: str
    feature_types: dict[str, str]  # name -> number, boolean or category (features.py)


def identifier(name: str) -> str:
    """'sepal length (cm)' -> 'sepal_length_cm': feature names that read well as JSON keys."""
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()


def read_features(
    path: Path,
    feature_names: Sequence[str],
    target_name: str | None = None,
    feature_types: Mapping[str, str] | None = None,
) -> tuple[np.ndarray, list[str] | None]:
    """The features in `feature_names` order and, if asked, the raw target column.

    Each cell is read as its feature's type (all numbers when no types are given); the array
    is the one the model takes (features.as_model_input).
    """
    header, rows = _read(path)
    wanted = [*feature_names, *([target_name] if target_name else [])]
    missing = [name for name in wanted if name not in header]
    if missing:
        raise TableError(f"{path}: missing column(s) {missing}; the header has {header}")
    types = [feature_types[name] for name in feature_names] if feature_types else None
    if types is None or all(kind == NUMBER for kind in types):
        columns = [header.index(name) for name in feature_names]
        features = np.empty((len(rows), len(columns)), dtype=np.float64)
        for row_number, row in enumerate(rows, start=2):
            for j, column in enumerate(columns):
                features[row_number - 2, j] = _number(row[column], path, row_number, header[column])
    else:
        readers = [
            (header.index(name), _READERS[kind])
            for name, kind in zip(feature_names, types, strict=True)
        ]
        values = [
            [read(row[column], path, row_number, header[column]) for column, read in readers]
            for row_number, row in enumerate(rows, start=2)
        ]
        features = as_model_input(values, all_numbers=False, n_features=len(readers))
    target = [row[header.index(target_name)] for row in rows] if target_name else None
    return features, target


def infer_types(
    path: Path, feature_names: Sequence[str], pinned: Mapping[str, str]
) -> dict[str, str]:
    """Each feature's type: pinned, else what its cells hold (numbers, true/false, or text).

    A column holding numbers in some rows and text in others is refused: it is most often
    a data error (a typo, a unit, a "n/a"), and when it is not (codes such as "007" and
    "A12"), only the user knows the type, which they pin.
    """
    header, rows = _read(path)
    types = {}
    for name in feature_names:
        if name in pinned:
            types[name] = pinned[name]
            continue
        column = header.index(name)
        cells = [(number, row[column]) for number, row in enumerate(rows, start=2)]
        filled = [(number, text) for number, text in cells if text.strip()]
        if not filled:
            raise TableError(
                f"{path}, column {name!r}: every cell is empty; fill it, or leave the column "
                'out of training (pin it as "ignore")'
            )
        text = [(number, value) for number, value in filled if not _is_number(value)]
        if not text:
            types[name] = NUMBER
        elif all(value.strip().lower() in _BOOLEANS for _, value in filled):
            types[name] = BOOLEAN
        elif len(text) < len(filled):
            (number, value), n_numbers = text[0], len(filled) - len(text)
            raise TableError(
                f"{path}, column {name!r}: {n_numbers} number(s) but {len(text)} text value(s) "
                f"(row {number}: {value!r}); correct those cells, or pin the column's type "
                '("number" or "category")'
            )
        else:
            types[name] = CATEGORY
    return types


def header_of(path: Path) -> list[str]:
    return _read(path)[0]


def read_columns(path: Path, names: Sequence[str]) -> list[list[str]]:
    """The cells of the columns `names`, as text, one list per column."""
    header, rows = _read(path)
    missing = [name for name in names if name not in header]
    if missing:
        raise TableError(f"{path}: no column(s) {missing} to keep; the header has {header}")
    return [[row[header.index(name)] for row in rows] for name in names]


def write_table(
    output: Path | TextIO, header: Sequence[str], columns: Sequence[Sequence[Any]]
) -> None:
    """A CSV of `columns` (lists of equal length) under `header`, to a file or a stream."""
    if not isinstance(output, Path):
        _write(output, header, columns)
        return
    with output.open("w", newline="", encoding="utf-8") as table:
        _write(table, header, columns)


def _write(output: TextIO, header: Sequence[str], columns: Sequence[Sequence[Any]]) -> None:
    writer = csv.writer(output)
    writer.writerow(header)
    writer.writerows(zip(*columns, strict=True))


def _read(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise TableError(f"{path}: no such file") from None
    try:
        # utf-8-sig: spreadsheets' "CSV UTF-8" starts with a byte order mark, not a header.
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = content.count(b"\n", 0, error.start) + 1
        raise TableError(
            f"{path}, line {line}: not UTF-8 text (byte {content[error.start]:#04x}); save the "
            'file as UTF-8 (in a spreadsheet: "CSV UTF-8")'
        ) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header, *rows = list(reader)
    except csv.Error as error:  # e.g. a cell longer than the csv module's field limit
        raise TableError(
            f"{path}, line {reader.line_num}: not readable as CSV ({error}); check the quoting "
            "there"
        ) from None
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


_BOOLEANS = {"true": True, "false": False}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _boolean(text: str, path: Path, row_number: int, column: str) -> bool | float:
    if not text.strip():
        return math.nan  # missing: the pipeline imputes it, as a number's
    value = _BOOLEANS.get(text.strip().lower())
    if value is None:
        raise TableError(
            f"{path}, row {row_number}, column {column!r}: {text!r} is not a boolean "
            "(true or false)"
        )
    return value


def _category(text: str, path: Path, row_number: int, column: str) -> str:
    # Missing is "" (as skl2onnx needs it to be): the pipeline imputes the most frequent category.
    return text if text.strip() else ""


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


_READERS: dict[str, Callable[[str, Path, int, str], Any]] = {
    NUMBER: _number,
    BOOLEAN: _boolean,
    CATEGORY: _category,
}
