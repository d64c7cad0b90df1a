"""Probes for orchestrators: liveness (the process answers) and readiness (it can predict)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app

bp = Blueprint("health", __name__)


@bp.get("/livez")
def livez() -> dict[str, str]:
    """Always 200 while the process serves requests; restart it if this fails."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> dict[str, str]:
    """200 once the model is loaded, 503 before: route no traffic here until then."""
    # The first call loads the model, so a probe readies a worker before traffic reaches it.
    current_app.extensions["model"].get()
    return {"status": "ok"}


def openapi_paths(components: dict[str, Any]) -> dict[str, Any]:
    """This module's part of the OpenAPI document (see openapi.py)."""
    components["schemas"]["Status"] = {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string", "enum": ["ok"]}},
    }
    ok = {
        "description": "OK",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Status"}}},
    }
    return {
        "/livez": {
            "get": {
                "tags": ["health"],
                "summary": "Liveness: the process answers",
                "operationId": "livez",
                "responses": {"200": ok},
            }
        },
        "/readyz": {
            "get": {
                "tags": ["health"],
                "summary": "Readiness: the model is loaded",
                "operationId": "readyz",
                "responses": {"200": ok, "503": {"$ref": "#/components/responses/ModelNotReady"}},
            }
        },
    }
