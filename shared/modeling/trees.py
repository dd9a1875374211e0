"""A CatBoost model of oblivious trees, evaluated and explained in numpy.

CatBoost's own calls cost a fixed ~0.1 ms to build a Pool and ~7 ms for one row's exact SHAP values,
which is most of a single-event request. For such a model both reduce to table lookups:

* An oblivious tree uses one split (feature, border) per level, so a row's leaf is a bit per level,
  `float32(x[feature]) > border` (CatBoost compares in float32), and its raw score is a sum of leaf values.
* CatBoost's exact SHAP values (path-dependent TreeSHAP) of a row in one tree depend only on the
  directions the row takes at each level, that is on its leaf. So every leaf's SHAP vector is computed
  once per model (`_leaf_shap_tables`), and a row's SHAP values are a sum of one table row per tree.

Both agree with CatBoost to floating-point rounding (a test holds them to 1e-9 on real models), missing
values included. With one-hot categorical splits, CatBoost finds the leaves (it hashes the categories)
and the tables give the rest. Models with CTRs, text features, several outputs or other trees are left
to CatBoost (`TreeModel` falls back to it).
"""

from __future__ import annotations

import copy
import json
import math
import tempfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TypeAlias

import numpy as np
import pandas as pd
from catboost import CatBoost, Pool

from shared.modeling.explain import shap_values as catboost_shap_values
from shared.modeling.inference import catboost_threads
from shared.modeling.registry import load_catboost


@dataclass(frozen=True)
class ObliviousForest:
    feature_names: tuple[str, ...]
    split_features: np.ndarray  # (trees, depth) feature index of each level's split; level i is leaf bit i
    split_borders: np.ndarray  # (trees, depth) float32 borders
    leaf_values: np.ndarray  # (trees, 2**depth)
    leaf_weights: np.ndarray  # (trees, 2**depth) training weight in each leaf (the covers of TreeSHAP)
    nan_goes_right: np.ndarray  # per feature: NaN counts as above every border ("AsTrue")
    scale: float
    bias: float
    numeric: bool  # every feature a number: `leaves` finds the leaves itself (else CatBoost's do)

    @classmethod
    def from_catboost(cls, model: CatBoost) -> ObliviousForest | None:
        """The forest of `model`, or None when it is not one this module evaluates exactly."""
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "model.json"
            model.save_model(str(path), format="json")
            exported = json.loads(path.read_text())
        features = exported["features_info"]
        trees = exported.get("oblivious_trees")
        if (
            set(features) - {"float_features", "categorical_features"}
            or not trees
            or set(exported) - {"features_info", "model_info", "oblivious_trees", "scale_and_bias"}
        ):
            return None  # text or embedding features, CTRs, non-symmetric trees
        if any(len(tree["leaf_values"]) != 2 ** len(tree["splits"]) for tree in trees):
            return None  # several outputs (e.g. multiclass)
        if any(
            split["split_type"] not in {"FloatFeature", "OneHotFeature"} for tree in trees for split in tree["splits"]
        ):
            return None
        scale, (bias, *more) = exported["scale_and_bias"]
        if more:
            return None
        floats, categories = features.get("float_features", []), features.get("categorical_features", [])
        flat = sorted(floats + categories, key=lambda f: f["flat_feature_index"])
        names = tuple(f["feature_id"] for f in flat)
        depth = max(len(tree["splits"]) for tree in trees)
        padded = [_padded(tree, depth, floats, categories, len(names)) for tree in trees]
        return cls(
            feature_names=names,
            split_features=np.array([p[0] for p in padded], dtype=np.intp),
            split_borders=np.array([p[1] for p in padded], dtype=np.float32),
            leaf_values=np.array([p[2] for p in padded], dtype=np.float64),
            leaf_weights=np.array([p[3] for p in padded], dtype=np.float64),
            nan_goes_right=np.array([f.get("nan_value_treatment") == "AsTrue" for f in flat]),
            scale=float(scale),
            bias=float(bias),
            numeric=not categories,
        )

    @property
    def depth(self) -> int:
        return int(self.split_features.shape[1])

    def leaves(self, matrix: np.ndarray) -> np.ndarray:
        """(rows, trees) leaf index of every row in every tree. A NaN is below every border (NaN > b is
        false), as CatBoost's nan_mode Min and AsIs have it, or above them all where CatBoost's export says
        "AsTrue" (nan_mode Max). Numeric models only: categories are hashed by CatBoost."""
        if not self.numeric:
            raise ValueError("a model with categorical features gets its leaves from CatBoost")
        rows = np.asarray(matrix, dtype=np.float64)
        if self.nan_goes_right.any():
            rows = np.where(np.isnan(rows) & self.nan_goes_right, np.inf, rows)
        values = np.zeros((len(rows), len(self.feature_names) + 1), dtype=np.float32)  # + the padding column
        values[:, :-1] = rows
        goes_right = values[:, self.split_features] > self.split_borders  # (rows, trees, depth)
        return goes_right.astype(np.intp) @ (1 << np.arange(self.depth, dtype=np.intp))

    def raw(self, matrix: np.ndarray) -> np.ndarray:
        """The raw score (log-odds for Logloss) of each row: bias plus the scaled sum of its leaf values.
        Each row is summed on its own, so a row's score is the same bits whatever batch it comes in."""
        return np.concatenate([self.raw_of_leaves(self.leaves(chunk)) for chunk in _chunks(matrix)])

    def shap(self, matrix: np.ndarray) -> np.ndarray:
        """(rows, features) SHAP values on the raw scale, without the expected value."""
        return np.concatenate([self.shap_of_leaves(self.leaves(chunk)) for chunk in _chunks(matrix)])

    def raw_of_leaves(self, leaves: np.ndarray) -> np.ndarray:
        return self.bias + self.scale * self.leaf_values[np.arange(len(self.leaf_values)), leaves].sum(axis=1)

    def shap_of_leaves(self, leaves: np.ndarray) -> np.ndarray:
        if len(leaves) < ROWS_SUMMED_TREE_BY_TREE:
            return self.scale * self._leaf_shap[np.arange(len(self._leaf_shap)), leaves].sum(axis=1)
        # Many rows: one tree at a time, added in the order the sum above adds them (the same bits), with
        # no (rows, trees, features) intermediate: 7 times faster on 7,000 rows of 1,800 trees.
        by_tree = _transposed(leaves)
        total = np.zeros((len(leaves), self._leaf_shap.shape[2]))
        for tree, table in enumerate(self._leaf_shap):
            total += table.take(by_tree[tree], axis=0)
        return self.scale * total

    @cached_property
    def _leaf_shap(self) -> np.ndarray:
        tables = _leaf_shap_tables(
            self.split_features, self.leaf_values, self.leaf_weights, len(self.feature_names) + 1
        )
        return tables[:, :, :-1]


