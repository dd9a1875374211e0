"""Claim-frequency models for motor policies: the Poisson GLM baseline and the CatBoost Poisson champion.

Both predict the expected number of claims per policy-year (the frequency) and both treat exposure
as the Poisson likelihood requires: a policy observed for t years with frequency lambda has
claim_count ~ Poisson(t * lambda). Evaluation uses `shared.modeling.frequency` on the fixed held-out
split of `dataset.train_test_split_policies`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, TypeAlias

import numpy as np
import pandas as pd
from catboost import CatBoostRegressor, Pool
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import PoissonRegressor
from sklearn.metrics import mean_poisson_deviance
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from services.claims_risk.features import FEATURE_SET
from shared.modeling.frequency import frequency_report

FEATURES: Final = FEATURE_SET.features  # the model reads the feature set's columns, in its order
CATEGORICAL_FEATURES: Final = FEATURE_SET.categorical
TARGET: Final = "claim_count"
EXPOSURE: Final = "exposure"

# Age bands of the reference GLM for freMTPL2freq (Noll, Salzmann & Wuthrich, "Case Study: French
# Motor Third-Party Liability Claims", 2018): the frequency is far from log-linear in age, so the GLM
# gets one level per band. Each list holds the lower edges of the bands after the first.
AGE_BAND_EDGES: Final = {
    "driver_age": (21, 26, 31, 41, 51, 71),  # 18-20, 21-25, 26-30, 31-40, 41-50, 51-70, 71+
    "vehicle_age": (1, 11),  # new, 1-10, 11+
}
GLM_ALPHA: Final = 1e-4

CATBOOST_PARAMS: Final = {
    "loss_function": "Poisson",
    "depth": 6,
    "learning_rate": 0.05,
    "l2_leaf_reg": 10.0,
    # Both categoricals have at most 7 levels: split on them one-hot, natively, instead of through
    # target statistics, which would see claim counts without their exposure.
    "one_hot_max_size": 8,
    "random_seed": 0,
    "thread_count": 2,
    "verbose": 0,
    "allow_writing_files": False,
}
CATBOOST_ITERATIONS: Final = 300
CATBOOST_MAX_ITERATIONS: Final = 1000
CATBOOST_EARLY_STOPPING_ROUNDS: Final = 100
CHAMPION_DESCRIPTION: Final = (
    f"CatBoost Poisson, {CATBOOST_ITERATIONS} trees, depth {CATBOOST_PARAMS['depth']}, learning rate "
    f"{CATBOOST_PARAMS['learning_rate']}, l2_leaf_reg {CATBOOST_PARAMS['l2_leaf_reg']}, one-hot categoricals, "
    "baseline log(exposure) + log(training frequency)"
)

# The yardstick a boosted champion must beat besides the GLM: CatBoost's Poisson loss with near-default
# settings, exposure only as the baseline log(exposure), categoricals through CatBoost's default
# target statistics.
PLAIN_CATBOOST_PARAMS: Final = {
    "loss_function": "Poisson",
    "iterations": 500,
    "depth": 6,
    "learning_rate": 0.1,
    "random_seed": 0,
    "thread_count": 2,
    "verbose": 0,
    "allow_writing_files": False,
}

FrequencyModel: TypeAlias = Pipeline | CatBoostRegressor


def _age_bands(ages: pd.DataFrame) -> np.ndarray:
    """Band index of each age column by AGE_BAND_EDGES (module level so fitted pipelines pickle)."""
    return np.column_stack([np.digitize(ages[column].to_numpy(), AGE_BAND_EDGES[column]) for column in ages.columns])


def glm_preprocessor() -> ColumnTransformer:
    """The GLM's design, after the scikit-learn freMTPL example: one-hot categoricals (vehicle power
    too: its effect is not monotone), banded ages one-hot, and the bonus-malus scaled, since it acts
    roughly log-linearly and scaling keeps the small L2 penalty comparable across coefficients.
    Unknown categories at scoring time fall back to the reference (all zeros) instead of failing."""
    bands = Pipeline(
        [
            ("band", FunctionTransformer(_age_bands)),
            ("one_hot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )
    return ColumnTransformer(
        [
            ("scaled", StandardScaler(), ["bonus_malus"]),
            ("age_bands", bands, list(AGE_BAND_EDGES)),
            (
                "one_hot",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                ["area", "vehicle_brand", "vehicle_power"],
            ),
        ],
        remainder="drop",
    )


def fit_glm(train: pd.DataFrame, alpha: float = GLM_ALPHA) -> Pipeline:
    """The baseline: a Poisson GLM (log link) on the observed frequency claim_count / exposure with
    sample_weight=exposure, the scikit-learn example's way of handling exposure.

    That weighted fit maximises the same likelihood as a count model with offset log(exposure) (see
    `fit_offset_glm` for the proof), so the GLM predicts a frequency per policy-year directly. The
    tiny L2 penalty only pins down the intercept against the full one-hot blocks, which are collinear
    with it; Newton-Cholesky converges in a few steps on this small design.
    """
    pipeline = Pipeline(
        [
            ("features", glm_preprocessor()),
            ("poisson", PoissonRegressor(alpha=alpha, solver="newton-cholesky")),
        ]
    )
    frequency = train[TARGET] / train[EXPOSURE]
    pipeline.fit(train[list(FEATURES)], frequency, poisson__sample_weight=train[EXPOSURE].to_numpy())
    return pipeline


def _portfolio_log_frequency(frame: pd.DataFrame) -> float:
    """log(total claims / total exposure): the frequency every boosted model starts from."""
    claims = float(frame[TARGET].sum())
    if claims <= 0:
        raise ValueError("cannot fit a frequency model on policies without a single claim")
    return float(np.log(claims / frame[EXPOSURE].sum()))


def _catboost_pool(frame: pd.DataFrame, log_start: float | None = None) -> Pool:
    """A Pool of FEATURES with native categoricals; for training, the counts with baseline
    log(exposure) + log_start, for scoring no label and no baseline (exposure one year)."""
    features = frame[list(FEATURES)]
    if log_start is None:
        return Pool(features, cat_features=list(CATEGORICAL_FEATURES))
    baseline = np.log(frame[EXPOSURE].to_numpy(dtype=np.float64)) + log_start
    return Pool(features, label=frame[TARGET].to_numpy(), cat_features=list(CATEGORICAL_FEATURES), baseline=baseline)


def fit_catboost(train: pd.DataFrame, valid: pd.DataFrame | None = None) -> CatBoostRegressor:
    """The champion: CatBoost with the Poisson loss on claim counts, exposure as baseline log(exposure).

    Why the offset and not a frequency target weighted by exposure: both give the same likelihood
    (the weighted frequency deviance of a policy equals its count deviance, see `fit_offset_glm`), but
    the offset keeps the label the integer count that the Poisson law describes, as in the actuarial
    GLM, while the weighted form feeds targets such as 1 claim / 0.0027 years = 365 claims a year to
    CatBoost's target quantisation and metrics. A tree's raw output is then log frequency, and
    scoring without a baseline (exposure = 1 year) gives the annual frequency.

    CatBoost refuses `boost_from_average` for Poisson, so trees would start at frequency 1, ten times
    the portfolio's; the baseline therefore also carries log(training frequency), which is moved into
    the model's bias after fitting, so the saved model alone predicts the frequency.

    Tuning (on the training part of the fixed split only, 3-fold, folds from `default_rng(1)`): depth
    4/5/6/8, l2_leaf_reg 3/10/20, learning rate 0.03/0.05, one_hot_max_size 2/8, a monotone bonus-malus,
    five seeds averaged. All settings with one-hot categoricals reached a mean deviance of 0.643-0.652
    and a Gini of 0.27-0.30 (the GLM: 0.659 and 0.244); depth 6, rate 0.05 with l2 10 and 300 trees
    (0.6462 and 0.2910) beat l2 3 with 200 trees (0.6465 and 0.2853), and averaging five seeds gained
    0.0008 of deviance for five times the trees, so one model is kept. Given `valid` (a slice of the
    training data, never the test split), up to 1000 trees are grown and the best iteration on `valid`
    is kept. Figures against the GLM and a plain CatBoost fit: bench/results/claims_training.md.
    """
    log_start = _portfolio_log_frequency(train)
    if valid is None:
        model = CatBoostRegressor(iterations=CATBOOST_ITERATIONS, **CATBOOST_PARAMS)
        model.fit(_catboost_pool(train, log_start))
    else:
        model = CatBoostRegressor(iterations=CATBOOST_MAX_ITERATIONS, **CATBOOST_PARAMS)
        model.fit(
            _catboost_pool(train, log_start),
            eval_set=_catboost_pool(valid, log_start),
            early_stopping_rounds=CATBOOST_EARLY_STOPPING_ROUNDS,
            use_best_model=True,
        )
    scale, bias = model.get_scale_and_bias()
    model.set_scale_and_bias(scale, bias + log_start)
    return model


def fit_plain_catboost(train: pd.DataFrame) -> CatBoostRegressor:
    """The plain reference fit (PLAIN_CATBOOST_PARAMS): no portfolio start, no one-hot, no tuning."""
    pool = Pool(
        train[list(FEATURES)],
        label=train[TARGET].to_numpy(),
        cat_features=list(CATEGORICAL_FEATURES),
        baseline=np.log(train[EXPOSURE].to_numpy(dtype=np.float64)),
    )
    model = CatBoostRegressor(**PLAIN_CATBOOST_PARAMS)
    model.fit(pool)
    return model


def predict_frequency(model: FrequencyModel, frame: pd.DataFrame) -> np.ndarray:
    """Expected annual claim frequency (claims per policy-year) of each row of `frame`, for either
    model: the GLM predicts it directly, CatBoost as exp(raw) with no baseline, i.e. one year.
    Multiply by a policy's exposure for its expected claim count."""
    if isinstance(model, CatBoostRegressor):
        predicted = model.predict(_catboost_pool(frame), prediction_type="Exponent")
    elif isinstance(model, Pipeline):
        predicted = model.predict(frame[list(FEATURES)])
    else:
        raise TypeError(f"not a frequency model: {type(model).__name__}")
    return np.asarray(predicted, dtype=np.float64)


