"""The claims service through its three doors: HTTP under gunicorn, the stream worker on two input
topics, and batch rescoring with a claims history file; the same 1,000 policies agree across all three."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests

from services.claims_risk.dataset import load_policies, policy_event
from services.claims_risk.features import record_claims
from services.claims_risk.schemas import ClaimSchema
from shared.events.broker import EmbeddedBroker, ensure_topics
from shared.events.topics import CLAIMS_DECISIONS, INSURANCE_CLAIMS, INSURANCE_POLICIES
from shared.settings import Settings
from shared.state import open_state_store
from tests.fixtures.events import POLICY_TIME, policy
from tests.fixtures.kafka_io import collect, decision_payloads, publish
from tests.fixtures.services import API_KEY, running_server, running_worker, service_environment

AUTH = {"X-API-Key": API_KEY}
NOW = POLICY_TIME


def sample_book(count: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`count` real policies from the freMTPL sample as renewals over a month, and claims on some of
    them over the preceding two years (a few policies with several)."""
    rng = random.Random(9)
    frame = load_policies().sample(count, random_state=4)
    policies, claims = [], []
    for n, row in enumerate(frame.itertuples()):
        moment = NOW + timedelta(minutes=43 * n)
        policies.append(
            policy_event(row, quote_id=f"Q{n}", policy_id=f"P{row.policy_id}", kind="renewal", timestamp=moment)
        )
        for k in range(rng.choice([0, 0, 0, 0, 1, 1, 2, 3])):
            claims.append(
                {
                    "claim_id": f"C{row.policy_id}-{k}",
                    "policy_id": f"P{row.policy_id}",
                    "timestamp": (moment - timedelta(days=rng.randrange(1, 700))).isoformat(),
                    "amount": float(rng.randrange(200, 9000)),
                }
            )
    return policies, claims


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"exposure": 0}, "exposure"),
        ({"exposure": -0.5}, "exposure"),
        ({"vehicle_brand": "B99"}, "vehicle_brand"),
        ({"area": "Z"}, "area"),
        ({"driver_age": 17}, "driver_age"),
        ({"driver_age": 101}, "driver_age"),
        ({"bonus_malus": 49}, "bonus_malus"),
        ({"bonus_malus": 351}, "bonus_malus"),
        ({"kind": "cancel"}, "kind"),
        ({"driver_age": 42.5}, "driver_age"),
        ({"driver_age": True}, "driver_age"),
    ],
)
def test_invalid_policy_gets_422_naming_the_field(
    claims_settings: Settings, overrides: dict[str, Any], field: str
) -> None:
    """The issue's bad inputs each get a 422 whose fields name the one at fault (Flask app in-process)."""
    from tests.fixtures.services import scoring_app

    response = (
        scoring_app("claims", claims_settings).test_client().post("/v1/score", json=policy(**overrides), headers=AUTH)
    )
    assert response.status_code == 422
    assert list(response.get_json()["fields"]) == [field]


def test_http_decision_carries_frequency_relative_risk_and_history(claims_settings: Settings, tmp_path: Path) -> None:
    """Under gunicorn: the score is an annual frequency with its relative risk; claims recorded for the
    policy (as the stream worker records insurance.claims) turn the next renewal into a decline."""
    with running_server("claims", claims_settings, tmp_path / "gunicorn.log") as server:
        first = requests.post(f"{server.base_url}/v1/score", json=policy(), headers=AUTH, timeout=10).json()
        assert 0.0 < first["score"] < 1.0 and first["service"] == "claims"
        card = requests.get(f"{server.base_url}/v1/model", headers=AUTH, timeout=10).json()
        assert first["measures"]["relative_risk"] == pytest.approx(first["score"] / card["portfolio_frequency"])
        store = open_state_store(claims_settings.state_url)
        record_claims(
            [
                ClaimSchema().load(
                    {
                        "claim_id": f"C{i}",
                        "policy_id": "POL-1",
                        "timestamp": (NOW - timedelta(days=30 * i + 1)).isoformat(),
                    }
                )
                for i in range(3)
            ],
            store,
        )
        again = requests.post(f"{server.base_url}/v1/score", json=policy(), headers=AUTH, timeout=10).json()
    assert again["decision"] == "decline"
    assert "many_recent_claims" in {hit["rule_id"] for hit in again["rule_hits"]}
    assert again["reasons"] and all(reason["text"] for reason in again["reasons"])


