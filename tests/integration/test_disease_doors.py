"""The disease service through its three doors (gunicorn with 2 workers, the stream worker on the real
broker, `risk rescore`): the same 1,000 assessments agree across all three, bad input is refused or
dead-lettered by field, and no planted patient identifier or name appears in any output or log."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import requests

from services.disease_risk.samples import sample_assessments
from shared.events.broker import EmbeddedBroker
from shared.events.topics import DISEASE_DECISIONS, HEALTH_ASSESSMENTS
from shared.privacy import pseudonymise
from shared.settings import Settings
from tests.fixtures.kafka_io import collect, decision_payloads, publish, publish_raw
from tests.fixtures.services import API_KEY, PSEUDONYM_KEY, running_server, running_worker, service_environment

EVENTS = 1_000
PLANTED_NAME = "Philippa Quarrington-Voss"


def test_three_doors_agree_and_no_patient_identifier_leaves(
    kafka_broker: EmbeddedBroker, disease_settings: Settings, tmp_path: Path
) -> None:
    """The same assessments over HTTP, Kafka and batch get the same decisions, and no raw patient id or name appears
    in any output, dead letter or log."""
    events = sample_assessments(EVENTS, seed=11)
    for event in events[:25]:
        event["patient_name"] = PLANTED_NAME
    planted_ids = [event["patient_id"] for event in events]
    bad = [
        {**events[0], "assessment_id": "BAD-UNIT", "total_cholesterol": {"value": 5.1}},
        {**events[1], "assessment_id": "BAD-FIELD", "notes": f"seen by {PLANTED_NAME}"},
    ]

    over_http, http_text, http_logs = _through_http(events, disease_settings, tmp_path)
    over_kafka, kafka_text, dead_letters, worker_logs = _through_kafka(
        events, bad, kafka_broker, disease_settings, tmp_path
    )
    in_batch, batch_text = _through_batch(events, bad, disease_settings, tmp_path)

    assert len(over_http) == len(over_kafka) == len(in_batch) == EVENTS
    for event in events:
        key = event["assessment_id"]
        h, k, b = over_http[key], over_kafka[key], in_batch[key]
        assert abs(h["score"] - k["score"]) <= 1e-9 and abs(h["score"] - b["score"]) <= 1e-9, key
        assert h["decision"] == k["decision"] == b["decision"], key
        assert h["rule_hits"] == k["rule_hits"] == b["rule_hits"], key
        assert h["details"] == k["details"] == b["details"], key
        assert h["input_fingerprint"] == k["input_fingerprint"] == b["input_fingerprint"], key
        assert (
            [r["feature"] for r in h["reasons"]]
            == [r["feature"] for r in k["reasons"]]
            == [r["feature"] for r in b["reasons"]]
        ), key
        assert (
            h["entity_id"]
            == k["entity_id"]
            == b["entity_id"]
            == pseudonymise(event["patient_id"], PSEUDONYM_KEY.encode())
        )
    outcomes = {d["decision"] for d in over_http.values()}
    assert outcomes == {"routine", "follow_up", "urgent"}, outcomes

    reasons = {json.loads(dict(r.headers)["error"])["code"]: r for r in dead_letters}
    assert json.loads(dict(reasons["invalid_input"].headers)["error"])["fields"]
    assert len(dead_letters) == 3
    by_payload = {dict(r.headers)["payload"].split(b":")[0]: r for r in dead_letters}
    assert set(by_payload) == {b"redacted", b"withheld"}
    assert any(dict(r.headers).get("redacted_fields") == b"notes" for r in dead_letters)

    everything = "\n".join(
        [http_text, http_logs, kafka_text, worker_logs, batch_text, *(_record_text(r) for r in dead_letters)]
    )
    assert PLANTED_NAME not in everything and "Quarrington" not in everything
    leaked = [patient for patient in planted_ids if patient in everything]
    assert not leaked, f"{len(leaked)} raw patient ids found, e.g. {leaked[:3]}"


def _through_http(
    events: list[dict[str, Any]], settings: Settings, tmp_path: Path
) -> tuple[dict[str, dict[str, Any]], str, str]:
    decisions: dict[str, dict[str, Any]] = {}
    texts = []
    with running_server("disease", settings, tmp_path / "gunicorn.log") as server:
        for start in range(0, len(events), 100):
            response = requests.post(
                f"{server.base_url}/v1/score",
                json={"events": events[start : start + 100]},
                headers={"X-API-Key": API_KEY},
                timeout=60,
            )
            assert response.status_code == 200, response.text
            texts.append(response.text)
            decisions.update({d["event_id"]: d for d in response.json()["decisions"]})
        refused = requests.post(
            f"{server.base_url}/v1/score",
            headers={"X-API-Key": API_KEY},
            timeout=10,
            json={**events[0], "fasting_glucose": {"value": 6.0, "unit": "mg/L"}},
        )
        assert refused.status_code == 422 and list(refused.json()["fields"]) == ["fasting_glucose.unit"]
        texts.append(refused.text)
        card = requests.get(f"{server.base_url}/v1/model", headers={"X-API-Key": API_KEY}, timeout=10).json()
        assert set(card["conditions"]) == {"diabetes", "chd"}
    return decisions, "\n".join(texts), server.logs()


def _through_kafka(
    events: list[dict[str, Any]], bad: list[dict[str, Any]], broker: EmbeddedBroker, settings: Settings, tmp_path: Path
) -> tuple[dict[str, dict[str, Any]], str, list[Any], str]:
    bootstrap = broker.bootstrap_servers
    settings = replace(settings, kafka_bootstrap_servers=bootstrap)
    log_path = tmp_path / "worker.log"
    with running_worker("disease", settings, log_path) as worker:
        publish(bootstrap, HEALTH_ASSESSMENTS, [*events, *bad], "patient_id")
        raw_id = events[2]["patient_id"]
        publish_raw(bootstrap, HEALTH_ASSESSMENTS, [(raw_id.encode(), f"{{not json {raw_id} {PLANTED_NAME}".encode())])
        ours = {event["assessment_id"] for event in events}  # the session's broker carries other tests' decisions
        records = collect(
            bootstrap,
            DISEASE_DECISIONS,
            timeout=180,
            until=lambda r: ours <= {d["event_id"] for d in decision_payloads(r)},
        )
        records = [r for r in records if json.loads(r.value)["data"]["event_id"] in ours]
        dead_letters = collect(bootstrap, HEALTH_ASSESSMENTS.dead_letter, lambda r: len(r) >= 3, timeout=60)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    assert all(r.key.decode() == json.loads(r.value)["data"]["entity_id"] for r in records)
    text = "\n".join(_record_text(r) for r in records)
    return {d["event_id"]: d for d in decision_payloads(records)}, text, dead_letters, log_path.read_text()


def _through_batch(
    events: list[dict[str, Any]], bad: list[dict[str, Any]], settings: Settings, tmp_path: Path
) -> tuple[dict[str, dict[str, Any]], str]:
    """JSON Lines for all 1,000 (and the bad rows, reported by field); a CSV with dotted headers for the
    nested laboratory values must give the same decisions for its rows."""
    source, output = tmp_path / "assessments.jsonl", tmp_path / "decisions.jsonl"
    source.write_text("".join(json.dumps(e) + "\n" for e in [*events, *bad]))
    done = _rescore(source, output, settings, "--max-rejects", "2")
    assert f"{EVENTS} scored, 2 rejected of {EVENTS + 2} rows" in done.stdout
    decisions = {d["event_id"]: d for d in map(json.loads, output.read_text().splitlines())}
    rejects = Path(f"{output}.rejects.jsonl").read_text()
    assert [json.loads(line)["fields"] for line in rejects.splitlines()] == [
        {"total_cholesterol.unit": ["Missing data for required field."]},
        {"notes": ["Unknown field."]},
    ]

    csv_source, csv_output = tmp_path / "assessments.csv", tmp_path / "decisions-csv.jsonl"
    pd.json_normalize(events[:60]).to_csv(csv_source, index=False)
    assert "total_cholesterol.unit" in csv_source.read_text().splitlines()[0]
    _rescore(csv_source, csv_output, settings)
    for row in map(json.loads, csv_output.read_text().splitlines()):
        assert row["decision"] == decisions[row["event_id"]]["decision"]
        assert abs(row["score"] - decisions[row["event_id"]]["score"]) <= 1e-9
    texts = [output.read_text(), rejects, csv_output.read_text(), done.stdout, done.stderr]
    return decisions, "\n".join(texts)


def _rescore(source: Path, output: Path, settings: Settings, *options: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "rescore",
            "disease",
            "--input",
            str(source),
            "--output",
            str(output),
            "--no-progress",
            *options,
        ],
        env=service_environment(settings),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done


def _record_text(record: Any) -> str:
    headers = " ".join(f"{k}={v.decode(errors='replace')}" for k, v in (record.headers or []))
    key = record.key.decode(errors="replace") if record.key else ""
    return f"{key} {record.value.decode(errors='replace') if record.value else ''} {headers}"
