"""Every (family, problem type) answer names a real scikit-learn estimator of the right kind."""

from __future__ import annotations

import importlib

import pytest
from sklearn.base import is_classifier, is_regressor

from extensions.estimators import (
    ESTIMATORS,
    converts_to_onnx,
    lookup,
    needs_scaling,
    sample_dataset,
    serves_with_numpy,
)

FAMILIES = ["linear", "random_forest", "gradient_boosting"]
PROBLEM_TYPES = ["classification", "regression"]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("problem_type", PROBLEM_TYPES)
def test_each_answer_builds_an_estimator_of_its_problem_type(family, problem_type):
    spec = lookup(family, problem_type)
    estimator_type = getattr(importlib.import_module(spec.module), spec.name)
    estimator = eval(f"estimator_type({spec.arguments})", {"estimator_type": estimator_type})
    check = is_classifier if problem_type == "classification" else is_regressor
    assert check(estimator)


def test_the_table_covers_exactly_the_questionnaire():
    assert set(ESTIMATORS) == {(f, p) for f in FAMILIES for p in PROBLEM_TYPES}


def test_only_linear_models_ask_for_scaling():
    assert [needs_scaling(family) for family in FAMILIES] == [True, False, False]


@pytest.mark.parametrize("problem_type", PROBLEM_TYPES)
def test_only_gradient_boosting_has_no_onnx_converter(problem_type):
    # The render matrix trains and checks an ONNX project for each family that converts.
    converts = [converts_to_onnx(family, problem_type) for family in FAMILIES]
    assert converts == [True, True, False]


@pytest.mark.parametrize("problem_type", PROBLEM_TYPES)
def test_only_linear_models_serve_with_numpy(problem_type):
    # model_format=numpy evaluates imputer, scaler and coefficients: linear models alone.
    served = [serves_with_numpy(family, problem_type) for family in FAMILIES]
    assert served == [True, False, False]


def test_an_unknown_pair_names_both_answers():
    with pytest.raises(KeyError, match="estimator='svm', problem_type='ranking'"):
        lookup("svm", "ranking")


def test_sample_data_sets_ship_with_scikit_learn():
    import sklearn.datasets

    for problem_type in PROBLEM_TYPES:
        loader = getattr(sklearn.datasets, f"load_{sample_dataset(problem_type)}")
        assert len(loader().data) > 100
