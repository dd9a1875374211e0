"""The committed contracts match the code: JSON Schemas, examples and OpenAPI documents."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from marshmallow import Schema

from services.claims_risk.schemas import ClaimSchema, PolicySchema
from services.cli import contract_documents
from services.disease_risk.schemas import AssessmentSchema
from services.fraud_detection.schemas import TransactionSchema

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


@pytest.mark.parametrize(
    ("schema_file", "contract"),
    [
        ("payments.transaction.v1.json", TransactionSchema),
        ("insurance.policy.v1.json", PolicySchema),
        ("insurance.claim.v1.json", ClaimSchema),
        ("health.assessment.v1.json", AssessmentSchema),
    ],
)
def test_event_json_schemas_match_the_marshmallow_contracts(schema_file: str, contract: type[Schema]) -> None:
    """Each JSON Schema's data fields, required fields and allowed values are the marshmallow schema's,
    and its example loads through marshmallow unchanged."""
    data_schema = load(CONTRACTS / "events" / schema_file)["properties"]["data"]
    fields = contract().fields
    assert set(data_schema["properties"]) == set(fields)
    assert set(data_schema["required"]) == {name for name, f in fields.items() if f.required}
    for name, field in fields.items():
        choices = getattr(field.validate, "choices", None)
        if choices is not None:
            assert sorted(data_schema["properties"][name]["enum"]) == sorted(choices), name
    example = load(CONTRACTS / "examples" / schema_file)["data"]
    assert contract().dump(contract().load(example)) == example


def test_insurance_categories_are_those_of_the_training_data() -> None:
    """The areas and brands a policy may carry are exactly those the frequency model was trained on."""
    from services.claims_risk.dataset import load_policies
    from services.claims_risk.schemas import AREAS, VEHICLE_BRANDS

    policies = load_policies()
    assert sorted(AREAS) == sorted(policies["area"].unique())
    assert sorted(VEHICLE_BRANDS) == sorted(policies["vehicle_brand"].unique())


def test_decision_json_schema_is_strict_where_the_code_is() -> None:
    """The generated decision schema is valid JSON Schema 2020-12, takes the worked example, and refuses what
    the code never produces: an unknown field, a service that does not exist, a fraud or disease decision
    whose entity id is not a pseudonym, a malformed fingerprint."""
    schema = load(CONTRACTS / "events/decision.v1.json")
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    example = load(CONTRACTS / "examples/decision.v1.json")
    assert not list(validator.iter_errors(example))
    data = example["data"]
    broken = [
        {**data, "surprise": 1},
        {**data, "service": "weather"},
        {**data, "input_fingerprint": "md5:00"},
        {**data, "entity_id": "4217"},
    ]
    for decision in broken:
        assert list(validator.iter_errors({**example, "data": decision})), decision
    disease = {**data, "service": "disease", "entity_id": "P-1234", "details": {"conditions": {}, "equations": []}}
    assert list(validator.iter_errors({**example, "type": "com.riskscoring.disease.decision.v1", "data": disease}))


def test_committed_generated_contracts_are_current() -> None:
    """contracts/http/*.openapi.json and contracts/events/decision.v1.json equal what the code generates
    (run `risk contracts` after a change)."""
    for path, text in contract_documents().items():
        assert path.exists(), f"{path} is missing: run `risk contracts`"
        assert json.loads(path.read_text()) == json.loads(text), f"{path.name} is stale: run `risk contracts`"
