"""The consumer loop shared by every stream worker: event-time order, micro-batches, dead letters,
at-least-once commits.

Polled records are decoded as CloudEvents of their topic's type and buffered per partition; a micro-batch
is released from the buffers in event-time order across every partition held, each event's time read from
its own field (`time_fields`), with a bounded wait for a partition that has nothing buffered
(`shared.events.ordering`, as Kafka Streams orders a task's inputs). For each micro-batch: hand the valid
records to the service's handler in one call, in that order (the undecodable become dead letters); send
what the handler returns (outputs, or dead letters for the records it refuses); wait until the broker has
acknowledged every one of those sends; only then commit the offsets after the batch's last record of each
partition (a partition's records always go in offset order, so this never skips one still buffered). A
crash anywhere before the commit means the batch is consumed again, so consumers of the outputs must
tolerate duplicates (decisions carry the input event id for that).

The policy for failures, in one place:
- a record that cannot be decoded (not UTF-8, not JSON, not an object, nested too deeply, not a
  CloudEvent), or carries the wrong event type, or that the handler refuses: dead letter (original key
  and bytes, the reason in headers), carry on;
- a dead letter larger than the producer may send (a 2 MiB input): its first DEAD_LETTER_EXCERPT_BYTES
  instead, with every header and `truncated: true`, carry on; an output that large: a dead letter;
- the handler raising on a batch: retry record by record; a record that still raises: dead letter
  with code "internal_error", carry on: one poisonous record never stops the worker;
- an outage (`outage_retrying`): the handler raising NotReadyError (the state store or the decision store
  is down: the records are fine, and dead-lettering them would lose them) or the broker not acknowledging
  the batch's sends: the same batch again, with back-off, polling meanwhile (so the group keeps the worker)
  and reporting not ready, until it goes through or `outage_seconds` have passed; then raise without
  committing (the batch is consumed again). A producer whose state the broker no longer knows (a broker
  restarted empty answers UnknownProducerId) is replaced by a new one before the next attempt;
- a send no broker can take (a record over max_request_size, a topic it may not write): raise at once;
- a broker that comes back empty (its cluster id changed, as an embedded broker's does on each start): the
  worker recreates its topics, lets go of what it had buffered, reads every partition from its beginning
  and does not commit the batch in hand, whose offsets meant the old log; its outputs still go out;
- a commit refused because the group rebalanced meanwhile: the partitions' new owner consumes the batch
  again (at least once); carry on.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType
from typing import Any, TypeVar

import tenacity
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import (
    AuthorizationError,
    CommitFailedError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
)
from kafka.structs import OffsetAndMetadata

from shared.errors import InvalidInputError, NotReadyError
from shared.events.broker import ensure_topics
from shared.events.envelope import decode, encode, rfc3339
from shared.events.ordering import UNKNOWN_TIME, EventTimeMerger, Timed, event_time_of
from shared.events.producer import PRODUCER_DEFAULTS, make_producer
from shared.events.topics import Topic
from shared.logging import get_logger
from shared.metrics import STREAM_BATCH_SECONDS, STREAM_DEAD_LETTERS, STREAM_PRODUCED, STREAM_RECORDS

# A group join takes ~23 s with kafka-python's defaults against Tansu and ~3 s with these (DESIGN.md).
# Production may raise max_poll_interval_ms through consumer_overrides: a batch that takes longer than it
# (handler + delivery) gets the member evicted, its commit refused and the batch consumed again.
FAST_GROUP_SETTINGS: dict[str, Any] = {
    "session_timeout_ms": 6000,
    "heartbeat_interval_ms": 1000,
    "max_poll_interval_ms": 10000,
}
# Waits between attempts on a batch during an outage: exponential from the first, with jitter, up to the last.
OUTAGE_WAIT_INITIAL_SECONDS = 0.2
OUTAGE_WAIT_MAX_SECONDS = 5.0
OUTAGE_WAIT_JITTER_SECONDS = 0.2
DEFAULT_OUTAGE_SECONDS = 300.0  # RISK_STREAM_OUTAGE_SECONDS's default
# Failures no new attempt can mend: the record is too large for any producer, or the worker may not write there.
UNSENDABLE = (MessageSizeTooLargeError, RecordListTooLargeError, AuthorizationError)
FLUSH_TIMEOUT_SECONDS = 35.0  # above the producer's delivery_timeout_ms: by then every send has an outcome
COMMIT_TIMEOUT_MS = 10_000
CLOSE_TIMEOUT_SECONDS = 5.0
DEFAULT_MAX_IDLE_MS = 1000  # how long an empty partition holds the others back (Kafka Streams' max.task.idle.ms)

# Dead letters must always be sendable, or one poison record would stop its partition for good.
DEAD_LETTER_EXCERPT_BYTES = 64 * 1024  # what is kept of a value too large to send whole
KEY_EXCERPT_BYTES = 1024  # likewise of a key (keys are entity ids: short, unless the record is poison)
MAX_HEADER_BYTES = 8 * 1024  # each header but `error`, which is bounded field by field
MAX_ERROR_FIELDS = 10  # in a bounded `error` header: fields named, messages per field, characters per text
MAX_ERROR_MESSAGES = 3
MAX_ERROR_TEXT = 200
RECORD_OVERHEAD_BYTES = 1024  # above kafka-python's own estimate of a record's framing
TRUNCATED_HEADER = "truncated"

UNDECODABLE = "undecodable"
WRONG_EVENT_TYPE = "wrong_event_type"
INTERNAL_ERROR = "internal_error"


def _log() -> Any:
    """Looked up at each use: `get_logger` binds the configuration current at call time, so a module-level
    logger would keep structlog's defaults (no JSON, no masking) if imported before configure_logging."""
    return get_logger("stream")


