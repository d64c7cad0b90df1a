"""The names derived from a project name, and the validator message for bad ones."""

from __future__ import annotations

import pytest

from extensions.naming import MAX_SLUG_LENGTH, package_name, project_name_error, slugify


@pytest.mark.parametrize(
    ("name", "slug", "package"),
    [
        ("Iris Classifier", "iris-classifier", "iris_classifier"),
        ("  Churn   Model v2! ", "churn-model-v2", "churn_model_v2"),
        ("Prévision des Ventes", "prevision-des-ventes", "prevision_des_ventes"),
        ("already-a-slug", "already-a-slug", "already_a_slug"),
        ("UPPER_snake", "upper-snake", "upper_snake"),
    ],
)
def test_derived_names(name, slug, package):
    assert slugify(name) == slug
    assert package_name(name) == package
    assert project_name_error(name) == ""


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "at least one letter"),
        ("!!!", "at least one letter"),
        ("2fast", "must start with a letter"),
        ("class", "shadow"),
        ("Flask", "shadow"),
        ("x" * (MAX_SLUG_LENGTH + 1), f"{MAX_SLUG_LENGTH} characters"),
    ],
)
def test_bad_project_names_say_what_to_change(name, message):
    assert message in project_name_error(name)


def test_slugify_is_idempotent():
    for name in ["Iris Classifier", "a--b", "Prévision"]:
        assert slugify(slugify(name)) == slugify(name)
