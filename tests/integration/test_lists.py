"""Lists change without a restart, by two people, while events flow: a real broker, gunicorn with 2 workers
and a stream worker of the disease service. A patient's raw id is proposed for the watch list with the CLI
(the maker cannot approve it), approved by another identity, and within 5 seconds every instance decides
that patient's assessments with the `watched_patient` rule hit and its reason, over HTTP and Kafka alike;
the list holds the patient's pseudonym only; the removal, approved the same way, takes the hit away again."""

from __future__ import annotations

import json
import re
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
from shared.privacy import pseudonymise
from shared.settings import Settings
from tests.fixtures.kafka_io import collect, decision_payloads
from tests.fixtures.services import risk, running_server, running_worker

MAKER, CHECKER = "ana:key-ana-0123456789:analyst+approver", "bo:key-bo-0123456789:analyst+approver"
SCORER = "scoring-app:key-scoring-0123456789:scorer"
MAKER_KEY, CHECKER_KEY, SCORER_KEY = (entry.split(":")[1] for entry in (MAKER, CHECKER, SCORER))
APPLY_WITHIN = 5.0
RULE, REASON = "watched_patient", "the patient is on the watch list"


def test_a_watch_list_change_reaches_every_instance_within_seconds(
    kafka_broker: EmbeddedBroker, disease_settings: Settings, tmp_path: Path
) -> None:
    """Added by one identity, approved by another, announced: after 5 s every HTTP worker and the stream
    worker hit the rule for the watched patient (never for another); removed the same way, the hit goes."""
    settings = replace(
        disease_settings, api_keys=(MAKER, CHECKER, SCORER), kafka_bootstrap_servers=kafka_broker.bootstrap_servers
    )
    watched, other = sample_assessments(2, seed=41)
    raw_id = watched["patient_id"]
    flow = Flow(settings, watched, other)

    with (
        running_server("disease", settings, tmp_path / "gunicorn.log", workers=2) as server,
        running_worker("disease", settings, tmp_path / "worker.log"),
    ):
        flow.start(server.base_url)
        collect(
            settings.kafka_bootstrap_servers,
            DISEASE_DECISIONS,
            timeout=60,  # the worker has joined and scores
            until=lambda r: any(d["event_id"].startswith("K-") for d in decision_payloads(r)),
        )
        proposal = _cli(
            settings, server.base_url, "lists", "propose-add", "disease", "watch_patients", raw_id, MAKER_KEY
        )
        assert (proposal["kind"], proposal["action"], proposal["values"]) == ("list", "add", 1)
        approve_url = f"{server.base_url}/v1/control/proposals/{proposal['id']}/approve"
        assert requests.post(approve_url, headers={"X-API-Key": MAKER_KEY}, timeout=10).status_code == 403
        approving_at = time.time()  # decisions before this cannot see the list; after `added_at` + 5 s all do
        approved = _cli(settings, server.base_url, "lists", "approve", "disease", proposal["id"], CHECKER_KEY)
        added_at = time.time()
        assert approved["announced"] and approved["change"]["list_version"] == 1, approved
        _poll_until(lambda: _lists_changes_applied(server.base_url) >= 2, APPLY_WITHIN, "both workers applying it")

        shown = requests.get(
            f"{server.base_url}/v1/control/lists/watch_patients",
            params={"value": raw_id},
            headers={"X-API-Key": CHECKER_KEY},
            timeout=10,
        ).json()
        pseudonym = pseudonymise(raw_id, settings.pseudonym_key)
        assert shown["values"] == [pseudonym] and shown["contains"] == {"value": pseudonym, "listed": True}
        assert shown["version"] == 1 and shown["history"][0]["approved_by"] == "bo"
        _wait_past(added_at + APPLY_WITHIN + 3, flow)

        removal = _cli(
            settings, server.base_url, "lists", "propose-remove", "disease", "watch_patients", pseudonym, CHECKER_KEY
        )
        removing_at = time.time()
        _cli(settings, server.base_url, "lists", "approve", "disease", removal["id"], MAKER_KEY)
        removed_at = time.time()
        _wait_past(removed_at + APPLY_WITHIN + 3, flow)
        flow.stop()
        audit = json.loads(
            risk(settings, "audit", "disease", "--api-key", MAKER_KEY, "--server", server.base_url).stdout
        )
        records = collect(
            settings.kafka_bootstrap_servers,
            DISEASE_DECISIONS,
            lambda r: {d["event_id"] for d in decision_payloads(r)} >= set(flow.published),
            timeout=120,
        )

    over_kafka = [d for d in decision_payloads(records) if d["event_id"] in flow.published]
    for door, decisions in (("http", flow.http_decisions), ("kafka", over_kafka)):
        ours = [d for d in decisions if d["event_id"].split("-")[1] == "W"]
        assert [d for d in decisions if d["event_id"].split("-")[1] == "O" and _hit(d)] == [], door
        listed = [d for d in ours if added_at + APPLY_WITHIN < _at(d) < removing_at]
        after = [d for d in ours if _at(d) > removed_at + APPLY_WITHIN]
        before = [d for d in ours if _at(d) < approving_at]
        assert before and listed and after, (door, len(before), len(listed), len(after))
        assert [d["event_id"] for d in before + after if _hit(d)] == [], door
        for decision in listed:
            assert _hit(decision) and decision["decision"] in ("follow_up", "urgent"), (door, decision)
    list_entries = [(e["action"], e.get("list_version")) for e in audit if e["kind"] == "list"]
    assert list_entries == [
        ("proposed", None),
        ("approval_refused", None),
        ("approved", 1),
        ("proposed", None),
        ("approved", 2),
    ]
    written = [p.read_text(errors="replace") for p in settings.control_dir.rglob("*") if p.is_file()]
    assert not any(raw_id in text for text in written), "the list and its records hold the pseudonym only"