def test_stream_records_claims_scores_policies_and_dead_letters_each_topic(
    kafka_broker: Any, claims_settings: Settings, tmp_path: Path
) -> None:
    """insurance.claims updates the history (no output), insurance.policies gets decisions on
    claims.decisions keyed by policy; a bad record of each topic lands in that topic's own .dlq."""
    settings = replace(claims_settings, kafka_bootstrap_servers=kafka_broker.bootstrap_servers)
    bootstrap = settings.kafka_bootstrap_servers
    claims = [
        {"claim_id": f"K{i}", "policy_id": "POL-S", "timestamp": (NOW - timedelta(days=10 + i)).isoformat()}
        for i in range(3)
    ]
    with running_worker("claims", settings, tmp_path / "worker.log") as worker:
        publish(bootstrap, INSURANCE_CLAIMS, [*claims, {"claim_id": "bad", "policy_id": "POL-S"}], "policy_id")
        _wait_for_history(settings, "POL-S", 3)
        publish(
            bootstrap,
            INSURANCE_POLICIES,
            [policy(policy_id="POL-S"), policy(policy_id="POL-T"), policy(policy_id="POL-U", exposure=0)],
            "policy_id",
        )
        records = collect(bootstrap, CLAIMS_DECISIONS, lambda r: len(r) >= 2)
        dead_policies = collect(bootstrap, INSURANCE_POLICIES.dead_letter, lambda r: len(r) >= 1)
        dead_claims = collect(bootstrap, INSURANCE_CLAIMS.dead_letter, lambda r: len(r) >= 1)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    decisions = {
        json.loads(r.value)["data"]["entity_id"]: (r.key.decode(), json.loads(r.value)["data"]) for r in records
    }
    assert decisions["POL-S"][0] == "POL-S" and decisions["POL-S"][1]["decision"] == "decline"
    assert decisions["POL-T"][1]["decision"] == "accept"
    assert "exposure" in json.loads(dict(dead_policies[0].headers)["error"])["fields"]
    assert "timestamp" in json.loads(dict(dead_claims[0].headers)["error"])["fields"]


def _wait_for_history(settings: Settings, policy_id: str, count: int, timeout: float = 60.0) -> None:
    path = settings.state_url.removeprefix("sqlite:///")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(path) as db:
                found = db.execute("SELECT COUNT(*) FROM records WHERE key = ?", (policy_id,)).fetchone()[0]
            if found >= count:
                return
        except sqlite3.OperationalError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the worker did not record {count} claims for {policy_id}")


