"""The HTTP door's orjson provider answers with the very JSON values Flask's own provider gives, for a
decision and for everything Flask knows how to write (dates, dataclasses, UUIDs, decimals, markup), and
falls back to Flask's provider for what orjson refuses, with the same text or the same error."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, cast

import pytest
from flask import Flask, Response
from markupsafe import Markup

from shared.doors.json_provider import OrjsonProvider


@dataclass
class _Card:
    version: str
    metrics: dict[str, float]


class _Band(StrEnum):
    LOW = "low"


DECISION: dict[str, Any] = {
    "transaction_id": "tx-1",
    "score": 0.123456789,
    "small": 1e-05,
    "large": 1e16,
    "decision": "approve",
    "reasons": [{"feature": "amount", "contribution": -0.25, "text": "amount above the card's usual"}],
    "rule_hits": [],
    "replayed": False,
    "latency_ms": None,
    "zulu": 3,
    "alpha": {"b": 1, "a": [1, 2.5, True]},
}


def _body(app: Flask, value: Any) -> bytes:
    with app.app_context():
        return cast(Response, app.json.response(value)).get_data()


def _apps() -> tuple[Flask, Flask]:
    plain, fast = Flask("plain"), Flask("fast")
    fast.json = OrjsonProvider(fast)
    return plain, fast


@pytest.mark.parametrize(
    "value",
    [
        DECISION,
        [DECISION, DECISION],
        {"moment": datetime(2026, 12, 3, 9, 30, tzinfo=UTC), "day": date(2026, 12, 3)},
        {"card": _Card("v1", {"auc": 0.9}), "id": uuid.UUID(int=7), "amount": Decimal("12.30")},
        {"html": Markup("<b>x</b>"), "band": _Band.LOW, "text": "prix élevé"},
        {"huge": 10**30},  # beyond orjson's 64 bits: Flask's provider writes it
        {1: "a", 2: "b"},  # keys that are not text: Flask's provider writes them
    ],
)
def test_the_answers_hold_the_same_json_values(value: Any) -> None:
    """Each value answered by both providers parses to the same JSON value, one line ending in a newline."""
    plain, fast = _apps()
    expected, got = _body(plain, value), _body(fast, value)
    assert json.loads(got) == json.loads(expected)
    assert got.endswith(b"\n") and got.count(b"\n") == 1


def test_a_decision_is_written_with_the_same_bytes_but_for_float_spelling() -> None:
    """Keys sorted as Flask sorts them, compact separators: the text differs only in how 1e-05 and 1e+16
    are spelt."""
    plain, fast = _apps()
    expected, got = _body(plain, DECISION), _body(fast, DECISION)
    assert got.replace(b"0.00001", b"1e-05").replace(b"1e16", b"1e+16") == expected


def test_what_neither_can_write_is_the_same_error() -> None:
    """An object neither knows is the same TypeError from both, not a silent repr."""
    plain, fast = _apps()
    with plain.app_context(), pytest.raises(TypeError, match="not JSON serializable"):
        plain.json.dumps({"x": object()})
    with fast.app_context(), pytest.raises(TypeError, match="not JSON serializable"):
        fast.json.dumps({"x": object()})


def test_indented_answers_in_debug_are_flasks_own() -> None:
    """In debug, answers are indented: Flask's provider writes them, the very same bytes."""
    plain, fast = _apps()
    plain.debug = fast.debug = True
    assert _body(fast, DECISION) == _body(plain, DECISION)
