"""The contract's fast load and dump give what marshmallow's full load and dump give, value for value and
type for type, and every refusal still carries marshmallow's own messages."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from marshmallow import Schema, fields, post_load

from services.claims_risk.schemas import ClaimSchema, PolicySchema
from services.disease_risk.schemas import AssessmentSchema
from services.fraud_detection.schemas import TransactionSchema
from shared.core.contract import Contract, compile_load, dump_compilable
from shared.errors import InvalidInputError

PAYMENT = {
    "transaction_id": "t-1",
    "timestamp": "2018-08-08T09:15:27+00:00",
    "customer_id": "4217",
    "terminal_id": "8812",
    "amount": 57.16,
}
POLICY = {
    "quote_id": "Q-1",
    "policy_id": "POL-1",
    "kind": "renewal",
    "timestamp": "2026-11-02T10:30:00+02:00",
    "exposure": 1.0,
    "area": "C",
    "bonus_malus": 60,
    "driver_age": 42,
    "vehicle_age": 3,
    "vehicle_power": 6,
    "vehicle_brand": "B12",
}
CLAIM = {"claim_id": "C-1", "policy_id": "POL-1", "timestamp": "2026-06-14T08:00:00+00:00"}

ODD_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    7,
    10**400,
    2.5,
    float("nan"),
    float("inf"),
    "",
    "x" * 65,
    "57.16",
    "60",
    "2.0",
    " 42 ",
    "é",
    "\ud800",
    [],
    {},
    ["a"],
    "2018-08-08T09:15:27",
    "2018-08-08T09:15:27Z",
    "2018-08-08 09:15:27+05:30",
    "not a time",
    2_000_000.0,
]


def variants(good: dict[str, Any]) -> list[Any]:
    """The good event, each field replaced by each odd value or left out, an unknown field, and non-objects."""
    found: list[Any] = [good, [good], "text", None, {**good, "extra": 1}, {**good, 5: "x"}, {**good, "é": 1}]
    for name in good:
        found.append({k: v for k, v in good.items() if k != name})
        found.extend({**good, name: value} for value in ODD_VALUES)
    return found


def outcome(contract: Contract, raw: Any) -> Any:
    """What validating `raw` gives: the loaded data, document and fingerprint (with each value's type), or
    the refusal's fields."""
    try:
        event = contract.validate(copy.deepcopy(raw))
    except InvalidInputError as error:
        return ("refused", error.fields)
    typed = [(k, type(v).__name__, repr(v)) for part in (event.data, event.document) for k, v in part.items()]
    return ("valid", typed, event.fingerprint)


def marshmallow_only(contract: Contract) -> Contract:
    """The same contract loading and dumping through the schema alone, as before the fast path."""
    slow = copy.copy(contract)
    slow._load = None
    slow._dump = contract.schema.dump
    return slow


@pytest.mark.parametrize(
    ("schema", "good", "personal"),
    [(TransactionSchema, PAYMENT, ("customer_id",)), (PolicySchema, POLICY, ()), (ClaimSchema, CLAIM, ())],
)
def test_the_fast_path_validates_and_refuses_exactly_as_marshmallow(
    schema: type[Schema], good: dict[str, Any], personal: tuple[str, ...]
) -> None:
    """Every variant of a valid event gives the same data, document, fingerprint or refusal either way."""
    contract = Contract(schema, personal, b"key")
    assert contract._load is not None and contract._dump is not contract.schema.dump
    slow = marshmallow_only(contract)
    cases = variants(good)
    results = [outcome(contract, raw) for raw in cases]
    assert results == [outcome(slow, raw) for raw in cases]
    assert sum(kind == "valid" for kind, *_ in results) > 5  # valid variants were compared, not only refusals


def test_schemas_with_hooks_keep_marshmallow_s_load() -> None:
    """A schema with load hooks or schema validators has no fast load (disease's validates the whole event)."""

    class Hooked(Schema):
        name = fields.String()

        @post_load
        def _upper(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
            return {"name": data["name"].upper()}

    assert compile_load(Hooked()) is None
    assert compile_load(AssessmentSchema()) is None
    assert Contract(Hooked).validate({"name": "ab"}).data == {"name": "AB"}


def test_fields_whose_dump_the_compiled_dump_does_not_follow_keep_marshmallow_s_dump() -> None:
    """A dump default or a number dumped as text keeps the schema's own dump."""

    class Defaulted(Schema):
        name = fields.String(dump_default="none")

    class AsText(Schema):
        amount = fields.Float(as_string=True)

    assert not dump_compilable(Defaulted())
    assert not dump_compilable(AsText())
    assert dump_compilable(TransactionSchema())
    assert Contract(AsText).validate({"amount": 1.5}).document == {"amount": "1.5"}
