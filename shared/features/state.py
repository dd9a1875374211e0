"""State for online window features: each entity's recent events, shared by every process that scores.

- `SqliteStateStore` (`sqlite:///PATH`): the embedded default. One file shared by the gunicorn workers
  and stream workers of one machine (WAL mode, so readers never block the writer; writers queue on a
  lock file, which wakes the next one at once, where SQLite's own busy handler sleeps 1 to 100 ms).
- `RedisStateStore` (`redis://HOST:PORT/DB`): for many machines.

Both keep, per (namespace, entity key), records unique by event id, so appending a redelivered event
changes nothing, and both answer the same operations with the same results (a test proves it).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import redis

from shared.errors import ConfigurationError, NotReady

_SQLITE_PARAMETERS_PER_QUERY = 500


@dataclass(frozen=True, order=True)
class Record:
    ts: float
    id: str
    value: float = 0.0
    label: int | None = None


class StateStore(Protocol):
    def fetch(self, namespace: str, keys: Sequence[str], since: float, until: float) -> dict[str, list[Record]]:
        """For every key, its records with since < ts <= until, ordered by (ts, id)."""

    def append(self, namespace: str, items: Sequence[tuple[str, Record]]) -> None:
        """Add records; one whose (key, id) is already there is left as it is."""

    def set_labels(self, namespace: str, items: Sequence[tuple[str, str, int]]) -> None:
        """(key, record id, label) for records already there; unknown ids are ignored."""

    def prune(self, namespace: str, before: float) -> int:
        """Drop records older than `before`; returns how many."""

    def ping(self) -> None:
        """Raise NotReady when the store cannot be used."""

    def close(self) -> None: ...


def open_state_store(url: str) -> StateStore:
    if url.startswith("sqlite:///"):
        return SqliteStateStore(Path(url.removeprefix("sqlite:///")))
    if url.startswith("redis://"):
        return RedisStateStore(url)
    raise ConfigurationError("RISK_STATE_URL", f"unsupported state store {url!r}: use sqlite:///PATH or redis://")


class SqliteStateStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._connection: sqlite3.Connection | None = None
        self._writer_lock: int | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    def _db(self) -> sqlite3.Connection:
        """One connection per process, opened after fork (a connection must never cross a fork)."""
        if self._connection is None or self._pid != os.getpid():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA busy_timeout=30000")
            connection.execute(
                "CREATE TABLE IF NOT EXISTS records (namespace TEXT NOT NULL, key TEXT NOT NULL, id TEXT NOT NULL,"
                " ts REAL NOT NULL, value REAL NOT NULL, label INTEGER,"
                " PRIMARY KEY (namespace, key, id)) WITHOUT ROWID"
            )
            connection.execute("CREATE INDEX IF NOT EXISTS records_by_time ON records (namespace, key, ts, id)")
            self._writer_lock = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            self._connection, self._pid = connection, os.getpid()
        return self._connection

    def fetch(self, namespace: str, keys: Sequence[str], since: float, until: float) -> dict[str, list[Record]]:
        found: dict[str, list[Record]] = {key: [] for key in keys}
        unique = list(found)
        with self._lock:
            db = self._db()
            for start in range(0, len(unique), _SQLITE_PARAMETERS_PER_QUERY):
                chunk = unique[start : start + _SQLITE_PARAMETERS_PER_QUERY]
                rows = db.execute(
                    f"SELECT key, ts, id, value, label FROM records WHERE namespace = ? AND key IN "
                    f"({','.join('?' * len(chunk))}) AND ts > ? AND ts <= ? ORDER BY key, ts, id",
                    (namespace, *chunk, since, until),
                )
                for key, ts, record_id, value, label in rows:
                    found[key].append(Record(ts, record_id, value, label))
        return found

    def append(self, namespace: str, items: Sequence[tuple[str, Record]]) -> None:
        rows = [(namespace, key, r.id, r.ts, r.value, r.label) for key, r in items]
        self._write("INSERT OR IGNORE INTO records (namespace, key, id, ts, value, label) VALUES (?, ?, ?, ?, ?, ?)", rows)

    def set_labels(self, namespace: str, items: Sequence[tuple[str, str, int]]) -> None:
        rows = [(int(label), namespace, key, record_id) for key, record_id, label in items]
        self._write("UPDATE records SET label = ? WHERE namespace = ? AND key = ? AND id = ?", rows)

    def prune(self, namespace: str, before: float) -> int:
        with self._lock, self._writing() as db:
            return db.execute("DELETE FROM records WHERE namespace = ? AND ts < ?", (namespace, before)).rowcount

    def _write(self, statement: str, rows: list[tuple[object, ...]]) -> None:
        if not rows:
            return
        with self._lock, self._writing() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(statement, rows)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """The connection, held under the machine-wide writer lock."""
        db = self._db()
        assert self._writer_lock is not None
        fcntl.flock(self._writer_lock, fcntl.LOCK_EX)
        try:
            yield db
        finally:
            fcntl.flock(self._writer_lock, fcntl.LOCK_UN)

    def ping(self) -> None:
        try:
            with self._lock:
                self._db().execute("SELECT 1").fetchone()
        except sqlite3.Error as error:
            raise NotReady(f"state store {self.path}: {error}") from error

    def close(self) -> None:
        if self._connection is not None and self._pid == os.getpid():
            self._connection.close()
            if self._writer_lock is not None:
                os.close(self._writer_lock)
        self._connection = None
        self._writer_lock = None


# Sets a label only where the record exists, as the SQLite store's UPDATE does.
_SET_LABEL_IF_PRESENT = """
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
return 0
"""


class RedisStateStore:
    """Per (namespace, key): a sorted set of ids scored by time, a hash id -> value and a hash id -> label.

    A sorted set orders equal scores by member, so ranges come back ordered by (ts, id) as in SQLite.
    """

    PREFIX = "risk:state"

    def __init__(self, url: str) -> None:
        self.url = url
        self._client: redis.Redis | None = None
        self._pid: int | None = None

    def _redis(self) -> redis.Redis:
        if self._client is None or self._pid != os.getpid():
            self._client = redis.Redis.from_url(self.url, socket_timeout=5, socket_connect_timeout=5)
            self._pid = os.getpid()
        return self._client

    def _keys(self, namespace: str, key: str) -> tuple[str, str, str]:
        if ":" in namespace:
            raise ValueError(f"a namespace has no ':' ({namespace!r})")
        return (f"{self.PREFIX}:z:{namespace}:{key}", f"{self.PREFIX}:v:{namespace}:{key}",
                f"{self.PREFIX}:l:{namespace}:{key}")

    def fetch(self, namespace: str, keys: Sequence[str], since: float, until: float) -> dict[str, list[Record]]:
        unique = list(dict.fromkeys(keys))
        client = self._redis()
        ranges = client.pipeline(transaction=False)
        for key in unique:
            ranges.zrangebyscore(self._keys(namespace, key)[0], f"({since!r}", repr(until), withscores=True)
        members = ranges.execute()
        details = client.pipeline(transaction=False)
        for key, found in zip(unique, members, strict=True):
            if found:
                _, values, labels = self._keys(namespace, key)
                ids = [member for member, _ in found]
                details.hmget(values, ids)
                details.hmget(labels, ids)
        answers = iter(details.execute())
        out: dict[str, list[Record]] = {}
        for key, found in zip(unique, members, strict=True):
            if not found:
                out[key] = []
                continue
            values, labels = next(answers), next(answers)
            out[key] = [
                Record(float(score), member.decode(), float(value) if value is not None else 0.0,
                       int(label) if label is not None else None)
                for (member, score), value, label in zip(found, values, labels, strict=True)
            ]
        return out

    def append(self, namespace: str, items: Sequence[tuple[str, Record]]) -> None:
        if not items:
            return
        pipe = self._redis().pipeline(transaction=True)
        for key, record in items:
            ordered, values, labels = self._keys(namespace, key)
            pipe.zadd(ordered, {record.id: record.ts}, nx=True)
            pipe.hsetnx(values, record.id, repr(float(record.value)))
            if record.label is not None:
                pipe.hsetnx(labels, record.id, int(record.label))
        pipe.execute()

    def set_labels(self, namespace: str, items: Sequence[tuple[str, str, int]]) -> None:
        if not items:
            return
        client = self._redis()
        script = client.register_script(_SET_LABEL_IF_PRESENT)
        pipe = client.pipeline(transaction=True)
        for key, record_id, label in items:
            ordered, _, labels = self._keys(namespace, key)
            script(keys=[ordered, labels], args=[record_id, int(label)], client=pipe)
        pipe.execute()

    def prune(self, namespace: str, before: float) -> int:
        client = self._redis()
        removed = 0
        prefix = f"{self.PREFIX}:z:{namespace}:"
        for ordered in client.scan_iter(match=f"{prefix}*", count=500):
            key = ordered.decode().removeprefix(prefix)
            ids = client.zrangebyscore(ordered, "-inf", f"({before!r}")
            if not ids:
                continue
            _, values, labels = self._keys(namespace, key)
            pipe = client.pipeline(transaction=True)
            pipe.zrem(ordered, *ids)
            pipe.hdel(values, *ids)
            pipe.hdel(labels, *ids)
            removed += pipe.execute()[0]
        return removed

    def ping(self) -> None:
        try:
            self._redis().ping()
        except redis.RedisError as error:
            raise NotReady(f"state store {self.url}: {error}") from error

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = None
