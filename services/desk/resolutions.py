"""How a case is resolved, in each domain's words, and the outcome (in the outcomes door's vocabulary) each
resolution reports. A resolution that says what became of the event is an outcome like any other: it is
learnt through `shared.core.outcomes.learn`, so it sets the label, the window state and the quality figures.
One that only says what the reviewer did reports none: claims learn `claimed` from the claim notifications
that follow a quote, and disease learns a diagnosis from the clinic (`health.outcomes`), not from a triage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

OUTCOME_SOURCE = "analyst"  # an outcome's source is a role, never a person: the person is in the audit log


@dataclass(frozen=True)
class Resolution:
    value: str  # what the form sends and the case records
    words: str  # what the reviewer reads
    outcome: str | None  # the outcome it reports (one of the service's outcomes), or None


RESOLUTIONS: Final[dict[str, tuple[Resolution, ...]]] = {
    "fraud": (
        Resolution("confirmed_fraud", "Confirmed fraud", "fraud"),
        Resolution("genuine", "Genuine", "genuine"),
    ),
    "claims": (
        Resolution("investigate", "Investigate", None),
        Resolution("cleared", "Cleared", None),
    ),
    "disease": (
        Resolution("seen", "Seen", None),
        Resolution("referred", "Referred", None),
        Resolution("no_action", "No action", None),
    ),
}


def resolution(service: str, value: str) -> Resolution | None:
    return next((r for r in RESOLUTIONS.get(service, ()) if r.value == value), None)


def words_of(service: str, value: str | None) -> str:
    found = resolution(service, value) if value else None
    return found.words if found else (value or "")
