"""CloudEvents envelope: what is produced, and why a record is refused."""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.errors import InvalidInputError
from shared.events.envelope import decode, encode, make_event
from shared.jsonlimits import MAX_NESTING

VALID = {"specversion": "1.0", "id": "1", "source": "s", "type": "t", "data": {}}


def test_round_trip_keeps_every_attribute() -> None:
    """make_event -> encode -> decode gives the event back, with the required CloudEvents attributes."""
    event = make_event("com.example.t.v1", "/tests", {"a": 1}, subject="s-1")
    assert decode(encode(event)) == event
    assert event["specversion"] == "1.0" and event["time"].endswith("Z") and event["subject"] == "s-1"
    assert event["datacontenttype"] == "application/json"


def test_make_event_defaults_a_fresh_uuid_and_keeps_a_given_id() -> None:
    """Without event_id each event gets its own UUID4; with one, that id is kept."""
    first, second = make_event("t", "s", {}), make_event("t", "s", {})
    assert first["id"] != second["id"] and uuid.UUID(first["id"]).version == 4
    assert make_event("t", "s", {}, event_id="evt-1")["id"] == "evt-1"


def test_make_event_writes_time_in_utc_and_refuses_naive_datetimes() -> None:
    """An aware time in another zone is written as the same instant in UTC (RFC 3339, Z); a naive one is
    refused rather than guessed."""
    paris = timezone(timedelta(hours=2))
    event = make_event("t", "s", {}, time=datetime(2024, 5, 1, 12, 30, tzinfo=paris))
    assert event["time"] == "2024-05-01T10:30:00Z"
    assert datetime.fromisoformat(event["time"]) == datetime(2024, 5, 1, 10, 30, tzinfo=UTC)
    with pytest.raises(ValueError, match="timezone-aware"):
        make_event("t", "s", {}, time=datetime(2024, 5, 1, 12, 30))


def test_encode_is_compact_utf8_and_refuses_nan() -> None:
    """No spaces between tokens, non-ASCII text as UTF-8 (not \\u escapes), NaN refused (not JSON)."""
    raw = encode({"a": "é", "b": [1, 2]})
    assert raw == '{"a":"é","b":[1,2]}'.encode()
    with pytest.raises(ValueError):
        encode({"a": math.nan})


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"\xff\xfe", "_record"),
        (b"{not json", "_record"),
        (b"[1, 2]", "_record"),
        (b'{"specversion": "0.3", "id": "1", "source": "s", "type": "t", "data": {}}', "specversion"),
        (b'{"specversion": "1.0", "source": "s", "type": "t", "data": {}}', "id"),
        (b'{"specversion": "1.0", "id": "1", "source": "s", "type": "", "data": {}}', "type"),
        (b'{"specversion": "1.0", "id": "1", "source": "s", "type": "t", "data": "x"}', "data"),
        (None, "_record"),
    ],
)
def test_decode_names_what_is_wrong(raw: bytes | None, field: str) -> None:
    """Each malformed record raises InvalidInputError whose fields name the attribute at fault."""
    with pytest.raises(InvalidInputError) as error:
        decode(raw)
    assert field in error.value.fields


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\xff\xfe", "not UTF-8"),
        (b"{not json", "not JSON"),
        (b'{"a": NaN}', "NaN is not a JSON value"),
        (b'"just a string"', "not a string"),
        (b"[1, 2]", "not an array"),
    ],
)
def test_decode_says_why_a_record_is_not_a_json_object(raw: bytes, message: str) -> None:
    """Text encoding, JSON syntax (NaN included, which Python's json would accept) and the top-level
    kind each get their own message under `_record`, with InvalidInputError's code for the dead letter."""
    with pytest.raises(InvalidInputError) as error:
        decode(raw)
    assert list(error.value.fields) == ["_record"]
    assert message in error.value.fields["_record"][0]
    assert error.value.code == "invalid_input"


def test_decode_tells_missing_from_wrong_typed_attributes_in_one_error() -> None:
    """Every problem is reported at once: missing attributes say "missing", wrong-typed ones name the
    JSON type found (never the value), and the valid attributes are not mentioned."""
    raw = json.dumps({"specversion": "1.0", "id": 7, "type": "t", "data": [1], "source": None}).encode()
    with pytest.raises(InvalidInputError) as error:
        decode(raw)
    assert error.value.fields == {
        "id": ["must be a non-empty string, not a number"],
        "source": ["must be a non-empty string, not null"],
        "data": ["must be a JSON object, not an array"],
    }
    with pytest.raises(InvalidInputError) as missing:
        decode(b"{}")
    assert missing.value.fields == {name: ["missing"] for name in ("specversion", "id", "source", "type", "data")}


def test_decode_accepts_a_minimal_valid_event_with_extensions() -> None:
    """Only the required attributes are checked: optional and extension attributes pass through."""
    event = decode(json.dumps({**VALID, "traceparent": "00-abc-def-01"}).encode())
    assert event["traceparent"] == "00-abc-def-01" and event["data"] == {}


@pytest.mark.parametrize("depth", [40, 500, 10_000])
def test_decode_refuses_a_record_nested_too_deeply_whatever_the_depth(depth: int) -> None:
    """A record nested beyond MAX_NESTING is refused with one message naming the limit, both when the JSON
    parser could read it (40, 500 levels: validation or redaction would recurse into it later) and when it
    could not (10,000 levels: RecursionError inside json); the limit leaves room for every real event."""
    nested = "[" * depth + "]" * depth
    raw = f'{{"specversion":"1.0","id":"1","source":"s","type":"t","data":{{"x":{nested}}}}}'.encode()
    with pytest.raises(InvalidInputError) as error:
        decode(raw)
    assert error.value.fields == {"_record": [f"nested more than {MAX_NESTING} levels deep"]}
    shallow = "[" * (MAX_NESTING - 2) + "]" * (MAX_NESTING - 2)
    assert decode(raw.replace(nested.encode(), shallow.encode()))["data"]["x"] is not None
