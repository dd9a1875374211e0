"""Outcomes: what became of a decided event, learnt by every door the same way.

An outcome names the decided event by its id (the service's own id field, e.g. `transaction_id`), says what
happened in the domain's words (fraud: `fraud` / `genuine`; disease: `diagnosed` / `no_diagnosis`), who
established it (`source`: chargeback, analyst, clinic...) and when (`reported_at`). Learning one joins it
to its decision in the store and, when it changes what is known, hands it to the service, which brings the
window state in line (fraud: the terminal's confirmed-fraud labels). What each case becomes:

- the first outcome of an event: recorded;
- the same outcome again (a redelivery, a second source agreeing): a duplicate, nothing changes;
- another outcome reported later than the one on record (a chargeback reversed): it replaces it (revised),
  and the label follows;
- another outcome reported no later than the one on record (an old report arriving late): stale, ignored;
- an event id with no recorded decision: refused (HTTP 404, a dead letter on Kafka, a reject in a file).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from marshmallow import RAISE, Schema, fields, validate

from shared.core.contract import Event, validate_event
from shared.core.service import Service
from shared.decisions import DecisionStore, OutcomeReport, OutcomeResult
from shared.metrics import OUTCOMES
from shared.state import StateStore


@cache
def outcome_schema(service: Service) -> type[Schema]:
    """The marshmallow contract of `service`'s outcome events (closed: an unknown field is refused)."""

    class Meta:
        unknown = RAISE

    declared = {
        "Meta": Meta,
        service.event_id_field: fields.String(
            required=True, validate=validate.Length(min=1, max=128), metadata={"description": "the decided event's id"}
        ),
        "outcome": fields.String(
            required=True,
            validate=validate.OneOf(tuple(service.outcomes)),
            metadata={"description": "what became of the event, in the domain's words"},
        ),
        "source": fields.String(
            required=True,
            validate=validate.Regexp(r"^[a-z][a-z0-9_.-]{0,63}$"),
            metadata={
                "description": "who established it: a system or a role (lower case), never a person",
                "example": "chargeback",
            },
        ),
        "reported_at": fields.AwareDateTime(
            required=True, format="iso", metadata={"description": "when the source established it (RFC 3339)"}
        ),
    }
    return type(f"{service.name.capitalize()}OutcomeSchema", (Schema,), declared)


def validate_outcome(service: Service, raw: object) -> Event:
    """One raw outcome through the service's outcome contract, or InvalidInputError naming the fields."""
    return validate_event(_instance(service), raw)


@cache
def _instance(service: Service) -> Schema:
    return outcome_schema(service)()


def report_of(service: Service, outcome: Event) -> OutcomeReport:
    return OutcomeReport(
        event_id=str(outcome[service.event_id_field]),
        outcome=outcome["outcome"],
        label=service.outcomes[outcome["outcome"]],
        source=outcome["source"],
        reported_at=outcome["reported_at"],
    )


def learn(
    service: Service,
    reports: Sequence[OutcomeReport],
    decisions: DecisionStore,
    state: StateStore,
    door: str,
) -> list[OutcomeResult]:
    """Join the reports to their decisions, apply what changed to the window state, count each status."""
    results = decisions.record_outcomes(service.name, reports)
    changed = [r for r in results if r.changed]
    if changed:
        service.apply_outcomes(changed, state)
    for result in results:
        OUTCOMES.labels(service.name, door, result.status.value).inc()
    return results
