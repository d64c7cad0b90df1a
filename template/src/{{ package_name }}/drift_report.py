"""The drift report: one offline HTML page with the check's table and, per drifting feature,
its buckets' training and window shares.

Built like the training report (report.py, whose page and table helpers it uses): PNG plots
embedded in the page where matplotlib is installed (the `train` extra), the same numbers as
tables everywhere, the service's image included, where it is not.
"""

from __future__ import annotations

from typing import Any

from .drift import MODERATE, SIGNIFICANT, Drift, FeatureDrift, percent
from .report import _PAGE, _image, _png, _table, _text


def render(drift: Drift, window: str) -> str:
    """The page, for a check of `drift` over the rows `window` describes."""
    try:
        plots = {_file(feature): _plot(feature) for feature in drift.drifting}
    except ModuleNotFoundError as error:
        if (error.name or "").partition(".")[0] != "matplotlib":
            raise
        plots = {}
    title = f"Drift of model version {drift.model_version}"
    rows = [
        (
            feature.name,
            feature.type,
            f"{feature.psi:.4f}",
            feature.verdict,
            f"{percent(feature.missing, 2)} (training {percent(feature.reference_missing, 2)})",
            percent(feature.unknown, 2),
            percent(feature.out_of_range, 2),
        )
        for feature in drift.features
    ]
    sections = [
        f"<h1>{_text(title)}</h1>",
        f"<p>{drift.n_rows} rows ({_text(window)}) compared with the {drift.reference_rows} "
        "training rows by the population stability index (PSI): below "
        f"{MODERATE} stable, {MODERATE} to {SIGNIFICANT} a moderate shift, {SIGNIFICANT} and "
        "above drift. Unknown: categories training never saw; out of range: numbers beyond the "
        "training minimum or maximum.</p>",
        _table(
            "drift",
            ("feature", "type", "PSI", "verdict", "missing", "unknown", "out of range"),
            rows,
        ),
    ]
    if drift.drifting and not plots:
        sections.append(
            '<p class="note">No plots: matplotlib is not installed here. Install the training '
            "extra (<code>pip install '.[train]'</code>) to have them.</p>"
        )
    sections += [_feature(feature, plots) for feature in drift.drifting]
    if not drift.drifting:
        sections.append("<p>No feature has drifted.</p>")
    return _PAGE.substitute(title=_text(title), body="\n".join(sections))


def _feature(feature: FeatureDrift, plots: dict[str, bytes]) -> str:
    rows = [
        (bucket["bucket"], percent(bucket["expected"], 2), percent(bucket["actual"], 2))
        for bucket in feature.buckets
    ]
    unknown = (
        f"<p>Unknown values, most frequent first: {_text(', '.join(feature.unknown_values))}</p>\n"
        if feature.unknown_values
        else ""
    )
    return (
        f"<h2>{_text(feature.name)}: PSI {feature.psi:.4f} ({feature.verdict})</h2>\n"
        + unknown
        + _image(plots, _file(feature), _text(f"{feature.name}: training and window shares"))
        + _table(f"buckets-{feature.name}", ("bucket", "training", "window"), rows)
    )


def _file(feature: FeatureDrift) -> str:
    return f"{_text(feature.name)}.png"  # also an HTML attribute


def _plot(feature: FeatureDrift) -> bytes:
    from matplotlib.figure import Figure

    buckets: list[dict[str, Any]] = feature.buckets
    positions = range(len(buckets))
    figure = Figure(figsize=(7, 3.5), layout="constrained")
    axes = figure.subplots()
    width = 0.4
    axes.bar(
        [x - width / 2 for x in positions],
        [bucket["expected"] for bucket in buckets],
        width,
        label="training",
        color="tab:blue",
    )
    axes.bar(
        [x + width / 2 for x in positions],
        [bucket["actual"] for bucket in buckets],
        width,
        label="window",
        color="tab:orange",
    )
    axes.set_xticks(list(positions), [bucket["bucket"] for bucket in buckets], rotation=45)
    axes.tick_params(axis="x", labelsize=8)
    axes.set_ylabel("share of rows")
    axes.set_title(f"{feature.name}: PSI {feature.psi:.3f}")
    axes.legend()
    return _png(figure)
