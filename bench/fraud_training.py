"""The fraud champion on the full-size Handbook protocol: its settings chosen on a validation week inside
the training period, an ablation of what each feature and setting gives, and the champion over 5 seeds.

    python -m bench.fraud_training [--seeds 5] [--tuning]

Two protocols, both the Handbook's (chapter 3 and its chapter 5 for model selection):
- validation: train 2018-07-11..17, 7-day delay, validate on 2018-07-25..31 (the training week of the
  test protocol, known-compromised cards removed the same way). Settings are chosen here only: with
  --tuning, each candidate of `tuning_candidates` is also scored on the Handbook's prequential folds (this
  week and the same protocol started one, two and three weeks earlier), as the mean of the four.
- test: train 2018-07-25..31, 7-day delay, test 2018-08-08..14, as `risk train fraud` does.
Writes results/fraud_training.json and the tables of results/fraud_training.md.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from bench.common import record
from services.fraud_detection.dataset import handbook_split
from services.fraud_detection.features import FEATURE_SET
from services.fraud_detection.train import (
    BASELINE_FEATURES,
    CATBOOST_PARAMS,
    CHAMPION_SEEDS,
    PREVIOUS_CATBOOST_PARAMS,
    SIZES,
    build_training_frames,
    fit_champion,
)
from shared.modeling.metrics import classification_report
from shared.settings import Settings

VALIDATION_START, TEST_START = "2018-07-11", "2018-07-25"
PREQUENTIAL_STARTS = (VALIDATION_START, "2018-07-04", "2018-06-27", "2018-06-20")
METRICS = ("roc_auc", "average_precision", "card_precision_at_100")


@dataclass(frozen=True)
class Protocol:
    name: str
    x_train: pd.DataFrame
    y_train: pd.Series
    x_eval: pd.DataFrame
    eval_rows: pd.DataFrame

    def report(self, scores: np.ndarray) -> dict[str, float]:
        return classification_report(
            self.eval_rows["is_fraud"].to_numpy(),
            scores,
            days=self.eval_rows["tx_time_days"].to_numpy(),
            entity_ids=self.eval_rows["customer_id"].to_numpy(),
            k=100,
        )


@dataclass(frozen=True)
class Variant:
    """One row of the ablation: CatBoost settings, the features they see, and how many seeds are
    averaged into the model (1: a single model of seed `params['random_seed']`)."""

    name: str
    params: Mapping[str, Any]
    features: Sequence[str] = field(default_factory=lambda: list(FEATURE_SET.features))
    seeds: int = 1


def protocols(
    transactions: pd.DataFrame,
    features: pd.DataFrame,
    starts: Sequence[tuple[str, str]] = (("validation", VALIDATION_START), ("test", TEST_START)),
) -> dict[str, Protocol]:
    result = {}
    for name, start in starts:
        train_rows, eval_rows = handbook_split(transactions, start_training=start)
        result[name] = Protocol(
            name,
            features.loc[train_rows.index],
            train_rows["is_fraud"],
            features.loc[eval_rows.index],
            eval_rows,
        )
    return result


def evaluate(variant: Variant, protocol: Protocol, first_seed: int = 0) -> dict[str, float]:
    started = time.perf_counter()
    params = {**variant.params, "random_seed": first_seed}
    seeds = range(first_seed, first_seed + variant.seeds)
    model = fit_champion(protocol.x_train[list(variant.features)], protocol.y_train, params, seeds)
    report = protocol.report(model.predict_proba(protocol.x_eval[list(variant.features)])[:, 1])
    report["seconds"] = time.perf_counter() - started
    print(f"{protocol.name:10s} {variant.name:60s} {_figures(report)}", flush=True)
    return report


def logistic_regression(protocol: Protocol) -> dict[str, float]:
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(protocol.x_train[BASELINE_FEATURES], protocol.y_train)
    return protocol.report(model.predict_proba(protocol.x_eval[BASELINE_FEATURES])[:, 1])


def ablation() -> list[Variant]:
    """From the previous model to the champion, one change at a time."""
    previous, champion = dict(PREVIOUS_CATBOOST_PARAMS), dict(CATBOOST_PARAMS)
    amount_borders, ratio_borders = champion["per_float_feature_quantization"]
    finer_amount = {**previous, "per_float_feature_quantization": [amount_borders]}
    finer_amounts = {**previous, "per_float_feature_quantization": [amount_borders, ratio_borders]}
    seeds = len(CHAMPION_SEEDS)
    return [
        Variant("previous CatBoost settings, the Handbook's 15 features", previous, BASELINE_FEATURES),
        Variant("+ amount_to_customer_avg_30d (16 features)", previous),
        Variant("16 features, + amount in 4,096 borders (default 254)", finer_amount),
        Variant("15 features, amount in 4,096 borders", finer_amount, BASELINE_FEATURES),
        Variant("16 features, + amount_to_customer_avg_30d in 1,024 borders", finer_amounts),
        Variant("+ learning rate 0.03, 1,000 trees (was 0.05, 600)", champion),
        Variant(f"champion: + {seeds} seeds averaged", champion, seeds=seeds),
    ]


def tuning_candidates() -> list[Variant]:
    """The settings tried around the finely quantised model (seed 0), the chosen one among them."""
    quantised = {
        **dict(PREVIOUS_CATBOOST_PARAMS),
        "per_float_feature_quantization": CATBOOST_PARAMS["per_float_feature_quantization"],
    }
    slower = {**quantised, "learning_rate": 0.03, "iterations": 1000}
    amount_borders, _ = quantised["per_float_feature_quantization"]
    return [
        Variant("600 trees, depth 6, learning rate 0.05, l2 3", quantised),
        Variant(
            "15 features (amount in 4,096 borders)",
            {**quantised, "per_float_feature_quantization": [amount_borders]},
            BASELINE_FEATURES,
        ),
        Variant("depth 4", {**quantised, "depth": 4}),
        Variant("depth 8", {**quantised, "depth": 8}),
        Variant("l2_leaf_reg 10", {**quantised, "l2_leaf_reg": 10.0}),
        Variant("class weights SqrtBalanced", {**quantised, "auto_class_weights": "SqrtBalanced"}),
        Variant("learning rate 0.03, 1,000 trees (chosen)", slower),
        Variant("learning rate 0.03, 1,000 trees, depth 4", {**slower, "depth": 4}),
        Variant("learning rate 0.03, 1,000 trees, every feature in 1,024 borders", {**slower, "border_count": 1024}),
        Variant("learning rate 0.02, 1,500 trees", {**slower, "learning_rate": 0.02, "iterations": 1500}),
    ]


def prequential(variant: Variant, folds: Mapping[str, Protocol]) -> dict[str, Any]:
    """The variant's figures on each prequential fold and their mean."""
    per_fold = {name: evaluate(variant, fold) for name, fold in folds.items()}
    mean = {m: float(np.mean([report[m] for report in per_fold.values()])) for m in METRICS}
    return {"variant": variant.name, "mean": mean, "folds": per_fold}


