"""Workers ride out outages. A stream worker of its own (a real `risk stream fraud` process), on a Redis and an
embedded broker of this test's own, keeps deciding through a Redis stop and restart and through a broker that
comes back empty, with no restart: every event gets exactly one decision, by event id, in the decision store and
on the decisions topic, and the worker's /readyz goes false during each outage and true after it. A hung Redis
(a peer that accepts connections and never answers) makes the HTTP door answer 503 within its timeout."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient

from shared.decisions import DecisionStore
from shared.events.broker import EmbeddedBroker, ensure_topics
from shared.events.topics import ALL_TOPICS, FRAUD_DECISIONS, PAYMENTS_TRANSACTIONS
from shared.settings import Settings
from tests.fixtures.kafka_io import publish
from tests.fixtures.redis import _stop, _wait_until_ready, free_port, redis_server_binary
from tests.fixtures.services import API_KEY, running_worker, scoring_app

AUTH = {"X-API-Key": API_KEY}
EVENTS_PER_PHASE = 1000
PHASE_SECONDS = 60.0  # each phase's bound: the whole test stays well under a minute a phase
START = datetime(2018, 8, 1, tzinfo=UTC)


def payment(run: str, i: int) -> dict[str, Any]:
    return {
        "transaction_id": f"{run}-{i}",
        "timestamp": (START + timedelta(seconds=30 * i)).isoformat(),
        "customer_id": f"{run}-card-{i % 50}",
        "terminal_id": f"{run}-term-{i % 20}",
        "amount": 10.0 + i % 97,
    }


class OwnRedis:
    """A redis-server of this test's own, on a free port, with its own data directory and an append-only file
    (so the window state survives a restart), stopped and started again on the same port."""

    def __init__(self, directory: Path) -> None:
        self.binary, self.directory, self.port = redis_server_binary(), directory, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                *(self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)),
                *("--save", "", "--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        assert _wait_until_ready(self.process, self.url), "redis-server did not start"

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)
            self.process = None


class Readiness:
    """Polls the worker's /readyz every 100 ms on a thread and keeps each answer (True: 200)."""

    def __init__(self, url: str) -> None:
        self.url, self._done = url, threading.Event()
        self.seen: list[bool] = []
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._done.is_set():
            with contextlib.suppress(requests.RequestException):  # not listening yet
                self.seen.append(requests.get(self.url, timeout=5).status_code == 200)
            self._done.wait(0.1)

    def went_false_then_true(self, since: int) -> bool:
        answers = self.seen[since:]
        return False in answers and answers[answers.index(False) :].count(True) > 0

    def stop(self) -> None:
        self._done.set()
        self._thread.join(timeout=10)


def decided_ids(settings: Settings, run: str) -> list[str]:
    store = DecisionStore(settings.decisions_url)
    try:
        return [row.event_id for row in store.labelled("fraud") if row.event_id.startswith(f"{run}-")]
    finally:
        store.close()


def wait_for(condition: Callable[[], bool], timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} not within {timeout} s; worker log:\n{log.read_text()[-4000:]}"
        time.sleep(0.1)


