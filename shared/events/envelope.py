"""CloudEvents 1.0 in structured JSON mode: the envelope of every Kafka record.

Structured mode puts the attributes and `data` in one JSON object in the record's value, so a record
read off a topic, a dead letter or a file is self-describing without its Kafka headers. Plain `json`
from the standard library is enough: the envelope is small and the spec's JSON format is simple.
https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/formats/json-format.md
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from shared.errors import InvalidInputError
from shared.jsonlimits import MAX_NESTING, too_deep

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
REQUIRED_STRING_ATTRIBUTES = ("id", "source", "type")
RECORD_FIELD = "_record"  # the key of `InvalidInputError.fields` for problems with the record as a whole


def make_event(
    event_type: str,
    source: str,
    data: dict[str, Any],
    *,
    event_id: str | None = None,
    time: datetime | None = None,
    subject: str | None = None,
) -> dict[str, Any]:
    """A CloudEvent dict ready for `encode`. `time` defaults to now; it must be timezone-aware, because
    RFC 3339 needs an offset and guessing one for a naive datetime would silently shift events."""
    event: dict[str, Any] = {
        "specversion": SPEC_VERSION,
        "id": event_id or str(uuid.uuid4()),
        "source": source,
        "type": event_type,
        "time": rfc3339(time or datetime.now(UTC)),
        "datacontenttype": CONTENT_TYPE,
        "data": data,
    }
    if subject is not None:
        event["subject"] = subject
    return event


def rfc3339(moment: datetime) -> str:
    """`moment` in UTC as RFC 3339 with a `Z` suffix (the form most CloudEvents tooling emits)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a CloudEvent time must be timezone-aware")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def encode(event: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON. NaN and infinities are refused (ValueError): they are not JSON and other
    consumers' parsers would reject the record."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def decode(raw: bytes | None) -> dict[str, Any]:
    """A record's value to a CloudEvent dict, or `InvalidInputError` whose `fields` name what is wrong, so the
    dead letter says why without anyone reading the bytes."""
    text = _utf8(raw)
    event = _json_object(text)
    problems = _attribute_problems(event)
    if problems:
        raise InvalidInputError(problems, "the record is not a valid CloudEvent")
    return event


def _utf8(raw: bytes | None) -> str:
    if raw is None:
        raise InvalidInputError({RECORD_FIELD: ["the record has no value"]}, "the record is empty")
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidInputError(
            {RECORD_FIELD: [f"not UTF-8 text (invalid byte at position {error.start})"]}, "the record is not UTF-8 text"
        ) from None


def _json_object(text: str) -> dict[str, Any]:
    """The JSON object in `text`. Nesting is bounded (MAX_NESTING), whether the parser itself gives up
    (RecursionError) or not: what it can still nest into, validation or redaction later might not."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise _too_deep() from None
    except ValueError as error:  # JSONDecodeError is a ValueError
        raise InvalidInputError({RECORD_FIELD: [f"not JSON: {error}"]}, "the record is not JSON") from None
    if too_deep(value):
        raise _too_deep()
    if not isinstance(value, dict):
        raise InvalidInputError(
            {RECORD_FIELD: [f"a CloudEvent must be a JSON object, not {_json_kind(value)}"]},
            "the record is not a JSON object",
        )
    return value


def _too_deep() -> InvalidInputError:
    return InvalidInputError({RECORD_FIELD: [f"nested more than {MAX_NESTING} levels deep"]}, "the record is too deep")


def _refuse_constant(name: str) -> Any:
    """Python's json accepts NaN/Infinity by default; the JSON spec does not, and `encode` would fail later."""
    raise ValueError(f"{name} is not a JSON value")


def _attribute_problems(event: dict[str, Any]) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    if "specversion" not in event:
        problems["specversion"] = ["missing"]
    elif event["specversion"] != SPEC_VERSION:
        problems["specversion"] = [f"must be {SPEC_VERSION!r}"]
    for name in REQUIRED_STRING_ATTRIBUTES:
        if name not in event:
            problems[name] = ["missing"]
        elif not isinstance(event[name], str) or not event[name]:
            problems[name] = [f"must be a non-empty string, not {_json_kind(event[name])}"]
    if "data" not in event:
        problems["data"] = ["missing"]
    elif not isinstance(event["data"], dict):
        problems["data"] = [f"must be a JSON object, not {_json_kind(event['data'])}"]
    return problems


def _json_kind(value: Any) -> str:
    """The JSON name of a value's type, for messages that must not echo the value itself."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "an empty string" if not value else "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
