"""The BentoML peer: the rendered service's fitted pipeline behind BentoML 1.4's service API.

Written as BentoML's documentation writes a scikit-learn service: the model from BentoML's
model store (bench/peer_train.py puts it there), one `@bentoml.api` taking a NumPy array.
`bentoml serve bentoml_service:Predictor` runs it (bench/peers.py does, under supervisord).
"""

from __future__ import annotations

import os

import bentoml
import numpy as np


# As many worker processes as the other stacks' gunicorn workers (WEB_CONCURRENCY).
@bentoml.service(workers=int(os.environ.get("WEB_CONCURRENCY", "2")))
class Predictor:
    def __init__(self) -> None:
        self.model = bentoml.sklearn.load_model("bench_model:latest")

    @bentoml.api
    def predict(self, input: np.ndarray) -> list:
        return self.model.predict(input).tolist()
