"""The compiled oblivious forest against CatBoost itself: same raw scores, probabilities and exact SHAP
values, on the real fraud model and on models trained here to reach every corner (shallow trees beside
deep ones, repeated features in a tree, empty leaves, NaN sent left or right)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from catboost import CatBoost, CatBoostClassifier, CatBoostRegressor, Pool, sum_models

from services.registry import service
from shared.modeling.explain import top_contributions
from shared.modeling.registry import ModelRegistry
from shared.modeling.trees import ObliviousForest, TreeModel

TOLERANCE = 1e-9


def catboost_shap(model: CatBoost, matrix: np.ndarray) -> np.ndarray:
    return np.asarray(model.get_feature_importance(Pool(matrix), type="ShapValues"))[:, :-1]


def assert_same_as_catboost(model: CatBoost, matrix: np.ndarray) -> ObliviousForest:
    forest = ObliviousForest.from_catboost(model)
    assert forest is not None
    raw = np.asarray(model.predict(matrix, prediction_type="RawFormulaVal"))
    np.testing.assert_allclose(forest.raw(matrix), raw, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(forest.shap(matrix), catboost_shap(model, matrix), rtol=0, atol=TOLERANCE)
    return forest


@pytest.fixture(scope="module")
def fraud_model(fraud_model_dir: Path) -> TreeModel:
    model = ModelRegistry(fraud_model_dir).load("fraud", loader=service("fraud").load_model).model
    assert isinstance(model, TreeModel)
    return model


@pytest.fixture(scope="module")
def fraud_rows(fraud_model: TreeModel) -> np.ndarray:
    """Rows spread over the model's whole range, many landing near its borders."""
    forest = fraud_model.forest
    assert forest is not None
    rng = np.random.default_rng(7)
    borders = forest.split_borders[forest.split_features < len(forest.feature_names)]
    features = forest.split_features[forest.split_features < len(forest.feature_names)]
    rows = rng.uniform(0, 1, size=(3000, len(forest.feature_names))) * 50
    near = rng.integers(0, len(borders), size=3000)
    rows[np.arange(3000), features[near]] = borders[near].astype(np.float64)  # exactly on a border
    return rows


def frame(model: TreeModel, rows: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(model.feature_names))


def test_fraud_model_is_compiled_and_agrees_with_catboost(fraud_model: TreeModel, fraud_rows: np.ndarray) -> None:
    """The fraud model compiles to oblivious trees whose raw scores, probabilities and SHAP values equal CatBoost's
    to 1e-9."""
    assert fraud_model.forest is not None and fraud_model.forest.numeric
    assert_same_as_catboost(fraud_model.catboost, fraud_rows)
    probabilities = np.asarray(fraud_model.catboost.predict(fraud_rows, prediction_type="Probability"))[:, 1]
    np.testing.assert_allclose(
        fraud_model.probability(frame(fraud_model, fraud_rows)), probabilities, rtol=0, atol=1e-12
    )


def test_a_row_scores_the_same_bits_alone_or_in_any_batch(fraud_model: TreeModel, fraud_rows: np.ndarray) -> None:
    """A row's score is bit-for-bit the same whether scored alone or inside batches of any size."""
    together = fraud_model.raw(frame(fraud_model, fraud_rows))  # crosses chunk boundaries too
    alone = np.array([fraud_model.raw(frame(fraud_model, fraud_rows[i : i + 1]))[0] for i in range(0, 3000, 37)])
    assert np.array_equal(alone, together[::37])
    assert np.array_equal(
        fraud_model.shap(frame(fraud_model, fraud_rows[5:6]))[0], fraud_model.shap(frame(fraud_model, fraud_rows))[5]
    )


