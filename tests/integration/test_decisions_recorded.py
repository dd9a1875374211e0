"""Every decision recorded and found again, whichever door made it: HTTP (in-process and under gunicorn,
killed with SIGKILL right after answering), the stream worker (killed likewise) and batch with `--record`;
the same event id again gets the recorded decision back (replayed) across doors, another payload under it
is refused; and the decisions are found by id and by search, over HTTP and in the terminal."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests

from shared.decisions import DecisionStore
from shared.events.topics import FRAUD_DECISIONS, PAYMENTS_TRANSACTIONS
from shared.settings import Settings
from shared.state import open_state_store
from tests.fixtures.kafka_io import collect, publish
from tests.fixtures.services import API_KEY, risk, running_server, running_worker, scoring_app

AUTH = {"X-API-Key": API_KEY}


def tx(run: str, i: int, **overrides: Any) -> dict[str, Any]:
    """Transaction `i` of one test's run (ids unique to the run, since the broker is shared by the session)."""
    return {
        "transaction_id": f"{run}-{i}",
        "timestamp": f"2018-08-08T10:{i % 60:02d}:{i // 60 % 60:02d}+00:00",
        "customer_id": f"{run}-card-{i % 5}",
        "terminal_id": f"{run}-term-{i % 7}",
        "amount": 20.0 + i,
        **overrides,
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, fraud_settings: Settings) -> Settings:
    """The fraud service's settings with the decision store on each backend."""
    if request.param == "sqlite":
        return fraud_settings
    return replace(fraud_settings, decisions_url=request.getfixturevalue("postgres_url"))


def _store(settings: Settings) -> DecisionStore:
    return DecisionStore(settings.decisions_url)


# ------------------------------------------------------------------ HTTP


def test_an_http_decision_is_found_by_event_id_as_it_was_answered(settings: Settings) -> None:
    """POST /v1/score, then GET /v1/decisions/<event id> gives the very document answered; an id never
    decided is a 404 naming it."""
    client = scoring_app("fraud", settings).test_client()
    answered = client.post("/v1/score", json=tx("find", 1), headers=AUTH).get_json()
    assert answered["replayed"] is False and uuid.UUID(answered["decision_id"]).version == 5
    found = client.get("/v1/decisions/find-1", headers=AUTH)
    assert found.status_code == 200 and found.get_json() == answered
    missing = client.get("/v1/decisions/never-sent", headers=AUTH)
    assert missing.status_code == 404 and "never-sent" in missing.get_json()["message"]


def test_an_http_retry_gets_the_recorded_decision_and_counts_nothing_again(settings: Settings) -> None:
    """The same event again answers the recorded decision marked replayed (same score, same scored_at, same
    decision id), neither scored nor added to any window again; the same id with another amount is a 409
    naming the field, and nothing is recorded for it."""
    client = scoring_app("fraud", settings).test_client()
    first = client.post("/v1/score", json=tx("retry", 1), headers=AUTH).get_json()
    state = open_state_store(settings.state_url)
    held = {ns: state.count(ns) for ns in ("fraud.customer", "fraud.terminal")}
    again = client.post("/v1/score", json=tx("retry", 1), headers=AUTH)
    assert again.status_code == 200
    assert again.get_json() == {**first, "replayed": True}
    assert {ns: state.count(ns) for ns in held} == held
    other = client.post("/v1/score", json=tx("retry", 1, amount=999.0), headers=AUTH)
    assert other.status_code == 409
    body = other.get_json()
    assert body["error"] == "conflict" and list(body["fields"]) == ["transaction_id"]
    assert client.get("/v1/decisions/retry-1", headers=AUTH).get_json() == first
    batch = client.post(
        "/v1/score", json={"events": [tx("retry", 2), tx("retry", 1, amount=5.0)]}, headers=AUTH
    ).get_json()
    assert list(batch["fields"]) == ["events.1.transaction_id"]
    assert client.get("/v1/decisions/retry-2", headers=AUTH).status_code == 404  # a refused batch scores nothing