def _padded(
    tree: dict, depth: int, floats: list[dict], categories: list[dict], padding_feature: int
) -> tuple[list[int], list[float], list[float], list[float]]:
    """A tree's splits as (flat feature index, border), given the levels a tree shallower than the deepest
    lacks: they split a constant column (always 0) at +inf, and both sides hold the same leaf values (the
    far side weighs 0), so their feature is a null player and every other SHAP value stays the same. A
    one-hot split (category == value) has no border: its leaves come from CatBoost."""
    splits, values, weights = tree["splits"], tree["leaf_values"], tree["leaf_weights"]
    missing, leaves = depth - len(splits), len(values)
    features = [
        floats[s["float_feature_index"]]["flat_feature_index"]
        if s["split_type"] == "FloatFeature"
        else categories[s["cat_feature_index"]]["flat_feature_index"]
        for s in splits
    ]
    return (
        features + [padding_feature] * missing,
        [s.get("border", math.nan) for s in splits] + [math.inf] * missing,
        [values[i % leaves] for i in range(2**depth)],
        [weights[i] if i < leaves else 0.0 for i in range(2**depth)],
    )


ROWS_SUMMED_TREE_BY_TREE = 32  # from here a loop over the trees costs less than gathering every tree at once
ROWS_PER_CHUNK = 256  # bounds the (rows, trees, depth) intermediate arrays to ~7 MB for 600 trees of depth 6


TRANSPOSED_ROWS = 256  # rows of the leaf matrix transposed at a time: both sides of a block stay in cache


