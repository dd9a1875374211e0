"""`prior_events_offline` (another stream's events before each event, e.g. a policy's claims) against the
plain definition, ties at both window edges included."""

from __future__ import annotations

import numpy as np
import pandas as pd

from shared.features.windows import prior_events_offline


def _by_definition(events: pd.DataFrame, history: pd.DataFrame, window: float) -> tuple[np.ndarray, np.ndarray]:
    counts, latest = [], []
    for key, now in zip(events["p"], events["ts"], strict=True):
        times = history.loc[history["p"] == key, "ts"].to_numpy()
        counts.append(float(((times > now - window) & (times <= now)).sum()))
        before = times[times <= now]
        latest.append(before.max() if len(before) else np.nan)
    return np.array(counts), np.array(latest)


def test_counts_and_latest_times_follow_the_definition_with_ties_at_the_edges() -> None:
    """Over random entities and whole-second times (so many events fall exactly at a claim's time or a
    window's start): the count in (t - window, t] and the latest time at or before t, NaN for an entity
    with none or only later ones, equal to a row-by-row count."""
    rng = np.random.default_rng(5)
    for _ in range(50):
        keys = [f"P{k}" for k in range(int(rng.integers(1, 25)))]
        events = pd.DataFrame({"p": rng.choice(keys, 200), "ts": rng.integers(0, 400, 200).astype(float)})
        history = pd.DataFrame({"p": rng.choice([*keys, "other"], 80), "ts": rng.integers(0, 400, 80).astype(float)})
        window = float(rng.choice([10.0, 50.0, 1000.0]))
        counts, latest = prior_events_offline(events, history, entity="p", ts="ts", window_seconds=window)
        expected_counts, expected_latest = _by_definition(events, history, window)
        np.testing.assert_array_equal(counts, expected_counts)
        np.testing.assert_array_equal(latest, expected_latest)
    assert (counts > 0).any() and np.isnan(latest).any()


def test_no_history_or_no_events_gives_zero_counts_and_no_latest_time() -> None:
    """An empty history (or no events) counts nothing and knows no latest time."""
    events = pd.DataFrame({"p": ["A", "B"], "ts": [1.0, 2.0]})
    counts, latest = prior_events_offline(events, events.iloc[:0], entity="p", ts="ts", window_seconds=5.0)
    assert counts.tolist() == [0.0, 0.0] and np.isnan(latest).all()
    counts, latest = prior_events_offline(events.iloc[:0], events, entity="p", ts="ts", window_seconds=5.0)
    assert len(counts) == len(latest) == 0
