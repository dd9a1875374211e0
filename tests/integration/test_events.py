"""shared.events against the real embedded broker (Tansu): the topic registry, topic creation, the
broker's life cycle, and the stream worker's guarantees: dead letters that keep the original bytes,
good records flowing past bad ones, commits only after the broker acknowledged every send, and a
clean stop (from another thread, and on SIGTERM in a real process)."""

from __future__ import annotations

import json
import math
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from kafka.admin import KafkaAdminClient
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import MessageSizeTooLargeError, NotEnoughReplicasError
from kafka.future import Future
from prometheus_client import REGISTRY

import shared.events.consumer as stream_module
from shared.errors import NotReadyError
from shared.events.broker import BrokerStartError, EmbeddedBroker, ensure_topics, tansu_binary
from shared.events.consumer import (
    DeliveryFailedError,
    Inbound,
    Produce,
    Reject,
    StreamWorker,
    TransientDeliveryError,
)
from shared.events.envelope import encode, make_event
from shared.events.topics import (
    ALL_TOPICS,
    INPUT_TOPICS,
    PAYMENTS_TRANSACTIONS,
    RISK_CONTROL,
    Topic,
    topic_by_name,
)
from tests.fixtures.broker import MakeTopic, committed_offsets, produce_raw, read_topic, unique_name
from tests.fixtures.kafka_io import collect, publish

IN_TYPE = "com.riskscoring.test.input.v1"
OUT_TYPE = "com.riskscoring.test.output.v1"
REPO = Path(__file__).resolve().parents[2]
WAIT_SECONDS = 20.0


# ---------------------------------------------------------------------------------------------- helpers


def event_bytes(data: dict[str, Any], event_type: str = IN_TYPE) -> bytes:
    return encode(make_event(event_type, "/tests", data))


class EchoHandler:
    """Echoes each event's data to `output`, keyed by data["key"]; refuses data without a key; raises on
    data with "boom"; returns a malformed result for "bad_shape"; emits unencodable NaN for "nan".
    Remembers the (partition, offset) of every call, so tests can see what reached it and how grouped."""

    def __init__(self, output: Topic) -> None:
        self.output = output
        self.calls: list[list[tuple[int, int]]] = []

    def __call__(self, batch: list[Inbound]) -> list[list[Produce] | Reject]:
        self.calls.append([(inbound.partition, inbound.offset) for inbound in batch])
        if any("boom" in inbound.event["data"] for inbound in batch):
            raise RuntimeError("handler failure")
        return [self._one(inbound) for inbound in batch]

    def _one(self, inbound: Inbound) -> Any:
        data = inbound.event["data"]
        if "bad_shape" in data:
            return "not a list of Produce"
        if "key" not in data:
            return Reject("invalid_input", "the event has no key", {"key": ["required"]})
        payload = {**data, "value": math.nan} if "nan" in data else data
        return [Produce(self.output.name, data["key"], make_event(OUT_TYPE, "/tests/echo", payload))]

    def seen(self) -> set[tuple[int, int]]:
        return {position for call in self.calls for position in call}


