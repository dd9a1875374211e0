"""The decision store on both backends (a real PostgreSQL server and the embedded SQLite file): recorded
once per (service, event id), found by id and by search in keyset pages, pruned, migrated by Alembic to
exactly the tables the code defines, and unavailable as a clean NotReadyError."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from shared.decisions import MAX_PAGE, DecisionStore, NewDecision, Search
from shared.decisions.store import make_engine
from shared.decisions.tables import VERSION_TABLE, metadata
from shared.errors import InvalidInputError, NotReadyError

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


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


def decision(n: int, *, service: str = "fraud", at: datetime | None = None, **changes: object) -> NewDecision:
    fields: dict[str, object] = {
        "service": service,
        "event_id": f"tx{n:04d}",
        "decision_id": f"00000000-0000-5000-8000-{n:012d}",
        "entity_id": f"card{n % 3}",
        "decision": "review" if n % 4 == 0 else "approve",
        "score": n / 100,
        "risk_band": "high" if n % 4 == 0 else "low",
        "model_version": "m1",
        "ruleset_version": "r1",
        "input_fingerprint": f"sha256:{n:064x}",
        "event_time": (at or T0 + timedelta(minutes=n)) - timedelta(seconds=1),
        "scored_at": at or T0 + timedelta(minutes=n),
        "rule_ids": ("high_score",) if n % 4 == 0 else (),
        "document": {"event_id": f"tx{n:04d}", "score": n / 100},
        "event": {"transaction_id": f"tx{n:04d}", "terminal_id": f"t{n % 2}"},
        "features": {"amount": float(n), "is_night": None},
        "door": "http",
    }
    return NewDecision(**{**fields, **changes})  # type: ignore[arg-type]


def test_each_event_is_recorded_once_whatever_is_sent_again(store: DecisionStore) -> None:
    """A second write of a recorded (service, event id) inserts nothing and leaves the first record as it
    was, even with another payload; the same event id of another service is another record."""
    assert store.record([decision(1), decision(2)]) == {"tx0001", "tx0002"}
    assert store.record([decision(1, score=0.99, document={"other": True}), decision(3)]) == {"tx0003"}
    assert store.get("fraud", "tx0001").document == {"event_id": "tx0001", "score": 0.01}  # type: ignore[union-attr]
    assert store.record([decision(1, service="claims", decision_id="other-id")]) == {"tx0001"}
    assert store.count("fraud") == 3 and store.count("claims") == 1


def test_a_recorded_decision_comes_back_as_it_was_written(store: DecisionStore) -> None:
    """Every column and the document round-trip, times as aware UTC datetimes."""
    written = decision(7, at=datetime(2026, 11, 2, 11, 0, tzinfo=UTC) + timedelta(microseconds=123))
    store.record([written])
    found = store.find("fraud", ["tx0007", "missing"])
    assert set(found) == {"tx0007"}
    got = found["tx0007"]
    assert (got.event_id, got.decision_id, got.entity_id, got.decision) == (
        "tx0007",
        written.decision_id,
        "card1",
        "approve",
    )
    assert got.scored_at == written.scored_at and got.scored_at.tzinfo is not None
    assert got.input_fingerprint == written.input_fingerprint and got.door == "http"
    assert got.event_time == written.event_time
    assert (got.document, got.event, got.features) == (written.document, written.event, written.features)


def test_search_pages_newest_first_without_gaps_or_repeats(store: DecisionStore) -> None:
    """Keyset pages walk every decision once, newest first, including decisions scored at the same instant
    (ordered by event id), and a decision recorded between pages never shifts the later pages."""
    same_instant = [decision(n, at=T0 + timedelta(hours=1)) for n in range(20, 26)]
    store.record([decision(n) for n in range(1, 15)] + same_instant)
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = store.search("fraud", Search(limit=4, cursor=cursor))
        seen.extend(d.event_id for d in page.items)
        if cursor is None:
            store.record([decision(99, at=T0 + timedelta(days=1))])  # newer than everything: page 1 only
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    expected = [f"tx{n:04d}" for n in range(25, 19, -1)] + [f"tx{n:04d}" for n in range(14, 0, -1)]
    assert seen == expected


def test_search_filters_hold_together(store: DecisionStore) -> None:
    """Entity, time range (from inclusive, to exclusive), decision and rule hit each narrow the search."""
    store.record([decision(n) for n in range(1, 25)])

    def ids(**filters: object) -> list[str]:
        return [d.event_id for d in store.search("fraud", Search(**filters)).items]  # type: ignore[arg-type]

    assert ids(entity_id="card1") == [f"tx{n:04d}" for n in range(22, 0, -3)]
    assert ids(since=T0 + timedelta(minutes=20)) == ["tx0024", "tx0023", "tx0022", "tx0021", "tx0020"]
    assert ids(until=T0 + timedelta(minutes=3)) == ["tx0002", "tx0001"]
    assert ids(decision="review") == ["tx0024", "tx0020", "tx0016", "tx0012", "tx0008", "tx0004"]
    assert ids(rule_id="high_score", entity_id="card0", since=T0 + timedelta(minutes=10)) == ["tx0024", "tx0012"]
    assert ids(rule_id="no_such_rule") == []


def test_bad_limits_and_cursors_are_refused_by_name(store: DecisionStore) -> None:
    """A limit outside 1..MAX_PAGE or a cursor the store did not give out is an InvalidInputError naming it."""
    for limit in (0, MAX_PAGE + 1):
        with pytest.raises(InvalidInputError) as refused:
            store.search("fraud", Search(limit=limit))
        assert list(refused.value.fields) == ["limit"]
    for cursor in ("not-a-cursor", "WyJ4Il0", "W10"):
        with pytest.raises(InvalidInputError) as refused:
            store.search("fraud", Search(cursor=cursor))
        assert list(refused.value.fields) == ["cursor"]


def test_prune_deletes_only_the_older_decisions_of_one_service(store: DecisionStore) -> None:
    """Decisions scored before the bound go, with their rule hits; later ones and other services stay."""
    store.record([decision(n) for n in range(1, 11)] + [decision(1, service="claims", decision_id="c-1")])
    assert store.prune("fraud", T0 + timedelta(minutes=6)) == 5
    assert [d.event_id for d in store.search("fraud", Search()).items] == [f"tx{n:04d}" for n in range(10, 5, -1)]
    assert [d.event_id for d in store.search("fraud", Search(rule_id="high_score")).items] == ["tx0008"]
    assert store.count("claims") == 1


def test_the_migrations_build_exactly_the_tables_the_code_defines(store: DecisionStore, decisions_url: str) -> None:
    """After `upgrade head`, Alembic's comparison finds nothing between the database and the metadata."""
    store.ping()  # opens the store, which migrates it
    engine = make_engine(decisions_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"version_table": VERSION_TABLE, "compare_type": True}
            )
            assert compare_metadata(context, metadata) == []
            assert context.get_current_revision() == "0005"
    finally:
        engine.dispose()


