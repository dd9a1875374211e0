"""The analysts' desk in-process (Flask's test client over a real SQLite decision store): sign-in with the
existing identities, every page and action tried with every role, server-side sessions and their cookies,
CSRF on every form, values escaped, and a resolution that is an outcome (labels, quality) and audited."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from services.desk.app import create_app
from services.desk.sessions import COOKIE
from shared.control.store import ControlStore
from shared.decisions import DecisionStore, NewDecision
from shared.modeling.registry import ModelRegistry
from shared.settings import ROLES, Settings

KEYS = {role: f"key-of-{role}-0123456789" for role in ROLES}
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def fraud_decision(
    n: int,
    decision: str = "review",
    score: float = 0.5,
    *,
    terminal: str = "8812",
    at: datetime | None = None,
    amount: float = 57.16,
    **event: Any,
) -> NewDecision:
    """A fraud decision shaped as the scoring core records one."""
    scored_at = at or T0 + timedelta(minutes=n)
    event_id = f"tx{n:05d}"
    rule_hits = (
        []
        if decision == "approve"
        else [{"rule_id": "score_review", "outcome": decision, "reason": f"fraud score {score} is at or above 0.3"}]
    )
    document: dict[str, Any] = {
        "event_id": event_id,
        "decision_id": f"00000000-0000-5000-8000-{n:012d}",
        "entity_id": f"card{n % 7}",
        "service": "fraud",
        "score": score,
        "risk_band": "high" if score >= 0.6 else "medium",
        "decision": decision,
        "reasons": [{"feature": "amount", "value": amount, "contribution": 0.8, "text": f"amount {amount} is unusual"}],
        "rule_hits": rule_hits,
        "model": {"name": "fraud-catboost", "version": "20261101T000000000000-aaaaaaaa"},
        "feature_set": {"name": "fraud", "version": "3"},
        "ruleset_version": "2026.11.1",
        "input_fingerprint": f"sha256:{n:064x}",
        "scored_at": scored_at.isoformat(),
        "latency_ms": 3.0,
    }
    return NewDecision(
        service="fraud",
        event_id=event_id,
        decision_id=document["decision_id"],
        entity_id=document["entity_id"],
        decision=decision,
        score=score,
        risk_band=document["risk_band"],
        model_version="20261101T000000000000-aaaaaaaa",
        ruleset_version="2026.11.1",
        input_fingerprint=document["input_fingerprint"],
        event_time=scored_at - timedelta(seconds=1),
        scored_at=scored_at,
        rule_ids=tuple(hit["rule_id"] for hit in rule_hits),
        document=document,
        event={
            "transaction_id": event_id,
            "timestamp": (scored_at - timedelta(seconds=1)).isoformat(),
            "customer_id": f"card{n % 7}",
            "terminal_id": terminal,
            "amount": amount,
            **event,
        },
        features={"amount": amount, "terminal_risk_7d": 0.0},
        door="http",
    )


@dataclass
class Plant:
    app: Flask
    store: DecisionStore
    control: ControlStore
    settings: Settings

    def client(self, role: str | None = None) -> FlaskClient:
        client = self.app.test_client()
        if role is not None:
            sign_in(client, KEYS[role])
        return client


def desk_settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings.from_env(
        {},
        model_dir=tmp_path / "models",
        control_dir=tmp_path / "control",
        state_url=f"sqlite:///{tmp_path / 'state.sqlite3'}",
        decisions_url=f"sqlite:///{tmp_path / 'decisions.sqlite3'}",
        api_keys=tuple(f"{role}-person:{key}:{role}" for role, key in KEYS.items()),
        **overrides,
    )


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty decision store at the newest migration, copied by each test (migrating costs a second)."""
    path = tmp_path_factory.mktemp("desk-store") / "decisions.sqlite3"
    store = DecisionStore(f"sqlite:///{path}")
    store.ping()
    store.close()
    return path


@pytest.fixture
def plant(tmp_path: Path, migrated: Path) -> Iterator[Plant]:
    """A desk over a store of 5 fraud decisions: 3 that queue (tx00001 review, tx00002 decline, tx00003
    review) and 2 approvals; one identity per role."""
    settings = desk_settings(tmp_path)
    for suffix in ("", "-wal"):
        if migrated.with_name(migrated.name + suffix).exists():
            shutil.copy(migrated.with_name(migrated.name + suffix), tmp_path / f"decisions.sqlite3{suffix}")
    store = DecisionStore(settings.decisions_url)
    store.record(
        [
            fraud_decision(1, "review", 0.41),
            fraud_decision(2, "decline", 0.93),
            fraud_decision(3, "review", 0.77),
            fraud_decision(4, "approve", 0.02),
            fraud_decision(5, "approve", 0.05),
        ]
    )
    app = create_app(settings)
    app.extensions["risk_desk"].sync(force=True)
    yield Plant(app, store, ControlStore(settings.control_dir, ModelRegistry(settings.model_dir)), settings)
    app.extensions["risk_desk"].close()
    store.close()


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no CSRF token"
    return found.group(1)


