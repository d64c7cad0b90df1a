"""The task Copier runs in the rendered project: wire the chosen APIs, then prune empty folders."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

from hooks.answers import Answers, AnswersError, parse_answers
from hooks.optional_apis import chosen_apis
from hooks.prune import prune_empty_dirs
from hooks.source_edit import Unsafe
from hooks.wire_app_factory import wire_app_factory
from hooks.wire_route_test import wire_route_test

MISSING_ASTOR = (
    "copier-ml-deploy: the template's hooks need astor in Copier's environment. "
    "Install it with: pipx inject copier astor copier-template-extensions  "
    "(or: uv tool install copier --with astor --with copier-template-extensions)"
)


def main(argv: Sequence[str]) -> int:
    """Run the pass on the project in the working directory; `argv` is [answers as JSON]."""
    if not _has_astor():
        print(MISSING_ASTOR, file=sys.stderr)
        return 1
    if len(argv) != 1:
        _say("usage: python <template>/hooks '<answers as JSON>'")
        return 2
    try:
        answers = parse_answers(argv[0])
        project = Path.cwd()
        status = wire_project(project, answers)
        prune_empty_dirs(project / "src" / answers.package_name)
        prune_empty_dirs(project / "tests")
    except AnswersError as error:
        _say(f"invalid answers: {error}")
        return 2
    except Exception as error:  # One line for the user to report, never a traceback.
        _say(f"internal error, please report it: {type(error).__name__}: {error}")
        return 1
    return status


def wire_project(project: Path, answers: Answers) -> int:
    """Wire the app factory and the route test if they exist; 1 if one of them does not parse."""
    package = Path("src", answers.package_name)
    modules = _api_modules(project / package / "api")
    chosen = chosen_apis(answers)
    for name in sorted(chosen - modules):
        _say(f"warning: {name} is chosen but {package}/api/{name}.py is missing; it stays unwired")
    wired = chosen & modules
    transforms = {
        package / "app.py": partial(wire_app_factory, wired=wired, modules=modules),
        Path("tests", "api", "test_routes.py"): partial(wire_route_test, wired=wired),
    }
    return max(_rewrite(project, path, transform) for path, transform in transforms.items())


def _rewrite(project: Path, path: Path, transform: Callable[[str], str]) -> int:
    """Apply the transform to project/path if it exists; 1 on a syntax error, else 0."""
    file = project / path
    if not file.is_file():
        return 0
    # Bytes in and out, so that line endings are never translated.
    source = file.read_bytes().decode("utf-8")
    try:
        result = transform(source)
    except SyntaxError as error:
        _say(f"{path}:{error.lineno}: syntax error ({error.msg}); fix it and run Copier again")
        return 1
    except Unsafe as reason:
        _say(f"warning: {path} left untouched: {reason}. Wire the optional APIs in it by hand.")
        return 0
    if result != source:
        file.write_bytes(result.encode("utf-8"))
    return 0


def _api_modules(api: Path) -> frozenset[str]:
    """The modules under api/: `<name>.py` files and `<name>/__init__.py` packages."""
    files = {path.stem for path in api.glob("*.py")}
    return frozenset(files | {path.parent.name for path in api.glob("*/__init__.py")})


def _has_astor() -> bool:
    """Whether astor imports (it must be installed beside Copier, not in the project)."""
    try:
        import astor  # noqa: F401
    except ImportError:
        return False
    return True


def _say(message: str) -> None:
    """Print a message for the user running Copier."""
    print(f"copier-ml-deploy: {message}", file=sys.stderr)
