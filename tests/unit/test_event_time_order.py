"""Event-time order across partitions (shared.events.ordering): a pure merge over buffered records."""

from __future__ import annotations

import random

import pytest
from kafka import TopicPartition

from shared.events.ordering import UNKNOWN_TIME, EventTimeMerger, Timed, event_time_of

P0 = TopicPartition("payments", 0)
P1 = TopicPartition("payments", 1)
CLAIMS = TopicPartition("claims", 0)
POLICIES = TopicPartition("policies", 0)


def timed(partition: TopicPartition, offset: int, event_time: float, rank: int = 0) -> Timed[str]:
    return Timed(partition, offset, event_time, rank, f"{partition.topic}/{partition.partition}@{offset}")


def merger(*partitions: TopicPartition, idle: float = 1.0) -> EventTimeMerger[str]:
    held: EventTimeMerger[str] = EventTimeMerger(idle)
    held.hold(partitions, now=0.0)
    return held


def test_records_go_in_event_time_order_across_partitions_and_in_offset_order_within_each() -> None:
    """Two partitions skewed in event time come out merged by time; a partition whose own times go back
    (a late event) still releases in offset order, so committing its last released offset skips nothing."""
    held = merger(P0, P1)
    held.add([timed(P0, 0, 10), timed(P0, 1, 30), timed(P0, 2, 25), timed(P0, 3, 50)], now=0.0)
    held.add([timed(P1, 0, 20), timed(P1, 1, 40), timed(P1, 2, 60)], now=0.0)

    released = held.release(now=0.0, limit=100)

    assert [e.item for e in released] == [
        "payments/0@0",  # 10
        "payments/1@0",  # 20
        "payments/0@1",  # 30
        "payments/0@2",  # 25: after 30, its partition's order
        "payments/1@1",  # 40
        "payments/0@3",  # 50: the last of partition 0; partition 1 is not empty, so nothing more may go
    ]
    assert held.buffered(P1) == 1 and held.buffered(P0) == 0


def test_an_empty_partition_holds_the_others_back_until_its_wait_runs_out() -> None:
    """Nothing goes while a held partition has nothing buffered and its wait (max idle) has not passed;
    once it has, the others go on without it; when it has records again, the order is enforced again."""
    held = merger(P0, P1, idle=2.0)
    held.add([timed(P0, 0, 10), timed(P0, 1, 20)], now=0.0)

    assert held.plan(now=1.9, limit=10) == []
    assert held.next_deadline(now=1.9) == pytest.approx(2.0)
    assert [e.item for e in held.release(now=2.0, limit=10)] == ["payments/0@0", "payments/0@1"]
    assert held.newly_expired(now=2.0) == [P1]
    assert held.newly_expired(now=3.0) == []  # announced once

    held.add([timed(P1, 0, 5)], now=3.0)  # late, and now known: it goes first
    held.add([timed(P0, 2, 30)], now=3.0)
    assert [e.item for e in held.release(now=3.0, limit=10)] == ["payments/1@0"]
    # P1 ran dry again: a fresh wait starts now, so P0's record waits for it.
    assert held.plan(now=4.9, limit=10) == []
    assert [e.item for e in held.release(now=5.0, limit=10)] == ["payments/0@2"]


def test_an_empty_partition_still_being_fetched_holds_the_others_back_past_its_wait() -> None:
    """A partition known to hold unfetched records (a backlog) waits as long as its fetch takes: its wait
    starts over each time it is found still fetching, and is never announced as idle meanwhile."""
    held = merger(P0, P1, idle=1.0)
    held.add([timed(P0, 0, 10), timed(P0, 1, 20)], now=0.0)
    assert held.empty == frozenset({P1})

    for now in (0.9, 1.8, 2.7):  # a slow fetch: three polls, P1 still behind its high watermark each time
        held.still_fetching([P1], now)
        assert held.plan(now=now + 0.5, limit=10) == []
        assert held.newly_expired(now=now + 0.5) == []

    held.add([timed(P1, 0, 5)], now=3.0)  # the backlog arrives: its older record goes first
    assert [e.item for e in held.release(now=3.0, limit=10)] == ["payments/1@0"]
    held.still_fetching([P0], now=3.0)  # not empty: nothing to wait for
    assert held.next_deadline(now=3.0) == pytest.approx(4.0)  # P1 ran dry again, caught up: the usual wait