def sign_in(client: FlaskClient, key: str) -> Any:
    token = csrf_of(client.get("/signin").get_data(as_text=True))
    return client.post("/signin", data={"key": key, "csrf_token": token})


def token_on(client: FlaskClient, path: str) -> str:
    return csrf_of(client.get(path).get_data(as_text=True))


# ------------------------------------------------------------------ sign-in and sessions


def test_signing_in_with_a_configured_key_opens_the_queue(plant: Plant) -> None:
    """The right key signs in (a redirect to the queue, which lists the three queued cases, most urgent first:
    the decline, then the reviews by score); a wrong key is a 401 with the form again."""
    client = plant.app.test_client()
    assert sign_in(client, "not-a-key").status_code == 401
    reply = sign_in(client, KEYS["analyst"])
    assert reply.status_code == 302 and reply.headers["Location"].endswith("/queue")
    html = client.get("/queue").get_data(as_text=True)
    assert re.findall(r">(tx\d{5})</a>", html) == ["tx00002", "tx00003", "tx00001"]
    assert 'id="open-total">3<' in html


def test_pages_need_a_sign_in(plant: Plant) -> None:
    """Signed out, a page redirects to the sign-in form (coming back after), and a form post is a 401."""
    client = plant.app.test_client()
    reply = client.get("/cases/fraud/tx00001")
    assert reply.status_code == 302 and "/signin?next=/cases/fraud/tx00001" in reply.headers["Location"]
    token = token_on(client, "/signin")
    assert client.post("/cases/fraud/tx00001/assign", data={"csrf_token": token}).status_code == 401
    assert plant.store.case("fraud", "tx00001").assignee is None  # type: ignore[union-attr]


def test_the_session_is_kept_server_side_behind_a_fresh_token(plant: Plant) -> None:
    """The cookie is an opaque token (HttpOnly, SameSite=Lax, not Secure over plain HTTP), replaced at sign-in
    (a token seen before never signs in); signing out ends the session, so a copy of the cookie is worthless."""
    client = plant.app.test_client()
    client.get("/signin")
    before = client.get_cookie(COOKIE)
    assert before is not None and re.fullmatch(r"[A-Za-z0-9_-]{43}", before.value)
    sign_in(client, KEYS["viewer"])
    after = client.get_cookie(COOKIE)
    assert after is not None and after.value != before.value
    assert after.http_only and after.same_site == "Lax" and not after.secure
    stale = plant.app.test_client()
    stale.set_cookie(COOKIE, before.value)
    assert stale.get("/queue").status_code == 302  # the pre-sign-in token opens nothing
    copy = plant.app.test_client()
    copy.set_cookie(COOKIE, after.value)
    assert copy.get("/queue").status_code == 200
    client.post("/signout", data={"csrf_token": token_on(client, "/queue")})
    assert copy.get("/queue").status_code == 302


def test_cookies_are_secure_when_the_setting_says_so_or_over_tls(tmp_path: Path) -> None:
    """RISK_DESK_SECURE_COOKIES makes the cookie Secure on plain HTTP too; over HTTPS it always is."""
    app = create_app(desk_settings(tmp_path, desk_secure_cookies=True))
    client = app.test_client()
    client.get("/signin")
    assert client.get_cookie(COOKIE).secure  # type: ignore[union-attr]
    plain_app = create_app(desk_settings(tmp_path))
    secure_client = plain_app.test_client()
    secure_client.get("/signin", base_url="https://desk.example")
    assert secure_client.get_cookie(COOKIE, domain="desk.example").secure  # type: ignore[union-attr]
    for made in (app, plain_app):
        made.extensions["risk_desk"].close()


