"""CloudEvents 1.0, structured JSON mode: the envelope of every Kafka record."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from shared.errors import InvalidInput

SPEC_VERSION = "1.0"
REQUIRED_TEXT_ATTRIBUTES = ("id", "source", "type")


def make_event(
    event_type: str, source: str, data: dict[str, Any], *, event_id: str | None = None,
    time: datetime | None = None, subject: str | None = None,
) -> dict[str, Any]:
    event = {
        "specversion": SPEC_VERSION,
        "id": event_id or str(uuid.uuid4()),
        "source": source,
        "type": event_type,
        "time": (time or datetime.now(UTC)).isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "data": data,
    }
    if subject is not None:
        event["subject"] = subject
    return event


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def decode(raw: bytes | None) -> dict[str, Any]:
    """A record's bytes to a CloudEvent, or InvalidInput naming what is wrong with it."""
    if raw is None:
        raise InvalidInput({"_record": ["the record has no value"]})
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidInput({"_record": [f"not UTF-8 text (byte {error.start})"]}) from None
    try:
        event = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        raise InvalidInput({"_record": [f"not JSON: {error}"]}) from None
    if not isinstance(event, dict):
        raise InvalidInput({"_record": ["a CloudEvent must be a JSON object"]})
    problems: dict[str, list[str]] = {}
    if event.get("specversion") != SPEC_VERSION:
        problems["specversion"] = [f"must be {SPEC_VERSION!r}"]
    for attribute in REQUIRED_TEXT_ATTRIBUTES:
        if not isinstance(event.get(attribute), str) or not event[attribute]:
            problems[attribute] = ["required, a non-empty string"]
    if not isinstance(event.get("data"), dict):
        problems["data"] = ["required, a JSON object"]
    if problems:
        raise InvalidInput(problems, "the record is not a valid CloudEvent")
    return event
