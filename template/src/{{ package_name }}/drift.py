"""Drift: how far the rows the model sees now have moved from the rows it was trained on.

One module over 250 lines for one method, PSI per feature; a fifth of it explains the method.

Each feature's recent values are compared with the reference training recorded in
metadata.json (reference.py) by the population stability index (PSI):

    PSI = sum over buckets of (actual share - expected share) * ln(actual share / expected share)

where "expected" is the training share of a bucket and "actual" the window's. The buckets:

- numbers: the ten bins between the reference's deciles (the outer two open-ended, so a value
  beyond the training minimum or maximum still lands in one), plus "missing". Where deciles
  tie (a feature with few distinct values), the tied bins are merged and their shares added.
- booleans and categories: each training value, "unseen" for values training never saw, and
  "missing".

A bucket empty on either side would make ln(0): both shares are floored at EPSILON, the share
of one row in ten thousand, which keeps such a bucket's term finite and large.

The verdicts use the thresholds of credit scoring, where the index comes from (Siddiqi, "Credit
Risk Scorecards", Wiley 2006): below 0.1 no significant change, 0.1 to 0.25 a moderate shift
worth watching, 0.25 and above a significant shift. Sampling noise alone adds about
(buckets - 1) / rows to the index, for the window's rows and for the training rows alike: a
window of a few thousand rows keeps it well below 0.1; a few dozen do not.

The share of unknown categories and of out-of-range numbers (beyond the training minimum or
maximum) is reported beside each index: they say what kind of change moved it.

NumPy alone, like reference.py: the check runs where scikit-learn is not installed.
"""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .features import BOOLEAN, CATEGORY, NUMBER

EPSILON = 1e-4
MODERATE, SIGNIFICANT = 0.1, 0.25
STABLE_VERDICT, MODERATE_VERDICT, DRIFT_VERDICT = "stable", "moderate", "drift"
MISSING, UNSEEN = "missing", "unseen"
# Unknown categories listed per feature, the most frequent first.
UNKNOWN_SHOWN = 10
METADATA_NAME = "metadata.json"  # model.py's; not imported, which would load the model stack


class DriftError(ValueError):
    """A drift check that cannot run: no reference, or no rows to compare."""


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    type: str
    psi: float
    verdict: str
    missing: float  # the window's share of empty cells
    reference_missing: float
    unknown: float  # categories: the share of rows with a value training never saw
    out_of_range: float  # numbers: the share of rows beyond the training minimum or maximum
    unknown_values: list[str] = field(default_factory=list)
    # The buckets the index adds up, in order: label, training share, window share.
    buckets: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Drift:
    model_version: str
    n_rows: int
    reference_rows: int
    features: list[FeatureDrift]

    @property
    def drifting(self) -> list[FeatureDrift]:
        """The features at or above the moderate threshold, the largest index first."""
        moved = [feature for feature in self.features if feature.verdict != STABLE_VERDICT]
        return sorted(moved, key=lambda feature: -feature.psi)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model_version": self.model_version,
            "n_rows": self.n_rows,
            "reference_rows": self.reference_rows,
            "thresholds": {"moderate": MODERATE, "significant": SIGNIFICANT},
            "features": {feature.name: _feature_dict(feature) for feature in self.features},
        }


def _feature_dict(feature: FeatureDrift) -> dict[str, Any]:
    document = asdict(feature)
    del document["name"]
    return document


def verdict(psi: float) -> str:
    if psi < MODERATE:
        return STABLE_VERDICT
    return MODERATE_VERDICT if psi < SIGNIFICANT else DRIFT_VERDICT


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """The population stability index of two share vectors over the same buckets."""
    expected_shares = np.maximum(np.asarray(expected, dtype=np.float64), EPSILON)
    actual_shares = np.maximum(np.asarray(actual, dtype=np.float64), EPSILON)
    terms = (actual_shares - expected_shares) * np.log(actual_shares / expected_shares)
    return float(terms.sum())


def read_reference(model_dir: Path, version: str | None = None) -> dict[str, Any]:
    """The metadata of the served model version (or of `version`), which holds the reference."""
    path = (
        model_dir / METADATA_NAME
        if version is None
        else model_dir / "versions" / version / METADATA_NAME
    )
    try:
        metadata: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        what = f"model version {version!r}" if version else "model"
        raise DriftError(f"no {what} in {model_dir}: run `make train` first") from None
    if "drift_reference" not in metadata:
        raise DriftError(
            f"{path} has no drift reference: the model was trained before training recorded "
            "one; train it again (`make train`)"
        )
    return metadata


def compare(metadata: Mapping[str, Any], rows: Iterable[Sequence[Any]]) -> Drift:
    """The drift of `rows` (each in the model's feature order) from the model's reference."""
    names = list(metadata["feature_names"])
    columns: list[list[Any]] = [[] for _ in names]
    for row in rows:
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    n_rows = len(columns[0]) if columns else 0
    if n_rows == 0:
        raise DriftError("no rows to compare with the reference")
    reference = metadata["drift_reference"]
    features = [
        _compare_column(name, reference["features"][name], column)
        for name, column in zip(names, columns, strict=True)
    ]
    return Drift(
        model_version=str(metadata.get("model_version", "")),
        n_rows=n_rows,
        reference_rows=int(reference["n_rows"]),
        features=features,
    )


def _compare_column(name: str, reference: Mapping[str, Any], cells: list[Any]) -> FeatureDrift:
    if reference["type"] == NUMBER:
        return _compare_numbers(name, reference, cells)
    if reference["type"] in (BOOLEAN, CATEGORY):
        return _compare_categories(name, reference, cells)
    raise DriftError(f"feature {name!r}: unknown type {reference['type']!r} in the reference")


