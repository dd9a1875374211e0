"""Rules in bulk: which rows of a chunk some rule could hit, in one ZEN call for the whole chunk.

Handing a context to ZEN costs more than evaluating it (DESIGN.md), and most events hit no rule. So each
condition's field references (found by the rules' own tokenizer, `shared.rules.references`) are moved onto
the element of a `map` over the chunk's row numbers (`score` becomes `c0[#]`, `features.x` `c1[#]`), the
fields the conditions read are handed over once as JSON columns (numpy arrays written by orjson, so no
row is built in Python), and ZEN says for each row whether
every condition gave false; those take the default outcome with no hit, which is what `Ruleset.evaluate`
gives such a row. The few rows where one did not are evaluated again, condition by condition, by a second
expression over the same columns (`values`): a row whose conditions all gave true or false gets its
verdict from those values (`Ruleset.verdict_of`); a row with a null or an error is decided the ordinary
way, through `ScoringCore.decide`. A chunk ZEN cannot evaluate (a null compared in some row) is halved
until the failing rows stand alone, and those are decided the ordinary way too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
import zen

from shared.rules.engine import Ruleset
from shared.rules.references import references

SCREENED_ROOTS = frozenset({"event", "features", "score", "band", "measures", "lists"})
SMALLEST_SCREENED = 64  # a failing part of a chunk smaller than this is decided row by row


class RuleScreen:
    """The ruleset's conditions over a chunk's rows at once; `paths` are the fields each row carries."""

    def __init__(self, ruleset: Ruleset) -> None:
        paths: dict[tuple[str, ...], int] = {}
        rewritten = []
        self.usable = bool(ruleset.rules)
        for rule in ruleset.rules:
            found = references(rule.when)
            pieces, last = [], 0
            for reference in found:
                if reference.path[0] not in SCREENED_ROOTS or (
                    reference.path[0] in {"score", "band"} and len(reference.path) > 1
                ):
                    self.usable = False
                position = paths.setdefault(reference.path, len(paths))
                pieces += [rule.when[last : reference.position], f"c{position}[#]"]
                last = reference.position + len(_written(rule.when, reference.position, reference.path))
            pieces.append(rule.when[last:])
            rewritten.append("".join(pieces))
        self.paths = tuple(paths)
        self.width = len(rewritten)
        body = " or ".join(f"(({condition}) != false)" for condition in rewritten) or "false"
        each = ", ".join(f"({condition})" for condition in rewritten)
        # The row numbers where some condition did not give false: a few thousand numbers back from ZEN, not
        # a value for every row of the chunk (handing those back to Python was an eighth of the screen).
        self._expression = zen.compile_expression(f"filter([0..last], {body})") if self.usable else None
        self._each = zen.compile_expression(f"map([0..last], [{each}])") if self.usable else None

    def may_hit(self, columns: Sequence[Sequence[Any] | np.ndarray]) -> np.ndarray:
        """For each row (one column of values per path: lists, or numpy arrays whose NaN reads as null),
        whether some condition did not give false."""
        n = len(columns[0]) if len(columns) else 0
        if self._expression is None:
            return np.ones(n, dtype=bool)
        flagged = np.zeros(n, dtype=bool)
        _flag_rows(self._expression, list(columns), 0, n, flagged)
        return flagged

    def values(self, columns: Sequence[Sequence[Any] | np.ndarray]) -> list[list[Any] | None]:
        """For each row, every condition's value in rule order when all of them gave true or false, else
        None (a null, a value of another kind, or a part of the chunk ZEN could not evaluate): such a row
        needs `Ruleset.evaluate` itself, which names the failing rules."""
        n = len(columns[0]) if len(columns) else 0
        if self._each is None:
            return [None] * n
        found = _per_row(self._each, list(columns), n)
        return [
            v if isinstance(v, list) and len(v) == self.width and all(b is True or b is False for b in v) else None
            for v in found
        ]


def _per_row(expression: Any, columns: list[Sequence[Any] | np.ndarray], n: int) -> list[Any]:
    """The expression's value for each of the n rows (a `map` over the row numbers); None for every row of
    a part ZEN could not evaluate, which is halved until the failing rows stand nearly alone."""
    if not n:
        return []
    # The columns as they are (ZEN indexes them by row), so no row is built in Python.
    payload = {"last": n - 1, **{f"c{k}": column for k, column in enumerate(columns)}}
    try:
        result = expression.evaluate(orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY))
    except Exception:  # ZEN raises RuntimeError, TypeError and bare Exception alike
        if n < SMALLEST_SCREENED:
            return [None] * n
        half = n // 2
        return _per_row(expression, [c[:half] for c in columns], half) + _per_row(
            expression, [c[half:] for c in columns], n - half
        )
    if not isinstance(result, list) or len(result) != n:
        return [None] * n
    return result


def _flag_rows(
    expression: Any, columns: list[Sequence[Any] | np.ndarray], start: int, n: int, flagged: np.ndarray
) -> None:
    """Set `flagged` at the rows from `start` on (n of them) that the screen's `filter` keeps, and at every
    row of a part ZEN could not evaluate, halved as in `_per_row`."""
    if not n:
        return
    part = columns if start == 0 and n == len(flagged) else [c[start : start + n] for c in columns]
    payload = {"last": n - 1, **{f"c{k}": column for k, column in enumerate(part)}}
    try:
        result = expression.evaluate(orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY))
    except Exception:  # ZEN raises RuntimeError, TypeError and bare Exception alike
        if n < SMALLEST_SCREENED:
            flagged[start : start + n] = True
            return
        half = n // 2
        _flag_rows(expression, columns, start, half, flagged)
        _flag_rows(expression, columns, start + half, n - half, flagged)
        return
    kept = np.asarray(result) if isinstance(result, list) else None  # ZEN's numbers come back as floats
    if kept is None or (
        len(kept) and (kept.dtype.kind not in "iuf" or not (kept == np.floor(kept)).all() or not _within(kept, n))
    ):
        flagged[start : start + n] = True  # not row numbers: every row is left to the full evaluation
        return
    flagged[start + kept.astype(np.intp)] = True


def _within(numbers: np.ndarray, n: int) -> bool:
    return bool(numbers.min() >= 0 and numbers.max() < n)


def _written(expression: str, position: int, path: tuple[str, ...]) -> str:
    """The text of a reference as written at `position` (`a.b`, `a['b']`, `$root.a`): up to where its
    path's last part ends."""
    cursor = position
    for part in path:
        found = expression.index(part, cursor)
        cursor = found + len(part)
        if cursor < len(expression) and expression[cursor] in "'\"":
            cursor += 1
            if cursor < len(expression) and expression[cursor] == "]":
                cursor += 1
    return expression[position:cursor]
