"""The optional APIs in canonical order: module, routes, and the answer that chooses each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hooks.answers import Answers

Route = tuple[str, str]


@dataclass(frozen=True)
class OptionalApi:
    """An API the questionnaire can turn on: module `api/<name>.py`, exposing Blueprint `bp`."""

    name: str
    routes: tuple[Route, ...]
    chosen: Callable[[Answers], bool]


OPTIONAL_APIS = (
    OptionalApi("docs", (("GET", "/openapi.json"), ("GET", "/docs/")), lambda a: a.openapi_docs),
    OptionalApi("predict", (("POST", "/predict"),), lambda a: "predict" in a.apis),
    OptionalApi(
        "predict_proba", (("POST", "/predict_proba"),), lambda a: "predict_proba" in a.apis
    ),
    OptionalApi("evaluate", (("POST", "/evaluate"),), lambda a: "evaluate" in a.apis),
)

# Ranks order inserted lines; iterating either mapping follows the canonical order.
API_RANK = {api.name: rank for rank, api in enumerate(OPTIONAL_APIS)}
ROUTE_RANK = {route: rank for rank, route in enumerate(r for a in OPTIONAL_APIS for r in a.routes)}


def chosen_apis(answers: Answers) -> frozenset[str]:
    """Names of the optional APIs the answers turn on (none when no model is served)."""
    if not answers.serve_model:
        return frozenset()
    return frozenset(api.name for api in OPTIONAL_APIS if api.chosen(answers))