def _compare_numbers(name: str, reference: Mapping[str, Any], cells: list[Any]) -> FeatureDrift:
    # None (JSON null) and NaN (an empty CSV cell) are both missing.
    values = np.array([math.nan if cell is None else cell for cell in cells], dtype=np.float64)
    filled = values[~np.isnan(values)]
    n_rows = len(values)
    missing = 1.0 - len(filled) / n_rows
    reference_missing = float(reference["missing"])
    quantiles = reference["quantiles"]
    if quantiles is None:  # every training cell was empty: only "missing" can be compared
        labels, expected, counts = ["filled"], [0.0], [len(filled)]
        out_of_range = 0.0
    else:
        labels, cuts, expected = _numeric_bins(quantiles)
        # Measured on the training rows where recorded (repeated values make them differ
        # from tenths); else the tenths the deciles stand for.
        expected = reference.get("bin_shares") or expected
        # side="right": a value equal to a cut belongs to the bin that starts there.
        counts = np.bincount(
            np.searchsorted(cuts, filled, side="right"), minlength=len(labels)
        ).tolist()
        beyond = np.count_nonzero((filled < quantiles[0]) | (filled > quantiles[-1]))
        out_of_range = int(beyond) / n_rows
    filled_share = 1.0 - reference_missing
    expected_shares = [share * filled_share for share in expected] + [reference_missing]
    actual_shares = [count / n_rows for count in counts] + [missing]
    return _result(
        name,
        NUMBER,
        [*labels, MISSING],
        expected_shares,
        actual_shares,
        missing=missing,
        reference_missing=reference_missing,
        unknown=0.0,
        out_of_range=out_of_range,
    )


def _numeric_bins(quantiles: Sequence[float]) -> tuple[list[str], np.ndarray, list[float]]:
    """The bins' labels, their inner edges, and their training shares (the deciles' tenths).

    Edges are the nine deciles. A run of equal deciles is one edge: the empty bins between
    them merge into the bin that starts there, which is where the tied value's rows fall. A
    minimum equal to the first decile leaves no training row below it: that bin's share is 0.
    """
    steps = len(quantiles) - 1  # ten bins of a tenth each
    first_index: dict[float, int] = {}
    for index, value in enumerate(quantiles[:-1]):
        first_index.setdefault(float(value), index)
    cuts = sorted({float(value) for value in quantiles[1:-1]})
    starts = [0, *(first_index[cut] for cut in cuts), steps]
    shares = [(end - start) / steps for start, end in itertools.pairwise(starts)]
    labels = [f"< {_edge(cuts[0])}"]
    labels += [f"{_edge(low)} to {_edge(high)}" for low, high in itertools.pairwise(cuts)]
    labels.append(f">= {_edge(cuts[-1])}")
    return labels, np.asarray(cuts), shares


def _edge(value: float) -> str:
    return f"{value:.4g}"


def _compare_categories(name: str, reference: Mapping[str, Any], cells: list[Any]) -> FeatureDrift:
    kind = reference["type"]
    n_rows = len(cells)
    keys = [_category_key(cell, kind) for cell in cells]
    counts = Counter(key for key in keys if key is not None)
    missing = (n_rows - counts.total()) / n_rows
    frequencies: Mapping[str, float] = reference["frequencies"]
    unknown_counts = Counter({key: n for key, n in counts.items() if key not in frequencies})
    unknown = unknown_counts.total() / n_rows
    reference_missing = float(reference["missing"])
    filled_share = 1.0 - reference_missing
    labels = [*frequencies, UNSEEN, MISSING]
    expected = [share * filled_share for share in frequencies.values()] + [0.0, reference_missing]
    actual = [counts[key] / n_rows for key in frequencies] + [unknown, missing]
    return _result(
        name,
        kind,
        labels,
        expected,
        actual,
        missing=missing,
        reference_missing=reference_missing,
        unknown=unknown,
        out_of_range=0.0,
        unknown_values=[key for key, _ in unknown_counts.most_common(UNKNOWN_SHOWN)],
    )


def _category_key(cell: Any, kind: str) -> str | None:
    """A cell as the reference keys it; None when empty."""
    if cell is None or cell == "" or (isinstance(cell, float) and math.isnan(cell)):
        return None
    if kind == BOOLEAN:
        # JSON true/false, a CSV's bool, or a 1.0/0.0 from a float array.
        return "true" if cell else "false"
    return str(cell)


def _result(
    name: str,
    kind: str,
    labels: list[str],
    expected: list[float],
    actual: list[float],
    **shares: Any,
) -> FeatureDrift:
    index = psi(expected, actual)
    buckets = [
        {"bucket": label, "expected": expected_share, "actual": actual_share}
        for label, expected_share, actual_share in zip(labels, expected, actual, strict=True)
    ]
    return FeatureDrift(
        name=name, type=kind, psi=index, verdict=verdict(index), buckets=buckets, **shares
    )


def table(drift: Drift) -> str:
    """The check as a plain-text table, one line per feature."""
    header = ("feature", "type", "PSI", "verdict", "missing", "unknown", "out of range")
    lines = [
        (
            feature.name,
            feature.type,
            f"{feature.psi:.3f}",
            feature.verdict,
            f"{percent(feature.missing)} (was {percent(feature.reference_missing)})",
            percent(feature.unknown) if feature.type != NUMBER else "-",
            percent(feature.out_of_range) if feature.type == NUMBER else "-",
        )
        for feature in drift.features
    ]
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *lines]
    )


def percent(share: float, digits: int = 1) -> str:
    # format(), not an f-string's "%" spec: this file is a template's too, where that closes a tag.
    return format(share, f".{digits}%")
