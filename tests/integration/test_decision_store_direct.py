"""The decision store's hot path on the driver's own connection (shared/decisions/direct.py), on both backends:
it stores exactly what SQLAlchemy's own INSERT stores, byte for byte; rule hits go in with a new decision
and never with one recorded before; a lost PostgreSQL connection is a NotReadyError and the next call
connects again; a forked child records on a connection of its own."""

from __future__ import annotations

import multiprocessing
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite as sqlite_dialect

from shared.decisions import DecisionStore
from shared.decisions.direct import sqlite_utc_text
from shared.decisions.store import _row, make_engine
from shared.decisions.tables import decision_rule_hits, decisions
from shared.errors import NotReadyError
from tests.integration.test_decision_store import decision


@pytest.fixture(params=["sqlite", "postgresql"])
def decisions_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'decisions.sqlite3'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(decisions_url: str) -> Iterator[DecisionStore]:
    opened = DecisionStore(decisions_url)
    yield opened
    opened.close()


def _hits(url: str) -> set[tuple[str, str]]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            query = sa.select(decision_rule_hits.c.event_id, decision_rule_hits.c.rule_id)
            return {(e, r) for e, r in connection.execute(query)}
    finally:
        engine.dispose()


def test_the_hot_path_stores_what_sqlalchemy_stores_byte_for_byte(tmp_path: Path) -> None:
    """SQLite keeps moments and documents as text: the row the hot path writes and the row SQLAlchemy's own
    INSERT writes for the same decision (another event id) hold the same text in every column."""
    url = f"sqlite:///{tmp_path / 'decisions.sqlite3'}"
    store = DecisionStore(url)
    written = decision(7, document={"score": 0.07, "reasons": [{"text": "prix élevé", "contribution": 1e-05}]})
    store.record([written])
    engine = make_engine(url)
    with engine.begin() as connection:
        row = {**_row(written), "event_id": "by-sqlalchemy"}
        connection.execute(sqlite_dialect.insert(decisions).values(row))
    engine.dispose()
    store.close()
    with sqlite3.connect(tmp_path / "decisions.sqlite3") as raw:
        fast, slow = (
            raw.execute("SELECT * FROM decisions WHERE event_id = ?", (event_id,)).fetchone()
            for event_id in ("tx0007", "by-sqlalchemy")
        )
    names = [c.name for c in decisions.c]
    differing = {n for n, a, b in zip(names, fast, slow, strict=True) if a != b}
    assert differing == {"event_id", "recorded_at"}  # the key, and the moment each was written
    assert isinstance(fast[names.index("scored_at")], str) and isinstance(fast[names.index("document")], str)


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 12, 3, 13, 41, 34, 828275, tzinfo=UTC),
        datetime(2018, 8, 8, 0, 18, 53, tzinfo=UTC),  # no microseconds: still written with six zeros
        datetime(2026, 3, 29, 2, 30, 0, 1, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        datetime(2025, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-8))),  # another UTC year
        datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
    ],
)
def test_a_moment_is_bound_as_sqlalchemy_binds_it_on_sqlite(moment: datetime) -> None:
    """The hot path's own binding of a moment on SQLite writes the text SQLAlchemy's bind processors write
    for the column (UTC, the DateTime storage format), in any zone; a naive moment is refused as they refuse it."""
    dialect = sqlite_dialect.dialect()
    sqlalchemy_binds = decisions.c.scored_at.type.dialect_impl(dialect).bind_processor(dialect)
    assert sqlalchemy_binds is not None
    assert sqlite_utc_text(moment) == sqlalchemy_binds(moment)
    with pytest.raises(ValueError, match="naive"):
        sqlite_utc_text(moment.replace(tzinfo=None))
    with pytest.raises(ValueError, match="naive"):
        sqlalchemy_binds(moment.replace(tzinfo=None))


def test_rule_hits_go_in_with_a_new_decision_only(store: DecisionStore, decisions_url: str) -> None:
    """One decision alone and a micro-batch each record their rule hits (a rule named twice counts once);
    a decision recorded before keeps its hits and gets none from a later write of the same id."""
    assert store.record([decision(4, rule_ids=("high_score", "high_score", "night"))]) == {"tx0004"}
    assert store.record([decision(8), decision(12, rule_ids=("night",)), decision(1)]) == {"tx0008", "tx0012", "tx0001"}
    assert store.record([decision(4, rule_ids=("other",))]) == set()
    assert store.record([decision(8, rule_ids=("other",)), decision(5)]) == {"tx0005"}
    assert _hits(decisions_url) == {
        ("tx0004", "high_score"),
        ("tx0004", "night"),
        ("tx0008", "high_score"),
        ("tx0012", "night"),
    }
    answers = store.answers("fraud", ["tx0004", "tx0005", "missing", "tx0004"])
    assert set(answers) == {"tx0004", "tx0005"}
    assert answers["tx0005"].document == {"event_id": "tx0005", "score": 0.05}
    assert answers["tx0004"].input_fingerprint == f"sha256:{4:064x}"


def test_a_lost_postgresql_connection_is_not_ready_then_connects_again(postgres_url: str) -> None:
    """The server ends the hot path's session: that call is a NotReadyError (a 503 on HTTP), and the next
    one opens a new connection and is answered."""
    store = DecisionStore(postgres_url)
    try:
        store.record([decision(1)])
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            ended = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
        assert ended
        with pytest.raises(NotReadyError):
            store.answers("fraud", ["tx0001"])
        assert set(store.answers("fraud", ["tx0001"])) == {"tx0001"}
        assert store.record([decision(2)]) == {"tx0002"}
    finally:
        store.close()


def _record_in_child(store: DecisionStore, n: int) -> None:
    assert store.record([decision(n)]) == {f"tx{n:04d}"}


def test_a_forked_child_records_on_a_connection_of_its_own(store: DecisionStore) -> None:
    """The parent's connection is made before the fork; the child records through its own, and the parent
    goes on using its one afterwards."""
    store.record([decision(1)])
    child = multiprocessing.get_context("fork").Process(target=_record_in_child, args=(store, 2))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert store.record([decision(3)]) == {"tx0003"}
    assert set(store.answers("fraud", ["tx0001", "tx0002", "tx0003"])) == {"tx0001", "tx0002", "tx0003"}
