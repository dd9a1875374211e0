"""The shared stream worker's guarantees against the real broker: dead letters for what cannot be
processed, commits only after the broker acknowledged every output, a clean stop."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from shared.events.broker import EmbeddedBroker, ensure_topics
from shared.events.stream import Inbound, Produce, Reject, StreamWorker
from shared.events.topics import Topic
from tests.fixtures.kafka_io import collect, publish, publish_raw


@pytest.fixture
def topics(kafka_broker: EmbeddedBroker) -> Iterator[tuple[Topic, Topic]]:
    suffix = uuid.uuid4().hex[:8]
    source = Topic(f"test.in.{suffix}", "com.riskscoring.test.v1", partitions=2)
    output = Topic(f"test.out.{suffix}", "com.riskscoring.test.out.v1", partitions=2)
    ensure_topics(kafka_broker.bootstrap_servers, [source, source.dead_letter, output])
    yield source, output


def echo_handler(output: Topic) -> Any:
    """Echo each event's data to `output`; refuse data without `key`; blow up on data with `boom`."""
    def handle(batch: list[Inbound]) -> list[list[Produce] | Reject]:
        if any("boom" in inbound.event["data"] for inbound in batch):
            raise RuntimeError("handler failure")
        return [
            [Produce(output.name, inbound.event["data"]["key"], inbound.event)] if "key" in inbound.event["data"]
            else Reject("invalid_input", "no key", {"key": ["required"]})
            for inbound in batch
        ]
    return handle


def start(worker: StreamWorker) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            worker.run()
        except BaseException as error:  # noqa: BLE001 - handed to the test
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def committed(bootstrap: str, group: str, topic: Topic) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return sum(consumer.committed(TopicPartition(topic.name, p)) or 0 for p in range(topic.partitions))
    finally:
        consumer.close()


def test_bad_records_are_dead_lettered_and_good_ones_still_flow(kafka_broker: EmbeddedBroker, topics: tuple[Topic, Topic]) -> None:
    """Undecodable bytes, a wrong event type, a handler refusal and a handler crash each become one dead
    letter with the original bytes and the error; the good records of the same batches are produced."""
    source, output = topics
    bootstrap = kafka_broker.bootstrap_servers
    publish(bootstrap, source, [{"key": f"k{i}", "n": i} for i in range(10)], "key")
    publish(bootstrap, source, [{"nokey": 1, "key2": "x"}], "key2")
    publish(bootstrap, source, [{"key": "kb", "boom": True}], "key")
    publish_raw(bootstrap, source, [(b"raw", b"\x00garbage"),
                                    (b"typed", json.dumps({"specversion": "1.0", "id": "1", "source": "s",
                                                           "type": "other.type", "data": {}}).encode())])
    worker = StreamWorker(bootstrap_servers=bootstrap, group_id=f"g-{uuid.uuid4().hex[:6]}", inputs=[source],
                          handler=echo_handler(output), batch_size=50)
    thread, errors = start(worker)
    outputs = collect(bootstrap, output, lambda r: len(r) >= 10)
    dead = collect(bootstrap, source.dead_letter, lambda r: len(r) >= 4)
    worker.stop()
    thread.join(timeout=30)
    assert not thread.is_alive() and not errors
    assert sorted(r.key.decode() for r in outputs) == sorted(f"k{i}" for i in range(10))
    codes = sorted(json.loads(dict(r.headers)["error"])["code"] for r in dead)
    assert codes == ["internal_error", "invalid_input", "undecodable", "wrong_event_type"]
    raw = next(r for r in dead if r.key == b"raw")
    assert raw.value == b"\x00garbage" and dict(raw.headers)["source_topic"] == source.name.encode()


def test_offsets_are_committed_only_after_the_outputs_are_acknowledged(
    kafka_broker: EmbeddedBroker, topics: tuple[Topic, Topic]
) -> None:
    """A worker whose sends the broker refuses (records over the producer's size limit) stops with the
    error and commits nothing; the next worker of the group processes the whole batch again and commits."""
    source, output = topics
    bootstrap = kafka_broker.bootstrap_servers
    group = f"g-{uuid.uuid4().hex[:6]}"
    publish(bootstrap, source, [{"key": f"k{i}", "n": i} for i in range(8)], "key")

    failing = StreamWorker(bootstrap_servers=bootstrap, group_id=group, inputs=[source], handler=echo_handler(output),
                           producer_overrides={"max_request_size": 64})
    thread, errors = start(failing)
    thread.join(timeout=60)
    assert errors and isinstance(errors[0], KafkaError)
    assert committed(bootstrap, group, source) == 0

    healthy = StreamWorker(bootstrap_servers=bootstrap, group_id=group, inputs=[source], handler=echo_handler(output))
    thread, errors = start(healthy)
    outputs = collect(bootstrap, output, lambda r: len(r) >= 8)
    healthy.stop()
    thread.join(timeout=30)
    assert not errors
    assert sorted(r.key.decode() for r in outputs) == sorted(f"k{i}" for i in range(8))
    assert committed(bootstrap, group, source) == 8
