"""The desk's cases in the decision store, on both backends (a real PostgreSQL server and the SQLite file):
opened once per queued decision, most urgent first (severity, then score, then age) in keyset pages that
neither skip nor repeat, every filter, the counts and the oldest case, assignment and resolution that only
an open case takes, and pruning that takes the cases (and their comments) with their decisions."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from shared.decisions import DecisionStore, NewDecision
from shared.decisions.cases import UNASSIGNED, QueueFilter
from shared.decisions.store import MIGRATIONS
from shared.errors import InvalidInputError
from tests.unit.test_desk import fraud_decision

SEVERITIES = {"review": 1, "decline": 2}


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DecisionStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'decisions.sqlite3'}"
    else:
        url = str(request.getfixturevalue("postgres_url"))
    opened = DecisionStore(url)
    yield opened
    opened.close()


def _all_pages(store: DecisionStore, wanted: QueueFilter) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        page = store.queue(replace(wanted, cursor=cursor))
        pages.append([c.event_id for c in page.items])
        cursor = page.next_cursor
        if cursor is None:
            return pages


def test_the_queue_is_most_urgent_first_in_pages(store: DecisionStore) -> None:
    """Declines before reviews, a higher score first, then the older; pages of 2 cover every case once; the
    approvals never queue; a second sync opens nothing again."""
    now = datetime.now(UTC)
    store.record(
        [
            fraud_decision(1, "review", 0.5, at=now - timedelta(minutes=9)),
            fraud_decision(2, "review", 0.5, at=now - timedelta(minutes=8)),
            fraud_decision(3, "decline", 0.81, at=now - timedelta(minutes=7)),
            fraud_decision(4, "review", 0.7, at=now - timedelta(minutes=6)),
            fraud_decision(5, "approve", 0.1, at=now - timedelta(minutes=5)),
            fraud_decision(6, "decline", 0.95, at=now - timedelta(minutes=4)),
        ]
    )
    assert store.sync_cases("fraud", SEVERITIES, now) == 5
    assert store.sync_cases("fraud", SEVERITIES, now + timedelta(seconds=5)) == 0
    pages = _all_pages(store, QueueFilter(limit=2))
    assert pages == [["tx00006", "tx00003"], ["tx00004", "tx00001"], ["tx00002"]]
    summary = store.queue_summary()
    assert summary.open_by_outcome == {("fraud", "decline"): 2, ("fraud", "review"): 3}
    assert summary.oldest_scored_at is not None and abs(
        summary.oldest_scored_at - (now - timedelta(minutes=9))
    ) < timedelta(seconds=1)


def test_a_decision_committed_late_is_still_found(store: DecisionStore) -> None:
    """A decision scored before the last look but recorded after it (a slow batch) is opened at the next."""
    now = datetime.now(UTC)
    store.sync_cases("fraud", SEVERITIES, now)
    store.record([fraud_decision(7, "review", 0.4, at=now - timedelta(seconds=30))])
    assert store.sync_cases("fraud", SEVERITIES, now + timedelta(seconds=2)) == 1


def test_every_filter_narrows_the_queue(store: DecisionStore) -> None:
    """Each filter alone (service, outcome, rule, band, dates, assignee) keeps only its cases; a cursor that
    is not one and a page size out of bounds are refused."""
    now = datetime.now(UTC)
    store.record(
        [
            fraud_decision(1, "review", 0.4, at=now - timedelta(days=2)),
            fraud_decision(2, "decline", 0.9, at=now - timedelta(hours=1)),
            fraud_decision(3, "approve", 0.1, at=now - timedelta(hours=1)),
        ]
    )
    store.sync_cases("fraud", SEVERITIES, now)
    store.assign_case("fraud", "tx00002", "ana", now)

    def ids(**wanted: object) -> list[str]:
        return [c.event_id for c in store.queue(QueueFilter(**wanted)).items]  # type: ignore[arg-type]

    assert ids(service="fraud") == ["tx00002", "tx00001"] and ids(service="claims") == []
    assert ids(decision="review") == ["tx00001"]
    assert ids(rule_id="score_review") == ["tx00002", "tx00001"] and ids(rule_id="nothing") == []
    assert ids(band="high") == ["tx00002"]
    assert ids(since=now - timedelta(days=1)) == ["tx00002"] and ids(until=now - timedelta(days=1)) == ["tx00001"]
    assert ids(assignee="ana") == ["tx00002"] and ids(assignee=UNASSIGNED) == ["tx00001"]
    assert store.queue(QueueFilter(decision="review")).matching == 1
    with pytest.raises(InvalidInputError):
        store.queue(QueueFilter(cursor="not-one"))
    with pytest.raises(InvalidInputError):
        store.queue(QueueFilter(limit=0))


def _hitting(n: int, decision: str, score: float, rules: tuple[str, ...], at: datetime) -> NewDecision:
    return replace(fraud_decision(n, decision, score, at=at), rule_ids=rules)


def _rule_ids(store: DecisionStore, **wanted: object) -> list[str]:
    return [c.event_id for c in store.queue(QueueFilter(**wanted)).items]  # type: ignore[arg-type]


def test_the_queue_by_rule_follows_every_change_to_its_cases(store: DecisionStore) -> None:
    """Filtered by a rule hit, the queue keeps the queue's order and its pages, holds with the other filters,
    counts only its rule's open cases, and follows assignment, resolution and reopening of a case; a
    decision committed late is found by its rule too."""
    now = datetime.now(UTC)
    store.record(
        [
            _hitting(1, "review", 0.4, ("night", "big_amount"), now - timedelta(minutes=9)),
            _hitting(2, "decline", 0.9, ("night",), now - timedelta(minutes=8)),
            _hitting(3, "review", 0.7, ("big_amount",), now - timedelta(minutes=7)),
            _hitting(4, "review", 0.65, ("night",), now - timedelta(minutes=6)),
            _hitting(5, "approve", 0.1, ("night",), now - timedelta(minutes=5)),
        ]
    )
    store.sync_cases("fraud", SEVERITIES, now)
    assert _all_pages(store, QueueFilter(rule_id="night", limit=2)) == [["tx00002", "tx00004"], ["tx00001"]]
    assert store.queue(QueueFilter(rule_id="night")).matching == 3
    assert _rule_ids(store, rule_id="night", band="high") == ["tx00002", "tx00004"]
    assert _rule_ids(store, rule_id="big_amount", decision="review", band="medium") == ["tx00001"]
    assert _rule_ids(store, rule_id="night", service="claims") == []
    store.assign_case("fraud", "tx00004", "ana", now)
    assert _rule_ids(store, rule_id="night", assignee="ana") == ["tx00004"]
    assert _rule_ids(store, rule_id="night", assignee=UNASSIGNED) == ["tx00002", "tx00001"]
    store.resolve_case("fraud", "tx00002", "genuine", "ana", now)
    assert _rule_ids(store, rule_id="night") == ["tx00004", "tx00001"]
    assert store.queue(QueueFilter(rule_id="night")).matching == 2
    store.reopen_case("fraud", "tx00002")
    assert _rule_ids(store, rule_id="night") == ["tx00002", "tx00004", "tx00001"]
    store.record([_hitting(6, "decline", 0.8, ("night",), now - timedelta(seconds=30))])
    store.sync_cases("fraud", SEVERITIES, now + timedelta(seconds=2))
    assert _rule_ids(store, rule_id="night", since=now - timedelta(minutes=1)) == ["tx00006"]


def test_the_migration_fills_the_rule_index_from_the_open_cases(store: DecisionStore, tmp_path: Path) -> None:
    """A store whose cases were opened before the rule index existed (migrated back to 0004 and up again)
    finds them by rule, open or resolved as they were, and pruning takes their rule hits with them."""
    now = datetime.now(UTC)
    store.record(
        [
            _hitting(1, "review", 0.4, ("night",), now - timedelta(minutes=3)),
            _hitting(2, "decline", 0.9, ("night",), now - timedelta(minutes=2)),
        ]
    )
    store.sync_cases("fraud", SEVERITIES, now)
    store.resolve_case("fraud", "tx00002", "genuine", "ana", now)
    _migrate(store, "0004")
    _migrate(store, "head")
    assert _rule_ids(store, rule_id="night") == ["tx00001"]
    store.reopen_case("fraud", "tx00002")
    assert _rule_ids(store, rule_id="night") == ["tx00002", "tx00001"]
    assert store.prune("fraud", now) == 2
    with store._transaction() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM case_rule_hits")).scalar_one() == 0


def _migrate(store: DecisionStore, revision: str) -> None:
    with store._transaction() as connection:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        if revision == "head":
            command.upgrade(config, revision)
        else:
            command.downgrade(config, revision)
        assert sa.inspect(connection).has_table("case_rule_hits") == (revision == "head")


def test_only_an_open_case_is_assigned_or_resolved(store: DecisionStore) -> None:
    """A resolved case takes no second resolution nor an assignment, and leaves the queue until reopened."""
    now = datetime.now(UTC)
    store.record([fraud_decision(1, "review", 0.4, at=now)])
    store.sync_cases("fraud", SEVERITIES, now)
    assert store.resolve_case("fraud", "tx00001", "genuine", "ana", now)
    assert not store.resolve_case("fraud", "tx00001", "confirmed_fraud", "bo", now)
    assert not store.assign_case("fraud", "tx00001", "bo", now)
    case = store.case("fraud", "tx00001")
    assert case is not None and not case.is_open and (case.resolution, case.resolved_by) == ("genuine", "ana")
    assert store.queue(QueueFilter()).items == [] and store.queue_summary().total == 0
    store.reopen_case("fraud", "tx00001")
    assert [c.event_id for c in store.queue(QueueFilter()).items] == ["tx00001"]


def test_pruning_takes_the_cases_and_their_comments(store: DecisionStore) -> None:
    """Pruning a case's decision takes the case and its comments."""
    now = datetime.now(UTC)
    store.record([fraud_decision(1, "review", 0.4, at=now - timedelta(days=40))])
    store.sync_cases("fraud", SEVERITIES, now)
    store.comment_case("fraud", "tx00001", "ana", "a note", now)
    assert store.prune("fraud", now - timedelta(days=30)) == 1
    assert store.case("fraud", "tx00001") is None and store.case_comments("fraud", "tx00001") == []


def test_sessions_expire_and_end(store: DecisionStore) -> None:
    """A session is found until it expires or ends, not after."""
    now = datetime.now(UTC)
    store.save_desk_session("a" * 64, {"identity": "ana"}, now, now + timedelta(hours=1))
    assert store.load_desk_session("a" * 64, now) == {"identity": "ana"}
    assert store.load_desk_session("a" * 64, now + timedelta(hours=2)) is None
    store.drop_desk_session("a" * 64, now)
    assert store.load_desk_session("a" * 64, now) is None
