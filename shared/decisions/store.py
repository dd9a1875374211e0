"""The decision store: every decision recorded once per (service, event id), and found again.

PostgreSQL in production, SQLite in a file as the embedded default (the demo, a laptop), chosen by
`RISK_DECISIONS_URL`; SQLAlchemy Core speaks to both, and the schema is built by the versioned migrations
in `migrations/`, applied when the store is opened. A write returns only after its transaction committed,
so a decision a door has answered survives the process being killed right after.

The store knows no domain: it keeps what the scoring core decided (the dumped decision document and the
columns it is searched by) and answers by exact keys; identifiers arrive already pseudonymised where the
service pseudonymises them.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from shared.decisions import cases
from shared.decisions.direct import DirectPath, PostgresDirect, SqliteDirect
from shared.decisions.tables import decision_rule_hits, decisions, monitoring_snapshots, outcomes
from shared.errors import ConfigurationError, InvalidInputError, NotReadyError
from shared.sqlite import Checkpointer, sqlite_path, tune

MIGRATIONS = Path(__file__).with_name("migrations")
MAX_PAGE = 500
DEFAULT_PAGE = 50
_KEYS_PER_QUERY = 500  # event ids per IN list: far below SQLite's limit of bound parameters
_MIGRATION_LOCK_KEY = 0x5249534B  # "RISK": the PostgreSQL advisory lock that serialises migrations


@dataclass(frozen=True, slots=True)
class NewDecision:
    """What a door hands the store for one decision it made."""

    service: str
    event_id: str
    decision_id: str
    entity_id: str
    decision: str
    score: float
    risk_band: str
    model_version: str
    ruleset_version: str
    input_fingerprint: str
    event_time: datetime
    scored_at: datetime
    rule_ids: tuple[str, ...]
    document: Mapping[str, Any]
    event: Mapping[str, Any]
    features: Mapping[str, Any]
    door: str


@dataclass(frozen=True, slots=True)
class StoredDecision:
    """A decision as recorded."""

    service: str
    event_id: str
    decision_id: str
    entity_id: str
    decision: str
    score: float
    input_fingerprint: str
    door: str
    event_time: datetime
    scored_at: datetime
    recorded_at: datetime
    document: dict[str, Any]
    event: dict[str, Any]
    features: dict[str, Any]


@dataclass(frozen=True, slots=True)
class OutcomeReport:
    """What became of one decided event, as a source reported it."""

    event_id: str
    outcome: str  # in the domain's words
    label: int  # 1 when the outcome is what the score predicts (fraud, a claim, a diagnosis)
    source: str
    reported_at: datetime


class OutcomeStatus(StrEnum):
    RECORDED = "recorded"  # the first outcome of the event
    DUPLICATE = "duplicate"  # the outcome it already has: nothing changes
    REVISED = "revised"  # another outcome, reported later than the one on record: it replaces it
    STALE = "stale"  # another outcome, reported no later than the one on record: ignored
    UNKNOWN_EVENT = "unknown_event"  # no decision is recorded under the event id: refused


@dataclass(frozen=True, slots=True)
class OutcomeResult:
    report: OutcomeReport
    status: OutcomeStatus
    decision: StoredDecision | None  # the decision it joins (None for an unknown event)

    @property
    def changed(self) -> bool:
        """True when the event's label is now what the report says, and was not before."""
        return self.status in (OutcomeStatus.RECORDED, OutcomeStatus.REVISED)


@dataclass(frozen=True, slots=True)
class Labelled:
    """A recorded decision with its outcome (label None while none is known): what quality is measured on."""

    event_id: str
    model_version: str
    score: float
    decision: str
    rule_ids: tuple[str, ...]
    label: int | None
    scored_at: datetime
    features: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Recorded:
    """A recorded decision as a door answers it again."""

    event_id: str
    entity_id: str
    decision: str
    input_fingerprint: str
    document: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Search:
    """What `search` filters on; every filter is optional, and they all hold together."""

    entity_id: str | None = None
    since: datetime | None = None  # scored at or after
    until: datetime | None = None  # scored before
    decision: str | None = None
    rule_id: str | None = None
    limit: int = DEFAULT_PAGE
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class Page:
    """Decisions newest first, and the cursor of the next page (None when this is the last)."""

    items: list[StoredDecision]
    next_cursor: str | None