@dataclass(frozen=True)
class Inbound:
    """One decoded record, as the handler sees it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    event: dict[str, Any]  # the decoded CloudEvent


@dataclass(frozen=True)
class Produce:
    """One record the handler wants sent; the worker encodes `event` and sends it keyed by `key`."""

    topic: str
    key: str
    event: dict[str, Any]  # a CloudEvent dict (envelope.make_event)


@dataclass(frozen=True)
class Reject:
    """The handler refuses the inbound record: it goes to the input's dead-letter topic with this reason."""

    code: str
    message: str
    fields: dict[str, Any] = field(default_factory=dict)


_R = TypeVar("_R")
Handler = Callable[[list[Inbound]], list[list[Produce] | Reject]]  # one result per inbound, same order
# For inputs carrying personal data: (key, value) -> (key, value, headers) safe to keep in a dead-letter topic.
DeadLetterRedactor = Callable[[bytes | None, bytes | None], tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]]


class DeliveryFailedError(KafkaError):
    """Records of a batch were not acknowledged by the broker, so the batch was not committed."""


class TransientDeliveryError(DeliveryFailedError):
    """Every failure was transient (timeouts, leadership moves): worth another attempt."""

    retriable = True


class HandlerContractError(TypeError):
    """The handler returned something other than one `list[Produce] | Reject` per inbound record."""


class _StoppedDuringOutageError(Exception):
    """stop() was asked while the worker waited out an outage: the batch in hand is left uncommitted."""


def outage_retrying(
    outage_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
    before_sleep: Callable[[tenacity.RetryCallState], None] | None = None,
) -> tenacity.Retrying:
    """The one retry policy for a micro-batch during an outage: NotReadyError (a store down) and
    DeliveryFailedError (sends not acknowledged) are tried again after waits growing from
    OUTAGE_WAIT_INITIAL_SECONDS to OUTAGE_WAIT_MAX_SECONDS (jittered), until `outage_seconds` have passed since
    the first attempt; then the last error is raised. Anything else is raised at once: a bug, or a send no
    broker can take (UNSENDABLE). `sleep` is how a wait is spent (the worker polls meanwhile)."""
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(worth_waiting_out),
        wait=tenacity.wait_exponential_jitter(
            multiplier=OUTAGE_WAIT_INITIAL_SECONDS, max=OUTAGE_WAIT_MAX_SECONDS, jitter=OUTAGE_WAIT_JITTER_SECONDS
        ),
        stop=tenacity.stop_after_delay(outage_seconds),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )


def worth_waiting_out(error: BaseException) -> bool:
    """Whether `error` is an outage (something down that may come back), not a fault of the batch."""
    if isinstance(error, NotReadyError):
        return True
    return isinstance(error, DeliveryFailedError) and not isinstance(error.__cause__, UNSENDABLE)


_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")


def _described(error: BaseException) -> str:
    """An error for a log line: its type and message, a URL's password masked, bounded."""
    return _URL_PASSWORD.sub(r"\1***@", f"{type(error).__name__}: {error}")[:300]


@dataclass(frozen=True)
class _Outgoing:
    """One record to send, with where it came from so metrics and logs follow only acknowledged sends."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    source: ConsumerRecord
    dead_letter_code: str | None = None


@dataclass(frozen=True)
class _Polled:
    """A polled record with what decoding it gave: the handler's input, or the reason it is refused."""

    record: ConsumerRecord
    decoded: Inbound | Reject


