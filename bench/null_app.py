"""The null endpoint: the ceiling the benchmark compares the service against.

A Flask app that answers POST /predict with a constant JSON document, served by the rendered
project's own gunicorn settings behind its own nginx (bench/run.py swaps only `wsgi_app`).
It reads the request body, as any endpoint must, but does no parsing and no model work:
what it costs is the HTTP chain alone. /readyz answers 200 so the harness can wait on it.
"""

from flask import Flask, request

CONSTANT = {"prediction": "setosa"}


def create_app() -> Flask:
    """The null app: constant answers, no model."""
    app = Flask(__name__)

    @app.post("/predict")
    def predict():
        request.get_data()  # the body is read, not parsed
        return CONSTANT

    @app.get("/readyz")
    def readyz():
        return {"status": "ready"}

    return app
