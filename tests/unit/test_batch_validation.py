"""Column-wise validation against the marshmallow contract, on good rows and on every kind of bad one."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from services.fraud_detection.schemas import TransactionSchema
from shared.batch.validation import fingerprints, validate_table
from shared.core.contract import Contract
from shared.errors import InvalidInputError

GOOD = {
    "transaction_id": "t1",
    "timestamp": "2018-08-08T09:15:27+00:00",
    "customer_id": "4217",
    "terminal_id": "8812",
    "amount": "57.16",
}
VARIANTS: list[dict[str, Any]] = [
    {},
    {"timestamp": "2018-08-08T09:15:27Z"},
    {"timestamp": "2018-08-08T11:15:27+02:00"},  # another offset: the contract decides, and keeps it
    {"timestamp": "2018-08-08T09:15:27.250000+00:00"},
    {"timestamp": "2018-02-30T09:15:27+00:00"},
    {"timestamp": "2018-08-08T09:15:27"},  # no offset
    {"timestamp": "yesterday"},
    {"timestamp": ""},
    {"amount": "-1"},
    {"amount": "1000000.5"},
    {"amount": "nan"},
    {"amount": "inf"},
    {"amount": "1_000"},
    {"amount": " 12.5 "},
    {"amount": "1e3"},
    {"amount": "twelve"},
    {"amount": ""},
    {"transaction_id": ""},
    {"transaction_id": "x" * 65},
    {"transaction_id": "x" * 64},
    {"customer_id": "é" * 64},
    {"terminal_id": 'quote " and \\ backslash'},
    {"unexpected": "value"},
    {"unexpected": ""},
]


def _rows() -> list[dict[str, Any]]:
    return [{**GOOD, **variant} for variant in VARIANTS]


def _table(rows: list[dict[str, Any]]) -> pa.Table:
    names = list(dict.fromkeys(name for row in rows for name in row))
    return pa.table({name: pa.array([row.get(name, "") for row in rows], pa.string()) for name in names})


@pytest.fixture
def contract() -> Contract:
    return Contract(TransactionSchema, ("customer_id",), b"test-key")


def test_column_checks_reject_the_rows_and_fields_the_contract_rejects(contract: Contract) -> None:
    """Every row, good or bad, gets the contract's verdict: the same rows refused, naming the same fields
    with the same messages, and the same documents and fingerprints for those accepted."""
    rows = _rows()
    result = validate_table(contract, _table(rows), first_row=1)
    expected_rejects, expected_documents = {}, []
    for number, row in enumerate(rows, start=1):
        present = {k: v for k, v in row.items() if v != ""}
        try:
            expected_documents.append((number, contract.validate(present)))
        except InvalidInputError as error:
            expected_rejects[number] = error.fields
    assert {r.row: r.fields for r in result.rejects} == expected_rejects
    assert result.rows.tolist() == [number for number, _ in expected_documents]
    documents = result.documents.to_pylist()
    assert [d.pop("input_fingerprint") for d in documents] == [e.fingerprint for _, e in expected_documents]
    assert documents == [e.document for _, e in expected_documents]
    assert all(d["customer_id"].startswith("pid_") for d in documents)


def test_fingerprints_equal_the_contracts_on_text_that_needs_escaping(contract: Contract) -> None:
    """Quotes, backslashes, control characters and non-ASCII text are written as json.dumps writes them."""
    texts = ['a"b', "a\\b", "tab\there", "line\nbreak", "é", "\u2028", "plain"]
    rows = [{**GOOD, "transaction_id": text} for text in texts]
    expected = [contract.validate(row).fingerprint for row in rows]
    documents = validate_table(contract, _table(rows), first_row=1).documents
    assert documents.column("input_fingerprint").to_pylist() == expected
    assert fingerprints(documents.drop_columns(["input_fingerprint"])).to_pylist() == expected


def test_plain_rows_are_validated_by_the_column_checks_alone(
    contract: Contract, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row in UTC with whole seconds (`+00:00` or `Z`) and ordinary fields never reaches the contract's
    row-by-row path, and still gets the contract's document; a non-existent date (02-30, 02-29 outside a
    leap year, 04-31) does reach it, a real leap day does not."""
    checked_by_contract: list[dict[str, Any]] = []
    validate = contract.validate

    def counting(record: dict[str, Any]) -> Any:
        checked_by_contract.append(record)
        return validate(record)

    monkeypatch.setattr(contract, "validate", counting)
    rows = [GOOD, {**GOOD, "transaction_id": "t2", "timestamp": "2018-08-08T23:59:59Z"}]
    result = validate_table(contract, _table(rows), first_row=1)
    assert checked_by_contract == []
    documents = result.documents.to_pylist()
    assert [d.pop("input_fingerprint") for d in documents] == [validate(r).fingerprint for r in rows]
    assert documents == [validate(r).document for r in rows]
    missing_days = ["2018-02-30T09:15:27+00:00", "2019-02-29T00:00:00Z", "1900-02-29T12:00:00Z", "2018-04-31T23:59:59Z"]
    real_days = ["2020-02-29T00:00:00Z", "2000-02-29T12:00:00Z", "2018-12-31T23:59:59Z"]
    times = [{**GOOD, "transaction_id": f"t{k}", "timestamp": t} for k, t in enumerate(missing_days + real_days)]
    validate_table(contract, _table(times), first_row=1)
    assert [r["timestamp"] for r in checked_by_contract] == missing_days
