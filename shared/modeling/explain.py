"""Feature contributions (CatBoost's exact tree SHAP values) turned into the top reasons of a score."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

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


def shap_values(model: CatBoost, features: pd.DataFrame, cat_features: list[str] | None = None) -> np.ndarray:
    """Exact SHAP values per row and feature (on the model's raw, log-odds or log scale), without the bias."""
    pool = Pool(features, cat_features=cat_features or None)
    mode = "UsePreCalc" if len(features) >= PRECALC_FROM_ROWS else "NoPreCalc"
    values = model.get_feature_importance(
        pool, type="ShapValues", shap_mode=mode, thread_count=catboost_threads(len(features))
    )
    return np.asarray(values)[:, :-1]


@runtime_checkable
class ShapExplainable(Protocol):
    """A model that gives its own SHAP values (e.g. a compiled `TreeModel`) for a frame of its features."""

    def shap(self, features: pd.DataFrame) -> np.ndarray: ...


def top_contributions(
    model: CatBoost | ShapExplainable, features: pd.DataFrame, k: int = 3, cat_features: list[str] | None = None
) -> list[list[Contribution]]:
    """The k features pushing each row's score up the most (positive contributions only)."""
    if features.empty:
        return []
    if isinstance(model, ShapExplainable):
        values = model.shap(features)
    else:
        values = shap_values(model, features, cat_features)
    names = list(features.columns)
    out: list[list[Contribution]] = []
    for row_index, row in enumerate(values):
        order = np.argsort(-row, kind="stable")[:k]
        out.append(
            [Contribution(names[i], _plain(features.iat[row_index, i]), float(row[i])) for i in order if row[i] > 0]
        )
    return out


def _plain(value: object) -> float:
    return float(value) if isinstance(value, int | float | np.number) else value  # type: ignore[return-value]