class _Revocations(ConsumerRebalanceListener):
    """Partitions taken away in a rebalance, noted for the loop to forget their buffered records. The client
    may call this from its own I/O thread, so it only appends under a lock; the loop drains it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._revoked: set[TopicPartition] = set()

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        with self._lock:
            self._revoked.update(revoked)

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        return None

    def on_partitions_lost(self, lost: Iterable[TopicPartition]) -> None:
        self.on_partitions_revoked(lost)

    def drain(self) -> set[TopicPartition]:
        with self._lock:
            revoked, self._revoked = self._revoked, set()
        return revoked


@dataclass
class _Send:
    item: _Outgoing
    future: Any = None  # kafka.producer.future.FutureRecordMetadata once handed to the producer


class StreamWorker:
    """Consumes `inputs` in a consumer group and runs `handler` on micro-batches (see the module docstring).

    `time_fields` names, per input topic, the field of an event's `data` that holds when it happened (a topic
    without one has no event time: its records go as soon as they are heads); at an equal event time, the
    topics of `precedence` go first, in that order (e.g. a claim history before the policies it informs).
    `max_idle_ms` bounds how long a held partition with nothing buffered holds the others back (0: never).
    Kafka clients are created in `run`, not here, so a worker can be built before a fork and run after it.
    """

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        group_id: str,
        inputs: Sequence[Topic],
        handler: Handler,
        batch_size: int = 500,
        poll_timeout_ms: int = 500,
        consumer_overrides: dict[str, Any] | None = None,
        producer_overrides: dict[str, Any] | None = None,
        client_id: str | None = None,
        dead_letter_redactor: DeadLetterRedactor | None = None,
        time_fields: Mapping[str, str] | None = None,
        precedence: Sequence[str] = (),
        max_idle_ms: int = DEFAULT_MAX_IDLE_MS,
        outputs: Sequence[Topic] = (),
        outage_seconds: float = DEFAULT_OUTAGE_SECONDS,
    ) -> None:
        if not inputs:
            raise ValueError("a stream worker needs at least one input topic")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, not {batch_size}")
        if max_idle_ms < 0:
            raise ValueError(f"max_idle_ms must be zero or more, not {max_idle_ms}")
        if outage_seconds <= 0:
            raise ValueError(f"outage_seconds must be positive, not {outage_seconds}")
        self.bootstrap_servers = bootstrap_servers
        self.group_id = group_id
        self.inputs: dict[str, Topic] = {topic.name: topic for topic in inputs}
        self.batch_size = batch_size
        self.poll_timeout_ms = poll_timeout_ms
        self._handler = handler
        self._redact = dead_letter_redactor
        self.time_fields: dict[str, str] = dict(time_fields or {})
        self._ranks = {name: rank for rank, name in enumerate(precedence)}
        self.max_idle_ms = max_idle_ms
        self.outage_seconds = outage_seconds
        # What the worker needs on a broker: recreated when one comes back empty.
        self._topics = [*inputs, *(topic.dead_letter for topic in inputs), *outputs]
        # Records buffered per partition; beyond it, the rest is read again later (see _bound_buffers).
        self.buffer_limit = 2 * batch_size
        self._consumer_options: dict[str, Any] = {
            "bootstrap_servers": bootstrap_servers,
            "group_id": group_id,
            "client_id": client_id or group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "max_poll_records": batch_size,
            # A topic missing from a broker that came back empty is recreated by the worker with its own
            # partition count, never by a metadata request with the broker's default.
            "allow_auto_create_topics": False,
            **FAST_GROUP_SETTINGS,
            **(consumer_overrides or {}),
        }
        self._producer_options: dict[str, Any] = {"client_id": client_id or group_id, **(producer_overrides or {})}
        self._max_record_bytes = int(
            {**KafkaProducer.DEFAULT_CONFIG, **PRODUCER_DEFAULTS, **self._producer_options}["max_request_size"]
        )
        # A plain attribute, not a threading.Event: assigning it is atomic, so stop() is safe from any thread
        # and from a signal handler (Event.set takes a lock the interrupted main thread might be holding).
        self._stop_requested = False
        self.last_poll_at: float | None = None  # time.monotonic() of the latest poll answered: liveness
        # Readiness, written by the loop and read by the health thread (plain attributes: atomic to assign).
        self.waiting_for: str | None = None  # the outage being waited out, while one is
        self.broker_reachable = False  # the group's coordinator known at the latest poll
        self._producer: KafkaProducer | None = None
        self._cluster_id: str | None = None
        self._cluster_epoch = 0  # one more each time the broker is found replaced

    @property
    def ready(self) -> bool:
        """Whether the worker is deciding records: in its group on a reachable broker, no outage waited out."""
        return self.broker_reachable and self.waiting_for is None

    # ------------------------------------------------------------------ control

    def stop(self) -> None:
        """Ask the loop to finish the batch in hand, commit it and return. Thread-safe and signal-safe:
        it only sets a flag (no locks, no logging), which the loop checks between polls."""
        self._stop_requested = True

    def run_until_stopped_by_signals(self) -> None:
        """`run()`, with SIGTERM and SIGINT calling `stop()`; the previous handlers are restored after.
        Call from the main thread (Python only installs signal handlers there)."""

        def on_signal(signum: int, frame: FrameType | None) -> None:
            self.stop()

        previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.run()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def run(self) -> None:
        """Consume until `stop()`; raises (without committing the batch in hand) when delivery fails. What is
        buffered but not yet released is not committed, so it is consumed again after a restart."""
        consumer = KafkaConsumer(**self._consumer_options)
        revocations = _Revocations()
        consumer.subscribe(topics=sorted(self.inputs), listener=revocations)
        merger: EventTimeMerger[_Polled] = EventTimeMerger(self.max_idle_ms / 1000.0)
        try:
            self._producer = make_producer(self.bootstrap_servers, **self._producer_options)
            try:
                _log().info(
                    "stream_worker_started",
                    group_id=self.group_id,
                    topics=sorted(self.inputs),
                    max_idle_ms=self.max_idle_ms,
                )
                while not self._stop_requested:
                    self._fill(consumer, merger, revocations)
                    released = merger.release(time.monotonic(), self.batch_size)
                    self._announce_idle(merger)
                    if released:
                        self._process([entry.item for entry in released], consumer, merger, revocations)
                _log().info("stream_worker_stopping", group_id=self.group_id)
            except _StoppedDuringOutageError:
                _log().warning(
                    "stream_worker_stopped_during_outage", group_id=self.group_id, waiting_for=self.waiting_for
                )
            finally:
                self._producer.close(timeout=CLOSE_TIMEOUT_SECONDS)
                self._producer = None
        finally:
            consumer.close(autocommit=False, timeout_ms=int(CLOSE_TIMEOUT_SECONDS * 1000))
            _log().info("stream_worker_stopped", group_id=self.group_id)

    # ------------------------------------------------------------------ one micro-batch

    def _fill(self, consumer: KafkaConsumer, merger: EventTimeMerger[_Polled], revocations: _Revocations) -> None:
        """Poll into the buffers until a full micro-batch may go, or the broker has nothing more at hand. When
        nothing may go yet, the first poll waits (up to poll_timeout_ms, or until an empty partition's wait
        runs out); later ones only take what has already arrived."""
        now = time.monotonic()
        if merger.plan(now, 1):
            timeout_ms = 0
        else:
            deadline = merger.next_deadline(now)
            waited = self.poll_timeout_ms if deadline is None else (deadline - now) * 1000.0 + 1.0
            timeout_ms = max(0, min(self.poll_timeout_ms, int(waited)))
        while self._poll_into(consumer, merger, revocations, timeout_ms) and not self._stop_requested:
            if len(merger.plan(time.monotonic(), self.batch_size)) >= self.batch_size:
                return
            timeout_ms = 0

    def _poll_into(
        self, consumer: KafkaConsumer, merger: EventTimeMerger[_Polled], revocations: _Revocations, timeout_ms: int
    ) -> int:
        """One poll, its records decoded and buffered; how many came. Partitions revoked meanwhile are
        forgotten first (their buffered records belong to the new owner now), newly assigned ones held."""
        polled = consumer.poll(timeout_ms=timeout_ms, max_records=self.batch_size)
        now = self.last_poll_at = time.monotonic()
        self.broker_reachable = not _coordinator_unknown(consumer)
        if self._broker_replaced(consumer):
            self._start_over_on_new_broker(consumer, merger)
            return 0  # whatever this poll brought may be the new log read at the old positions
        assigned = set(consumer.assignment())
        merger.drop(revocations.drain() | (merger.held - assigned))
        merger.hold(assigned - merger.held, now)
        records = [record for partition_records in polled.values() for record in partition_records]
        for topic, count in Counter(record.topic for record in records).items():
            STREAM_RECORDS.labels(topic).inc(count)
        merger.add((self._timed(record) for record in records), now)
        self._bound_buffers(consumer, merger)
        merger.still_fetching(_lagging(consumer, merger.empty), now)
        return len(records)

    def _timed(self, record: ConsumerRecord) -> Timed[_Polled]:
        decoded = self._inbound(record)
        event_time = (
            event_time_of(decoded.event.get("data"), self.time_fields.get(record.topic))
            if isinstance(decoded, Inbound)
            else UNKNOWN_TIME
        )
        return Timed(
            TopicPartition(record.topic, record.partition),
            record.offset,
            event_time,
            self._ranks.get(record.topic, len(self._ranks)),
            _Polled(record, decoded),
        )

    def _bound_buffers(self, consumer: KafkaConsumer, merger: EventTimeMerger[_Polled]) -> None:
        """A partition far ahead in event time waits on the others: keep buffer_limit of its records and seek
        back to the first one let go, so it is fetched again once there is room. (Not pause/resume:
        kafka-python 3.0.12 can keep a resumed partition's parked fetch forever, and the partition then
        never fetches again.)"""
        for partition in merger.held:
            first_dropped = merger.trim(partition, self.buffer_limit)
            if first_dropped is not None:
                consumer.seek(partition, first_dropped)

    def _announce_idle(self, merger: EventTimeMerger[_Polled]) -> None:
        for partition in merger.newly_expired(time.monotonic()):
            _log().info(
                "stream_partition_idle",
                group_id=self.group_id,
                partition=f"{partition.topic}/{partition.partition}",
                waited_ms=self.max_idle_ms,
            )

    # ------------------------------------------------------------------ outages and a replaced broker

    def _ride_out(
        self,
        action: Callable[[], _R],
        consumer: KafkaConsumer,
        merger: EventTimeMerger[_Polled],
        revocations: _Revocations,
    ) -> _R:
        """`action` under `outage_retrying`, polling during each wait, not ready until it goes through."""

        def wait_polling(seconds: float) -> None:
            deadline = time.monotonic() + seconds
            while (remaining := deadline - time.monotonic()) > 0:
                if self._stop_requested:
                    raise _StoppedDuringOutageError
                self._poll_into(consumer, merger, revocations, max(1, min(self.poll_timeout_ms, int(remaining * 1000))))

        def note_wait(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            self.waiting_for = "state" if isinstance(error, NotReadyError) else "broker"
            _log().warning(
                "stream_waiting_out_outage",
                group_id=self.group_id,
                waiting_for=self.waiting_for,
                attempt=state.attempt_number,
                next_attempt_in_s=round(state.upcoming_sleep, 2),
                waited_s=round(state.seconds_since_start or 0.0, 2),
                error=_described(error) if error is not None else None,
            )

        try:
            result = outage_retrying(self.outage_seconds, wait_polling, note_wait)(action)
        finally:
            waited, self.waiting_for = self.waiting_for, None
        if waited is not None:
            _log().info("stream_outage_over", group_id=self.group_id, waited_for=waited)
        return result

    def _broker_replaced(self, consumer: KafkaConsumer) -> bool:
        """True once when the broker's cluster id differs from the one seen before (an embedded broker
        restarted empty); Apache Kafka keeps its id across restarts, and its topics and offsets with it."""
        seen = _cluster_id(consumer)
        if seen is None or seen == self._cluster_id:
            return False
        previous, self._cluster_id = self._cluster_id, seen
        return previous is not None

    def _start_over_on_new_broker(self, consumer: KafkaConsumer, merger: EventTimeMerger[_Polled]) -> None:
        """The old log is gone: recreate the topics, forget what was buffered from it, read from the start."""
        self._cluster_epoch += 1
        _log().warning("stream_broker_replaced", group_id=self.group_id, buffered_records_dropped=merger.buffered())
        merger.drop(merger.held)
        try:
            ensure_topics(self.bootstrap_servers, self._topics)
        except KafkaError as error:  # it answered a moment ago; the next outage wait tries again
            _log().warning("stream_topics_not_recreated", group_id=self.group_id, error=_described(error))
        assigned = consumer.assignment()
        if assigned:
            consumer.seek_to_beginning(*assigned)
        self._renew_producer()

    def _renew_producer(self) -> None:
        """A new producer (a new producer id, sequence numbers from zero) in place of one the broker no
        longer knows; what the old one still had unacknowledged is sent again by the next attempt."""
        old, self._producer = self._producer, make_producer(self.bootstrap_servers, **self._producer_options)
        if old is not None:
            old.close(timeout=0)

    def _deliver_renewing(self, sends: list[_Send]) -> None:
        """One round of sends; when it fails for a reason a new producer may mend, renew the producer."""
        assert self._producer is not None
        try:
            _send_round(self._producer, sends)
        except DeliveryFailedError as error:
            if not isinstance(error, TransientDeliveryError) and worth_waiting_out(error):
                self._renew_producer()
                for send in sends:
                    if send.future is not None and not send.future.succeeded():
                        send.future = None  # the old producer's: sent again by the new one
            raise

    # ------------------------------------------------------------------ one micro-batch, continued

    def _process(
        self,
        polled: list[_Polled],
        consumer: KafkaConsumer,
        merger: EventTimeMerger[_Polled],
        revocations: _Revocations,
    ) -> None:
        started = time.perf_counter()
        epoch = self._cluster_epoch
        records = [entry.record for entry in polled]
        outcomes = self._ride_out(lambda: self._outcomes(polled), consumer, merger, revocations)
        outgoing = [
            item
            for entry, outcome in zip(polled, outcomes, strict=True)
            for item in self._to_outgoing(entry.record, outcome)
        ]
        sends = [_Send(item) for item in outgoing]
        self._ride_out(lambda: self._deliver_renewing(sends), consumer, merger, revocations)
        _account_for(outgoing)
        if epoch == self._cluster_epoch:
            committed = self._commit(consumer, records)
        else:  # the offsets are the old broker's log's; the new one starts from its beginning
            committed = False
            _log().warning("stream_batch_not_committed_on_new_broker", group_id=self.group_id, records=len(records))
        elapsed = time.perf_counter() - started
        STREAM_BATCH_SECONDS.observe(elapsed)
        dead_letters = sum(1 for item in outgoing if item.dead_letter_code)
        _log().info(
            "stream_batch",
            group_id=self.group_id,
            records=len(records),
            produced=len(outgoing) - dead_letters,
            dead_letters=dead_letters,
            committed=committed,
            partitions=sorted({f"{record.topic}/{record.partition}" for record in records}),
            latency_ms=round(elapsed * 1000, 2),
        )

    def _outcomes(self, polled: list[_Polled]) -> list[list[Produce] | Reject]:
        """One outcome per record: a Reject for those that fail the envelope, the handler's result for the
        rest, which reach the handler together and in the order released (event time)."""
        outcomes: list[list[Produce] | Reject] = []
        valid: list[Inbound] = []
        positions: list[int] = []
        for position, entry in enumerate(polled):
            inbound = entry.decoded
            outcomes.append(inbound if isinstance(inbound, Reject) else [])
            if isinstance(inbound, Inbound):
                valid.append(inbound)
                positions.append(position)
        if valid:
            for position, result in zip(positions, self._call_handler(valid), strict=True):
                outcomes[position] = result
        return outcomes

    def _inbound(self, record: ConsumerRecord) -> Inbound | Reject:
        try:
            event = decode(record.value)
        except InvalidInputError as error:
            return Reject(UNDECODABLE, str(error), error.fields)
        expected = self.inputs[record.topic].event_type
        if event["type"] != expected:
            return Reject(
                WRONG_EVENT_TYPE,
                f"{record.topic} carries {expected!r}, not {event['type']!r}",
                {"type": [f"must be {expected!r}"]},
            )
        return Inbound(record.topic, record.partition, record.offset, record.key, event)

    def _call_handler(self, batch: list[Inbound]) -> list[list[Produce] | Reject]:
        """The handler's results; when it raises on a batch, each record alone, so only the records that
        still fail become dead letters."""
        try:
            return _checked(self._handler(batch), len(batch))
        except NotReadyError:
            # A dependency is down (state store, model), not the record: dead-lettering would lose good
            # events. Raise without committing; the restarted worker consumes the batch again.
            raise
        except Exception as error:
            if len(batch) > 1:
                _log().warning("stream_handler_failed_on_batch", records=len(batch), error=type(error).__name__)
                return [self._call_handler([inbound])[0] for inbound in batch]
            inbound = batch[0]
            _log().exception(
                "stream_handler_failed", topic=inbound.topic, partition=inbound.partition, offset=inbound.offset
            )
            return [Reject(INTERNAL_ERROR, f"the handler raised {type(error).__name__} on this record")]

    def _to_outgoing(self, record: ConsumerRecord, outcome: list[Produce] | Reject) -> list[_Outgoing]:
        if isinstance(outcome, Reject):
            return [self._dead_letter(record, outcome)]
        try:
            outgoing = [_Outgoing(item.topic, item.key.encode(), encode(item.event), [], record) for item in outcome]
        except (TypeError, ValueError) as error:  # not JSON-serialisable, NaN, lone surrogates
            _log().exception(
                "stream_output_not_encodable", topic=record.topic, partition=record.partition, offset=record.offset
            )
            reject = Reject(INTERNAL_ERROR, f"the handler's output could not be encoded ({type(error).__name__})")
            return [self._dead_letter(record, reject)]
        if any(_record_bytes(item.key, item.value, item.headers) > self._max_record_bytes for item in outgoing):
            _log().error(
                "stream_output_too_large", topic=record.topic, partition=record.partition, offset=record.offset
            )
            reject = Reject(INTERNAL_ERROR, f"the handler's output is larger than {self._max_record_bytes} bytes")
            return [self._dead_letter(record, reject)]
        return outgoing

    def _dead_letter(self, record: ConsumerRecord, reject: Reject) -> _Outgoing:
        """The original key and bytes, unchanged, to `<input>.dlq`; the reason and the origin in headers.
        With a redactor (inputs carrying personal data), its redacted copy instead: the original stays only
        on the input topic, findable by the source headers. Too large to send whole: an excerpt (`_sendable`)."""
        headers = [
            ("error", _error_header(reject)),
            ("source_topic", record.topic.encode()),
            ("source_partition", str(record.partition).encode()),
            ("source_offset", str(record.offset).encode()),
            ("failed_at", rfc3339(datetime.now(UTC)).encode()),
        ]
        key, value = record.key, record.value
        if self._redact is not None:
            key, value, redaction_headers = _redacted(self._redact, record)
            headers.extend(redaction_headers)
        # kafka-python cannot send a record with neither key nor value; an empty value is the closest copy.
        value = b"" if value is None and key is None else value
        key, value, headers = _sendable(self._max_record_bytes, key, value, headers)
        return _Outgoing(self.inputs[record.topic].dead_letter.name, key, value, headers, record, reject.code)

    def _commit(self, consumer: KafkaConsumer, records: list[ConsumerRecord]) -> bool:
        """Commit the offset after the last record of each partition in the batch; False when the group
        rebalanced meanwhile (the new owner consumes these records again)."""
        assigned = consumer.assignment()
        # Partitions taken away while an outage was waited out are the new owner's to commit.
        offsets = {partition: at for partition, at in _next_offsets(records).items() if partition in assigned}
        if not offsets:
            return False
        try:
            consumer.commit(offsets, timeout_ms=COMMIT_TIMEOUT_MS)
        except CommitFailedError:
            _log().warning("stream_commit_refused_after_rebalance", group_id=self.group_id)
            return False
        return True


def _redacted(
    redact: DeadLetterRedactor, record: ConsumerRecord
) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """The redactor's copy; if it fails on a poison record, nothing of the record (it may hold personal
    data), so the dead letter is still sent and the partition moves on."""
    try:
        return redact(record.key, record.value)
    except Exception:
        _log().exception(
            "dead_letter_redaction_failed", topic=record.topic, partition=record.partition, offset=record.offset
        )
        return None, None, [("payload", b"withheld: the redaction failed on this record")]


def _lagging(consumer: KafkaConsumer, partitions: Iterable[TopicPartition]) -> list[TopicPartition]:
    """Of `partitions`, those whose records at the broker this consumer has not all handed out yet: its
    position is behind the high watermark of the last fetch, or neither is known yet (not fetched once)."""
    lagging = []
    for partition in partitions:
        highwater = consumer.highwater(partition)
        position = consumer.position(partition, timeout_ms=0) if highwater is not None else None
        if position is None or position < highwater:
            lagging.append(partition)
    return lagging


def _error_header(reject: Reject) -> bytes:
    """The reason as JSON {code, message, fields}. A poison record can make it huge (a 2 MiB event type is
    quoted in the message, each of 100,000 unknown fields gets an entry): then the first MAX_ERROR_FIELDS
    fields, each text clipped, with `fields_omitted` and `truncated: true`."""
    full = json.dumps({"code": reject.code, "message": reject.message, "fields": reject.fields}, default=str)
    if len(full) <= MAX_HEADER_BYTES:
        return full.encode()
    shown = list(reject.fields.items())[:MAX_ERROR_FIELDS]
    bounded = {
        "code": reject.code,
        "message": _clip(reject.message),
        "fields": {_clip(str(name)): _clipped_messages(messages) for name, messages in shown},
        "fields_omitted": len(reject.fields) - len(shown),
        TRUNCATED_HEADER: True,
    }
    return json.dumps(bounded, default=str).encode()


def _clipped_messages(messages: Any) -> list[str]:
    listed = messages if isinstance(messages, list) else [messages]
    return [_clip(str(message)) for message in listed[:MAX_ERROR_MESSAGES]]


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR_TEXT else f"{text[:MAX_ERROR_TEXT]}... ({len(text)} characters)"


def _sendable(
    limit: int, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]
) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """The dead letter as it is if the producer can send it (`limit`: its max_request_size). Otherwise the
    same headers (each but `error` clipped to MAX_HEADER_BYTES), `truncated: true`, the original sizes, and
    the first DEAD_LETTER_EXCERPT_BYTES of the value (and KEY_EXCERPT_BYTES of the key), or less if that is
    all the room left: the original stays on the input topic, found by the source headers."""
    headers = [(name, data if name == "error" else data[:MAX_HEADER_BYTES]) for name, data in headers]
    if _record_bytes(key, value, headers) <= limit:
        return key, value, headers
    headers = [
        *headers,
        (TRUNCATED_HEADER, b"true"),
        ("original_key_bytes", str(len(key or b"")).encode()),
        ("original_value_bytes", str(len(value or b"")).encode()),
    ]
    room = max(0, limit - _record_bytes(None, None, headers))
    if key is not None:
        key = key[: min(KEY_EXCERPT_BYTES, room)]
        room -= len(key)
    if value is not None:
        value = value[: min(DEAD_LETTER_EXCERPT_BYTES, room)]
    return key, value, headers


def _record_bytes(key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> int:
    """An upper estimate of a record's size as the producer counts it against max_request_size."""
    header_bytes = sum(len(name.encode()) + len(data) for name, data in headers)
    return len(key or b"") + len(value or b"") + header_bytes + RECORD_OVERHEAD_BYTES