class DecisionStore:
    """One database of decisions. Connects lazily and per process (safe to build before a fork)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Engine | None = None
        self._pid = 0
        self._lock = threading.Lock()
        # SQLite: one writer at a time across the machine's processes, queued on a lock file, which wakes the
        # next writer at once (SQLite's own busy handler sleeps 1 to 100 ms between tries, which under
        # concurrent requests costs far more than the writes themselves).
        self._writer_lock: Path | None = None
        if url.startswith("sqlite:///"):
            database = sqlite_path(url, "RISK_DECISIONS_URL")
            self._writer_lock = database.with_name(database.name + ".write.lock")
        self._writer_fd: int | None = None
        self._writer_pid = 0
        self._writers = threading.Lock()
        self._checkpointer: Checkpointer | None = None
        self._direct: DirectPath | None = None  # made with the first engine, kept across forks (per process inside)

    # ------------------------------------------------------------------ writing

    def record(self, new: Sequence[NewDecision]) -> set[str]:
        """Insert the decisions whose (service, event id) is not recorded yet, in one transaction; returns
        the event ids inserted (the others were recorded before, by this door or another). On the driver's
        own connection, with SQL compiled once (`direct`): this is on every door's hot path."""
        if not new:
            return set()

        def rule_hits(inserted: set[str]) -> list[dict[str, str]]:
            return [
                {"service": d.service, "event_id": d.event_id, "rule_id": rule}
                for d in new
                if d.event_id in inserted
                for rule in dict.fromkeys(d.rule_ids)
            ]

        return self._direct_path().record([_row(d) for d in new], rule_hits)

    def prune(self, service: str, before: datetime) -> int:
        """Delete the service's decisions scored before `before` (their rule hits and outcomes go with them, by
        the foreign keys' cascade); returns how many."""
        with self._transaction() as connection:
            deleted = connection.execute(
                decisions.delete().where(decisions.c.service == service, decisions.c.scored_at < before)
            )
        return int(deleted.rowcount or 0)

    # ------------------------------------------------------------------ reading

    def find(self, service: str, event_ids: Sequence[str]) -> dict[str, StoredDecision]:
        """The recorded decisions among `event_ids`, by event id."""
        if not event_ids:
            return {}
        with self._reading() as connection:
            return _recorded_on(connection, service, list(dict.fromkeys(event_ids)))

    def answers(self, service: str, event_ids: Sequence[str]) -> dict[str, Recorded]:
        """What a door needs to answer again for the recorded ones among `event_ids`: the look-up every
        scored event pays, so it reads five columns, on the driver's own connection (`direct`)."""
        if not event_ids:
            return {}
        rows = self._direct_path().answers(service, list(dict.fromkeys(event_ids)))
        return {row[0]: Recorded(*row) for row in rows}

    def get(self, service: str, event_id: str) -> StoredDecision | None:
        return self.find(service, [event_id]).get(event_id)

    def search(self, service: str, search: Search) -> Page:
        """Decisions newest first (scored_at, then event id), one page at a time: keyset pagination, so a
        page costs the same however deep it is and decisions recorded meanwhile never shift a page."""
        if not 1 <= search.limit <= MAX_PAGE:
            raise InvalidInputError({"limit": [f"must be between 1 and {MAX_PAGE}"]})
        query = sa.select(decisions).where(decisions.c.service == service)
        if search.entity_id is not None:
            query = query.where(decisions.c.entity_id == search.entity_id)
        if search.since is not None:
            query = query.where(decisions.c.scored_at >= search.since)
        if search.until is not None:
            query = query.where(decisions.c.scored_at < search.until)
        if search.decision is not None:
            query = query.where(decisions.c.decision == search.decision)
        if search.rule_id is not None:
            hits = decision_rule_hits.c
            query = query.where(
                sa.exists().where(
                    hits.service == decisions.c.service,
                    hits.event_id == decisions.c.event_id,
                    hits.rule_id == search.rule_id,
                )
            )
        if search.cursor is not None:
            scored_at, event_id = _read_cursor(search.cursor)
            query = query.where(sa.tuple_(decisions.c.scored_at, decisions.c.event_id) < (scored_at, event_id))
        query = query.order_by(decisions.c.scored_at.desc(), decisions.c.event_id.desc()).limit(search.limit + 1)
        with self._reading() as connection:
            rows = [_stored(row) for row in connection.execute(query)]
        items = rows[: search.limit]
        more = len(rows) > search.limit
        return Page(items, _make_cursor(items[-1]) if more and items else None)

    def latest_for_entity(
        self, service: str, entity_id: str, since: datetime, until: datetime
    ) -> StoredDecision | None:
        """The entity's decision whose event happened last in (since, until], if any."""
        query = (
            sa.select(decisions)
            .where(
                decisions.c.service == service,
                decisions.c.entity_id == entity_id,
                decisions.c.event_time > since,
                decisions.c.event_time <= until,
            )
            .order_by(decisions.c.event_time.desc(), decisions.c.event_id.desc())
            .limit(1)
        )
        with self._reading() as connection:
            row = connection.execute(query).first()
        return _stored(row) if row is not None else None

    # ------------------------------------------------------------------ outcomes

    def record_outcomes(self, service: str, reports: Sequence[OutcomeReport]) -> list[OutcomeResult]:
        """Join each report to its decision, in one transaction, and say what became of it (OutcomeStatus).
        Reports are applied in order, so of two about one event in one call, the second meets the first."""
        if not reports:
            return []
        ids = list(dict.fromkeys(r.event_id for r in reports))
        results: list[OutcomeResult] = []
        with self._transaction() as connection:
            known = _recorded_on(connection, service, ids)
            held = {
                row.event_id: row
                for part in _parts(ids)
                for row in connection.execute(
                    sa.select(outcomes).where(outcomes.c.service == service, outcomes.c.event_id.in_(part))
                )
            }
            for report in reports:
                decision = known.get(report.event_id)
                status = self._apply(connection, service, report, decision, held)
                results.append(OutcomeResult(report, status, decision))
        return results

    @staticmethod
    def _apply(
        connection: Connection,
        service: str,
        report: OutcomeReport,
        decision: StoredDecision | None,
        held: dict[str, Any],
    ) -> OutcomeStatus:
        if decision is None:
            return OutcomeStatus.UNKNOWN_EVENT
        now = datetime.now(UTC)
        current = held.get(report.event_id)
        if current is None:
            row = {
                "service": service,
                "event_id": report.event_id,
                "outcome": report.outcome,
                "label": report.label,
                "source": report.source,
                "reported_at": report.reported_at,
                "recorded_at": now,
                "revisions": 0,
            }
            connection.execute(_insert_ignoring_duplicates(connection, outcomes), row)
            held[report.event_id] = _HeldOutcome(report.outcome, report.reported_at, 0)
            return OutcomeStatus.RECORDED
        if current.outcome == report.outcome:
            return OutcomeStatus.DUPLICATE
        if report.reported_at <= current.reported_at:
            return OutcomeStatus.STALE
        connection.execute(
            outcomes.update()
            .where(outcomes.c.service == service, outcomes.c.event_id == report.event_id)
            .values(
                outcome=report.outcome,
                label=report.label,
                source=report.source,
                reported_at=report.reported_at,
                recorded_at=now,
                revisions=outcomes.c.revisions + 1,
            )
        )
        held[report.event_id] = _HeldOutcome(report.outcome, report.reported_at, current.revisions + 1)
        return OutcomeStatus.REVISED

    def labelled(self, service: str, since: datetime | None = None, until: datetime | None = None) -> list[Labelled]:
        """The service's decisions scored in [since, until), each with its outcome's label (or None)."""
        query = (
            sa.select(
                decisions.c.event_id,
                decisions.c.model_version,
                decisions.c.score,
                decisions.c.decision,
                decisions.c.scored_at,
                decisions.c.features,
                outcomes.c.label,
            )
            .select_from(
                decisions.outerjoin(
                    outcomes,
                    sa.and_(outcomes.c.service == decisions.c.service, outcomes.c.event_id == decisions.c.event_id),
                )
            )
            .where(decisions.c.service == service)
            .order_by(decisions.c.scored_at, decisions.c.event_id)
        )
        if since is not None:
            query = query.where(decisions.c.scored_at >= since)
        if until is not None:
            query = query.where(decisions.c.scored_at < until)
        hits: dict[str, list[str]] = {}
        with self._reading() as connection:
            rows = list(connection.execute(query))
            chosen = sa.select(decisions.c.event_id).where(decisions.c.service == service)
            if since is not None:
                chosen = chosen.where(decisions.c.scored_at >= since)
            if until is not None:
                chosen = chosen.where(decisions.c.scored_at < until)
            rule_query = sa.select(decision_rule_hits.c.event_id, decision_rule_hits.c.rule_id).where(
                decision_rule_hits.c.service == service, decision_rule_hits.c.event_id.in_(chosen)
            )
            for event_id, rule_id in connection.execute(rule_query):
                hits.setdefault(event_id, []).append(rule_id)
        return [
            Labelled(
                row.event_id,
                row.model_version,
                row.score,
                row.decision,
                tuple(sorted(hits.get(row.event_id, ()))),
                row.label,
                row.scored_at,
                dict(row.features),
            )
            for row in rows
        ]

    # ------------------------------------------------------------------ monitoring snapshots

    def save_snapshot(self, service: str, computed_at: datetime, report: Mapping[str, Any]) -> None:
        with self._transaction() as connection:
            connection.execute(
                monitoring_snapshots.insert().values(service=service, computed_at=computed_at, report=report)
            )

    def latest_snapshot(self, service: str) -> dict[str, Any] | None:
        query = (
            sa.select(monitoring_snapshots.c.report)
            .where(monitoring_snapshots.c.service == service)
            .order_by(monitoring_snapshots.c.computed_at.desc())
            .limit(1)
        )
        with self._reading() as connection:
            report = connection.execute(query).scalar()
        return dict(report) if report is not None else None

    def count(self, service: str) -> int:
        """How many decisions of the service are recorded."""
        with self._reading() as connection:
            query = sa.select(sa.func.count()).select_from(decisions).where(decisions.c.service == service)
            return int(connection.execute(query).scalar_one())

    def count_outcomes(self, service: str) -> int:
        """How many of the service's decisions have a known outcome."""
        with self._reading() as connection:
            query = sa.select(sa.func.count()).select_from(outcomes).where(outcomes.c.service == service)
            return int(connection.execute(query).scalar_one())

    # ------------------------------------------------------------------ the desk's cases and sessions

    def sync_cases(self, service: str, severities: Mapping[str, int], now: datetime) -> int:
        """Open a case for each new decision whose outcome needs a person (`severities`: outcome -> its place
        among the ruleset's outcomes); how many were opened."""
        with self._transaction() as connection:
            return cases.sync(connection, service, severities, now)

    def queue(self, wanted: cases.QueueFilter) -> cases.QueuePage:
        """Open cases, most urgent first (severity, score, age), one keyset page at a time."""
        with self._reading() as connection:
            return cases.queue_page(connection, wanted)

    def queue_summary(self) -> cases.QueueSummary:
        with self._reading() as connection:
            return cases.summary(connection)

    def case(self, service: str, event_id: str) -> cases.Case | None:
        with self._reading() as connection:
            return cases.one(connection, service, event_id)

    def outcome_of(self, service: str, event_id: str) -> cases.KnownOutcome | None:
        """The outcome on record for a decided event, if one is known."""
        with self._reading() as connection:
            return cases.outcome_of(connection, service, event_id)

    def case_comments(self, service: str, event_id: str) -> list[cases.Comment]:
        with self._reading() as connection:
            return cases.comments(connection, service, event_id)

    def assign_case(self, service: str, event_id: str, identity: str, now: datetime) -> bool:
        with self._transaction() as connection:
            return cases.assign(connection, service, event_id, identity, now)

    def comment_case(self, service: str, event_id: str, author: str, body: str, now: datetime) -> None:
        with self._transaction() as connection:
            cases.add_comment(connection, service, event_id, author, body, now)

    def resolve_case(self, service: str, event_id: str, resolution: str, identity: str, now: datetime) -> bool:
        """Close an open case; False when it is not open (resolved meanwhile by someone else)."""
        with self._transaction() as connection:
            return cases.resolve(connection, service, event_id, resolution, identity, now)

    def reopen_case(self, service: str, event_id: str) -> None:
        with self._transaction() as connection:
            cases.reopen(connection, service, event_id)

    def save_desk_session(self, token_hash: str, data: Mapping[str, Any], now: datetime, expires: datetime) -> None:
        with self._transaction() as connection:
            cases.save_session(connection, token_hash, data, now, expires)

    def load_desk_session(self, token_hash: str, now: datetime) -> dict[str, Any] | None:
        with self._reading() as connection:
            return cases.load_session(connection, token_hash, now)

    def drop_desk_session(self, token_hash: str, now: datetime) -> None:
        with self._transaction() as connection:
            cases.drop_session(connection, token_hash, now)

    def ping(self) -> None:
        """Raise NotReadyError when the database cannot be reached."""
        with self._reading() as connection:
            connection.execute(sa.text("SELECT 1"))

    def close(self) -> None:
        with self._lock:
            engine, self._engine = self._engine, None
            checkpointer, self._checkpointer = self._checkpointer, None
            direct = self._direct
        if direct is not None:
            direct.close()
        if checkpointer is not None and self._pid == os.getpid():
            checkpointer.stopped.set()
            checkpointer.join(timeout=5)
        if engine is not None:
            engine.dispose()
        with self._writers:
            if self._writer_fd is not None and self._writer_pid == os.getpid():
                os.close(self._writer_fd)
            self._writer_fd = None

    # ------------------------------------------------------------------ connections

    def _here(self) -> Engine:
        """This process's engine, made (and the schema migrated) on first use; a forked child makes its own."""
        pid = os.getpid()
        engine = self._engine
        if engine is not None and self._pid == pid:
            return engine
        with self._lock:
            if self._engine is None or self._pid != pid:
                if self._engine is not None:
                    self._engine.dispose(close=False)  # the parent's connections are the parent's
                engine = make_engine(self.url)
                with self._one_writer():  # SQLite: migrations queue with the writers (PostgreSQL: a lock of its own)
                    migrate(engine, self.url)
                self._engine, self._pid = engine, pid
                if self._direct is None:
                    self._direct = self._make_direct(engine)
                if self.url.startswith("sqlite:///"):  # this process's checkpoints, off the writes' path
                    self._checkpointer = Checkpointer(sqlite_path(self.url, "RISK_DECISIONS_URL"), self)
                    self._checkpointer.start()
            return self._engine

    def _direct_path(self) -> DirectPath:
        self._here()  # the schema migrated, and the direct path made
        assert self._direct is not None
        return self._direct

    def _make_direct(self, engine: Engine) -> DirectPath:
        if self._writer_lock is not None:
            path = sqlite_path(self.url, "RISK_DECISIONS_URL")
            return SqliteDirect(path, engine.dialect, self._one_writer, _sqlite_pragmas, _masked(self.url))
        return PostgresDirect(_postgres_conninfo(self.url), _masked(self.url))

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        engine = self._here()
        with self._one_writer(), _unavailable_as_not_ready(self.url), engine.begin() as connection:
            yield connection

    @contextmanager
    def _one_writer(self) -> Iterator[None]:
        if self._writer_lock is None:
            yield  # PostgreSQL takes its own row locks
            return
        with self._writers:
            if self._writer_fd is None or self._writer_pid != os.getpid():  # a forked child opens its own
                self._writer_fd = os.open(self._writer_lock, os.O_RDWR | os.O_CREAT, 0o600)
                self._writer_pid = os.getpid()
            fcntl.flock(self._writer_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._writer_fd, fcntl.LOCK_UN)

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        with _unavailable_as_not_ready(self.url), self._here().connect() as connection:
            yield connection


