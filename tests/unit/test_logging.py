"""The masking processor replaces personal values with keyed pseudonyms before anything is rendered."""

from __future__ import annotations

import io
import json

from shared.logging import configure_logging, get_logger
from shared.privacy import pseudonymise


def test_personal_keys_are_pseudonymised_at_any_depth_and_others_kept() -> None:
    """customer_id, entity_ids (lists) and nested patient_id are masked with the keyed hash; other
    fields pass through; the output is one JSON object per line."""
    stream = io.StringIO()
    configure_logging("INFO", b"k1", stream=stream)
    get_logger("t").info("scored", customer_id="4929-1", entity_ids=["a", "b"], extra={"patient_id": "p-9"}, score=0.25)
    line = json.loads(stream.getvalue())
    assert line["customer_id"] == pseudonymise("4929-1", b"k1")
    assert line["entity_ids"] == [pseudonymise("a", b"k1"), pseudonymise("b", b"k1")]
    assert line["extra"]["patient_id"] == pseudonymise("p-9", b"k1")
    assert line["score"] == 0.25 and line["event"] == "scored" and line["component"] == "t"
    assert "4929-1" not in stream.getvalue()


def test_pseudonyms_depend_on_the_key() -> None:
    """Without the key the pseudonym cannot be recomputed: another key gives another token."""
    assert pseudonymise("4929-1", b"k1") != pseudonymise("4929-1", b"k2")
    assert pseudonymise("4929-1", b"k1") == pseudonymise("4929-1", b"k1")


def test_a_logger_made_before_configuration_follows_it() -> None:
    """Module-level loggers exist before `configure_logging` runs; they must still mask and emit JSON."""
    early = get_logger("early")
    stream = io.StringIO()
    configure_logging("INFO", b"k1", stream=stream)
    early.info("dead_letter", customer_id="4929-1")
    line = json.loads(stream.getvalue())
    assert line["customer_id"] == pseudonymise("4929-1", b"k1") and line["component"] == "early"


def test_standard_library_lines_are_json_and_masked_too() -> None:
    """A third-party library's `logging` line (kafka-python's) comes out as one JSON object with its logger
    as the component, personal values passed as extras masked like the project's own."""
    import logging

    stream = io.StringIO()
    configure_logging("INFO", b"k1", stream=stream)
    logging.getLogger("kafka.conn").warning("broker %s gone", "b1", extra={"customer_id": "4929-1"})
    logging.getLogger("kafka.conn").info("connection chatter")  # below kafka's floor: not written
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 1
    line = lines[0]
    assert line["event"] == "broker b1 gone" and line["level"] == "warning" and line["component"] == "kafka.conn"
    assert line["customer_id"] == pseudonymise("4929-1", b"k1") and "4929-1" not in stream.getvalue()
    assert "timestamp" in line


def test_a_value_that_already_is_a_pseudonym_is_logged_as_it_is() -> None:
    """A decision's entity id (a pseudonym already) is not hashed again, so the logs name a card as its
    decisions do; a raw id beside it is still masked."""
    stream = io.StringIO()
    configure_logging("INFO", b"k1", stream=stream)
    card = pseudonymise("4929-1", b"k1")
    get_logger("t").info("scored", entity_ids=[card, "4929-2"], customer_id=card)
    line = json.loads(stream.getvalue())
    assert line["entity_ids"] == [card, pseudonymise("4929-2", b"k1")] and line["customer_id"] == card


def test_a_used_logger_follows_every_later_configuration_and_log_capture() -> None:
    """A logger that has logged already writes to the stream, level and key of each later configuration,
    and into structlog's log capture while one is open."""
    from structlog.testing import capture_logs

    log = get_logger("again")
    first, second = io.StringIO(), io.StringIO()
    configure_logging("INFO", b"k1", stream=first)
    log.info("one", customer_id="4929-1")
    configure_logging("WARNING", b"k2", stream=second)
    log.info("two")
    log.warning("three", customer_id="4929-1")
    with capture_logs() as captured:
        log.warning("four")
    log.warning("five")
    assert [json.loads(line)["event"] for line in first.getvalue().splitlines()] == ["one"]
    lines = [json.loads(line) for line in second.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["three", "five"]
    assert lines[0]["customer_id"] == pseudonymise("4929-1", b"k2")
    assert [entry["event"] for entry in captured] == ["four"]