@contextmanager
def running(worker: StreamWorker) -> Iterator[list[BaseException]]:
    """Runs the worker in a thread for the block; stops and joins it (bounded) after. The list receives
    what run() raised."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            worker.run()
        except BaseException as error:  # handed to the test
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield errors
    finally:
        worker.stop()
        thread.join(timeout=WAIT_SECONDS)
        assert not thread.is_alive(), "the worker did not stop"


def new_worker(bootstrap: str, group: str, source: Topic, handler: Any, **options: Any) -> StreamWorker:
    return StreamWorker(
        bootstrap_servers=bootstrap, group_id=group, inputs=[source], handler=handler, poll_timeout_ms=200, **options
    )


def headers(record: ConsumerRecord) -> dict[str, bytes]:
    return dict(record.headers)


def error_of(record: ConsumerRecord) -> dict[str, Any]:
    return dict(json.loads(headers(record)["error"]))


def expected_commits(positions: set[tuple[int, int]], partitions: int) -> dict[int, int | None]:
    """What a group that handled exactly `positions` must have committed: last offset + 1 per partition."""
    last: dict[int, int | None] = dict.fromkeys(range(partitions))
    for partition, offset in positions:
        last[partition] = max(offset + 1, last[partition] or 0)
    return last


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# ---------------------------------------------------------------------------------------------- topics


def test_registry_names_each_topic_once_with_its_dead_letter_topic() -> None:
    """ALL_TOPICS holds the inputs (events, history and outcomes), one `.dlq` per input, the outputs and the
    control topic, each name once; lookups by name work and unknown names or illegal topics fail loudly."""
    names = [topic.name for topic in ALL_TOPICS]
    assert len(names) == len(set(names)) == 2 * len(INPUT_TOPICS) + 3 + 1
    assert {"payments.outcomes", "health.outcomes"} <= set(names)
    for topic in INPUT_TOPICS:
        assert topic_by_name(f"{topic.name}.dlq") == topic.dead_letter
        assert topic.dead_letter.partitions == topic.partitions
    assert PAYMENTS_TRANSACTIONS.event_type == "com.riskscoring.payments.transaction.v1"
    assert topic_by_name("risk.control") is RISK_CONTROL and RISK_CONTROL.partitions == 1
    with pytest.raises(KeyError, match="payments.transactions"):
        topic_by_name("payments.transaction")
    with pytest.raises(ValueError, match="illegal topic name"):
        Topic("payments transactions", "t")
    with pytest.raises(ValueError, match="partition"):
        Topic("x", "t", partitions=0)


def test_ensure_topics_creates_declared_partitions_and_is_idempotent(kafka_broker: EmbeddedBroker) -> None:
    """Topics are created with their declared partition counts; a second call (all exist) is a no-op, and
    the session's registry topics exist with theirs (risk.control has one partition)."""
    fresh = Topic(f"test.created.{unique_name()}", IN_TYPE, partitions=3)
    ensure_topics(kafka_broker.bootstrap_servers, [fresh])
    ensure_topics(kafka_broker.bootstrap_servers, [fresh, RISK_CONTROL])
    admin = KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap_servers)
    try:
        described = {
            t["name"]: len(t["partitions"])
            for t in admin.describe_topics([fresh.name, RISK_CONTROL.name, PAYMENTS_TRANSACTIONS.name])
        }
    finally:
        admin.close()
    assert described == {fresh.name: 3, RISK_CONTROL.name: 1, PAYMENTS_TRANSACTIONS.name: 4}


# ---------------------------------------------------------------------------------------------- broker


def test_tansu_binary_is_an_executable_tansu() -> None:
    """The bundled binary is found, executable, and is Tansu."""
    binary = tansu_binary()
    assert os.access(binary, os.X_OK)
    version = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=10, check=True)
    assert "tansu" in version.stdout


