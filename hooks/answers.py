"""The questionnaire answers the task passes as JSON, validated into a frozen dataclass."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

API_CHOICES = ("predict", "predict_proba", "evaluate", "jobs")
AUTH_CHOICES = ("none", "api_key")


class AnswersError(ValueError):
    """The argument is not the answers copier.yml's task sends."""


@dataclass(frozen=True)
class Answers:
    """The answers the pass depends on."""

    package_name: str
    serve_model: bool
    apis: frozenset[str]
    openapi_docs: bool
    with_store: bool = False  # copier.yml's with_store: a prediction store is chosen
    auth: str = "none"


def parse_answers(text: str) -> Answers:
    """Parse the task's JSON argument, naming the first answer copier.yml would not allow."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise AnswersError(f"the answers are not JSON ({error})") from None
    if not isinstance(data, dict):
        raise AnswersError(f"the answers must be a JSON object, got {text!r}")
    package_name = _field(data, "package_name", str)
    if not package_name.isidentifier():
        raise AnswersError(f"package_name must be a Python identifier, got {package_name!r}")
    apis = _field(data, "apis", list)
    unknown = [api for api in apis if api not in API_CHOICES]
    if unknown:
        raise AnswersError(f"apis holds {unknown!r}; the choices are {list(API_CHOICES)!r}")
    with_store = data.get("with_store", False)
    if not isinstance(with_store, bool):
        raise AnswersError(f"with_store must be a JSON bool, got {with_store!r}")
    auth = data.get("auth", "none")  # absent before 0.7.0
    if auth not in AUTH_CHOICES:
        raise AnswersError(f"auth is {auth!r}; the choices are {list(AUTH_CHOICES)!r}")
    return Answers(
        package_name=package_name,
        serve_model=_field(data, "serve_model", bool),
        apis=frozenset(apis),
        openapi_docs=_field(data, "openapi_docs", bool),
        with_store=with_store,
        auth=auth,
    )


def _field(data: dict[str, Any], name: str, kind: type) -> Any:
    """The answer `name`, which must be present and of type `kind`."""
    value = data.get(name)
    if not isinstance(value, kind):
        raise AnswersError(f"{name} must be a JSON {kind.__name__}, got {value!r}")
    return value