def test_with_no_wait_a_partition_still_being_fetched_holds_nothing_back() -> None:
    """max idle 0 means the order never waits, backlog or not."""
    held = merger(P0, P1, idle=0.0)
    held.add([timed(P0, 0, 10)], now=0.0)
    held.still_fetching([P1], now=0.0)
    assert [e.item for e in held.release(now=0.0, limit=10)] == ["payments/0@0"]


def test_with_no_wait_the_buffered_records_go_in_order_whatever_is_empty() -> None:
    """A max idle of 0 never waits: everything buffered goes, still sorted by event time."""
    held = merger(P0, P1, idle=0.0)
    held.add([timed(P0, 0, 30), timed(P0, 1, 40)], now=0.0)
    held.add([timed(P1, 0, 35)], now=0.0)
    assert [e.event_time for e in held.release(now=0.0, limit=10)] == [30, 35, 40]


def test_a_release_is_at_most_the_limit_and_the_rest_stays_buffered() -> None:
    """The micro-batch bound holds; what is not released stays, in order, for the next batch."""
    held = merger(P0, P1)
    held.add([timed(P0, i, 2 * i) for i in range(10)], now=0.0)
    held.add([timed(P1, i, 2 * i + 1) for i in range(10)], now=0.0)
    first = held.release(now=0.0, limit=7)
    second = held.release(now=0.0, limit=7)
    assert [e.event_time for e in first] == list(range(7))
    assert [e.event_time for e in second] == list(range(7, 14))
    assert held.buffered() == 6


def test_at_an_equal_time_the_lower_rank_goes_first() -> None:
    """A claim and a renewal at the same second: the claim history (rank 0) before the policy (rank 1),
    whatever their partitions, as the offline history counts a claim at the very same second."""
    held = merger(CLAIMS, POLICIES)
    held.add([timed(POLICIES, 0, 100, rank=1), timed(POLICIES, 1, 200, rank=1)], now=0.0)
    held.add([timed(CLAIMS, 0, 100, rank=0), timed(CLAIMS, 1, 300, rank=0)], now=0.0)
    assert [e.item for e in held.release(now=0.0, limit=10)] == ["claims/0@0", "policies/0@0", "policies/0@1"]


def test_records_without_an_event_time_go_as_soon_as_they_are_heads() -> None:
    """An undecodable record has no event time: it does not wait behind the others' (it changes no state)."""
    held = merger(P0, P1)
    held.add([timed(P0, 0, 50)], now=0.0)
    held.add([timed(P1, 0, UNKNOWN_TIME), timed(P1, 1, 60)], now=0.0)
    assert [e.item for e in held.release(now=0.0, limit=10)] == ["payments/1@0", "payments/0@0"]


def test_a_revoked_partition_is_forgotten_and_a_reset_position_replaces_what_was_buffered() -> None:
    """Dropping a partition forgets its buffer (its new owner reads it again) and it no longer holds the
    others back; records again from an earlier offset (the position reset to the committed offset after a
    rebalance gave the partition back) replace the buffered ones instead of repeating them."""
    held = merger(P0, P1)
    held.add([timed(P0, 0, 10), timed(P0, 1, 20), timed(P0, 2, 30)], now=0.0)
    held.add([timed(P0, 1, 20), timed(P0, 2, 30), timed(P0, 3, 40)], now=0.0)
    assert held.buffered(P0) == 4
    assert held.plan(now=0.0, limit=10) == []  # P1 is empty and within its wait
    held.drop([P1])
    assert [e.offset for e in held.release(now=0.0, limit=10)] == [0, 1, 2, 3]
    held.add([timed(P1, 0, 5)], now=0.0)  # not held any more: ignored
    assert held.buffered() == 0 and held.held == frozenset({P0})


