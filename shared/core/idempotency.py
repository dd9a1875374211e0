"""Each event decided once: what every door runs between validation and its answer.

An event id already in the decision store gets its recorded decision back, marked `replayed`, and is not
scored again (so no window feature counts it twice and its score cannot drift); the same id with another
payload (another input fingerprint) is a `Conflict`. The others are scored together and recorded in one
transaction before the door answers, so whatever a door said is on record. Two doors racing with the same
new id both score it, one record wins, and the other door answers with the winner's decision.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.core.contract import ValidEvent
from shared.core.decision import Decision
from shared.core.scoring import ScoringCore
from shared.decisions import DecisionStore, NewDecision, Recorded
from shared.metrics import DECISION_CONFLICTS, DECISION_REPLAYS

Score = Callable[[Sequence[int]], list[Decision]]  # the events at these positions, scored by the door's path


@dataclass(frozen=True, slots=True)
class Answer:
    """A door's answer for one event: the decision document, new or recorded."""

    event_id: str
    entity_id: str
    decision: str
    document: dict[str, Any]
    replayed: bool


@dataclass(frozen=True, slots=True)
class Conflict:
    """The event id was decided before for another payload: refused, never rescored."""

    event_id: str
    recorded_fingerprint: str
    given_fingerprint: str

    @property
    def message(self) -> str:
        return (
            f"event id {self.event_id!r} was decided before for another payload "
            f"(recorded input {self.recorded_fingerprint[:19]}..., this one {self.given_fingerprint[:19]}...): "
            "send a new event id for a new event"
        )


def decide_once(
    core: ScoringCore,
    events: Sequence[ValidEvent],
    score: Score,
    store: DecisionStore | None,
    door: str,
) -> list[Answer | Conflict]:
    """One answer per event, in order. Without a store every event is scored (nothing can be replayed)."""
    return Lookup(core, events, store).decide(score, door)


class Lookup:
    """The events of one batch against the store: replays and conflicts known, the rest still to score. A
    door that refuses a batch whole (HTTP) reads `conflicts` before anything is scored, then decides."""

    def __init__(self, core: ScoringCore, events: Sequence[ValidEvent], store: DecisionStore | None) -> None:
        self._core, self._events, self._store = core, events, store
        self._ids = [str(e.document[core.service.event_id_field]) for e in events]
        self._answers: list[Answer | Conflict | None] = [None] * len(events)
        self._first_at: dict[str, int] = {}
        self._to_score: list[int] = []
        self._repeats: list[int] = []  # the same id twice in one batch: the later one is judged against the first
        recorded = store.answers(core.service.name, self._ids) if store is not None else {}
        for position, (event_id, event) in enumerate(zip(self._ids, events, strict=True)):
            if event_id in recorded:
                self._answers[position] = _judged(recorded[event_id], event)
            elif store is not None and event_id in self._first_at:
                self._repeats.append(position)
            else:
                self._first_at.setdefault(event_id, position)
                self._to_score.append(position)

    @property
    def conflicts(self) -> list[tuple[int, Conflict]]:
        """The events whose id is recorded for another payload, by position."""
        return [(i, a) for i, a in enumerate(self._answers) if isinstance(a, Conflict)]

    def decide(self, score: Score, door: str) -> list[Answer | Conflict]:
        """Score what is new, record it, and answer every event in order."""
        core, events, store, answers = self._core, self._events, self._store, self._answers
        decisions = score(self._to_score)
        documents = core.dump(decisions)
        if store is None:
            inserted = {d.event_id for d in decisions}
            winners: dict[str, Recorded] = {}
        else:
            inserted = store.record(
                [_new(d, doc, events[p], door) for p, d, doc in zip(self._to_score, decisions, documents, strict=True)]
            )
            lost = [d.event_id for d in decisions if d.event_id not in inserted]
            winners = store.answers(core.service.name, lost) if lost else {}
        for position, decision, document in zip(self._to_score, decisions, documents, strict=True):
            if decision.event_id in inserted:
                answers[position] = _answer(decision, document)
            else:  # another door recorded it between our look-up and our write
                answers[position] = _judged(winners[decision.event_id], events[position])
        for position in self._repeats:
            first_position = self._first_at[self._ids[position]]
            first, earlier = answers[first_position], events[first_position]
            if isinstance(first, Answer) and events[position].fingerprint == earlier.fingerprint:
                answers[position] = Answer(
                    first.event_id, first.entity_id, first.decision, _replayed(first.document), True
                )
            else:
                answers[position] = Conflict(self._ids[position], earlier.fingerprint, events[position].fingerprint)
        done = [a for a in answers if a is not None]
        assert len(done) == len(events)
        service = core.service.name
        for answer in done:
            if isinstance(answer, Conflict):
                DECISION_CONFLICTS.labels(service, door).inc()
            elif answer.replayed:
                DECISION_REPLAYS.labels(service, door).inc()
        return done


def _judged(recorded: Recorded, event: ValidEvent) -> Answer | Conflict:
    if recorded.input_fingerprint != event.fingerprint:
        return Conflict(recorded.event_id, recorded.input_fingerprint, event.fingerprint)
    document = _replayed(recorded.document)
    return Answer(recorded.event_id, recorded.entity_id, recorded.decision, document, True)


def _replayed(document: dict[str, Any]) -> dict[str, Any]:
    return {**document, "replayed": True}


def _answer(decision: Decision, document: dict[str, Any]) -> Answer:
    return Answer(decision.event_id, decision.entity_id, decision.decision, document, False)


def _new(decision: Decision, document: dict[str, Any], event: ValidEvent, door: str) -> NewDecision:
    scored_at = datetime.fromisoformat(decision.scored_at)
    return NewDecision(
        service=decision.service,
        event_id=decision.event_id,
        decision_id=decision.decision_id,
        entity_id=decision.entity_id,
        decision=decision.decision,
        score=decision.score,
        risk_band=decision.risk_band,
        model_version=decision.model.version,
        ruleset_version=decision.ruleset_version,
        input_fingerprint=decision.input_fingerprint,
        event_time=decision.event_time or scored_at,
        scored_at=scored_at,
        rule_ids=tuple(hit.rule_id for hit in decision.rule_hits),
        document=document,
        event=event.document,
        features=decision.features or {},
        door=door,
    )
