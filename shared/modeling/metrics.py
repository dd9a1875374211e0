"""Evaluation metrics for classifiers whose alerts are checked by people, entity by entity (cards,
patients, policies), a fixed number a day."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

ArrayLike: TypeAlias = Sequence[object] | np.ndarray | pd.Series


def card_precision_top_k(
    days: ArrayLike,
    entity_ids: ArrayLike,
    y_true: ArrayLike,
    scores: ArrayLike,
    k: int = 100,
    remove_detected: bool = True,
) -> float:
    """The mean over days of the share of truly fraudulent entities among the k highest-scored ones.

    Investigators check k entities (cards) a day, not k transactions, so each entity counts once a day:
    with its highest score, and as fraudulent if any of its rows that day is. Days are taken in
    ascending order; with `remove_detected`, an entity found fraudulent in an earlier day's top k is
    blocked and dropped from later days, so catching it again earns nothing. The denominator is always
    k, even on a day with fewer than k entities, as in the Fraud Detection Handbook (Le Borgne et al.
    2022, chapter 4). Equal scores are ranked by entity id, so the result does not depend on row order.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    frame = pd.DataFrame(
        {
            "day": np.asarray(days),
            "entity": np.asarray(entity_ids),
            "label": np.asarray(y_true, dtype=np.int64),
            "score": np.asarray(scores, dtype=np.float64),
        }
    )
    if frame.empty:
        raise ValueError("card precision needs at least one row")
    detected: set[object] = set()
    precisions: list[float] = []
    for _, whole_day in frame.groupby("day", sort=True):
        day = whole_day[~whole_day["entity"].isin(detected)] if remove_detected else whole_day
        per_entity = day.groupby("entity", sort=True).agg(score=("score", "max"), label=("label", "max"))
        top = per_entity.sort_values("score", ascending=False, kind="stable").head(k)
        found = top.index[top["label"] == 1]
        precisions.append(len(found) / k)
        detected.update(found)
    return float(np.mean(precisions))


def classification_report(
    y_true: ArrayLike,
    scores: ArrayLike,
    *,
    days: ArrayLike | None = None,
    entity_ids: ArrayLike | None = None,
    k: int = 100,
) -> dict[str, float]:
    """ROC AUC, average precision and, given days and entity ids, `card_precision_at_{k}`, as plain
    Python floats so the report goes straight into JSON (model cards, logs).

    Both ranking metrics are undefined when `y_true` holds one class; that is reported as an error
    rather than as NaN, which JSON cannot carry and which would hide an empty evaluation set.
    """
    labels = np.asarray(y_true, dtype=np.int64)
    if np.unique(labels).size != 2:
        raise ValueError("ROC AUC and average precision need both classes in y_true")
    report = {
        "roc_auc": float(roc_auc_score(labels, scores)),
        "average_precision": float(average_precision_score(labels, scores)),
    }
    if (days is None) != (entity_ids is None):
        raise ValueError("card precision needs both days and entity_ids")
    if days is not None and entity_ids is not None:
        report[f"card_precision_at_{k}"] = card_precision_top_k(days, entity_ids, labels, scores, k)
    return report