def test_decisions_are_searched_by_entity_decision_rule_and_time_in_pages(settings: Settings) -> None:
    """GET /v1/decisions filters by entity, decision, rule and time, pages with next_cursor until every
    decision was seen once, and refuses a bad limit, an unknown parameter or a repeated one by name."""
    client = scoring_app("fraud", settings).test_client()
    events = [tx("search", i) for i in range(12)] + [tx("search", 99, amount=9_000.0, customer_id="search-big")]
    decided = client.post("/v1/score", json={"events": events}, headers=AUTH).get_json()["decisions"]
    by_id = {d["event_id"]: d for d in decided}

    def ids(query: str) -> list[str]:
        response = client.get(f"/v1/decisions?{query}", headers=AUTH)
        assert response.status_code == 200, response.get_json()
        return [d["event_id"] for d in response.get_json()["decisions"]]

    assert sorted(ids("entity_id=search-card-2")) == ["search-2", "search-7"]
    big = by_id["search-99"]
    assert ids(f"entity_id=search-big&decision={big['decision']}") == ["search-99"]
    for hit in big["rule_hits"]:
        assert "search-99" in ids(f"rule={hit['rule_id']}")
    assert ids("to=2000-01-01T00:00:00%2B00:00") == []
    seen, cursor = [], ""
    while True:
        page = client.get(f"/v1/decisions?limit=5{cursor}", headers=AUTH).get_json()
        seen.extend(d["event_id"] for d in page["decisions"])
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert sorted(seen) == sorted(by_id)
    for query, field in (("limit=0", "limit"), ("colour=red", "colour"), ("limit=5&limit=6", "limit")):
        refused = client.get(f"/v1/decisions?{query}", headers=AUTH)
        assert refused.status_code == 422 and list(refused.get_json()["fields"]) == [field]
    assert client.get("/v1/decisions/search-1").status_code == 401


def test_a_patient_is_found_by_raw_id_while_the_store_keeps_only_the_pseudonym(disease_settings: Settings) -> None:
    """Disease decisions carry the patient's pseudonym; a search by the raw patient id hashes it with the
    service's key first and finds them, and the raw id appears nowhere in the store's file."""
    from services.disease_risk.samples import sample_assessments

    client = scoring_app("disease", disease_settings).test_client()
    events = sample_assessments(3, seed=5)
    client.post("/v1/score", json={"events": events}, headers=AUTH)
    raw = events[1]["patient_id"]
    found = client.get(f"/v1/decisions?entity_id={raw}", headers=AUTH).get_json()["decisions"]
    assert [d["event_id"] for d in found] == [events[1]["assessment_id"]]
    assert found[0]["entity_id"].startswith("pid_")
    store_file = Path(disease_settings.decisions_url.removeprefix("sqlite://"))
    files = list(store_file.parent.glob(f"{store_file.name}*"))  # the database and its write-ahead log
    assert store_file in files and not any(raw.encode() in f.read_bytes() for f in files)


def test_a_decision_answered_by_gunicorn_survives_sigkill_right_after(settings: Settings, tmp_path: Path) -> None:
    """Thirty decisions answered 200 under gunicorn, then every process of the server killed with SIGKILL
    at once: all thirty are in the store, as answered."""
    answered = []
    with running_server("fraud", settings, tmp_path / "gunicorn.log") as server:
        for i in range(30):
            response = requests.post(f"{server.base_url}/v1/score", json=tx("kill", i), headers=AUTH, timeout=10)
            assert response.status_code == 200
            answered.append(response.json())
        _kill_process_tree(server.process.pid)
        server.process.wait(timeout=10)
    store = _store(settings)
    found = store.find("fraud", [d["event_id"] for d in answered])
    assert {k: v.document for k, v in found.items()} == {d["event_id"]: d for d in answered}
    store.close()


