"""Feature contributions (CatBoost's exact tree SHAP values) turned into the top reasons of a score."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from catboost import CatBoost, Pool

from shared.modeling.inference import catboost_threads


@dataclass(frozen=True)
class Contribution:
    feature: str
    value: float
    contribution: float


# CatBoost can precompute SHAP over every leaf of every tree (about half a second for 600 trees of depth
# 6, whatever the number of rows) or walk each row's paths (several ms a row); both give the same values.
PRECALC_FROM_ROWS = 64


def shap_values(
    model: CatBoost, features: np.ndarray, names: Sequence[str], cat_features: Sequence[str] = ()
) -> np.ndarray:
    """Exact SHAP values per row and feature (on the model's raw, log-odds or log scale), without the bias."""
    # Numbers as a float array (CatBoost reads it in a fraction of the time a list of rows takes); rows with
    # categories as lists, which CatBoost reads whatever the types of their cells.
    rows = features.tolist() if cat_features else np.asarray(features, dtype=np.float64)
    pool = Pool(rows, feature_names=list(names), cat_features=list(cat_features) or None)
    mode = "UsePreCalc" if len(features) >= PRECALC_FROM_ROWS else "NoPreCalc"
    values = model.get_feature_importance(
        pool, type="ShapValues", shap_mode=mode, thread_count=catboost_threads(len(features))
    )
    return np.asarray(values)[:, :-1]


@runtime_checkable
class ShapExplainable(Protocol):
    """A model that gives its own SHAP values (e.g. a compiled `TreeModel`) for a matrix of its features."""

    def shap(self, features: np.ndarray) -> np.ndarray: ...


def top_contributions(
    model: CatBoost | ShapExplainable,
    features: np.ndarray | pd.DataFrame,
    names: Sequence[str] | None = None,
    k: int = 3,
    cat_features: Sequence[str] = (),
) -> list[list[Contribution]]:
    """The k features pushing each row's score up the most (positive contributions only). `features` is a
    matrix of the model's features in order (`names`), or a frame of them."""
    if isinstance(features, pd.DataFrame):
        names = list(features.columns)
        features = features.to_numpy(dtype=object if cat_features else np.float64)
    assert names is not None, "a feature matrix needs its column names"
    if not len(features):
        return []
    values = (
        model.shap(features)
        if isinstance(model, ShapExplainable)
        else shap_values(model, features, names, cat_features)
    )
    # Every row at once: each row's k largest in the order a stable sort of that row gives (ties by column),
    # only their k columns brought back to Python.
    order = np.argsort(-np.asarray(values, dtype=np.float64), axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(values, order, axis=1).tolist()
    cells = np.take_along_axis(np.asarray(features), order, axis=1).tolist()
    return [
        [
            Contribution(names[i], _plain(cell), float(value))
            for i, cell, value in zip(columns, row_cells, row_values, strict=True)
            if value > 0
        ]
        for columns, row_cells, row_values in zip(order.tolist(), cells, top, strict=True)
    ]


def _plain(value: object) -> Any:
    return float(value) if isinstance(value, int | float | np.number) else value