def test_an_identity_removed_from_the_keys_is_signed_out(plant: Plant, tmp_path: Path) -> None:
    """Roles are read from RISK_API_KEYS at every request: a desk restarted without an identity's entry no
    longer lets its session in."""
    client = plant.client("analyst")
    cookie = client.get_cookie(COOKIE)
    settings = Settings.from_env(
        {},
        model_dir=plant.settings.model_dir,
        control_dir=plant.settings.control_dir,
        state_url=plant.settings.state_url,
        decisions_url=plant.settings.decisions_url,
        api_keys=(f"viewer-person:{KEYS['viewer']}:viewer",),
    )
    narrower = create_app(settings).test_client()
    narrower.set_cookie(COOKIE, cookie.value)  # type: ignore[union-attr]
    assert narrower.get("/queue").status_code == 302
    narrower.application.extensions["risk_desk"].close()


# ------------------------------------------------------------------ roles


def _assign(client: FlaskClient) -> Any:
    return client.post("/cases/fraud/tx00001/assign", data={"csrf_token": token_on(client, "/queue")})


def _comment(client: FlaskClient) -> Any:
    return client.post(
        "/cases/fraud/tx00001/comments", data={"csrf_token": token_on(client, "/queue"), "comment": "looked at it"}
    )


def _resolve(client: FlaskClient) -> Any:
    return client.post(
        "/cases/fraud/tx00001/resolve",
        data={"csrf_token": token_on(client, "/queue"), "resolution": "genuine"},
    )


def _recompute(client: FlaskClient) -> Any:
    return client.post("/quality/fraud", data={"csrf_token": token_on(client, "/queue")})