def test_batch_with_claims_history_reports_bad_rows(claims_settings: Settings, tmp_path: Path) -> None:
    """`risk rescore claims --history claims=FILE`: history from the file, bad policy and claim rows
    reported with their fields, every good policy scored."""
    policies = [policy(policy_id=f"B{i}") for i in range(20)] + [policy(policy_id="B-bad", driver_age=16)]
    claims = [
        {"claim_id": f"BC{i}", "policy_id": "B0", "timestamp": (NOW - timedelta(days=5 + i)).isoformat()}
        for i in range(3)
    ] + [{"claim_id": "BC-bad", "policy_id": "B1", "timestamp": "not a date"}]
    source, history, output = tmp_path / "policies.csv", tmp_path / "claims.jsonl", tmp_path / "decisions.jsonl"
    pd.DataFrame(policies).to_csv(source, index=False)
    history.write_text("".join(json.dumps(c) + "\n" for c in claims))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "rescore",
            "claims",
            "--input",
            str(source),
            "--output",
            str(output),
            "--history",
            f"claims={history}",
            "--no-progress",
            "--max-rejects",
            "1",
        ],
        env=service_environment(claims_settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "20 scored, 1 rejected of 21 rows" in done.stdout
    decisions = {d["entity_id"]: d for d in map(json.loads, output.read_text().splitlines())}
    assert decisions["B0"]["decision"] == "decline" and decisions["B2"]["decision"] == "accept"
    rejects = [json.loads(line) for line in (tmp_path / "decisions.jsonl.rejects.jsonl").read_text().splitlines()]
    assert {(r.get("source"), tuple(r["fields"])) for r in rejects} == {
        ("claims", ("timestamp",)),
        (None, ("driver_age",)),
    }


def test_http_kafka_and_batch_agree_on_1000_policies(claims_settings: Settings, tmp_path: Path) -> None:
    """The same 1,000 real policies with their claim histories: identical score (1e-9), decision, rule
    hits and measures from HTTP, the stream worker and batch rescoring."""
    policies, claims = sample_book(1000)
    schema = ClaimSchema()

    http_settings = replace(claims_settings, state_url=f"sqlite:///{tmp_path / 'http.sqlite3'}")
    record_claims([schema.load(c) for c in claims], open_state_store(http_settings.state_url))
    over_http: dict[str, dict[str, Any]] = {}
    with running_server("claims", http_settings, tmp_path / "gunicorn.log") as server:
        for start in range(0, len(policies), 250):
            response = requests.post(
                f"{server.base_url}/v1/score", json={"events": policies[start : start + 250]}, headers=AUTH, timeout=60
            )
            assert response.status_code == 200, response.text
            over_http.update({d["event_id"]: d for d in response.json()["decisions"]})

    kafka_settings = replace(claims_settings, state_url=f"sqlite:///{tmp_path / 'kafka.sqlite3'}")
    with EmbeddedBroker(port=0) as broker:
        ensure_topics(
            broker.bootstrap_servers,
            [
                INSURANCE_POLICIES,
                INSURANCE_CLAIMS,
                CLAIMS_DECISIONS,
                INSURANCE_POLICIES.dead_letter,
                INSURANCE_CLAIMS.dead_letter,
            ],
        )
        kafka_settings = replace(kafka_settings, kafka_bootstrap_servers=broker.bootstrap_servers)
        with running_worker("claims", kafka_settings, tmp_path / "worker.log"):
            publish(broker.bootstrap_servers, INSURANCE_CLAIMS, claims, "policy_id")
            _wait_for_history(kafka_settings, claims[-1]["policy_id"], 1)
            _wait_for_count(kafka_settings, len(claims))
            publish(broker.bootstrap_servers, INSURANCE_POLICIES, policies, "policy_id")
            records = collect(
                broker.bootstrap_servers, CLAIMS_DECISIONS, lambda r: len(r) >= len(policies), timeout=120
            )
    over_kafka = {d["event_id"]: d for d in decision_payloads(records)}

    source, history, output = tmp_path / "policies.parquet", tmp_path / "claims.csv", tmp_path / "out.jsonl"
    pd.DataFrame(policies).to_parquet(source, index=False)
    pd.DataFrame(claims).to_csv(history, index=False)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "rescore",
            "claims",
            "--input",
            str(source),
            "--output",
            str(output),
            "--history",
            f"claims={history}",
            "--no-progress",
        ],
        env=service_environment(claims_settings),
        check=True,
        capture_output=True,
        timeout=300,
    )
    in_batch = {d["event_id"]: d for d in map(json.loads, output.read_text().splitlines())}

    assert len(over_http) == len(over_kafka) == len(in_batch) == len(policies)
    outcomes = set()
    for key, h in over_http.items():
        k, b = over_kafka[key], in_batch[key]
        assert abs(h["score"] - k["score"]) <= 1e-9 and abs(h["score"] - b["score"]) <= 1e-9, key
        assert h["decision"] == k["decision"] == b["decision"], key
        assert h["rule_hits"] == k["rule_hits"] == b["rule_hits"], key
        assert h["measures"] == pytest.approx(k["measures"]) and h["measures"] == pytest.approx(b["measures"])
        outcomes.add(h["decision"])
    assert {"accept", "refer", "decline"} <= outcomes


def _wait_for_count(settings: Settings, count: int, timeout: float = 60.0) -> None:
    path = settings.state_url.removeprefix("sqlite:///")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sqlite3.connect(path) as db:
            if db.execute("SELECT COUNT(*) FROM records").fetchone()[0] >= count:
                return
        time.sleep(0.2)
    raise AssertionError(f"the worker did not record {count} claims")