def test_the_merge_equals_a_sort_by_time_of_every_record_when_nothing_is_empty() -> None:
    """Random skewed partitions, each in time order: releasing in batches until everything has gone (at the
    end, the wait of each partition run dry expiring in turn) gives exactly the records sorted by (time,
    partition, offset)."""
    rng = random.Random(7)
    partitions = [TopicPartition("t", p) for p in range(4)]
    held = merger(*partitions, idle=1.0)
    everything = []
    for partition in partitions:
        times = sorted(rng.uniform(0, 1000) for _ in range(rng.randrange(50, 200)))
        entries = [timed(partition, offset, t) for offset, t in enumerate(times)]
        everything.extend(entries)
        held.add(entries, now=0.0)
    released = []
    while batch := held.release(now=0.0, limit=37):
        released.extend(batch)
    now = 0.0
    while held.buffered():  # the end: each partition run dry is waited for once, then the others go on
        now += 1.0
        released.extend(held.release(now=now, limit=10_000))
    assert released == sorted(everything, key=lambda e: e.order())


def test_event_times_are_read_from_the_events_own_field() -> None:
    """RFC 3339 with an offset (or Z) is read; missing, naive, malformed or oversized times are unknown."""
    assert event_time_of({"timestamp": "2018-08-08T10:00:00+00:00"}, "timestamp") == 1533722400.0
    assert event_time_of({"timestamp": "2018-08-08T12:00:00+02:00"}, "timestamp") == 1533722400.0
    assert event_time_of({"timestamp": "2018-08-08T10:00:00Z"}, "timestamp") == 1533722400.0
    for data in (
        {},
        {"timestamp": "2018-08-08T10:00:00"},
        {"timestamp": "yesterday"},
        {"timestamp": 1533722400},
        {"timestamp": "2018-08-08T10:00:00+00:00" + " " * 100},
        "not an object",
    ):
        assert event_time_of(data, "timestamp") == UNKNOWN_TIME
    assert event_time_of({"timestamp": "2018-08-08T10:00:00Z"}, None) == UNKNOWN_TIME


def test_without_event_times_nothing_waits() -> None:
    """Topics with no time field: records go in buffer order as they come, and a partition run dry holds
    nothing back (no order is owed), so such a worker behaves as an unordered one."""
    held = merger(P0, P1)
    held.add([timed(P0, i, UNKNOWN_TIME) for i in range(3)], now=0.0)
    assert [e.offset for e in held.release(now=0.0, limit=10)] == [0, 1, 2]
    held.add([timed(P1, 0, UNKNOWN_TIME)], now=0.0)
    assert [e.item for e in held.release(now=0.0, limit=10)] == ["payments/1@0"]


def test_the_wait_is_a_setting_zero_allowed_negative_refused() -> None:
    """RISK_STREAM_MAX_IDLE_MS sets the wait (default 1 s); 0 means never wait; a negative value fails at
    start, naming the variable."""
    from shared.errors import ConfigurationError
    from shared.settings import Settings

    assert Settings.from_env({}).stream_max_idle_ms == 1000
    assert Settings.from_env({"RISK_STREAM_MAX_IDLE_MS": "0"}).stream_max_idle_ms == 0
    with pytest.raises(ConfigurationError, match="RISK_STREAM_MAX_IDLE_MS"):
        Settings.from_env({"RISK_STREAM_MAX_IDLE_MS": "-5"})


def test_trim_keeps_the_oldest_records_and_says_where_to_read_again() -> None:
    """A partition far ahead keeps only `limit` records, its oldest; the first offset let go is returned
    (the consumer seeks back there), and a buffer within the limit is left alone."""
    held = merger(P0, P1)
    held.add([timed(P0, 10 + i, i) for i in range(5)], now=0.0)
    assert held.trim(P0, 5) is None
    assert held.trim(P0, 3) == 13
    assert held.buffered(P0) == 3
    held.add([timed(P0, 13, 3)], now=0.0)  # read again from there: appended in order
    assert [e.offset for e in held.release(now=5.0, limit=10)] == [10, 11, 12, 13]