def test_broker_that_cannot_listen_fails_start_with_its_output_and_stop_ends_the_process() -> None:
    """With the port already taken, start() raises BrokerStartError quoting Tansu's own error instead of
    waiting forever; a broker that did start is gone after its context exits."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        broker = EmbeddedBroker(port=taken.getsockname()[1])
        with pytest.raises(BrokerStartError, match="(?i)address.*in use"):
            broker.start()

    with EmbeddedBroker(port=0) as running_broker:
        pid = running_broker.pid
        assert pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


# ---------------------------------------------------------------------------------------------- stream worker


def test_bad_records_become_dead_letters_with_original_bytes_while_good_ones_flow(
    kafka_broker: EmbeddedBroker, make_topic: MakeTopic
) -> None:
    """In one batch: undecodable bytes, JSON that is not a CloudEvent, a wrong event type, a handler
    Reject, a handler exception, a malformed handler result and an unencodable output each become one dead
    letter carrying the original key and bytes and the error headers; the five good records are produced
    with their keys; only valid events reach the handler, together in poll order; metrics and one log line
    per dead letter follow, without the records' content."""
    bootstrap = kafka_broker.bootstrap_servers
    source, output = make_topic("in", IN_TYPE), make_topic("out", OUT_TYPE)
    secret = f"SECRET-{unique_name()}"
    records: list[tuple[bytes | None, bytes | None]] = [
        (b"k0", event_bytes({"key": "k0", "note": secret})),
        (b"raw", b"\xff\x00" + secret.encode()),  # 1 undecodable
        (b"k2", event_bytes({"key": "k2"})),
        (b"json", json.dumps({"hello": secret}).encode()),  # 3 not a CloudEvent
        (b"typed", event_bytes({"key": "t"}, event_type="com.riskscoring.other.v1")),  # 4 wrong type
        (b"k5", event_bytes({"key": "k5"})),
        (b"nokey", event_bytes({"note": secret})),  # 6 handler Reject
        (b"boom", event_bytes({"key": "b", "boom": True})),  # 7 handler raises
        (b"k8", event_bytes({"key": "k8"})),
        (b"shape", event_bytes({"key": "s", "bad_shape": True})),  # 9 malformed result
        (b"nan", event_bytes({"key": "n", "nan": True})),  # 10 unencodable output
        (b"k11", event_bytes({"key": "k11"})),
        (None, event_bytes({"key": "k12"})),
    ]
    produce_raw(bootstrap, source, records)
    handler = EchoHandler(output)
    with structlog.testing.capture_logs() as logs:
        with running(new_worker(bootstrap, unique_name("g-"), source, handler, batch_size=50)) as errors:
            outputs = read_topic(bootstrap, output, lambda found: len(found) >= 6)
            dead = read_topic(bootstrap, source.dead_letter, lambda found: len(found) >= 7)
    assert not errors

    assert sorted((r.key, json.loads(r.value)["data"]["key"]) for r in outputs) == sorted(
        (f"k{i}".encode(), f"k{i}") for i in (0, 2, 5, 8, 11, 12)
    )
    assert all(json.loads(r.value)["type"] == OUT_TYPE for r in outputs)

    by_offset = {int(headers(r)["source_offset"]): r for r in dead}
    assert {offset: error_of(r)["code"] for offset, r in by_offset.items()} == {
        1: "undecodable",
        3: "undecodable",
        4: "wrong_event_type",
        6: "invalid_input",
        7: "internal_error",
        9: "internal_error",
        10: "internal_error",
    }
    for offset, record in by_offset.items():
        assert (record.key, record.value) == records[offset], "a dead letter must carry the original key and bytes"
        assert headers(record)["source_topic"] == source.name.encode()
        assert headers(record)["source_partition"] == b"0"
        assert datetime.fromisoformat(headers(record)["failed_at"].decode()).tzinfo is not None
    assert error_of(by_offset[3])["fields"].keys() == {"specversion", "id", "source", "type", "data"}
    assert error_of(by_offset[6]) == {
        "code": "invalid_input",
        "message": "the event has no key",
        "fields": {"key": ["required"]},
    }

    valid = [(0, offset) for offset in (0, 2, 5, 6, 7, 8, 9, 10, 11, 12)]
    assert handler.calls[0] == valid, "the valid records reach the handler in one call, in poll order"
    assert handler.seen() == set(valid), "records that fail the envelope never reach the handler"

    assert metric("risk_stream_records_total", topic=source.name) == 13
    assert metric("risk_stream_produced_total", topic=output.name) == 6
    assert metric("risk_stream_dead_letters_total", topic=source.name, code="undecodable") == 2
    assert metric("risk_stream_dead_letters_total", topic=source.name, code="internal_error") == 3
    dead_letter_logs = [entry for entry in logs if entry["event"] == "dead_letter"]
    assert sorted(entry["offset"] for entry in dead_letter_logs) == sorted(by_offset)
    assert all(entry["topic"] == source.name and entry["code"] for entry in dead_letter_logs)
    assert not [entry for entry in logs if secret in repr(entry)], "logs must never carry record content"
    assert [entry["records"] for entry in logs if entry["event"] == "stream_batch"] == [13]


def test_stop_from_another_thread_commits_the_batch_in_hand_and_the_group_resumes_after_it(
    kafka_broker: EmbeddedBroker, make_topic: MakeTopic
) -> None:
    """stop() called from another thread while the handler holds a batch: the worker still produces and
    commits that batch, then returns without taking another. A second worker of the same group then gets
    exactly the records the first did not handle (nothing of the committed batch is reprocessed)."""
    bootstrap = kafka_broker.bootstrap_servers
    source, output = make_topic("in", IN_TYPE, partitions=2), make_topic("out", OUT_TYPE, partitions=2)
    produce_raw(bootstrap, source, [(f"k{i}".encode(), event_bytes({"key": f"k{i}"})) for i in range(8)])
    group = unique_name("g-")

    entered, release = threading.Event(), threading.Event()
    first = EchoHandler(output)

    def hold_first_batch(batch: list[Inbound]) -> list[list[Produce] | Reject]:
        entered.set()
        assert release.wait(WAIT_SECONDS)
        return first(batch)

    worker = new_worker(bootstrap, group, source, hold_first_batch)
    with running(worker) as errors:
        assert entered.wait(WAIT_SECONDS), "the worker never got a batch"
        worker.stop()
        release.set()
    assert not errors
    assert len(first.calls) == 1, "after stop() the worker must not take another batch"
    handled = first.seen()
    assert committed_offsets(bootstrap, group, source) == expected_commits(handled, source.partitions)
    assert len(read_topic(bootstrap, output, lambda found: len(found) >= len(handled))) == len(handled)

    second = EchoHandler(output)
    with running(new_worker(bootstrap, group, source, second)) as errors:
        produce_raw(bootstrap, source, [(b"marker", event_bytes({"key": "marker"}))])
        all_records = read_topic(bootstrap, source, lambda found: len(found) >= 9)
        marker = next((r.partition, r.offset) for r in all_records if r.key == b"marker")
        everything = {(r.partition, r.offset) for r in all_records}
        wait_until(lambda: marker in second.seen())
    assert not errors
    assert second.seen() == everything - handled


