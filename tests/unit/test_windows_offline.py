"""The offline window features, computed for every entity at once, against the definition written as a
loop over each entity's rows: the same counts and the same bits of every sum."""

from __future__ import annotations

import numpy as np
import pandas as pd

from shared.features.windows import (
    DAY_SECONDS,
    activity_windows,
    activity_windows_offline,
    delayed_label_windows,
    delayed_label_windows_offline,
    entity_order,
)


def _history(rows: int = 3000, seed: int = 0) -> pd.DataFrame:
    """Entities of very different lengths (one row to a thousand), shared and repeated times, times on a
    window's edge, amounts whose sums round."""
    rng = np.random.default_rng(seed)
    entity = np.where(rng.random(rows) < 0.3, "busy", rng.integers(0, 400, rows).astype(str))
    times = 1_533_700_000.0 + rng.integers(0, 40, rows) * DAY_SECONDS / rng.choice([1, 2, 4], rows)
    return pd.DataFrame(
        {
            "entity": entity,
            "ts": times,
            "event_id": [f"e{i}" for i in rng.permutation(rows)],
            "amount": rng.random(rows) * 1000 / 3,
            "label": rng.choice([0.0, 1.0, np.nan], rows),
        }
    )


def _reference(frame: pd.DataFrame, values: np.ndarray, lower: float, upper: float | None) -> np.ndarray:
    """(count, sum) of each row's entity's rows in (t - lower, t - upper], or up to the row itself in the
    (time, id) order when `upper` is None, summed as a cumulative sum over that entity alone."""
    counts, sums = np.empty(len(frame)), np.empty(len(frame))
    for _, rows in frame.groupby("entity", sort=False).indices.items():
        order = rows[np.lexsort((frame["event_id"].to_numpy()[rows], frame["ts"].to_numpy()[rows]))]
        times = frame["ts"].to_numpy()[order]
        running = np.r_[0.0, np.cumsum(values[order])]
        first = np.searchsorted(times, times - lower, side="right")
        last = np.arange(len(order)) + 1 if upper is None else np.searchsorted(times, times - upper, side="right")
        counts[order], sums[order] = last - first, running[last] - running[first]
    return np.stack([counts, sums])


def test_activity_windows_equal_the_per_entity_definition_bit_for_bit() -> None:
    """Counts and sums of the trailing windows (the row itself included) equal a cumulative sum over each
    entity alone, to the last bit."""
    frame = _history()
    found = activity_windows_offline(
        frame, entity="entity", ts="ts", event_id="event_id", value="amount", windows_days=(1, 7, 30)
    )
    for days, (count, total) in found.items():
        expected = _reference(frame, frame["amount"].to_numpy(), days * DAY_SECONDS, None)
        assert np.array_equal(count, expected[0]) and np.array_equal(total, expected[1]), days


def test_delayed_label_windows_equal_the_per_entity_definition() -> None:
    """Events and positive labels in (t - delay - w, t - delay] equal the per-entity definition exactly."""
    frame = _history(seed=1)
    positives = (frame["label"].fillna(0).to_numpy() == 1).astype(float)
    found = delayed_label_windows_offline(
        frame, entity="entity", ts="ts", event_id="event_id", label="label", windows_days=(1, 7), delay_days=7
    )
    for days, (count, frauds) in found.items():
        expected = _reference(frame, positives, (7 + days) * DAY_SECONDS, 7 * DAY_SECONDS)
        assert np.array_equal(count, expected[0]) and np.array_equal(frauds, np.rint(expected[1])), days
        assert frauds.sum() > 0


def test_an_empty_history_has_empty_windows() -> None:
    """No rows: every window is empty, nothing fails."""
    frame = _history().head(0)
    found = activity_windows_offline(
        frame, entity="entity", ts="ts", event_id="event_id", value="amount", windows_days=(1,)
    )
    assert [len(a) for a in found[1]] == [0, 0]


def test_rows_answered_alone_get_the_same_bits_as_when_every_row_is_answered() -> None:
    """Windows asked for a subset of rows (the others look-back only) equal, bit for bit, the answer for
    every row at those rows, for both window kinds; the order from a stable (time, id) sort then a stable
    sort by entity is the (entity, time, id) order."""
    frame = _history(seed=2)
    codes = pd.factorize(frame["entity"])[0]
    times = frame["ts"].to_numpy()
    by_time_then_id = np.lexsort((frame["event_id"].to_numpy(), times))
    order = entity_order(codes, by_time_then_id)
    assert np.array_equal(order, np.lexsort((frame["event_id"].to_numpy(), times, codes)))
    amounts = frame["amount"].to_numpy()
    positives = (frame["label"].fillna(0).to_numpy() == 1).astype(float)
    asked = np.sort(np.random.default_rng(3).choice(len(frame), 700, replace=False))
    every_activity = activity_windows(codes, times, order, amounts, (1, 30))
    some_activity = activity_windows(codes, times, order, amounts, (1, 30), asked)
    every_delayed = delayed_label_windows(codes, times, order, positives, (7,), 7)
    some_delayed = delayed_label_windows(codes, times, order, positives, (7,), 7, asked)
    for every, some in ((every_activity, some_activity), (every_delayed, some_delayed)):
        for days, (count, total) in every.items():
            assert np.array_equal(some[days][0], count[asked]) and np.array_equal(some[days][1], total[asked])
    assert some_delayed[7][1].sum() > 0 and some_activity[30][0].max() > 50
