"""Event-time order across the partitions a stream worker holds, the way Kafka Streams orders a task's inputs.

Each held partition keeps a buffer of its records in offset order. The next record to process is the head
with the smallest event time (ties: the topic's rank, then topic, partition and offset), but only while every
held partition has a head, since an empty one may next deliver something older than all of them. An empty
partition holds the others back for at most `max_idle_seconds` from when it was found empty (Kafka Streams'
`max.task.idle.ms`); after that they go on without it until it has records again, and the wait starts over
the next time it runs dry. As in Kafka Streams since KIP-695, that bound is for a partition that is caught
up: one known to hold records at the broker not fetched yet (`still_fetching`) holds the others back until
they arrive, however slow the fetch, so a backlog is replayed in order.

Release is planned over everything buffered at once (`plan`), so a micro-batch is as large as the order
allows, not one record per decision: records are sorted, never processed singly. Within a partition the
order is always the offset order, whatever the event times, so committing "after the last released record"
of each partition stays correct. The functions here are pure over the buffers and a clock value passed in.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from kafka import TopicPartition

T = TypeVar("T")

UNKNOWN_TIME = float("-inf")  # a record whose event time cannot be read goes out as soon as it is a head


@dataclass(frozen=True)
class Timed(Generic[T]):
    """One buffered record: where it sits, when its event happened (seconds since the epoch), its topic's
    rank (lower first at an equal time) and whatever the caller keeps with it."""

    partition: TopicPartition
    offset: int
    event_time: float
    rank: int
    item: T

    def order(self) -> tuple[float, int, str, int, int]:
        return (self.event_time, self.rank, self.partition.topic, self.partition.partition, self.offset)


def event_time_of(data: Any, field_name: str | None) -> float:
    """The event time of a CloudEvent's `data` read from its own field (an RFC 3339 string with an offset),
    or UNKNOWN_TIME when it is missing or unreadable (such an event is refused by its contract anyway)."""
    if field_name is None or not isinstance(data, Mapping):
        return UNKNOWN_TIME
    value = data.get(field_name)
    if not isinstance(value, str) or len(value) > 64:
        return UNKNOWN_TIME
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return UNKNOWN_TIME
    if moment.tzinfo is None or moment.utcoffset() is None:
        return UNKNOWN_TIME
    return moment.timestamp()


class EventTimeMerger(Generic[T]):
    """Buffers per held partition and their release in event-time order (see the module docstring)."""

    def __init__(self, max_idle_seconds: float) -> None:
        if max_idle_seconds < 0:
            raise ValueError(f"max_idle_seconds must be zero or more, not {max_idle_seconds}")
        self.max_idle_seconds = max_idle_seconds
        self._buffers: dict[TopicPartition, deque[Timed[T]]] = {}
        # When each empty partition stops holding the others back; absent for partitions with records.
        self._deadlines: dict[TopicPartition, float] = {}
        self._announced: set[TopicPartition] = set()

    # ------------------------------------------------------------------ what is held

    @property
    def held(self) -> frozenset[TopicPartition]:
        return frozenset(self._buffers)

    def hold(self, partitions: Iterable[TopicPartition], now: float) -> None:
        """Start holding `partitions` (newly assigned): each is empty, so its wait starts now."""
        for partition in partitions:
            if partition not in self._buffers:
                self._buffers[partition] = deque()
        self._observe(now)

    def drop(self, partitions: Iterable[TopicPartition]) -> None:
        """Forget `partitions` and what is buffered of them (revoked: their new owner reads them again)."""
        for partition in partitions:
            self._buffers.pop(partition, None)
            self._deadlines.pop(partition, None)
            self._announced.discard(partition)

    @property
    def empty(self) -> frozenset[TopicPartition]:
        """Held partitions with nothing buffered."""
        return frozenset(p for p, buffer in self._buffers.items() if not buffer)

    def still_fetching(self, partitions: Iterable[TopicPartition], now: float) -> None:
        """Empty `partitions` with records at the broker not fetched yet: their wait starts over now, so they
        keep holding the others back until those records arrive (`max_idle_seconds` 0 still never waits)."""
        for partition in partitions:
            if partition in self._buffers and not self._buffers[partition]:
                self._deadlines[partition] = now + self.max_idle_seconds
                self._announced.discard(partition)

    def buffered(self, partition: TopicPartition | None = None) -> int:
        if partition is not None:
            return len(self._buffers.get(partition, ()))
        return sum(len(buffer) for buffer in self._buffers.values())

    def trim(self, partition: TopicPartition, limit: int) -> int | None:
        """Keep at most `limit` records of `partition`, the oldest; the offset of the first one let go (for the
        consumer to read again from there), or None if nothing was. Memory stays bounded whatever the skew."""
        buffer = self._buffers.get(partition)
        if buffer is None or len(buffer) <= limit:
            return None
        first_dropped = buffer[limit].offset
        while len(buffer) > limit:
            buffer.pop()
        return first_dropped

    # ------------------------------------------------------------------ in and out

    def add(self, entries: Iterable[Timed[T]], now: float) -> None:
        """Append records (each partition's in offset order) to held partitions; others are ignored. A record
        at or before an offset already buffered means the consumer's position was reset (a rebalance gave
        the partition back): the buffered records from that offset on are replaced by what follows."""
        for entry in entries:
            buffer = self._buffers.get(entry.partition)
            if buffer is None:
                continue
            while buffer and buffer[-1].offset >= entry.offset:
                buffer.pop()
            buffer.append(entry)
        self._observe(now)

    def plan(self, now: float, limit: int) -> list[Timed[T]]:
        """Up to `limit` records that may go now, in event-time order, without taking them. A record with a
        known event time may not go while a held partition is empty and still within its wait (so the plan
        also ends after the last buffered record of a partition, which is then empty); a record without one
        (undecodable, or from a topic with no time field) goes as soon as it is a head, since no order is
        owed to it."""
        blocked = any(self._blocks(p, now) for p, buffer in self._buffers.items() if not buffer)
        heads = [(buffer[0].order(), p, 0) for p, buffer in self._buffers.items() if buffer]
        heapq.heapify(heads)
        planned: list[Timed[T]] = []
        while heads and len(planned) < limit:
            order, partition, position = heads[0]
            if blocked and order[0] != UNKNOWN_TIME:
                break
            heapq.heappop(heads)
            buffer = self._buffers[partition]
            planned.append(buffer[position])
            if position + 1 < len(buffer):
                heapq.heappush(heads, (buffer[position + 1].order(), partition, position + 1))
            elif self.max_idle_seconds > 0:
                blocked = True  # that partition is empty from here on: what it sends next may be older
        return planned

    def release(self, now: float, limit: int) -> list[Timed[T]]:
        """`plan`, then take those records out of their buffers."""
        planned = self.plan(now, limit)
        for entry in planned:
            self._buffers[entry.partition].popleft()
        self._observe(now)
        return planned

    # ------------------------------------------------------------------ waiting

    def next_deadline(self, now: float) -> float | None:
        """The earliest moment an empty partition still being waited for stops holding the others back."""
        pending = [deadline for deadline in self._deadlines.values() if deadline > now]
        return min(pending) if pending else None

    def newly_expired(self, now: float) -> list[TopicPartition]:
        """Empty partitions whose wait ran out since last asked (the others now go on without them)."""
        expired = [p for p, deadline in self._deadlines.items() if deadline <= now and p not in self._announced]
        self._announced.update(expired)
        return sorted(expired)

    def _blocks(self, partition: TopicPartition, now: float) -> bool:
        deadline = self._deadlines.get(partition)
        return deadline is None or deadline > now

    def _observe(self, now: float) -> None:
        for partition, buffer in self._buffers.items():
            if buffer:
                self._deadlines.pop(partition, None)
                self._announced.discard(partition)
            elif partition not in self._deadlines:
                self._deadlines[partition] = now + self.max_idle_seconds
