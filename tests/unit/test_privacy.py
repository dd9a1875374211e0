"""Dead letters of inputs that carry personal data: redacted before they are kept."""

from __future__ import annotations

import json

import pytest

from shared.privacy import mask_secrets, pseudonym_of, pseudonymise, redact_event_record

KEY = b"unit-test-key"
KNOWN = {"patient_id", "patient_name", "age", "sex"}
PERSONAL = {"patient_id", "patient_name"}


def redact(key: bytes | None, value: bytes | None):  # type: ignore[no-untyped-def]
    return redact_event_record(key, value, known_fields=KNOWN, personal_fields=PERSONAL, secret=KEY)


def test_personal_fields_are_pseudonymised_and_unknown_fields_dropped() -> None:
    """A dead letter keeps personal fields only as keyed pseudonyms and drops fields the contract does not know."""
    event = {
        "specversion": "1.0",
        "id": "e1",
        "subject": "MRN-42",
        "type": "t",
        "data": {"patient_id": "MRN-42", "patient_name": "Jo Bloggs", "age": "old", "notes": "Jo Bloggs, MRN-42"},
    }
    key, value, headers = redact(b"MRN-42", json.dumps(event).encode())
    assert key == pseudonymise("MRN-42", KEY).encode()
    redacted = json.loads(value)
    assert redacted["data"] == {
        "patient_id": pseudonymise("MRN-42", KEY),
        "patient_name": pseudonymise("Jo Bloggs", KEY),
        "age": "old",
    }
    assert redacted["subject"] == pseudonymise("MRN-42", KEY) and redacted["id"] == "e1"
    assert dict(headers)["redacted_fields"] == b"notes"
    assert b"MRN-42" not in value and b"Bloggs" not in value


def test_a_payload_that_cannot_be_redacted_is_withheld() -> None:
    """A payload that is not a redactable CloudEvent is withheld from the dead letter rather than kept raw."""
    for raw in (b"{not json MRN-42", json.dumps({"data": "MRN-42"}).encode(), b"\xff\xfe", None):
        key, value, headers = redact(b"MRN-42", raw)
        assert value is None and dict(headers)["payload"].startswith(b"withheld")
        assert key == pseudonymise("MRN-42", KEY).encode()


def test_a_record_without_key_stays_without_key() -> None:
    """Redaction invents no key for a record that had none."""
    key, value, _ = redact(None, json.dumps({"data": {"age": 50}}).encode())
    assert key is None and json.loads(value) == {"data": {"age": 50}}


@pytest.mark.parametrize("depth", [500, 10_000])
def test_a_payload_nested_too_deeply_is_withheld_instead_of_raising(depth: int) -> None:
    """A poison record nested 500 levels deep (parsable, but too deep to walk) or 10,000 (past the parser's
    recursion limit) is withheld from the dead letter; the redactor does not raise RecursionError."""
    nested = "[" * depth + "]" * depth
    raw = ('{"specversion":"1.0","id":"1","source":"s","type":"t","data":{"age":' + nested + "}}").encode()
    key, value, headers = redact(b"MRN-42", raw)
    assert value is None and dict(headers)["payload"].startswith(b"withheld")
    assert key == pseudonymise("MRN-42", KEY).encode()


def test_mask_secrets_hides_url_passwords_secret_parameters_and_known_values_only() -> None:
    """Passwords in URLs (with or without a user), password/token-like parameters and the listed values are
    masked; URLs without a password, file paths and short listed values (which would mask words) are not."""
    text = "redis://:pw1@h:6379/0 redis://u:p@w2@h/1 https://x/y?token=t0k&a=1 sqlite:///tmp/s.db key-0123 ab"
    assert mask_secrets(text, ["key-0123", "ab"]) == (
        "redis://:***@h:6379/0 redis://u:***@h/1 https://x/y?token=***&a=1 sqlite:///tmp/s.db *** ab"
    )
    assert mask_secrets("redis://cache:6379/0 is down") == "redis://cache:6379/0 is down"


def test_pseudonym_of_hashes_a_raw_id_once_and_keeps_a_pseudonym() -> None:
    """A raw id becomes its pseudonym; that pseudonym given again stays itself (a search by the entity id a
    decision shows, a log of it); anything only resembling one (wrong length, capitals) is hashed."""
    token = pseudonymise("MRN-42", KEY)
    assert pseudonym_of("MRN-42", KEY) == token and pseudonym_of(token, KEY) == token
    for lookalike in (token[:-1], token.upper(), f"{token}0", f" {token}"):
        assert pseudonym_of(lookalike, KEY) == pseudonymise(lookalike, KEY), lookalike
