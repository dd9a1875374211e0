"""The fraud HTTP door under real gunicorn (2 workers), with a model trained on simulated data."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests

from shared.privacy import pseudonymise
from tests.fixtures.services import API_KEY, PSEUDONYM_KEY, RunningServer, running_server

REPO = Path(__file__).resolve().parents[2]
DECISION_SCHEMA = json.loads((REPO / "contracts/events/decision.v1.json").read_text())
AUTH = {"X-API-Key": API_KEY}


def transaction(**overrides: Any) -> dict[str, Any]:
    event = {
        "transaction_id": "t-1",
        "timestamp": "2018-08-08T09:15:27+00:00",
        "customer_id": "4217",
        "terminal_id": "8812",
        "amount": 57.16,
    }
    return {**event, **overrides}


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, fraud_model_dir: Path, fraud_data_dir: Path
) -> Iterator[RunningServer]:
    from shared.settings import Settings

    tmp = tmp_path_factory.mktemp("http")
    settings = Settings.from_env(
        {},
        model_dir=fraud_model_dir,
        data_dir=fraud_data_dir,
        control_dir=tmp / "control",
        state_url=f"sqlite:///{tmp / 'state.sqlite3'}",
        api_keys=(API_KEY,),
        max_body_bytes=65_536,
        pseudonym_key=PSEUDONYM_KEY.encode(),
    )
    with running_server("fraud", settings, tmp / "gunicorn.log") as running:
        yield running


def decision_data_schema() -> dict[str, Any]:
    return {"$defs": DECISION_SCHEMA["$defs"], **DECISION_SCHEMA["$defs"]["fraud_decision"]}


def test_one_event_gets_a_decision_matching_the_contract(server: RunningServer) -> None:
    """A valid transaction is scored: 200, a decision valid against contracts/events/decision.v1.json
    that pins model, feature set and ruleset versions and fingerprints the input."""
    response = requests.post(f"{server.base_url}/v1/score", json=transaction(), headers=AUTH, timeout=10)
    assert response.status_code == 200, response.text
    decision = response.json()
    jsonschema.validate(decision, decision_data_schema())
    assert decision["event_id"] == "t-1" and decision["entity_id"] == pseudonymise("4217", PSEUDONYM_KEY.encode())
    assert decision["decision"] in {"approve", "review", "decline"}
    assert 0.0 <= decision["score"] <= 1.0
    card = requests.get(f"{server.base_url}/v1/model", headers=AUTH, timeout=10).json()
    assert decision["model"]["version"] == card["version"]
    assert decision["feature_set"]["name"] == card["feature_set"]["name"]


def test_same_input_same_fingerprint_different_input_different(server: RunningServer) -> None:
    """The input fingerprint is a function of the validated input only (the event id is part of it)."""
    post = lambda event: requests.post(f"{server.base_url}/v1/score", json=event, headers=AUTH, timeout=10).json()
    first = post(transaction(transaction_id="fp-1", amount=10.0))
    again = post(transaction(transaction_id="fp-1", amount=10.0))
    other = post(transaction(transaction_id="fp-2", amount=10.0))
    assert first["input_fingerprint"] == again["input_fingerprint"] != other["input_fingerprint"]


def test_batch_scores_every_event_in_order(server: RunningServer) -> None:
    """{"events": [...]} returns one decision per event, in the request's order."""
    events = [transaction(transaction_id=f"b-{i}", customer_id=f"c{i % 3}", amount=10.0 + i) for i in range(25)]
    response = requests.post(f"{server.base_url}/v1/score", json={"events": events}, headers=AUTH, timeout=10)
    assert response.status_code == 200
    assert [d["event_id"] for d in response.json()["decisions"]] == [f"b-{i}" for i in range(25)]


def test_a_card_s_velocity_shows_in_its_features(server: RunningServer) -> None:
    """Window state is shared across requests (and gunicorn workers): the 12th payment on a fresh card
    within a few minutes is seen as such, and a velocity review names it."""
    base = "2018-09-01T10:{:02d}:00+00:00"
    last = None
    for i in range(12):
        event = transaction(transaction_id=f"v-{i}", customer_id="velocity-card", timestamp=base.format(i))
        last = requests.post(f"{server.base_url}/v1/score", json=event, headers=AUTH, timeout=10).json()
    assert last is not None
    hits = {hit["rule_id"] for hit in last["rule_hits"]}
    assert "card_velocity" in hits, last
    assert last["decision"] in {"review", "decline"}
    assert len(last["reasons"]) >= 1 and all(r["text"] for r in last["reasons"])


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (transaction(amount=-1), "amount"),
        (transaction(amount="lots"), "amount"),
        (transaction(timestamp="2018-08-08T09:15:27"), "timestamp"),
        (transaction(timestamp="yesterday"), "timestamp"),
        (transaction(customer_id=""), "customer_id"),
        (transaction(customer_id=42), "customer_id"),
        ({k: v for k, v in transaction().items() if k != "terminal_id"}, "terminal_id"),
        (transaction(surprise=1), "surprise"),
    ],
)
def test_invalid_event_gets_422_naming_the_field(server: RunningServer, event: dict[str, Any], field: str) -> None:
    """Each contract violation is a 422 whose `fields` names the field at fault."""
    response = requests.post(f"{server.base_url}/v1/score", json=event, headers=AUTH, timeout=10)
    assert response.status_code == 422
    assert field in response.json()["fields"]


