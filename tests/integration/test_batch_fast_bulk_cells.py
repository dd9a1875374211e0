"""The fast engine's rows decided in bulk (reasons and rule hits written a column at a time) against the row
path, under a ruleset whose reasons read every kind of field of the rules' context."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from services.registry import runtime
from shared.core.scoring import ScoringCore
from shared.doors.batch import rescore
from shared.rules import Ruleset
from shared.rules.lists import ListedValues, ListsInForce
from shared.settings import Settings
from tests.fixtures.events import many_payments
from tests.fixtures.outputs import assert_same_cells

ROWS = 6_000

RULES = textwrap.dedent(r"""
    service: fraud
    version: "bulk-cells-1"
    outcomes: [approve, review, decline]
    default: approve
    bands:
      - {name: high, min_score: 0.6}
      - {name: medium, min_score: 0.2}
      - {name: low, min_score: 0.0}
    rules:
      - id: every_field
        when: "score >= 0.2"
        then: review
        reason: >-
          score {score} band {band} amount {event.amount} at {event.terminal_id} ratio
          {features.amount_to_customer_avg_30d} risk {features.terminal_risk_7d} absent {event.nothing}
          {features.nothing} {measures.nothing} {score.below} {event.amount.below} reasons [{reasons}]
          listed {lists.watch_terminals} {{braces}} é "quoted" \ back
      - id: watched
        when: "lists.watch_terminals"
        then: decline
        reason: "terminal {event.terminal_id} is watched ({lists.watch_terminals}, {lists.deny_cards})"
      - id: busy_card_approved
        description: Many payments on the card today, approved all the same
        when: "features.customer_nb_tx_1d >= 3"
        then: approve
      - id: whole_features
        when: "score >= 0.5 and event.amount >= 50"
        then: review
        reason: "features {features}"
""")


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, fraud_model_dir: Path, fraud_data_dir: Path) -> Settings:
    folder = tmp_path_factory.mktemp("bulk-cells")
    return Settings.from_env(
        {},
        model_dir=fraud_model_dir,
        data_dir=fraud_data_dir,
        control_dir=folder / "control",
        state_url=f"sqlite:///{folder / 'state.sqlite3'}",
        decisions_url="none",
        pseudonym_key=b"bulk-cells-test-key",
    )


def test_bulk_decided_cells_equal_the_row_path_whatever_the_reasons_read(
    settings: Settings, fraud_data_dir: Path, tmp_path: Path
) -> None:
    """Reasons reading the score, the band, event fields and features, fields the context
    lacks, parts with nothing below them, list flags, a whole part of the context, escaped braces and text
    JSON must escape; a rule with no reason; a rule hitting with the default outcome (a hit, no reasons):
    every cell of the fast engine's output equals the row path's, the score within 1e-9."""
    payments = many_payments(fraud_data_dir, ROWS)
    watched = frozenset(payments["terminal_id"].value_counts().index[:40].tolist())
    lists = ListsInForce.of([ListedValues("watch_terminals", "terminal_id", 1, watched)])
    base = runtime("fraud", settings).core
    core: ScoringCore = base.replaced(ruleset=Ruleset.from_yaml(RULES).with_lists(lists))
    source = tmp_path / "payments.parquet"
    pq.write_table(pa.Table.from_pandas(payments, preserve_index=False), source)
    fast = rescore(core, source, tmp_path / "fast.parquet", progress=False, engine="fast")
    rows = rescore(core, source, tmp_path / "rows.parquet", progress=False, engine="rows")
    assert fast.decisions == rows.decisions
    a = assert_same_cells(tmp_path / "fast.parquet", tmp_path / "rows.parquet")
    hits = [hit for cell in a["rule_hits"] for hit in json.loads(cell)]
    assert {hit["rule_id"] for hit in hits} == {"every_field", "watched", "busy_card_approved", "whole_features"}
    texts = [hit["reason"] for hit in hits if hit["rule_id"] == "every_field"]
    assert all("absent ? ? ? ? ? reasons []" in text for text in texts)  # what the context lacks reads "?"
    assert all('{braces} é "quoted" \\ back' in text for text in texts)
    approved_with_a_hit = a[(a["decision"] == "approve") & (a["rule_hits"] != "[]")]
    assert len(approved_with_a_hit) and (approved_with_a_hit["reasons"] == "[]").all()