def _kill_process_tree(pid: int) -> None:
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    for process in [pid, *map(int, children)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process, signal.SIGKILL)


# ------------------------------------------------------------------ Kafka, and across doors


def test_stream_decisions_are_recorded_replayed_across_doors_and_survive_sigkill(
    kafka_broker: Any, settings: Settings, tmp_path: Path
) -> None:
    """The worker records each decision before producing it (all there after a SIGKILL right after the
    decisions arrived), names each CloudEvent by its decision id; an event decided over HTTP and then
    sent on Kafka, or the other way round, gets the first decision back marked replayed; the same id with
    another payload on Kafka is a dead letter saying conflict."""
    settings = replace(settings, kafka_bootstrap_servers=kafka_broker.bootstrap_servers)
    run = f"stream-{uuid.uuid4().hex[:6]}"
    client = scoring_app("fraud", settings).test_client()
    over_http = client.post("/v1/score", json=tx(run, 0), headers=AUTH).get_json()

    def ours(records: list[Any]) -> list[dict[str, Any]]:
        events = [json.loads(r.value) for r in records]
        return [e for e in events if e["data"]["event_id"].startswith(f"{run}-")]

    with running_worker("fraud", settings, tmp_path / "worker.log") as worker:
        publish(settings.kafka_bootstrap_servers, PAYMENTS_TRANSACTIONS, [tx(run, i) for i in range(20)], "customer_id")
        produced = ours(collect(settings.kafka_bootstrap_servers, FRAUD_DECISIONS, lambda r: len(ours(r)) >= 20))
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    assert len(produced) == 20
    by_id = {e["data"]["event_id"]: e for e in produced}
    assert all(e["id"] == e["data"]["decision_id"] for e in produced)
    assert by_id[f"{run}-0"]["data"] == {**over_http, "replayed": True}  # HTTP first, then Kafka
    assert not any(by_id[f"{run}-{i}"]["data"]["replayed"] for i in range(1, 20))
    store = _store(settings)
    recorded = store.find("fraud", list(by_id))
    assert {k: v.document for k, v in recorded.items() if k != f"{run}-0"} == {
        k: e["data"] for k, e in by_id.items() if k != f"{run}-0"
    }
    store.close()
    after_kafka = client.post("/v1/score", json=tx(run, 5), headers=AUTH).get_json()  # Kafka first, then HTTP
    assert after_kafka == {**by_id[f"{run}-5"]["data"], "replayed": True}

    with running_worker("fraud", settings, tmp_path / "worker2.log"):
        publish(
            settings.kafka_bootstrap_servers,
            PAYMENTS_TRANSACTIONS,
            [tx(run, 3, amount=4_321.0)],
            "customer_id",
        )
        dead = collect(
            settings.kafka_bootstrap_servers,
            PAYMENTS_TRANSACTIONS.dead_letter,
            lambda records: any(f"{run}-3".encode() in r.value for r in records),
        )
    letter = next(r for r in dead if f"{run}-3".encode() in r.value)
    assert json.loads(dict(letter.headers)["error"])["code"] == "conflict"


# ------------------------------------------------------------------ batch


