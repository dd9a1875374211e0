"""The monitor's figures: precision and recall per decision outcome and per rule, Brier score and calibration
slope as scikit-learn computes them, the population stability index, and the alerts they raise."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, precision_score, recall_score

from shared.core.monitoring import quality_report
from shared.decisions import Labelled
from shared.modeling.drift import population_stability_index, reference_distribution

NOW = datetime(2026, 12, 2, tzinfo=UTC)


class _Probabilities:
    """The part of a service the monitor reads: its name and how its score reads as a probability."""

    name = "fraud"

    def probability_of(self, scores: np.ndarray) -> np.ndarray:
        return scores


def _rows(n: int, seed: int, shift: float = 1.0, labelled: bool = True) -> list[Labelled]:
    rng = np.random.default_rng(seed)
    scores = rng.beta(1, 8, n)
    labels = (rng.random(n) < scores).astype(int)
    amounts = rng.lognormal(3.5, 0.6, n) * shift
    rows = []
    for i in range(n):
        decision = "decline" if scores[i] > 0.5 else "review" if scores[i] > 0.25 else "approve"
        rules = ("high_score",) if scores[i] > 0.25 else ()
        rules += ("big_amount",) if amounts[i] > 80 else ()
        rows.append(
            Labelled(
                f"e{i}",
                "v1",
                float(scores[i]),
                decision,
                rules,
                int(labels[i]) if labelled else None,
                NOW,
                {"amount": float(amounts[i]), "channel": "web" if i % 3 else "pos"},
            )
        )
    return rows


def _card(seed: int) -> dict[str, Any]:
    rows = _rows(5000, seed)
    return {
        "drift_reference": reference_distribution(
            {
                "amount": [r.features["amount"] for r in rows],
                "channel": [r.features["channel"] for r in rows],
                "score": [r.score for r in rows],
            }
        )
    }


def test_precision_recall_and_calibration_equal_scikit_learns() -> None:
    """Per decision outcome and per rule, precision and recall over the labelled decisions; Brier and the
    calibration slope over their scores: each equal to scikit-learn's on the same data."""
    rows = _rows(3000, seed=1)
    report = quality_report(_Probabilities(), rows, {"v1": _card(2)}, NOW)  # type: ignore[arg-type]
    section = report["models"]["v1"]
    y = np.array([r.label for r in rows])
    score = np.array([r.score for r in rows])
    for decision in ("approve", "review", "decline"):
        flagged = np.array([r.decision == decision for r in rows]).astype(int)
        assert section["outcomes"][decision]["precision"] == pytest.approx(precision_score(y, flagged), abs=1e-6)
        assert section["outcomes"][decision]["recall"] == pytest.approx(recall_score(y, flagged), abs=1e-6)
    hit = np.array(["big_amount" in r.rule_ids for r in rows]).astype(int)
    assert section["rules"]["big_amount"]["precision"] == pytest.approx(precision_score(y, hit), abs=1e-6)
    assert section["calibration"]["brier"] == pytest.approx(brier_score_loss(y, score), abs=1e-6)
    logit = np.log(score / (1 - score)).reshape(-1, 1)
    slope = LogisticRegression(C=np.inf, max_iter=1000).fit(logit, y).coef_[0, 0]
    assert section["calibration"]["slope"] == pytest.approx(slope, abs=1e-4)
    assert 0.8 < section["calibration"]["slope"] < 1.2  # these labels are drawn from the scores themselves
    assert sum(b["count"] for b in section["calibration"]["reliability"]) == len(rows)


def test_drift_alerts_on_a_shifted_population_only() -> None:
    """The same population as training: every PSI small, no alert. Amounts times three: the amount's PSI
    far above 0.2 and a drift alert naming it; the unchanged channel stays quiet."""
    card = {"v1": _card(2)}
    same = quality_report(_Probabilities(), _rows(3000, seed=3, labelled=False), card, NOW)  # type: ignore[arg-type]
    assert same["alerts"] == []
    assert max(same["models"]["v1"]["drift"]["features"].values()) < 0.1
    shifted = quality_report(_Probabilities(), _rows(3000, seed=3, shift=3.0), card, NOW)  # type: ignore[arg-type]
    named = {a["figure"] for a in shifted["alerts"] if a["kind"] == "drift"}
    assert named == {"amount"}
    assert shifted["models"]["v1"]["drift"]["features"]["amount"] > 1.0


def test_a_miscalibrated_model_raises_a_calibration_alert() -> None:
    """Scores squeezed towards the mean (the log-odds halved) make the slope about 2: an alert."""
    squeezed = [replace(r, score=_squeezed(r.score)) for r in _rows(4000, seed=4)]
    report = quality_report(_Probabilities(), squeezed, {"v1": _card(2)}, NOW)  # type: ignore[arg-type]
    [alert] = [a for a in report["alerts"] if a["kind"] == "calibration"]
    assert alert["value"] == pytest.approx(2.0, abs=0.3)


def _squeezed(probability: float) -> float:
    logit = np.log(probability / (1 - probability)) / 2
    return float(1 / (1 + np.exp(-logit)))


def test_psi_of_a_population_against_itself_is_zero_and_grows_with_the_shift() -> None:
    """PSI is 0 for the reference data itself, rises with a shift, and is None for no values."""
    values = list(np.random.default_rng(5).normal(0, 1, 10_000))
    reference = reference_distribution({"x": values})["x"]
    assert population_stability_index(reference, values) == pytest.approx(0.0, abs=1e-9)
    small = population_stability_index(reference, [v + 0.1 for v in values])
    large = population_stability_index(reference, [v + 1.0 for v in values])
    assert small is not None and large is not None and 0 < small < 0.1 < 0.2 < large
    assert population_stability_index(reference, []) is None
    categories = reference_distribution({"c": ["a"] * 70 + ["b"] * 30 + [None] * 10})["c"]
    assert categories["kind"] == "categorical" and population_stability_index(categories, ["a"] * 10 + ["z"] * 10) > 0.2


def test_calibration_in_the_large_is_found_however_sure_the_model_is_of_the_wrong_answer() -> None:
    """Events the model scored near 0 (logits about -27, as probabilities clipped at 1e-12 give) need an
    intercept beyond the old bracket of +-20: it is found, and it makes the mean prediction the observed
    rate, instead of the monitor failing on the report."""
    from shared.modeling.binary import calibration_in_the_large

    outcome = np.array([1.0, 1.0, 0.0, 0.0])
    logit = np.log(np.array([1e-12, 1e-12, 1e-12, 0.5]) / (1 - np.array([1e-12, 1e-12, 1e-12, 0.5])))
    shift = calibration_in_the_large(outcome, logit)
    assert shift > 20
    assert np.mean(1 / (1 + np.exp(-(shift + logit)))) == pytest.approx(outcome.mean(), abs=1e-9)
