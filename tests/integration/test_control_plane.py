"""Rules and models change without a deploy, by two people, while events flow: a real broker, gunicorn with
2 workers and a stream worker of the disease service. A ruleset is published over HTTP and a model
promoted with the CLI (a client of the server's control API); `risk train` meanwhile changes nothing in
force; no event is lost or scored twice across the switches, every decision names the versions that made
it, and 5 seconds after each approval every instance uses the new one. A ruleset that an instance cannot
load (put back by an approved rollback) is refused there (log and metric) while the old one keeps serving."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from kafka import KafkaProducer

from services.disease_risk.samples import sample_assessments
from shared.events.broker import EmbeddedBroker
from shared.events.envelope import encode, make_event
from shared.events.topics import DISEASE_DECISIONS, HEALTH_ASSESSMENTS
from shared.modeling.registry import ModelRegistry
from shared.settings import Settings
from tests.fixtures.kafka_io import collect, decision_payloads
from tests.fixtures.services import running_server, running_worker, service_environment

MAKER, CHECKER = "ana:key-ana-0123456789:analyst+approver", "bo:key-bo-0123456789:analyst+approver"
SCORER = "scoring-app:key-scoring-0123456789:scorer"
MAKER_KEY, CHECKER_KEY, SCORER_KEY = (entry.split(":")[1] for entry in (MAKER, CHECKER, SCORER))
APPLY_WITHIN = 5.0
RULESET = Path(__file__).resolve().parents[2] / "services" / "disease_risk" / "rules.yaml"


def test_ruleset_and_model_change_while_events_flow(
    kafka_broker: EmbeddedBroker, disease_settings: Settings, disease_model_dir: Path, tmp_path: Path
) -> None:
    """A ruleset published over HTTP and a model promoted by the CLI reach every worker while events flow: none lost
    or scored twice, each decision names the versions that made it; a model trained meanwhile is a candidate
    that no instance scores with until its promotion is approved."""
    settings = _private_settings(disease_settings, disease_model_dir, tmp_path, kafka_broker)
    registry = ModelRegistry(settings.model_dir)
    (first_model,) = registry.versions("disease")
    old_rules = "2026.11.1"
    new_rules = tmp_path / "rules-2026.11.2.yaml"
    new_rules.write_text(
        RULESET.read_text()
        .replace(f'version: "{old_rules}"', 'version: "2026.11.2"')
        .replace("event.bmi >= 35", "event.bmi >= 33")
    )
    events = sample_assessments(1_000, seed=21)
    published: list[str] = []
    http_decisions: list[tuple[float, dict[str, Any]]] = []
    stop = threading.Event()

    with (
        running_server("disease", settings, tmp_path / "gunicorn.log", workers=2) as server,
        running_worker("disease", settings, tmp_path / "worker.log"),
    ):
        auth = {"X-API-Key": MAKER_KEY}
        scoring = {"X-API-Key": SCORER_KEY}
        flows = [
            threading.Thread(target=_publish_until_stopped, args=(settings, events, stop, published)),
            *(
                threading.Thread(
                    target=_score_over_http, args=(server.base_url, events[k::3], scoring, stop, http_decisions)
                )
                for k in range(2)
            ),
        ]
        for flow in flows:
            flow.start()
        collect(
            settings.kafka_bootstrap_servers,
            DISEASE_DECISIONS,
            timeout=60,  # the worker has joined and scores
            until=lambda r: sum(d["event_id"].startswith("CTL-") for d in decision_payloads(r)) >= 20,
        )

        refused = requests.post(
            f"{server.base_url}/v1/control/rulesets",
            data="service: disease\nversion: x\n",
            headers={**auth, "Content-Type": "application/yaml"},
            timeout=10,
        )
        assert refused.status_code == 422 and refused.json()["problems"]
        proposal = requests.post(
            f"{server.base_url}/v1/control/rulesets",
            data=new_rules.read_text(),
            headers={**auth, "Content-Type": "application/yaml"},
            timeout=10,
        )
        assert proposal.status_code == 201, proposal.text
        approve_url = f"{server.base_url}/v1/control/proposals/{proposal.json()['id']}/approve"
        assert requests.post(approve_url, headers=auth, timeout=10).status_code == 403  # the maker cannot approve
        approved = requests.post(approve_url, headers={"X-API-Key": CHECKER_KEY}, timeout=30)
        assert approved.status_code == 200 and approved.json()["announced"], approved.text
        rules_at = time.time()
        _poll_until(
            lambda: any(m > rules_at and d["ruleset_version"] == "2026.11.2" for m, d in list(http_decisions)),
            APPLY_WITHIN + 10,
            "an HTTP decision under the new ruleset",
        )

        trained = _cli(settings, "train", "disease")  # the first bypass: the champion moved at once
        second_model, trained_at = trained["version"], time.time()
        assert trained["status"].startswith("candidate") and registry.champion("disease") == first_model
        _poll_until(
            lambda: any(m > trained_at + APPLY_WITHIN for m, _ in list(http_decisions)),
            APPLY_WITHIN + 15,
            "HTTP decisions past the training's window",
        )
        promoted = _cli(settings, "models", "promote", "disease", second_model, "--api-key", MAKER_KEY, server=server)
        approving_at = time.time()
        _cli(settings, "models", "approve", "disease", promoted["id"], "--api-key", CHECKER_KEY, server=server)
        model_at = time.time()
        _poll_until(
            lambda: any(m > model_at + APPLY_WITHIN for m, _ in list(http_decisions)),
            APPLY_WITHIN + 15,
            "HTTP decisions past the model switch's window",
        )
        stop.set()
        for flow in flows:
            flow.join(timeout=60)
        records = collect(
            settings.kafka_bootstrap_servers,
            DISEASE_DECISIONS,
            lambda r: len({d["event_id"] for d in decision_payloads(r)} & set(published)) >= len(published),
            timeout=120,
        )

        _an_unloadable_ruleset_is_refused_and_the_old_one_kept(server.base_url, settings, scoring)
        entries = _cli(settings, "audit", "disease", "--api-key", CHECKER_KEY, server=server)
        verified = _cli(settings, "audit", "verify", "disease", "--api-key", MAKER_KEY, server=server)

    over_kafka = [d for d in decision_payloads(records) if d["event_id"].startswith("CTL-")]
    ids = [d["event_id"] for d in over_kafka]
    assert sorted(ids) == sorted(published), "every published event decided exactly once"
    for door, decisions in (("kafka", [(_at(d), d) for d in over_kafka]), ("http", http_decisions)):
        assert decisions, door
        for moment, decision in decisions:
            assert decision["ruleset_version"] in {old_rules, "2026.11.2"}
            assert decision["model"]["version"] in {first_model, second_model}
            if moment > rules_at + APPLY_WITHIN:
                assert decision["ruleset_version"] == "2026.11.2", (door, moment - rules_at)
            if moment > model_at + APPLY_WITHIN:
                assert decision["model"]["version"] == second_model, (door, moment - model_at)
            if moment < approving_at:  # trained, registered, but not approved: nobody scores with it
                assert decision["model"]["version"] == first_model, (door, moment - trained_at)
        assert any(d["ruleset_version"] == old_rules for _, d in decisions), f"{door}: nothing before the switch"
        assert any(m > model_at + APPLY_WITHIN for m, _ in decisions), f"{door}: nothing after the switch"
    audit = [entry["action"] for entry in entries]
    assert audit == [
        "packaged_recorded",  # the packaged ruleset, version 1 of the history
        *("proposed", "approval_refused", "approved"),  # the ruleset over HTTP; its maker may not approve it
        *("proposed", "approved"),  # the model promotion by the CLI
        *("proposed", "approved"),  # the rollback to the damaged packaged ruleset
    ]
    assert verified["ok"] and verified["entries"] == len(audit), verified


def _an_unloadable_ruleset_is_refused_and_the_old_one_kept(
    base_url: str, settings: Settings, auth: dict[str, str]
) -> None:
    """The published packaged ruleset is damaged behind the control plane's back, then a rollback to it is
    proposed, approved and announced: both workers refuse it, count the refusal and go on scoring with the
    ruleset they have."""
    damaged = settings.control_dir / "disease" / "rulesets" / "2026.11.1.yaml"
    damaged.write_text(damaged.read_text().replace("event.bmi >= 35", "event.bmii >= 35"))
    proposed = _cli(settings, "rules", "rollback", "disease", "2026.11.1", "--api-key", CHECKER_KEY, url=base_url)
    _cli(settings, "rules", "approve", "disease", proposed["id"], "--api-key", MAKER_KEY, url=base_url)
    deadline = time.monotonic() + APPLY_WITHIN + 5
    refusals = 0.0
    while time.monotonic() < deadline and refusals < 2:
        metrics = requests.get(f"{base_url}/metrics", timeout=10).text
        refusals = sum(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("risk_control_refusals_total{")
        )
        time.sleep(0.5)
    assert refusals >= 2, "each gunicorn worker refuses the ruleset it cannot load"
    still = requests.post(f"{base_url}/v1/score", json=sample_assessments(1, seed=99)[0], headers=auth, timeout=10)
    assert still.status_code == 200 and still.json()["ruleset_version"] == "2026.11.2"


def _private_settings(settings: Settings, trained: Path, tmp_path: Path, broker: EmbeddedBroker) -> Settings:
    """A copy of the session's model registry (one version, the champion), the maker's, checker's and a
    scoring application's keys."""
    model_dir = tmp_path / "models"
    shutil.copytree(trained, model_dir)
    return replace(
        settings,
        model_dir=model_dir,
        control_dir=tmp_path / "control",
        api_keys=(MAKER, CHECKER, SCORER),
        kafka_bootstrap_servers=broker.bootstrap_servers,
    )


