"""Calibrated binary classifiers: fit candidates, choose one by a stated rule, calibrate it, evaluate it.

The procedure, for one outcome (a disease within 10 years, say):
1. each candidate (logistic regression, CatBoost) is fitted in stratified k-fold cross-validation on the
   training data, giving out-of-fold log-odds for every training row;
2. a Platt calibrator (a logistic regression on those log-odds) is fitted per candidate, and the
   candidates are compared by the out-of-fold log loss of their calibrated probabilities;
3. the rule: the candidate with the lowest log loss wins, except that logistic regression is kept unless
   the other beats it by more than `SIMPLER_MODEL_MARGIN` (the simpler, readable model wins near-ties);
4. the chosen candidate is refitted on all the training data and keeps the calibrator of step 2 (the
   out-of-fold scheme of scikit-learn's `CalibratedClassifierCV(ensemble=False)`);
5. everything is evaluated on held-out data the procedure never saw.

Models are stored without pickle: logistic regression as its parameters in JSON, CatBoost in its own format.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
from catboost import CatBoostClassifier
from scipy.optimize import brentq
from scipy.special import expit
from sklearn.calibration import calibration_curve
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from shared.modeling.explain import shap_values
from shared.modeling.inference import catboost_threads

SIMPLER_MODEL_MARGIN = 0.005  # nats of out-of-fold log loss
CV_FOLDS = 5
LOGISTIC = "logistic_regression"
CATBOOST = "catboost"
CATBOOST_PARAMS: dict[str, Any] = {
    "iterations": 300,
    "depth": 4,
    "learning_rate": 0.05,
    "l2_leaf_reg": 5.0,
    "random_seed": 0,
    "verbose": False,
    "allow_writing_files": False,
    "thread_count": 2,
}


Features: TypeAlias = pd.DataFrame | np.ndarray  # a frame with the model's columns, or a matrix of them in order


def as_matrix(data: Features, features: Sequence[str]) -> np.ndarray:
    """Row-major float64 (so each row is summed in the same order whatever the batch; pandas hands out
    columns). Columns are picked with an object Index: a list of names costs ~150 us a call in pandas 3."""
    if isinstance(data, pd.DataFrame):
        data = data[pd.Index(features, dtype=object)].to_numpy(dtype=np.float64)
    return np.ascontiguousarray(data, dtype=np.float64)


@dataclass(frozen=True)
class LogisticModel:
    """A fitted median-impute, standardise, unpenalised logistic regression, as plain parameters."""

    features: tuple[str, ...]
    medians: tuple[float, ...]
    means: tuple[float, ...]
    scales: tuple[float, ...]
    coefficients: tuple[float, ...]
    intercept: float

    def standardised(self, data: Features) -> np.ndarray:
        values = as_matrix(data, self.features)
        values = np.where(np.isnan(values), np.asarray(self.medians), values)
        return (values - np.asarray(self.means)) / np.asarray(self.scales)

    def log_odds(self, data: Features) -> np.ndarray:
        # A row-wise sum, not a matrix product: BLAS may block a product differently for different batch
        # sizes, and an event must get the very same number alone, in an HTTP batch or in a stream batch.
        return self.contributions(data).sum(axis=1) + self.intercept

    def contributions(self, data: Features) -> np.ndarray:
        """Each feature's share of the log-odds against the training mean (exact SHAP for a linear model)."""
        return self.standardised(data) * np.asarray(self.coefficients)


def fit_logistic(frame: pd.DataFrame, outcome: np.ndarray, features: Sequence[str]) -> LogisticModel:
    pipeline = make_pipeline(
        SimpleImputer(strategy="median"), StandardScaler(), LogisticRegression(C=np.inf, max_iter=5000)
    ).fit(frame[list(features)], outcome)
    imputer, scaler, regression = (step for _, step in pipeline.steps)
    return LogisticModel(
        features=tuple(features),
        medians=tuple(float(v) for v in imputer.statistics_),
        means=tuple(float(v) for v in scaler.mean_),
        scales=tuple(float(v) for v in scaler.scale_),
        coefficients=tuple(float(v) for v in regression.coef_[0]),
        intercept=float(regression.intercept_[0]),
    )


