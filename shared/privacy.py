"""Keyed pseudonyms for personal identifiers (HMAC-SHA256), so the same id maps to the same token
without the token revealing the id to anyone who lacks the key."""

from __future__ import annotations

import hashlib
import hmac

PSEUDONYM_PREFIX = "pid_"


def pseudonymise(value: object, key: bytes) -> str:
    digest = hmac.new(key, str(value).encode(), hashlib.sha256).hexdigest()
    return f"{PSEUDONYM_PREFIX}{digest[:20]}"
