"""`risk train fraud`: simulate (or reuse) the Handbook data, build the offline features, train CatBoost
and the logistic-regression baseline on the Handbook protocol, evaluate both on the test week and
register the CatBoost model with its model card.

Protocol (Le Borgne et al., Handbook, chapter 3): train on 2018-07-25..31, a 7-day label delay, test on
2018-08-08..14 without the cards already known to be compromised. Metrics: ROC AUC, average precision,
card precision@100.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pandas as pd
from catboost import CatBoostClassifier, sum_models
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from services.fraud_detection.dataset import handbook_split, load_or_simulate
from services.fraud_detection.features import FEATURE_SET, frame_from_simulation, offline_features
from shared.logging import get_logger
from shared.modeling.drift import reference_distribution
from shared.modeling.metrics import classification_report
from shared.modeling.registry import ModelRegistry, fingerprint_frame, library_versions
from shared.modeling.report import REPORT_FILE, Section, evaluation_report

MODEL_NAME = "fraud-catboost"
# The Handbook's 15 baseline features: what the published logistic regression was trained on.
BASELINE_FEATURES = [f for f in FEATURE_SET.features if f != "amount_to_customer_avg_30d"]
PUBLISHED_LOGISTIC_REGRESSION = {"roc_auc": 0.871, "average_precision": 0.606, "card_precision_at_100": 0.291}
# The settings before the tuning of issue 15, kept as the ablation's starting point (bench/fraud_training.py).
PREVIOUS_CATBOOST_PARAMS: Mapping[str, Any] = {
    "iterations": 600,
    "depth": 6,
    "learning_rate": 0.05,
    "l2_leaf_reg": 3.0,
    "random_seed": 0,
    "thread_count": 2,
    "allow_writing_files": False,
    "verbose": False,
}
# Chosen inside the training period only, the test week never seen: on the Handbook's validation week
# (train 2018-07-11..17, validate 2018-07-25..31) and its prequential folds (the same a week, two and three
# weeks earlier): see bench/fraud_training.py and bench/results/fraud_training.md.
# The finer quantisation of the two amount features is most of the gain: with CatBoost's default 254
# borders the highest amount border is 195.0, so no split can isolate the Handbook's scenario 1 (every
# amount above 220 is fraud); 4,096 put borders at 216.99 and 223.59.
CATBOOST_PARAMS: Mapping[str, Any] = {
    **PREVIOUS_CATBOOST_PARAMS,
    "iterations": 1000,
    "learning_rate": 0.03,
    "per_float_feature_quantization": [
        f"{FEATURE_SET.features.index('amount')}:border_count=4096",
        f"{FEATURE_SET.features.index('amount_to_customer_avg_30d')}:border_count=1024",
    ],
}
# Models of these seeds are averaged (their raw scores) into the one served model.
CHAMPION_SEEDS = (0, 1, 2)

log = get_logger("fraud.train")


@dataclass(frozen=True)
class SimulationSize:
    n_customers: int = 5000
    n_terminals: int = 10000
    nb_days: int = 183


SIZES = {
    "full": SimulationSize(),
    "demo": SimulationSize(n_customers=1000, n_terminals=2000, nb_days=140),
    "small": SimulationSize(n_customers=300, n_terminals=600, nb_days=140),
}


def build_training_frames(data_dir: Path, size: SimulationSize) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(simulated transactions, their offline features, the transactions frame) aligned row by row."""
    transactions = load_or_simulate(data_dir, **asdict(size))
    frame = frame_from_simulation(transactions)
    return transactions, offline_features(frame), frame