def _open_and_record(url: str, n: int) -> None:
    store = DecisionStore(url)
    store.record([decision(n)])
    store.close()


def test_processes_opening_a_new_store_at_once_migrate_it_once(decisions_url: str) -> None:
    """Four processes (like gunicorn workers starting together) open an empty database at the same time:
    the schema is built once and every process's decision is recorded."""
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_open_and_record, args=(decisions_url, n)) for n in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    store = DecisionStore(decisions_url)
    assert store.count("fraud") == 4
    store.close()


def test_an_unreachable_database_is_not_ready_and_its_password_is_not_shown() -> None:
    """Nothing listens on the port: a NotReadyError naming the store without the password in the URL."""
    from tests.fixtures.services import free_port

    store = DecisionStore(f"postgresql://risk:s3cret-pw@127.0.0.1:{free_port()}/risk")
    with pytest.raises(NotReadyError) as raised:
        store.ping()
    assert "s3cret-pw" not in str(raised.value) and "127.0.0.1" in str(raised.value)


def test_an_engine_is_made_only_for_the_two_supported_backends(tmp_path: Path) -> None:
    """A relative SQLite path and an unknown scheme are configuration errors, not silent other files."""
    from shared.errors import ConfigurationError

    for url in ("sqlite:///", "sqlite://relative.db", "mysql://host/db"):
        with pytest.raises(ConfigurationError):
            make_engine(url)
    engine = make_engine(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    with engine.connect() as connection:
        assert connection.execute(sa.text("PRAGMA journal_mode")).scalar_one() == "wal"
    engine.dispose()