def decisions_on_topic(bootstrap: str, run: str, idle_seconds: float = 3.0) -> list[str]:
    """The input event id of every decision of the run on fraud.decisions, read from the beginning until no
    record has come for `idle_seconds` (never from the watermark: the embedded broker under-reports it)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, allow_auto_create_topics=False)
    partitions = [TopicPartition(FRAUD_DECISIONS.name, p) for p in range(FRAUD_DECISIONS.partitions)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    found: list[str] = []
    last = time.monotonic()
    try:
        while time.monotonic() - last < idle_seconds:
            for records in consumer.poll(timeout_ms=200).values():
                last = time.monotonic()
                found.extend(json.loads(r.value)["data"]["event_id"] for r in records)
    finally:
        consumer.close(autocommit=False)
    return [event_id for event_id in found if event_id.startswith(f"{run}-")]


def topic_exists(bootstrap: str, name: str) -> bool:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="outage-test")
    try:
        return name in admin.list_topics()
    finally:
        admin.close()


def publish_steadily(bootstrap: str, events: list[dict[str, Any]], chunks: int = 10) -> threading.Thread:
    """Publish `events` in `chunks` parts a fifth of a second apart, on a thread: load while outages happen."""

    def run() -> None:
        size = -(-len(events) // chunks)
        for start in range(0, len(events), size):
            publish(bootstrap, PAYMENTS_TRANSACTIONS, events[start : start + size], "customer_id")
            time.sleep(0.2)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_worker_rides_out_a_redis_restart_and_a_broker_that_comes_back_empty(
    fraud_settings: Settings, tmp_path: Path
) -> None:
    """Phase 1: 1,000 payments published while Redis is stopped for 3 s and started again. Phase 2: 1,000 more;
    with some decided, Redis stops (the worker holds a batch it cannot score), the broker is stopped and started
    empty, then Redis comes back: the worker recreates its topics, delivers the batch in hand to the new broker
    without committing it, and reads the new log from its start; the payments the old broker lost undecided are
    published again, as their source would after a broker's data loss. Every payment then has exactly one
    decision in the store and exactly one on the decisions topics of the two brokers together, the worker
    process never exited, and its /readyz went false then true in each phase."""
    run = f"out-{uuid.uuid4().hex[:6]}"
    events = [payment(run, i) for i in range(2 * EVENTS_PER_PHASE)]
    first, second = events[:EVENTS_PER_PHASE], events[EVENTS_PER_PHASE:]
    own_redis = OwnRedis(tmp_path / "redis")
    (tmp_path / "redis").mkdir()
    own_redis.start()
    broker_port = free_port()
    broker = EmbeddedBroker(port=broker_port).start()
    ensure_topics(broker.bootstrap_servers, ALL_TOPICS)
    settings = replace(fraud_settings, kafka_bootstrap_servers=broker.bootstrap_servers, state_url=own_redis.url)
    metrics_port, log = free_port(), tmp_path / "worker.log"
    try:
        with running_worker("fraud", settings, log, "--metrics-port", str(metrics_port)) as worker:
            readiness = Readiness(f"http://127.0.0.1:{metrics_port}/readyz")
            wait_for(lambda: readiness.seen[-1:] == [True], PHASE_SECONDS, "the worker ready", log)

            # Phase 1: Redis stopped under load and started again.
            mark = len(readiness.seen)
            publisher = publish_steadily(broker.bootstrap_servers, first)
            wait_for(lambda: len(decided_ids(settings, run)) >= 100, PHASE_SECONDS, "100 decisions", log)
            own_redis.stop()
            time.sleep(3)
            own_redis.start()
            publisher.join(timeout=PHASE_SECONDS)
            wait_for(lambda: len(decided_ids(settings, run)) == EVENTS_PER_PHASE, PHASE_SECONDS, "phase 1 decided", log)
            assert worker.poll() is None, "the worker exited during the Redis outage"
            assert readiness.went_false_then_true(mark), "readiness did not go false then true around Redis"

            # Phase 2: Redis stopped with a batch in hand, the broker replaced by an empty one, Redis back.
            mark = len(readiness.seen)
            publisher = publish_steadily(broker.bootstrap_servers, second)
            wait_for(
                lambda: len(decided_ids(settings, run)) >= EVENTS_PER_PHASE + 100, PHASE_SECONDS, "phase 2 start", log
            )
            own_redis.stop()
            publisher.join(timeout=PHASE_SECONDS)
            time.sleep(1)  # the batch in flight when Redis stopped is delivered, or waits for Redis
            on_old_broker = decisions_on_topic(broker.bootstrap_servers, run)  # everything it will ever hold
            broker.stop()
            broker = EmbeddedBroker(port=broker_port).start()
            time.sleep(2)
            own_redis.start()
            wait_for(
                lambda: topic_exists(broker.bootstrap_servers, PAYMENTS_TRANSACTIONS.name),
                PHASE_SECONDS,
                "the worker recreating its input topic",
                log,
            )
            # The source publishes again what has no decision once the worker is back (ready): the batch it
            # held through the outage is decided by then, so nothing is published twice.
            wait_for(lambda: readiness.went_false_then_true(mark), PHASE_SECONDS, "the worker ready again", log)
            decided = set(decided_ids(settings, run))
            publish(
                broker.bootstrap_servers,
                PAYMENTS_TRANSACTIONS,
                [e for e in second if e["transaction_id"] not in decided],
                "customer_id",
            )
            wait_for(
                lambda: len(decided_ids(settings, run)) == len(events), PHASE_SECONDS, "every payment decided", log
            )
            on_new_broker = decisions_on_topic(broker.bootstrap_servers, run)
            assert worker.poll() is None, "the worker exited during the broker outage"
            assert readiness.went_false_then_true(mark), "readiness did not go false then true around the broker"
            readiness.stop()
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=30) == 0
    finally:
        broker.stop()
        own_redis.stop()
    every_id = sorted(e["transaction_id"] for e in events)
    assert sorted(decided_ids(settings, run)) == every_id
    on_topics = on_old_broker + on_new_broker
    duplicated = sorted({event_id for event_id in on_topics if on_topics.count(event_id) > 1})
    assert not duplicated, f"{len(duplicated)} events decided twice on the topics: {duplicated[:20]}"
    assert sorted(on_topics) == every_id
    logged = log.read_text()
    assert "stream_waiting_out_outage" in logged and "stream_broker_replaced" in logged


@contextmanager
def hung_peer() -> Iterator[int]:
    """A TCP server that accepts every connection and never answers (a paused or wedged Redis); its port."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=5)
        for connection in held:
            connection.close()
        server.close()


def test_a_hung_state_store_is_a_503_within_the_timeout(fraud_settings: Settings) -> None:
    """With RISK_STATE_URL on a peer that never answers and a 300 ms timeout, a score request and /readyz both
    answer 503 well within a second, with Retry-After and a body naming the store and the timeout."""
    with hung_peer() as port:
        settings = replace(fraud_settings, state_url=f"redis://127.0.0.1:{port}/0", state_timeout_ms=300)
        client = scoring_app("fraud", settings).test_client()
        started = time.monotonic()
        answer = client.post("/v1/score", json=payment("hung", 0), headers=AUTH)
        scored_in = time.monotonic() - started
        started = time.monotonic()
        ready = client.get("/readyz")
        probed_in = time.monotonic() - started
    assert answer.status_code == 503 and scored_in < 1.0
    assert answer.headers["Retry-After"] == "1"
    body = answer.get_json()
    assert body["error"] == "not_ready"
    assert f"127.0.0.1:{port}" in body["message"] and "did not answer within 300 ms" in body["message"]
    assert ready.status_code == 503 and probed_in < 1.0 and ready.headers["Retry-After"] == "1"
    assert ready.get_json()["checks"]["state_store"].startswith("unavailable")
