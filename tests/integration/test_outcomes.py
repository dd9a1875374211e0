"""Outcomes back into the services: over HTTP, on Kafka, from a file and, for claims, from the claims that
follow a decision. Each case has its stated end (recorded, duplicate, revised, stale, unknown), a confirmed
fraud raises its terminal's risk for later payments exactly as the offline features compute it, and every
outcome is joined to its decision in the store."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from services.fraud_detection.features import (
    FEATURE_SET,
    TERMINAL_DELAY_DAYS,
    TERMINAL_NAMESPACE,
    events_from_simulation,
    frame_from_simulation,
    offline_features,
)
from services.fraud_detection.train import SIZES
from shared.decisions import DecisionStore, OutcomeStatus
from shared.events.topics import PAYMENTS_OUTCOMES
from shared.settings import Settings
from shared.state import open_state_store
from tests.fixtures.events import policy
from tests.fixtures.kafka_io import collect, publish
from tests.fixtures.services import API_KEY, running_worker, scoring_app, service_environment

AUTH = {"X-API-Key": API_KEY}
REPORTED = datetime(2018, 9, 1, 12, 0, tzinfo=UTC)


def tx(run: str, i: int, **overrides: Any) -> dict[str, Any]:
    return {
        "transaction_id": f"{run}-{i}",
        "timestamp": f"2018-08-08T10:{i % 60:02d}:00+00:00",
        "customer_id": f"{run}-card-{i % 3}",
        "terminal_id": f"{run}-term-{i % 2}",
        "amount": 30.0 + i,
        **overrides,
    }


def outcome(event_id: str, what: str, reported: datetime = REPORTED, source: str = "chargeback") -> dict[str, Any]:
    return {"transaction_id": event_id, "outcome": what, "source": source, "reported_at": reported.isoformat()}


def _labels_once_learnt(settings: Settings, run: str, awaited: list[str], timeout: float) -> dict[str, int | None]:
    """The labels of the run's decisions, read again until every awaited one has a label or `timeout` passes."""
    store = DecisionStore(settings.decisions_url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            labels = {r.event_id: r.label for r in store.labelled("fraud") if r.event_id.startswith(run)}
            if all(labels.get(e) is not None for e in awaited) or time.monotonic() > deadline:
                return labels
            time.sleep(0.2)
    finally:
        store.close()


def _terminal_label(settings: Settings, terminal: str, event_id: str) -> int | None:
    records = open_state_store(settings.state_url).fetch(TERMINAL_NAMESPACE, [terminal], float("-inf"), float("inf"))
    return next(r.label for r in records[terminal] if r.id == event_id)


def test_each_outcome_case_over_http_ends_as_stated(fraud_settings: Settings) -> None:
    """First outcome recorded (and the terminal's label set), the same again a duplicate, another reported
    later revises it (the label follows), another reported earlier is stale; an outcome for an event never
    decided is a 404 naming the field and a batch holding one records nothing; a bad outcome word a 422."""
    client = scoring_app("fraud", fraud_settings).test_client()
    client.post("/v1/score", json={"events": [tx("oc", i) for i in range(4)]}, headers=AUTH)

    def post(body: Any) -> Any:
        return client.post("/v1/outcomes", json=body, headers=AUTH)

    assert post(outcome("oc-1", "fraud")).get_json() == {"transaction_id": "oc-1", "status": "recorded"}
    assert _terminal_label(fraud_settings, "oc-term-1", "oc-1") == 1
    assert post(outcome("oc-1", "fraud", REPORTED + timedelta(days=2))).get_json()["status"] == "duplicate"
    assert post(outcome("oc-1", "genuine", REPORTED + timedelta(days=3), "analyst")).get_json()["status"] == "revised"
    assert _terminal_label(fraud_settings, "oc-term-1", "oc-1") == 0
    assert post(outcome("oc-1", "fraud", REPORTED + timedelta(days=1))).get_json()["status"] == "stale"
    assert _terminal_label(fraud_settings, "oc-term-1", "oc-1") == 0

    unknown = post({"outcomes": [outcome("oc-2", "fraud"), outcome("never-decided", "fraud")]})
    assert unknown.status_code == 404
    assert list(unknown.get_json()["fields"]) == ["outcomes.1.transaction_id"]
    assert post(outcome("oc-2", "genuine")).get_json()["status"] == "recorded"  # the refused batch left none
    bad = post({**outcome("oc-3", "fraud"), "outcome": "maybe"})
    assert bad.status_code == 422 and list(bad.get_json()["fields"]) == ["outcome"]
    extra = post({**outcome("oc-3", "fraud"), "cardholder_name": "x"})
    assert extra.status_code == 422 and list(extra.get_json()["fields"]) == ["cardholder_name"]

    store = DecisionStore(fraud_settings.decisions_url)
    joined = {r.event_id: r.label for r in store.labelled("fraud") if r.event_id.startswith("oc-")}
    assert joined == {"oc-0": None, "oc-1": 0, "oc-2": 0, "oc-3": None}
    store.close()


def test_replayed_payments_and_outcomes_with_the_delay_give_the_offline_features(
    fraud_settings: Settings, fraud_data_dir: Path
) -> None:
    """Forty days of simulated payments scored online in time order, each one's outcome (fraud or genuine)
    reported seven days after it: every payment's sixteen features, terminal risks included, equal the
    offline features computed from the same payments and their labels (to 1e-9)."""
    from services.fraud_detection.dataset import load_or_simulate
    from services.registry import runtime
    from shared.core.idempotency import decide_once
    from shared.core.outcomes import learn, report_of, validate_outcome

    simulated = load_or_simulate(fraud_data_dir, **vars(SIZES["small"]))
    start = simulated["tx_datetime"].min()
    window = simulated[simulated["tx_datetime"] < start + pd.Timedelta(days=40)].reset_index(drop=True)
    assert int(window["is_fraud"].sum()) > 50  # enough confirmed frauds to move terminal risks
    expected = offline_features(frame_from_simulation(window))
    events = events_from_simulation(window)
    labels = window["is_fraud"].astype(int).to_numpy()
    moments = [datetime.fromisoformat(e["timestamp"]) for e in events]
    delay = timedelta(days=TERMINAL_DELAY_DAYS)

    parts = runtime("fraud", fraud_settings)
    core, store, state = parts.core, parts.decisions, parts.state
    assert store is not None
    reported = 0  # outcomes are reported in payment order, each once its payment is seven days old
    for start_at in range(0, len(events), 500):
        batch = events[start_at : start_at + 500]
        latest = moments[min(start_at + 500, len(events)) - 1]
        due = []
        while reported < start_at and moments[reported] + delay <= latest:
            what = "fraud" if labels[reported] else "genuine"
            raw = outcome(events[reported]["transaction_id"], what, moments[reported] + delay)
            due.append(report_of(core.service, validate_outcome(core.service, raw)))
            reported += 1
        results = learn(core.service, due, store, state, "test")
        assert all(r.status is OutcomeStatus.RECORDED for r in results)
        valid = [core.validate(e) for e in batch]
        decide_once(
            core, valid, lambda ps, valid=valid: core.score_online([valid[p] for p in ps], state), store, "test"
        )
    recorded = {d.event_id: d.features for d in store.labelled("fraud")}
    online = np.array([[recorded[e["transaction_id"]][name] for name in FEATURE_SET.features] for e in events])
    np.testing.assert_allclose(online, expected.to_numpy(dtype=float), rtol=1e-9, atol=1e-12)
    risk = expected["terminal_risk_7d"].to_numpy()
    assert (risk > 0).sum() > 100  # the labels really reached the features
    parts.close()


def test_outcomes_on_kafka_are_learnt_and_unknown_ones_dead_lettered(
    kafka_broker: Any, fraud_settings: Settings, tmp_path: Path
) -> None:
    """Outcomes published on payments.outcomes are joined to their decisions by the stream worker (and set
    the terminal's label); one naming no decided event is a dead letter saying unknown_event."""
    settings = replace(fraud_settings, kafka_bootstrap_servers=kafka_broker.bootstrap_servers)
    run = f"ko-{uuid.uuid4().hex[:6]}"
    client = scoring_app("fraud", settings).test_client()
    client.post("/v1/score", json={"events": [tx(run, i) for i in range(3)]}, headers=AUTH)
    with running_worker("fraud", settings, tmp_path / "worker.log") as worker:
        publish(
            settings.kafka_bootstrap_servers,
            PAYMENTS_OUTCOMES,
            [outcome(f"{run}-0", "fraud"), outcome(f"{run}-2", "genuine"), outcome(f"{run}-404", "fraud")],
            "transaction_id",
        )
        dead = collect(
            settings.kafka_bootstrap_servers,
            PAYMENTS_OUTCOMES.dead_letter,
            lambda records: any(f"{run}-404".encode() in r.value for r in records),
        )
        # The worker takes the outcome partitions in event-time order, so the dead letter can come before the
        # other two are learnt: wait for them (bounded) before stopping it.
        labels = _labels_once_learnt(settings, run, [f"{run}-0", f"{run}-2"], timeout=30)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    letter = next(r for r in dead if f"{run}-404".encode() in r.value)
    assert json.loads(dict(letter.headers)["error"])["code"] == "unknown_event"
    assert labels == {f"{run}-0": 1, f"{run}-1": None, f"{run}-2": 0}
    assert _terminal_label(settings, f"{run}-term-0", f"{run}-0") == 1


def test_an_outcome_in_the_same_micro_batch_as_its_decision_is_learnt(fraud_settings: Settings) -> None:
    """A payment and the outcome reporting on it, handed to the stream handler in one micro-batch (as event-time
    order releases them together), end with the payment decided and the outcome joined to that decision and
    its label in the window state, not as an unknown_event dead letter; an outcome naming no event still is one."""
    from services.registry import runtime
    from shared.doors.stream import UNKNOWN_EVENT, scoring_handler
    from shared.events.consumer import Inbound, Produce, Reject

    run = f"sb-{uuid.uuid4().hex[:6]}"
    parts = runtime("fraud", fraud_settings)
    handle = scoring_handler(lambda: parts.core, parts.state, parts.decisions)
    batch = [
        Inbound("payments.transactions", 0, 0, b"card", {"data": tx(run, 0)}),
        Inbound("payments.outcomes", 0, 0, b"o", {"data": outcome(f"{run}-0", "fraud")}),
        Inbound("payments.outcomes", 0, 1, b"o", {"data": outcome(f"{run}-404", "fraud")}),
    ]
    decided, learnt, unknown = handle(batch)
    assert isinstance(decided, list) and [type(p) for p in decided] == [Produce]
    assert learnt == []
    assert isinstance(unknown, Reject) and unknown.code == UNKNOWN_EVENT
    assert parts.decisions is not None
    [row] = [r for r in parts.decisions.labelled("fraud") if r.event_id == f"{run}-0"]
    assert row.label == 1
    assert _terminal_label(fraud_settings, f"{run}-term-0", f"{run}-0") == 1
    parts.close()


def test_claims_following_a_decided_quote_become_its_outcome(claims_settings: Settings) -> None:
    """A claim notification on a policy is the outcome of that policy's latest quote decided in the year
    before the loss; a claim dated before any decided quote joins nothing."""
    from services.registry import runtime
    from shared.doors.stream import scoring_handler
    from shared.events.consumer import Inbound

    client = scoring_app("claims", claims_settings).test_client()
    quote = policy(quote_id="Q-claims-1", policy_id="POL-OUT", timestamp="2026-01-10T09:00:00+00:00")
    assert client.post("/v1/score", json=quote, headers=AUTH).status_code == 200
    parts = runtime("claims", claims_settings)
    handle = scoring_handler(lambda: parts.core, parts.state, parts.decisions)
    claims = [
        {"claim_id": "C-before", "policy_id": "POL-OUT", "timestamp": "2025-06-01T00:00:00+00:00"},
        {"claim_id": "C-after", "policy_id": "POL-OUT", "timestamp": "2026-04-02T00:00:00+00:00", "amount": 900.0},
    ]
    inbound = [Inbound("insurance.claims", 0, n, b"POL-OUT", {"data": c}) for n, c in enumerate(claims)]
    assert handle(inbound) == [[], []]
    assert parts.decisions is not None
    [decided] = [r for r in parts.decisions.labelled("claims") if r.event_id == "Q-claims-1"]
    assert decided.label == 1
    parts.close()


def test_outcomes_import_from_a_file_reports_what_it_refused(fraud_settings: Settings, tmp_path: Path) -> None:
    """`risk outcomes import fraud FILE` learns every good row, writes the bad and the unknown ones with
    their row numbers to FILE.rejects.jsonl, and exits 1 because some were refused."""
    client = scoring_app("fraud", fraud_settings).test_client()
    client.post("/v1/score", json={"events": [tx("file", i) for i in range(3)]}, headers=AUTH)
    rows = [
        outcome("file-0", "fraud"),
        outcome("file-1", "genuine"),
        {**outcome("file-2", "fraud"), "outcome": "unsure"},
        outcome("file-999", "fraud"),
    ]
    source = tmp_path / "outcomes.csv"
    pd.DataFrame(rows).to_csv(source, index=False)
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "outcomes", "import", "fraud", str(source)],
        env=service_environment(fraud_settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "4 rows: recorded 2, unknown_event 1" in done.stdout
    rejects = [json.loads(line) for line in (tmp_path / "outcomes.csv.rejects.jsonl").read_text().splitlines()]
    assert [(r["row"], r["error"], list(r["fields"])) for r in rejects] == [
        (3, "invalid_input", ["outcome"]),
        (4, "unknown_event", ["transaction_id"]),
    ]


@pytest.mark.parametrize("service", ["fraud", "disease"])
def test_the_outcome_contracts_are_closed_and_in_the_domains_words(service: str) -> None:
    """Each outcome schema takes exactly its id field, a known outcome word, a source and a report time."""
    from services.registry import service as service_named
    from shared.core.outcomes import outcome_schema

    found = service_named(service)
    fields = set(outcome_schema(found)().fields)
    assert fields == {found.event_id_field, "outcome", "source", "reported_at"}
    assert set(found.outcomes) and set(found.outcomes.values()) == {0, 1}


def test_the_monitoring_report_is_served_as_json_a_page_and_gauges(fraud_settings: Settings) -> None:
    """Before any report /v1/monitoring is a 404 saying how to make one; after `monitor`, the same report
    as JSON, as a page with its charts, and its figures as gauges on /metrics."""
    from services.registry import runtime

    client = scoring_app("fraud", fraud_settings).test_client()
    assert client.get("/v1/monitoring", headers=AUTH).status_code == 404
    decided = client.post("/v1/score", json={"events": [tx("mon", i) for i in range(30)]}, headers=AUTH).get_json()
    outcomes = [
        outcome(d["event_id"], "fraud" if i % 3 == 0 else "genuine") for i, d in enumerate(decided["decisions"])
    ]
    client.post("/v1/outcomes", json={"outcomes": outcomes}, headers=AUTH)
    parts = runtime("fraud", fraud_settings)
    report = parts.monitor()
    parts.close()
    served = client.get("/v1/monitoring", headers=AUTH)
    assert served.status_code == 200 and served.get_json() == report
    [section] = report["models"].values()
    assert section["labelled"] == 30 and section["positives"] == 10
    page = client.get("/v1/monitoring/report", headers=AUTH)
    assert page.status_code == 200 and page.data.count(b"<img") >= 2 and b"reliability" in page.data
    metrics = client.get("/metrics").get_data(as_text=True)
    version = next(iter(report["models"]))
    assert f'risk_labelled_decisions{{model_version="{version}",service="fraud"}} 30.0' in metrics
    assert "risk_drift_psi{" in metrics and "risk_brier_score{" in metrics
