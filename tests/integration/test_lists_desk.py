"""The desk's lists page (Flask's test client, a real broker for the announcements): an analyst proposes
values, an approver approves them and the change is announced on `risk.control`; who may read, propose
and approve is the control plane's roles; patient ids enter pseudonymised and every value is escaped."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from flask import Flask

from services.desk.app import create_app
from shared.events.broker import EmbeddedBroker
from shared.events.topics import RISK_CONTROL
from shared.privacy import pseudonymise
from shared.settings import Settings
from tests.fixtures.kafka_io import collect
from tests.unit.test_desk import KEYS, desk_settings, sign_in, token_on

PROPOSAL = re.compile(r'id="proposal-([0-9a-f]{12})"')


@pytest.fixture
def desk(tmp_path: Path, kafka_broker: EmbeddedBroker) -> Iterator[tuple[Flask, Settings]]:
    settings = replace(
        desk_settings(tmp_path), kafka_bootstrap_servers=kafka_broker.bootstrap_servers, pseudonym_key=b"desk-key"
    )
    app = create_app(settings)
    yield app, settings
    app.extensions["risk_desk"].close()


def test_a_list_change_proposed_and_approved_in_the_desk(desk: tuple[Flask, Settings]) -> None:
    """The analyst's raw patient id is held as its pseudonym; the analyst sees no approve button on their own
    proposal; the approver's approval makes version 1 and is announced; the audit log names both."""
    app, settings = desk
    analyst, approver = app.test_client(), app.test_client()
    sign_in(analyst, KEYS["analyst"])
    sign_in(approver, KEYS["approver"])
    form = {"list": "watch_patients", "action": "add", "values": "PATIENT-RAW-1\n\nPATIENT-RAW-2\n"}
    posted = analyst.post(
        "/lists/disease/proposals", data={**form, "csrf_token": token_on(analyst, "/lists?service=disease")}
    )
    assert posted.status_code == 303, posted.get_data(as_text=True)[:500]
    own = analyst.get("/lists?service=disease").get_data(as_text=True)
    (proposal_id,) = PROPOSAL.findall(own)
    assert f'id="approve-{proposal_id}"' not in own and "Another person must approve" in own
    page = approver.get("/lists?service=disease").get_data(as_text=True)
    assert "PATIENT-RAW" not in page and pseudonymise("PATIENT-RAW-1", settings.pseudonym_key) in page
    approved = approver.post(
        f"/lists/disease/proposals/{proposal_id}/approve", data={"csrf_token": token_on(approver, "/lists")}
    )
    assert approved.status_code == 303
    shown = approver.get("/lists/disease/watch_patients?value=PATIENT-RAW-2").get_data(as_text=True)
    assert "version 1, 2 value(s)" in shown and "is on watch_patients" in shown
    announcements = collect(
        settings.kafka_bootstrap_servers,
        RISK_CONTROL,
        lambda records: any(b'"watch_patients"' in (r.value or b"") for r in records),
        timeout=30,
    )
    assert announcements
    runtime = app.extensions["risk_desk"].runtime("disease")
    audit = [(e["action"], e["identity"]) for e in runtime.control.audit("disease") if e.get("kind") == "list"]
    assert audit == [("proposed", "analyst-person"), ("approved", "approver-person")]


@pytest.mark.parametrize(
    ("role", "reads", "proposes"),
    [
        ("viewer", False, False),
        ("scorer", False, False),
        ("analyst", True, True),
        ("approver", True, False),
        ("admin", True, True),
    ],
)
def test_who_may_read_and_propose(desk: tuple[Flask, Settings], role: str, reads: bool, proposes: bool) -> None:
    """Reading lists needs analyst, approver or admin; proposing analyst or admin (403 otherwise)."""
    app, _ = desk
    client = app.test_client()
    sign_in(client, KEYS[role])
    page = client.get("/lists?service=fraud")
    assert page.status_code == (200 if reads else 403)
    token = token_on(client, "/queue") if role != "scorer" else token_on(client, "/signin")
    form = {"list": "deny_terminals", "action": "add", "values": "T-1", "csrf_token": token}
    assert client.post("/lists/fraud/proposals", data=form).status_code == (303 if proposes else 403)


def test_values_are_escaped_and_bad_input_is_named(desk: tuple[Flask, Settings]) -> None:
    """A planted `<script>` value is shown as text, never as markup; a value too long is a 422 naming it."""
    app, _ = desk
    analyst = app.test_client()
    sign_in(analyst, KEYS["analyst"])
    token = token_on(analyst, "/lists?service=fraud")
    planted = {"list": "deny_terminals", "action": "add", "values": "<script>alert(1)</script>", "csrf_token": token}
    assert analyst.post("/lists/fraud/proposals", data=planted).status_code == 303
    page = analyst.get("/lists?service=fraud").get_data(as_text=True)
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    too_long = {**planted, "values": "x" * 65}
    refused = analyst.post("/lists/fraud/proposals", data=too_long)
    assert refused.status_code == 422 and "values.0" in refused.get_data(as_text=True)
