"""The decision store's hot path on the driver's own connection: the look-up every scored event pays and the
write of each decision, with SQL compiled once from the tables.

Through SQLAlchemy's `Connection`, one HTTP request's look-up cost about 300 us and its insert 600 us of
Python (checking out a pooled connection, beginning and resetting a transaction, building a compiled
statement's execution context, running the bind processors), several times what the database spends.
Here each process keeps driver connections of its own for these statements, each held by one thread at a
time (as many as its threads use at once, so one request waiting on its commit holds up no other); the
statements are compiled once per dialect from the same table definitions, and each row is bound by the
very processors SQLAlchemy would run (so the stored text is the same byte for byte).

- SQLite: a look-up is one SELECT in autocommit; a write is BEGIN IMMEDIATE under the store's writers' lock
  file, the INSERT ... ON CONFLICT DO NOTHING, the rule hits, COMMIT (a single decision with no rule hit is
  its INSERT alone, in autocommit, under the same lock: one statement, one commit) (WAL, synchronous=NORMAL: a committed
  decision survives the process being killed; an OS crash or power cut may lose the last commits).
- PostgreSQL: autocommit, so a look-up is one round trip; a single decision and its rule hits are one
  statement (the hits inserted from the decision's RETURNING, in a data-modifying CTE), which commits on
  its own: one round trip instead of BEGIN, two INSERTs and COMMIT; a commit returns once the server has
  flushed its WAL (`synchronous_commit` held on), and the commits of concurrent requests, each on its own
  connection, share a flush. A micro-batch is one transaction whose
  rows go through psycopg's pipeline (one round trip for the batch).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import orjson
import psycopg
import sqlalchemy as sa
from psycopg.types.json import set_json_loads
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from shared.decisions.tables import UtcDateTime, decision_rule_hits, decisions
from shared.errors import NotReadyError

KEYS_PER_QUERY = 500  # event ids per IN list on SQLite: far below its limit of bound parameters
_ANSWER_COLUMNS = (
    decisions.c.event_id,
    decisions.c.entity_id,
    decisions.c.decision,
    decisions.c.input_fingerprint,
    decisions.c.document,
)
Answered = tuple[str, str, str, str, dict[str, Any]]  # the answer columns, the document decoded
Row = dict[str, Any]  # a decision's columns, by name, as the caller built them (aware datetimes, documents)
Hits = list[dict[str, str]]  # service, event_id, rule_id
# Connections this process inherited through a fork: never used nor closed here (closing a PostgreSQL one
# would end the parent's session), only kept from the garbage collector.
_INHERITED: list[object] = []


class DirectPath(Protocol):
    def answers(self, service: str, event_ids: Sequence[str]) -> list[Answered]: ...

    def record(self, rows: Sequence[Row], hits: Callable[[set[str]], Hits]) -> set[str]:
        """Insert the rows not recorded yet and then `hits(inserted event ids)`, in one transaction."""
        ...

    def close(self) -> None: ...


class _PerProcess:
    """This process's driver connections (a fork's child opens its own), each held by one thread at a time:
    as many as threads use at once (gunicorn's threaded workers), kept idle between uses. A thread waiting on
    its commit leaves the others theirs, so concurrent commits of one process are flushed together."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect
        self._idle: list[Any] = []
        self._pid = os.getpid()
        self._lock = threading.Lock()

    @contextmanager
    def held(self, lost: tuple[type[BaseException], ...] = ()) -> Iterator[Any]:
        """A connection for the block, idle or new; idle again after it, unless the block raised one of
        `lost` (the connection is then closed, and a later block opens another)."""
        connection = self._take()
        try:
            yield connection
        except lost:
            _close_quietly(connection)
            raise
        except BaseException:
            self._give_back(connection)
            raise
        self._give_back(connection)

    def close(self) -> None:
        """Close this process's idle connections (those in use are closed by their process's next close)."""
        with self._lock:
            idle, self._idle = self._idle, []
            here = self._pid == os.getpid()
        for connection in idle:
            if here:
                _close_quietly(connection)
            else:
                _INHERITED.append(connection)

    def _take(self) -> Any:
        with self._lock:
            self._forget_inherited()
            if self._idle:
                return self._idle.pop()
        return self._connect()  # outside the lock: opening one takes round trips

    def _give_back(self, connection: Any) -> None:
        with self._lock:
            self._forget_inherited()
            self._idle.append(connection)

    def _forget_inherited(self) -> None:
        """In a forked child, the parent's connections are kept from use and from the garbage collector."""
        if self._pid != os.getpid():
            _INHERITED.extend(self._idle)
            self._idle, self._pid = [], os.getpid()


def _close_quietly(connection: Any) -> None:
    with suppress(Exception):  # a broken connection may fail to close: it is gone either way
        connection.close()


# ---------------------------------------------------------------------------------------------- SQLite


class SqliteDirect:
    def __init__(
        self,
        path: Path,
        dialect: Dialect,
        one_writer: Callable[[], AbstractContextManager[None]],
        pragmas: Callable[[sqlite3.Connection, Any], None],
        shown_url: str,
    ) -> None:
        self._one_writer, self._shown_url = one_writer, shown_url

        def connect() -> sqlite3.Connection:
            connection = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
            pragmas(connection, None)
            return connection

        self._connections = _PerProcess(connect)
        self._binders = _binders(dialect)
        self._insert_sql, self._insert_names = _positional(
            sqlite.insert(decisions).values(_all_bound()).on_conflict_do_nothing(), dialect
        )
        self._hits_sql, self._hits_names = _positional(
            sqlite.insert(decision_rule_hits).values(_all_bound(decision_rule_hits)).on_conflict_do_nothing(), dialect
        )
        self._exists_sql = lru_cache(maxsize=8)(lambda n: _positional(_existing(n), dialect)[0])
        self._answers_sql = lru_cache(maxsize=8)(lambda n: _positional(_answers_of(n), dialect)[0])
        decode = decisions.c.document.type.dialect_impl(dialect).result_processor(dialect, None)
        self._decoded: Callable[[Any], Any] = decode or dict

    def answers(self, service: str, event_ids: Sequence[str]) -> list[Answered]:
        found: list[Answered] = []
        decoded = self._decoded
        with self._unavailable_as_not_ready(), self._connections.held() as connection:
            for part in _parts(event_ids):
                rows = connection.execute(self._answers_sql(len(part)), (service, *part)).fetchall()
                found.extend((e, n, d, f, decoded(doc)) for e, n, d, f, doc in rows)
        return found

    def record(self, rows: Sequence[Row], hits: Callable[[set[str]], Hits]) -> set[str]:
        if len(rows) == 1 and not hits({rows[0]["event_id"]}):  # one decision hitting no rule (most requests)
            return self._record_alone(rows[0])
        with self._unavailable_as_not_ready(), self._one_writer(), self._connections.held() as connection:
            try:
                connection.execute("BEGIN IMMEDIATE")
                inserted = self._inserted(connection, rows)
                rule_hits = hits(inserted)
                if rule_hits:
                    connection.executemany(self._hits_sql, [[h[n] for n in self._hits_names] for h in rule_hits])
                connection.execute("COMMIT")
            finally:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
        return inserted

    def close(self) -> None:
        self._connections.close()

    def _record_alone(self, row: Row) -> set[str]:
        """One decision without rule hits: its INSERT alone, in autocommit, is its own transaction (the same
        commit to the WAL as BEGIN IMMEDIATE, INSERT, COMMIT, in one statement instead of three), under the
        writers' lock all the same; its row count says whether it went in."""
        with self._unavailable_as_not_ready(), self._one_writer(), self._connections.held() as connection:
            cursor = connection.execute(self._insert_sql, self._bound(row, self._insert_names))
        return {row["event_id"]} if cursor.rowcount == 1 else set()

    def _inserted(self, connection: sqlite3.Connection, rows: Sequence[Row]) -> set[str]:
        """Insert the rows not recorded yet; their event ids. The caller holds the writers' lock and BEGIN
        IMMEDIATE, which keep every other writer out until COMMIT."""
        if len(rows) == 1:  # one decision (an HTTP request): the INSERT's own row count says if it went in
            cursor = connection.execute(self._insert_sql, self._bound(rows[0], self._insert_names))
            return {rows[0]["event_id"]} if cursor.rowcount == 1 else set()
        # the ids found here are exactly those the INSERT below will ignore
        service, ids = rows[0]["service"], [r["event_id"] for r in rows]
        known = {
            event_id
            for part in _parts(ids)
            for (event_id,) in connection.execute(self._exists_sql(len(part)), (service, *part))
        }
        fresh = [row for row in rows if row["event_id"] not in known]
        connection.executemany(self._insert_sql, [self._bound(row, self._insert_names) for row in fresh])
        return {row["event_id"] for row in fresh}

    def _bound(self, row: Row, names: Sequence[str]) -> list[Any]:
        binders = self._binders
        return [binders[name](row[name]) if name in binders else row[name] for name in names]

    @contextmanager
    def _unavailable_as_not_ready(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as error:
            raise NotReadyError(f"decision store {self._shown_url} unavailable: {type(error).__name__}") from error


# ---------------------------------------------------------------------------------------------- PostgreSQL


class PostgresDirect:
    def __init__(self, conninfo: str, shown_url: str) -> None:
        self._shown_url = shown_url

        def connect() -> psycopg.Connection[Any]:
            connection = psycopg.connect(conninfo, autocommit=True, connect_timeout=5)
            set_json_loads(orjson.loads, connection)
            connection.execute(_PG_SYNCHRONOUS_COMMIT)
            return connection

        self._connections = _PerProcess(connect)

    def answers(self, service: str, event_ids: Sequence[str]) -> list[Answered]:
        with self._held() as connection:
            if len(event_ids) == 1:
                cursor = connection.execute(_PG_ONE_ANSWER, {"service": service, "event_id": event_ids[0]})
            else:
                cursor = connection.execute(_PG_ANSWERS, {"service": service, "event_ids": list(event_ids)})
            return cursor.fetchall()

    def record(self, rows: Sequence[Row], hits: Callable[[set[str]], Hits]) -> set[str]:
        with self._held() as connection:
            if len(rows) == 1:  # one statement, committed on its own
                row = _encoded(rows[0])
                row["rule_ids"] = [h["rule_id"] for h in hits({row["event_id"]})]
                return {event_id for (event_id,) in connection.execute(_PG_RECORD_ONE, row)}
            with connection.transaction(), connection.cursor() as cursor:
                # one small statement per row in the pipeline: SQLAlchemy's batched multi-row INSERT sends one
                # statement of thousands of placeholders, which psycopg parses again on every call
                cursor.executemany(_PG_RECORD, [_encoded(row) for row in rows], returning=True)
                inserted: set[str] = set()
                while True:
                    inserted.update(event_id for (event_id,) in cursor.fetchall())
                    if not cursor.nextset():
                        break
                rule_hits = hits(inserted)
                if rule_hits:
                    cursor.executemany(_PG_RULE_HITS, rule_hits)
            return inserted

    def close(self) -> None:
        self._connections.close()

    @contextmanager
    def _held(self) -> Iterator[psycopg.Connection[Any]]:
        try:
            with self._connections.held(lost=_PG_LOST) as connection:  # a lost one is closed, not reused
                yield connection
        except _PG_LOST as error:  # while connecting too
            raise NotReadyError(f"decision store {self._shown_url} unavailable: {type(error).__name__}") from error


_PG_LOST = (psycopg.OperationalError, psycopg.InterfaceError)  # the connection is lost or unusable
# A decision answered is on disk: a commit waits for the server's WAL flush, whatever the role's or the
# database's default says (a stronger setting, such as waiting for a standby, is kept).
_PG_SYNCHRONOUS_COMMIT = (
    "SELECT set_config('synchronous_commit', 'on', false) WHERE current_setting('synchronous_commit') = 'off'"
)


def _encoded(row: Row) -> Row:
    """A row as psycopg takes it: the documents as JSON text (cast to json by the SQL), moments in UTC."""
    encoded = dict(row)
    for name in ("document", "event", "features"):
        encoded[name] = orjson.dumps(row[name]).decode()
    for name in ("event_time", "scored_at", "recorded_at"):
        moment = row[name]
        if moment.tzinfo is None:
            raise ValueError("a naive datetime has no zone: give one in UTC")
        encoded[name] = moment.astimezone(UTC)
    return encoded


# ---------------------------------------------------------------------------------------------- statements


def _all_bound(table: sa.Table = decisions) -> dict[str, Any]:
    return {c.name: sa.bindparam(c.name, type_=c.type) for c in table.c}


def _positional(statement: Any, dialect: Dialect) -> tuple[str, list[str]]:
    """The statement's SQL for `dialect` and its parameters' names in order (SQLite's `?` placeholders)."""
    compiled = statement.compile(dialect=dialect)
    return str(compiled), list(compiled.positiontup or ())


def _binders(dialect: Dialect) -> dict[str, Callable[[Any], Any]]:
    """The bind processors SQLAlchemy runs for each column of the decisions table on `dialect`, got once
    (a moment on SQLite by `sqlite_utc_text`, which writes the same text)."""
    found: dict[str, Callable[[Any], Any]] = {}
    for column in decisions.c:
        if dialect.name == "sqlite" and isinstance(column.type, UtcDateTime):
            found[column.name] = sqlite_utc_text
            continue
        processor = column.type.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            found[column.name] = processor
    return found


def sqlite_utc_text(moment: datetime | None) -> str | None:
    """A `UtcDateTime` as SQLite stores it: the text SQLAlchemy's bind processors write (the moment in UTC,
    then DateTime's storage format), made in one step. Their chain of a type decorator and a dictionary
    format cost 5 to 8 us a moment, three moments a decision."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise ValueError("a naive datetime has no zone: give one in UTC")
    utc = moment.astimezone(UTC)
    return _SQLITE_MOMENT % (utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond)


_SQLITE_MOMENT = "%04d-%02d-%02d %02d:%02d:%02d.%06d"  # SQLAlchemy's SQLite DateTime storage format


def _existing(count: int) -> Any:
    keys = [sa.bindparam(f"e{i}", type_=decisions.c.event_id.type) for i in range(count)]
    return sa.select(decisions.c.event_id).where(
        decisions.c.service == sa.bindparam("service"), decisions.c.event_id.in_(keys)
    )


def _answers_of(count: int) -> Any:
    keys = [sa.bindparam(f"e{i}", type_=decisions.c.event_id.type) for i in range(count)]
    return sa.select(*_ANSWER_COLUMNS).where(
        decisions.c.service == sa.bindparam("service"), decisions.c.event_id.in_(keys)
    )


def _parts(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), KEYS_PER_QUERY):
        yield items[start : start + KEYS_PER_QUERY]


def _pg_record_one() -> Any:
    """INSERT the decision, and its rule hits from what that INSERT returned: nothing when it was recorded
    before. One statement, so PostgreSQL checks the hits' foreign key after the decision is in."""
    inserted = (
        postgresql.insert(decisions)
        .values(_all_bound())
        .on_conflict_do_nothing()
        .returning(decisions.c.service, decisions.c.event_id)
        .cte("inserted")
    )
    rules = (
        sa.func.unnest(sa.bindparam("rule_ids", type_=postgresql.ARRAY(sa.String)))
        .table_valued("rule_id")
        .render_derived()
    )
    hits = (
        postgresql.insert(decision_rule_hits)
        .from_select(
            ["service", "event_id", "rule_id"],
            sa.select(inserted.c.service, inserted.c.event_id, rules.c.rule_id)
            .select_from(inserted)
            .join(rules, sa.true()),
        )
        .on_conflict_do_nothing()
        .cte("hits")
    )
    return sa.select(inserted.c.event_id).add_cte(hits)


_PSYCOPG = postgresql.psycopg.dialect()
_PG_RECORD_ONE = str(_pg_record_one().compile(dialect=_PSYCOPG))
_PG_RECORD = str(
    postgresql.insert(decisions)
    .values(_all_bound())
    .on_conflict_do_nothing()
    .returning(decisions.c.event_id)
    .compile(dialect=_PSYCOPG)
)
_PG_RULE_HITS = str(
    postgresql.insert(decision_rule_hits)
    .values(_all_bound(decision_rule_hits))
    .on_conflict_do_nothing()
    .compile(dialect=_PSYCOPG)
)
_PG_ONE_ANSWER = str(
    sa.select(*_ANSWER_COLUMNS)
    .where(decisions.c.service == sa.bindparam("service"), decisions.c.event_id == sa.bindparam("event_id"))
    .compile(dialect=_PSYCOPG)
)
_PG_ANSWERS = str(
    sa.select(*_ANSWER_COLUMNS)
    .where(
        decisions.c.service == sa.bindparam("service"),
        decisions.c.event_id == sa.any_(sa.bindparam("event_ids", type_=postgresql.ARRAY(sa.String))),
    )
    .compile(dialect=_PSYCOPG)
)
