"""State for online window features: each entity's recent events, shared by every process that scores.

Window features (counts, sums, means per card, terminal or policy over the last N days) need each
entity's recent events at scoring time. A store keeps, per (namespace, entity key), records unique by
event id, so that appending a redelivered event (Kafka delivers at least once) changes nothing.
Scorers call `append_then_total`: a micro-batch's records go in, and each event's windows come back as
totals (count, sum of values, positive labels), so no window's records need to travel to Python.

- `SqliteStateStore` (`sqlite:///ABSOLUTE/PATH`): the embedded default. One file shared by the gunicorn
  workers and stream workers of one machine (WAL mode, so readers never block the writer; writers queue
  on a lock file, which wakes the next one at once, where SQLite's own busy handler sleeps 1 to 100 ms).
  SQLite totals the windows itself, right after the write.
- `RedisStateStore` (`redis://HOST:PORT/DB`): for many machines. A script totals the windows in Redis,
  pipelined behind the batch's appends: one round trip.

Both answer the same operations with the same results (a test runs one random history through both).
Nothing here reads the clock: time is whatever the records and the callers' bounds say it is.
"""

from __future__ import annotations

import bisect
import fcntl
import hashlib
import json
import math
import os
import re
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple, Protocol
from urllib.parse import urlsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import NoScriptError, OutOfMemoryError, ReadOnlyError
from redis.retry import Retry

from shared.errors import ConfigurationError, NotReadyError
from shared.sqlite import Checkpointer, tune

_NAMESPACE = re.compile(r"[A-Za-z0-9_.\-]+")
DEFAULT_TIMEOUT_SECONDS = 2.0  # RISK_STATE_TIMEOUT_MS's default: the longest one call waits for the store


class Record(NamedTuple):
    """One event of an entity. Fetches return them ordered by (ts, id). (A named tuple: a fetch makes
    a hundred of them per scored event, at a quarter of a frozen dataclass's cost.)"""

    ts: float  # event time, epoch seconds
    id: str  # the event's id; (namespace, key, id) is unique
    value: float = 0.0  # e.g. the amount
    label: int | None = None  # e.g. a fraud label learnt later; None while unknown


class WindowQuery(NamedTuple):
    """Totals over one entity's records, one window per lower bound: the records with `bound < ts` and
    `ts <= until` (when `until_id` is given: `(ts, id) <= (until, until_id)`, ids compared as text)."""

    key: str
    lower_bounds: tuple[float, ...]
    until: float
    until_id: str | None = None


class WindowTotals(NamedTuple):
    count: int  # type: ignore[assignment]  # records in the window (shadows tuple.count, never used here)
    value: float  # the sum of their values, added in (ts, id) order
    positives: int  # those labelled 1


class StateStore(Protocol):
    def fetch(self, namespace: str, keys: Sequence[str], since: float, until: float) -> dict[str, list[Record]]:
        """For every key asked (present even with no records): since < ts <= until, ordered by (ts, id)."""
        ...

    def append(self, namespace: str, items: Sequence[tuple[str, Record]]) -> None:
        """Add (key, record) pairs; one whose (key, id) is already there is left exactly as it is."""
        ...

    def append_many(self, batches: Mapping[str, Sequence[tuple[str, Record]]]) -> None:
        """`append` for several namespaces (namespace -> pairs) in one write."""
        ...

    def append_then_total(
        self, batches: Mapping[str, Sequence[tuple[str, Record]]], queries: Mapping[str, Sequence[WindowQuery]]
    ) -> dict[str, list[list[WindowTotals]]]:
        """`append_many`, then the totals of each query (namespace -> one list per query, one entry per
        lower bound), seeing the records just appended. What online window features ask of a store."""
        ...

    def set_labels(self, namespace: str, items: Sequence[tuple[str, str, int]]) -> None:
        """(key, record id, label) for records already there; unknown ids are ignored."""
        ...

    def prune(self, namespace: str, before: float) -> int:
        """Drop the namespace's records with ts < before; returns how many."""
        ...

    def count(self, namespace: str) -> int:
        """How many records the namespace holds."""
        ...

    def ping(self) -> None:
        """Raise NotReadyError when the store cannot be used (readiness probes call this)."""
        ...

    def close(self) -> None:
        """Release this process's connection; the next call opens a new one."""
        ...


