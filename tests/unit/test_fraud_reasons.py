"""The fraud reason codes read as sentences: the feature's value against the card's own habits."""

from __future__ import annotations

import pytest

from services.fraud_detection.features import FEATURE_SET, reason_text

CARD = dict.fromkeys(FEATURE_SET.features, 0.0) | {
    "amount": 344.3,
    "customer_nb_tx_1d": 7.0,
    "customer_nb_tx_30d": 60.0,
    "customer_avg_amount_30d": 103.06,
    "customer_avg_amount_7d": 166.22,
    "amount_to_customer_avg_30d": 3.34,
    "terminal_nb_tx_1d": 1.0,
    "terminal_risk_1d": 1.0,
    "terminal_nb_tx_30d": 33.0,
    "terminal_risk_30d": 0.55,
    "is_night": 1.0,
}


@pytest.mark.parametrize(
    ("feature", "text"),
    [
        ("customer_nb_tx_1d", "7 transactions on this card in the last 24 hours, usually 2"),
        (
            "customer_avg_amount_7d",
            "average amount 166.22 on this card in the last 7 days, against 103.06 over 30 days",
        ),
        ("amount", "amount 344.30, against this card's 30-day average of 103.06"),
        ("amount_to_customer_avg_30d", "amount is 3.3 times this card's 30-day average of 103.06"),
        (
            "terminal_risk_1d",
            "100% of the 1 transaction at this terminal in the 1 day before last week was confirmed fraud",
        ),
        (
            "terminal_risk_30d",
            "55% of the 33 transactions at this terminal in the 30 days before last week were confirmed fraud",
        ),
        ("terminal_nb_tx_1d", "1 transaction at this terminal in the 1 day before last week"),
        ("is_night", "made at night (00:00 to 06:59)"),
        ("is_weekend", "made on a weekday"),
    ],
)
def test_reason_texts(feature: str, text: str) -> None:
    """Each fraud feature's reason reads as an analyst would write it, singular and plural right."""
    assert reason_text(feature, CARD) == text
