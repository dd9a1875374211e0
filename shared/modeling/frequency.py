"""Evaluation metrics for claim-frequency models: counts observed over an exposure (policy-years).

A frequency model predicts an expected number of claims per unit of exposure. Policies are observed
for different lengths of time, so every metric here weights a policy by its exposure: a policy seen
for a week carries a week's worth of evidence, not a year's. The definitions follow the scikit-learn
example "Poisson regression and non-normal loss" (on the same French motor claims data).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import numpy as np
import pandas as pd
from sklearn.metrics import auc, mean_poisson_deviance

ArrayLike: TypeAlias = Sequence[float] | np.ndarray | pd.Series


def _as_arrays(
    y_count: ArrayLike,
    exposure: ArrayLike,
    predicted_frequency: ArrayLike,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts, exposures and predictions as float arrays of one length, rejecting values outside the
    Poisson frequency setting, so a bad input fails loudly instead of turning into NaN or inf."""
    counts = np.asarray(y_count, dtype=np.float64)
    years = np.asarray(exposure, dtype=np.float64)
    predicted = np.asarray(predicted_frequency, dtype=np.float64)
    if not counts.shape == years.shape == predicted.shape or counts.ndim != 1:
        raise ValueError(
            f"y_count, exposure and predicted_frequency must be 1-D of one length, got shapes "
            f"{counts.shape}, {years.shape}, {predicted.shape}"
        )
    if counts.size == 0:
        raise ValueError("frequency metrics need at least one policy")
    if not np.all(np.isfinite(counts)) or np.any(counts < 0):
        raise ValueError("claim counts must be finite and non-negative")
    if not np.all(np.isfinite(years)) or np.any(years <= 0):
        raise ValueError("exposures must be finite and positive")
    if not np.all(np.isfinite(predicted)) or np.any(predicted < 0):
        raise ValueError("predicted frequencies must be finite and non-negative")
    return counts, years, predicted


def poisson_deviance(y_count: ArrayLike, exposure: ArrayLike, predicted_frequency: ArrayLike) -> float:
    """Exposure-weighted mean Poisson deviance of the observed frequency y/exposure against the
    predicted frequency (lower is better; 0 only for a prediction equal to every observed frequency).

    This is `mean_poisson_deviance(y / exposure, predicted, sample_weight=exposure)`, the field's
    definition. Weighting the frequency deviance by exposure makes it the count deviance of the
    expected count exposure * predicted, divided by the total exposure, so it is the (scaled)
    Poisson likelihood that both the GLM and the boosted model maximise. Predictions must be strictly
    positive: a zero frequency makes any observed claim infinitely unlikely.
    """
    counts, years, predicted = _as_arrays(y_count, exposure, predicted_frequency)
    if np.any(predicted <= 0):
        raise ValueError("the Poisson deviance needs strictly positive predicted frequencies")
    return float(mean_poisson_deviance(counts / years, predicted, sample_weight=years))


def lorenz_curve(
    y_count: ArrayLike,
    exposure: ArrayLike,
    predicted_frequency: ArrayLike,
) -> tuple[np.ndarray, np.ndarray]:
    """The exposure-weighted Lorenz curve as (cumulative share of exposure, cumulative share of claims),
    both starting at 0 and ending at 1, policies taken from the safest to the riskiest prediction.

    Policies with equal predictions form one step, reached in one straight segment: no ordering among
    ties is invented, so the curve does not depend on row order, and a constant prediction gives the
    diagonal. (scikit-learn's example orders ties by `np.argsort`, which is arbitrary, and omits the
    origin point; both differences vanish for many distinct predictions.)
    """
    counts, years, predicted = _as_arrays(y_count, exposure, predicted_frequency)
    if counts.sum() <= 0:
        raise ValueError("the Lorenz curve needs at least one claim")
    levels, group = np.unique(predicted, return_inverse=True)
    exposure_per_level = np.bincount(group, weights=years, minlength=levels.size)
    claims_per_level = np.bincount(group, weights=counts, minlength=levels.size)
    cumulative_exposure = np.concatenate([[0.0], np.cumsum(exposure_per_level)])
    cumulative_claims = np.concatenate([[0.0], np.cumsum(claims_per_level)])
    return cumulative_exposure / cumulative_exposure[-1], cumulative_claims / cumulative_claims[-1]


