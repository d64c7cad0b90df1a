"""What the training data looked like, per feature: the reference a drift check compares the
rows the service sees with.

Training records it in metadata.json under "drift_reference"; loading a model ignores it, and
GET /model leaves it out (it grows with the features and their categories). Its format:

    {
      "n_rows": 120,                        # the rows it describes: the training part
      "features": {
        "age": {"type": "number", "missing": 0.02,
                "quantiles": [18.0, 23.0, ..., 71.0, 90.0],
                "bin_shares": [0.1, 0.1, ..., 0.1]},
        "member": {"type": "boolean", "missing": 0.0,
                   "frequencies": {"false": 0.61, "true": 0.39}},
        "region": {"type": "category", "missing": 0.01,
                   "frequencies": {"north": 0.34, "south": 0.33, "west": 0.33}}
      }
    }

- "missing": the share of all rows whose cell is empty (NaN, or "" in a category column).
- "quantiles" (numbers): the filled cells' minimum, nine deciles and maximum, in order (NumPy's
  default, linear interpolation); null when every cell is empty. Eleven edges make ten bins
  of equal training share, the usual reference for a population stability index.
- "bin_shares" (numbers): the filled cells' share in each bin between the distinct inner
  deciles, a value equal to one counting in the bin above it (drift.py's buckets). A tenth
  each for continuous values; exact where values repeat and deciles tie or fall on them.
- "frequencies" (booleans and categories): each value's share of the filled cells; they sum
  to 1. Booleans are keyed "true" and "false", as CSV files write them.

NumPy alone, like metrics.py, so that a check can read it where scikit-learn is not installed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .features import BOOLEAN, CATEGORY, NUMBER

# The minimum, the nine deciles and the maximum.
QUANTILES = np.linspace(0.0, 1.0, 11)


def describe(
    features: np.ndarray, feature_names: Sequence[str], feature_types: Mapping[str, str]
) -> dict[str, Any]:
    """The reference statistics of `features` (rows x features, in `feature_names` order)."""
    return {
        "n_rows": len(features),
        "features": {
            name: _describe_column(features[:, column], feature_types[name])
            for column, name in enumerate(feature_names)
        },
    }


def _describe_column(cells: np.ndarray, kind: str) -> dict[str, Any]:
    n_rows = len(cells)
    if kind == NUMBER:
        values = cells.astype(np.float64)
        filled = values[~np.isnan(values)]
        quantiles = np.quantile(filled, QUANTILES).tolist() if len(filled) else None
        bin_shares = None
        if quantiles is not None:
            cuts = np.unique(quantiles[1:-1])
            in_bins = np.bincount(
                np.searchsorted(cuts, filled, side="right"), minlength=len(cuts) + 1
            )
            bin_shares = (in_bins / len(filled)).tolist()
        return {
            "type": NUMBER,
            "missing": _share(n_rows - len(filled), n_rows),
            "quantiles": quantiles,
            "bin_shares": bin_shares,
        }
    if kind == BOOLEAN:
        # True/False, or NaN for an empty cell (tables.py); a float array holds 1.0/0.0.
        flags = [bool(value) for value in cells.tolist() if value == value]
        keys = ["true" if value else "false" for value in flags]
    elif kind == CATEGORY:
        keys = [value for value in cells.tolist() if value != ""]
    else:
        raise ValueError(f"unknown feature type {kind!r}")
    counts = Counter(keys)
    return {
        "type": kind,
        "missing": _share(n_rows - len(keys), n_rows),
        "frequencies": {key: counts[key] / len(keys) for key in sorted(counts)},
    }


def _share(count: int, total: int) -> float:
    return count / total if total else 0.0
