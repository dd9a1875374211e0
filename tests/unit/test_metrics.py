"""Card precision@k as the Fraud Detection Handbook defines it, and the classification report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from shared.modeling.metrics import card_precision_top_k, classification_report


def test_each_card_counts_once_a_day_with_its_highest_score_and_any_fraud() -> None:
    """One day. Card A: 0.9 (legit) and 0.2 (fraud), so A ranks with 0.9 and counts as fraudulent.
    B: 0.8 legit. C: 0.7 and 0.6, both fraud, counted once. Top 2 = A (fraud), B (legit): 1/2.
    Top 3 adds C: 2/3. Top 1 = A: 1 (by mean score, B would lead and give 0)."""
    days = [0, 0, 0, 0, 0]
    cards = ["A", "A", "B", "C", "C"]
    labels = [0, 1, 0, 1, 1]
    scores = [0.9, 0.2, 0.8, 0.7, 0.6]
    assert card_precision_top_k(days, cards, labels, scores, k=2) == pytest.approx(1 / 2)
    assert card_precision_top_k(days, cards, labels, scores, k=3) == pytest.approx(2 / 3)
    assert card_precision_top_k(days, cards, labels, scores, k=1) == pytest.approx(1.0)


def test_detected_cards_are_not_counted_again_on_later_days() -> None:
    """Day 0: A 0.9 fraud, B 0.1 legit; top 1 = A, precision 1, A detected. Day 1: A 0.9 fraud again,
    B 0.5 legit, C 0.4 fraud. A is blocked, so top 1 = B: precision 0; mean 1/2. Without removal
    A is top 1 again: mean 1. With k=2 and removal: day 0 is A and B (1/2), day 1 is B and C (1/2):
    mean 1/2."""
    days = [0, 0, 1, 1, 1]
    cards = ["A", "B", "A", "B", "C"]
    labels = [1, 0, 1, 0, 1]
    scores = [0.9, 0.1, 0.9, 0.5, 0.4]
    assert card_precision_top_k(days, cards, labels, scores, k=1) == pytest.approx(0.5)
    assert card_precision_top_k(days, cards, labels, scores, k=1, remove_detected=False) == pytest.approx(1.0)
    assert card_precision_top_k(days, cards, labels, scores, k=2) == pytest.approx(0.5)


def test_only_fraudulent_cards_in_the_top_k_count_as_detected() -> None:
    """k=1. Day 0: A 0.9 legit, B 0.8 fraud: A is checked and cleared (0); B, a missed fraud, is not
    detected. Day 1: A 0.9 fraud, C 0.5 legit: A is still ranked, top 1, fraud (1). Day 2: B 0.9 fraud,
    C 0.1 legit: B was never detected, so it is top 1 (1). Mean 2/3; blocking the cleared A or the
    missed B would each turn one of those 1s into a 0."""
    days = [0, 0, 1, 1, 2, 2]
    cards = ["A", "B", "A", "C", "B", "C"]
    labels = [0, 1, 1, 0, 1, 0]
    scores = [0.9, 0.8, 0.9, 0.5, 0.9, 0.1]
    assert card_precision_top_k(days, cards, labels, scores, k=1) == pytest.approx(2 / 3)


def test_equal_scores_are_ranked_by_card_id() -> None:
    """Cards 1 and 2 both score 0.5 and k=1: card 1 is checked first, so the result is 1 when card 1 is
    the fraud and 0 when card 2 is, whatever the row order."""
    assert card_precision_top_k([0, 0], [2, 1], [0, 1], [0.5, 0.5], k=1) == 1.0
    assert card_precision_top_k([0, 0], [1, 2], [0, 1], [0.5, 0.5], k=1) == 0.0


def test_the_denominator_is_k_even_on_a_day_with_fewer_cards() -> None:
    """Two cards, both fraudulent, k=4: investigators had 4 slots and filled 2 with frauds: 2/4."""
    assert card_precision_top_k([0, 0], [1, 2], [1, 1], [0.3, 0.2], k=4) == pytest.approx(0.5)


def test_days_are_taken_in_order_whatever_the_row_order() -> None:
    """Shuffling the rows changes nothing: days are processed in ascending order (so removal follows
    time), and equal scores are ranked by card id rather than by row position."""
    rng = np.random.default_rng(1)
    n = 400
    days = rng.integers(0, 5, n)
    cards = rng.integers(0, 60, n)
    labels = rng.integers(0, 2, n)
    scores = rng.integers(0, 4, n) / 4
    expected = card_precision_top_k(days, cards, labels, scores, k=10)
    order = rng.permutation(n)
    assert card_precision_top_k(days[order], cards[order], labels[order], scores[order], k=10) == expected


def test_card_precision_rejects_empty_input_and_k_below_one() -> None:
    """No rows has no mean over days, and k=0 would divide by zero: both are errors, not 0."""
    with pytest.raises(ValueError):
        card_precision_top_k([], [], [], [], k=10)
    with pytest.raises(ValueError):
        card_precision_top_k([0], ["A"], [1], [0.5], k=0)


def test_report_keys_ranges_and_json() -> None:
    """Random scores give metrics inside [0, 1] under the documented keys, all plain floats that JSON
    accepts; the card metric is named after k and appears only with days and entity ids."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    scores = rng.random(300)
    report = classification_report(
        labels, scores, days=rng.integers(0, 3, 300), entity_ids=rng.integers(0, 50, 300), k=7
    )
    assert set(report) == {"roc_auc", "average_precision", "card_precision_at_7"}
    assert all(type(value) is float and 0.0 <= value <= 1.0 for value in report.values())
    assert json.loads(json.dumps(report)) == report
    assert set(classification_report(labels, scores)) == {"roc_auc", "average_precision"}


def test_report_tracks_ranking_quality() -> None:
    """Scores equal to the labels rank perfectly (AUC, AP and card precision of 1 with one card per
    fraud and k = number of frauds); reversed scores give AUC 0."""
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 200)
    perfect = classification_report(
        labels, labels * 0.9 + 0.05, days=np.zeros(200), entity_ids=np.arange(200), k=int(labels.sum())
    )
    assert perfect["roc_auc"] == 1.0 and perfect["average_precision"] == 1.0
    assert perfect[f"card_precision_at_{int(labels.sum())}"] == 1.0
    assert classification_report(labels, 1.0 - labels)["roc_auc"] == 0.0


def test_report_refuses_single_class_labels_and_half_given_card_inputs() -> None:
    """AUC and AP are undefined with one class: an error, not a NaN in a model card. Days without
    entity ids cannot make a card metric: an error, not a silently missing key."""
    with pytest.raises(ValueError, match="both classes"):
        classification_report([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="days and entity_ids"):
        classification_report([0, 1], [0.1, 0.2], days=[0, 0])