def gini(y_count: ArrayLike, exposure: ArrayLike, predicted_frequency: ArrayLike) -> float:
    """Exposure-weighted Gini index of the predicted ranking: 1 - 2 * (area under the Lorenz curve).

    Convention of scikit-learn's "Poisson regression and non-normal loss" example: policies ordered
    by predicted frequency ascending (safest first), cumulative share of exposure on x, cumulative
    share of claims on y, Gini = 1 - 2 * AUC. (The "Tweedie regression on insurance claims" example
    has the same ordering and formula but the unweighted share of policyholders on x; for frequency,
    exposure is the right x, since a one-day policy is not a year's worth of risk.)

    A model that puts the claims on its riskiest policies bends the curve below the diagonal, so
    higher is better: 0 for a constant prediction, near 0 for a random one, negative for a reversed
    ranking, and always below 1 (claims sit on policies with some exposure). Only the order of the
    predictions matters, not their level, so the Gini measures ranking and says nothing about
    calibration: read it beside the deviance. Tied predictions are one segment of the curve (see
    `lorenz_curve`), so the result does not depend on row order.
    """
    cumulative_exposure, cumulative_claims = lorenz_curve(y_count, exposure, predicted_frequency)
    return float(1.0 - 2.0 * auc(cumulative_exposure, cumulative_claims))


def frequency_report(
    y_count: ArrayLike,
    exposure: ArrayLike,
    predicted_frequency: ArrayLike,
) -> dict[str, float]:
    """Deviance, Gini and the ratio of predicted to observed total claims, as plain floats for JSON.

    The ratio sum(exposure * predicted) / sum(claims) checks the overall level the two ranking and
    fit metrics can hide: a model can rank well and still price the whole portfolio 10% too low.
    Like the Gini, it needs at least one observed claim.
    """
    counts, years, predicted = _as_arrays(y_count, exposure, predicted_frequency)
    observed_claims = float(counts.sum())
    predicted_claims = float(np.sum(years * predicted))
    return {
        "poisson_deviance": poisson_deviance(counts, years, predicted),
        "gini": gini(counts, years, predicted),
        "predicted_to_observed_claims": predicted_claims / observed_claims,
        "observed_claims": observed_claims,
        "predicted_claims": predicted_claims,
        "exposure": float(years.sum()),
    }


def paired_bootstrap_interval(
    y_count: ArrayLike,
    exposure: ArrayLike,
    predicted_a: ArrayLike,
    predicted_b: ArrayLike,
    *,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of the differences A - B in deviance and in Gini between two models scored
    on the same policies, by resampling the policies with replacement (one draw serves both models, so
    the policies' own luck cancels out of the difference).

    A deviance interval wholly below 0 says A fits better beyond the noise of which policies were held
    out; a Gini interval wholly above 0 that A ranks better.
    """
    counts, years, first = _as_arrays(y_count, exposure, predicted_a)
    second = _as_arrays(counts, years, predicted_b)[2]
    if resamples < 1 or not 0.0 < confidence < 1.0:
        raise ValueError(f"need resamples >= 1 and confidence in (0, 1), got {resamples} and {confidence}")
    rng = np.random.default_rng(seed)
    deviance, ranking = np.empty(resamples), np.empty(resamples)
    for draw in range(resamples):
        rows = rng.integers(0, counts.size, counts.size)
        while counts[rows].sum() <= 0:  # the Gini needs a claim in the resample
            rows = rng.integers(0, counts.size, counts.size)
        sample = counts[rows], years[rows]
        deviance[draw] = poisson_deviance(*sample, first[rows]) - poisson_deviance(*sample, second[rows])
        ranking[draw] = gini(*sample, first[rows]) - gini(*sample, second[rows])
    tail = 50.0 * (1.0 - confidence)
    return {
        name: (float(np.percentile(values, tail)), float(np.percentile(values, 100.0 - tail)))
        for name, values in (("poisson_deviance", deviance), ("gini", ranking))
    }
