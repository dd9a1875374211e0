"""Cases: the decisions that need a person, as the analysts' desk works them (the store's `*_case*` methods).

A decision becomes a case when its outcome is one its ruleset queues (`queue:`); `sync` copies new ones from
`decisions` into `cases`, looking again a little before where it stopped last (`RESCAN`), since a decision
scored before the last look may have committed after it. The queue is the open cases, most severe outcome
first, then highest score, then oldest, paged by a keyset cursor over the queue index.

Every function here runs on a connection the store hands it, inside the store's transaction or read.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from shared.decisions.tables import (
    case_comments,
    case_rule_hits,
    case_scans,
    cases,
    decision_rule_hits,
    decisions,
    desk_sessions,
    outcomes,
)
from shared.errors import InvalidInputError

RESCAN = timedelta(minutes=2)  # how far before the last look a sync looks again: longer than any commit lag
MAX_QUEUE_PAGE = 200
MAX_COUNTED = 10_000  # a filtered count stops here ("10,000 or more"): its cost stays bounded at any size
UNASSIGNED = ""  # the assignee filter for cases nobody has taken


@dataclass(frozen=True, slots=True)
class Case:
    service: str
    event_id: str
    entity_id: str
    decision: str
    risk_band: str
    score: float
    severity: int  # the outcome's place in the ruleset's outcomes: higher is more severe
    scored_at: datetime
    opened_at: datetime
    is_open: bool
    assignee: str | None
    assigned_at: datetime | None
    resolution: str | None
    resolved_by: str | None
    resolved_at: datetime | None


@dataclass(frozen=True, slots=True)
class QueueFilter:
    """What the queue shows; every filter is optional, and they all hold together."""

    service: str | None = None
    decision: str | None = None
    rule_id: str | None = None
    band: str | None = None
    since: datetime | None = None  # scored at or after
    until: datetime | None = None  # scored before
    assignee: str | None = None  # an identity's name, or UNASSIGNED
    limit: int = 50
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class QueuePage:
    items: list[Case]
    next_cursor: str | None
    matching: int  # open cases the filter matches, counted up to MAX_COUNTED + 1


@dataclass(frozen=True, slots=True)
class QueueSummary:
    """The whole open queue at a glance: open cases per (service, outcome), and the oldest one's decision time."""

    open_by_outcome: dict[tuple[str, str], int]
    oldest_scored_at: datetime | None

    @property
    def total(self) -> int:
        return sum(self.open_by_outcome.values())


@dataclass(frozen=True, slots=True)
class KnownOutcome:
    outcome: str
    source: str
    reported_at: datetime
    revisions: int


@dataclass(frozen=True, slots=True)
class Comment:
    author: str
    written_at: datetime
    body: str


def sync(connection: Connection, service: str, severities: Mapping[str, int], now: datetime) -> int:
    """Open a case for every decision of `service` whose outcome is in `severities` (outcome -> its place in the
    ruleset's outcomes) and has none yet; returns how many were opened."""
    scanned_to = connection.execute(
        sa.select(case_scans.c.scanned_to).where(case_scans.c.service == service)
    ).scalar_one_or_none()
    opened = 0
    if severities:
        severity = sa.case({o: -s for o, s in severities.items()}, value=decisions.c.decision)
        chosen = sa.select(
            decisions.c.service,
            decisions.c.event_id,
            decisions.c.entity_id,
            decisions.c.decision,
            decisions.c.risk_band,
            decisions.c.score,
            severity,
            -decisions.c.score,
            decisions.c.scored_at,
            sa.literal(now, cases.c.opened_at.type),
            sa.true(),
        ).where(decisions.c.service == service, decisions.c.decision.in_(list(severities)))
        if scanned_to is not None:
            chosen = chosen.where(decisions.c.scored_at >= scanned_to - RESCAN)
        columns = [
            "service",
            "event_id",
            "entity_id",
            "decision",
            "risk_band",
            "score",
            "order_severity",
            "order_score",
            "scored_at",
            "opened_at",
            "is_open",
        ]
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(cases).from_select(columns, chosen).on_conflict_do_nothing()
        opened = len(connection.execute(statement.returning(cases.c.event_id)).all())
        if opened:
            _copy_rule_hits(connection, service, scanned_to - RESCAN if scanned_to is not None else None)
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    connection.execute(
        dialect.insert(case_scans)
        .values(service=service, scanned_to=now)
        .on_conflict_do_update(index_elements=["service"], set_={"scanned_to": now})
    )
    return opened