def _rescore(settings: Settings, source: Path, output: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = ["rescore", "fraud", "--input", str(source), "--output", str(output), "--no-progress", "--record"]
    return risk(settings, *command, *extra, timeout=180)


def test_a_batch_rerun_with_record_replays_and_refuses_changed_rows(settings: Settings, tmp_path: Path) -> None:
    """`risk rescore --record` records every decision; the same file again is all replays with the same
    decisions; a file where one row's payload changed under its id rejects that row as a conflict and
    fails the run (--max-rejects 0) after writing the rest."""
    events = [tx("batch", i) for i in range(40)]
    source = tmp_path / "in.csv"
    pd.DataFrame(events).to_csv(source, index=False)
    first = _rescore(settings, source, tmp_path / "first.jsonl")
    assert first.returncode == 0, first.stderr
    assert "40 scored, 0 replayed, 0 rejected of 40 rows" in first.stdout
    again = _rescore(settings, source, tmp_path / "again.jsonl")
    assert again.returncode == 0, again.stderr
    assert "0 scored, 40 replayed, 0 rejected of 40 rows" in again.stdout
    before = [json.loads(line) for line in (tmp_path / "first.jsonl").read_text().splitlines()]
    after = [json.loads(line) for line in (tmp_path / "again.jsonl").read_text().splitlines()]
    assert after == [{**d, "replayed": True} for d in before]

    changed = [*events[:10], {**events[10], "amount": 1.5}, *events[11:], tx("batch", 40)]
    pd.DataFrame(changed).to_csv(source, index=False)
    third = _rescore(settings, source, tmp_path / "third.jsonl")
    assert third.returncode == 1
    assert "1 scored, 39 replayed, 1 rejected of 41 rows" in third.stdout
    rejects = [json.loads(line) for line in (tmp_path / "third.jsonl.rejects.jsonl").read_text().splitlines()]
    assert [(r["row"], r["error"], list(r["fields"])) for r in rejects] == [(11, "conflict", ["transaction_id"])]
    store = _store(settings)
    assert store.count("fraud") == 41
    store.close()


def test_the_terminal_shows_and_searches_recorded_decisions(fraud_settings: Settings) -> None:
    """`risk decisions show` prints the recorded document; `risk decisions search` prints one JSON line per
    decision and the next page's cursor; an unknown id exits 2 with one line."""
    client = scoring_app("fraud", fraud_settings).test_client()
    answered = client.post("/v1/score", json={"events": [tx("cli", i) for i in range(3)]}, headers=AUTH).get_json()

    def decisions(*args: str) -> subprocess.CompletedProcess[str]:
        return risk(fraud_settings, "decisions", *args, timeout=60)

    shown = decisions("show", "fraud", "cli-1")
    assert shown.returncode == 0 and json.loads(shown.stdout) == answered["decisions"][1]
    searched = decisions("search", "fraud", "--limit", "2")
    assert searched.returncode == 0 and len(searched.stdout.splitlines()) == 2
    assert "--cursor" in searched.stderr
    missing = decisions("show", "fraud", "cli-404")
    assert missing.returncode == 2 and "cli-404" in missing.stderr and "Traceback" not in missing.stderr


def test_retention_deletes_only_decisions_older_than_the_setting_and_audits_it(fraud_settings: Settings) -> None:
    """With RISK_DECISIONS_RETENTION_DAYS=30, pruning 29 days from now deletes nothing and 31 days from now
    deletes every decision made today, outcomes with them; each run leaves an audit entry saying how many."""
    from datetime import UTC, datetime, timedelta

    from services.registry import runtime

    settings = replace(fraud_settings, decisions_retention_days=30)
    client = scoring_app("fraud", settings).test_client()
    client.post("/v1/score", json={"events": [tx("keep", i) for i in range(5)]}, headers=AUTH)
    outcome = {
        "transaction_id": "keep-1",
        "outcome": "fraud",
        "source": "analyst",
        "reported_at": "2018-08-20T00:00:00+00:00",
    }
    assert client.post("/v1/outcomes", json=outcome, headers=AUTH).status_code == 200
    parts = runtime("fraud", settings)
    now = datetime.now(UTC)
    assert parts.prune_decisions("ops", now=now + timedelta(days=29)) == 0
    assert parts.prune_decisions("ops", now=now + timedelta(days=31)) == 5
    assert parts.decisions is not None
    assert parts.decisions.count("fraud") == 0 and parts.decisions.count_outcomes("fraud") == 0
    audit = [e for e in parts.control.audit("fraud") if e["action"] == "decisions_pruned"]
    assert [(e["identity"], e["deleted"], e["days"]) for e in audit] == [("ops", 0, 30), ("ops", 5, 30)]
    parts.close()
