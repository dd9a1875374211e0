"""The paired bootstrap of two frequency models' deviance and Gini differences: zero for one model against
itself, clearly signed when one model knows the true frequencies and the other does not, reproducible,
and refusing settings it cannot honour."""

from __future__ import annotations

import numpy as np
import pytest

from shared.modeling.frequency import gini, paired_bootstrap_interval, poisson_deviance


@pytest.fixture(scope="module")
def portfolio() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """3,000 policies with known frequencies from 0.02 to 0.6 a year, exposures up to a year."""
    rng = np.random.default_rng(3)
    frequency = rng.uniform(0.02, 0.6, 3000)
    exposure = rng.uniform(0.1, 1.0, 3000)
    return rng.poisson(frequency * exposure).astype(float), exposure, frequency


def test_a_model_against_itself_differs_by_nothing(portfolio: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    """Every resample of a model against itself differs by exactly zero, in deviance and in Gini."""
    counts, exposure, frequency = portfolio
    interval = paired_bootstrap_interval(counts, exposure, frequency, frequency, resamples=50)
    assert interval == {"poisson_deviance": (0.0, 0.0), "gini": (0.0, 0.0)}


def test_the_true_frequencies_beat_a_flat_guess_beyond_the_noise(
    portfolio: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    """The true frequencies against a flat guess: lower deviance and higher Gini, each whole interval on one
    side of zero, and the difference measured on the sample itself inside it."""
    counts, exposure, frequency = portfolio
    flat = np.full_like(frequency, counts.sum() / exposure.sum())
    interval = paired_bootstrap_interval(counts, exposure, frequency, flat, resamples=300)
    low, high = interval["poisson_deviance"]
    assert low < high < 0.0
    low, high = interval["gini"]
    assert 0.0 < low < high
    # The interval holds the difference measured on the policies themselves.
    observed = gini(counts, exposure, frequency) - gini(counts, exposure, flat)
    assert low < observed < high
    observed = poisson_deviance(counts, exposure, frequency) - poisson_deviance(counts, exposure, flat)
    assert interval["poisson_deviance"][0] < observed < interval["poisson_deviance"][1]


def test_same_seed_same_interval(portfolio: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    """One seed gives one interval; another seed another."""
    counts, exposure, frequency = portfolio
    noisy = frequency * np.random.default_rng(5).lognormal(0.0, 0.5, frequency.size)
    first = paired_bootstrap_interval(counts, exposure, frequency, noisy, resamples=100, seed=9)
    assert first == paired_bootstrap_interval(counts, exposure, frequency, noisy, resamples=100, seed=9)
    assert first != paired_bootstrap_interval(counts, exposure, frequency, noisy, resamples=100, seed=10)


@pytest.mark.parametrize(("resamples", "confidence"), [(0, 0.95), (100, 0.0), (100, 1.0)])
def test_impossible_settings_are_refused(
    portfolio: tuple[np.ndarray, np.ndarray, np.ndarray], resamples: int, confidence: float
) -> None:
    """No resamples, or a confidence of 0 or 1, is refused rather than answered."""
    counts, exposure, frequency = portfolio
    with pytest.raises(ValueError, match="resamples"):
        paired_bootstrap_interval(counts, exposure, frequency, frequency, resamples=resamples, confidence=confidence)


def test_predictions_of_another_length_are_refused(portfolio: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    """Two models' predictions must cover the same policies."""
    counts, exposure, frequency = portfolio
    with pytest.raises(ValueError, match="one length"):
        paired_bootstrap_interval(counts, exposure, frequency, frequency[:-1], resamples=10)
