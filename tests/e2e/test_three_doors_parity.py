"""The same 1,000 transactions through HTTP, Kafka and batch give the same score, decision and rule hits."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests

from services.fraud_detection.dataset import simulate
from services.fraud_detection.features import events_from_simulation
from shared.events.broker import EmbeddedBroker, ensure_topics
from shared.events.topics import FRAUD_DECISIONS, PAYMENTS_TRANSACTIONS
from shared.settings import Settings
from tests.fixtures.kafka_io import collect, decision_payloads, publish
from tests.fixtures.services import API_KEY, running_server, running_worker, service_environment

EVENTS = 1_000


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    """1,000 consecutive transactions of a small population, so card windows are full and terminals
    have history older than the 7-day delay."""
    transactions = simulate(n_customers=40, n_terminals=80, nb_days=40, processes=1)
    chosen = transactions.iloc[-EVENTS:]
    return events_from_simulation(chosen)


def _fresh(settings: Settings, tmp_path: Path, name: str) -> Settings:
    return replace(settings, state_url=f"sqlite:///{tmp_path / f'{name}.sqlite3'}")


def test_http_kafka_and_batch_agree(events: list[dict[str, Any]], fraud_settings: Settings, tmp_path: Path) -> None:
    """Each door has its own fresh state and sees the events in the same order (the input topic has one
    partition here so the stream is totally ordered, like the file); every decision must agree: score to
    1e-9, decision, rule hits and reasons."""
    over_http = _through_http(events, _fresh(fraud_settings, tmp_path, "http"), tmp_path)
    over_kafka = _through_kafka(events, _fresh(fraud_settings, tmp_path, "kafka"), tmp_path)
    in_batch = _through_batch(events, fraud_settings, tmp_path)

    assert len(over_http) == len(over_kafka) == len(in_batch) == EVENTS
    flagged = 0
    for event in events:
        key = event["transaction_id"]
        h, k, b = over_http[key], over_kafka[key], in_batch[key]
        assert abs(h["score"] - k["score"]) <= 1e-9 and abs(h["score"] - b["score"]) <= 1e-9, key
        assert h["decision"] == k["decision"] == b["decision"], key
        assert h["rule_hits"] == k["rule_hits"] == b["rule_hits"], key
        assert h["input_fingerprint"] == k["input_fingerprint"] == b["input_fingerprint"], key
        assert (
            [r["feature"] for r in h["reasons"]]
            == [r["feature"] for r in k["reasons"]]
            == [r["feature"] for r in b["reasons"]]
        )
        flagged += h["decision"] != "approve"
    assert 0 < flagged < EVENTS, "the sample should exercise both approvals and other decisions"


def _through_http(events: list[dict[str, Any]], settings: Settings, tmp_path: Path) -> dict[str, dict[str, Any]]:
    decisions: dict[str, dict[str, Any]] = {}
    with running_server("fraud", settings, tmp_path / "gunicorn.log") as server:
        for start in range(0, len(events), 100):
            response = requests.post(
                f"{server.base_url}/v1/score",
                json={"events": events[start : start + 100]},
                headers={"X-API-Key": API_KEY},
                timeout=30,
            )
            assert response.status_code == 200, response.text
            decisions.update({d["event_id"]: d for d in response.json()["decisions"]})
    return decisions


def _through_kafka(events: list[dict[str, Any]], settings: Settings, tmp_path: Path) -> dict[str, dict[str, Any]]:
    with EmbeddedBroker(port=0) as broker:
        ensure_topics(
            broker.bootstrap_servers,
            [replace(PAYMENTS_TRANSACTIONS, partitions=1), FRAUD_DECISIONS, PAYMENTS_TRANSACTIONS.dead_letter],
        )
        settings = replace(settings, kafka_bootstrap_servers=broker.bootstrap_servers)
        with running_worker("fraud", settings, tmp_path / "worker.log"):
            publish(broker.bootstrap_servers, PAYMENTS_TRANSACTIONS, events, "customer_id")
            records = collect(broker.bootstrap_servers, FRAUD_DECISIONS, lambda r: len(r) >= len(events), timeout=120)
    return {d["event_id"]: d for d in decision_payloads(records)}


def _through_batch(events: list[dict[str, Any]], settings: Settings, tmp_path: Path) -> dict[str, dict[str, Any]]:
    source, output = tmp_path / "transactions.csv", tmp_path / "decisions.parquet"
    pd.DataFrame(events).to_csv(source, index=False)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "rescore",
            "fraud",
            "--input",
            str(source),
            "--output",
            str(output),
            "--no-progress",
        ],
        env=service_environment(settings),
        check=True,
        capture_output=True,
    )
    rows = pd.read_parquet(output).to_dict(orient="records")
    for row in rows:
        for nested in ("reasons", "rule_hits", "model", "feature_set"):
            row[nested] = json.loads(row[nested])
    return {row["event_id"]: row for row in rows}
