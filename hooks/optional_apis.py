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
    OptionalApi(
        "docs",
        (("GET", "/openapi.json"), ("GET", "/docs/"), ("GET", "/docs/start.js")),
        lambda a: a.openapi_docs,
    ),
    OptionalApi("predict", (("POST", "/predict"),), lambda a: "predict" in a.apis),
    OptionalApi(
        "predict_proba", (("POST", "/predict_proba"),), lambda a: "predict_proba" in a.apis
    ),
    OptionalApi("evaluate", (("POST", "/evaluate"),), lambda a: "evaluate" in a.apis),
    OptionalApi(
        "jobs",
        (("POST", "/jobs"), ("POST", "/jobs/train"), ("GET", "/jobs/<job_id>")),
        lambda a: "jobs" in a.apis,
    ),
    OptionalApi("predictions", (("GET", "/predictions"),), lambda a: a.with_store),
    OptionalApi("drift", (("GET", "/drift"),), lambda a: a.with_store),
    # No routes: the API-key check every other route passes first (api/auth.py).
    OptionalApi("auth", (), lambda a: a.auth == "api_key"),
)

# Ranks order inserted lines; iterating either mapping follows the canonical order.
API_RANK = {api.name: rank for rank, api in enumerate(OPTIONAL_APIS)}
ROUTE_RANK = {route: rank for rank, route in enumerate(r for a in OPTIONAL_APIS for r in a.routes)}

# The template's always-present APIs rank before every optional one. Ranking them (and not
# the user's lines) means a new line goes right after the template's own lines, never next
# to lines the user appended, so `copier update` merges both without a conflict.
CORE_RANK = -1
CORE_APIS = frozenset({"health", "model_info"})
CORE_ROUTES = frozenset({("GET", "/livez"), ("GET", "/readyz"), ("GET", "/model")})


def api_rank(module: str) -> int | None:
    """Where a registration of `module` sorts among the template's; None for the user's own."""
    return CORE_RANK if module in CORE_APIS else API_RANK.get(module)


def route_rank(route: Route | None) -> int | None:
    """Where an EXPECTED_ROUTES entry sorts among the template's; None for the user's own."""
    return CORE_RANK if route in CORE_ROUTES else ROUTE_RANK.get(route)


def chosen_apis(answers: Answers) -> frozenset[str]:
    """Names of the optional APIs the answers turn on (none when no model is served)."""
    if not answers.serve_model:
        return frozenset()
    return frozenset(api.name for api in OPTIONAL_APIS if api.chosen(answers))
