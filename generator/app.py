"""The generator page: the template's questions in a browser, the project as a zip.

Routes: `/` the page; `POST /api/state` the questions for the answers given so far (each
visible or hidden, its choices enabled or disabled with the reason, its default, its
validator's message); `POST /api/preview` the file tree those answers render; `POST
/download` the rendered project as a zip.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Flask, Response, abort, jsonify, render_template, request

from generator.questionnaire import Questionnaire, Walk
from generator.render import Rendered, RenderError, RenderTimeout, render_zip

# The zip's folder is the project's slug when it is one (a question of the template computes
# it); any other value gives a neutral name rather than a path.
SAFE_FOLDER = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
CLIENT_COOKIE = "generator-client"


class Renders:
    """At most one render per client at a time, and at most `limit` in all."""

    def __init__(self, limit: int) -> None:
        self._slots = threading.BoundedSemaphore(limit)
        self._busy: set[str] = set()
        self._lock = threading.Lock()

    @contextmanager
    def slot(self, client: str, wait: float) -> Iterator[None]:
        with self._lock:
            if client in self._busy:
                abort(_error(429, "A render of yours is still running: wait for it to finish."))
            self._busy.add(client)
        try:
            if not self._slots.acquire(timeout=wait):
                abort(_error(503, "Other renders are running: try again in a moment."))
            try:
                yield
            finally:
                self._slots.release()
        finally:
            with self._lock:
                self._busy.discard(client)


def create_app(
    template: str,
    vcs_ref: str | None = None,
    render_timeout: float = 180,
    concurrent_renders: int = 2,
    scratch: str | None = None,
) -> Flask:
    """The page for the template at `template` (a folder, a git repository or a URL).

    copier.yml is read once, here: a changed questionnaire shows after a restart.
    `scratch` is where render folders are made (the system's temporary folder by default).
    """
    if Path(template).is_dir():
        # Recorded as the project's _src_path: absolute, so `copier update` finds it anywhere.
        template = str(Path(template).resolve())
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024  # answers only
    questionnaire = Questionnaire(template, vcs_ref)
    renders = Renders(concurrent_renders)
    app.extensions["questionnaire"] = questionnaire

    @app.get("/")
    def page() -> Response:
        response = Response(
            render_template("index.html", source=template, version=questionnaire.version)
        )
        if CLIENT_COOKIE not in request.cookies:
            response.set_cookie(CLIENT_COOKIE, secrets.token_urlsafe(16), samesite="Strict")
        return response

    @app.post("/api/state")
    def state() -> Response:
        walk = questionnaire.walk(_given())
        return jsonify(questions=[item.as_json() for item in walk.fields], errors=walk.errors)

    @app.post("/api/preview")
    def preview() -> Response:
        rendered = _render(_given())
        return jsonify(files=rendered.files)

    @app.post("/download")
    def download() -> Response:
        folder, rendered = _folder_and_render(_given())
        return Response(
            rendered.archive,
            mimetype="application/zip",
            headers={"Content-Disposition": f'attachment; filename="{folder}.zip"'},
        )

    def _given() -> dict[str, Any]:
        """The answers posted, as JSON or as the download form's one `answers` field."""
        payload = (
            request.get_json(silent=True)
            if request.is_json
            else _parse(request.form.get("answers", "{}"))
        )
        answers = payload.get("answers", payload) if isinstance(payload, dict) else None
        if not isinstance(answers, dict):
            abort(_error(400, "Send the answers as a JSON object."))
        # Only the template's questions: any other key is dropped before Copier sees it.
        return {name: answers[name] for name in questionnaire.names if name in answers}

    def _folder_and_render(given: dict[str, Any]) -> tuple[str, Rendered]:
        walk = questionnaire.walk(given)
        if walk.errors:
            abort(_error(422, "Some answers are refused.", errors=walk.errors))
        slug = str(walk.answers.get("project_slug", ""))
        folder = slug if SAFE_FOLDER.fullmatch(slug) else "project"
        return folder, _rendered(walk, folder)

    def _render(given: dict[str, Any]) -> Rendered:
        return _folder_and_render(given)[1]

    def _rendered(walk: Walk, folder: str) -> Rendered:
        client = request.cookies.get(CLIENT_COOKIE) or request.remote_addr or "local"
        with renders.slot(client, wait=render_timeout):
            try:
                return render_zip(
                    template, vcs_ref, walk.data, folder, timeout=render_timeout, scratch=scratch
                )
            except RenderTimeout as error:
                abort(_error(504, str(error)))
            except RenderError as error:
                abort(_error(500, f"Copier could not render these answers: {error}"))

    return app


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        abort(_error(400, "The answers are not valid JSON."))


def _error(status: int, message: str, **extra: Any) -> Response:
    response = jsonify(error=message, **extra)
    response.status_code = status
    return response
