"""Explanations of many rows at once: the top contributions of every row from one sort of the whole matrix,
and the SHAP sums over a leaf matrix transposed a block at a time, against their row-by-row definitions."""

from __future__ import annotations

import numpy as np
import pytest

from shared.modeling import trees
from shared.modeling.explain import Contribution, top_contributions

NAMES = ["a", "b", "c", "d", "e"]


class FixedShap:
    """A model whose SHAP values are given: what `top_contributions` does with them is under test."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = values

    def shap(self, features: np.ndarray) -> np.ndarray:
        return self.values


def _one_row_at_a_time(values: np.ndarray, features: np.ndarray, k: int) -> list[list[Contribution]]:
    """The definition: each row's columns by a stable sort of its negated values, the first k kept when
    positive."""
    out = []
    for r, row in enumerate(values):
        order = np.argsort(-row, kind="stable")[:k]
        out.append([Contribution(NAMES[i], float(features[r, i]), float(row[i])) for i in order if row[i] > 0])
    return out


@pytest.mark.parametrize("k", [1, 3, 5])
def test_top_contributions_of_many_rows_are_each_rows_own(k: int) -> None:
    """Every row's top k positive contributions, ties in column order, negatives and zeros left out, as a
    sort of that row alone gives them, with the row's own feature values."""
    rng = np.random.default_rng(0)
    values = np.round(rng.normal(size=(400, 5)), 1)  # rounded: many ties, zeros and negatives
    values[7] = [0.5, 0.5, 0.5, 0.5, 0.5]
    values[8] = [-1.0, 0.0, -0.5, 0.0, -2.0]
    features = rng.uniform(size=(400, 5))
    found = top_contributions(FixedShap(values), features, NAMES, k=k)
    assert found == _one_row_at_a_time(values, features, k)
    assert [c.feature for c in found[7]] == NAMES[:k] and found[8] == []
    assert all(type(c.value) is float and type(c.contribution) is float for row in found for c in row)


def test_top_contributions_keep_a_categorys_text() -> None:
    """In a matrix with categories (object dtype), a category's value stays its text, a number a float."""
    values = np.array([[0.1, 0.3, -0.2], [0.2, 0.0, 0.4]])
    features = np.array([["x", 2, 3.5], ["y", 1, 7.0]], dtype=object)
    found = top_contributions(FixedShap(values), features, ["cat", "n", "f"], k=2)
    assert found == [
        [Contribution("n", 2.0, 0.3), Contribution("cat", "x", 0.1)],
        [Contribution("f", 7.0, 0.4), Contribution("cat", "y", 0.2)],
    ]


@pytest.mark.parametrize("rows", [1, 255, 256, 257, 1000])
@pytest.mark.parametrize("dtype", [np.uint32, np.intp])
def test_leaves_transposed_a_block_at_a_time_are_the_transpose(rows: int, dtype: type) -> None:
    """The (trees, rows) copy of a leaf matrix, whatever its number of rows against the block, in the
    leaves' own integer type."""
    leaves = np.random.default_rng(rows).integers(0, 64, size=(rows, 37)).astype(dtype)
    found = trees._transposed(leaves)
    assert found.dtype == leaves.dtype and found.flags.c_contiguous
    assert np.array_equal(found, leaves.T)


def test_shap_of_catboosts_unsigned_leaves_is_the_gathered_sum() -> None:
    """SHAP values summed tree by tree over CatBoost's uint32 leaves (no copy to intp) equal the
    gather-and-sum of the same tables, bit for bit."""
    rng = np.random.default_rng(1)
    tables = rng.normal(size=(50, 8, 4)) * 10.0 ** rng.integers(-6, 3, size=(50, 1, 1))
    forest = trees.ObliviousForest(
        feature_names=("w", "x", "y", "z"),
        split_features=np.zeros((50, 3), dtype=np.intp),
        split_borders=np.zeros((50, 3), dtype=np.float32),
        leaf_values=np.zeros((50, 8)),
        leaf_weights=np.ones((50, 8)),
        nan_goes_right=np.zeros(4, dtype=bool),
        scale=1.5,
        bias=0.0,
        numeric=True,
    )
    forest.__dict__["_leaf_shap"] = tables  # the cached tables, given
    leaves = rng.integers(0, 8, size=(300, 50)).astype(np.uint32)
    gathered = 1.5 * tables[np.arange(50), leaves].sum(axis=1)
    assert np.array_equal(forest.shap_of_leaves(leaves), gathered)
