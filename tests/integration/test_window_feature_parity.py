"""Online window features (incremental, over a real state store) equal the offline ones (pandas over
the whole history), event by event, on a simulated history of more than 10,000 transactions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from services.fraud_detection.dataset import simulate
from services.fraud_detection.features import (
    FEATURE_SET,
    TERMINAL_NAMESPACE,
    events_from_simulation,
    frame_from_simulation,
    offline_features,
    online_features,
)
from services.fraud_detection.schemas import TransactionSchema
from shared.state import StateStore

COUNT_FEATURES = [f for f in FEATURE_SET.features if "_nb_tx_" in f or f.startswith("is_")]


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    transactions = simulate(n_customers=120, n_terminals=240, nb_days=75, processes=1)
    assert len(transactions) >= 10_000
    return transactions


def test_online_replay_equals_offline(history: pd.DataFrame, state_store: StateStore) -> None:
    """Replaying the history in micro-batches of varying size through the online form, with fraud
    labels fed back after each batch (as confirmed-fraud feedback would be), reproduces every offline
    feature: counts exactly, averages and rates to 1e-9."""
    frame = frame_from_simulation(history)
    expected = offline_features(frame)
    assert expected["terminal_risk_30d"].gt(0).any(), "the history must exercise the fraud-risk windows"

    schema = TransactionSchema()
    events = [schema.load(e) for e in events_from_simulation(history)]
    sizes = np.random.default_rng(3).integers(1, 400, size=len(events))
    online, start = [], 0
    for size in sizes:
        batch = events[start : start + int(size)]
        if not batch:
            break
        online.append(online_features(batch, state_store).frame())
        labelled = frame.iloc[start : start + len(batch)]
        state_store.set_labels(
            TERMINAL_NAMESPACE,
            list(zip(labelled["terminal_id"], labelled["event_id"], labelled["label"].astype(int), strict=True)),
        )
        start += len(batch)
    actual = pd.concat(online, ignore_index=True)

    assert len(actual) == len(expected)
    for column in FEATURE_SET.features:
        if column in COUNT_FEATURES:
            np.testing.assert_array_equal(actual[column].to_numpy(), expected[column].to_numpy(), err_msg=column)
        else:
            np.testing.assert_allclose(
                actual[column].to_numpy(), expected[column].to_numpy(), rtol=1e-9, atol=1e-12, err_msg=column
            )


def test_redelivered_events_do_not_count_twice(history: pd.DataFrame, state_store: StateStore) -> None:
    """At-least-once delivery: scoring a micro-batch again gives the same features, not inflated counts."""
    schema = TransactionSchema()
    events = [schema.load(e) for e in events_from_simulation(history.head(300))]
    first = online_features(events, state_store).frame()
    again = online_features(events, state_store).frame()
    pd.testing.assert_frame_equal(first, again)
