"""The loop closed, end to end: simulated payments streamed through Kafka and posted to gunicorn, their
outcomes published with the Handbook's seven-day delay, every decision recorded exactly once, the live
quality figures equal to those computed offline from the same decisions and labels, and drift caught on a
shifted batch and not on an unshifted one."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, precision_score, recall_score

from services.fraud_detection.dataset import load_or_simulate
from services.fraud_detection.features import events_from_simulation
from services.fraud_detection.train import SIZES
from shared.decisions import DecisionStore
from shared.events.topics import FRAUD_DECISIONS, PAYMENTS_OUTCOMES, PAYMENTS_TRANSACTIONS
from shared.settings import Settings
from tests.fixtures.kafka_io import collect, publish
from tests.fixtures.services import API_KEY, running_server, running_worker, service_environment

AUTH = {"X-API-Key": API_KEY}
DELAY = timedelta(days=7)


def _between(simulated: pd.DataFrame, start: str, end: str) -> pd.DataFrame:
    chosen = simulated[(simulated["tx_datetime"] >= start) & (simulated["tx_datetime"] < end)]
    return chosen.sort_values("tx_datetime", kind="stable").reset_index(drop=True)


def _wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout} s: {what}")


def _monitor(settings: Settings, *window: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "monitor", "fraud", "--json", *window],
        env=service_environment(settings),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _post(base_url: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    decided = []
    for start in range(0, len(events), 250):
        response = requests.post(
            f"{base_url}/v1/score", json={"events": events[start : start + 250]}, headers=AUTH, timeout=60
        )
        assert response.status_code == 200, response.text
        decided.extend(response.json()["decisions"])
    return decided


@pytest.mark.timeout(900)
def test_twenty_thousand_payments_their_outcomes_and_the_quality_figures(
    kafka_broker: Any, fraud_settings: Settings, fraud_data_dir: Path, tmp_path: Path
) -> None:
    """~20,000 payments (five weeks of the simulation): 70 % streamed, 30 % posted. Outcomes for all of them
    published on payments.outcomes, each reported seven days after its payment. Then: one record per
    decision; the monitor's precision and recall per decision outcome, Brier score and calibration slope
    equal scikit-learn's on the decisions as the doors answered them and the simulation's labels; a later
    week with amounts times three raises a drift alert on the amount, an unshifted week none."""
    settings = replace(fraud_settings, kafka_bootstrap_servers=kafka_broker.bootstrap_servers)
    simulated = load_or_simulate(fraud_data_dir, **vars(SIZES["small"]))
    window = _between(simulated, "2018-05-25", "2018-06-30")
    assert len(window) >= 20_000
    events = events_from_simulation(window)
    labels = dict(zip(window["transaction_id"].astype(str), window["is_fraud"].astype(int), strict=True))
    cut = int(len(events) * 0.7)

    answered: list[dict[str, Any]] = []
    store = DecisionStore(settings.decisions_url)
    with running_worker("fraud", settings, tmp_path / "worker.log"):
        publish(settings.kafka_bootstrap_servers, PAYMENTS_TRANSACTIONS, events[:cut], "customer_id")
        _wait_for(lambda: store.count("fraud") >= cut, 300, f"{cut} streamed decisions recorded")
        with running_server("fraud", settings, tmp_path / "gunicorn.log") as server:
            answered.extend(_post(server.base_url, events[cut:]))
            outcomes = [
                {
                    "transaction_id": e["transaction_id"],
                    "outcome": "fraud" if labels[e["transaction_id"]] else "genuine",
                    "source": "chargeback" if labels[e["transaction_id"]] else "cardholder",
                    "reported_at": (datetime.fromisoformat(e["timestamp"]) + DELAY).isoformat(),
                }
                for e in events
            ]
            publish(settings.kafka_bootstrap_servers, PAYMENTS_OUTCOMES, outcomes, "transaction_id")
            _wait_for(lambda: store.count_outcomes("fraud") >= len(events), 300, "every outcome joined")
            ours = {e["transaction_id"] for e in events[:cut]}

            def streamed(records: list[Any]) -> list[dict[str, Any]]:
                found = (json.loads(r.value)["data"] for r in records)
                return [d for d in found if d["event_id"] in ours]

            produced = collect(
                settings.kafka_bootstrap_servers, FRAUD_DECISIONS, lambda r: len(streamed(r)) >= cut, timeout=120
            )
            answered.extend(streamed(produced))

            report = _monitor(settings)
            # the week right after the replay (so every window has its history, and a week has every
            # weekday as training had), then the week after it with its amounts tripled
            unshifted = events_from_simulation(_between(simulated, "2018-06-30", "2018-07-07"))
            shifted = [
                {**e, "amount": e["amount"] * 3}
                for e in events_from_simulation(_between(simulated, "2018-07-07", "2018-07-14"))
            ]
            before_unshifted = datetime.now(UTC)
            _post(server.base_url, unshifted)
            before_shifted = datetime.now(UTC)
            _post(server.base_url, shifted)
            quiet = _monitor(settings, "--from", before_unshifted.isoformat(), "--to", before_shifted.isoformat())
            loud = _monitor(settings, "--from", before_shifted.isoformat())

    assert store.count("fraud") == len(events) + len(unshifted) + len(shifted)
    recorded = store.find("fraud", [e["transaction_id"] for e in events])
    assert len(recorded) == len(events)  # one record per decided event (the store's key makes two impossible)
    by_event = {d["event_id"]: d for d in answered}
    assert set(by_event) == set(labels)  # every event answered by exactly the door it came through
    assert all(recorded[k].document == d for k, d in by_event.items())
    store.close()

    [section] = report["models"].values()
    assert section["labelled"] == len(events)
    y = np.array([labels[k] for k in by_event])
    scores = np.array([by_event[k]["score"] for k in by_event])
    for outcome, figures in section["outcomes"].items():
        flagged = np.array([by_event[k]["decision"] == outcome for k in by_event]).astype(int)
        assert figures["precision"] == pytest.approx(precision_score(y, flagged, zero_division=0), abs=1e-6)
        assert figures["recall"] == pytest.approx(recall_score(y, flagged), abs=1e-6)
    assert section["calibration"]["brier"] == pytest.approx(brier_score_loss(y, scores), abs=1e-6)
    clipped = np.clip(scores, 1e-12, 1 - 1e-12)
    slope = LogisticRegression(C=np.inf, max_iter=1000).fit(np.log(clipped / (1 - clipped)).reshape(-1, 1), y)
    assert section["calibration"]["slope"] == pytest.approx(slope.coef_[0, 0], abs=1e-4)

    assert [a for a in quiet["alerts"] if a["kind"] == "drift"] == [], quiet["alerts"]
    drifted = {a["figure"] for a in loud["alerts"] if a["kind"] == "drift"}
    assert "amount" in drifted, loud["alerts"]
