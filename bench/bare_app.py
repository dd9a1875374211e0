"""The yardstick for the HTTP benchmark: a bare Flask endpoint calling the same model on one row built
straight from the body, with no validation, features, rules, explanations, state or logging. For the
disease service that is the calibrated coronary-heart-disease classifier alone."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from catboost import CatBoost, Pool
from flask import Flask, jsonify, request

from services.registry import service as service_named
from shared.modeling.registry import ModelRegistry


def create_app(service: str = "fraud") -> Flask:
    definition = service_named(service)
    model = ModelRegistry(Path(os.environ["RISK_MODEL_DIR"])).load(service, loader=definition.load_model).model
    model = getattr(model, "catboost", model)  # CatBoost's own predict, not the compiled trees the service uses
    if not isinstance(model, CatBoost):
        return _calibrated_classifier_app(model.conditions["chd"].classifier)
    feature_set = definition.feature_set
    names = list(model.feature_names_)
    app = Flask("bare")

    categorical = list(feature_set.categorical)

    @app.post("/v1/score")
    def score():
        body = request.get_json()
        values = [body.get(name, body.get("amount", 0.0)) for name in names]
        if categorical:  # the model needs to know which columns are categories; a row as a list is cheapest
            data = Pool([values], cat_features=[names.index(c) for c in categorical], feature_names=names)
        else:  # the cheapest input CatBoost takes
            data = np.array([values], dtype=np.float64)
        return jsonify({"score": float(model.predict(data)[0])})

    @app.get("/readyz")
    def ready():
        return jsonify({"ready": True})

    return app


def _calibrated_classifier_app(classifier: Any) -> Flask:
    names = list(classifier.features)
    app = Flask("bare")

    @app.post("/v1/score")
    def score():
        body = request.get_json()
        values = {name: _plain(body.get(name)) for name in names}
        values["male"] = 1.0 if body.get("sex") == "male" else 0.0
        return jsonify({"score": float(classifier.probability(pd.DataFrame([values]))[0])})

    @app.get("/readyz")
    def ready():
        return jsonify({"ready": True})

    return app


def _plain(value: Any) -> float:
    if isinstance(value, dict):  # a laboratory value with its unit: the bare app takes the number as it is
        value = value.get("value")
    return float("nan") if value is None else float(value)
