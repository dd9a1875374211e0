"""Bounded window state: under a steady stream the store stops growing, on SQLite and Redis, and nothing a
window still reads is pruned."""

from __future__ import annotations

import time

import pytest

from shared.state import Record, StateStore, WindowQuery
from shared.state.retention import RetainedStore

HOUR = 3600.0
DAY = 24 * HOUR
HORIZON = 3 * DAY
CARDS = ("c1", "c2", "c3")


def _stream(store: StateStore, start_hour: int, hours: int) -> None:
    """One record per card and hour of event time, appended a day at a time, as a stream worker would."""
    for day_start in range(start_hour, start_hour + hours, 24):
        store.append(
            "n",
            [
                (card, Record(ts=hour * HOUR, id=f"{card}-{hour}", value=1.0))
                for hour in range(day_start, min(day_start + 24, start_hour + hours))
                for card in CARDS
            ],
        )


def test_a_steady_stream_stops_growing(state_store: StateStore) -> None:
    """Over 30 days of event time pruned as it flows, the store holds at most the horizon plus a day of
    records, however much was appended; an unretained namespace beside it is left whole."""
    store = RetainedStore(state_store, {"n": HORIZON}, interval=3600.0)  # passes run here, not by the clock
    sizes = []
    for day in range(30):
        _stream(store, day * 24, 24)
        store.append("kept", [("k", Record(ts=day * DAY, id=f"k-{day}"))])
        store.prune_expired()
        sizes.append(store.count("n"))
    bound = (HORIZON / HOUR + 24) * len(CARDS)
    assert max(sizes) <= bound
    assert sizes[-1] == sizes[-10]  # flat: as much pruned as appended
    assert store.count("kept") == 30
    appended = 30 * 24 * len(CARDS)
    assert appended > 4 * sizes[-1]


def test_pruning_changes_no_window_inside_the_horizon(state_store: StateStore) -> None:
    """Window totals over the horizon are the same before and after a prune pass."""
    store = RetainedStore(state_store, {"n": HORIZON}, interval=3600.0)
    _stream(store, 0, 10 * 24)
    now = (10 * 24 - 1) * HOUR
    queries = {"n": [WindowQuery(card, (now - HORIZON, now - DAY), now) for card in CARDS]}
    before = store.append_then_total({}, queries)
    removed = store.prune_expired()
    assert removed["n"] > 0
    assert store.append_then_total({}, queries) == before


def test_the_background_pruner_runs_and_stops_with_the_store(state_store: StateStore) -> None:
    """With a short interval the store's own thread prunes without being asked; close() stops it."""
    store = RetainedStore(state_store, {"n": HORIZON}, interval=0.05)
    _stream(store, 0, 10 * 24)
    expected = (HORIZON / HOUR + 1) * len(CARDS)
    deadline = time.monotonic() + 10
    while store.count("n") > expected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.count("n") <= expected
    pruner = store._pruner
    assert pruner is not None and pruner.is_alive()
    store.close()
    pruner.join(timeout=5)
    assert not pruner.is_alive()


def test_retention_must_be_positive(state_store: StateStore) -> None:
    """A horizon or interval of zero would prune everything or spin: refused."""
    with pytest.raises(ValueError):
        RetainedStore(state_store, {"n": 0.0})
    with pytest.raises(ValueError):
        RetainedStore(state_store, {"n": HORIZON}, interval=0)
