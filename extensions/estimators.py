"""The scikit-learn estimator behind each (estimator family, problem type) answer.

One table, read by copier.yml's computed values, so the questionnaire labels, the generated
pipeline and the tests agree on which class an answer means.
"""

from __future__ import annotations

from typing import NamedTuple

from jinja2 import Environment
from jinja2.ext import Extension


class Estimator(NamedTuple):
    module: str
    name: str
    arguments: str  # keyword arguments, as Python source, for the generated pipeline
    needs_scaling: bool  # linear models want standardised features; trees do not
    # skl2onnx converts it to an ONNX graph that onnxruntime runs with scikit-learn's results.
    converts_to_onnx: bool
    # Its fitted pipeline is an affine map (impute, standardise, coefficients) that the service
    # evaluates with NumPy alone, in scikit-learn's own float64 arithmetic (model_format=numpy).
    serves_with_numpy: bool


ESTIMATORS: dict[tuple[str, str], Estimator] = {
    ("linear", "classification"): Estimator(
        "sklearn.linear_model", "LogisticRegression", "max_iter=1000", True, True, True
    ),
    ("linear", "regression"): Estimator(
        "sklearn.linear_model", "Ridge", "alpha=1.0", True, True, True
    ),
    ("random_forest", "classification"): Estimator(
        "sklearn.ensemble",
        "RandomForestClassifier",
        "n_estimators=100, random_state=0",
        False,
        True,
        False,
    ),
    ("random_forest", "regression"): Estimator(
        "sklearn.ensemble",
        "RandomForestRegressor",
        "n_estimators=100, random_state=0",
        False,
        True,
        False,
    ),
    # skl2onnx 1.20's converter for these writes each node's boolean missing-value direction
    # into an integer attribute, which onnx 1.23 refuses ("Expected an int, got a boolean").
    ("gradient_boosting", "classification"): Estimator(
        "sklearn.ensemble", "HistGradientBoostingClassifier", "random_state=0", False, False, False
    ),
    ("gradient_boosting", "regression"): Estimator(
        "sklearn.ensemble", "HistGradientBoostingRegressor", "random_state=0", False, False, False
    ),
}

# The data set each problem type trains on by default: both ship inside scikit-learn.
SAMPLE_DATASETS = {"classification": "iris", "regression": "diabetes"}


def lookup(family: str, problem_type: str) -> Estimator:
    """The estimator for an answer pair; a KeyError names both answers if the pair is unknown."""
    try:
        return ESTIMATORS[family, problem_type]
    except KeyError:
        raise KeyError(
            f"no estimator for estimator={family!r}, problem_type={problem_type!r}"
        ) from None


def estimator_module(family: str, problem_type: str) -> str:
    return lookup(family, problem_type).module


def estimator_class(family: str, problem_type: str) -> str:
    return lookup(family, problem_type).name


def estimator_arguments(family: str, problem_type: str) -> str:
    return lookup(family, problem_type).arguments


def needs_scaling(family: str) -> bool:
    """Whether the family wants standardised inputs (the same for both problem types)."""
    return lookup(family, "classification").needs_scaling


def converts_to_onnx(family: str, problem_type: str) -> bool:
    return lookup(family, problem_type).converts_to_onnx


def serves_with_numpy(family: str, problem_type: str) -> bool:
    return lookup(family, problem_type).serves_with_numpy


def sample_dataset(problem_type: str) -> str:
    return SAMPLE_DATASETS[problem_type]


class EstimatorExtension(Extension):
    """Registers the estimator filters with Copier's Jinja environment."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters.update(
            estimator_module=estimator_module,
            estimator_class=estimator_class,
            estimator_arguments=estimator_arguments,
            needs_scaling=needs_scaling,
            converts_to_onnx=converts_to_onnx,
            serves_with_numpy=serves_with_numpy,
            sample_dataset=sample_dataset,
        )
