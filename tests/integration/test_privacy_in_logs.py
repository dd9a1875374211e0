"""Card and customer identifiers never appear raw in logs, whatever door the event came through."""

from __future__ import annotations

import json
import signal
from dataclasses import replace
from pathlib import Path
from typing import Any

import requests

from shared.events.topics import FRAUD_DECISIONS, PAYMENTS_TRANSACTIONS
from shared.privacy import pseudonymise
from shared.settings import Settings
from tests.fixtures.kafka_io import collect, publish
from tests.fixtures.services import API_KEY, PSEUDONYM_KEY, running_server, running_worker

PLANTED_CARD = "card-4929-1234-5678-9012"


def event(i: int) -> dict[str, Any]:
    return {
        "transaction_id": f"p-{i}",
        "timestamp": f"2018-08-08T11:{i:02d}:00+00:00",
        "customer_id": PLANTED_CARD,
        "terminal_id": "t-1",
        "amount": 12.5 + i,
    }


def test_planted_card_number_is_masked_in_http_and_stream_logs(
    kafka_broker: Any, fraud_settings: Settings, tmp_path: Path
) -> None:
    """A card id planted in traffic is absent from every captured log line, and its keyed pseudonym is
    there instead (so the logs still let an operator follow one card)."""
    settings = replace(fraud_settings, kafka_bootstrap_servers=kafka_broker.bootstrap_servers)
    with running_server("fraud", settings, tmp_path / "http.log") as server:
        for i in range(3):
            ok = requests.post(f"{server.base_url}/v1/score", json=event(i), headers={"X-API-Key": API_KEY}, timeout=10)
            assert ok.status_code == 200
        bad = requests.post(
            f"{server.base_url}/v1/score", json={**event(9), "amount": "x"}, headers={"X-API-Key": API_KEY}, timeout=10
        )
        assert bad.status_code == 422
    with running_worker("fraud", settings, tmp_path / "stream.log") as worker:
        publish(
            settings.kafka_bootstrap_servers, PAYMENTS_TRANSACTIONS, [event(i) for i in range(10, 14)], "customer_id"
        )
        decisions = collect(
            settings.kafka_bootstrap_servers,
            FRAUD_DECISIONS,
            lambda r: sum(json.loads(x.value)["data"]["event_id"].startswith("p-1") for x in r) >= 4,
        )
        assert decisions
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)

    logs = (tmp_path / "http.log").read_text() + (tmp_path / "stream.log").read_text()
    assert "http_request" in logs and "stream_batch_scored" in logs, logs[-2000:]
    assert PLANTED_CARD not in logs
    assert pseudonymise(PLANTED_CARD, PSEUDONYM_KEY.encode()) in logs