def fit_champion(
    x_train: pd.DataFrame,
    y_train: pd.Series,
    params: Mapping[str, Any] = CATBOOST_PARAMS,
    seeds: Iterable[int] = CHAMPION_SEEDS,
) -> CatBoostClassifier:
    """One CatBoost model per seed, averaged into one model of all their trees (each tree's leaves
    scaled by 1/n), so it predicts the mean raw score and is served and explained like a single model."""
    models = [CatBoostClassifier(**{**params, "random_seed": seed}).fit(x_train, y_train) for seed in seeds]
    if not models:
        raise ValueError("the champion needs at least one seed")
    if len(models) == 1:
        return models[0]
    averaged = sum_models(models, weights=[1.0 / len(models)] * len(models))
    with tempfile.TemporaryDirectory() as directory:  # sum_models gives a bare CatBoost: reload as a classifier
        path = Path(directory) / "model.cbm"
        averaged.save_model(str(path))
        champion = CatBoostClassifier().load_model(str(path))
    # The reloaded classifier holds no training parameters of its own (they stay in each source model's
    # metadata, and the model card records them); saved as they are, CatBoost would warn on every load.
    del champion.get_metadata()["params"]
    return champion


def train(model_dir: Path, data_dir: Path, size: SimulationSize = SIZES["full"]) -> dict[str, Any]:
    started = time.perf_counter()
    transactions, features, _ = build_training_frames(data_dir, size)
    train_rows, test_rows = handbook_split(transactions)
    x_train, y_train = features.loc[train_rows.index], train_rows["is_fraud"]
    x_test, y_test = features.loc[test_rows.index], test_rows["is_fraud"]
    log.info(
        "fraud_training_data",
        train_rows=len(x_train),
        test_rows=len(x_test),
        train_frauds=int(y_train.sum()),
        test_frauds=int(y_test.sum()),
    )

    model = fit_champion(x_train, y_train)
    baseline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    baseline.fit(x_train[BASELINE_FEATURES], y_train)

    def report(scores: Any) -> dict[str, float]:
        return classification_report(
            y_test.to_numpy(),
            scores,
            days=test_rows["tx_time_days"].to_numpy(),
            entity_ids=test_rows["customer_id"].to_numpy(),
            k=100,
        )

    scores = model.predict_proba(x_test)[:, 1]
    metrics = {
        "catboost": report(scores),
        "logistic_regression": report(baseline.predict_proba(x_test[BASELINE_FEATURES])[:, 1]),
    }
    card = {
        "name": MODEL_NAME,
        "task": "probability that a payment transaction is fraudulent",
        "feature_set": FEATURE_SET.describe(),
        "algorithm": f"CatBoostClassifier {version('catboost')}",
        "params": {
            **{k: v for k, v in CATBOOST_PARAMS.items() if k not in {"verbose", "allow_writing_files", "random_seed"}},
            "seeds_averaged": list(CHAMPION_SEEDS),
        },
        "data": {
            "source": "Fraud Detection Handbook simulator (Le Borgne et al. 2022), implemented in this project",
            "simulation": asdict(size),
            "protocol": "train 2018-07-25..31, 7-day delay, test 2018-08-08..14 without known-compromised cards",
            "train_rows": len(x_train),
            "train_frauds": int(y_train.sum()),
            "test_rows": len(x_test),
            "test_frauds": int(y_test.sum()),
        },
        "data_fingerprint": fingerprint_frame(pd.concat([x_train, y_train], axis=1)),
        "metrics": metrics,
        "reference": {"handbook_logistic_regression": PUBLISHED_LOGISTIC_REGRESSION},
        "drift_reference": reference_distribution(
            {
                **{name: x_train[name].tolist() for name in FEATURE_SET.features},
                "score": model.predict_proba(x_train)[:, 1].tolist(),
            }
        ),
        "library_versions": library_versions(),
        "training_seconds": round(time.perf_counter() - started, 1),
    }
    evaluation = evaluation_report(
        f"{MODEL_NAME}: fraud on the test week",
        metrics,
        [
            Section(
                "fraud (test week, CatBoost)",
                y_test.to_numpy(),
                scores,
                dict(zip(model.feature_names_, map(float, model.get_feature_importance()), strict=True)),
            )
        ],
    )
    registered = ModelRegistry(model_dir).register("fraud", model, card, attachments={REPORT_FILE: evaluation})
    log.info("fraud_model_registered", version=registered, metrics=metrics)
    return {**card, "version": registered}
