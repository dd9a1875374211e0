"""Log lines are written by orjson and still say what the standard library's encoder said: masked ids,
dates through structlog's fallback, numbers from numpy as numbers, and what orjson refuses (an integer
beyond 64 bits, keys that are not text) written by the standard library rather than lost."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, datetime

import numpy as np

from shared.logging import configure_logging, get_logger
from shared.privacy import pseudonymise


def _line(**values: object) -> dict[str, object]:
    stream = io.StringIO()
    configure_logging("INFO", b"k1", stream=stream)
    get_logger("t").info("scored", **values)
    text = stream.getvalue()
    assert text.count("\n") == 1
    line: dict[str, object] = json.loads(text)
    return line


def test_a_line_keeps_its_values_and_masks_personal_ones() -> None:
    """Personal ids masked, numpy numbers as numbers, text as text, a datetime as structlog's fallback wrote it."""
    moment = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
    line = _line(customer_id="4929-1", score=np.float64(0.25), at=moment, text="prix élevé", n=3)
    assert line["customer_id"] == pseudonymise("4929-1", b"k1")
    assert line["score"] == 0.25 and line["n"] == 3 and line["text"] == "prix élevé"
    assert line["at"] == repr(moment)  # as structlog's fallback wrote it before


def test_what_orjson_refuses_is_written_by_the_standard_library() -> None:
    """An integer beyond 64 bits and keys that are not text still make a JSON line, with their values."""
    line = _line(huge=10**30, counts={1: "a"})
    assert line["huge"] == 10**30 and line["counts"] == {"1": "a"}


def test_standard_library_lines_are_json_too() -> None:
    """A line from a library's standard logger is rendered by the same encoder, with its component."""
    stream = io.StringIO()
    configure_logging("INFO", b"k1", stream=stream)
    logging.getLogger("werkzeug").warning("slow %s", "request")
    line = json.loads(stream.getvalue())
    assert line["event"] == "slow request" and line["component"] == "werkzeug"
