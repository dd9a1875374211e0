"""The fraud stream door: `risk stream fraud` as a real process against the real broker."""

from __future__ import annotations

import json
import signal
import uuid
from pathlib import Path
from typing import Any

import jsonschema

from shared.events.topics import FRAUD_DECISIONS, PAYMENTS_TRANSACTIONS
from shared.privacy import pseudonymise
from shared.settings import Settings
from tests.fixtures.kafka_io import collect, publish, publish_raw
from tests.fixtures.services import PSEUDONYM_KEY, rescored, running_worker

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


def pseudonym(card: str) -> str:
    return pseudonymise(card, PSEUDONYM_KEY.encode())


def _ours(records: list[Any]) -> list[Any]:
    return [r for r in records if RUN.encode() in r.value]


def test_worker_scores_good_records_dead_letters_bad_ones_and_exits_cleanly(
    kafka_broker: Any, fraud_settings: Settings, tmp_path: Path
) -> None:
    """Valid transactions become decisions keyed by the card's pseudonym on fraud.decisions (valid
    CloudEvents per contracts/); invalid ones and undecodable bytes go to payments.transactions.dlq with the
    error, keyed by the pseudonym too: the invalid event as a redacted copy (card id pseudonymised), the
    bytes that are no JSON withheld (they could hold a card number); the worker keeps going past them and
    exits 0 on SIGTERM."""
    from dataclasses import replace

    settings = replace(fraud_settings, kafka_bootstrap_servers=kafka_broker.bootstrap_servers)
    good = [tx(i) for i in range(40)]
    bad_event = tx(99, amount=-10)
    undecodable = b"\x00\x01 definitely not json " + RUN.encode()
    undecodable_key = f"card-x-{RUN}".encode()
    with running_worker("fraud", settings, tmp_path / "worker.log") as worker:
        publish(settings.kafka_bootstrap_servers, PAYMENTS_TRANSACTIONS, good[:20], "customer_id")
        publish_raw(settings.kafka_bootstrap_servers, PAYMENTS_TRANSACTIONS, [(undecodable_key, undecodable)])
        publish(settings.kafka_bootstrap_servers, PAYMENTS_TRANSACTIONS, [bad_event], "customer_id")
        publish(settings.kafka_bootstrap_servers, PAYMENTS_TRANSACTIONS, good[20:], "customer_id")
        records = _ours(collect(settings.kafka_bootstrap_servers, FRAUD_DECISIONS, lambda r: len(_ours(r)) >= 40))
        withheld_key = pseudonym(undecodable_key.decode()).encode()
        ours = lambda found: [r for r in found if r.key == withheld_key or RUN.encode() in (r.value or b"")]
        dead = ours(
            collect(settings.kafka_bootstrap_servers, PAYMENTS_TRANSACTIONS.dead_letter, lambda r: len(ours(r)) >= 2)
        )
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0, (tmp_path / "worker.log").read_text()

    assert sorted(json.loads(r.value)["data"]["event_id"] for r in records) == sorted(e["transaction_id"] for e in good)
    cards = {e["transaction_id"]: pseudonym(e["customer_id"]) for e in good}
    for record in records:
        event = json.loads(record.value)
        jsonschema.validate(event, DECISION_EVENT_SCHEMA)
        assert record.key.decode() == event["data"]["entity_id"] == cards[event["data"]["event_id"]]
        assert event["type"] == FRAUD_DECISIONS.event_type

    assert len(dead) == 2
    withheld = next(r for r in dead if r.key == withheld_key)
    assert withheld.value is None and dict(withheld.headers)["payload"].startswith(b"withheld")
    assert json.loads(dict(withheld.headers)["error"])["code"] == "undecodable"
    invalid = next(r for r in dead if r is not withheld)
    assert invalid.key == pseudonym(bad_event["customer_id"]).encode()
    redacted = json.loads(invalid.value)["data"]
    assert redacted == {**bad_event, "customer_id": pseudonym(bad_event["customer_id"])}
    error = json.loads(dict(invalid.headers)["error"])
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


