"""The disease models: the published Pima result, the pickle-free logistic regression, calibration
metrics, and the populations the models speak for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from services.disease_risk.dataset import PIMA_COLUMNS, load_framingham, load_pima, outcome
from services.disease_risk.features import CHD_FEATURES
from services.disease_risk.models import DiseaseModels, Population
from shared.modeling.binary import (
    CalibratedClassifier,
    PlattCalibrator,
    binary_metrics,
    fit_logistic,
    reliability_curve,
    select_and_calibrate,
)

PIMA_FEATURES = tuple(PIMA_COLUMNS.values())


def test_logistic_regression_on_ripleys_split_makes_66_errors() -> None:
    """Ripley (1996): logistic regression fitted on Pima.tr misclassifies 66 of the 332 women of Pima.te."""
    training, held_out = load_pima()
    model = fit_logistic(training, outcome(training), PIMA_FEATURES)
    predicted = 1.0 / (1.0 + np.exp(-model.log_odds(held_out))) > 0.5
    assert int((predicted != outcome(held_out).astype(bool)).sum()) == 66


def test_exported_logistic_regression_equals_scikit_learns_pipeline() -> None:
    """The JSON parameters reproduce the fitted pipeline's probabilities, missing values included."""
    frame = load_framingham().iloc[:1500]
    features = list(CHD_FEATURES)
    pipeline = make_pipeline(
        SimpleImputer(strategy="median"), StandardScaler(), LogisticRegression(C=np.inf, max_iter=5000)
    ).fit(frame[features], outcome(frame))
    exported = fit_logistic(frame, outcome(frame), features)
    assert frame[features].isna().any().any()
    expected = pipeline.predict_proba(frame[features])[:, 1]
    assert np.allclose(1.0 / (1.0 + np.exp(-exported.log_odds(frame))), expected, atol=1e-12)


def test_calibration_metrics_recognise_calibrated_and_miscalibrated_predictions() -> None:
    """Outcomes drawn from the predicted probabilities: slope near 1, intercept near 0; probabilities
    pushed away from the middle give a slope below 1, probabilities too high a negative intercept."""
    rng = np.random.default_rng(3)
    probability = rng.uniform(0.02, 0.6, 40_000)
    drawn = (rng.random(40_000) < probability).astype(int)
    good = binary_metrics(drawn, probability)
    assert good["calibration_slope"] == pytest.approx(1.0, abs=0.06)
    assert good["calibration_intercept"] == pytest.approx(0.0, abs=0.03)
    logit = np.log(probability / (1 - probability))
    overconfident = binary_metrics(drawn, 1 / (1 + np.exp(-2 * logit)))
    assert overconfident["calibration_slope"] == pytest.approx(0.5, abs=0.05)
    too_high = binary_metrics(drawn, 1 / (1 + np.exp(-(logit + 0.7))))
    assert too_high["calibration_intercept"] == pytest.approx(-0.7, abs=0.05)
    curve = reliability_curve(drawn, probability)
    assert np.allclose(curve["predicted"], curve["observed"], atol=0.03)


def test_platt_calibration_corrects_shifted_log_odds() -> None:
    """Platt scaling recovers the true probabilities from log-odds that were scaled and shifted."""
    rng = np.random.default_rng(5)
    true_log_odds = rng.normal(-1.0, 1.2, 30_000)
    drawn = (rng.random(30_000) < 1 / (1 + np.exp(-true_log_odds))).astype(int)
    calibrator = PlattCalibrator.fit(true_log_odds * 2 + 1.5, drawn)  # a model twice as sure, shifted
    assert calibrator.slope == pytest.approx(0.5, abs=0.03)
    assert calibrator.intercept == pytest.approx(-0.75, abs=0.06)


def test_selection_states_its_rule_and_keeps_the_simpler_model_on_a_near_tie() -> None:
    """The selection rule is stated and keeps logistic regression unless CatBoost is clearly better out of fold."""
    training, _ = load_pima()
    selection = select_and_calibrate(training, outcome(training), PIMA_FEATURES)
    losses = selection.out_of_fold_log_loss
    assert set(losses) == {"logistic_regression", "catboost"}
    winner = min(losses, key=losses.__getitem__)
    expected = winner if losses["logistic_regression"] - losses[winner] > 0.005 else "logistic_regression"
    assert selection.chosen.algorithm == expected
    assert "0.005" in selection.rule


def test_saved_bundle_predicts_what_it_predicted_before(tmp_path: Path) -> None:
    """Both kinds of classifier survive the registry's pickle-free save and load unchanged."""
    frame = load_framingham().iloc[:800]
    y = outcome(frame)
    selection = select_and_calibrate(frame, y, CHD_FEATURES)
    population = Population(("female", "male"), (30.0, 75.0), None)
    bundle = DiseaseModels(
        {
            name: _condition(name, model, population)
            for name, model in (
                ("chd", selection.candidates["catboost"]),
                ("diabetes", selection.candidates["logistic_regression"]),
            )
        }
    )
    (tmp_path / "model").mkdir()
    bundle.save(tmp_path / "model")
    loaded = DiseaseModels.load(tmp_path)
    features = frame.assign(glucose_2h=100.0, pregnancies=1.0, triceps_skinfold=20.0, diabetes_pedigree=0.4)
    for name in ("chd", "diabetes"):
        before = bundle.conditions[name].classifier.probability(features)
        after = loaded.conditions[name].classifier.probability(features)
        assert np.array_equal(before, after), name
    assert not list(tmp_path.rglob("*.pkl")) and not list(tmp_path.rglob("*.joblib"))


def _condition(name: str, model: CalibratedClassifier, population: Population):  # type: ignore[no-untyped-def]
    from services.disease_risk.models import ConditionModel

    return ConditionModel(name, model, population)


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ({"male": 1.0, "age": 40.0, "diabetes": 0.0, "glucose_2h": 120.0}, "trained on women only"),
        ({"male": 0.0, "age": 70.0, "diabetes": 0.0, "glucose_2h": 120.0}, "trained on ages 21 to 63"),
        ({"male": 0.0, "age": 40.0, "diabetes": 1.0, "glucose_2h": 120.0}, "diabetes is already diagnosed"),
        ({"male": 0.0, "age": 40.0, "diabetes": 0.0, "glucose_2h": float("nan")}, "glucose_2h was not given"),
        ({"male": 0.0, "age": 40.0, "diabetes": 0.0, "glucose_2h": 120.0}, None),
    ],
)
def test_population_says_why_a_model_does_not_apply(row: dict[str, float], reason: str | None) -> None:
    """Outside a condition model's population the reason says why (sex, age range, diagnosis, missing input)."""
    population = Population(("female",), (21.0, 63.0), "diabetes", ("glucose_2h",))
    found = population.reasons({k: np.array([v]) for k, v in row.items()}, "diabetes")[0]
    if reason is None:
        assert found is None
    else:
        assert found is not None and found.startswith("not applicable, because") and reason in found


def test_an_event_gets_the_same_number_alone_or_in_any_batch() -> None:
    """Bit for bit: HTTP batches, stream batches and batch chunks cut the same events differently."""
    frame = load_framingham()
    model = fit_logistic(frame, outcome(frame), CHD_FEATURES)
    everyone = model.log_odds(frame)
    for size in (1, 2, 7, 100, 333):
        for start in range(0, 2_000, 97):
            assert np.array_equal(model.log_odds(frame.iloc[start : start + size]), everyone[start : start + size])