def _checked(results: Any, expected: int) -> list[list[Produce] | Reject]:
    if not isinstance(results, list) or len(results) != expected:
        raise HandlerContractError(f"the handler must return a list of {expected} results")
    for result in results:
        if isinstance(result, Reject):
            continue
        if not isinstance(result, list) or not all(
            isinstance(item, Produce) and isinstance(item.key, str) and isinstance(item.event, dict) for item in result
        ):
            raise HandlerContractError("each result must be a list of Produce (with a str key) or a Reject")
    return results


def _send_round(producer: KafkaProducer, sends: list[_Send]) -> None:
    failures: list[BaseException] = []
    for send in sends:
        if send.future is not None and not send.future.failed():
            continue  # acknowledged, or still in flight after a flush timeout: sending again would duplicate it
        try:
            send.future = producer.send(
                send.item.topic, key=send.item.key, value=send.item.value, headers=send.item.headers
            )
        except KafkaError as error:  # raised before queueing: metadata or buffer wait, record too large
            send.future = None
            failures.append(error)
            break  # the following sends would wait out the same max_block_ms
    try:
        producer.flush(timeout=FLUSH_TIMEOUT_SECONDS)
    except KafkaTimeoutError as error:
        failures.append(error)
    failures.extend(send.future.exception for send in sends if send.future is not None and send.future.failed())
    unacknowledged = [send for send in sends if send.future is None or not send.future.succeeded()]
    if not unacknowledged:
        return
    fatal = [error for error in failures if not getattr(error, "retriable", False)]
    kind = DeliveryFailedError if fatal else TransientDeliveryError
    cause = (fatal or failures or [KafkaTimeoutError("no outcome")])[0]
    topics = sorted({send.item.topic for send in unacknowledged})
    raise kind(
        f"{len(unacknowledged)} of {len(sends)} records not acknowledged (topics {topics}): "
        f"{type(cause).__name__}: {cause}"
    ) from cause


