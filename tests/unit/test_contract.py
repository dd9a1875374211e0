"""The contract every door shares refuses text that is not Unicode and events nested too deeply, by field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.fraud_detection.schemas import TransactionSchema
from shared.core.contract import surrogate_problems, validate_event
from shared.errors import InvalidInputError
from shared.jsonlimits import MAX_NESTING

GOOD = {
    "transaction_id": "t-1",
    "timestamp": "2018-08-08T09:15:27+00:00",
    "customer_id": "4217",
    "terminal_id": "8812",
    "amount": 57.16,
}


def refused(raw: Any) -> dict[str, list[str]]:
    with pytest.raises(InvalidInputError) as error:
        validate_event(TransactionSchema(), raw)
    return error.value.fields


@pytest.mark.parametrize("field", ["transaction_id", "customer_id", "terminal_id"])
def test_a_lone_surrogate_in_a_string_field_is_refused_naming_the_field(field: str) -> None:
    """JSON's "\\ud800" escape parses to a lone surrogate, which cannot be encoded as UTF-8 further on: the
    contract refuses it, naming only the field that holds it and where."""
    raw = json.loads(json.dumps({**GOOD, field: "ab\ud800"}))
    assert refused(raw) == {field: ["holds a lone surrogate (\\ud800) at character 2, which is not Unicode text"]}


def test_surrogates_are_found_at_any_depth_and_in_field_names_and_paths_stay_printable() -> None:
    """Nested values and keys are searched too; a key holding one is named with an escape, so the message
    itself can be encoded."""
    raw = {"a": [{"b": "\udfff"}], "k\ud83d": 1, "fine": "é ✓ 😀"}
    problems = surrogate_problems(raw)
    assert set(problems) == {"a.0.b", "k\\ud83d"}
    assert all(path.encode("utf-8") for path in problems)
    assert validate_event(TransactionSchema(), GOOD)["amount"] == 57.16, "a valid event still passes"


def test_an_event_nested_beyond_the_limit_is_refused_before_marshmallow_walks_it() -> None:
    """An event whose values nest more than MAX_NESTING deep is refused as a whole (_schema)."""
    nested: Any = "x"
    for _ in range(MAX_NESTING + 1):
        nested = [nested]
    assert refused({**GOOD, "extra": nested}) == {"_schema": [f"the event nests more than {MAX_NESTING} levels deep"]}