def _transposed(leaves: np.ndarray) -> np.ndarray:
    """The (trees, rows) copy of a (rows, trees) leaf matrix, in its own integer type (CatBoost's uint32
    leaves are indexes as they are). Copied a block of rows at a time: a whole transposed copy of a
    (4,096, 3,000) matrix reads one element per cache line and costs 3 times as much."""
    leaves = np.asarray(leaves)
    if leaves.dtype.kind not in "iu":
        leaves = leaves.astype(np.intp)
    rows = len(leaves)
    out = np.empty((leaves.shape[1], rows), dtype=leaves.dtype)
    for start in range(0, rows, TRANSPOSED_ROWS):
        out[:, start : start + TRANSPOSED_ROWS] = leaves[start : start + TRANSPOSED_ROWS].T
    return out


def _chunks(matrix: np.ndarray) -> list[np.ndarray]:
    rows = np.asarray(matrix, dtype=np.float64)
    return [rows[start : start + ROWS_PER_CHUNK] for start in range(0, max(len(rows), 1), ROWS_PER_CHUNK)]


Features: TypeAlias = np.ndarray | pd.DataFrame


class TreeModel:
    """A CatBoost model served through its `ObliviousForest` when it has one, else through CatBoost.

    Takes the model's features as a matrix (its columns, in order; object dtype where some are categorical)
    or as a frame holding them. A numeric forest finds its own leaves; with categorical features CatBoost
    finds them (`calc_leaf_indexes`, which hashes the categories) and the forest's tables still give the
    SHAP values."""

    def __init__(self, catboost: CatBoost) -> None:
        self.catboost = catboost
        self.forest = ObliviousForest.from_catboost(catboost)
        self.feature_names = tuple(catboost.feature_names_)
        self._categorical = list(catboost.get_cat_feature_indices())
        self.bulk = False

    def in_bulk(self) -> TreeModel:
        """The same model for whole chunks of a batch: raw scores from CatBoost's own evaluator (compiled,
        every core), 26 to 46 times faster than the numpy trees on 50,000 rows and equal to them to about
        1e-14; leaves for SHAP from CatBoost too, so explanations are the tables' exactly. A row's score
        then depends on its batch in the last bits, which is why the online doors keep the trees."""
        bulk = copy.copy(self)
        bulk.bulk = True
        return bulk

    def raw(self, features: Features) -> np.ndarray:
        matrix = self._matrix(features)
        if self.forest is not None and self.forest.numeric and not self.bulk:
            return self.forest.raw(matrix)
        if self.forest is not None and self.forest.numeric:
            return np.asarray(
                self.catboost.predict(
                    np.asarray(matrix, dtype=np.float64),
                    prediction_type="RawFormulaVal",
                    thread_count=catboost_threads(len(matrix)),
                )
            )
        if self.forest is not None:
            return self.forest.raw_of_leaves(self._catboost_leaves(matrix))
        return np.asarray(
            self.catboost.predict(
                self._pool(matrix), prediction_type="RawFormulaVal", thread_count=catboost_threads(len(matrix))
            )
        )

    def probability(self, features: Features) -> np.ndarray:
        """P(class 1) of a Logloss model."""
        return 1.0 / (1.0 + np.exp(-self.raw(features)))

    def shap(self, features: Features) -> np.ndarray:
        matrix = self._matrix(features)
        if self.forest is not None and self.forest.numeric and not self.bulk:
            return self.forest.shap(matrix)
        if self.forest is not None:
            return self.forest.shap_of_leaves(self._catboost_leaves(matrix))
        categorical = [self.feature_names[i] for i in self._categorical]
        return catboost_shap_values(self.catboost, matrix, self.feature_names, categorical)

    def _matrix(self, features: Features) -> np.ndarray:
        if isinstance(features, pd.DataFrame):
            if tuple(features.columns) != self.feature_names:
                features = features[list(self.feature_names)]
            return features.to_numpy(dtype=object if self._categorical else np.float64)
        if features.ndim != 2 or features.shape[1] != len(self.feature_names):
            raise ValueError(f"a matrix of {len(self.feature_names)} feature columns is needed, got {features.shape}")
        return features

    def _catboost_leaves(self, matrix: np.ndarray) -> np.ndarray:
        """(rows, trees) leaf indexes from CatBoost, in its own unsigned type (indexes as they are)."""
        return np.asarray(
            self.catboost.calc_leaf_indexes(self._pool(matrix), thread_count=catboost_threads(len(matrix)))
        )

    def _pool(self, matrix: np.ndarray) -> Pool:
        """Numbers as a float array, mixed rows as lists: CatBoost reads lists in a third of the time it
        takes over a frame, and a float array in a quarter of that."""
        if not self._categorical:
            return Pool(np.asarray(matrix, dtype=np.float64), feature_names=list(self.feature_names))
        return Pool(matrix.tolist(), cat_features=self._categorical, feature_names=list(self.feature_names))