def test_in_bulk_the_model_scores_as_the_trees_and_explains_with_the_same_leaves(
    fraud_model: TreeModel, fraud_rows: np.ndarray
) -> None:
    """The batch engine's form of the model (CatBoost's own evaluator on whole chunks) gives every row the
    trees' score to 1e-9 and exactly the trees' SHAP values (the same leaves, the same tables), rows on a
    border and missing values included; the model it came from keeps the trees."""
    rows = fraud_rows.copy()
    rows[::11, 2] = np.nan
    bulk = fraud_model.in_bulk()
    assert bulk.bulk and not fraud_model.bulk and bulk.forest is fraud_model.forest
    np.testing.assert_allclose(bulk.raw(rows), fraud_model.raw(rows), rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(bulk.probability(rows), fraud_model.probability(rows), rtol=0, atol=TOLERANCE)
    assert np.array_equal(bulk.shap(rows), fraud_model.shap(rows))


def test_top_contributions_are_catboosts(fraud_model: TreeModel, fraud_rows: np.ndarray) -> None:
    """The top contributions from the compiled trees are those CatBoost's own SHAP values give."""
    frame = pd.DataFrame(fraud_rows[:200], columns=list(fraud_model.feature_names))
    compiled = top_contributions(fraud_model, frame)
    reference = top_contributions(fraud_model.catboost, frame)
    assert [[c.feature for c in row] for row in compiled] == [[c.feature for c in row] for row in reference]
    assert any(compiled)
    for mine, theirs in zip(compiled, reference, strict=True):
        np.testing.assert_allclose([c.contribution for c in mine], [c.contribution for c in theirs], atol=TOLERANCE)


@pytest.mark.parametrize("nan_mode", ["Min", "Max"])
def test_trees_of_several_depths_repeated_features_and_missing_values(nan_mode: str) -> None:
    """Summed models with trees of several depths, repeated features, empty leaves and NaN either way compile
    exactly."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1500, 5))
    y = ((x[:, 0] > 0.3) ^ (x[:, 1] * x[:, 0] > 0.2) | (x[:, 2] > 1.5)).astype(int)
    x[rng.random(x.shape) < 0.1] = np.nan
    deep, shallow = (
        CatBoostClassifier(
            iterations=40,
            depth=depth,
            learning_rate=0.3,
            nan_mode=nan_mode,
            verbose=0,
            random_seed=1,
            thread_count=1,
            l2_leaf_reg=0.1,
        ).fit(x, y)
        for depth in (6, 2)
    )
    model = sum_models([deep, shallow], weights=[0.7, 0.3])
    forest = ObliviousForest.from_catboost(model)
    assert forest is not None
    real_levels = forest.split_features < 5
    assert (~real_levels).any(), "some trees should be shallower than the deepest"
    assert any(
        len(set(tree[mask])) < mask.sum() for tree, mask in zip(forest.split_features, real_levels, strict=True)
    ), "some tree should split one feature at two levels"
    assert (
        forest.leaf_weights[np.broadcast_to(np.asarray(real_levels.all(axis=1))[:, None], forest.leaf_weights.shape)]
        == 0
    ).any()
    probe = rng.normal(size=(800, 5)) * 2
    probe[rng.random(probe.shape) < 0.2] = np.nan
    assert_same_as_catboost(model, probe)


def test_regression_models_with_a_bias_are_compiled_too() -> None:
    """A regression model with a bias compiles to the same raw predictions and SHAP values as CatBoost."""
    rng = np.random.default_rng(4)
    x = rng.uniform(size=(600, 3))
    model = CatBoostRegressor(iterations=40, depth=3, verbose=0, random_seed=0, thread_count=1).fit(x, 10 + 3 * x[:, 0])
    forest = assert_same_as_catboost(model, rng.uniform(size=(300, 3)))
    assert forest.bias != 0.0


def test_one_hot_categories_take_catboosts_leaves_and_the_forests_tables() -> None:
    """A Poisson model with one-hot categorical splits (as the claims model has): CatBoost finds the leaves
    (it hashes the categories, unseen ones included), the tables give the same raw score and SHAP values."""
    rng = np.random.default_rng(6)
    data = pd.DataFrame(
        {
            "area": rng.choice(list("ABCDEF"), 3000),
            "power": rng.integers(4, 15, 3000).astype(float),
            "brand": rng.choice([f"B{i}" for i in range(1, 8)], 3000),
            "age": rng.uniform(18, 90, 3000),
        }
    )
    rate = np.exp(
        -2 + 0.3 * (data["area"] > "C") + 0.05 * data["power"] - 0.01 * data["age"] + 0.4 * (data["brand"] == "B3")
    )
    model = CatBoostRegressor(
        iterations=60,
        depth=4,
        loss_function="Poisson",
        one_hot_max_size=10,
        verbose=0,
        random_seed=0,
        thread_count=1,
        cat_features=["area", "brand"],
    ).fit(data, rng.poisson(rate))
    compiled = TreeModel(model)
    assert compiled.forest is not None and not compiled.forest.numeric
    probe = data.sample(400, random_state=1).reset_index(drop=True)
    probe.loc[:9, "brand"] = "never seen"
    expected = np.asarray(model.predict(Pool(probe, cat_features=["area", "brand"]), prediction_type="RawFormulaVal"))
    np.testing.assert_allclose(compiled.raw(probe), expected, rtol=0, atol=TOLERANCE)
    reference = np.asarray(
        model.get_feature_importance(Pool(probe, cat_features=["area", "brand"]), type="ShapValues")
    )[:, :-1]
    np.testing.assert_allclose(compiled.shap(probe), reference, rtol=0, atol=TOLERANCE)
    assert np.abs(reference[:, [0, 2]]).max() > 0.01, "the categories must carry weight in this model"


def test_models_it_cannot_evaluate_exactly_are_left_to_catboost() -> None:
    """Models the compiler cannot evaluate exactly (CTRs, several outputs, depthwise trees) are refused by it."""
    data = pd.DataFrame({"colour": ["red", "blue", "green", "grey", "pink"] * 60, "size": np.arange(300.0)})
    labels = (data["size"] % 3 == 0).astype(int)
    with_ctrs = CatBoostClassifier(iterations=10, depth=2, verbose=0, one_hot_max_size=2, cat_features=["colour"]).fit(
        data, labels
    )
    assert ObliviousForest.from_catboost(with_ctrs) is None
    multiclass = CatBoostClassifier(iterations=10, depth=2, verbose=0, loss_function="MultiClass").fit(
        data[["size"]], data["size"] % 3
    )
    assert ObliviousForest.from_catboost(multiclass) is None


def test_a_model_of_other_trees_is_served_by_catboost_itself() -> None:
    """A model the compiler refuses is still served, by CatBoost itself, with the same scores."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(500, 4))
    depthwise = CatBoostClassifier(iterations=20, depth=3, grow_policy="Depthwise", verbose=0, random_seed=0).fit(
        x, (x[:, 0] + x[:, 1] > 0).astype(int)
    )
    model = TreeModel(depthwise)
    assert model.forest is None
    probe = rng.normal(size=(50, 4))
    assert np.array_equal(model.raw(frame(model, probe)), depthwise.predict(probe, prediction_type="RawFormulaVal"))
    np.testing.assert_allclose(model.shap(frame(model, probe)), catboost_shap(depthwise, probe), atol=TOLERANCE)