def queue_page(connection: Connection, wanted: QueueFilter) -> QueuePage:
    """One page of the open cases `wanted` matches. Filtered by a rule, the page and the count read
    `case_rule_hits` (one range of its indexes), otherwise `cases`; both sort and filter on the same columns."""
    if not 1 <= wanted.limit <= MAX_QUEUE_PAGE:
        raise InvalidInputError({"limit": [f"must be between 1 and {MAX_QUEUE_PAGE}"]})
    listed = case_rule_hits if wanted.rule_id is not None else cases
    conditions = _conditions(listed, wanted)
    order = (listed.c.order_severity, listed.c.order_score, listed.c.scored_at, listed.c.service, listed.c.event_id)
    query = sa.select(cases).where(*conditions)
    if listed is case_rule_hits:
        query = query.select_from(
            case_rule_hits.join(
                cases,
                sa.and_(cases.c.service == case_rule_hits.c.service, cases.c.event_id == case_rule_hits.c.event_id),
            )
        )
    if wanted.cursor is not None:
        query = query.where(sa.tuple_(*order) > _read_cursor(wanted.cursor))
    rows = [_case(row) for row in connection.execute(query.order_by(*order).limit(wanted.limit + 1))]
    items = rows[: wanted.limit]
    counted = sa.select(sa.literal(1)).select_from(listed).where(*conditions).limit(MAX_COUNTED + 1).subquery()
    matching = connection.execute(sa.select(sa.func.count()).select_from(counted)).scalar_one()
    more = len(rows) > wanted.limit
    return QueuePage(items, _make_cursor(items[-1]) if more and items else None, int(matching))


def summary(connection: Connection) -> QueueSummary:
    counts = connection.execute(
        sa.select(cases.c.service, cases.c.decision, sa.func.count())
        .where(cases.c.is_open.is_(True))
        .group_by(cases.c.service, cases.c.decision)
    )
    oldest = connection.execute(
        sa.select(cases.c.scored_at).where(cases.c.is_open.is_(True)).order_by(cases.c.scored_at).limit(1)
    ).scalar()
    return QueueSummary({(s, d): int(n) for s, d, n in counts}, oldest)


def one(connection: Connection, service: str, event_id: str) -> Case | None:
    row = connection.execute(sa.select(cases).where(cases.c.service == service, cases.c.event_id == event_id)).first()
    return _case(row) if row is not None else None


def assign(connection: Connection, service: str, event_id: str, identity: str, now: datetime) -> bool:
    """Give an open case to `identity`; False when there is no such open case."""
    changed = connection.execute(
        cases.update()
        .where(cases.c.service == service, cases.c.event_id == event_id, cases.c.is_open.is_(True))
        .values(assignee=identity, assigned_at=now)
    )
    if changed.rowcount:
        _update_rule_hits(connection, service, event_id, assignee=identity)
    return bool(changed.rowcount)


def resolve(connection: Connection, service: str, event_id: str, resolution: str, identity: str, now: datetime) -> bool:
    """Close an open case with `resolution`; False when there is no such open case (e.g. resolved meanwhile)."""
    changed = connection.execute(
        cases.update()
        .where(cases.c.service == service, cases.c.event_id == event_id, cases.c.is_open.is_(True))
        .values(is_open=False, resolution=resolution, resolved_by=identity, resolved_at=now)
    )
    if changed.rowcount:
        _update_rule_hits(connection, service, event_id, is_open=False)
    return bool(changed.rowcount)


def reopen(connection: Connection, service: str, event_id: str) -> None:
    connection.execute(
        cases.update()
        .where(cases.c.service == service, cases.c.event_id == event_id)
        .values(is_open=True, resolution=None, resolved_by=None, resolved_at=None)
    )
    _update_rule_hits(connection, service, event_id, is_open=True)


def add_comment(connection: Connection, service: str, event_id: str, author: str, body: str, now: datetime) -> None:
    connection.execute(
        case_comments.insert().values(service=service, event_id=event_id, author=author, written_at=now, body=body)
    )


def comments(connection: Connection, service: str, event_id: str) -> list[Comment]:
    rows = connection.execute(
        sa.select(case_comments.c.author, case_comments.c.written_at, case_comments.c.body)
        .where(case_comments.c.service == service, case_comments.c.event_id == event_id)
        .order_by(case_comments.c.written_at, case_comments.c.id)
    )
    return [Comment(*row) for row in rows]


def outcome_of(connection: Connection, service: str, event_id: str) -> KnownOutcome | None:
    row = connection.execute(
        sa.select(outcomes.c.outcome, outcomes.c.source, outcomes.c.reported_at, outcomes.c.revisions).where(
            outcomes.c.service == service, outcomes.c.event_id == event_id
        )
    ).first()
    return KnownOutcome(*row) if row is not None else None


# ------------------------------------------------------------------ sessions


def save_session(
    connection: Connection, token_hash: str, data: Mapping[str, Any], now: datetime, expires: datetime
) -> None:
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    connection.execute(
        dialect.insert(desk_sessions)
        .values(token_hash=token_hash, data=dict(data), created_at=now, expires_at=expires)
        .on_conflict_do_update(index_elements=["token_hash"], set_={"data": dict(data), "expires_at": expires})
    )


