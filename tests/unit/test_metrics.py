"""Card precision@k as the Handbook defines it, and the classification report."""

from __future__ import annotations

import numpy as np

from shared.modeling.metrics import card_precision_top_k, classification_report


def test_each_card_counts_once_a_day_by_its_highest_score() -> None:
    """Day 0: card A has two transactions (0.9 legit, 0.2 fraud) -> A counts as fraudulent with score 0.9;
    B (0.8, legit) and C (0.1, fraud). Top 2 = A, B: 1 fraudulent card of 2 -> 0.5."""
    days = [0, 0, 0, 0]
    cards = ["A", "A", "B", "C"]
    labels = [0, 1, 0, 1]
    scores = [0.9, 0.2, 0.8, 0.1]
    assert card_precision_top_k(days, cards, labels, scores, k=2) == 0.5


def test_detected_cards_are_not_counted_again_on_later_days() -> None:
    """Day 0 top-1 = A (fraud, detected). Day 1: A would rank first again but is blocked, so B (legit)
    is the top-1: precision 1 then 0, mean 0.5. Without removal, A counts twice: mean 1."""
    days = [0, 0, 1, 1]
    cards = ["A", "B", "A", "B"]
    labels = [1, 0, 1, 0]
    scores = [0.9, 0.1, 0.9, 0.5]
    assert card_precision_top_k(days, cards, labels, scores, k=1) == 0.5
    assert card_precision_top_k(days, cards, labels, scores, k=1, remove_detected=False) == 1.0


def test_report_has_the_three_metrics_in_range() -> None:
    """Perfect scores give AUC and AP of 1; the card metric appears when days and cards are given."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    report = classification_report(labels, labels * 0.9 + 0.05, days=np.zeros(200), entity_ids=np.arange(200), k=10)
    assert report["roc_auc"] == 1.0 and report["average_precision"] == 1.0
    assert report["card_precision_at_10"] == 1.0
    assert set(classification_report(labels, rng.random(200))) == {"roc_auc", "average_precision"}