def evaluate(models: Mapping[str, FrequencyModel], test: pd.DataFrame) -> dict[str, dict[str, float]]:
    """`frequency_report` (exposure-weighted deviance, Gini, predicted/observed claims) per named model
    on `test`, which should be the held-out split."""
    return {
        name: frequency_report(test[TARGET], test[EXPOSURE], predict_frequency(model, test))
        for name, model in models.items()
    }


@dataclass(frozen=True)
class OffsetGlmFit:
    """An unpenalised Poisson GLM with offset log(exposure): the fitted pipeline (predicting the
    rate per unit of exposure), its residual deviance on the counts and its residual degrees of
    freedom (rows minus coefficients, intercept included)."""

    pipeline: Pipeline
    deviance: float
    df_residual: int
    fitted_counts: np.ndarray


def fit_offset_glm(
    frame: pd.DataFrame,
    response: str,
    exposure: str,
    factors: Mapping[str, Sequence[object]],
) -> OffsetGlmFit:
    """Maximum-likelihood fit of response ~ factors + offset(log(exposure)), Poisson with log link,
    each factor in treatment coding with its first listed level as the reference (R's default for
    unordered factors), as a check that our GLM machinery reproduces published results.

    scikit-learn's PoissonRegressor has no offset, so it is fitted, with alpha=0, to the rate
    r_i = y_i / h_i with sample_weight h_i (h = exposure). This is the same maximum-likelihood problem.
    Proof: with m_i = exp(x_i b), the offset model says y_i ~ Poisson(h_i m_i), whose log-likelihood
    is sum_i [y_i log(h_i m_i) - h_i m_i - log y_i!] = sum_i [y_i x_i b - h_i m_i] + C, C free of b.
    The weighted fit minimises sum_i h_i d(r_i, m_i) with the unit deviance
    d(r, m) = 2 [r log(r/m) - r + m], and h_i d(r_i, m_i) = 2 [y_i log(y_i/(h_i m_i)) - y_i + h_i m_i]
    = d(y_i, h_i m_i) = -2 [y_i x_i b - h_i m_i] + C'_i. So the objective is -2 times the
    log-likelihood plus a constant: same minimiser b, and at it, sum_i h_i d(r_i, m_i) is exactly
    the residual deviance of the counts, which is computed here from the fitted counts h_i m_i.
    """
    columns = list(factors)
    encoder = OneHotEncoder(categories=[list(levels) for levels in factors.values()], drop="first", sparse_output=False)
    pipeline = Pipeline(
        [
            ("design", ColumnTransformer([("treatment", encoder, columns)], remainder="drop")),
            ("poisson", PoissonRegressor(alpha=0.0, solver="newton-cholesky", tol=1e-10, max_iter=1000)),
        ]
    )
    counts = frame[response].to_numpy(dtype=np.float64)
    holders = frame[exposure].to_numpy(dtype=np.float64)
    pipeline.fit(frame[columns], counts / holders, poisson__sample_weight=holders)
    fitted_counts = holders * pipeline.predict(frame[columns])
    deviance = float(mean_poisson_deviance(counts, fitted_counts) * counts.size)
    n_coefficients = int(pipeline[-1].coef_.size) + 1
    return OffsetGlmFit(pipeline, deviance, counts.size - n_coefficients, fitted_counts)
