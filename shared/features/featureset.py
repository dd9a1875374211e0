"""A named, versioned list of features (what a model was trained on and what serving must produce), and the
one shape a batch's features travel in from the feature code to the model, the explanations and the rules."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class FeatureSet:
    name: str
    version: str
    features: tuple[str, ...]
    categorical: tuple[str, ...] = ()

    @cached_property
    def columns(self) -> pd.Index:
        """The feature names as a ready-made Index: building one from strings per request costs ~150 us
        under pandas 3 (Arrow-backed strings); reusing this one costs nothing."""
        return pd.Index(self.features, dtype=object)

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "version": self.version, "features": list(self.features)}


@dataclass(frozen=True, eq=False)
class FeatureBatch:
    """A batch's features, made once by the service's feature code and read by everything after it.

    `values` holds one row per event: first the model's features in the feature set's order, then the
    columns only rules read (`names` lists them all). It is float64 when every column is numeric, else an
    object matrix (a categorical column holds its text). `context` carries per-event results that the
    feature code computed on the way and later steps reuse rather than recompute (e.g. the clinical
    equations' full results, read again for a decision's details).
    """

    names: tuple[str, ...]
    values: np.ndarray
    model_width: int
    context: tuple[Any, ...] | None = None

    def __post_init__(self) -> None:
        if self.values.ndim != 2 or self.values.shape[1] != len(self.names):
            raise ValueError(f"feature values of shape {self.values.shape} for {len(self.names)} columns")
        if not 0 < self.model_width <= len(self.names):
            raise ValueError(f"model width {self.model_width} outside 1..{len(self.names)}")
        if self.context is not None and len(self.context) != len(self.values):
            raise ValueError(f"{len(self.context)} context entries for {len(self.values)} rows")

    @classmethod
    def build(
        cls,
        feature_set: FeatureSet,
        values: np.ndarray | Sequence[Sequence[Any]],
        extra: Sequence[str] = (),
        context: Sequence[Any] | None = None,
    ) -> FeatureBatch:
        """Rows of the feature set's features followed by `extra` columns, as a matrix made once."""
        names = (*feature_set.features, *extra)
        dtype = object if feature_set.categorical else np.float64
        matrix = np.asarray(values, dtype=dtype).reshape(len(values), len(names))
        return cls(names, matrix, len(feature_set.features), None if context is None else tuple(context))

    @classmethod
    def from_frame(
        cls, frame: pd.DataFrame, feature_set: FeatureSet, context: Sequence[Any] | None = None
    ) -> FeatureBatch:
        """An offline frame (the feature set's columns, then any others) as a batch."""
        extra = [name for name in frame.columns if name not in feature_set.features]
        ordered = frame[pd.Index([*feature_set.features, *extra], dtype=object)]
        dtype = object if feature_set.categorical else np.float64
        return cls.build(feature_set, ordered.to_numpy(dtype=dtype), extra, context)

    def __len__(self) -> int:
        return len(self.values)

    @property
    def model_names(self) -> tuple[str, ...]:
        return self.names[: self.model_width]

    @property
    def model_matrix(self) -> np.ndarray:
        """The model's features only, rows in the batch's order."""
        return self.values[:, : self.model_width]

    @cached_property
    def columns(self) -> dict[str, np.ndarray]:
        """Each column as a view into the matrix, by name."""
        return {name: self.values[:, position] for position, name in enumerate(self.names)}

    @cached_property
    def rows(self) -> list[dict[str, Any]]:
        """Each row as plain Python values by name, a missing value (NaN) as None: what rules and reason texts
        read. (DataFrame.to_dict costs milliseconds a call; this, microseconds.)"""
        names = self.names
        return [
            dict(zip(names, [None if isinstance(v, float) and math.isnan(v) else v for v in row], strict=True))
            for row in self.values.tolist()
        ]

    def take(self, positions: Sequence[int] | slice) -> FeatureBatch:
        """The rows at `positions` (or a slice of them), as a batch of their own."""
        index = positions if isinstance(positions, slice) else np.asarray(positions, dtype=np.intp)
        context = None
        if self.context is not None:
            context = self.context[index] if isinstance(index, slice) else tuple(self.context[i] for i in index)
        return FeatureBatch(self.names, self.values[index], self.model_width, context)

    def frame(self) -> pd.DataFrame:
        """The batch as a frame (for tools and tests; the hot path reads the matrix)."""
        return pd.DataFrame(self.values, columns=pd.Index(self.names, dtype=object))
