"""Keep EXPECTED_ROUTES in tests/api/test_routes.py in step with the chosen optional APIs."""

from __future__ import annotations

import ast
from collections.abc import Collection

from hooks.optional_apis import OPTIONAL_APIS, ROUTE_RANK, Route, route_rank
from hooks.source_edit import ELEMENT_TAIL, Edit, Source, Unsafe, apply_edits, render


def wire_route_test(source: str, wired: Collection[str]) -> str:
    """Add the routes of the optional APIs in `wired` to EXPECTED_ROUTES, remove the others'.

    Entries that are no optional API's route (the user's) are kept as they are.
    """
    entries = [(node, _route(node)) for node in _expected_routes(ast.parse(source)).elts]
    wanted = [route for api in OPTIONAL_APIS if api.name in wired for route in api.routes]
    unwanted = ROUTE_RANK.keys() - set(wanted)
    src = Source(source)
    edits = [Edit(*src.line_block(node, ELEMENT_TAIL), "") for node, r in entries if r in unwanted]
    kept = [(node, route_rank(r)) for node, r in entries if r not in unwanted]
    present = {route for _, route in entries}
    for route in (route for route in wanted if route not in present):
        line = f"{render(_tuple(route))},"
        edits.append(src.insert_in_order(kept, ROUTE_RANK[route], line, ELEMENT_TAIL))
    return apply_edits(source, edits)


def _expected_routes(tree: ast.Module) -> ast.Set:
    """The set literal assigned to EXPECTED_ROUTES at module level."""
    for node in tree.body:
        match node:
            case ast.Assign([ast.Name("EXPECTED_ROUTES")], ast.Set() as routes) | ast.AnnAssign(
                ast.Name("EXPECTED_ROUTES"), _, ast.Set() as routes
            ):
                return routes
    raise Unsafe("there is no `EXPECTED_ROUTES = {...}` set literal to edit")


def _route(element: ast.expr) -> Route | None:
    """The element's value if it is a literal tuple of strings, such as ("GET", "/livez")."""
    try:
        value = ast.literal_eval(element)
    except ValueError:
        return None
    return value if isinstance(value, tuple) and all(isinstance(v, str) for v in value) else None


def _tuple(route: Route) -> ast.Tuple:
    """The tuple literal for a route."""
    return ast.Tuple([ast.Constant(part) for part in route], ast.Load())
