"""The bulk rule screen's per-row condition values against `Ruleset.evaluate` on each row's own context."""

from __future__ import annotations

import textwrap
from typing import Any

import numpy as np

from shared.batch.rules import RuleScreen
from shared.rules import Ruleset

RULESET = Ruleset.from_yaml(
    textwrap.dedent("""
    service: fraud
    version: "1"
    outcomes: [approve, review, decline]
    default: approve
    bands:
      - {name: high, min_score: 0.7}
      - {name: low, min_score: 0.0}
    rules:
      - id: very_high_score
        when: "score >= 0.9"
        then: decline
        reason: "fraud score {score} is at or above 0.9"
      - id: big_amount
        when: "event.amount > 1000 and features.ratio >= 4"
        then: review
        reason: "amount {event.amount} is {features.ratio} times the average"
""")
)
ROWS = 128
# Row by row: scores, amounts and ratios in turn over a few shapes of hit and miss; row 101's ratio is
# NaN (a missing feature, null in the rules' context), which ZEN cannot compare.
SCORES = [[0.95, 0.1, 0.5, 0.92, 0.3][k % 5] for k in range(ROWS)]
AMOUNTS = [[10.0, 5000.0, 2000.0, 3000.0, 1500.0][k % 5] for k in range(ROWS)]
RATIOS = [float("nan") if k == 101 else [1.0, 5.0, 2.0, 4.0, 4.5][k % 5] for k in range(ROWS)]


def _context(row: int) -> dict[str, Any]:
    ratio = None if np.isnan(RATIOS[row]) else RATIOS[row]
    return {"event": {"amount": AMOUNTS[row]}, "features": {"ratio": ratio}, "score": SCORES[row], "band": "low"}


def _columns(screen: RuleScreen) -> list[np.ndarray]:
    by_path = {("score",): SCORES, ("event", "amount"): AMOUNTS, ("features", "ratio"): RATIOS}
    return [np.array(by_path[path]) for path in screen.paths]


def test_rows_with_boolean_conditions_get_the_verdict_evaluate_gives() -> None:
    """Where every condition gives true or false, `verdict_of` on the screen's values is `evaluate`'s
    verdict (outcome, hits and rendered reasons); the part of the chunk around a row comparing a null is
    left to `evaluate` (which names the failing rule), the other parts are not."""
    screen = RuleScreen(RULESET)
    values = screen.values(_columns(screen))
    left_to_evaluate = [row for row, v in enumerate(values) if v is None]
    assert 101 in left_to_evaluate
    assert len(left_to_evaluate) < ROWS // 2
    for row, row_values in enumerate(values):
        if row_values is not None:
            assert RULESET.verdict_of(_context(row), row_values) == RULESET.evaluate(_context(row)), row
    outcomes = {RULESET.evaluate(_context(row)).outcome for row in range(ROWS) if values[row] is not None}
    assert outcomes == {"approve", "review", "decline"}


def test_the_screen_flags_every_row_some_rule_may_hit() -> None:
    """`may_hit` is true wherever `evaluate` finds a hit or an error, and false on the other rows outside
    the part of the chunk ZEN could not evaluate."""
    screen = RuleScreen(RULESET)
    flagged = screen.may_hit(_columns(screen)).tolist()
    unsure = {row for row, v in enumerate(screen.values(_columns(screen))) if v is None}
    for row in range(ROWS):
        hit = bool(RULESET.evaluate(_context(row)).hits)
        assert flagged[row] == hit or (row in unsure and flagged[row]), row