def _coordinator_unknown(consumer: KafkaConsumer) -> bool:
    """Whether the consumer has lost its group's coordinator (the broker is unreachable). kafka-python has
    no public accessor for it; 3.0.12 is pinned."""
    return bool(consumer._coordinator.coordinator_unknown())


def _cluster_id(consumer: KafkaConsumer) -> str | None:
    """The cluster id of the latest metadata the consumer had (no public accessor either)."""
    found = consumer._client.cluster.cluster_id
    return str(found) if found else None


def _account_for(outgoing: list[_Outgoing]) -> None:
    """Metrics and one log line per dead letter, for acknowledged sends only (never the record's content)."""
    for item in outgoing:
        if item.dead_letter_code is None:
            STREAM_PRODUCED.labels(item.topic).inc()
            continue
        STREAM_DEAD_LETTERS.labels(item.source.topic, item.dead_letter_code).inc()
        _log().warning(
            "dead_letter",
            topic=item.source.topic,
            partition=item.source.partition,
            offset=item.source.offset,
            code=item.dead_letter_code,
            dead_letter_topic=item.topic,
        )


def _next_offsets(records: list[ConsumerRecord]) -> dict[TopicPartition, OffsetAndMetadata]:
    """Per partition, the offset of the next record to consume: the last one handled, plus one."""
    offsets: dict[TopicPartition, OffsetAndMetadata] = {}
    for record in records:
        partition = TopicPartition(record.topic, record.partition)
        if partition not in offsets or offsets[partition].offset <= record.offset:
            offsets[partition] = OffsetAndMetadata(record.offset + 1, "", -1)
    return offsets
