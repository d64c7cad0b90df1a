"""The plain reference: the random forest served the way a quick Flask + scikit-learn app does.

What a first version of a model service usually looks like: train (or load) an estimator,
then in the view build a NumPy array from `request.get_json()` and call `predict`. No
validation, no error handling. The estimator is the one the template's random_forest variant
fits (RandomForestClassifier(n_estimators=100, random_state=0) on iris), so the comparison
with that variant measures the serving code, not the model. It runs behind the same nginx and
gunicorn settings (bench/run.py swaps only `wsgi_app`).
"""

import numpy as np
from flask import Flask, jsonify, request
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier

FEATURES = ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"]


def create_app() -> Flask:
    """Fit the forest on iris, once per worker, and serve POST /predict."""
    data = load_iris()
    model = RandomForestClassifier(n_estimators=100, random_state=0).fit(data.data, data.target)
    names = data.target_names
    app = Flask(__name__)

    @app.post("/predict")
    def predict():
        body = request.get_json()
        rows = body["rows"] if "rows" in body else [body["row"]]
        features = np.array([[row[name] for name in FEATURES] for row in rows], dtype=float)
        labels = [str(names[i]) for i in model.predict(features)]
        if "rows" in body:
            return jsonify(predictions=labels)
        return jsonify(prediction=labels[0])

    @app.get("/readyz")
    def readyz():
        return {"status": "ready"}

    return app