def check_namespace(namespace: str) -> None:
    """Namespaces are code-defined names such as `fraud.customer`. Both stores refuse the same ones, so a
    name that cannot be written unambiguously into a Redis key fails in tests against SQLite too."""
    if not _NAMESPACE.fullmatch(namespace):
        raise ValueError(f"a namespace is letters, digits, '_', '.' or '-', not {namespace!r}")


def _check_time(*moments: float) -> None:
    """NaN compares false with everything, so SQLite and Redis would disagree about it: refuse it in both."""
    for moment in moments:
        if math.isnan(moment):
            raise ValueError("a time must be a number, not NaN")


def totals_over(records: Sequence[Record], query: WindowQuery) -> list[WindowTotals]:
    """A query's totals over one entity's records sorted by (ts, id): the definition every store meets."""
    if query.until_id is None:
        end = bisect.bisect_right(records, query.until, key=_TIME)
    else:
        end = bisect.bisect_right(records, (query.until, query.until_id), key=_TIME_AND_ID)
    out = []
    for bound in query.lower_bounds:
        window = records[bisect.bisect_right(records, bound, hi=end, key=_TIME) : end]
        out.append(WindowTotals(len(window), sum(map(_VALUE, window), 0.0), sum(1 for r in window if r.label == 1)))
    return out


_TIME, _TIME_AND_ID, _VALUE = itemgetter(0), itemgetter(0, 1), itemgetter(2)  # Record fields, read in C


def _check_batches(batches: Mapping[str, Sequence[tuple[str, Record]]]) -> None:
    for namespace, items in batches.items():
        check_namespace(namespace)
        _check_time(*(record.ts for _, record in items))


def _check_queries(queries: Mapping[str, Sequence[WindowQuery]]) -> None:
    for namespace, asked in queries.items():
        check_namespace(namespace)
        for query in asked:
            _check_time(query.until, *query.lower_bounds)


# ---------------------------------------------------------------------------------------------- SQLite

_SCHEMA = (
    # Clustered by (namespace, key, ts, id): a window fetch is one contiguous range scan of the table,
    # with no lookup per record. UNIQUE (namespace, key, id) makes INSERT OR IGNORE idempotent by id.
    "CREATE TABLE IF NOT EXISTS records (namespace TEXT NOT NULL, key TEXT NOT NULL, ts REAL NOT NULL,"
    " id TEXT NOT NULL, value REAL NOT NULL, label INTEGER,"
    " PRIMARY KEY (namespace, key, ts, id), UNIQUE (namespace, key, id)) WITHOUT ROWID"
)
_KEYS_PER_QUERY = 500  # well under SQLite's limit on bound parameters
_PRUNE_CHUNK = 2000  # rows deleted per write transaction, so scorers' appends queue behind short ones

# Connections inherited through fork are kept referenced and never used or closed in the child: closing
# would run SQLite's unlock and shutdown code against state that belongs to the parent.
_INHERITED: list[object] = []


_process_guard = threading.Lock()


def _reset_guard_after_fork() -> None:
    """A lock held by another thread at fork time would stay held forever in the child."""
    global _process_guard  # noqa: PLW0603 - a module-wide lock must be replaced, not mutated, after fork
    _process_guard = threading.Lock()


os.register_at_fork(after_in_child=_reset_guard_after_fork)


@dataclass
class _SqliteProcess:
    """What one process holds on the file: its connection, the lock serialising its threads, the writer lock."""

    pid: int
    connection: sqlite3.Connection
    lock: threading.Lock
    writer_lock_fd: int
    checkpointer: Checkpointer


