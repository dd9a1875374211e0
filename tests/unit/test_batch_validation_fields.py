"""Column-wise validation of contracts with optional fields, flags, whole numbers, choices, laboratory
values with units and schema validators (disease assessments, motor policies), against the contract."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from services.claims_risk.schemas import PolicySchema
from services.disease_risk.schemas import PERSONAL_FIELDS, AssessmentSchema
from shared.batch.scoring import loaded_events
from shared.batch.validation import contract_columns, validate_table
from shared.core.contract import Contract
from shared.errors import InvalidInputError
from shared.files import nested_from_dotted

ASSESSMENT = {
    "assessment_id": "A-1",
    "patient_id": "MRN-1",
    "timestamp": "2026-11-02T08:00:00+00:00",
    "sex": "female",
    "age": "65.0",
    "systolic_bp": "145.0",
    "diastolic_bp": "91.0",
    "bmi": "29.8",
    "smoker": "False",
    "hypertension": "True",
    "race": "white",
    "waist_cm": "98.1",
    "physically_active": "False",
    "pregnancies": "1.0",
    "smoking_status": "ex_smoker",
    "total_cholesterol.value": "5.82",
    "total_cholesterol.unit": "mmol/L",
    "hdl_cholesterol.value": "54.0",
    "hdl_cholesterol.unit": "mg/dL",
}
ASSESSMENT_VARIANTS: list[dict[str, Any]] = [
    {},
    {"race": "", "waist_cm": "", "physically_active": "", "pregnancies": "", "smoking_status": ""},  # left out
    {"hdl_cholesterol.value": "", "hdl_cholesterol.unit": ""},  # a laboratory value left out
    {"total_cholesterol.unit": ""},  # a value without its unit
    {"total_cholesterol.value": ""},  # a unit without its value
    {"total_cholesterol.unit": "mmol/dL"},
    {"total_cholesterol.value": "five"},
    {"total_cholesterol.value": "25"},  # 25 mmol/L is 966.75 mg/dL: out of range once converted
    {"total_cholesterol.value": "700", "total_cholesterol.unit": "mg/dL"},
    {"total_cholesterol.value": "1.2"},  # 46.4 mg/dL: under 50, and under HDL (a schema validator)
    {"fasting_glucose.value": "7.1", "fasting_glucose.unit": "mmol/L"},
    {"smoker": "true"},  # a smoker whose status says ex-smoker: the schema validator refuses it
    {"smoker": "1", "smoking_status": "light_smoker", "cigarettes_per_day": "5"},
    {"smoker": "yes", "smoking_status": "light_smoker", "cigarettes_per_day": "15"},  # contradicts the status
    {"smoker": "maybe"},
    {"cigarettes_per_day": "3"},  # cigarettes for a non-smoker
    {"cigarettes_per_day": "0.0"},
    {"pregnancies": "2.5"},
    {"pregnancies": "+3"},
    {"pregnancies": "31"},
    {"pregnancies": "1e1"},
    {"hypertension": "0", "diabetes": "F", "prior_stroke": "off"},
    {"diabetes_type": "type_2"},  # a type without diabetes
    {"diabetes": "True", "diabetes_type": "type_2"},
    {"diastolic_bp": "145.0"},  # not lower than systolic
    {"sex": "other"},
    {"race": "martian"},
    {"age": "nan"},
    {"age": "17"},
    {"bmi": " 29.8 "},
    {"patient_name": "Jane Doe"},  # personal, load-only: accepted, never written
    {"unexpected": "value"},
    {"total_cholesterol": "5.8"},  # the laboratory value without its parts
    {"timestamp": "2026-11-02T09:00:00+01:00"},
]
POLICY = {
    "quote_id": "Q-1",
    "policy_id": "P-1",
    "kind": "renewal",
    "timestamp": "2026-11-02T10:30:00Z",
    "exposure": "1.0",
    "area": "C",
    "bonus_malus": "50",
    "driver_age": "42",
    "vehicle_age": "3.0",
    "vehicle_power": "6",
    "vehicle_brand": "B12",
}
POLICY_VARIANTS: list[dict[str, Any]] = [
    {},
    {"exposure": "0"},  # the minimum itself is refused
    {"exposure": "2"},
    {"exposure": "2.0001"},
    {"kind": "quote"},
    {"kind": "claim"},
    {"bonus_malus": "49"},
    {"bonus_malus": "350.0"},
    {"driver_age": "42.5"},
    {"vehicle_brand": ""},
]


def _table(rows: list[dict[str, Any]]) -> pa.Table:
    names = list(dict.fromkeys(name for row in rows for name in row))
    return pa.table({name: pa.array([row.get(name, "") for row in rows], pa.string()) for name in names})


def _same_as_the_contract(contract: Contract, rows: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> int:
    """Check every row's verdict, document, fingerprint and loaded values against the contract; return how
    many rows the column checks left to it."""
    expected_rejects, expected = {}, []
    for number, row in enumerate(rows, start=1):
        present = nested_from_dotted({k: v for k, v in row.items() if v != ""})
        try:
            expected.append((number, contract.validate(present)))
        except InvalidInputError as error:
            expected_rejects[number] = error.fields
    left: list[Any] = []
    validate = contract.validate

    def counting(record: Any) -> Any:
        left.append(record)
        return validate(record)

    monkeypatch.setattr(contract, "validate", counting)
    result = validate_table(contract, _table(rows), first_row=1, dotted=True)
    assert {r.row: r.fields for r in result.rejects} == expected_rejects
    assert result.rows.tolist() == [number for number, _ in expected]
    documents = result.documents.to_pylist()
    assert [d.pop("input_fingerprint") for d in documents] == [e.fingerprint for _, e in expected]
    assert [{k: v for k, v in d.items() if v is not None} for d in documents] == [e.document for _, e in expected]
    loaded = [{k: v for k, v in d.items() if v is not None} for d in loaded_events(result.data)]
    assert loaded == [e.data for _, e in expected]
    assert [{k: type(v) for k, v in d.items()} for d in loaded] == [
        {k: type(v) for k, v in e.data.items()} for _, e in expected
    ]
    return len(left)


def test_assessments_get_the_contracts_verdict_documents_and_loaded_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every assessment, good or bad, gets the contract's verdict (the same fields named), document (labs in
    mg/dL, the patient's id pseudonymised, the name left out), fingerprint and loaded values (flags as bools,
    whole numbers as ints); the schema's own checks (diastolic under systolic, smoking status) hold too."""
    contract = Contract(AssessmentSchema, PERSONAL_FIELDS, b"test-key")
    rows = [{**ASSESSMENT, **variant} for variant in ASSESSMENT_VARIANTS]
    _same_as_the_contract(contract, rows, monkeypatch)


