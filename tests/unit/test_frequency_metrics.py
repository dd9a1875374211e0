"""Exposure-weighted Poisson deviance and Gini on hand-made portfolios whose answers are worked out
in the docstrings, so the metrics are checked against arithmetic, not against themselves."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shared.modeling.frequency import frequency_report, gini, lorenz_curve, poisson_deviance


def unit_deviance(observed: float, predicted: float) -> float:
    """Poisson unit deviance 2 [y log(y/m) - y + m], written out for the hand calculations."""
    log_term = observed * math.log(observed / predicted) if observed > 0 else 0.0
    return 2.0 * (log_term - observed + predicted)


def test_deviance_is_zero_for_a_perfect_prediction() -> None:
    """Predicting each policy's observed frequency (claims / exposure) leaves no deviance at all."""
    counts, exposure = [1, 2, 3], [0.5, 1.0, 2.0]
    assert poisson_deviance(counts, exposure, [2.0, 2.0, 1.5]) == pytest.approx(0.0, abs=1e-12)


def test_deviance_matches_the_hand_computed_value() -> None:
    """Two one-year policies with 0 and 2 claims, both predicted at 1 a year: unit deviances
    2 * 1 = 2 and 2 (2 ln 2 - 1), averaged with equal weights."""
    expected = (2.0 + 2.0 * (2.0 * math.log(2.0) - 1.0)) / 2.0
    assert poisson_deviance([0, 2], [1.0, 1.0], [1.0, 1.0]) == pytest.approx(expected, rel=1e-12)


def test_exposure_weighting_changes_the_deviance() -> None:
    """Policies of 1 and 3 years with 0 and 1 claims, both predicted at 0.5 a year: frequencies 0 and
    1/3. Weighted by exposure, the long policy counts three times: (1 * d(0, .5) + 3 * d(1/3, .5)) / 4
    = 0.2973, while the unweighted mean would be 0.5315."""
    first, second = unit_deviance(0.0, 0.5), unit_deviance(1 / 3, 0.5)
    weighted = (1.0 * first + 3.0 * second) / 4.0
    unweighted = (first + second) / 2.0
    result = poisson_deviance([0, 1], [1.0, 3.0], [0.5, 0.5])
    assert result == pytest.approx(weighted, rel=1e-12)
    assert result == pytest.approx(0.29727, abs=1e-5)
    assert abs(result - unweighted) > 0.2


def test_weighted_frequency_deviance_is_the_count_deviance_per_policy_year() -> None:
    """The exposure-weighted deviance of frequencies equals the deviance of the counts against the
    expected counts exposure * frequency, divided by the total exposure: the identity that makes the
    weighted-frequency fit and the offset fit one likelihood."""
    rng = np.random.default_rng(7)
    exposure = rng.uniform(0.01, 1.5, size=200)
    predicted = rng.uniform(0.02, 0.4, size=200)
    counts = rng.poisson(exposure * predicted)
    per_policy = [unit_deviance(float(y), float(e * m)) for y, e, m in zip(counts, exposure, predicted, strict=False)]
    assert poisson_deviance(counts, exposure, predicted) == pytest.approx(sum(per_policy) / exposure.sum())


def test_deviance_rejects_a_zero_prediction() -> None:
    """A zero frequency makes an observed claim impossible: the deviance refuses it instead of
    returning infinity."""
    with pytest.raises(ValueError, match="strictly positive"):
        poisson_deviance([1, 0], [1.0, 1.0], [0.0, 0.1])


def test_gini_of_a_perfect_and_of_a_reversed_ranking() -> None:
    """Four one-year policies, the two riskiest with one claim each. Ranked right, the Lorenz curve
    passes (0,0) (.25,0) (.5,0) (.75,.5) (1,1): area .25, Gini .5. Ranked backwards it passes
    (.25,.5) (.5,1): area .75, Gini -.5."""
    counts, exposure = [0, 0, 1, 1], [1.0] * 4
    assert gini(counts, exposure, [1.0, 2.0, 3.0, 4.0]) == pytest.approx(0.5)
    assert gini(counts, exposure, [4.0, 3.0, 2.0, 1.0]) == pytest.approx(-0.5)


def test_gini_follows_the_ascending_lorenz_convention() -> None:
    """Safest policy first: x is the cumulative exposure share, y the cumulative claim share, both
    from the origin; the curve stays under the diagonal for a good ranking."""
    exposure_share, claim_share = lorenz_curve([0, 1, 3], [2.0, 1.0, 1.0], [0.1, 0.5, 0.9])
    np.testing.assert_allclose(exposure_share, [0.0, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(claim_share, [0.0, 0.0, 0.25, 1.0])


def test_gini_of_a_constant_prediction_is_zero_whatever_the_row_order() -> None:
    """Ties form one straight segment of the Lorenz curve, so a constant prediction ranks nobody:
    Gini 0 whether the claims sit in the first rows or the last (an argsort tie order would give
    +-0.5 here)."""
    exposure = [1.0] * 4
    assert gini([1, 1, 0, 0], exposure, [0.1] * 4) == pytest.approx(0.0, abs=1e-12)
    assert gini([0, 0, 1, 1], exposure, [0.1] * 4) == pytest.approx(0.0, abs=1e-12)


def test_gini_depends_on_ranking_only() -> None:
    """Any increasing transformation of the predictions (here x -> 10 x^2 + 3) keeps the Gini: it
    measures ranking, not level."""
    rng = np.random.default_rng(3)
    exposure = rng.uniform(0.1, 1.0, size=100)
    predicted = rng.uniform(0.05, 0.3, size=100)
    counts = rng.poisson(exposure * predicted * 3)
    assert gini(counts, exposure, 10 * predicted**2 + 3) == pytest.approx(gini(counts, exposure, predicted))


def test_exposure_weighting_changes_the_gini() -> None:
    """Two policies ranked right, the riskier one with the only claim. With one year each the curve is
    (0,0) (.5,0) (1,1): Gini .5. When the safe policy holds three of the four years the claim-free
    stretch is longer, (.75, 0): Gini .75."""
    assert gini([0, 1], [1.0, 1.0], [0.1, 0.2]) == pytest.approx(0.5)
    assert gini([0, 1], [3.0, 1.0], [0.1, 0.2]) == pytest.approx(0.75)


def test_gini_needs_a_claim() -> None:
    """Without a claim there is no claim share to accumulate: refused, not NaN."""
    with pytest.raises(ValueError, match="at least one claim"):
        gini([0, 0], [1.0, 1.0], [0.1, 0.2])


def test_frequency_report_compares_predicted_and_observed_claims() -> None:
    """Policies of half a year and one year predicted at one claim a year expect 1.5 claims against
    2 observed: ratio .75, alongside the deviance and Gini computed by their own functions."""
    counts, exposure, predicted = [1, 1], [0.5, 1.0], [1.0, 1.0]
    report = frequency_report(counts, exposure, predicted)
    assert report["predicted_to_observed_claims"] == pytest.approx(0.75)
    assert report["predicted_claims"] == pytest.approx(1.5)
    assert report["observed_claims"] == 2.0
    assert report["exposure"] == pytest.approx(1.5)
    assert report["poisson_deviance"] == pytest.approx(poisson_deviance(counts, exposure, predicted))
    assert report["gini"] == pytest.approx(0.0)
    assert all(type(value) is float for value in report.values())


def test_inputs_of_different_lengths_are_refused() -> None:
    """Mismatched arrays are a caller's bug; they fail with a message instead of broadcasting."""
    with pytest.raises(ValueError, match="one length"):
        frequency_report([0, 1], [1.0, 1.0, 1.0], [0.1, 0.2])
