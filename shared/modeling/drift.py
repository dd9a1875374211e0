"""Drift: how far what a model meets in production has moved from what it was trained on.

At training time `reference_distribution` records, for the score and every model feature, the bins of the
training data (deciles for numbers, the commonest values for categories) and the share of rows in each; it
is saved in the model card. In production `population_stability_index` bins the recorded values the same
way and compares the shares: PSI = sum((actual - expected) * ln(actual / expected)). The usual reading:
below 0.1 stable, 0.1 to 0.2 moderate shift, above 0.2 a shift worth acting on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

DRIFT_ALERT_PSI = 0.2
_BINS = 10
_TOP_CATEGORIES = 20
_FLOOR = 1e-4  # a bin empty on one side would make the logarithm infinite
MISSING = "(missing)"
OTHER = "(other)"


def reference_distribution(columns: Mapping[str, Sequence[Any]]) -> dict[str, dict[str, Any]]:
    """For each named column (the score, the features), its bins and their shares on the training data."""
    return {name: _reference(values) for name, values in columns.items()}


def population_stability_index(reference: Mapping[str, Any], values: Sequence[Any]) -> float | None:
    """The PSI of `values` against one column's reference; None when there are no values to compare."""
    if len(values) == 0:
        return None
    expected = np.asarray(reference["shares"], dtype=float)
    actual = _shares(reference, values)
    expected, actual = np.maximum(expected, _FLOOR), np.maximum(actual, _FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def _reference(values: Sequence[Any]) -> dict[str, Any]:
    numeric = [v for v in values if _is_number(v)]
    if len(numeric) >= len([v for v in values if v is not None]) * 0.99 and numeric:
        edges = np.unique(np.quantile(np.asarray(numeric, dtype=float), np.linspace(0, 1, _BINS + 1)[1:-1]))
        reference: dict[str, Any] = {"kind": "numeric", "edges": [float(e) for e in edges]}
    else:
        counts: dict[str, int] = {}
        for value in values:
            if value is not None:
                counts[str(value)] = counts.get(str(value), 0) + 1
        top = sorted(counts, key=lambda k: (-counts[k], k))[:_TOP_CATEGORIES]
        reference = {"kind": "categorical", "categories": top}
    reference["shares"] = [round(float(s), 6) for s in _shares(reference, values)]
    return reference


def _shares(reference: Mapping[str, Any], values: Sequence[Any]) -> np.ndarray:
    """Shares per bin, the last bin holding the missing values (and, for categories, the others)."""
    if reference["kind"] == "numeric":
        edges = np.asarray(reference["edges"], dtype=float)
        bins = len(edges) + 2
        index = np.array(
            [np.searchsorted(edges, float(v), side="right") if _is_number(v) else bins - 1 for v in values],
            dtype=int,
        )
    else:
        position = {c: i for i, c in enumerate(reference["categories"])}
        bins = len(position) + 2  # ... the others, then the missing
        index = np.array(
            [bins - 1 if v is None else position.get(str(v), bins - 2) for v in values],
            dtype=int,
        )
    counts = np.bincount(index, minlength=bins).astype(float)
    return counts / max(len(values), 1)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not (
        isinstance(value, float | np.floating) and math.isnan(value)
    )
