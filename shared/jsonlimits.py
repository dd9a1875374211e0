"""Bounds on parsed JSON (and YAML) documents that came from outside: how deeply they nest.

Python walks nested values recursively almost everywhere (json, repr, marshmallow, deep copies), so a
value nested a few thousand levels deep raises RecursionError wherever it goes next. Every door measures
the depth once, here, without recursion, and refuses what is deeper than any real event could be.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# The deepest real input is a CloudEvent (1) holding `data` (2) holding flat fields: 32 is far above it.
MAX_NESTING = 32


def nesting_depth(value: Any, stop_above: int | None = None) -> int:
    """How many containers (mappings, lists) deep `value` goes: 0 for a scalar, 1 for `{}` or `[1, 2]`.
    Iterative, so any depth is measured safely; with `stop_above`, it returns as soon as the depth is
    known to exceed it (the result is then some depth above `stop_above`, not necessarily the deepest)."""
    if not isinstance(value, Mapping | list):
        return 0
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if stop_above is not None and deepest > stop_above:
            return deepest
        children = item.values() if isinstance(item, Mapping) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, Mapping | list))
    return deepest


def too_deep(value: Any, limit: int = MAX_NESTING) -> bool:
    """Whether `value` nests more than `limit` containers deep."""
    return nesting_depth(value, stop_above=limit) > limit