def test_plain_assessments_never_reach_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    """Good assessments, with optional fields and laboratory values given or left out, in either unit, are
    validated by the column checks alone, with the contract's documents."""
    contract = Contract(AssessmentSchema, PERSONAL_FIELDS, b"test-key")
    assert contract_columns(contract) is not None
    plain = [ASSESSMENT_VARIANTS[k] for k in (0, 1, 2, 10, 12, 16, 21, 23, 30)]
    rows = [{**ASSESSMENT, **variant, "assessment_id": f"A-{k}"} for k, variant in enumerate(plain)]
    assert _same_as_the_contract(contract, rows, monkeypatch) == 0


def test_policies_get_the_contracts_verdict_with_an_open_minimum(monkeypatch: pytest.MonkeyPatch) -> None:
    """Motor policies column-wise: an exposure of 0 refused (the range excludes its minimum) and 2 accepted,
    whole numbers written with ".0" read as ints, unknown kinds refused; good rows never reach the contract."""
    contract = Contract(PolicySchema)
    rows = [{**POLICY, **variant} for variant in POLICY_VARIANTS]
    _same_as_the_contract(contract, rows, monkeypatch)
    good = [{**POLICY, **v, "quote_id": f"Q-{k}"} for k, v in enumerate(POLICY_VARIANTS) if k in (0, 2, 4, 7)]
    assert _same_as_the_contract(contract, good, monkeypatch) == 0
