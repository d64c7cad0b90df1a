"""Render a project through Copier in a child process: time-limited, in a folder of its own.

The child runs `copier copy --trust --defaults --data ...` through Copier's Python API, tasks
(the AST pass) included, into a destination the server made. On timeout its whole process
group (Copier and the tasks it started) is killed, and the folder, in which the child also
keeps its temporary files (Copier's clone of the template), is removed whatever happened.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The folder holding this package, for the child's `python -m generator.render`.
_IMPORTABLE = os.pathsep.join(
    filter(None, [str(Path(__file__).resolve().parent.parent), os.environ.get("PYTHONPATH")])
)


class RenderError(Exception):
    """Copier refused or failed; the message says why."""


class RenderTimeout(RenderError):
    pass


@dataclass
class Rendered:
    files: list[str]  # relative paths, folders ending in "/"
    archive: bytes  # the project as a zip, under one top folder


def render_zip(
    source: str,
    vcs_ref: str | None,
    data: dict[str, Any],
    top: str,
    timeout: float,
    scratch: str | None = None,
) -> Rendered:
    """Render `data` from the template `source` and zip the result under `top/`.

    `top` names the zip's folder; the names inside come only from the render.
    """
    with tempfile.TemporaryDirectory(prefix="copier-ml-deploy-render-", dir=scratch) as work:
        destination = Path(work, "project")
        temporary = Path(work, "tmp")
        temporary.mkdir()
        request = json.dumps({"source": source, "vcs_ref": vcs_ref, "data": data})
        child = subprocess.Popen(
            [sys.executable, "-m", "generator.render", str(destination)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=work,
            env={**os.environ, "TMPDIR": str(temporary), "PYTHONPATH": _IMPORTABLE},
            start_new_session=True,  # its own process group, so a timeout ends its tasks too
            text=True,
        )
        try:
            output, _ = child.communicate(request, timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            raise RenderTimeout(
                f"The render took longer than {timeout:g} s and was stopped; nothing was kept."
            ) from None
        finally:
            if child.poll() is None:  # the server itself is stopping
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
        if child.returncode != 0:
            raise RenderError(output.strip().splitlines()[-1] if output.strip() else "failed")
        return Rendered(files=tree(destination), archive=archive(destination, top))


def tree(root: Path) -> list[str]:
    entries = []
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        entries.append(f"{relative}/" if path.is_dir() and not path.is_symlink() else relative)
    return entries


def archive(root: Path, top: str) -> bytes:
    """The folder as a zip, file modes kept (so executable scripts stay executable)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.write(root, f"{top}/")
        for path in sorted(root.rglob("*")):
            zipped.write(path, f"{top}/{path.relative_to(root).as_posix()}")
    return buffer.getvalue()


def main() -> None:
    """The child: read the request from stdin, render into argv[1]."""
    from copier import run_copy

    request = json.load(sys.stdin)
    try:
        run_copy(
            request["source"],
            sys.argv[1],
            data=request["data"],
            vcs_ref=request["vcs_ref"],
            defaults=True,
            unsafe=True,  # the template's tasks: the AST pass
            quiet=True,
        )
    except Exception as error:  # the server shows Copier's message, not a traceback
        print(f"{type(error).__name__}: {error}")
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
