"""Resolutions in each domain's words: the ones that say what became of the event (fraud's confirmed fraud and
genuine, disease's seen with a diagnosis or without) are outcomes learnt through the outcomes door, so they
set the label that the quality figures read; the others (claims' investigate and cleared, disease's referred,
no action, and seen with results to follow) close the case, are audited, and leave the outcome to the
domain's own source, which still reports it afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.desk.desk import Desk
from services.desk.resolutions import OUTCOME_SOURCE, RESOLUTIONS, resolution
from services.registry import service as service_named
from shared.control.store import ControlStore
from shared.core.outcomes import learn
from shared.decisions import NewDecision, OutcomeReport
from shared.modeling.registry import ModelRegistry
from tests.unit.test_desk import desk_settings, fraud_decision

QUEUED = {"fraud": "review", "claims": "refer", "disease": "follow_up"}


def queued(service: str, n: int) -> NewDecision:
    """A decision of `service` with the outcome its ruleset queues, event id `{service}-{n}`."""
    return replace(
        fraud_decision(n, QUEUED[service], 0.7, at=datetime.now(UTC) - timedelta(minutes=n)),
        service=service,
        event_id=f"{service}-{n}",
    )


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    """A desk over a store with one open case per service and resolution (event `{service}-{n}`, n from 1)."""
    opened = Desk(desk_settings(tmp_path))
    opened.store.record([queued(s, n) for s, choices in RESOLUTIONS.items() for n in range(1, len(choices) + 1)])
    opened.sync(force=True)
    yield opened
    opened.close()


def test_every_resolution_reports_one_of_its_services_outcomes_or_says_why_not() -> None:
    """An outcome a resolution reports is in its service's outcomes door; one that reports none names where
    the outcome comes from instead; values are unique within a service."""
    for name, choices in RESOLUTIONS.items():
        outcomes = service_named(name).outcomes
        assert len({c.value for c in choices}) == len(choices)
        for choice in choices:
            assert choice.outcome in outcomes if choice.outcome is not None else choice.no_outcome_because


@pytest.mark.parametrize(
    ("service", "value", "outcome", "label"),
    [
        ("fraud", "confirmed_fraud", "fraud", 1),
        ("fraud", "genuine", "genuine", 0),
        ("disease", "seen_diagnosed", "diagnosed", 1),
        ("disease", "seen_no_diagnosis", "no_diagnosis", 0),
    ],
)
def test_a_resolution_with_an_outcome_sets_the_label(
    desk: Desk, tmp_path: Path, service: str, value: str, outcome: str, label: int
) -> None:
    """The case closes, the outcome joins its decision with the service's label (source analyst), and the
    audit entry names resolution, outcome and what the outcomes door made of it."""
    chosen = resolution(service, value)
    assert chosen is not None
    event_id = f"{service}-1"
    resolved = desk.resolve(service, event_id, "ana", chosen)
    assert resolved.outcome_status is not None and resolved.outcome_status.value == "recorded"
    known = desk.store.outcome_of(service, event_id)
    assert known is not None and (known.outcome, known.source) == (outcome, OUTCOME_SOURCE)
    assert [r.label for r in desk.store.labelled(service) if r.event_id == event_id] == [label]
    case = desk.store.case(service, event_id)
    assert case is not None and not case.is_open and case.resolution == value
    entry = _audit(tmp_path, service)[-1]
    assert (entry["action"], entry["resolution"], entry["outcome"], entry["outcome_status"]) == (
        "case_resolved",
        value,
        outcome,
        "recorded",
    )


@pytest.mark.parametrize(
    ("service", "value"),
    [
        ("claims", "investigate"),
        ("claims", "cleared"),
        ("disease", "seen"),
        ("disease", "referred"),
        ("disease", "no_action"),
    ],
)
def test_a_resolution_without_an_outcome_closes_the_case_and_leaves_the_label(
    desk: Desk, tmp_path: Path, service: str, value: str
) -> None:
    """The case closes with its resolution, audited with no outcome; the decision stays unlabelled, and the
    domain's own outcome reported afterwards (a claim, the clinic's diagnosis) is recorded as the first one."""
    chosen = resolution(service, value)
    assert chosen is not None
    event_id = f"{service}-1"
    assert desk.resolve(service, event_id, "ana", chosen).outcome_status is None
    case = desk.store.case(service, event_id)
    assert case is not None and not case.is_open and case.resolution == value
    assert desk.store.outcome_of(service, event_id) is None
    assert [r.label for r in desk.store.labelled(service) if r.event_id == event_id] == [None]
    entry = _audit(tmp_path, service)[-1]
    assert (entry["action"], entry["resolution"], entry["outcome"], entry["outcome_status"]) == (
        "case_resolved",
        value,
        None,
        None,
    )
    runtime = desk.runtime(service)
    later = "claimed" if service == "claims" else "diagnosed"
    report = OutcomeReport(
        event_id, later, 1, "clinic" if service == "disease" else "insurance.claims", datetime.now(UTC)
    )
    assert learn(runtime.service, [report], desk.store, runtime.state, "kafka")[0].status.value == "recorded"


def _audit(tmp_path: Path, service: str) -> list[dict[str, object]]:
    settings = desk_settings(tmp_path)
    return ControlStore(settings.control_dir, ModelRegistry(settings.model_dir)).audit(service)