def make_engine(url: str) -> Engine:
    """An engine for a `RISK_DECISIONS_URL`: `sqlite:///ABSOLUTE/PATH` or `postgresql://...` (psycopg 3)."""
    if url.startswith("sqlite:///"):
        path = sqlite_path(url, "RISK_DECISIONS_URL")
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": 30.0}, **_JSON)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith(_POSTGRES_SCHEMES):
        rest = url.split("://", 1)[1]
        # No pre-ping: it would cost every checkout a round trip; a connection found dead is invalidated with
        # its pool, the request in hand answered 503 (NotReadyError), and the next one connects afresh.
        return sa.create_engine(f"postgresql+psycopg://{rest}", connect_args={"connect_timeout": 5}, **_JSON)
    raise ConfigurationError("RISK_DECISIONS_URL", f"{_masked(url)}: use sqlite:///ABSOLUTE/PATH or postgresql://")


_POSTGRES_SCHEMES = ("postgresql://", "postgresql+psycopg://", "postgres://")


def _postgres_conninfo(url: str) -> str:
    """A `RISK_DECISIONS_URL` of PostgreSQL as libpq takes it (without SQLAlchemy's driver name)."""
    return "postgresql://" + url.split("://", 1)[1]


# Three JSON documents go in with every decision: orjson encodes them several times faster than the standard
# library (the decision store is on every door's hot path).
_JSON: dict[str, Any] = {
    "json_serializer": lambda value: orjson.dumps(value).decode(),
    "json_deserializer": orjson.loads,
}