def _open_sqlite(path: Path, busy_timeout_seconds: float, owner: object) -> _SqliteProcess:
    """Open the file for this process, creating the directory and the schema when missing.

    WAL lets readers run while one process writes; synchronous=NORMAL is durable against a crashed
    process (power loss may drop the last commits: acceptable for state rebuilt from event history)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer_lock_fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    connection = sqlite3.connect(path, timeout=busy_timeout_seconds, isolation_level=None, check_same_thread=False)
    try:
        connection.execute(f"PRAGMA busy_timeout={int(busy_timeout_seconds * 1000)}")
        # Under the writer lock: switching a new file to WAL answers "database is locked" at once, without
        # the busy handler, when another process is doing the same (several workers starting together).
        fcntl.flock(writer_lock_fd, fcntl.LOCK_EX)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(_SCHEMA)
        finally:
            fcntl.flock(writer_lock_fd, fcntl.LOCK_UN)
        tune(connection)
    except BaseException:
        connection.close()
        os.close(writer_lock_fd)
        raise
    checkpointer = Checkpointer(path, owner)
    checkpointer.start()
    return _SqliteProcess(os.getpid(), connection, threading.Lock(), writer_lock_fd, checkpointer)


@contextmanager
def _sqlite_unavailable_as_not_ready(path: Path) -> Iterator[None]:
    """Operational failures (unwritable directory, locked too long, not a database) are the store being
    unusable: NotReadyError, which HTTP answers with 503. Programming errors keep their own type."""
    try:
        yield
    except (OSError, sqlite3.OperationalError) as error:
        raise NotReadyError(f"state store {path}: {error}") from error
    except sqlite3.DatabaseError as error:
        if type(error) is not sqlite3.DatabaseError:
            raise
        raise NotReadyError(f"state store {path}: {error}") from error


class SqliteStateStore:
    """The embedded store: one SQLite file shared by the processes of one machine.

    Each process opens its own connection on first use, after any fork (a SQLite connection must
    never cross a fork); the threads of a process share it, one at a time. Each batch is one transaction.
    A writer waits on the lock file without a deadline: it is only ever held for one short transaction,
    and the kernel releases it when its holder dies.
    """

    def __init__(self, path: Path, busy_timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.path = Path(path)
        self.busy_timeout_seconds = busy_timeout_seconds
        self._process: _SqliteProcess | None = None

    def _here(self) -> _SqliteProcess:
        """This process's connection, opened on first use and again after a fork (the pid changed)."""
        process = self._process
        if process is not None and process.pid == os.getpid():
            return process
        with _process_guard:
            process = self._process
            if process is None or process.pid != os.getpid():
                if process is not None:
                    _INHERITED.append(process)
                process = self._process = _open_sqlite(self.path, self.busy_timeout_seconds, self)
        return process

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with _sqlite_unavailable_as_not_ready(self.path):
            process = self._here()
            with process.lock:
                yield process.connection

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, under the machine-wide writer lock: rolled back if anything fails."""
        with self._writing_alone() as db:
            try:
                db.execute("BEGIN IMMEDIATE")
                yield db
                db.execute("COMMIT")
            finally:
                if db.in_transaction:
                    db.execute("ROLLBACK")

    @contextmanager
    def _writing_alone(self) -> Iterator[sqlite3.Connection]:
        """A write of one statement, under the machine-wide writer lock, with no BEGIN and COMMIT around it:
        in autocommit a statement is its own transaction, all or nothing, committed as BEGIN ... COMMIT is."""
        with _sqlite_unavailable_as_not_ready(self.path):
            process = self._here()
            with process.lock:
                fcntl.flock(process.writer_lock_fd, fcntl.LOCK_EX)
                try:
                    yield process.connection
                finally:
                    fcntl.flock(process.writer_lock_fd, fcntl.LOCK_UN)

    def fetch(self, namespace: str, keys: Sequence[str], since: float, until: float) -> dict[str, list[Record]]:
        check_namespace(namespace)
        _check_time(since, until)
        found: dict[str, list[Record]] = {key: [] for key in keys}
        unique = list(found)
        with self._reading() as db:
            for start in range(0, len(unique), _KEYS_PER_QUERY):
                chunk = unique[start : start + _KEYS_PER_QUERY]
                rows = db.execute(
                    "SELECT key, ts, id, value, label FROM records WHERE namespace = ? AND key IN "
                    f"({','.join('?' * len(chunk))}) AND ts > ? AND ts <= ? ORDER BY key, ts, id",
                    (namespace, *chunk, since, until),
                ).fetchall()
                for key, ts, record_id, value, label in rows:
                    found[key].append(Record(ts, record_id, value, label))
        return found

    def append(self, namespace: str, items: Sequence[tuple[str, Record]]) -> None:
        self.append_many({namespace: items})

    def append_many(self, batches: Mapping[str, Sequence[tuple[str, Record]]]) -> None:
        self.append_then_total(batches, {})

    def append_then_total(
        self, batches: Mapping[str, Sequence[tuple[str, Record]]], queries: Mapping[str, Sequence[WindowQuery]]
    ) -> dict[str, list[list[WindowTotals]]]:
        """The inserts in one write transaction (a request's few records in one statement), then one aggregate
        query per WindowQuery, summed by SQLite over the table's (ts, id) order without a row reaching Python.
        The queries run after the commit, outside the machine-wide writer lock, which other processes' writes
        are waiting for."""
        _check_batches(batches)
        _check_queries(queries)
        rows = [
            (namespace, key, r.ts, r.id, r.value, None if r.label is None else int(r.label))
            for namespace, items in batches.items()
            for key, r in items
        ]
        if len(rows) > _ROWS_PER_INSERT:
            with self._writing() as db:
                db.executemany(_insert_sql(1), rows)
        elif rows:  # a request's few records: one statement, in autocommit its own transaction
            with self._writing_alone() as db:
                db.execute(_insert_sql(len(rows)), [value for row in rows for value in row])
        if not any(queries.values()):
            return {namespace: [] for namespace in queries}
        asked = [(namespace, query) for namespace, namespace_queries in queries.items() for query in namespace_queries]
        with self._reading() as db:
            found = _sqlite_totals(db, asked)
        totals: dict[str, list[list[WindowTotals]]] = {namespace: [] for namespace in queries}
        for (namespace, _), windows in zip(asked, found, strict=True):
            totals[namespace].append(windows)
        return totals

    def set_labels(self, namespace: str, items: Sequence[tuple[str, str, int]]) -> None:
        check_namespace(namespace)
        if not items:
            return
        rows = [(int(label), namespace, key, record_id) for key, record_id, label in items]
        with self._writing() as db:
            db.executemany("UPDATE records SET label = ? WHERE namespace = ? AND key = ? AND id = ?", rows)

    def prune(self, namespace: str, before: float) -> int:
        """Deletes in chunks of short transactions, each resuming where the last stopped, so a large
        prune never holds the writer lock long enough to stall scoring."""
        check_namespace(namespace)
        _check_time(before)
        removed, resume = 0, None
        while True:
            with self._writing() as db:
                doomed = _oldest_rows(db, namespace, before, resume)
                db.executemany(
                    "DELETE FROM records WHERE namespace = ? AND key = ? AND ts = ? AND id = ?",
                    [(namespace, *row) for row in doomed],
                )
            removed += len(doomed)
            if len(doomed) < _PRUNE_CHUNK:
                return removed
            resume = doomed[-1]

    def count(self, namespace: str) -> int:
        """How many records the namespace holds (for operators and tests; a full scan of the namespace)."""
        check_namespace(namespace)
        with self._reading() as db:
            return int(db.execute("SELECT COUNT(*) FROM records WHERE namespace = ?", (namespace,)).fetchone()[0])

    def ping(self) -> None:
        with self._reading() as db:
            db.execute("SELECT 1 FROM records LIMIT 1").fetchall()

    def close(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.pid == os.getpid():
            process.checkpointer.stopped.set()
            process.connection.close()
            os.close(process.writer_lock_fd)
        elif process is not None:
            _INHERITED.append(process)


def _oldest_rows(
    db: sqlite3.Connection, namespace: str, before: float, resume: tuple[str, float, str] | None
) -> list[tuple[str, float, str]]:
    """The next chunk of (key, ts, id) with ts < before, in primary-key order after `resume`."""
    if resume is None:
        cursor = db.execute(
            "SELECT key, ts, id FROM records WHERE namespace = ? AND ts < ? ORDER BY key, ts, id LIMIT ?",
            (namespace, before, _PRUNE_CHUNK),
        )
    else:
        cursor = db.execute(
            "SELECT key, ts, id FROM records WHERE namespace = ? AND (key, ts, id) > (?, ?, ?) AND ts < ?"
            " ORDER BY key, ts, id LIMIT ?",
            (namespace, *resume, before, _PRUNE_CHUNK),
        )
    return cursor.fetchall()


# Records written by one INSERT statement (6 parameters each, under the lowest limit SQLite is built with,
# 999); a larger batch is one transaction of one-row INSERTs.
_ROWS_PER_INSERT = 166


@lru_cache(maxsize=_ROWS_PER_INSERT)
def _insert_sql(rows: int) -> str:
    """INSERT OR IGNORE of `rows` records in one statement (idempotent by (namespace, key, id))."""
    return "INSERT OR IGNORE INTO records (namespace, key, ts, id, value, label) VALUES " + ", ".join(
        ["(?, ?, ?, ?, ?, ?)"] * rows
    )


# A statement of window totals holds at most this many SELECTs (SQLite's limit on a compound SELECT is 500)
# and this many bound parameters (999 is the lowest limit SQLite has been built with).
_SELECTS_PER_STATEMENT = 500
_PARAMETERS_PER_STATEMENT = 999


@lru_cache(maxsize=256)
def _totals_sql(shapes: tuple[tuple[int, bool], ...]) -> str:
    """The totals of several queries in one statement (one call of SQLite instead of one a query), each
    query given by its shape (windows, with an id bound). Query q's parameters, from its first one at
    offset o: the lower bounds (?o+1..?o+W), namespace, key, until, until_id. One primary-key range scan per
    window, each row led by the query's and the window's position (a third faster than one scan of the
    widest window totalling every window with CASE expressions)."""
    selects: list[str] = []
    offset = 0
    for position, (windows, with_id) in enumerate(shapes):
        n = offset + windows
        upper = f"ts <= ?{n + 3}" + (f" AND (ts < ?{n + 3} OR id <= ?{n + 4})" if with_id else "")
        selects.extend(
            f"SELECT {position}, {w - offset}, count(*), total(value), count(CASE WHEN label = 1 THEN 1 END)"
            f" FROM records WHERE namespace = ?{n + 1} AND key = ?{n + 2} AND ts > ?{w} AND {upper}"
            for w in range(offset + 1, n + 1)
        )
        offset = n + (4 if with_id else 3)
    return " UNION ALL ".join(selects)


def _sqlite_totals(db: sqlite3.Connection, asked: Sequence[tuple[str, WindowQuery]]) -> list[list[WindowTotals]]:
    """Each query's window totals, in the order asked, from as few statements as SQLite's limits allow (a
    query without windows has none)."""
    found: list[list[WindowTotals]] = [[] for _ in asked]
    members: list[int] = []  # positions in `asked` of the next statement's queries
    shapes: list[tuple[int, bool]] = []
    arguments: list[Any] = []
    selects = 0
    for position, (namespace, query) in enumerate(asked):
        windows, with_id = len(query.lower_bounds), query.until_id is not None
        if not windows:
            continue
        parameters = windows + (4 if with_id else 3)
        full = selects + windows > _SELECTS_PER_STATEMENT or len(arguments) + parameters > _PARAMETERS_PER_STATEMENT
        if full:
            _read_totals(db, members, shapes, arguments, found)
            members, shapes, arguments, selects = [], [], [], 0
        members.append(position)
        shapes.append((windows, with_id))
        arguments.extend((*query.lower_bounds, namespace, query.key, query.until))
        if with_id:
            arguments.append(query.until_id)
        selects += windows
    if members:
        _read_totals(db, members, shapes, arguments, found)
    return found


def _read_totals(
    db: sqlite3.Connection,
    members: Sequence[int],
    shapes: Sequence[tuple[int, bool]],
    arguments: Sequence[Any],
    found: list[list[WindowTotals]],
) -> None:
    """One statement's totals into `found`, each at its query's position, windows in order."""
    for member, _, count, value, positives in sorted(db.execute(_totals_sql(tuple(shapes)), arguments).fetchall()):
        found[members[member]].append(WindowTotals(count, value, positives))


# ---------------------------------------------------------------------------------------------- Redis
#
# Per (namespace, key):  risk:state:z:NS:KEY  sorted set, member = record id, score = ts
#                        risk:state:h:NS:KEY  hash, record id -> "value" or "value|label"
# Per namespace:         risk:state:i:NS      sorted set, member = entity key, score <= its oldest ts
#
# The id as member makes ZADD NX idempotent; a sorted set orders equal scores by member bytes, which is
# SQLite's (ts, id) order. Value and label live in one hash field, added with the member and removed with
# it by the same script, so they never disagree. The per-namespace index lets prune visit only the
# entities holding something old, instead of scanning the keyspace.
#
# Every operation is a script called by hash, one call per chunk of a batch, one round trip per batch:
# scripts are atomic without MULTI. A fetch comes back as one JSON string, which Python decodes in C;
# a reply of three elements a record would cost microseconds per element in redis-py's pure-Python parser.
# Keys carry no TTL (pruning is explicit), so run Redis with `noeviction` or a `volatile-*` policy.

_APPEND = """
local index = KEYS[1]
for j = 0, #ARGV / 4 - 1 do
  local id, ts, packed, key = ARGV[4 * j + 1], ARGV[4 * j + 2], ARGV[4 * j + 3], ARGV[4 * j + 4]
  if redis.call('ZADD', KEYS[2 * j + 2], 'NX', ts, id) == 1 then
    redis.call('HSET', KEYS[2 * j + 3], id, packed)
    redis.call('ZADD', index, 'LT', ts, key)
  end
end
return 0
"""

_FETCH = """
local out = {}
for j = 1, #KEYS, 2 do
  local found = redis.call('ZRANGEBYSCORE', KEYS[j], ARGV[1], ARGV[2], 'WITHSCORES')
  local records = {}
  for first = 1, #found, 2000 do
    local ids = {}
    for i = first, math.min(first + 1999, #found), 2 do ids[#ids + 1] = found[i] end
    local details = redis.call('HMGET', KEYS[j + 1], unpack(ids))
    for i = 1, #ids do
      records[#records + 1] = ids[i]
      records[#records + 1] = found[first + 2 * i - 1]
      records[#records + 1] = details[i] or '0'
    end
  end
  out[#out + 1] = records
end
return cjson.encode(out)
"""

# Window totals, one query per (z, h) pair of KEYS; ARGV per query: windows, until, '1' when until_id
# applies, until_id, then the lower bounds. A reply per query: count, sum (as %.17g text: Lua would round
# a number to an integer, cjson to 14 digits), positives, for each window. Records at exactly `until`
# are cut by id in byte order, as the sorted set itself orders them (Lua's own string comparison follows
# the server's locale).
_TOTALS = """
local function number(text)
  if text == '-inf' then return -math.huge elseif text == 'inf' then return math.huge end
  return tonumber(text)
end
local function bytes_at_most(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a <= #b
end
local out, at = {}, 1
for j = 1, #KEYS, 2 do
  local windows, until_text, cut, until_id = tonumber(ARGV[at]), ARGV[at + 1], ARGV[at + 2] == '1', ARGV[at + 3]
  local bounds, lowest_text, lowest = {}, nil, math.huge
  for w = 1, windows do
    local text = ARGV[at + 3 + w]
    bounds[w] = number(text)
    if bounds[w] <= lowest then lowest, lowest_text = bounds[w], text end
  end
  at = at + 4 + windows
  local counts, sums, positives = {}, {}, {}
  for w = 1, windows do counts[w], sums[w], positives[w] = 0, 0.0, 0 end
  local until_ts = number(until_text)
  local found = redis.call('ZRANGEBYSCORE', KEYS[j], '(' .. lowest_text, until_text, 'WITHSCORES')
  for first = 1, #found, 2000 do
    local ids, times = {}, {}
    for i = first, math.min(first + 1999, #found), 2 do
      ids[#ids + 1] = found[i]
      times[#times + 1] = tonumber(found[i + 1])
    end
    local details = redis.call('HMGET', KEYS[j + 1], unpack(ids))
    for i = 1, #ids do
      local ts = times[i]
      if not (cut and ts == until_ts and not bytes_at_most(ids[i], until_id)) then
        local value, label = string.match(details[i] or '0', '^([^|]*)|?(.*)$')
        value = tonumber(value)
        for w = 1, windows do
          if ts > bounds[w] then
            counts[w] = counts[w] + 1
            sums[w] = sums[w] + value
            if label == '1' then positives[w] = positives[w] + 1 end
          end
        end
      end
    end
  end
  local reply = {}
  for w = 1, windows do
    reply[#reply + 1] = counts[w]
    reply[#reply + 1] = string.format('%.17g', sums[w])
    reply[#reply + 1] = positives[w]
  end
  out[#out + 1] = reply
end
return out
"""

_SET_LABELS = """
for j = 1, #KEYS do
  local id = ARGV[2 * j - 1]
  local packed = redis.call('HGET', KEYS[j], id)
  if packed then
    redis.call('HSET', KEYS[j], id, string.match(packed, '^[^|]*') .. '|' .. ARGV[2 * j])
  end
end
return 0
"""

_PRUNE = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
for first = 1, #ids, 1000 do
  redis.call('HDEL', KEYS[2], unpack(ids, first, math.min(first + 999, #ids)))
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #oldest == 0 then
  redis.call('ZREM', KEYS[3], ARGV[1])
else
  redis.call('ZADD', KEYS[3], oldest[2], ARGV[1])
end
return #ids
"""


class _Script(NamedTuple):
    text: str
    sha: str


def _script(text: str) -> _Script:
    return _Script(text, hashlib.sha1(text.encode()).hexdigest())


_SCRIPTS = {
    "append": _script(_APPEND),
    "fetch": _script(_FETCH),
    "totals": _script(_TOTALS),
    "set_labels": _script(_SET_LABELS),
    "prune": _script(_PRUNE),
}
# (script name, keys, arguments): one EVALSHA
_Call = tuple[str, Sequence[str], Sequence[str | int]]
_REDIS_CHUNK = 200  # records, keys or labels per script call: long scripts would block every other client
_PRUNE_CANDIDATES = 500  # entities pruned per round trip
# Failures meaning "Redis is not usable right now" (down, loading, failed over, full), not a bug of ours.
_REDIS_UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError, ReadOnlyError, OutOfMemoryError)


def _pack(record: Record) -> str:
    """repr() round-trips a float exactly, so Redis gives back the very value SQLite would."""
    value = repr(float(record.value))
    return value if record.label is None else f"{value}|{int(record.label)}"


def _records(flat: list[str]) -> list[Record]:
    """Records from the fetch script's [id, score, packed, id, score, packed, ...] (an empty table is
    encoded as {} by Redis's cjson: falsy all the same)."""
    out = []
    for i in range(0, len(flat) if flat else 0, 3):
        value, _, label = flat[i + 2].partition("|")
        out.append(Record(float(flat[i + 1]), flat[i], float(value), int(label) if label else None))
    return out


def _totals_arguments(query: WindowQuery) -> list[str | int]:
    return [
        len(query.lower_bounds),
        repr(float(query.until)),
        "0" if query.until_id is None else "1",
        query.until_id or "",
        *(repr(float(bound)) for bound in query.lower_bounds),
    ]


def _totals(reply: list[Any]) -> list[WindowTotals]:
    return [WindowTotals(int(reply[i]), float(reply[i + 1]), int(reply[i + 2])) for i in range(0, len(reply), 3)]


def _text(member: Any) -> str:
    """A sorted-set member as text (the client answers bytes)."""
    return member.decode() if isinstance(member, bytes) else str(member)


def _chunks(items: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), _REDIS_CHUNK):
        yield items[start : start + _REDIS_CHUNK]


class RedisStateStore:
    """The store for many machines. Each batch is one round trip; each process makes its own client."""

    PREFIX = "risk:state"

    def __init__(self, url: str, timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        try:
            redis.connection.parse_url(url)
        except ValueError as error:
            raise ConfigurationError("RISK_STATE_URL", f"{url!r}: {error}") from None
        database = urlsplit(url).path.strip("/")
        if database and not database.isdigit():  # redis-py would quietly use database 0
            raise ConfigurationError("RISK_STATE_URL", f"{url!r}: the database is a number, not {database!r}")
        self.url = url
        self.timeout_seconds = timeout_seconds
        self._client: redis.Redis | None = None
        self._pid: int | None = None

    def _redis(self) -> redis.Redis:
        """A client made in this process on first use (never one inherited through a fork). A refused or
        dropped connection is retried twice, briefly; a timeout is not (a hung Redis would cost the caller
        three of them), so no call waits much longer than `timeout_seconds`."""
        if self._client is None or self._pid != os.getpid():
            self._client = redis.Redis.from_url(
                self.url,
                socket_timeout=self.timeout_seconds,
                socket_connect_timeout=self.timeout_seconds,
                retry=Retry(
                    ExponentialWithJitterBackoff(cap=0.5, base=0.05),
                    retries=2,
                    supported_errors=(redis.ConnectionError,),
                ),
            )
            self._pid = os.getpid()
        return self._client

    def _unavailable(self, error: redis.RedisError) -> NotReadyError:
        """What a caller is told (HTTP 503, the stream worker's wait): a hung Redis said as such."""
        if isinstance(error, redis.TimeoutError):
            waited = round(self.timeout_seconds * 1000)
            return NotReadyError(f"state store {self.url} did not answer within {waited} ms (RISK_STATE_TIMEOUT_MS)")
        return NotReadyError(f"state store {self.url}: {error}")

    def _entity(self, namespace: str, key: str) -> tuple[str, str]:
        return f"{self.PREFIX}:z:{namespace}:{key}", f"{self.PREFIX}:h:{namespace}:{key}"

    def _index(self, namespace: str) -> str:
        return f"{self.PREFIX}:i:{namespace}"

    def _call(self, calls: Sequence[_Call]) -> list[Any]:
        """Run (script, keys, args) calls in one pipeline. When Redis has forgotten the scripts (restart,
        SCRIPT FLUSH) they are loaded and the calls sent again, which every operation here allows."""
        try:
            try:
                return self._send(calls)
            except NoScriptError:
                for script in _SCRIPTS.values():
                    self._redis().script_load(script.text)
                return self._send(calls)
        except _REDIS_UNAVAILABLE as error:
            raise self._unavailable(error) from error

    def _send(self, calls: Sequence[_Call]) -> list[Any]:
        pipe = self._redis().pipeline(transaction=False)
        for name, keys, args in calls:
            pipe.evalsha(_SCRIPTS[name].sha, len(keys), *keys, *args)
        return pipe.execute()

    def fetch(self, namespace: str, keys: Sequence[str], since: float, until: float) -> dict[str, list[Record]]:
        check_namespace(namespace)
        _check_time(since, until)
        unique = list(dict.fromkeys(keys))
        bounds = (f"({float(since)!r}", repr(float(until)))
        calls = [
            ("fetch", [name for key in chunk for name in self._entity(namespace, key)], bounds)
            for chunk in _chunks(unique)
        ]
        replies = [records for reply in self._call(calls) for records in json.loads(reply)]
        return {key: _records(flat) for key, flat in zip(unique, replies, strict=True)}

    def append(self, namespace: str, items: Sequence[tuple[str, Record]]) -> None:
        self.append_many({namespace: items})

    def append_many(self, batches: Mapping[str, Sequence[tuple[str, Record]]]) -> None:
        self.append_then_total(batches, {})

    def append_then_total(
        self, batches: Mapping[str, Sequence[tuple[str, Record]]], queries: Mapping[str, Sequence[WindowQuery]]
    ) -> dict[str, list[list[WindowTotals]]]:
        """The appends, then the totals summed by a script in Redis, in one pipeline (one round trip)."""
        _check_batches(batches)
        _check_queries(queries)
        appends: list[_Call] = [
            (
                "append",
                [self._index(namespace), *(name for key, _ in chunk for name in self._entity(namespace, key))],
                [arg for key, r in chunk for arg in (r.id, repr(float(r.ts)), _pack(r), key)],
            )
            for namespace, items in batches.items()
            for chunk in _chunks(items)
        ]
        asked = [(namespace, query) for namespace, listed in queries.items() for query in listed if query.lower_bounds]
        totals: list[_Call] = [
            (
                "totals",
                [name for namespace, query in chunk for name in self._entity(namespace, query.key)],
                [arg for _, query in chunk for arg in _totals_arguments(query)],
            )
            for chunk in _chunks(asked)
        ]
        replies = self._call(appends + totals) if appends or totals else []
        answers = iter([answer for reply in replies[len(appends) :] for answer in reply])
        return {
            namespace: [_totals(next(answers)) if query.lower_bounds else [] for query in listed]
            for namespace, listed in queries.items()
        }

    def set_labels(self, namespace: str, items: Sequence[tuple[str, str, int]]) -> None:
        check_namespace(namespace)
        self._call(
            [
                (
                    "set_labels",
                    [self._entity(namespace, key)[1] for key, _, _ in chunk],
                    [arg for _, record_id, label in chunk for arg in (record_id, int(label))],
                )
                for chunk in _chunks(items)
            ]
        )

    def prune(self, namespace: str, before: float) -> int:
        """Visits only the entities the index says hold something older than `before`; each is pruned
        atomically by a script that also moves its index entry to its new oldest record."""
        check_namespace(namespace)
        _check_time(before)
        index, below = self._index(namespace), f"({float(before)!r}"
        removed = 0
        while True:
            try:
                candidates = self._redis().zrangebyscore(index, "-inf", below, start=0, num=_PRUNE_CANDIDATES)
            except _REDIS_UNAVAILABLE as error:
                raise self._unavailable(error) from error
            if not candidates:
                return removed
            removed += sum(
                self._call(
                    [
                        ("prune", [*self._entity(namespace, _text(member)), index], [_text(member), below])
                        for member in candidates
                    ]
                )
            )

    def count(self, namespace: str) -> int:
        """How many records the namespace holds (for operators and tests: one ZCARD per entity)."""
        check_namespace(namespace)
        try:
            client = self._redis()
            entities = [_text(member) for member in client.zrange(self._index(namespace), 0, -1)]
            pipe = client.pipeline(transaction=False)
            for key in entities:
                pipe.zcard(self._entity(namespace, key)[0])
            return int(sum(pipe.execute())) if entities else 0
        except _REDIS_UNAVAILABLE as error:
            raise self._unavailable(error) from error

    def ping(self) -> None:
        try:
            self._redis().ping()
        except redis.RedisError as error:
            raise self._unavailable(error) from error

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._pid == os.getpid():
            client.close()
