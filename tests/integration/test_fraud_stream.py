"""The fraud stream door: `risk stream fraud` as a real process against the real broker."""

from __future__ import annotations

import json
import signal
import uuid
from pathlib import Path
from typing import Any

import jsonschema

from shared.events.topics import FRAUD_DECISIONS, PAYMENTS_TRANSACTIONS
from shared.settings import Settings
from tests.fixtures.kafka_io import collect, publish, publish_raw
from tests.fixtures.services import running_worker

REPO = Path(__file__).resolve().parents[2]
DECISION_EVENT_SCHEMA = json.loads((REPO / "contracts/events/decision.v1.json").read_text())


RUN = uuid.uuid4().hex[:8]  # the broker is shared by the session: this module's records carry its own tag


def tx(i: int, **overrides: Any) -> dict[str, Any]:
    return {
        "transaction_id": f"s{RUN}-{i}",
        "timestamp": f"2018-08-08T10:{i % 60:02d}:00+00:00",
        "customer_id": f"card-{i % 7}",
        "terminal_id": f"term-{i % 11}",
        "amount": 20.0 + i,
        **overrides,
    }


def _ours(records: list[Any]) -> list[Any]:
    return [r for r in records if RUN.encode() in r.value]


def test_worker_scores_good_records_dead_letters_bad_ones_and_exits_cleanly(
    kafka_broker: Any, fraud_settings: Settings, tmp_path: Path
) -> None:
    """Valid transactions become decisions keyed by customer on fraud.decisions (valid CloudEvents per
    contracts/); invalid ones and undecodable bytes go to payments.transactions.dlq with the original
    bytes and the error; the worker keeps going past them and exits 0 on SIGTERM."""
    from dataclasses import replace

    settings = replace(fraud_settings, kafka_bootstrap_servers=kafka_broker.bootstrap_servers)
    good = [tx(i) for i in range(40)]
    bad_event = tx(99, amount=-10)
    undecodable = b"\x00\x01 definitely not json " + RUN.encode()
    with running_worker("fraud", settings, tmp_path / "worker.log") as worker:
        publish(settings.kafka_bootstrap_servers, PAYMENTS_TRANSACTIONS, good[:20], "customer_id")
        publish_raw(settings.kafka_bootstrap_servers, PAYMENTS_TRANSACTIONS, [(b"card-x", undecodable)])
        publish(settings.kafka_bootstrap_servers, PAYMENTS_TRANSACTIONS, [bad_event], "customer_id")
        publish(settings.kafka_bootstrap_servers, PAYMENTS_TRANSACTIONS, good[20:], "customer_id")
        records = _ours(collect(settings.kafka_bootstrap_servers, FRAUD_DECISIONS, lambda r: len(_ours(r)) >= 40))
        dead = _ours(
            collect(settings.kafka_bootstrap_servers, PAYMENTS_TRANSACTIONS.dead_letter, lambda r: len(_ours(r)) >= 2)
        )
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0, (tmp_path / "worker.log").read_text()

    assert sorted(json.loads(r.value)["data"]["event_id"] for r in records) == sorted(e["transaction_id"] for e in good)
    for record in records:
        event = json.loads(record.value)
        jsonschema.validate(event, DECISION_EVENT_SCHEMA)
        assert record.key.decode() == event["data"]["entity_id"]
        assert event["type"] == FRAUD_DECISIONS.event_type

    assert len(dead) == 2
    by_value = {r.value: dict(r.headers) for r in dead}
    assert undecodable in by_value
    invalid = next(v for v in by_value if v != undecodable)
    assert json.loads(invalid)["data"]["transaction_id"] == f"s{RUN}-99"
    error = json.loads(by_value[invalid]["error"])
    assert error["code"] == "invalid_input" and "amount" in error["fields"]


def test_the_worker_serves_its_metrics_and_health_on_a_port_of_its_own(
    kafka_broker: Any, fraud_settings: Settings, tmp_path: Path
) -> None:
    """`risk stream fraud --metrics-port N`: /healthz answers 200 while the loop polls, and /metrics counts
    the records consumed and the decisions made by the stream door; another path is a 404."""
    import time
    from dataclasses import replace

    import requests

    from tests.fixtures.services import free_port

    settings = replace(fraud_settings, kafka_bootstrap_servers=kafka_broker.bootstrap_servers)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    events = [tx(1000 + i, transaction_id=f"m{RUN}-{i}") for i in range(10)]
    with running_worker("fraud", settings, tmp_path / "worker.log", "--metrics-port", str(port)):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        publish(settings.kafka_bootstrap_servers, PAYMENTS_TRANSACTIONS, events, "customer_id")
        ours = lambda records: [r for r in records if f"m{RUN}-".encode() in r.value]
        assert len(ours(collect(settings.kafka_bootstrap_servers, FRAUD_DECISIONS, lambda r: len(ours(r)) >= 10))) >= 10
        health = requests.get(f"{base}/healthz", timeout=5)
        metrics = requests.get(f"{base}/metrics", timeout=5).text
        missing = requests.get(f"{base}/nothing", timeout=5).status_code
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert health.json()["seconds_since_poll"] < 30
    assert 'risk_stream_records_total{topic="payments.transactions"}' in metrics
    decided = [
        line for line in metrics.splitlines() if line.startswith("risk_decisions_total{") and 'door="stream"' in line
    ]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in decided) >= 10
    assert missing == 404
