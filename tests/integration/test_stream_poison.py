"""Poison records on the fraud input topic: `risk stream fraud` as a real process against the real broker
decides every good record and dead-letters every poison one, without ever stopping or restarting."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from kafka.consumer.fetcher import ConsumerRecord

from services.fraud_detection.schemas import TransactionSchema
from services.fraud_detection.service import FraudService
from shared.events.consumer import DEAD_LETTER_EXCERPT_BYTES
from shared.events.envelope import encode, make_event
from shared.events.topics import FRAUD_DECISIONS, PAYMENTS_TRANSACTIONS
from shared.privacy import pseudonymise, redact_event_record
from shared.settings import Settings
from tests.fixtures.broker import produce_raw, read_topic, unique_name
from tests.fixtures.services import PSEUDONYM_KEY, running_worker

GOOD_RECORDS = 240
HUGE = 2 * 1024 * 1024


def transaction(run: str, i: int, **overrides: Any) -> dict[str, Any]:
    return {
        "transaction_id": f"{run}-{i}",
        "timestamp": f"2018-08-09T{i % 24:02d}:{i % 60:02d}:00+00:00",
        "customer_id": f"{run}-card-{i % 13}",
        "terminal_id": f"{run}-term-{i % 17}",
        "amount": 5.0 + i,
        **overrides,
    }


def cloud_event(data: Any, event_type: str = PAYMENTS_TRANSACTIONS.event_type) -> dict[str, Any]:
    return make_event(event_type, "/tests/poison", data)


def poison_records(run: str) -> dict[str, tuple[bytes, str]]:
    """Each kind of poison: its record value and the dead-letter code it must get."""
    deep = b'{"specversion":"1.0","id":"d","source":"/s","type":"t","data":{"x":' + b"[" * 10_000 + b"]" * 10_000
    envelope = cloud_event(transaction(run, 9000))
    without_data = {name: value for name, value in envelope.items() if name != "data"}
    return {
        "deep": (deep + b"}}", "undecodable"),
        "deep_but_parsable": (encode(cloud_event({"x": json.loads("[" * 500 + "]" * 500)})), "undecodable"),
        "huge_string": (encode(cloud_event(transaction(run, 9001, terminal_id="x" * HUGE))), "invalid_input"),
        "huge_type": (encode(cloud_event(transaction(run, 9002), event_type="t" * HUGE)), "wrong_event_type"),
        "not_utf8": (b'{"specversion": "1.0", "id": "\xff\xfe"}', "undecodable"),
        "not_json": (b"this is not json {", "undecodable"),
        "array": (b'[{"specversion": "1.0"}]', "undecodable"),
        "wrong_type": (encode(cloud_event(transaction(run, 9003), event_type="com.example.v1")), "wrong_event_type"),
        "missing_data": (encode(without_data), "undecodable"),
        "lone_surrogate": (
            encode(cloud_event(transaction(run, 9004))).replace(f"{run}-9004".encode(), b"\\ud800"),
            "invalid_input",
        ),
    }


def decided_ids(records: list[ConsumerRecord], run: str) -> set[str]:
    ids = (json.loads(record.value)["data"]["event_id"] for record in records)
    return {event_id for event_id in ids if event_id.startswith(f"{run}-")}


def poison_key(run: str, name: str) -> bytes:
    return f"{run}:{name}".encode()


def poison_of(records: list[ConsumerRecord], run: str, names: Iterable[str]) -> dict[str, ConsumerRecord]:
    """The dead letters of the poison records, found by their keys (pseudonymised, like card ids)."""
    named = {pseudonymise(poison_key(run, name).decode(), PSEUDONYM_KEY.encode()).encode(): name for name in names}
    return {named[record.key]: record for record in records if record.key in named}


def redacted(key: bytes, value: bytes) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """What a fraud dead letter keeps of a record: card ids pseudonymised, unknown fields dropped, what is
    not a JSON event withheld."""
    return redact_event_record(
        key,
        value,
        known_fields=frozenset(TransactionSchema().fields),
        personal_fields=frozenset(FraudService.personal_fields),
        secret=PSEUDONYM_KEY.encode(),
    )


def test_poison_records_are_dead_lettered_and_never_stop_or_restart_the_worker(
    kafka_broker: Any, fraud_settings: Settings, tmp_path: Path
) -> None:
    """A flood of 240 good transactions with every kind of poison spread among them (10,000-deep nesting,
    500-deep nesting the parser could read, a 2 MiB field, a 2 MiB event type, invalid UTF-8, not JSON, a
    JSON array, the wrong event type, no data, a lone surrogate): every good one is decided, every poison
    one dead-lettered with its reason and origin, keyed by the key's pseudonym, as the redacted copy (the
    six that are no JSON event withheld); the two too large for the broker keep their headers and the first
    64 KiB of that copy, marked truncated; the one worker process runs throughout, starts once and exits 0
    on SIGTERM."""
    settings = replace(fraud_settings, kafka_bootstrap_servers=kafka_broker.bootstrap_servers)
    bootstrap = settings.kafka_bootstrap_servers
    run = unique_name("poison-")
    poison = poison_records(run)
    good = [transaction(run, i) for i in range(GOOD_RECORDS)]
    flooded: list[tuple[bytes, bytes]] = [
        (good_event["customer_id"].encode(), encode(cloud_event(good_event))) for good_event in good
    ]
    for position, (name, (value, _code)) in enumerate(poison.items()):
        flooded.insert(position * (GOOD_RECORDS // len(poison)) + 7, (poison_key(run, name), value))
    log_path = tmp_path / "worker.log"
    started = time.monotonic()
    with running_worker("fraud", settings, log_path) as worker:
        produce_raw(bootstrap, PAYMENTS_TRANSACTIONS, flooded, max_request_size=8 * 1024 * 1024)  # MiB records
        expected_ids = {event["transaction_id"] for event in good}
        decisions = read_topic(
            bootstrap, FRAUD_DECISIONS, lambda found: decided_ids(found, run) >= expected_ids, timeout=45
        )
        dead = read_topic(
            bootstrap,
            PAYMENTS_TRANSACTIONS.dead_letter,
            lambda found: poison_of(found, run, poison).keys() >= poison.keys(),
        )
        assert worker.poll() is None, log_path.read_text()
        worker.terminate()
        assert worker.wait(timeout=30) == 0, log_path.read_text()
    assert time.monotonic() - started < 60

    assert decided_ids(decisions, run) == expected_ids
    dead_letters = poison_of(dead, run, poison)
    assert dead_letters.keys() == poison.keys()
    for name, record in dead_letters.items():
        headers = dict(record.headers)
        error = json.loads(headers["error"])
        assert error["code"] == poison[name][1], (name, error)
        assert headers["source_topic"] == PAYMENTS_TRANSACTIONS.name.encode()
        assert int(headers["source_partition"]) in range(PAYMENTS_TRANSACTIONS.partitions)
        assert int(headers["source_offset"]) >= 0
        key, kept, redaction = redacted(poison_key(run, name), poison[name][0])
        assert record.key == key and set(redaction) <= set(record.headers), name
        if name in {"huge_string", "huge_type"}:
            assert kept is not None and headers["truncated"] == b"true"
            assert int(headers["original_value_bytes"]) == len(kept)
            assert record.value == kept[:DEAD_LETTER_EXCERPT_BYTES]
        else:
            assert "truncated" not in headers
            assert record.value == kept, f"{name}: a dead letter keeps the redacted copy, or nothing"
    withheld = {
        name for name, record in dead_letters.items() if dict(record.headers)["payload"].startswith(b"withheld")
    }
    assert withheld == {"deep", "deep_but_parsable", "not_utf8", "not_json", "array", "missing_data"}
    assert "nested more than" in json.loads(dict(dead_letters["deep"].headers)["error"])["fields"]["_record"][0]
    assert len(dict(dead_letters["huge_type"].headers)["error"]) < 16 * 1024

    logs = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    assert [entry["event"] for entry in logs].count("stream_worker_started") == 1, "the worker never restarts"
    assert not [entry for entry in logs if entry.get("level") in {"error", "critical"}], "nothing failed"
