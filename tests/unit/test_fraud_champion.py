"""The fraud champion averages models of several seeds into one model that predicts their mean raw score
and is served (compiled trees, SHAP values included) exactly like a single CatBoost model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from catboost import CatBoostClassifier

from services.fraud_detection.train import CATBOOST_PARAMS, fit_champion
from shared.modeling.explain import shap_values
from shared.modeling.trees import TreeModel

SMALL = {**CATBOOST_PARAMS, "iterations": 20, "depth": 3}


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(rng.normal(size=(600, 3)), columns=["amount", "customer_nb_tx_1d", "terminal_risk_7d"])
    label = pd.Series((frame["amount"] + rng.normal(scale=0.7, size=600) > 1.0).astype(int))
    return frame, label


def raw(model: CatBoostClassifier, frame: pd.DataFrame) -> np.ndarray:
    return np.asarray(model.predict(frame, prediction_type="RawFormulaVal"))


def test_averaged_model_predicts_the_mean_raw_score_of_its_seeds(data: tuple[pd.DataFrame, pd.Series]) -> None:
    """The merged model holds every seed's trees and predicts their mean raw score, which no single seed gives."""
    frame, label = data
    averaged = fit_champion(frame, label, SMALL, seeds=(0, 1, 2))
    singles = [CatBoostClassifier(**{**SMALL, "random_seed": s}).fit(frame, label) for s in (0, 1, 2)]
    assert isinstance(averaged, CatBoostClassifier)
    assert averaged.tree_count_ == 60
    np.testing.assert_allclose(raw(averaged, frame), np.mean([raw(m, frame) for m in singles], axis=0), atol=1e-12)
    # The seeds differ, so the average is not any one of them.
    assert not np.allclose(raw(averaged, frame), raw(singles[0], frame))


def test_one_seed_is_that_seeds_model(data: tuple[pd.DataFrame, pd.Series]) -> None:
    """With one seed the champion is that seed's plain model."""
    frame, label = data
    single = fit_champion(frame, label, SMALL, seeds=(4,))
    np.testing.assert_array_equal(
        raw(single, frame), raw(CatBoostClassifier(**{**SMALL, "random_seed": 4}).fit(frame, label), frame)
    )


def test_no_seed_is_refused(data: tuple[pd.DataFrame, pd.Series]) -> None:
    """A champion of no model at all is refused."""
    frame, label = data
    with pytest.raises(ValueError, match="at least one seed"):
        fit_champion(frame, label, SMALL, seeds=())


def test_averaged_model_is_served_by_its_compiled_trees(data: tuple[pd.DataFrame, pd.Series]) -> None:
    """Probabilities and exact SHAP values from the numpy forest equal CatBoost's own on the averaged model."""
    frame, label = data
    averaged = fit_champion(frame, label, SMALL, seeds=(0, 1, 2))
    served = TreeModel(averaged)
    assert served.forest is not None and served.forest.numeric
    matrix = frame.to_numpy()
    np.testing.assert_allclose(served.probability(matrix), averaged.predict_proba(frame)[:, 1], atol=1e-12)
    np.testing.assert_allclose(
        served.shap(matrix[:40]), shap_values(averaged, matrix[:40], served.feature_names, []), atol=1e-9
    )


def test_saved_champion_loads_without_a_word_on_stderr(data: tuple[pd.DataFrame, pd.Series], tmp_path: Path) -> None:
    """The CLI's one-line error messages must stay one line: loading the averaged model warns about nothing."""
    frame, label = data
    path = tmp_path / "model.cbm"
    fit_champion(frame, label, SMALL, seeds=(0, 1)).save_model(str(path))
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from catboost import CatBoostClassifier; CatBoostClassifier().load_model({str(path)!r})",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stderr == ""
