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

The offline form may be asked for some rows only (`answer`), over every row given: the batch engine gives
a slice's rows with the look-back before them and asks for the slice's own, so no look-back row's windows
are computed. Asked rows get the same bits as when every row is asked; over a look-back rather than the
whole history, the same counts, and sums to rounding (the running sums start at the look-back).
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
    codes, times, order = _frame_order(frame, entity, ts, event_id)
    return activity_windows(codes, times, order, frame[value].to_numpy(dtype=float), windows_days)


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
    codes, times, order = _frame_order(frame, entity, ts, event_id)
    positives = (frame[label].fillna(0).to_numpy(dtype=float) == 1).astype(float)
    return delayed_label_windows(codes, times, order, positives, windows_days, delay_days)


def activity_windows(
    codes: np.ndarray,
    times: np.ndarray,
    order: np.ndarray,
    values: np.ndarray,
    windows_days: Iterable[int],
    answer: np.ndarray | None = None,
) -> WindowCounts:
    """`activity_windows_offline` over arrays: each row's entity code and time, `order` the rows sorted by
    (entity, time, event id as text) (`entity_order`), and the values summed. Windows are answered for the
    rows at `answer` (row positions; every row by default), over every row given: the rows answered for
    nobody are look-back only, and no feature of theirs is computed."""
    view = _SortedHistory(codes, times, order, values, answer)
    return {days: view.trailing(days * DAY_SECONDS) for days in windows_days}


def delayed_label_windows(
    codes: np.ndarray,
    times: np.ndarray,
    order: np.ndarray,
    positives: np.ndarray,
    windows_days: Iterable[int],
    delay_days: int,
    answer: np.ndarray | None = None,
) -> WindowCounts:
    """`delayed_label_windows_offline` over arrays (as `activity_windows`), `positives` 1.0 for a positive
    label and 0.0 otherwise."""
    view = _SortedHistory(codes, times, order, positives, answer)
    return {days: view.delayed(delay_days * DAY_SECONDS, (delay_days + days) * DAY_SECONDS) for days in windows_days}


def entity_order(codes: np.ndarray, in_time_order: np.ndarray) -> np.ndarray:
    """The rows sorted by (entity, time, id), given them sorted by (time, id) with a stable sort: a stable
    sort by entity keeps each entity's rows in that order, as `np.lexsort((ids, times, codes))` does."""
    return in_time_order[np.argsort(codes[in_time_order], kind="stable")]


