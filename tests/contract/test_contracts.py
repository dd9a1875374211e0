"""The committed contracts match the code: JSON Schemas, examples and OpenAPI documents."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from services.cli import openapi_documents
from services.fraud_detection.schemas import TransactionSchema
from shared.decision import DecisionSchema
from shared.settings import Settings

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"
EXAMPLES = sorted((CONTRACTS / "examples").glob("*.json"))


def load(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_example_is_valid_against_its_schema(example: Path) -> None:
    """contracts/examples/<event>.json validates against contracts/events/<event>.json."""
    schema = load(CONTRACTS / "events" / example.name)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(load(example), schema, format_checker=jsonschema.FormatChecker())


def test_every_event_schema_has_an_example() -> None:
    """No schema without a worked example beside it."""
    schemas = {p.name for p in (CONTRACTS / "events").glob("*.json")}
    assert schemas == {p.name for p in EXAMPLES}


def test_transaction_json_schema_matches_the_marshmallow_contract() -> None:
    """The JSON Schema's data fields and required list are the marshmallow schema's, and the example's
    data loads through marshmallow unchanged in meaning."""
    data_schema = load(CONTRACTS / "events/payments.transaction.v1.json")["properties"]["data"]
    fields = TransactionSchema().fields
    assert set(data_schema["properties"]) == set(fields)
    assert set(data_schema["required"]) == {name for name, f in fields.items() if f.required}
    example = load(CONTRACTS / "examples/payments.transaction.v1.json")["data"]
    assert TransactionSchema().dump(TransactionSchema().load(example))["amount"] == example["amount"]


def test_decision_json_schema_matches_the_marshmallow_decision() -> None:
    """The decision's JSON Schema lists exactly the fields of the marshmallow DecisionSchema."""
    decision = load(CONTRACTS / "events/decision.v1.json")["$defs"]["decision"]
    assert set(decision["properties"]) == set(DecisionSchema().fields)
    assert set(decision["required"]) == set(DecisionSchema().fields)


def test_committed_openapi_documents_are_current() -> None:
    """contracts/http/*.openapi.json equal what the code generates (run `risk contracts` after a change)."""
    for path, text in openapi_documents(Settings()).items():
        assert path.exists(), f"{path} is missing: run `risk contracts`"
        assert json.loads(path.read_text()) == json.loads(text), f"{path.name} is stale: run `risk contracts`"