def migrate(engine: Engine, url: str) -> None:
    """Bring the schema to the newest migration. On PostgreSQL concurrent openers (gunicorn workers) wait for
    each other on an advisory lock; on SQLite the caller holds the writers' lock file."""
    with _unavailable_as_not_ready(url), engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def _sqlite_pragmas(connection: Any, _: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
    tune(cursor)
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _insert_ignoring_duplicates(connection: Connection, table: sa.Table) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING for the connection's dialect, built once (building one per call
    costs more than SQLite takes to run it)."""
    return _IGNORING_INSERTS[(connection.dialect.name == "postgresql", table.name)]


_IGNORING_INSERTS: dict[tuple[bool, str], Any] = {
    (on_postgresql, table.name): (postgresql if on_postgresql else sqlite).insert(table).on_conflict_do_nothing()
    for on_postgresql in (False, True)
    for table in (decisions, decision_rule_hits, outcomes)
}


def _row(decision: NewDecision) -> dict[str, Any]:
    return {
        "service": decision.service,
        "event_id": decision.event_id,
        "decision_id": decision.decision_id,
        "entity_id": decision.entity_id,
        "decision": decision.decision,
        "score": decision.score,
        "risk_band": decision.risk_band,
        "model_version": decision.model_version,
        "ruleset_version": decision.ruleset_version,
        "input_fingerprint": decision.input_fingerprint,
        "door": decision.door,
        "event_time": decision.event_time,
        "scored_at": decision.scored_at,
        "recorded_at": datetime.now(UTC),
        "document": decision.document,
        "event": decision.event,
        "features": decision.features,
    }


def _stored(row: Any) -> StoredDecision:
    return StoredDecision(
        service=row.service,
        event_id=row.event_id,
        decision_id=row.decision_id,
        entity_id=row.entity_id,
        decision=row.decision,
        score=row.score,
        input_fingerprint=row.input_fingerprint,
        door=row.door,
        event_time=row.event_time,
        scored_at=row.scored_at,
        recorded_at=row.recorded_at,
        document=dict(row.document),
        event=dict(row.event),
        features=dict(row.features),
    )


@dataclass(frozen=True, slots=True)
class _HeldOutcome:
    outcome: str
    reported_at: datetime
    revisions: int


def _recorded_on(connection: Connection, service: str, event_ids: Sequence[str]) -> dict[str, StoredDecision]:
    """The recorded decisions among `event_ids` (unique), read on `connection`."""
    return {
        row.event_id: _stored(row)
        for part in _parts(event_ids)
        for row in connection.execute(
            sa.select(decisions).where(decisions.c.service == service, decisions.c.event_id.in_(part))
        )
    }


def _parts(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _KEYS_PER_QUERY):
        yield items[start : start + _KEYS_PER_QUERY]


def _make_cursor(last: StoredDecision) -> str:
    raw = json.dumps([last.scored_at.isoformat(), last.event_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        scored_at, event_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        moment = datetime.fromisoformat(scored_at)
        if moment.tzinfo is None or not isinstance(event_id, str):
            raise ValueError(cursor)
    except (ValueError, TypeError, binascii.Error):
        raise InvalidInputError(
            {"cursor": ["not a cursor this service gave out: pass next_cursor unchanged"]}
        ) from None
    return moment, event_id


@contextmanager
def _unavailable_as_not_ready(url: str) -> Iterator[None]:
    try:
        yield
    except OperationalError as error:
        raise NotReadyError(f"decision store {_masked(url)} unavailable: {type(error.orig).__name__}") from error
    except SQLAlchemyError as error:
        if isinstance(error, sa.exc.DBAPIError) and error.connection_invalidated:
            raise NotReadyError(f"decision store {_masked(url)} unavailable (connection lost)") from error
        raise


def _masked(url: str) -> str:
    """The URL without its password, as it may appear in messages and logs."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url.split("://", 1)[0] + "://..."
