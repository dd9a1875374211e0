"""A ruleset's `when` conditions, evaluated by zen-engine (GoRules' ZEN expression language, in Rust).

Most of the cost of a ZEN evaluation is handing the context to Rust (DESIGN.md: 10 conditions compiled
one by one cost 72 us an event, the same 10 as one list expression 10 us). So every condition is compiled
into ONE list expression `[(c1), (c2), ...]` and `Conditions.values` crosses into Rust once per event.

ZEN semantics that shape this module (zen-engine 2.1.3):
- A missing field reads as null. Comparing or combining null (`null > 3`, `not null`, `null and x`,
  `null + 1`) raises a VM error, and one failing element fails the whole list. Only then is each
  condition evaluated alone, and those that fail give a `ConditionFailure` with ZEN's message: a field
  missing from one event fails the rules that need it, never the others, and the ruleset reports it.
- `null == 3` is false and `null != 3` true (no error); `1 / 0` is null.
- Some Python values cannot cross at all (NaN and infinities, datetimes, numpy integers, integers beyond
  64 bits): the whole call fails. Then the context is converted to plain JSON values (`plain`, NaN -> null)
  and evaluated again, so one odd value cannot disable every rule.
- ZEN raises RuntimeError for VM and parser errors and TypeError or bare Exception for contexts it cannot
  take; with RUST_BACKTRACE=1 each error also captures a Rust backtrace (about 0.5 ms instead of 10 us),
  so the slow path is slow where that variable is set.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, time
from decimal import Decimal
from typing import Any

import zen

_SMALLEST_INT = -(2**63)  # ZEN takes integers from i64's minimum to u64's maximum
_LARGEST_INT = 2**64 - 1


def syntax_problem(expression: str) -> str | None:
    """ZEN's own message for an expression it cannot compile (it includes the position where it has one,
    e.g. "Unexpected end of unary expression at (8, 8)"), or None when it compiles."""
    result = zen.validate_expression(expression)
    if result is None:
        try:
            zen.compile_expression(expression)
        except Exception as error:  # zen raises RuntimeError; anything else is equally a refusal
            return zen_message(error)
        return None
    if isinstance(result, Mapping):
        return f"{result.get('type', 'error')}: {result.get('source', '')}"
    return str(result)


def evaluate_once(expression: str, context: Mapping[str, Any]) -> Any:
    """One expression on one context, compiled for the occasion: for load-time checks, never per event.
    Raises what ZEN raises."""
    return zen.evaluate_expression(expression, dict(context))


def zen_message(error: BaseException) -> str:
    """The useful part of a ZEN error: its JSON `source` without the Rust stack backtrace appended when
    RUST_BACKTRACE is set (analysts read these messages)."""
    first_line = str(error).split("\n", 1)[0].strip()
    try:
        parsed = json.loads(first_line)
    except ValueError:
        return first_line
    return str(parsed.get("source", first_line)) if isinstance(parsed, dict) else first_line


def as_list_expression(expressions: Sequence[str]) -> str:
    """One ZEN list of the conditions, each parenthesised so its operators cannot bind to a neighbour.
    Each condition must already compile alone, so none can close the list or add an element."""
    return "[" + ", ".join(f"({expression})" for expression in expressions) + "]"


def plain(value: Any) -> Any:
    """A copy of a context that ZEN can always take: JSON-shaped values only. NaN and infinities become
    null (a missing value, as ZEN treats it), dates ISO strings, numpy and Decimal numbers Python numbers,
    anything else its text. Used only after ZEN refused the context as it was."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, numbers.Integral):
        number = int(value)
        return number if _SMALLEST_INT <= number <= _LARGEST_INT else float(number)
    if isinstance(value, numbers.Real | Decimal):
        real = float(value)
        return real if math.isfinite(real) else None
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(item) for item in value]
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)


@dataclass(frozen=True, slots=True)
class ConditionFailure:
    """A condition ZEN could not evaluate on one context, with ZEN's message (which names no value)."""

    message: str


@dataclass(frozen=True)
class Conditions:
    """The compiled conditions of a ruleset, in rule order. Built from expressions already checked by
    `syntax_problem`; compiling is done once here, never per event."""

    expressions: tuple[str, ...]
    _together: Any = field(init=False, repr=False, compare=False)
    _alone: tuple[Any, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        together = zen.compile_expression(as_list_expression(self.expressions)) if self.expressions else None
        object.__setattr__(self, "_together", together)
        object.__setattr__(self, "_alone", tuple(zen.compile_expression(e) for e in self.expressions))

    def values(self, context: Mapping[str, Any]) -> list[Any]:
        """Each condition's value on one context, in order; a ConditionFailure for one ZEN could not evaluate.
        One call into ZEN when every condition evaluates, which is the common case."""
        if self._together is None:
            return []
        try:
            return self._checked(self._together.evaluate(context), context)
        except RuntimeError:  # ZEN's VM failed on some condition, usually a null compared: find which
            return self._one_by_one(context)
        except Exception:  # ZEN could not take the context itself (TypeError, or bare Exception for NaN)
            return self._values_of_plain(plain(context))

    def _values_of_plain(self, context: dict[str, Any]) -> list[Any]:
        """The values on a context made plain: as one list, else (a condition fails on it too) one by one."""
        try:
            return self._checked(self._together.evaluate(context), context)
        except Exception:  # as in values(): zen raises RuntimeError, TypeError and bare Exception alike
            return self._one_by_one(context)

    def _one_by_one(self, context: Mapping[str, Any]) -> list[Any]:
        """Each condition alone, a failure kept as such: the slow path, for events that need it."""
        return [_value_or_failure(condition, context) for condition in self._alone]

    def _checked(self, result: Any, context: Mapping[str, Any]) -> list[Any]:
        """The list result, or the one-by-one values should ZEN ever return another shape (it cannot for
        valid conditions; this keeps a surprise from shifting hits onto the wrong rules)."""
        if isinstance(result, list) and len(result) == len(self.expressions):
            return result
        return self._one_by_one(context)


def _value_or_failure(condition: Any, context: Mapping[str, Any]) -> Any:
    """One condition's value, or a ConditionFailure when ZEN raises on this context (a null compared, a
    type mismatch, a context it cannot take)."""
    try:
        return condition.evaluate(context)
    except Exception as error:  # zen raises RuntimeError, TypeError and bare Exception alike
        return ConditionFailure(zen_message(error) or type(error).__name__)
