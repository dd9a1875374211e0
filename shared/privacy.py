"""Keyed pseudonyms for personal identifiers (HMAC-SHA256), so the same id maps to the same token
without the token revealing the id to anyone who lacks the key; and the redaction of dead letters from
inputs that carry personal data."""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Collection, Iterable
from typing import Any

from shared.jsonlimits import too_deep

PSEUDONYM_PREFIX = "pid_"
PSEUDONYM_PATTERN = "^pid_[0-9a-f]{20}$"  # what `pseudonymise` makes
_PSEUDONYM = re.compile(PSEUDONYM_PATTERN)
MASK = "***"
# scheme://user:password@host -> scheme://user:***@host (redis://:secret@host too)
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:@/\s]*):(?P<password>\S+)@")
# password=..., token=..., api_key=... in query strings and messages
_SECRET_PARAMETER = re.compile(r"(?i)\b(?P<name>password|passwd|pwd|secret|token|api[_-]?key)=(?P<value>[^&\s;,)]+)")
MIN_SECRET_LENGTH = 4  # shorter known values would mask ordinary words


def pseudonymise(value: object, key: bytes) -> str:
    digest = hmac.digest(key, str(value).encode(), "sha256")  # the one-shot C call: no HMAC object per value
    return f"{PSEUDONYM_PREFIX}{digest[:10].hex()}"


def pseudonym_of(value: object, key: bytes) -> str:
    """`value`'s pseudonym, or `value` itself when it already is one (an id the contract pseudonymised,
    logged or looked up again), so one card or patient has one token in decisions, searches and logs. (A
    raw id shaped like a pseudonym is taken for one: ids of that shape are made here, not by people.)"""
    text = str(value)
    return text if _PSEUDONYM.fullmatch(text) else pseudonymise(text, key)


def mask_secrets(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` safe to show a client: passwords in URLs and `password=`-like parameters masked, and every
    known secret value (API keys, the pseudonym key, ...) wherever it appears."""
    masked = _URL_PASSWORD.sub(rf"\g<head>:{MASK}@", text)
    masked = _SECRET_PARAMETER.sub(rf"\g<name>={MASK}", masked)
    for secret in sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True):
        masked = masked.replace(secret, MASK)
    return masked


def redact_event_record(
    key: bytes | None,
    value: bytes | None,
    *,
    known_fields: Collection[str],
    personal_fields: Collection[str],
    secret: bytes,
) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """A dead letter safe to keep: the key pseudonymised; in the CloudEvent's `data`, personal fields
    pseudonymised and fields the contract does not know dropped (they could hold anything: their names are
    listed in the `redacted_fields` header); a value that is not a CloudEvent with object data withheld."""
    safe_key = None if key is None else pseudonymise(key.decode("utf-8", "replace"), secret).encode()
    try:
        event = json.loads(value) if value else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        event = None
    if isinstance(event, dict) and too_deep(event):
        return safe_key, None, [("payload", b"withheld: nested too deeply to redact")]
    if not isinstance(event, dict) or not isinstance(event.get("data"), dict):
        return safe_key, None, [("payload", b"withheld: not a JSON event, so personal data could not be redacted")]
    data: dict[str, Any] = event["data"]
    personal_values = {str(data[name]) for name in personal_fields if data.get(name) is not None}
    redacted = {
        name: pseudonymise(item, secret) if name in personal_fields and item is not None else item
        for name, item in data.items()
        if name in known_fields
    }
    dropped = sorted(name for name in data if name not in known_fields)
    envelope = {
        name: pseudonymise(item, secret) if str(item) in personal_values else item
        for name, item in event.items()
        if name != "data"
    }
    headers = [("payload", b"redacted: personal fields pseudonymised")]
    if dropped:
        headers.append(("redacted_fields", ",".join(dropped).encode()))
    return safe_key, json.dumps({**envelope, "data": redacted}).encode(), headers
