"""Card ids planted in fraud's traffic never leave the service raw, whatever the door: not in HTTP answers,
decision records or their Kafka keys, dead letters, batch output or rejects, the decision store's tables,
the window-state store (SQLite or Redis), the monitor's report or any log line. Their keyed pseudonym is
there instead, so a card can still be followed, and a search by the raw id still finds its decisions."""

from __future__ import annotations

import json
import signal
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import redis
import requests

from shared.decisions import DecisionStore
from shared.events.broker import EmbeddedBroker
from shared.events.topics import FRAUD_DECISIONS, PAYMENTS_TRANSACTIONS
from shared.privacy import pseudonymise
from shared.settings import Settings
from tests.fixtures.broker import unique_name
from tests.fixtures.kafka_io import collect, decision_payloads, publish, publish_raw
from tests.fixtures.redis import flush_redis
from tests.fixtures.services import API_KEY, PSEUDONYM_KEY, risk, running_server, running_worker, scoring_app

PLANTED = ("card-4929-1234-5678-9012", "5425-2334-3010-9903", "4539 8765 4321 0987")
AUTH = {"X-API-Key": API_KEY}


def pseudonym(card: str) -> str:
    return pseudonymise(card, PSEUDONYM_KEY.encode())


def payments(tag: str, count: int = 12) -> list[dict[str, Any]]:
    """`count` payments over the planted cards, a minute apart, with ids of their own (`tag`)."""
    return [
        {
            "transaction_id": f"{tag}-{n}",
            "timestamp": f"2018-08-08T12:{n:02d}:00+00:00",
            "customer_id": PLANTED[n % len(PLANTED)],
            "terminal_id": f"t-{n % 4}",
            "amount": 15.0 + 40 * n,
        }
        for n in range(count)
    ]


def test_no_planted_card_id_leaves_any_door_raw(
    kafka_broker: EmbeddedBroker, fraud_settings: Settings, tmp_path: Path
) -> None:
    """The planted cards go through HTTP (scores, a 422, a search by raw id, one decision, an outcome), the
    stream (decisions, an invalid event and bytes that are no JSON, both keyed by the raw id), batch (with
    a rejected row, `--record`) and the monitor; then every answer, record, key, header, output file, store
    table and log is read: no raw card id anywhere, the pseudonyms present, searches by raw id answered."""
    settings = replace(fraud_settings, kafka_bootstrap_servers=kafka_broker.bootstrap_servers)
    run = unique_name("planted-")
    texts = [
        _through_http(payments(f"{run}-h"), settings, tmp_path),
        _through_kafka(payments(f"{run}-k"), settings, tmp_path, run),
        _through_batch(payments(f"{run}-b"), settings, tmp_path),
    ]
    found = risk(settings, "decisions", "search", "fraud", "--entity-id", PLANTED[0])
    assert found.returncode == 0, found.stderr
    rows = [json.loads(line) for line in found.stdout.splitlines()]
    assert len(rows) == 12 and {row["entity_id"] for row in rows} == {pseudonym(PLANTED[0])}
    monitored = risk(settings, "monitor", "fraud", "--json")
    assert monitored.returncode == 0, monitored.stderr
    texts += [found.stdout, found.stderr, monitored.stdout, monitored.stderr]
    texts += [_sqlite_dump(settings.decisions_url), _sqlite_dump(settings.state_url)]
    logs = [(tmp_path / name).read_text(errors="replace") for name in ("http.log", "stream.log")]
    logged = {card for log in logs for line in _json_lines(log) for card in line.get("entity_ids") or ()}
    assert logged == {pseudonym(card) for card in PLANTED}, "the logs name each card as its decisions do"
    texts += logs

    everything = "\n".join(texts)
    assert [card for card in PLANTED if card in everything] == []
    assert all(pseudonym(card) in everything for card in PLANTED)
    state = _sqlite_dump(settings.state_url)
    assert all(pseudonym(card) in state for card in PLANTED), "card windows are keyed by the pseudonym"


