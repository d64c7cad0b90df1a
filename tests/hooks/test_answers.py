"""parse_answers: the JSON the task sends, and what it refuses."""

from __future__ import annotations

import re

import pytest

from hooks.answers import Answers, AnswersError, parse_answers
from hooks.optional_apis import chosen_apis

VALID = '{"package_name": "iris", "serve_model": true, "apis": ["predict"], "openapi_docs": true}'


def test_parses_the_task_argument() -> None:
    assert parse_answers(VALID) == Answers("iris", True, frozenset({"predict"}), True)


@pytest.mark.parametrize("with_store", [False, True])
def test_parses_the_prediction_store_answer(with_store: bool) -> None:
    text = VALID.replace('"predict"]', '"predict", "jobs"]').replace(
        "}", f', "with_store": {str(with_store).lower()}}}'
    )
    expected = Answers("iris", True, frozenset({"predict", "jobs"}), True, with_store)
    assert parse_answers(text) == expected


def test_answers_without_with_store_mean_no_store() -> None:
    # Before 0.7.0 the task sent prediction_store; a replay of an old version runs old hooks.
    assert parse_answers(VALID).with_store is False


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "the answers are not JSON"),
        ("[]", "the answers must be a JSON object"),
        (VALID.replace('"iris"', '"../x"'), "package_name must be a Python identifier"),
        (VALID.replace("true,", '"yes",', 1), "serve_model must be a JSON bool, got 'yes'"),
        (VALID.replace('"predict"', '"explain"'), "apis holds ['explain']"),
        (VALID.replace(', "openapi_docs": true', ""), "openapi_docs must be a JSON bool, got None"),
        (VALID.replace("}", ', "with_store": "sqlite"}'), "with_store must be a JSON bool"),
        (VALID.replace("}", ', "auth": "oauth"}'), "auth is 'oauth'; the choices are"),
    ],
)
def test_refuses_what_copier_yml_would_not_allow(text: str, message: str) -> None:
    with pytest.raises(AnswersError, match=re.escape(message)):
        parse_answers(text)


@pytest.mark.parametrize(
    ("serve_model", "apis", "openapi_docs", "with_store", "chosen"),
    [
        (True, {"predict", "evaluate"}, True, False, {"docs", "predict", "evaluate"}),
        (True, {"predict_proba"}, False, False, {"predict_proba"}),
        (True, {"predict", "jobs"}, False, False, {"predict", "jobs"}),
        # GET /predictions and GET /drift come with the store, not with an API answer.
        (True, {"predict"}, False, True, {"predict", "predictions", "drift"}),
        (
            True,
            {"evaluate", "jobs"},
            True,
            True,
            {"docs", "evaluate", "jobs", "predictions", "drift"},
        ),
        (False, {"predict"}, True, False, set()),
        (False, set(), False, True, set()),
    ],
)
def test_chosen_apis(
    serve_model: bool, apis: set[str], openapi_docs: bool, with_store: bool, chosen: set[str]
) -> None:
    answers = Answers("iris", serve_model, frozenset(apis), openapi_docs, with_store)
    assert chosen_apis(answers) == chosen


def test_api_keys_are_wired_like_an_api() -> None:
    """auth=api_key chooses api/auth.py (the key check); absent (before 0.7.0), no check."""
    keyed = parse_answers(VALID.replace("}", ', "auth": "api_key"}'))
    assert keyed.auth == "api_key"
    assert chosen_apis(keyed) == {"docs", "predict", "auth"}
    assert parse_answers(VALID).auth == "none"
    assert "auth" not in chosen_apis(parse_answers(VALID))