def _frame_order(frame: pd.DataFrame, entity: str, ts: str, event_id: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    codes = pd.factorize(frame[entity])[0]
    times = frame[ts].to_numpy(dtype=float)
    ids = frame[event_id].astype(str).to_numpy()
    return codes, times, np.lexsort((ids, times, codes))


class _SortedHistory:
    """Rows sorted by (entity, time, id) with per-entity boundaries and running sums of the values, and the
    sorted positions of the rows whose windows are asked for.

    Every entity at once, with no loop over entities: a window's edges are found for all rows by binary
    searches over one sorted integer key (`_edges`), and each entity's running sum (`_running`) is
    added in the order a cumulative sum over that entity alone adds it, so the sums keep their bits."""

    def __init__(
        self, codes: np.ndarray, times: np.ndarray, order: np.ndarray, values: np.ndarray, answer: np.ndarray | None
    ) -> None:
        order = np.asarray(order, dtype=np.intp)
        self.times = times[order]
        self.codes = np.asarray(codes, dtype=np.int64)[order]
        starts = np.flatnonzero(np.r_[True, self.codes[1:] != self.codes[:-1]])
        lengths = np.diff(np.r_[starts, len(self.codes)])
        # Entity k's running sums take its length + 1 slots from starts[k] + k: row p's entity-local
        # position p - start is slot p + k, and the slot past its last row holds its total.
        self.slot_shift = np.repeat(np.arange(len(starts)), lengths)
        self.distinct_times, ranks = np.unique(self.times, return_inverse=True)
        self.key_stride = np.int64(len(self.distinct_times) + 1)
        self.keys = self.codes * self.key_stride + ranks  # sorted, as the rows are
        del ranks
        self.running = _running(values[order], starts, lengths)
        sorted_position = np.empty_like(order)
        sorted_position[order] = np.arange(len(order))
        # The sorted position of each row answered, in the order asked: results need no unsorting.
        self.asked = sorted_position if answer is None else sorted_position[answer]
        # The rows asked in sorted order (by entity, then time), where their queries rise, so the binary
        # searches of `_edges` run over ascending queries: each asked row's place in `asked`, by sorted position.
        is_asked = np.zeros(len(order), dtype=bool)
        is_asked[self.asked] = True
        place = np.empty(len(order), dtype=np.intp)
        place[self.asked] = np.arange(len(self.asked))
        self.by_position = place[is_asked]
        self.asked_key_base = self.codes[is_asked] * self.key_stride - 1
        self.asked_times = self.times[is_asked]  # in sorted order
        self.asked_shift = self.slot_shift[self.asked]

    def trailing(self, seconds: float) -> tuple[np.ndarray, np.ndarray]:
        """Events in (t - seconds, t] up to and including each row asked, within its entity."""
        first = self._edges(seconds)
        last = self.asked + 1
        return (last - first).astype(float), self._sums(first, last)

    def delayed(self, delay: float, span: float) -> tuple[np.ndarray, np.ndarray]:
        """Events in (t - span, t - delay] for each row asked, within its entity."""
        first = self._edges(span)
        last = self._edges(delay)
        return (last - first).astype(float), np.rint(self._sums(first, last))

    def _edges(self, before: float) -> np.ndarray:
        """For each row asked, the position (in the sorted rows) of the first row of its entity with time
        above its query (its own time - `before`), as `searchsorted(entity's times, query, side="right")`
        finds it. Times are replaced by their rank among the distinct times, so (entity, rank) is one exact
        integer key: a row's time is at most the query exactly when its rank is below the number of
        distinct times up to the query."""
        by_position = self.by_position
        up_to_query = np.searchsorted(self.distinct_times, self.asked_times - before, side="right")
        keys = self.asked_key_base + up_to_query
        edges = np.empty(len(by_position), dtype=np.intp)
        # Asked in sorted order (nearly ascending queries: searched at the speed of a merge, not of a
        # cache miss per step), put back in the order asked; the same integers either way.
        edges[by_position] = np.searchsorted(self.keys, keys, side="right")
        return edges

    def _sums(self, first: np.ndarray, last: np.ndarray) -> np.ndarray:
        """running[last] - running[first] of each asked row's own entity."""
        shift = self.asked_shift
        return self.running[last + shift] - self.running[first + shift]


def _running(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Each entity's `np.r_[0.0, np.cumsum(its values)]`, one after another (length + 1 slots each).
    Entities of similar length are laid side by side in a zero-padded matrix summed along its rows (a
    cumulative sum adds one value at a time, so each row's bits are those of its entity alone); grouping
    lengths within a factor of two keeps the padding under the rows themselves."""
    running = np.zeros(len(values) + len(starts))
    slot_starts = starts + np.arange(len(starts))
    by_length = np.argsort(lengths, kind="stable")
    sorted_lengths = lengths[by_length]
    group_start = 0
    while group_start < len(by_length):
        limit = 2 * max(int(sorted_lengths[group_start]), 1)
        group_end = max(int(np.searchsorted(sorted_lengths, limit, side="left")), group_start + 1)
        entities = by_length[group_start:group_end]
        width = int(sorted_lengths[group_end - 1])
        inside = np.arange(width) < lengths[entities][:, np.newaxis]
        padded = np.zeros((len(entities), width + 1))
        padded[:, 1:][inside] = values[(starts[entities][:, np.newaxis] + np.arange(width))[inside]]
        sums = np.cumsum(padded, axis=1)
        slots = np.arange(width + 1) <= lengths[entities][:, np.newaxis]
        running[(slot_starts[entities][:, np.newaxis] + np.arange(width + 1))[slots]] = sums[slots]
        group_start = group_end
    return running


# ------------------------------------------------------------------ online: one micro-batch at a time
#
# The online form is the state store's `append_then_total`: a micro-batch's records are written, then
# each event's windows are totalled over the store's records (`WindowQuery`, `totals_over`), in one write.


# ------------------------------------------------------------------ another stream's events before each event


def prior_events_offline(
    events: pd.DataFrame, history: pd.DataFrame, *, entity: str, ts: str, window_seconds: float
) -> tuple[np.ndarray, np.ndarray]:
    """For each row of `events`: how many rows of `history` (e.g. claims) of the same entity fall in
    (t - window, t], and the time of the latest one at or before t (NaN when there is none). All rows at
    once: the history sorted by (entity, time) once, and each event's place in it found by one merge."""
    counts = np.zeros(len(events))
    latest = np.full(len(events), np.nan)
    if history.empty or events.empty:
        return counts, latest
    codes, _ = pd.factorize(np.concatenate([history[entity].to_numpy(), events[entity].to_numpy()]))
    history_codes, event_codes = codes[: len(history)], codes[len(history) :]
    history_times = history[ts].to_numpy(dtype=float)
    order = np.lexsort((history_times, history_codes))
    history_codes, history_times = history_codes[order], history_times[order]
    now = events[ts].to_numpy(dtype=float)
    first_of_entity = np.searchsorted(history_codes, event_codes, side="left")
    last = _at_or_before(history_codes, history_times, event_codes, now)
    counts[:] = last - _at_or_before(history_codes, history_times, event_codes, now - window_seconds)
    some = last > first_of_entity
    latest[some] = history_times[last[some] - 1]
    return counts, latest


def _at_or_before(codes: np.ndarray, times: np.ndarray, query_codes: np.ndarray, query_times: np.ndarray) -> np.ndarray:
    """For each query, how many of the (code, time)-sorted rows come before it or have its code and a time at
    or before its own: `searchsorted(side="right")` within its code's rows, offset by the rows of lower codes."""
    n = len(codes)
    kind = np.concatenate([np.zeros(n, dtype=np.int8), np.ones(len(query_codes), dtype=np.int8)])
    order = np.lexsort((kind, np.concatenate([times, query_times]), np.concatenate([codes, query_codes])))
    is_row = order < n
    rows_so_far = np.cumsum(is_row)
    found = np.empty(len(query_codes), dtype=np.int64)
    found[order[~is_row] - n] = rows_so_far[~is_row]
    return found


def prior_events_online(history: Sequence[Record], now: float, window_seconds: float) -> tuple[int, float | None]:
    """The online form of `prior_events_offline` over one entity's records sorted by time."""
    last = bisect.bisect_right(history, now, key=_TIME)
    first = bisect.bisect_right(history, now - window_seconds, hi=last, key=_TIME)
    return last - first, (history[last - 1].ts if last else None)