def test_redis_window_state_holds_only_pseudonyms(fraud_settings: Settings, redis_url: str) -> None:
    """Scored with Redis as the window-state store, no key or value there holds a planted card id: the card
    windows are keyed by the pseudonyms, and the card's history is found under them (counts grow)."""
    flush_redis(redis_url)
    client = scoring_app("fraud", replace(fraud_settings, state_url=redis_url)).test_client()
    events = payments("redis")
    answer = client.post("/v1/score", json={"events": events}, headers=AUTH)
    assert answer.status_code == 200, answer.get_json()
    first_card = [e["transaction_id"] for e in events if e["customer_id"] == PLANTED[0]]
    recorded = DecisionStore(fraud_settings.decisions_url).find("fraud", first_card)
    assert [recorded[i].features["customer_nb_tx_1d"] for i in first_card] == [1.0, 2.0, 3.0, 4.0]
    everything = _redis_dump(redis_url)
    assert [card for card in PLANTED if card in everything] == []
    assert all(pseudonym(card) in everything for card in PLANTED)


def test_offline_features_are_the_same_from_raw_or_pseudonymised_card_ids() -> None:
    """Training reads raw simulated ids while every door reads the contract's pseudonyms: the card is only a
    key to the features, so a simulated month gives the very same feature values either way."""
    from services.fraud_detection.dataset import simulate
    from services.fraud_detection.features import events_from_simulation, frame_from_events, offline_features
    from services.fraud_detection.service import FraudService
    from shared.core.contract import Contract

    events = events_from_simulation(simulate(n_customers=60, n_terminals=120, nb_days=30, processes=1))
    contract = Contract(FraudService.event_schema, FraudService.personal_fields, PSEUDONYM_KEY.encode())
    validated = [contract.validate(e).data for e in events]
    assert {e["customer_id"] for e in validated} == {pseudonym(e["customer_id"]) for e in events}
    raw = [{**e, "customer_id": original["customer_id"]} for e, original in zip(validated, events, strict=True)]
    pd.testing.assert_frame_equal(
        offline_features(frame_from_events(validated)), offline_features(frame_from_events(raw))
    )


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _through_http(events: list[dict[str, Any]], settings: Settings, tmp_path: Path) -> str:
    texts = []
    with running_server("fraud", settings, tmp_path / "http.log") as server:
        url = server.base_url
        scored = requests.post(f"{url}/v1/score", json={"events": events}, headers=AUTH, timeout=30)
        assert scored.status_code == 200, scored.text
        decisions = scored.json()["decisions"]
        assert [d["event_id"] for d in decisions] == [e["transaction_id"] for e in events], "ids come back"
        assert [d["entity_id"] for d in decisions] == [pseudonym(e["customer_id"]) for e in events]
        refused = requests.post(f"{url}/v1/score", json={**events[0], "amount": "x"}, headers=AUTH, timeout=10)
        assert refused.status_code == 422 and list(refused.json()["fields"]) == ["amount"]
        search = requests.get(f"{url}/v1/decisions", params={"entity_id": PLANTED[1]}, headers=AUTH, timeout=10)
        assert search.status_code == 200
        assert {d["event_id"] for d in search.json()["decisions"]} == {e["transaction_id"] for e in events[1::3]}
        by_pseudonym = requests.get(
            f"{url}/v1/decisions", params={"entity_id": pseudonym(PLANTED[1])}, headers=AUTH, timeout=10
        )
        assert by_pseudonym.json() == search.json(), "the entity id a decision shows finds the same decisions"
        one = requests.get(f"{url}/v1/decisions/{events[0]['transaction_id']}", headers=AUTH, timeout=10)
        assert one.status_code == 200 and one.json()["entity_id"] == pseudonym(PLANTED[0])
        outcome = {
            "transaction_id": events[0]["transaction_id"],
            "outcome": "fraud",
            "source": "chargeback",
            "reported_at": datetime.now(UTC).isoformat(),
        }
        learnt = requests.post(f"{url}/v1/outcomes", json=outcome, headers=AUTH, timeout=10)
        assert learnt.status_code == 200 and learnt.json()["status"] == "recorded", learnt.text
        texts += [scored.text, refused.text, search.text, one.text, learnt.text]
    return "\n".join(texts)


