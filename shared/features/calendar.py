"""Calendar features, read off the wall clock where the event happened (the timestamp's own offset)."""

from __future__ import annotations

from datetime import datetime

NIGHT_ENDS_AT_HOUR = 6


def is_weekend(moment: datetime) -> int:
    return int(moment.weekday() >= 5)


def is_night(moment: datetime) -> int:
    return int(moment.hour <= NIGHT_ENDS_AT_HOUR)
