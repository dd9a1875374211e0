"""How a case is resolved, in each domain's words, and the outcome (in the outcomes door's vocabulary) each
resolution reports.

A resolution that says what became of the event is an outcome like any other: it is learnt through
`shared.core.outcomes.learn` (source `analyst`), so it sets the label, the window state and the quality
figures, and a later report from the domain's own source (a chargeback, the clinic) revises it as usual.

- fraud: `confirmed fraud` and `genuine` are the outcomes `fraud` and `genuine`.
- disease: a follow-up ends with the patient seen, referred, or no action. Seen, the clinician says what the
  visit found: `seen: diagnosed` and `seen: no diagnosis` are the outcomes `diagnosed` and `no_diagnosis`;
  `seen: results to follow` reports none yet (the diagnosis comes from `health.outcomes`). `referred` reports
  none (the specialist's diagnosis comes from `health.outcomes`), nor does `no action` (nobody looked for one).
- claims: a referred quote is `investigate` or `cleared`; neither says whether a claim followed, which is
  the claims outcome (`claimed`, learnt from `insurance.claims` within the year after the quote). Both close
  the case with the resolution recorded and audited, and report no outcome, so the labels stay the claims'.
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
    no_outcome_because: str = ""  # for one that reports none: where the outcome comes from instead


RESOLUTIONS: Final[dict[str, tuple[Resolution, ...]]] = {
    "fraud": (
        Resolution("confirmed_fraud", "Confirmed fraud", "fraud"),
        Resolution("genuine", "Genuine", "genuine"),
    ),
    "claims": (
        Resolution("investigate", "Investigate", None, "a claim, if one follows, comes from the claim notifications"),
        Resolution("cleared", "Cleared", None, "a claim, if one follows, comes from the claim notifications"),
    ),
    "disease": (
        Resolution("seen_diagnosed", "Seen: diagnosed", "diagnosed"),
        Resolution("seen_no_diagnosis", "Seen: no diagnosis", "no_diagnosis"),
        Resolution("seen", "Seen: results to follow", None, "the diagnosis comes from the clinic's outcomes"),
        Resolution("referred", "Referred", None, "the specialist's diagnosis comes from the clinic's outcomes"),
        Resolution("no_action", "No action", None, "nobody looked for a diagnosis"),
    ),
}


def resolution(service: str, value: str) -> Resolution | None:
    return next((r for r in RESOLUTIONS.get(service, ()) if r.value == value), None)


def words_of(service: str, value: str | None) -> str:
    found = resolution(service, value) if value else None
    return found.words if found else (value or "")