def _through_kafka(events: list[dict[str, Any]], settings: Settings, tmp_path: Path, run: str) -> str:
    bootstrap = settings.kafka_bootstrap_servers
    invalid = {**events[0], "transaction_id": f"{run}-bad", "amount": -1}
    not_json = f"{{not json, card {PLANTED[2]} {run}".encode()
    ours = {e["transaction_id"] for e in events}
    dead_keys = {pseudonym(PLANTED[0]).encode(), pseudonym(PLANTED[2]).encode()}
    with running_worker("fraud", settings, tmp_path / "stream.log") as worker:
        publish(bootstrap, PAYMENTS_TRANSACTIONS, [*events, invalid], "customer_id")
        publish_raw(bootstrap, PAYMENTS_TRANSACTIONS, [(PLANTED[2].encode(), not_json)])
        records = collect(
            bootstrap, FRAUD_DECISIONS, lambda r: ours <= {d["event_id"] for d in decision_payloads(r)}, timeout=90
        )
        is_ours = lambda r: r.key in dead_keys and (run.encode() in (r.value or b"") or r.value is None)
        dead = collect(
            bootstrap, PAYMENTS_TRANSACTIONS.dead_letter, lambda r: len([x for x in r if is_ours(x)]) >= 2, timeout=60
        )
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    records = [r for r in records if json.loads(r.value)["data"]["event_id"] in ours]
    assert len(records) == len(events)
    assert all(r.key.decode() == json.loads(r.value)["data"]["entity_id"] for r in records)
    dead = [r for r in dead if is_ours(r)]
    assert sorted(dict(r.headers)["payload"].split(b":")[0] for r in dead) == [b"redacted", b"withheld"]
    return "\n".join(_record_text(r) for r in [*records, *dead])


def _through_batch(events: list[dict[str, Any]], settings: Settings, tmp_path: Path) -> str:
    source, output = tmp_path / "payments.csv", tmp_path / "decisions.jsonl"
    bad = {**events[0], "transaction_id": "batch-bad", "amount": "lots"}
    pd.DataFrame([*events, bad]).to_csv(source, index=False)
    arguments = ["rescore", "fraud", "--input", str(source), "--output", str(output), "--no-progress", "--record"]
    done = risk(settings, *arguments, "--max-rejects", "1")
    assert done.returncode == 0, done.stderr
    decisions = [json.loads(line) for line in output.read_text().splitlines()]
    assert [d["entity_id"] for d in decisions] == [pseudonym(e["customer_id"]) for e in events]
    kept = risk(settings, *arguments, "--keep", "customer_id")
    assert kept.returncode != 0 and "--keep customer_id: personal data is never written out" in kept.stderr
    rejects = Path(f"{output}.rejects.jsonl").read_text()
    return "\n".join([output.read_text(), rejects, done.stdout, done.stderr, kept.stdout, kept.stderr])


def _sqlite_dump(url: str) -> str:
    """Every table of a SQLite store, as SQL text (its write-ahead log included)."""
    connection = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        return "\n".join(connection.iterdump())
    finally:
        connection.close()


def _redis_dump(url: str) -> str:
    """Every key of the Redis database and every member, field and value it holds, as text."""
    client: Any = redis.Redis.from_url(url)  # untyped answers: bytes, lists, dicts by the key's type
    readers = {
        b"string": lambda key: [client.get(key)],
        b"hash": lambda key: [part for pair in client.hgetall(key).items() for part in pair],
        b"zset": lambda key: client.zrange(key, 0, -1),
        b"set": lambda key: list(client.smembers(key)),
        b"list": lambda key: client.lrange(key, 0, -1),
    }
    try:
        parts: list[bytes] = []
        for key in client.scan_iter(count=1000):
            kind = client.type(key)
            parts += [key, kind, *(value or b"" for value in readers[kind](key))]
        return b"\n".join(parts).decode(errors="replace")
    finally:
        client.close()


def _record_text(record: Any) -> str:
    headers = " ".join(f"{k}={v.decode(errors='replace')}" for k, v in (record.headers or []))
    key = record.key.decode(errors="replace") if record.key else ""
    return f"{key} {record.value.decode(errors='replace') if record.value else ''} {headers}"