def load_session(connection: Connection, token_hash: str, now: datetime) -> dict[str, Any] | None:
    data = connection.execute(
        sa.select(desk_sessions.c.data).where(
            desk_sessions.c.token_hash == token_hash, desk_sessions.c.expires_at > now
        )
    ).scalar_one_or_none()
    return dict(data) if data is not None else None


def drop_session(connection: Connection, token_hash: str, now: datetime) -> None:
    """Forget the session, and every expired one with it."""
    connection.execute(
        desk_sessions.delete().where(
            sa.or_(desk_sessions.c.token_hash == token_hash, desk_sessions.c.expires_at <= now)
        )
    )


# ------------------------------------------------------------------ internals


def _copy_rule_hits(connection: Connection, service: str, since: datetime | None) -> None:
    """Copy the rule hits of the service's cases scored since `since` (all when None) that have none copied
    yet, with their queue columns, into `case_rule_hits`. The decisions' (service, scored_at) index finds
    the cases of the window, so a sync costs what its window holds, not what the service's cases do."""
    hits = decision_rule_hits.c
    same_case = sa.and_(cases.c.service == decisions.c.service, cases.c.event_id == decisions.c.event_id)
    its_hits = sa.and_(hits.service == decisions.c.service, hits.event_id == decisions.c.event_id)
    chosen = (
        sa.select(cases.c.service, cases.c.event_id, hits.rule_id, *(cases.c[name] for name in _COPIED_COLUMNS))
        .select_from(decisions.join(cases, same_case).join(decision_rule_hits, its_hits))
        .where(decisions.c.service == service)
    )
    if since is not None:
        chosen = chosen.where(decisions.c.scored_at >= since)
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    columns = ["service", "event_id", "rule_id", *_COPIED_COLUMNS]
    connection.execute(dialect.insert(case_rule_hits).from_select(columns, chosen).on_conflict_do_nothing())


def _update_rule_hits(connection: Connection, service: str, event_id: str, **changed: object) -> None:
    connection.execute(
        case_rule_hits.update()
        .where(case_rule_hits.c.service == service, case_rule_hits.c.event_id == event_id)
        .values(**changed)
    )


# What `case_rule_hits` copies from its case: what the queue sorts and filters on.
_COPIED_COLUMNS = ("decision", "risk_band", "order_severity", "order_score", "scored_at", "is_open", "assignee")


def _conditions(listed: sa.Table, wanted: QueueFilter) -> list[Any]:
    """The filter's conditions on `listed`: `cases`, or `case_rule_hits` (which has the rule to match)."""
    found: list[Any] = [listed.c.is_open.is_(True)]
    for column, value in (
        (listed.c.service, wanted.service),
        (listed.c.decision, wanted.decision),
        (listed.c.risk_band, wanted.band),
    ):
        if value is not None:
            found.append(column == value)
    if wanted.assignee == UNASSIGNED:
        found.append(listed.c.assignee.is_(None))
    elif wanted.assignee is not None:
        found.append(listed.c.assignee == wanted.assignee)
    if wanted.since is not None:
        found.append(listed.c.scored_at >= wanted.since)
    if wanted.until is not None:
        found.append(listed.c.scored_at < wanted.until)
    if wanted.rule_id is not None:
        found.append(listed.c.rule_id == wanted.rule_id)
    return found


def _case(row: Any) -> Case:
    return Case(
        service=row.service,
        event_id=row.event_id,
        entity_id=row.entity_id,
        decision=row.decision,
        risk_band=row.risk_band,
        score=row.score,
        severity=-row.order_severity,
        scored_at=row.scored_at,
        opened_at=row.opened_at,
        is_open=bool(row.is_open),
        assignee=row.assignee,
        assigned_at=row.assigned_at,
        resolution=row.resolution,
        resolved_by=row.resolved_by,
        resolved_at=row.resolved_at,
    )


def _make_cursor(last: Case) -> str:
    place = [-last.severity, -last.score, last.scored_at.isoformat(), last.service, last.event_id]
    return base64.urlsafe_b64encode(json.dumps(place, separators=(",", ":")).encode()).decode().rstrip("=")


def _read_cursor(cursor: str) -> tuple[int, float, datetime, str, str]:
    try:
        severity, score, scored_at, service, event_id = json.loads(
            base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        )
        moment = datetime.fromisoformat(scored_at)
        if moment.tzinfo is None or not all(isinstance(v, str) for v in (service, event_id)):
            raise ValueError(cursor)
        return int(severity), float(score), moment, service, event_id
    except (ValueError, TypeError, binascii.Error):
        raise InvalidInputError({"cursor": ["not a cursor the desk gave out: follow the next page's link"]}) from None