def test_one_bad_event_refuses_the_whole_batch_and_names_it(server: RunningServer) -> None:
    """A batch is validated all or nothing; the field path carries the event's position."""
    events = [transaction(transaction_id="ok"), transaction(transaction_id="bad", amount=-3)]
    response = requests.post(f"{server.base_url}/v1/score", json={"events": events}, headers=AUTH, timeout=10)
    assert response.status_code == 422
    assert list(response.json()["fields"]) == ["events.1.amount"]


def test_oversized_body_and_batch_get_413(server: RunningServer) -> None:
    """A body over the byte limit, or a batch over the event limit, is a 413."""
    huge = {"events": [transaction(transaction_id="x" * 60) for _ in range(2000)]}
    assert requests.post(f"{server.base_url}/v1/score", json=huge, headers=AUTH, timeout=10).status_code == 413
    many = {"events": [{"a": 1}] * 501}
    response = requests.post(f"{server.base_url}/v1/score", json=many, headers=AUTH, timeout=10)
    assert response.status_code == 413 and "500" in response.json()["message"]


def test_api_key_is_required_except_for_health_and_metrics(server: RunningServer) -> None:
    """/v1/* needs a known X-API-Key (401 otherwise); probes, metrics and the OpenAPI document stay open."""
    url = f"{server.base_url}/v1/score"
    assert requests.post(url, json=transaction(), timeout=10).status_code == 401
    assert requests.post(url, json=transaction(), headers={"X-API-Key": "wrong"}, timeout=10).status_code == 401
    assert requests.get(f"{server.base_url}/v1/model", timeout=10).status_code == 401
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert requests.get(f"{server.base_url}{path}", timeout=10).status_code == 200, path


def test_metrics_count_decisions_across_workers(server: RunningServer) -> None:
    """/metrics exposes the decisions counter aggregated over the gunicorn workers."""
    for i in range(6):
        requests.post(
            f"{server.base_url}/v1/score", json=transaction(transaction_id=f"m-{i}"), headers=AUTH, timeout=10
        )
    text = requests.get(f"{server.base_url}/metrics", timeout=10).text
    counted = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("risk_decisions_total{") and 'door="http"' in line
    )
    assert counted >= 6


def test_model_card_carries_metrics_and_provenance(server: RunningServer) -> None:
    """GET /v1/model is the model card: version, feature set, metrics, data fingerprint, library versions."""
    card = requests.get(f"{server.base_url}/v1/model", headers=AUTH, timeout=10).json()
    for key in ("version", "feature_set", "metrics", "data_fingerprint", "library_versions", "created_at", "params"):
        assert key in card
    assert set(card["metrics"]) == {"catboost", "logistic_regression"}
    assert 0.5 < card["metrics"]["catboost"]["roc_auc"] <= 1.0


def test_no_client_input_gets_a_5xx(server: RunningServer) -> None:
    """Hundreds of malformed bodies (wrong JSON, wrong types, deep nesting, odd headers) never get a 5xx."""
    rng = random.Random(20261122)
    scalars: list[Any] = [None, True, 0, -1, 1e308, "", "x" * 100, [], {}, "2018-08-08T09:15:27+00:00", float("nan")]
    keys = ["transaction_id", "timestamp", "customer_id", "terminal_id", "amount", "events", "data", ""]
    bodies: list[bytes] = [
        b"",
        b"{",
        b"null",
        b"[]",
        b"\xff\xfe",
        b'{"events": null}',
        b'{"events": [1, 2]}',
        b"[" * 5000,
        b'{"amount": NaN}',
        b'"text"',
    ]
    for _ in range(300):
        shape = {rng.choice(keys): rng.choice(scalars) for _ in range(rng.randint(0, 6))}
        base = transaction(**{rng.choice(keys[:5]): rng.choice(scalars)})
        body: Any = rng.choice([shape, base, {"events": [base, shape]}, [base], {"events": base}])
        bodies.append(json.dumps(body, allow_nan=True).encode())
    content_types = ["application/json", "text/plain", "application/x-www-form-urlencoded"]
    for body in bodies:
        response = requests.post(
            f"{server.base_url}/v1/score",
            data=body,
            timeout=10,
            headers={**AUTH, "Content-Type": rng.choice(content_types)},
        )
        assert response.status_code < 500, (body[:200], response.status_code, response.text[:300])
