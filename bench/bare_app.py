"""The yardstick for the HTTP benchmark: a bare Flask endpoint calling the same CatBoost model on one
row built straight from the body, with no validation, features, rules, explanations, state or logging."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from catboost import Pool
from flask import Flask, jsonify, request

from services.cli import SERVICES
from shared.modeling.registry import ModelRegistry


def create_app(service: str = "fraud") -> Flask:
    model = ModelRegistry(os.environ["RISK_MODEL_DIR"]).load(service).model
    feature_set = SERVICES[service].definition().feature_set
    names = list(model.feature_names_)
    app = Flask("bare")

    categorical = list(feature_set.categorical)

    @app.post("/v1/score")
    def score():  # noqa: ANN202
        body = request.get_json()
        values = [body.get(name, body.get("amount", 0.0)) for name in names]
        if categorical:  # the model needs to know which columns are categories
            data = Pool(pd.DataFrame([values], columns=names), cat_features=categorical)
        else:  # the cheapest input CatBoost takes
            data = np.array([values], dtype=np.float64)
        return jsonify({"score": float(model.predict(data)[0])})

    @app.get("/readyz")
    def ready():  # noqa: ANN202
        return jsonify({"ready": True})

    return app
