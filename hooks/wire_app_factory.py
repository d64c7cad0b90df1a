"""Wire the chosen optional APIs into app.py: its `from .api import` and `register_blueprints`."""

from __future__ import annotations

import ast
from collections.abc import Collection, Sequence

from hooks.optional_apis import API_RANK, api_rank
from hooks.source_edit import Edit, Source, Unsafe, apply_edits, render, render_import

Registration = tuple[ast.stmt, str]  # an `app.register_blueprint(<module>.bp)` and its module


def wire_app_factory(source: str, wired: Collection[str], modules: Collection[str]) -> str:
    """Import and register the optional APIs in `wired`, and unwire the other optional APIs.

    A name imported from `.api` that is not in `modules` (those present under api/) is dangling:
    its import and registration go too. Other wiring, such as the user's own Blueprints, stays.
    """
    tree = ast.parse(source)
    imports = [node for node in tree.body if _imports_from_api(node)]
    bound = {alias.name: alias.asname or alias.name for node in imports for alias in node.names}
    remove = (API_RANK.keys() - set(wired)) | (bound.keys() - set(modules))
    add = [name for name in API_RANK if name in wired and name in modules]
    function = _register_blueprints(tree)
    calls = _registrations(function, bound) if function else []
    dropped = [stmt for stmt, module in calls if module in remove]
    _refuse_other_uses(tree, {bound[name] for name in remove & bound.keys()}, dropped)
    src = Source(source)
    edits = [
        *_import_edits(src, imports, remove, add),
        *_call_edits(src, function, calls, remove, [(name, bound.get(name, name)) for name in add]),
    ]
    return apply_edits(source, edits)


def _imports_from_api(node: ast.stmt) -> bool:
    """Whether the statement is `from .api import ...`."""
    return isinstance(node, ast.ImportFrom) and node.level == 1 and node.module == "api"


def _register_blueprints(tree: ast.Module) -> ast.FunctionDef | None:
    """The module-level `def register_blueprints(app, ...)`, if there is one."""
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "register_blueprints":
            return node if node.args.args else None
    return None


def _registrations(function: ast.FunctionDef, bound: dict[str, str]) -> list[Registration]:
    """The `app.register_blueprint(<name>.bp)` statements directly in the function's body."""
    app = function.args.args[0].arg
    module_of = {name: module for module, name in bound.items()}
    found = []
    for stmt in function.body:
        match stmt:
            case ast.Expr(
                ast.Call(
                    func=ast.Attribute(ast.Name(owner), "register_blueprint"),
                    args=[ast.Attribute(ast.Name(name), "bp")],
                )
            ) if owner == app:
                found.append((stmt, module_of.get(name, name)))
    return found


def _refuse_other_uses(tree: ast.Module, names: set[str], dropped: list[ast.stmt]) -> None:
    """Refuse to unimport a name the file still uses outside the registrations being dropped."""
    inside = {id(node) for stmt in dropped for node in ast.walk(stmt)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in names and id(node) not in inside:
            raise Unsafe(f"line {node.lineno} uses `{node.id}`, whose import the pass would remove")


def _import_edits(
    src: Source, imports: list[ast.ImportFrom], remove: set[str], add: list[str]
) -> list[Edit]:
    """Drop the removed names from every `from .api import`; add the missing ones to the first."""
    imported = {alias.name for node in imports for alias in node.names}
    missing = [ast.alias(name) for name in add if name not in imported]
    if missing and not imports:
        raise Unsafe("there is no `from .api import ...` to add the chosen APIs to")
    edits = []
    for index, node in enumerate(imports):
        names = [alias for alias in node.names if alias.name not in remove]
        names += missing if index == 0 else []
        if names != node.names:
            edits.append(_rewrite_import(src, node, names))
    return edits


def _rewrite_import(src: Source, node: ast.ImportFrom, names: list[ast.alias]) -> Edit:
    """Replace the import with one of `names`, sorted as isort sorts them, in the same layout."""
    if not names:
        return Edit(*src.line_block(node), "")
    if src.has_comment(node):
        raise Unsafe(f"line {node.lineno}: the pass would drop the comments inside this import")
    new = ast.ImportFrom(module=node.module, names=sorted(names, key=_isort_key), level=node.level)
    text = render_import(
        new, exploded=node.end_lineno > node.lineno, trailing=src.trailing_width(node)
    )
    return Edit(*src.span(node), text)


def _isort_key(alias: ast.alias) -> tuple[int, str, str]:
    """isort's default member order: CONSTANTS, then Classes, then the rest, case-insensitively."""
    name = alias.name
    kind = 0 if name.isupper() and len(name) > 1 else 1 if name[0].isupper() else 2
    return kind, name.lower(), alias.asname or ""


def _call_edits(
    src: Source,
    function: ast.FunctionDef | None,
    calls: list[Registration],
    remove: set[str],
    add: Sequence[tuple[str, str]],
) -> list[Edit]:
    """Drop the removed registrations; register the added (module, imported name) in order."""
    edits = [Edit(*src.line_block(stmt), "") for stmt, module in calls if module in remove]
    kept = [(stmt, api_rank(module)) for stmt, module in calls if module not in remove]
    registered = {module for _, module in calls}
    for module, name in add:
        if module in registered:
            continue
        if function is None:
            raise Unsafe(f"there is no `register_blueprints(app)` to register `{module}` in")
        code = render(_register_call(function.args.args[0].arg, name))
        if kept:
            edits.append(src.insert_in_order(kept, API_RANK[module], code))
        else:
            edits.append(src.insert_line(function.body[-1], code, after=True))
    return edits


def _register_call(app: str, name: str) -> ast.Expr:
    """The statement `<app>.register_blueprint(<name>.bp)`."""
    blueprint = ast.Attribute(ast.Name(name, ast.Load()), "bp", ast.Load())
    method = ast.Attribute(ast.Name(app, ast.Load()), "register_blueprint", ast.Load())
    return ast.Expr(ast.Call(method, [blueprint], []))
