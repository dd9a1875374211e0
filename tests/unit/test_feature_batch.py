"""The one shape features travel in: made once, read as a matrix by the model and as rows by the rules."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from shared.features.featureset import FeatureBatch, FeatureSet

NUMERIC = FeatureSet("numeric", "1", ("a", "b"))
MIXED = FeatureSet("mixed", "1", ("area", "age"), categorical=("area",))


def test_rows_read_missing_values_as_none_and_the_model_sees_only_its_features() -> None:
    """An extra column is in the rows but not in the model's matrix; NaN becomes None for the rules."""
    batch = FeatureBatch.build(NUMERIC, [[1.0, math.nan, 3.0], [4.0, 5.0, math.nan]], extra=("history",))
    assert batch.values.dtype == np.float64
    assert batch.model_names == ("a", "b")
    np.testing.assert_array_equal(batch.model_matrix, [[1.0, math.nan], [4.0, 5.0]])
    assert batch.rows == [{"a": 1.0, "b": None, "history": 3.0}, {"a": 4.0, "b": 5.0, "history": None}]
    np.testing.assert_array_equal(batch.columns["history"][:1], [3.0])


def test_a_categorical_feature_set_keeps_its_text() -> None:
    """With a categorical feature the matrix holds objects, so a category stays a category."""
    batch = FeatureBatch.build(MIXED, [["B", 40], ["E", 23]])
    assert batch.values.dtype == object
    assert batch.model_matrix.tolist() == [["B", 40], ["E", 23]]


def test_take_keeps_rows_and_their_context_together() -> None:
    """A slice or a selection of rows carries the same rows' context, in the same order."""
    batch = FeatureBatch.build(NUMERIC, [[1, 2], [3, 4], [5, 6]], context=["x", "y", "z"])
    picked = batch.take([2, 0])
    assert picked.rows == [{"a": 5.0, "b": 6.0}, {"a": 1.0, "b": 2.0}] and picked.context == ("z", "x")
    sliced = batch.take(slice(1, 3))
    assert len(sliced) == 2 and sliced.context == ("y", "z")


def test_from_frame_orders_the_model_features_first() -> None:
    """An offline frame in any column order becomes a batch in the feature set's order, extras after."""
    frame = pd.DataFrame({"history": [9.0], "b": [2.0], "a": [1.0]})
    batch = FeatureBatch.from_frame(frame, NUMERIC)
    assert batch.names == ("a", "b", "history")
    np.testing.assert_array_equal(batch.values, [[1.0, 2.0, 9.0]])
    pd.testing.assert_frame_equal(batch.frame(), frame[["a", "b", "history"]], check_column_type=False)


@pytest.mark.parametrize(
    ("values", "width", "context", "problem"),
    [
        (np.zeros((2, 3)), 2, None, "shape"),
        (np.zeros((2, 2)), 3, None, "model width"),
        (np.zeros((2, 2)), 2, ("only one",), "context"),
    ],
)
def test_an_inconsistent_batch_is_refused(values: np.ndarray, width: int, context: tuple | None, problem: str) -> None:
    """Names, matrix, model width and context must agree, or the batch is not made."""
    with pytest.raises(ValueError, match=problem):
        FeatureBatch(("a", "b"), values, width, context)
