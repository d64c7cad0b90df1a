"""Liveness never depends on the model; readiness waits for it and needs no restart."""

import shutil
from pathlib import Path


def test_livez_is_ok(client):
    response = client.get("/livez")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_livez_is_ok_before_training(untrained_app):
    assert untrained_app.test_client().get("/livez").status_code == 200


def test_readyz_is_ok_once_the_model_is_loaded(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_readyz_is_503_json_before_training(untrained_app):
    response = untrained_app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.mimetype == "application/json"
    assert "make train" in response.json["error"]["message"]


def test_readyz_turns_ready_when_a_model_appears(untrained_app, model_dir):
    client = untrained_app.test_client()
    assert client.get("/readyz").status_code == 503
    shutil.copytree(model_dir, Path(untrained_app.config["MODEL_DIR"]), dirs_exist_ok=True)
    assert client.get("/readyz").status_code == 200