def _publish_until_stopped(
    settings: Settings, events: list[dict[str, Any]], stop: threading.Event, sent: list[str]
) -> None:
    """About 100 events a second, each batch acknowledged before the next, until told to stop; the
    assessments come round again under new ids. `sent` gets the id of every acknowledged event."""
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    try:
        while not stop.is_set():
            batch = [
                {**events[(len(sent) + k) % len(events)], "assessment_id": f"CTL-{len(sent) + k:06d}"}
                for k in range(10)
            ]
            for event in batch:
                producer.send(
                    HEALTH_ASSESSMENTS.name,
                    key=event["patient_id"].encode(),
                    value=encode(make_event(HEALTH_ASSESSMENTS.event_type, "/tests", event)),
                )
            producer.flush()
            sent.extend(event["assessment_id"] for event in batch)
            time.sleep(0.1)
    finally:
        producer.close()


def _score_over_http(
    base_url: str,
    events: list[dict[str, Any]],
    auth: dict[str, str],
    stop: threading.Event,
    into: list[tuple[float, dict[str, Any]]],
) -> None:
    """One event at a time, round and round the list, until told to stop (two of these run at once, so
    both gunicorn workers answer)."""
    session = requests.Session()
    sent = 0
    while not stop.is_set():
        event = {**events[sent % len(events)], "assessment_id": f"H{threading.get_native_id()}-{sent:06d}"}
        response = session.post(f"{base_url}/v1/score", json=event, headers=auth, timeout=10)
        assert response.status_code == 200, response.text
        into.append((_at(response.json()), response.json()))
        sent += 1
        time.sleep(0.02)


def _poll_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` until it holds, or fail after `timeout` seconds naming what never came."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {timeout:g} s")
        time.sleep(0.1)


def _at(decision: dict[str, Any]) -> float:
    return datetime.fromisoformat(decision["scored_at"]).timestamp()


def _cli(settings: Settings, *args: str, server: Any = None, url: str | None = None) -> Any:
    """`risk ARGS` in a child process, as a client of the server at `url` (or `server`'s), which holds the keys:
    the child's own environment has none."""
    address = url or (server.base_url if server is not None else "")
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env={**service_environment(settings), "RISK_API_KEYS": "", "RISK_SERVER_URL": address},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
