"""The HTTP door under gunicorn's threaded workers: concurrent requests in one worker are each decided and
recorded once, on either decision store, and the same events sent again concurrently are replayed."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests

from shared.decisions import DecisionStore
from shared.settings import Settings
from tests.fixtures.services import API_KEY, running_server

AUTH = {"X-API-Key": API_KEY}
EVENTS = 48
AT_ONCE = 12  # more than a worker's threads, so requests queue for them as well as run together


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, fraud_settings: Settings) -> Settings:
    """The fraud service's settings with the decision store on each backend."""
    if request.param == "sqlite":
        return fraud_settings
    return replace(fraud_settings, decisions_url=request.getfixturevalue("postgres_url"))


def _payment(run: str, i: int) -> dict[str, Any]:
    """Payment `i` of the run; a few cards and terminals, so concurrent requests share window state."""
    return {
        "transaction_id": f"{run}-{i}",
        "timestamp": f"2018-08-08T11:{i % 60:02d}:00+00:00",
        "customer_id": f"{run}-card-{i % 3}",
        "terminal_id": f"{run}-term-{i % 4}",
        "amount": 10.0 + i,
    }


def _post_all(base_url: str, payments: list[dict[str, Any]]) -> list[requests.Response]:
    with ThreadPoolExecutor(AT_ONCE) as pool:
        return list(
            pool.map(
                lambda payment: requests.post(f"{base_url}/v1/score", json=payment, headers=AUTH, timeout=30),
                payments,
            )
        )


def test_concurrent_requests_in_one_threaded_worker_are_each_decided_and_recorded_once(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forty-eight distinct payments posted twelve at a time to one worker: each answered 200 with its own
    decision, each recorded once as answered; posted again concurrently, every one is replayed with the
    recorded decision; the worker kept the connection open (threaded worker, not sync)."""
    monkeypatch.setenv("RISK_HTTP_THREADS", "4")  # the server's environment is made from this process's
    run = f"threads-{uuid.uuid4().hex[:6]}"
    payments = [_payment(run, i) for i in range(EVENTS)]
    store = DecisionStore(settings.decisions_url)
    before = store.count("fraud")
    with running_server("fraud", settings, tmp_path / "gunicorn.log", workers=1) as server:
        first = _post_all(server.base_url, payments)
        again = _post_all(server.base_url, payments)
        with requests.Session() as session:
            kept = session.post(f"{server.base_url}/v1/score", json=payments[0], headers=AUTH, timeout=30)
    assert [r.status_code for r in first + again] == [200] * (2 * EVENTS)
    answered = [r.json() for r in first]
    assert [d["event_id"] for d in answered] == [p["transaction_id"] for p in payments]
    assert not any(d["replayed"] for d in answered)
    assert len({d["decision_id"] for d in answered}) == EVENTS
    assert [r.json() for r in again] == [{**d, "replayed": True} for d in answered]
    assert store.count("fraud") - before == EVENTS
    recorded = store.find("fraud", [p["transaction_id"] for p in payments])
    assert {k: v.document for k, v in recorded.items()} == {d["event_id"]: d for d in answered}
    assert kept.headers.get("Connection", "").lower() != "close"
    store.close()