READERS = {"viewer", "analyst", "approver", "admin"}
WORKERS = {"analyst", "admin"}
ACTIONS = {
    "queue": (lambda c: c.get("/queue"), 200, READERS),
    "case": (lambda c: c.get("/cases/fraud/tx00001"), 200, READERS),
    "quality": (lambda c: c.get("/quality"), 200, READERS),
    "assign": (_assign, 302, WORKERS),
    "comment": (_comment, 302, WORKERS),
    "resolve": (_resolve, 302, WORKERS),
    "recompute quality": (_recompute, 302, WORKERS),
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", ACTIONS)
def test_every_action_with_every_role(plant: Plant, action: str, role: str) -> None:
    """Each page and action works for the roles allowed it; for any other role it is a 403 naming the roles
    that would do, and nothing changes (no assignment, comment, resolution or audit entry)."""
    perform, success, allowed = ACTIONS[action]
    client = plant.client(role)
    reply = perform(client)
    if role in allowed:
        assert reply.status_code == success, reply.get_data(as_text=True)[:500]
        return
    assert reply.status_code == 403
    assert " or ".join(sorted(ACTIONS[action][2] if role != "scorer" else allowed)) in reply.get_data(as_text=True)
    case = plant.store.case("fraud", "tx00001")
    assert case is not None and case.is_open and case.assignee is None
    assert plant.store.case_comments("fraud", "tx00001") == []
    assert plant.control.audit("fraud") == []


def test_every_desk_view_says_who_may_use_it(plant: Plant) -> None:
    """No view is left to the admin-only fallback by omission: each names its action."""
    unmarked = [
        endpoint
        for endpoint, view in plant.app.view_functions.items()
        if endpoint != "static" and not hasattr(view, "desk_action")
    ]
    assert unmarked == []


# ------------------------------------------------------------------ forms and escaping


def test_every_form_needs_its_csrf_token(plant: Plant) -> None:
    """A post without the session's CSRF token, or with another session's, is refused (400) and does nothing."""
    client = plant.client("analyst")
    other = plant.client("analyst")
    foreign = token_on(other, "/queue")
    for data in ({}, {"csrf_token": foreign}, {"csrf_token": "forged"}):
        assert client.post("/cases/fraud/tx00001/assign", data=data).status_code == 400
        assert client.post("/cases/fraud/tx00001/comments", data={**data, "comment": "x"}).status_code == 400
        assert client.post("/cases/fraud/tx00001/resolve", data={**data, "resolution": "genuine"}).status_code == 400
    assert plant.app.test_client().post("/signin", data={"key": KEYS["admin"]}).status_code == 400
    case = plant.store.case("fraud", "tx00001")
    assert case is not None and case.is_open and case.assignee is None
    assert plant.store.case_comments("fraud", "tx00001") == []


def test_planted_script_is_shown_as_text_never_run(plant: Plant) -> None:
    """A `<script>` in an event field and in a comment reaches the page escaped, and the pages forbid inline
    scripts anyway (Content-Security-Policy: script-src 'self')."""
    planted = "<script>alert('owned')</script>"
    plant.store.record([fraud_decision(9, "review", 0.5, at=datetime.now(UTC), merchant_note=planted)])
    plant.app.extensions["risk_desk"].sync(force=True)
    client = plant.client("analyst")
    token = token_on(client, "/cases/fraud/tx00009")
    client.post("/cases/fraud/tx00009/comments", data={"csrf_token": token, "comment": planted})
    reply = client.get("/cases/fraud/tx00009")
    html = reply.get_data(as_text=True)
    assert "<script" not in html
    assert html.count("&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt;") == 2
    assert "script-src 'self'" in reply.headers["Content-Security-Policy"]


def test_a_bad_filter_names_its_field(plant: Plant) -> None:
    """A filter the queue cannot read is a 400 page naming the field; a cursor not given out is too."""
    client = plant.client("viewer")
    reply = client.get("/queue?from=yesterday&service=nope")
    html = reply.get_data(as_text=True)
    assert reply.status_code == 400 and 'id="from-problem"' in html and 'id="service-problem"' in html
    assert client.get("/queue?cursor=garbage").status_code == 400


# ------------------------------------------------------------------ the case and its resolution


def test_the_case_page_says_why(plant: Plant) -> None:
    """Outcome, score and band, the rule hits with their reasons and descriptions, the model's reasons in
    words, the versions and fingerprint, the entity's timeline (pseudonymised ids as stored)."""
    client = plant.client("viewer")
    client.get("/queue")
    html = client.get("/cases/fraud/tx00003").get_data(as_text=True)
    assert "fraud score 0.77 is at or above 0.3" in html and "The model sees a real chance of fraud" in html
    assert "amount 57.16 is unusual" in html
    assert "fraud-catboost 20261101T000000000000-aaaaaaaa" in html and "2026.11.1" in html
    assert f"sha256:{3:064x}" in html
    timeline = html.split('id="timeline-title"')[1].split("</ol>")[0]
    assert (
        re.findall(r"<code>(tx\d+)</code>", timeline) == ["tx00003"] and "(this case)" in timeline
    )  # card3's only one
    assert "Assign to me" not in html  # a viewer reads only


def test_a_resolution_is_an_outcome_and_is_audited(plant: Plant) -> None:
    """Assign, comment and resolve as confirmed fraud: the case leaves the queue, the outcome `fraud` (source
    analyst) joins its decision, so the quality figures count it, and the audit log says who did what when."""
    client = plant.client("analyst")
    client.get("/queue")
    token = token_on(client, "/cases/fraud/tx00002")
    assert client.post("/cases/fraud/tx00002/assign", data={"csrf_token": token}).status_code == 302
    assert (
        client.post(
            "/cases/fraud/tx00002/comments", data={"csrf_token": token, "comment": "card reported stolen"}
        ).status_code
        == 302
    )
    reply = client.post("/cases/fraud/tx00002/resolve", data={"csrf_token": token, "resolution": "confirmed_fraud"})
    assert reply.status_code == 302
    assert 'id="open-total">2<' in client.get("/queue").get_data(as_text=True)
    known = plant.store.outcome_of("fraud", "tx00002")
    assert known is not None and (known.outcome, known.source) == ("fraud", "analyst")
    assert [row.label for row in plant.store.labelled("fraud") if row.event_id == "tx00002"] == [1]
    assert client.post("/quality/fraud", data={"csrf_token": token}).status_code == 302
    assert 'id="fraud-labelled">1<' in client.get("/quality").get_data(as_text=True)
    entries = plant.control.audit("fraud")
    assert [(e["action"], e["identity"], e["event_id"]) for e in entries] == [
        ("case_assigned", "analyst-person", "tx00002"),
        ("case_commented", "analyst-person", "tx00002"),
        ("case_resolved", "analyst-person", "tx00002"),
    ]
    assert entries[-1]["outcome"] == "fraud" and entries[-1]["outcome_status"] == "recorded" and entries[-1]["at"]
    again = client.post("/cases/fraud/tx00002/resolve", data={"csrf_token": token, "resolution": "genuine"})
    assert again.status_code == 409  # resolved once; the outcome on record stays fraud
    assert plant.store.outcome_of("fraud", "tx00002").outcome == "fraud"  # type: ignore[union-attr]


def test_a_resolution_outside_the_domains_words_is_refused(plant: Plant) -> None:
    """Another domain's resolution (claims' cleared on a fraud case) is a 400 naming fraud's, and the case
    stays open."""
    client = plant.client("analyst")
    token = token_on(client, "/queue")
    reply = client.post("/cases/fraud/tx00001/resolve", data={"csrf_token": token, "resolution": "cleared"})
    assert reply.status_code == 400 and "confirmed_fraud, genuine" in reply.get_data(as_text=True)
    assert plant.store.case("fraud", "tx00001").is_open  # type: ignore[union-attr]
