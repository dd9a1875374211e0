"""Time-window features per entity, in two forms that must agree.

- Offline (pandas/numpy over a whole history): for training and batch rescoring.
- Online (over a `StateStore`, which totals the windows itself): for HTTP and stream scoring, one
  micro-batch at a time.

Both follow one definition, so a test replays a history through the online form and compares:

* Events are ordered by (time, event id as text). An event's *activity* window of `w` days holds the
  events of the same entity with time in (t - w, t] that come no later than it in that order, itself
  included: its count and the sum of a value (e.g. the amount).
* A *delayed label* window of `w` days with delay `d` holds the entity's events with time in
  (t - d - w, t - d]: labels (e.g. confirmed fraud) are only known after `d` days, so the newest `d`
  days never count. It yields the number of events and of positive labels among them.
Counts are exact in both forms; sums agree to floating-point rounding (cumulative versus direct sums).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from operator import itemgetter

import numpy as np
import pandas as pd

from shared.state import Record

DAY_SECONDS = 86_400.0

_TIME = itemgetter(0)  # a Record's time, read in C

WindowCounts = dict[int, tuple[np.ndarray, np.ndarray]]


# ------------------------------------------------------------------ offline: a whole history at once


def activity_windows_offline(
    frame: pd.DataFrame, *, entity: str, ts: str, event_id: str, value: str, windows_days: Iterable[int]
) -> WindowCounts:
    """For each window in days, (count, sum of `value`) per row, aligned with `frame`'s rows."""
    view = _SortedHistory(frame, entity, ts, event_id, frame[value].to_numpy(dtype=float))
    return {days: view.trailing(days * DAY_SECONDS, include_self=True) for days in windows_days}


def delayed_label_windows_offline(
    frame: pd.DataFrame,
    *,
    entity: str,
    ts: str,
    event_id: str,
    label: str,
    windows_days: Iterable[int],
    delay_days: int,
) -> WindowCounts:
    """For each window in days, (events, positive labels) in (t - delay - w, t - delay] per row."""
    labels = frame[label].fillna(0).to_numpy(dtype=float)
    view = _SortedHistory(frame, entity, ts, event_id, (labels == 1).astype(float))
    return {days: view.delayed(delay_days * DAY_SECONDS, (delay_days + days) * DAY_SECONDS) for days in windows_days}


class _SortedHistory:
    """Rows sorted by (entity, time, id) with per-entity boundaries and a running sum of the values."""

    def __init__(self, frame: pd.DataFrame, entity: str, ts: str, event_id: str, values: np.ndarray) -> None:
        entity_codes = pd.factorize(frame[entity])[0]
        times = frame[ts].to_numpy(dtype=float)
        ids = frame[event_id].astype(str).to_numpy()
        self.order = np.lexsort((ids, times, entity_codes))
        self.times = times[self.order]
        self.values = values[self.order]
        codes = entity_codes[self.order]
        self.starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
        self.ends = np.r_[self.starts[1:], len(codes)]

    def trailing(self, seconds: float, *, include_self: bool) -> tuple[np.ndarray, np.ndarray]:
        """Events in (t - seconds, t] up to and including each row, within its entity."""
        counts = np.empty(len(self.times))
        sums = np.empty(len(self.times))
        for start, end in zip(self.starts, self.ends, strict=True):
            times = self.times[start:end]
            running = np.r_[0.0, np.cumsum(self.values[start:end])]
            first = np.searchsorted(times, times - seconds, side="right")
            last = np.arange(end - start) + (1 if include_self else 0)
            counts[start:end] = last - first
            sums[start:end] = running[last] - running[first]
        return self._unsort(counts), self._unsort(sums)

    def delayed(self, delay: float, span: float) -> tuple[np.ndarray, np.ndarray]:
        """Events in (t - span, t - delay] for each row, within its entity."""
        counts = np.empty(len(self.times))
        sums = np.empty(len(self.times))
        for start, end in zip(self.starts, self.ends, strict=True):
            times = self.times[start:end]
            running = np.r_[0.0, np.cumsum(self.values[start:end])]
            first = np.searchsorted(times, times - span, side="right")
            last = np.searchsorted(times, times - delay, side="right")
            counts[start:end] = last - first
            sums[start:end] = np.rint(running[last] - running[first])
        return self._unsort(counts), self._unsort(sums)

    def _unsort(self, values: np.ndarray) -> np.ndarray:
        out = np.empty_like(values)
        out[self.order] = values
        return out


# ------------------------------------------------------------------ online: one micro-batch at a time
#
# The online form is the state store's `append_then_total`: a micro-batch's records are written, then
# each event's windows are totalled over the store's records (`WindowQuery`, `totals_over`), in one write.


# ------------------------------------------------------------------ another stream's events before each event


def prior_events_offline(
    events: pd.DataFrame, history: pd.DataFrame, *, entity: str, ts: str, window_seconds: float
) -> tuple[np.ndarray, np.ndarray]:
    """For each row of `events`: how many rows of `history` (e.g. claims) of the same entity fall in
    (t - window, t], and the time of the latest one at or before t (NaN when there is none)."""
    counts = np.zeros(len(events))
    latest = np.full(len(events), np.nan)
    if history.empty or events.empty:
        return counts, latest
    by_entity = {key: np.sort(group[ts].to_numpy(dtype=float)) for key, group in history.groupby(entity, sort=False)}
    event_entities = events[entity].to_numpy()
    event_times = events[ts].to_numpy(dtype=float)
    for row, (key, now) in enumerate(zip(event_entities, event_times, strict=True)):
        times = by_entity.get(key)
        if times is None:
            continue
        last = np.searchsorted(times, now, side="right")
        counts[row] = last - np.searchsorted(times, now - window_seconds, side="right")
        if last:
            latest[row] = times[last - 1]
    return counts, latest


def prior_events_online(history: Sequence[Record], now: float, window_seconds: float) -> tuple[int, float | None]:
    """The online form of `prior_events_offline` over one entity's records sorted by time."""
    last = bisect.bisect_right(history, now, key=_TIME)
    first = bisect.bisect_right(history, now - window_seconds, hi=last, key=_TIME)
    return last - first, (history[last - 1].ts if last else None)