def wait_until(condition: Callable[[], bool], timeout: float = WAIT_SECONDS) -> None:
    """Polls `condition` until it holds; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not reached within {timeout} s"
        time.sleep(0.05)


class RefusingProducer:
    """A real producer, except that every send to `refused` fails the way a broker refusal does (a
    retriable NOT_ENOUGH_REPLICAS on the send's future, seen after flush)."""

    def __init__(self, real: Any, refused: str) -> None:
        self.real, self.refused = real, refused
        self.refusals: dict[bytes, int] = {}

    def send(self, topic: str, **kwargs: Any) -> Any:
        if topic != self.refused:
            return self.real.send(topic, **kwargs)
        self.refusals[kwargs["key"]] = self.refusals.get(kwargs["key"], 0) + 1
        return Future().failure(NotEnoughReplicasError("refused by the test"))

    def flush(self, timeout: float | None = None) -> None:
        self.real.flush(timeout=timeout)

    def close(self, timeout: float | None = None) -> None:
        self.real.close(timeout=timeout)


def test_offsets_are_not_committed_when_the_broker_refuses_an_output_and_the_batch_is_reprocessed(
    kafka_broker: EmbeddedBroker, make_topic: MakeTopic, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the broker does not acknowledge the outputs, the worker tries again with back-off until its outage
    budget is spent, then raises without committing anything; a fresh worker of the same group processes the
    whole batch again and commits it."""
    bootstrap = kafka_broker.bootstrap_servers
    source, output = make_topic("in", IN_TYPE, partitions=2), make_topic("out", OUT_TYPE)
    keys = [f"k{i}" for i in range(6)]
    produce_raw(bootstrap, source, [(key.encode(), event_bytes({"key": key})) for key in keys])
    group = unique_name("g-")

    producers: list[RefusingProducer] = []

    def refusing_producer(bootstrap_servers: str, **overrides: Any) -> RefusingProducer:
        producers.append(RefusingProducer(real_make_producer(bootstrap_servers, **overrides), output.name))
        return producers[-1]

    real_make_producer = stream_module.make_producer
    monkeypatch.setattr(stream_module, "make_producer", refusing_producer)
    failing = new_worker(bootstrap, group, source, EchoHandler(output), outage_seconds=3)
    with running(failing) as errors:
        wait_until(lambda: bool(errors), timeout=40)
    assert isinstance(errors[0], TransientDeliveryError)
    assert isinstance(errors[0].__cause__, NotEnoughReplicasError)
    refusals = producers[0].refusals
    attempts = set(refusals.values())
    assert refusals and len(attempts) == 1 and 1 < attempts.pop() < 10, "each refused record: the same few attempts"
    assert committed_offsets(bootstrap, group, source) == dict.fromkeys(range(source.partitions))

    monkeypatch.undo()
    healthy = EchoHandler(output)
    with running(new_worker(bootstrap, group, source, healthy)) as errors:
        outputs = read_topic(bootstrap, output, lambda found: len(found) >= len(keys))
        wait_until(
            lambda: (
                committed_offsets(bootstrap, group, source) == expected_commits(healthy.seen(), 2)
                and len(healthy.seen()) == len(keys)
            )
        )
    assert not errors
    assert sorted(r.key.decode() for r in outputs) == keys


def test_a_send_the_producer_cannot_make_fails_at_once_and_commits_nothing(
    kafka_broker: EmbeddedBroker, make_topic: MakeTopic
) -> None:
    """A non-retriable send failure (the output exceeds max_request_size) is not retried: the worker
    raises DeliveryFailedError carrying the cause, and the group has committed nothing."""
    bootstrap = kafka_broker.bootstrap_servers
    source, output = make_topic("in", IN_TYPE), make_topic("out", OUT_TYPE)
    produce_raw(bootstrap, source, [(b"k", event_bytes({"key": "k"}))])
    group = unique_name("g-")
    worker = new_worker(bootstrap, group, source, EchoHandler(output), producer_overrides={"max_request_size": 64})
    with running(worker) as errors:
        wait_until(lambda: bool(errors))
    assert isinstance(errors[0], DeliveryFailedError) and not isinstance(errors[0], TransientDeliveryError)
    assert isinstance(errors[0].__cause__, MessageSizeTooLargeError)
    assert committed_offsets(bootstrap, group, source) == {0: None}


CHILD_WORKER = """
import json, sys, time
from shared.events.envelope import make_event
from shared.events.consumer import Produce, StreamWorker
from shared.events.topics import Topic
from shared.logging import configure_logging

bootstrap, group, source_name, output_name = sys.argv[1:5]
configure_logging("INFO", stream=sys.stderr)

def handle(batch):
    print(json.dumps([[i.partition, i.offset] for i in batch]), flush=True)
    time.sleep(1.0)  # SIGTERM arrives while this batch is in hand
    return [[Produce(output_name, i.event["data"]["key"], make_event("%s", "/child", i.event["data"]))]
            for i in batch]

StreamWorker(bootstrap_servers=bootstrap, group_id=group, inputs=[Topic(source_name, "%s")], handler=handle,
             poll_timeout_ms=200).run_until_stopped_by_signals()
print("stopped", flush=True)
""" % (OUT_TYPE, IN_TYPE)


def test_a_worker_process_exits_0_on_sigterm_after_committing_its_batch(
    kafka_broker: EmbeddedBroker, make_topic: MakeTopic, tmp_path: Path
) -> None:
    """A real worker process sent SIGTERM while its handler holds a batch finishes that batch (outputs
    produced, offsets committed) and exits with status 0."""
    bootstrap = kafka_broker.bootstrap_servers
    source, output = make_topic("in", IN_TYPE), make_topic("out", OUT_TYPE)
    produce_raw(bootstrap, source, [(f"k{i}".encode(), event_bytes({"key": f"k{i}"})) for i in range(5)])
    group = unique_name("g-")
    with (tmp_path / "worker.log").open("wb") as stderr:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD_WORKER, bootstrap, group, source.name, output.name],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        lines: queue.Queue[str] = queue.Queue()
        reader = threading.Thread(target=lambda: [lines.put(line) for line in child.stdout or []], daemon=True)
        reader.start()
        try:
            first_batch = lines.get(timeout=WAIT_SECONDS)
            child.send_signal(signal.SIGTERM)
            status = child.wait(timeout=WAIT_SECONDS)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(timeout=5)
            reader.join(timeout=5)
            if child.stdout is not None:
                child.stdout.close()
    assert status == 0, (tmp_path / "worker.log").read_text()[-2000:]
    rest = [lines.get_nowait() for _ in range(lines.qsize())]
    assert rest[-1].strip() == "stopped"
    handled = {tuple(position) for line in [first_batch, *rest[:-1]] for position in json.loads(line)}
    assert {tuple(p) for p in json.loads(first_batch)} <= handled
    assert committed_offsets(bootstrap, group, source) == expected_commits(handled, 1)
    assert len(read_topic(bootstrap, output, lambda found: len(found) >= len(handled))) == len(handled)


def test_a_dependency_outage_stops_the_worker_without_dead_letters_or_commit(kafka_broker: EmbeddedBroker) -> None:
    """When the handler reports NotReadyError (e.g. the state store is down) past the worker's outage budget, the
    records are not at fault: the worker raises, nothing is dead-lettered or committed, and a healthy worker
    later handles them all."""
    source = Topic(unique_name("outage-in"), IN_TYPE, partitions=1)
    output = Topic(unique_name("outage-out"), OUT_TYPE, partitions=1)
    ensure_topics(kafka_broker.bootstrap_servers, [source, source.dead_letter, output])
    publish(kafka_broker.bootstrap_servers, source, [{"key": f"k{i}"} for i in range(5)], "key")
    group = unique_name("outage")

    def down(batch: list[Inbound]) -> list[list[Produce] | Reject]:
        raise NotReadyError("state store unavailable")

    with pytest.raises(NotReadyError):
        StreamWorker(
            bootstrap_servers=kafka_broker.bootstrap_servers,
            group_id=group,
            inputs=[source],
            handler=down,
            outage_seconds=1,
        ).run()

    def echo(batch: list[Inbound]) -> list[list[Produce] | Reject]:
        return [[Produce(output.name, inbound.event["data"]["key"], inbound.event)] for inbound in batch]

    healthy = StreamWorker(
        bootstrap_servers=kafka_broker.bootstrap_servers, group_id=group, inputs=[source], handler=echo
    )
    thread = threading.Thread(target=healthy.run, daemon=True)
    thread.start()
    outputs = collect(kafka_broker.bootstrap_servers, output, lambda r: len(r) >= 5)
    healthy.stop()
    thread.join(timeout=30)
    assert sorted(r.key.decode() for r in outputs) == [f"k{i}" for i in range(5)]
    assert collect(kafka_broker.bootstrap_servers, source.dead_letter, lambda r: False, timeout=2) == []