class Flow:
    """Assessments of the watched patient (ids `*-W-*`) and of another (`*-O-*`), about ten a second on Kafka
    and five a second over HTTP from each of two threads (so both gunicorn workers answer), until stopped."""

    def __init__(self, settings: Settings, watched: dict[str, Any], other: dict[str, Any]) -> None:
        self.settings, self.events = settings, {"W": watched, "O": other}
        self.published: list[str] = []
        self.http_decisions: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, base_url: str) -> None:
        self._threads = [threading.Thread(target=self._publish)] + [
            threading.Thread(target=self._score, args=(base_url, k)) for k in range(2)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _publish(self) -> None:
        producer = KafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap_servers, acks="all")
        try:
            while not self._stop.is_set():
                for who, event in self.events.items():
                    assessment = {**event, "assessment_id": f"K-{who}-{len(self.published):06d}"}
                    producer.send(
                        HEALTH_ASSESSMENTS.name,
                        key=assessment["patient_id"].encode(),
                        value=encode(make_event(HEALTH_ASSESSMENTS.event_type, "/tests", assessment)),
                    )
                    producer.flush()
                    self.published.append(assessment["assessment_id"])
                time.sleep(0.2)
        finally:
            producer.close()

    def _score(self, base_url: str, thread: int) -> None:
        session, sent = requests.Session(), 0
        while not self._stop.is_set():
            for who, event in self.events.items():
                assessment = {**event, "assessment_id": f"H{thread}-{who}-{sent:06d}"}
                response = session.post(
                    f"{base_url}/v1/score", json=assessment, headers={"X-API-Key": SCORER_KEY}, timeout=10
                )
                assert response.status_code == 200, response.text
                self.http_decisions.append(response.json())
            sent += 1
            time.sleep(0.2)


def _hit(decision: dict[str, Any]) -> bool:
    hits = [h for h in decision["rule_hits"] if h["rule_id"] == RULE]
    return bool(hits) and hits[0]["reason"] == REASON


def _lists_changes_applied(base_url: str) -> float:
    """How many times the gunicorn workers swapped their core for a list change (summed over workers)."""
    metrics = requests.get(f"{base_url}/metrics", timeout=10).text
    pattern = re.compile(r'^risk_control_changes_total\{[^}]*kind="lists"[^}]*\} (\S+)$')
    return sum(float(m.group(1)) for line in metrics.splitlines() if (m := pattern.match(line)))


def _wait_past(moment: float, flow: Flow) -> None:
    """Until `moment` has passed and an HTTP decision scored after it came back (the flows go on meanwhile)."""
    _poll_until(lambda: any(_at(d) > moment for d in list(flow.http_decisions)), moment - time.time() + 20, "decisions")


def _poll_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {timeout:g} s")
        time.sleep(0.1)


def _at(decision: dict[str, Any]) -> float:
    return datetime.fromisoformat(decision["scored_at"]).timestamp()


def _cli(settings: Settings, base_url: str, *args: str) -> Any:
    """`risk ARGS... --api-key KEY --server URL` (the last of `args` is the key): the child has no keys of its
    own, so the server's own RISK_API_KEYS decide."""
    *words, key = args
    done = risk(settings, *words, "--api-key", key, "--server", base_url, environment={"RISK_API_KEYS": ""})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
