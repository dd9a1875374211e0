"""A request's SQLite writes are each one statement in autocommit (its own transaction, under the writers' lock
file all the same): the window state's few records in one INSERT, a decision hitting no rule in its INSERT
alone; larger batches and decisions with rule hits keep BEGIN IMMEDIATE ... COMMIT; what is stored, and what
a write says went in, are the same either way."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from shared.decisions import DecisionStore
from shared.state import Record, SqliteStateStore, WindowQuery, totals_over
from tests.integration.test_decision_store import decision


def _traced(connection: sqlite3.Connection) -> list[str]:
    statements: list[str] = []
    connection.set_trace_callback(statements.append)
    return statements


def test_a_request_s_window_records_are_one_insert_and_a_redelivery_changes_nothing(tmp_path: Path) -> None:
    """Two records (a payment's card and terminal) are one INSERT with no BEGIN or COMMIT around it; the same
    records again (a redelivery, one with another value) change nothing; the totals read after are the
    definition's over what was written; 200 records at once are one transaction."""
    store = SqliteStateStore(tmp_path / "state.sqlite3")
    try:
        store.ping()
        statements = _traced(store._here().connection)
        card, terminal = Record(10.0, "e1", 5.0), Record(10.0, "e1", 5.0, 1)
        queries = {"card": [WindowQuery("c1", (0.0, 5.0), 10.0, "e1")], "term": [WindowQuery("t1", (0.0,), 10.0)]}
        totals = store.append_then_total({"card": [("c1", card)], "term": [("t1", terminal)]}, queries)
        writes = [s for s in statements if not s.startswith("SELECT")]
        assert len(writes) == 1 and writes[0].startswith("INSERT OR IGNORE INTO records") and "), (" in writes[0]
        assert totals == {"card": [totals_over([card], queries["card"][0])], "term": [[(1, 5.0, 1)]]}
        again = store.append_then_total({"card": [("c1", Record(10.0, "e1", 99.0)), ("c1", Record(11.0, "e2"))]}, {})
        assert again == {}
        assert store.fetch("card", ["c1"], -1.0, 20.0) == {"c1": [card, Record(11.0, "e2")]}
        statements.clear()
        store.append("card", [("c2", Record(float(i), f"b{i}")) for i in range(200)])
        assert statements[0] == "BEGIN IMMEDIATE" and statements[-1] == "COMMIT"
        assert store.count("card") == 202
    finally:
        store.close()


def test_a_decision_without_rule_hits_is_its_insert_alone_and_one_with_hits_a_transaction(tmp_path: Path) -> None:
    """One decision hitting no rule is a single INSERT (no BEGIN, no COMMIT), reported inserted, then not
    inserted when recorded again; one with a rule hit is BEGIN IMMEDIATE, the INSERT, its hit, COMMIT; both
    are found as written."""
    store = DecisionStore(f"sqlite:///{tmp_path / 'decisions.sqlite3'}")
    try:
        plain, flagged = decision(1), decision(4)
        assert plain.rule_ids == () and flagged.rule_ids == ("high_score",)
        assert store.answers("fraud", ["warm"]) == {}
        direct = store._direct_path()
        connection = direct._connections._idle[0]  # type: ignore[attr-defined]
        statements = _traced(connection)
        assert store.record([plain]) == {"tx0001"}
        assert len(statements) == 1 and statements[0].startswith("INSERT INTO decisions")
        assert store.record([plain]) == set()
        statements.clear()
        assert store.record([flagged]) == {"tx0004"}
        assert statements[0] == "BEGIN IMMEDIATE" and statements[-1] == "COMMIT" and len(statements) == 4
        found = store.find("fraud", ["tx0001", "tx0004"])
        assert {e: d.document for e, d in found.items()} == {"tx0001": plain.document, "tx0004": flagged.document}
    finally:
        store.close()
