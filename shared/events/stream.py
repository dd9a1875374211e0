"""The consumer loop shared by every stream worker: micro-batches, dead letters, at-least-once commits.

For each poll: decode every record as a CloudEvent of its topic's type (or dead-letter it); hand the
valid ones to the service's handler in one call; send what the handler returns (outputs, or dead letters
for the records it refuses); wait until the broker has acknowledged every one of those sends; only then
commit the batch's offsets. A crash anywhere before the commit means the batch is consumed again.

The policy for failures, in one place:
- a record that cannot be decoded, or that the handler refuses: dead letter, carry on;
- the handler raising on a batch: retry record by record; a record that still raises: dead letter;
- a send the broker does not acknowledge (after the producer's own bounded retries): raise, without
  committing, so the process restarts and the batch is consumed again.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import CommitFailedError
from kafka.structs import OffsetAndMetadata

from shared.errors import InvalidInput
from shared.events.envelope import decode, encode
from shared.events.producer import make_producer
from shared.events.topics import Topic
from shared.logging import get_logger
from shared.metrics import STREAM_BATCH_SECONDS, STREAM_DEAD_LETTERS, STREAM_PRODUCED, STREAM_RECORDS

FAST_GROUP_SETTINGS = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000, "max_poll_interval_ms": 10000}
SEND_TIMEOUT_SECONDS = 30.0

log = get_logger("stream")


@dataclass(frozen=True)
class Inbound:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    event: dict[str, Any]


@dataclass(frozen=True)
class Produce:
    topic: str
    key: str
    event: dict[str, Any]


@dataclass(frozen=True)
class Reject:
    code: str
    message: str
    fields: dict[str, Any] = field(default_factory=dict)


Handler = Callable[[list[Inbound]], list[list[Produce] | Reject]]


class StreamWorker:
    def __init__(
        self, *, bootstrap_servers: str, group_id: str, inputs: Sequence[Topic], handler: Handler,
        batch_size: int = 500, poll_timeout_ms: int = 500, consumer_overrides: dict[str, Any] | None = None,
        producer_overrides: dict[str, Any] | None = None, client_id: str | None = None,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.group_id = group_id
        self.inputs = {topic.name: topic for topic in inputs}
        self.handler = handler
        self.batch_size = batch_size
        self.poll_timeout_ms = poll_timeout_ms
        self.consumer_options = {
            "bootstrap_servers": bootstrap_servers, "group_id": group_id, "enable_auto_commit": False,
            "auto_offset_reset": "earliest", "max_poll_records": batch_size, "client_id": client_id or group_id,
            **FAST_GROUP_SETTINGS, **(consumer_overrides or {}),
        }
        self.producer_overrides = producer_overrides or {}
        self._stopping = threading.Event()

    def stop(self) -> None:
        """Ask the loop to finish the batch in hand, commit and return. Safe from signal handlers."""
        self._stopping.set()

    def run_until_stopped_by_signals(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.stop())
        self.run()

    def run(self) -> None:
        consumer = KafkaConsumer(*self.inputs, **self.consumer_options)
        producer = make_producer(self.bootstrap_servers, **self.producer_overrides)
        log.info("stream_worker_started", group_id=self.group_id, topics=list(self.inputs))
        try:
            while not self._stopping.is_set():
                polled = consumer.poll(timeout_ms=self.poll_timeout_ms, max_records=self.batch_size)
                records = [record for batch in polled.values() for record in batch]
                if records:
                    self._handle_batch(records, producer, consumer)
        finally:
            consumer.close(autocommit=False)
            producer.close(timeout=10)
            log.info("stream_worker_stopped", group_id=self.group_id)

    # ------------------------------------------------------------------ one micro-batch

    def _handle_batch(self, records: list[Any], producer: Any, consumer: KafkaConsumer) -> None:
        started = time.perf_counter()
        outcomes = self._outcomes(records)
        futures = []
        dead_letters = 0
        for record, outcome in zip(records, outcomes, strict=True):
            STREAM_RECORDS.labels(record.topic).inc()
            if isinstance(outcome, Reject):
                futures.append(self._dead_letter(producer, record, outcome))
                dead_letters += 1
                continue
            for item in outcome:
                futures.append(producer.send(item.topic, key=item.key.encode(), value=encode(item.event)))
                STREAM_PRODUCED.labels(item.topic).inc()
        producer.flush(timeout=SEND_TIMEOUT_SECONDS)
        for future in futures:
            future.get(timeout=SEND_TIMEOUT_SECONDS)  # raises when the broker did not take it: no commit
        self._commit(consumer, records)
        elapsed = time.perf_counter() - started
        STREAM_BATCH_SECONDS.observe(elapsed)
        log.info("stream_batch", records=len(records), produced=len(futures) - dead_letters,
                 dead_letters=dead_letters, partitions=sorted({f"{r.topic}/{r.partition}" for r in records}),
                 latency_ms=round(elapsed * 1000, 2))

    def _outcomes(self, records: list[Any]) -> list[list[Produce] | Reject]:
        outcomes: list[list[Produce] | Reject | None] = [None] * len(records)
        decoded: list[tuple[int, Inbound]] = []
        for index, record in enumerate(records):
            try:
                event = decode(record.value)
            except InvalidInput as error:
                outcomes[index] = Reject("undecodable", str(error), error.fields)
                continue
            expected = self.inputs[record.topic].event_type
            if event["type"] != expected:
                outcomes[index] = Reject("wrong_event_type", f"{record.topic} carries {expected}, not {event['type']}",
                                         {"type": [f"must be {expected}"]})
                continue
            decoded.append((index, Inbound(record.topic, record.partition, record.offset, record.key, event)))
        if decoded:
            for index, outcome in zip((i for i, _ in decoded), self._handle([d for _, d in decoded]), strict=True):
                outcomes[index] = outcome
        return [o if o is not None else [] for o in outcomes]

    def _handle(self, batch: list[Inbound]) -> list[list[Produce] | Reject]:
        try:
            results = self.handler(batch)
            if len(results) != len(batch):
                raise RuntimeError(f"the handler returned {len(results)} results for {len(batch)} records")
            return results
        except Exception:
            if len(batch) == 1:
                log.exception("stream_handler_failed", topic=batch[0].topic, partition=batch[0].partition,
                              offset=batch[0].offset)
                return [Reject("internal_error", "the record could not be processed")]
            log.warning("stream_batch_failed_retrying_one_by_one", records=len(batch))
            return [self._handle([inbound])[0] for inbound in batch]

    def _dead_letter(self, producer: Any, record: Any, reject: Reject) -> Any:
        topic = self.inputs[record.topic].dead_letter.name
        STREAM_DEAD_LETTERS.labels(record.topic, reject.code).inc()
        log.warning("dead_letter", topic=record.topic, partition=record.partition, offset=record.offset,
                    code=reject.code, fields=sorted(reject.fields))
        headers = [
            ("error", json.dumps({"code": reject.code, "message": reject.message, "fields": reject.fields}).encode()),
            ("source_topic", record.topic.encode()),
            ("source_partition", str(record.partition).encode()),
            ("source_offset", str(record.offset).encode()),
            ("failed_at", datetime.now(UTC).isoformat().encode()),
        ]
        return producer.send(topic, key=record.key, value=record.value, headers=headers)

    def _commit(self, consumer: KafkaConsumer, records: list[Any]) -> None:
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for record in records:
            partition = TopicPartition(record.topic, record.partition)
            if partition not in offsets or offsets[partition].offset <= record.offset:
                offsets[partition] = OffsetAndMetadata(record.offset + 1, "", -1)
        try:
            consumer.commit(offsets)
        except CommitFailedError:
            # The group rebalanced during the batch: its new owner consumes it again (at least once).
            log.warning("stream_commit_failed_after_rebalance", partitions=len(offsets))
