"""CloudEvents envelope: what is produced, and why a record is refused."""

from __future__ import annotations

import pytest

from shared.errors import InvalidInput
from shared.events.envelope import decode, encode, make_event


def test_round_trip_keeps_every_attribute() -> None:
    """make_event -> encode -> decode gives the event back, with the required CloudEvents attributes."""
    event = make_event("com.example.t.v1", "/tests", {"a": 1}, subject="s-1")
    assert decode(encode(event)) == event
    assert event["specversion"] == "1.0" and event["time"].endswith("Z") and event["subject"] == "s-1"


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
    """Each malformed record raises InvalidInput whose fields name the attribute at fault."""
    with pytest.raises(InvalidInput) as error:
        decode(raw)
    assert field in error.value.fields
