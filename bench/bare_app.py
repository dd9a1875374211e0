"""The yardstick for the HTTP benchmark: a bare Flask endpoint calling the same CatBoost model on one
row, with no validation, features, rules, explanations, state or logging."""

from __future__ import annotations

import os

import numpy as np
from catboost import CatBoost
from flask import Flask, jsonify, request

from shared.modeling.registry import ModelRegistry


def create_app() -> Flask:
    model: CatBoost = ModelRegistry(os.environ["RISK_MODEL_DIR"]).load("fraud").model
    width = len(model.feature_names_)
    app = Flask("bare")

    @app.post("/v1/score")
    def score():  # noqa: ANN202
        body = request.get_json()
        row = np.full((1, width), float(body["amount"]))
        return jsonify({"score": float(model.predict(row, prediction_type="Probability")[0, 1])})

    @app.get("/readyz")
    def ready():  # noqa: ANN202
        return jsonify({"ready": True})

    return app