def _figures(report: Mapping[str, float]) -> str:
    return " / ".join(f"{report[m]:.4f}" for m in METRICS)


def markdown(results: Mapping[str, Any]) -> str:
    lines = [
        "## Ablation: what each feature and setting gives",
        "",
        "Each row adds one change to the row above it (seed 0; the last rows average the champion's seeds). "
        "Figures are ROC AUC / average precision / card precision@100.",
        "",
        "| variant | validation week 2018-07-25..31 | test week 2018-08-08..14 |",
        "|---|---|---|",
        f"| logistic regression, 15 features | {_figures(results['logistic_regression']['validation'])} | "
        f"{_figures(results['logistic_regression']['test'])} |",
    ]
    for row in results["ablation"]:
        lines.append(f"| {row['variant']} | {_figures(row['validation'])} | {_figures(row['test'])} |")
    per_seed = results["champion_per_seed"]
    lines += [
        "",
        f"## The champion over {len(per_seed)} seeds (test week)",
        "",
        "| first seed | ROC AUC | average precision | card precision@100 |",
        "|---|---|---|---|",
    ]
    for row in per_seed:
        lines.append(f"| {row['seed']} | " + " | ".join(f"{row[m]:.4f}" for m in METRICS) + " |")
    mean = results["champion_mean"]
    lines.append("| **mean** | " + " | ".join(f"**{mean[m]:.4f}**" for m in METRICS) + " |")
    return "\n".join(lines) + "\n"


def tuning_markdown(tuning: Mapping[str, Any]) -> str:
    lines = [
        "| candidate (seed 0) | mean of the 4 folds | card precision@100 per fold |",
        "|---|---|---|",
    ]
    for row in tuning["candidates"]:
        per_fold = " / ".join(f"{fold['card_precision_at_100']:.4f}" for fold in row["folds"].values())
        lines.append(f"| {row['variant']} | {_figures(row['mean'])} | {per_fold} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument(
        "--tuning", action="store_true", help="only score the tuning candidates on the prequential folds"
    )
    args = parser.parse_args()
    transactions, features, _ = build_training_frames(Settings.from_env().data_dir, SIZES["full"])
    if args.tuning:
        folds = protocols(transactions, features, [(f"fold {start}", start) for start in PREQUENTIAL_STARTS])
        tuning = {
            "load_average": ", ".join(f"{x:.1f}" for x in os.getloadavg()),
            "candidates": [prequential(v, folds) for v in tuning_candidates()],
        }
        record("fraud_training_tuning", tuning)
        print(tuning_markdown(tuning))
        return
    split = protocols(transactions, features)
    results: dict[str, Any] = {
        "load_average": ", ".join(f"{x:.1f}" for x in os.getloadavg()),
        "logistic_regression": {name: logistic_regression(p) for name, p in split.items()},
        "ablation": [{"variant": v.name, **{name: evaluate(v, p) for name, p in split.items()}} for v in ablation()],
    }
    champion = Variant("champion", CATBOOST_PARAMS, seeds=len(CHAMPION_SEEDS))
    # Seeds s*len(CHAMPION_SEEDS) onwards: five disjoint sets of seeds, the first being the trained model's.
    per_seed = [
        {"seed": s * len(CHAMPION_SEEDS), **evaluate(champion, split["test"], s * len(CHAMPION_SEEDS))}
        for s in range(args.seeds)
    ]
    results["champion_per_seed"] = per_seed
    results["champion_mean"] = {m: float(np.mean([row[m] for row in per_seed])) for m in METRICS}
    record("fraud_training", results)
    print(markdown(results))


if __name__ == "__main__":
    main()
