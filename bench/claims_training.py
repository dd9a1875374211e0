"""The claims champion against the Poisson GLM and a plain CatBoost Poisson fit, on the fixed held-out
split and over seeded splits: exposure-weighted Poisson deviance and Gini, with the paired bootstrap
interval of each difference on the fixed split.

    python -m bench.claims_training [--splits 10] [--resamples 2000]

Writes results/claims_training.json and results/claims_training.md. Each split is
`train_test_split_policies(policies, seed=s)` (s = 0 is the fixed split of `risk train claims`); every
model is fitted on that split's training part only.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from bench.common import RESULTS, record
from services.claims_risk.dataset import SPLIT_SEED, load_policies, train_test_split_policies
from services.claims_risk.models import (
    CHAMPION_DESCRIPTION,
    EXPOSURE,
    TARGET,
    FrequencyModel,
    fit_catboost,
    fit_glm,
    fit_plain_catboost,
    predict_frequency,
)
from shared.modeling.frequency import frequency_report, paired_bootstrap_interval

CHAMPION = "champion"
MODELS: Mapping[str, Callable[[pd.DataFrame], FrequencyModel]] = {
    CHAMPION: fit_catboost,
    "poisson_glm": fit_glm,
    "plain_catboost": fit_plain_catboost,
}
METRICS = ("poisson_deviance", "gini")


def predictions_on_split(policies: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, dict[str, np.ndarray], float]:
    """(held-out policies, each model's predicted frequencies on them, seconds the fits took)."""
    training, held_out = train_test_split_policies(policies, seed=seed)
    started = time.perf_counter()
    predicted = {name: predict_frequency(fit(training), held_out) for name, fit in MODELS.items()}
    return held_out, predicted, time.perf_counter() - started


def scores(held_out: pd.DataFrame, predicted: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
    return {
        name: {
            metric: value
            for metric, value in frequency_report(held_out[TARGET], held_out[EXPOSURE], frequency).items()
            if metric in (*METRICS, "predicted_to_observed_claims")
        }
        for name, frequency in predicted.items()
    }


def summary(per_split: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, dict[str, float]]]:
    """Mean, sample standard deviation, min and max of each model's metrics over the splits, and the
    same of the champion's difference to each other model (deviance: champion - other, lower is
    better; Gini: champion - other, higher is better), with how many splits the champion won."""
    result: dict[str, dict[str, dict[str, float]]] = {}
    for name in MODELS:
        result[name] = {metric: _spread([split[name][metric] for split in per_split]) for metric in METRICS}
    for other in (name for name in MODELS if name != CHAMPION):
        differences = {}
        for metric in METRICS:
            values = [split[CHAMPION][metric] - split[other][metric] for split in per_split]
            better = sum(v < 0 if metric == "poisson_deviance" else v > 0 for v in values)
            differences[metric] = {**_spread(values), "champion_better_splits": float(better)}
        result[f"{CHAMPION}_minus_{other}"] = differences
    return result


def _spread(values: list[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(array.mean()),
        "sd": float(array.std(ddof=1)) if array.size > 1 else 0.0,
        "min": float(array.min()),
        "max": float(array.max()),
    }


def markdown(results: Mapping[str, Any]) -> str:
    fixed, spread, intervals = results["fixed_split"], results["over_splits"], results["fixed_split_bootstrap"]
    n = results["splits"]
    lines = [
        "# Claims frequency models: champion against the GLM and a plain CatBoost",
        "",
        f"`python -m bench.claims_training`, measured {results['measured_on']} on the project's 2-core machine "
        f"(shared with other jobs: load average {results['load_average']}). freMTPL2freq sample, 25,000 policies; "
        "each split holds out 5,000. Lower deviance and higher Gini are better.",
        "",
        "Models:",
        f"- **champion** (`fit_catboost`): {results['champion']}",
        "- **poisson_glm** (`fit_glm`): one-hot categoricals and vehicle power, banded ages, scaled bonus-malus",
        "- **plain_catboost** (`fit_plain_catboost`): CatBoost Poisson, 500 trees, depth 6, learning rate 0.1, "
        "baseline log(exposure), categoricals by CatBoost's default target statistics",
        "",
        f"## The fixed split (seed {SPLIT_SEED}, the one `risk train claims` uses)",
        "",
        "| model | Poisson deviance | Gini | predicted / observed claims |",
        "|---|---|---|---|",
    ]
    for name in MODELS:
        m = fixed[name]
        lines.append(
            f"| {name} | {m['poisson_deviance']:.4f} | {m['gini']:.4f} | {m['predicted_to_observed_claims']:.3f} |"
        )
    lines += [
        "",
        f"Paired bootstrap over the held-out policies ({results['resamples']} resamples), 95 % interval of the "
        "champion's difference:",
        "",
        "| against | deviance difference | Gini difference |",
        "|---|---|---|",
    ]
    for other, interval in intervals.items():
        dev, gin = interval["poisson_deviance"], interval["gini"]
        lines.append(
            f"| {other} | {fixed[CHAMPION]['poisson_deviance'] - fixed[other]['poisson_deviance']:+.4f} "
            f"[{dev[0]:+.4f}, {dev[1]:+.4f}] | {fixed[CHAMPION]['gini'] - fixed[other]['gini']:+.4f} "
            f"[{gin[0]:+.4f}, {gin[1]:+.4f}] |"
        )
    lines += [
        "",
        f"## Over {n} seeded splits (seeds 0..{n - 1})",
        "",
        "| model | deviance mean (sd) [min, max] | Gini mean (sd) [min, max] |",
        "|---|---|---|",
    ]
    for name in MODELS:
        lines.append(f"| {name} | {_cell(spread[name]['poisson_deviance'])} | {_cell(spread[name]['gini'])} |")
    lines += ["", "| champion minus | deviance | splits won | Gini | splits won |", "|---|---|---|---|---|"]
    for other in (name for name in MODELS if name != CHAMPION):
        d = spread[f"{CHAMPION}_minus_{other}"]
        lines.append(
            f"| {other} | {_cell(d['poisson_deviance'], signed=True)} | "
            f"{int(d['poisson_deviance']['champion_better_splits'])}/{n} | "
            f"{_cell(d['gini'], signed=True)} | {int(d['gini']['champion_better_splits'])}/{n} |"
        )
    lines += ["", "Per split:", "", "| seed | " + " | ".join(f"{m} dev / Gini" for m in MODELS) + " |"]
    lines.append("|---" * (len(MODELS) + 1) + "|")
    for seed, split in enumerate(results["per_split"]):
        cells = [f"{split[m]['poisson_deviance']:.4f} / {split[m]['gini']:.4f}" for m in MODELS]
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    lines += ["", f"Fitting the three models took {results['fit_seconds_per_split']:.0f} s a split on average.", ""]
    return "\n".join(lines)


def _cell(stats: Mapping[str, float], signed: bool = False) -> str:
    form = "+.4f" if signed else ".4f"
    return f"{stats['mean']:{form}} ({stats['sd']:.4f}) [{stats['min']:{form}}, {stats['max']:{form}}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--resamples", type=int, default=2000)
    args = parser.parse_args()
    policies = load_policies()
    per_split, seconds = [], []
    fixed_intervals: dict[str, dict[str, tuple[float, float]]] = {}
    for seed in range(args.splits):
        held_out, predicted, took = predictions_on_split(policies, seed)
        per_split.append(scores(held_out, predicted))
        seconds.append(took)
        print(f"split {seed}: {per_split[-1]} ({took:.0f} s)", flush=True)
        if seed == SPLIT_SEED:
            fixed_intervals = {
                other: paired_bootstrap_interval(
                    held_out[TARGET],
                    held_out[EXPOSURE],
                    predicted[CHAMPION],
                    predicted[other],
                    resamples=args.resamples,
                )
                for other in MODELS
                if other != CHAMPION
            }
    results = {
        "measured_on": time.strftime("%Y-%m-%d"),
        "load_average": ", ".join(f"{x:.1f}" for x in os.getloadavg()),
        "champion": CHAMPION_DESCRIPTION,
        "splits": args.splits,
        "resamples": args.resamples,
        "fixed_split": per_split[SPLIT_SEED],
        "fixed_split_bootstrap": fixed_intervals,
        "over_splits": summary(per_split),
        "per_split": per_split,
        "fit_seconds_per_split": float(np.mean(seconds)),
    }
    record("claims_training", results)
    (RESULTS / "claims_training.md").write_text(markdown(results))


if __name__ == "__main__":
    main()