def fit_catboost(frame: pd.DataFrame, outcome: np.ndarray, features: Sequence[str]) -> CatBoostClassifier:
    return CatBoostClassifier(**CATBOOST_PARAMS).fit(frame[list(features)], outcome)


@dataclass(frozen=True)
class PlattCalibrator:
    """p = sigmoid(slope * log_odds + intercept), fitted on out-of-fold log-odds."""

    slope: float
    intercept: float

    @classmethod
    def fit(cls, log_odds: np.ndarray, outcome: np.ndarray) -> PlattCalibrator:
        regression = LogisticRegression(C=np.inf, max_iter=1000).fit(log_odds.reshape(-1, 1), outcome)
        return cls(float(regression.coef_[0, 0]), float(regression.intercept_[0]))

    def __call__(self, log_odds: np.ndarray) -> np.ndarray:
        return _sigmoid(self.slope * log_odds + self.intercept)


@dataclass(frozen=True)
class CalibratedClassifier:
    """One outcome's chosen model and its calibrator: probabilities that mean what they say."""

    algorithm: str
    features: tuple[str, ...]
    base: LogisticModel | CatBoostClassifier
    calibrator: PlattCalibrator

    def log_odds(self, data: Features) -> np.ndarray:
        if isinstance(self.base, LogisticModel):
            return self.base.log_odds(data)
        matrix = as_matrix(data, self.features)
        return np.asarray(
            self.base.predict(matrix, prediction_type="RawFormulaVal", thread_count=catboost_threads(len(matrix)))
        )

    def probability(self, data: Features) -> np.ndarray:
        return self.calibrator(self.log_odds(data))

    def contributions(self, data: Features) -> np.ndarray:
        """Per-row, per-feature contributions to the uncalibrated log-odds (the calibrator is monotone)."""
        if isinstance(self.base, LogisticModel):
            return self.base.contributions(data)
        return shap_values(self.base, as_matrix(data, self.features), self.features)

    def save(self, directory: Path, name: str) -> None:
        manifest: dict[str, Any] = {
            "algorithm": self.algorithm,
            "features": list(self.features),
            "calibrator": asdict(self.calibrator),
        }
        if isinstance(self.base, LogisticModel):
            manifest["logistic_regression"] = asdict(self.base)
        else:
            manifest["catboost_file"] = f"{name}.cbm"
            self.base.save_model(str(directory / f"{name}.cbm"), format="cbm")
        (directory / f"{name}.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, directory: Path, name: str) -> CalibratedClassifier:
        manifest = json.loads((directory / f"{name}.json").read_text())
        base: LogisticModel | CatBoostClassifier
        if "logistic_regression" in manifest:
            parameters = {k: tuple(v) if isinstance(v, list) else v for k, v in manifest["logistic_regression"].items()}
            base = LogisticModel(**parameters)  # type: ignore[arg-type]  # the manifest holds the fields' JSON form
        else:
            base = CatBoostClassifier()
            base.load_model(str(directory / manifest["catboost_file"]), format="cbm")
        return cls(manifest["algorithm"], tuple(manifest["features"]), base, PlattCalibrator(**manifest["calibrator"]))


Fitter = Callable[[pd.DataFrame, np.ndarray, Sequence[str]], LogisticModel | CatBoostClassifier]
CANDIDATES: dict[str, Fitter] = {LOGISTIC: fit_logistic, CATBOOST: fit_catboost}


@dataclass(frozen=True)
class Selection:
    chosen: CalibratedClassifier
    candidates: dict[str, CalibratedClassifier]  # each refitted on all the training data, calibrated
    out_of_fold_log_loss: dict[str, float]
    rule: str


def select_and_calibrate(frame: pd.DataFrame, outcome: np.ndarray, features: Sequence[str], seed: int = 0) -> Selection:
    folds = list(StratifiedKFold(CV_FOLDS, shuffle=True, random_state=seed).split(frame, outcome))
    losses: dict[str, float] = {}
    calibrated: dict[str, CalibratedClassifier] = {}
    for name, fit in CANDIDATES.items():
        out_of_fold = np.empty(len(frame))
        for train_index, test_index in folds:
            model = CalibratedClassifier(
                name,
                tuple(features),
                fit(frame.iloc[train_index], outcome[train_index], features),
                PlattCalibrator(1.0, 0.0),
            )
            out_of_fold[test_index] = model.log_odds(frame.iloc[test_index])
        calibrator = PlattCalibrator.fit(out_of_fold, outcome)
        losses[name] = float(log_loss(outcome, calibrator(out_of_fold)))
        calibrated[name] = CalibratedClassifier(name, tuple(features), fit(frame, outcome, features), calibrator)
    best = min(losses, key=losses.__getitem__)
    chosen = best if losses[LOGISTIC] - losses[best] > SIMPLER_MODEL_MARGIN else LOGISTIC
    rule = (
        f"lowest {CV_FOLDS}-fold out-of-fold log loss after Platt calibration; logistic regression unless "
        f"another candidate is better by more than {SIMPLER_MODEL_MARGIN} nats"
    )
    return Selection(calibrated[chosen], calibrated, losses, rule)


def binary_metrics(outcome: np.ndarray, probability: np.ndarray) -> dict[str, float]:
    """Discrimination (ROC AUC), accuracy of the probabilities (Brier, log loss) and calibration: the slope
    of logit(p) in a logistic recalibration (1 is ideal), and calibration-in-the-large, the intercept with
    the slope fixed at 1 (0 is ideal)."""
    outcome = np.asarray(outcome, dtype=float)
    logit = _logit(probability)
    slope = float(LogisticRegression(C=np.inf, max_iter=1000).fit(logit.reshape(-1, 1), outcome).coef_[0, 0])
    return {
        "roc_auc": round(float(roc_auc_score(outcome, probability)), 4),
        "brier": round(float(brier_score_loss(outcome, probability)), 4),
        "log_loss": round(float(log_loss(outcome, probability)), 4),
        "calibration_slope": round(slope, 3),
        "calibration_intercept": round(calibration_in_the_large(outcome, logit), 3),
        "rows": len(outcome),
        "events": int(outcome.sum()),
        "observed_rate": round(float(outcome.mean()), 4),
        "mean_predicted": round(float(np.mean(probability)), 4),
    }


def calibration_in_the_large(outcome: np.ndarray, logit: np.ndarray) -> float:
    """The a solving sum(y - sigmoid(a + logit)) = 0: the shift that makes the mean prediction the observed rate.

    The sum falls as a grows, from the count of events to minus the count of non-events, so with both
    outcomes present the root exists; the bracket widens until it holds it (a model sure of the wrong
    answer, with logits near +-27 from probabilities clipped at 1e-12, needs a shift beyond +-20)."""

    def residual(a: float) -> float:
        return float(np.sum(outcome - _sigmoid(a + logit)))

    bound = 20.0
    while residual(-bound) * residual(bound) > 0 and bound < 1e6:
        bound *= 2
    return float(brentq(residual, -bound, bound))


def reliability_curve(outcome: np.ndarray, probability: np.ndarray, bins: int = 10) -> dict[str, list[float]]:
    observed, predicted = calibration_curve(outcome, probability, n_bins=bins, strategy="quantile")
    return {"predicted": [round(float(v), 4) for v in predicted], "observed": [round(float(v), 4) for v in observed]}


def reliability_png(curves: Mapping[str, Mapping[str, Sequence[float]]], title: str) -> bytes:
    """Observed against predicted risk per decile of prediction, one line per model; the diagonal is perfect."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(5.5, 5.5), dpi=100)
    top = max([0.05, *(max([*c["predicted"], *c["observed"]]) for c in curves.values())]) * 1.05
    axes.plot([0, top], [0, top], linestyle="--", color="grey", linewidth=1, label="perfect calibration")
    for label, curve in curves.items():
        axes.plot(curve["predicted"], curve["observed"], marker="o", linewidth=1.5, label=label)
    axes.set(xlim=(0, top), ylim=(0, top), xlabel="predicted risk (decile mean)", ylabel="observed rate", title=title)
    axes.legend(loc="upper left", fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    pyplot.close(figure)
    return buffer.getvalue()


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(expit(x), dtype=float)  # no overflow, however far out x is


def _logit(p: np.ndarray) -> np.ndarray:
    clipped = np.clip(np.asarray(p, dtype=float), 1e-12, 1 - 1e-12)
    return np.log(clipped / (1 - clipped))
