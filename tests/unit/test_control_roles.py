"""Roles, set beside each key in RISK_API_KEYS, are enforced by the server on every endpoint: every control
action is tried with every role (allowed ones succeed, the others are a 403 that changes nothing), a scoring
key can only score, and maker-checker holds for admins too."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from services.registry import runtime
from shared.control.store import ControlStore
from shared.doors.access import ENDPOINT_ACTIONS, REFERENCE_ENDPOINT_PREFIX
from shared.doors.http import create_app
from shared.errors import ConfigurationError
from shared.modeling.registry import CARD_FILE, ModelRegistry
from shared.runtime import Runtime
from shared.settings import ROLES, Settings

RULESET = Path(__file__).resolve().parents[2] / "services" / "fraud_detection" / "rules.yaml"
PACKAGED = "2026.11.1"
KEYS = {role: f"key-of-{role}-0123456789" for role in ROLES}
ROOT, OTHER = "key-of-root-0123456789", "key-of-other-0123456789"


def ruleset_text(version: str) -> str:
    return RULESET.read_text().replace(f'version: "{PACKAGED}"', f'version: "{version}"')


@dataclass
class Plant:
    client: FlaskClient
    store: ControlStore
    candidate: str  # a registered model version that is not the champion
    pending: str  # a ruleset proposal of root's, waiting for a second identity


@pytest.fixture
def plant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Plant:
    """The fraud app in-process over a registry of two hand-made versions (cards only: nothing is scored),
    one identity per role plus two admins; 2026.50.0 is in force (so the packaged ruleset is a rollback
    target) and 2026.60.0 is proposed by root."""
    model_dir = tmp_path / "models"
    for version in ("20260101T000000000000-aaaaaaaa", "20260201T000000000000-bbbbbbbb"):
        (model_dir / "fraud" / version).mkdir(parents=True)
        (model_dir / "fraud" / version / CARD_FILE).write_text(json.dumps({"version": version, "metrics": {}}))
    settings = Settings.from_env(
        {},
        model_dir=model_dir,
        control_dir=tmp_path / "control",
        state_url=f"sqlite:///{tmp_path / 'state.sqlite3'}",
        decisions_url="none",
        pseudonym_key=b"roles-pseudonym-key",  # fraud pseudonymises card ids, so it scores only with a key
        api_keys=(
            *(f"{role}-person:{key}:{role}" for role, key in KEYS.items()),
            f"root:{ROOT}:admin",
            f"other:{OTHER}:admin",
        ),
    )
    monkeypatch.setattr(Runtime, "announce", lambda self, change, source: False)  # no broker in this layer
    parts = runtime("fraud", settings)
    client = create_app(parts).test_client()
    published = client.post("/v1/control/rulesets", data=ruleset_text("2026.50.0"), headers={"X-API-Key": ROOT})
    assert published.status_code == 201, published.get_json()
    approved = client.post(f"/v1/control/proposals/{published.get_json()['id']}/approve", headers={"X-API-Key": OTHER})
    assert approved.status_code == 200, approved.get_json()
    pending = client.post("/v1/control/rulesets", data=ruleset_text("2026.60.0"), headers={"X-API-Key": ROOT})
    yield Plant(client, parts.control, ModelRegistry(model_dir).versions("fraud")[1], pending.get_json()["id"])
    parts.close()


Request = Callable[[Plant], tuple[str, str, dict[str, Any]]]
CONTROL_ACTIONS: dict[str, tuple[Request, int, frozenset[str]]] = {
    "publish a ruleset": (
        lambda p: ("POST", "/v1/control/rulesets", {"data": ruleset_text("2026.70.0")}),
        201,
        frozenset({"analyst", "admin"}),
    ),
    "propose a promotion": (
        lambda p: ("POST", "/v1/control/promotions", {"json": {"version": p.candidate}}),
        201,
        frozenset({"analyst", "admin"}),
    ),
    "propose a challenger": (
        lambda p: ("POST", "/v1/control/challengers", {"json": {"version": p.candidate}}),
        201,
        frozenset({"analyst", "admin"}),
    ),
    "propose a rollback": (
        lambda p: ("POST", "/v1/control/rollbacks", {"json": {"kind": "ruleset", "version": PACKAGED}}),
        201,
        frozenset({"analyst", "admin"}),
    ),
    "approve": (
        lambda p: ("POST", f"/v1/control/proposals/{p.pending}/approve", {}),
        200,
        frozenset({"approver", "admin"}),
    ),
    "refuse": (
        lambda p: ("POST", f"/v1/control/proposals/{p.pending}/refuse", {"json": {"reason": "not yet"}}),
        200,
        frozenset({"approver", "admin"}),
    ),
    **{
        f"read {what}": (
            lambda p, path=path: ("GET", path, {}),
            200,
            frozenset({"analyst", "approver", "admin"}),
        )
        for what, path in [
            ("proposals", "/v1/control/proposals"),
            ("rulesets", "/v1/control/rulesets"),
            ("models", "/v1/control/models"),
            ("the audit", "/v1/control/audit"),
            ("the audit's verification", "/v1/control/audit/verify"),
        ]
    },
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", CONTROL_ACTIONS)
def test_every_control_action_with_every_role(plant: Plant, action: str, role: str) -> None:
    """Each control action succeeds for the roles allowed it; for any other role it is a 403 naming the roles
    that would do, and neither a proposal nor an audit entry is added."""
    build, success, allowed = CONTROL_ACTIONS[action]
    method, path, options = build(plant)
    proposals, audit = len(plant.store.proposals("fraud")), len(plant.store.audit("fraud"))
    reply = plant.client.open(path, method=method, headers={"X-API-Key": KEYS[role]}, **options)
    if role in allowed:
        assert reply.status_code == success, reply.get_json()
        return
    assert reply.status_code == 403, reply.get_json()
    assert reply.get_json()["error"] == "forbidden" and " or ".join(sorted(allowed)) in reply.get_json()["message"]
    assert (len(plant.store.proposals("fraud")), len(plant.store.audit("fraud"))) == (proposals, audit)


def test_a_scoring_key_can_only_score(plant: Plant) -> None:
    """The scorer reaches /v1/score (a 422 for an empty event, so past the role check) and the descriptions of
    what it scores with; every other endpoint of the app is a 403 for it."""
    headers = {"X-API-Key": KEYS["scorer"]}
    assert plant.client.post("/v1/score", json={}, headers=headers).status_code == 422
    refused = []
    for rule in plant.client.application.url_map.iter_rules():
        if not rule.rule.startswith("/v1/") or rule.rule in ("/v1/score", "/v1/model", "/v1/model/report"):
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            path = rule.rule.replace("<event_id>", "e1").replace("<proposal_id>", plant.pending)
            refused.append((method, path, plant.client.open(path, method=method, headers=headers).status_code))
    assert refused and all(status == 403 for _, _, status in refused), refused
    assert plant.client.post("/v1/score", json={}, headers={"X-API-Key": KEYS["analyst"]}).status_code == 403


def test_every_endpoint_says_which_action_it_is(plant: Plant) -> None:
    """No /v1 endpoint of the app is left to the admin-only fallback by omission: each is in the table."""
    declared = {rule for _, rule in ENDPOINT_ACTIONS}
    missing = [
        r.rule
        for r in plant.client.application.url_map.iter_rules()
        if r.rule.startswith("/v1/") and r.rule not in declared and not r.endpoint.startswith(REFERENCE_ENDPOINT_PREFIX)
    ]
    assert missing == []


def test_an_unknown_key_is_refused_whatever_it_claims(plant: Plant) -> None:
    """A key the server was not given is a 401 on the control plane, and the store is untouched."""
    audit = len(plant.store.audit("fraud"))
    reply = plant.client.post(f"/v1/control/proposals/{plant.pending}/approve", headers={"X-API-Key": "e1"})
    assert reply.status_code == 401 and len(plant.store.audit("fraud")) == audit


def test_an_admin_cannot_approve_its_own_proposal(plant: Plant) -> None:
    """Maker-checker holds whatever the roles: root proposed it, so root's approval is a 403 (and audited)."""
    reply = plant.client.post(f"/v1/control/proposals/{plant.pending}/approve", headers={"X-API-Key": ROOT})
    assert reply.status_code == 403
    assert plant.store.audit("fraud")[-1]["action"] == "approval_refused"
    assert plant.store.current_ruleset("fraud") == "2026.50.0"


def test_old_entries_keep_working_as_scorers_and_bad_roles_fail_fast() -> None:
    """`name:key` and bare keys are scorers (the documented default); an unknown role stops start-up naming
    RISK_API_KEYS and the identity, never echoing the part that might be a key."""
    settings = Settings.from_env({"RISK_API_KEYS": "alice:k1:scorer,bob:k2:approver+analyst,carl:k3,k4-bare"})
    assert {i.name: set(i.roles) for i in settings.identities} == {
        "alice": {"scorer"},
        "bob": {"approver", "analyst"},
        "carl": {"scorer"},
        "key-k4-bar": {"scorer"},
    }
    assert settings.caller("k2") is not None and settings.caller("k2").name == "bob"  # type: ignore[union-attr]
    assert settings.caller("nope") is None
    with pytest.raises(ConfigurationError, match="RISK_API_KEYS.*'dave'") as error:
        Settings.from_env({"RISK_API_KEYS": "dave:k5:s3cr3tpart"})
    assert "s3cr3tpart" not in str(error.value)
    with pytest.raises(ConfigurationError, match="same key"):
        Settings.from_env({"RISK_API_KEYS": "a:k:admin,b:k:scorer"})