def test_a_history_skewed_across_partitions_gets_exactly_the_offline_features_and_decisions(
    fraud_settings: Settings, tmp_path: Path
) -> None:
    """30 days of payments, each card on one of four partitions, published partition after partition (all
    of partition 0's month first, then partition 1's...), so the broker hands the worker records far apart in
    event time while terminal windows span partitions. One worker, started on that backlog, orders them by
    event time: every event's 16 features equal the offline features of the whole history, and every score,
    decision, rule hit and reason equals `risk rescore` on the same events."""
    from dataclasses import replace

    import numpy as np
    import pandas as pd

    from services.fraud_detection.dataset import simulate
    from services.fraud_detection.features import FEATURE_SET, events_from_simulation, frame_from_events
    from services.fraud_detection.features import offline_features as fraud_offline_features
    from services.fraud_detection.schemas import TransactionSchema
    from shared.decisions import DecisionStore
    from shared.events.broker import EmbeddedBroker, ensure_topics
    from shared.events.topics import ALL_TOPICS
    from tests.fixtures.kafka_io import decision_payloads, publish_by_partition

    events = events_from_simulation(simulate(n_customers=80, n_terminals=120, nb_days=30, radius=15.0, processes=1))
    cards = sorted({e["customer_id"] for e in events})
    partition_of = {card: n % PAYMENTS_TRANSACTIONS.partitions for n, card in enumerate(cards)}
    skewed = sorted(events, key=lambda e: partition_of[e["customer_id"]])  # stable: time order within each
    spanning = {
        terminal
        for terminal in {e["terminal_id"] for e in events}
        if len({partition_of[e["customer_id"]] for e in events if e["terminal_id"] == terminal}) > 1
    }
    assert len(events) > 2000 and len(spanning) > 50, "the test needs terminals whose windows span partitions"

    settings = replace(fraud_settings, state_url=f"sqlite:///{tmp_path / 'stream-state.sqlite3'}")
    with EmbeddedBroker(port=0) as broker:
        ensure_topics(broker.bootstrap_servers, ALL_TOPICS)
        settings = replace(settings, kafka_bootstrap_servers=broker.bootstrap_servers)
        publish_by_partition(broker.bootstrap_servers, PAYMENTS_TRANSACTIONS, skewed, "customer_id", partition_of.get)
        with running_worker("fraud", settings, tmp_path / "worker.log"):
            records = collect(broker.bootstrap_servers, FRAUD_DECISIONS, lambda r: len(r) >= len(events), timeout=180)
    streamed = {d["event_id"]: d for d in decision_payloads(records)}
    assert len(streamed) == len(events), (tmp_path / "worker.log").read_text()[-3000:]

    loaded = [TransactionSchema().load(e) for e in events]
    offline = fraud_offline_features(frame_from_events(loaded))
    recorded = DecisionStore(settings.decisions_url).find("fraud", [e["transaction_id"] for e in events])
    online = pd.DataFrame([recorded[e["transaction_id"]].features for e in events])[list(FEATURE_SET.features)]
    np.testing.assert_allclose(online.to_numpy(dtype=float), offline.to_numpy(dtype=float), rtol=0, atol=1e-9)

    in_batch = rescored("fraud", events, fraud_settings, tmp_path)
    flagged = 0
    for event in events:
        key = event["transaction_id"]
        s, b = streamed[key], in_batch[key]
        assert abs(s["score"] - b["score"]) <= 1e-9, key
        assert (s["decision"], s["rule_hits"]) == (b["decision"], b["rule_hits"]), key
        assert [r["feature"] for r in s["reasons"]] == [r["feature"] for r in b["reasons"]], key
        flagged += s["decision"] != "approve"
    assert flagged > 0, "the month should hold decisions other than approve"