def load_tree_model(version_dir: Path) -> TreeModel:
    """A registry loader (a service's `load_model`): the CatBoost model, compiled when it can be."""
    model = TreeModel(load_catboost(version_dir))
    if model.forest is not None:
        model.forest.shap_of_leaves(np.zeros((1, len(model.forest.leaf_values)), dtype=np.intp))  # tables now
    return model


def _leaf_shap_tables(
    split_features: np.ndarray, leaf_values: np.ndarray, leaf_weights: np.ndarray, feature_count: int
) -> np.ndarray:
    """(trees, leaves, features): the exact path-dependent SHAP values of a row reaching each leaf.

    The players of a tree are its distinct features; a feature split at several levels is one player
    whose level mask holds all of them. For a coalition S (a union of players' masks), `expected` gives
    the tree's expected output for a row reaching each leaf when the row is followed at S's levels;
    Shapley's formula weighs each player's marginal gains over the coalitions of the others. Every
    tree is handled at once: the loops run over level masks and levels, not over trees."""
    trees, depth = split_features.shape
    masks, tree_index = 1 << depth, np.arange(trees)
    bits = 1 << np.arange(depth)
    same_feature = split_features[:, :, np.newaxis] == split_features[:, np.newaxis, :]  # (trees, level, level)
    group_mask = (same_feature * bits).sum(axis=2)  # (trees, level): the levels of that level's feature
    first_of_group = np.array(
        [[not same_feature[t, level, :level].any() for level in range(depth)] for t in range(trees)]
    ).reshape(trees, depth)
    players = first_of_group.sum(axis=1)
    coalition_size = np.zeros((masks, trees), dtype=np.intp)  # players wholly inside each mask
    is_coalition = np.ones((masks, trees), dtype=bool)  # the mask is a union of whole players
    for mask in range(masks):
        inside = (mask & group_mask) == group_mask
        touched = (mask & group_mask) != 0
        is_coalition[mask] = (inside == touched).all(axis=1)
        coalition_size[mask] = (inside & first_of_group).sum(axis=1)
    factorial = np.array([math.factorial(n) for n in range(depth + 1)], dtype=np.float64)

    expected = _expectations(leaf_values, leaf_weights, depth)  # (masks, trees, leaves)
    tables = np.zeros((trees, masks, feature_count))
    for level in range(depth):
        feature, player = split_features[:, level], group_mask[:, level]
        for mask in range(masks):
            counts = is_coalition[mask] & first_of_group[:, level] & ((mask & player) == 0)
            if not counts.any():
                continue
            size = coalition_size[mask]
            weight = np.where(
                counts, factorial[size] * factorial[np.maximum(players - size - 1, 0)] / factorial[players], 0.0
            )
            gain = expected[mask | player, tree_index] - expected[mask]
            tables[tree_index, :, feature] += weight[:, np.newaxis] * gain
    return tables


def _expectations(values: np.ndarray, weights: np.ndarray, depth: int) -> np.ndarray:
    """(level masks, trees, leaves): for each set of levels the row is followed at, each tree's expected
    output for a row reaching each leaf. The tree is walked from its last level (the root, as CatBoost
    walks it) to its first: a followed level keeps the row's own child, another mixes both children by
    cover (equally when neither has any weight). Arrays stay indexed by the row's leaf throughout."""
    masks = 1 << depth
    leaves = np.arange(masks)
    out = np.empty((masks, *values.shape))
    for mask in range(masks):
        value, cover = values, weights
        for level in range(depth):
            bit = 1 << level
            sibling_value, sibling_cover = value[:, leaves ^ bit], cover[:, leaves ^ bit]
            total = cover + sibling_cover
            if not mask & bit:
                with np.errstate(invalid="ignore", divide="ignore"):
                    mixed = (value * cover + sibling_value * sibling_cover) / total
                value = np.where(total > 0, mixed, (value + sibling_value) / 2)
            cover = total
        out[mask] = value
    return out
