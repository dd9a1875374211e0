"""`risk train fraud`: simulate (or reuse) the Handbook data, build the offline features, train CatBoost
and the logistic-regression baseline on the Handbook protocol, evaluate both on the test week and
register the CatBoost model with its model card.

Protocol (Le Borgne et al., Handbook, chapter 3): train on 2018-07-25..31, a 7-day label delay, test on
2018-08-08..14 without the cards already known to be compromised. Metrics: ROC AUC, average precision,
card precision@100.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pandas as pd
from catboost import CatBoostClassifier
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
CATBOOST_PARAMS: dict[str, Any] = {
    "iterations": 600,
    "depth": 6,
    "learning_rate": 0.05,
    "l2_leaf_reg": 3.0,
    "random_seed": 0,
    "thread_count": 2,
    "allow_writing_files": False,
    "verbose": False,
}

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

    model = CatBoostClassifier(**CATBOOST_PARAMS)
    model.fit(x_train, y_train)
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
        "params": {k: v for k, v in CATBOOST_PARAMS.items() if k not in {"verbose", "allow_writing_files"}},
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
