"""Dead letters the stream worker builds for poison records: always sendable, whatever the record.

The worker is built but never run (its Kafka clients are made in `run`), so these need no broker; the
integration test `test_stream_poison` sends the same records through a real one."""

from __future__ import annotations

import json
from typing import Any

from kafka.consumer.fetcher import ConsumerRecord

from shared.events.consumer import (
    DEAD_LETTER_EXCERPT_BYTES,
    INTERNAL_ERROR,
    Inbound,
    Produce,
    Reject,
    StreamWorker,
)
from shared.events.envelope import make_event
from shared.events.topics import Topic

SOURCE = Topic("test.poison.in", "com.riskscoring.test.input.v1", partitions=3)
ONE_MIB = 1024 * 1024


def worker(**options: Any) -> StreamWorker:
    def echo(batch: list[Inbound]) -> list[list[Produce] | Reject]:
        return [[] for _ in batch]

    return StreamWorker(bootstrap_servers="127.0.0.1:1", group_id="g", inputs=[SOURCE], handler=echo, **options)


def record(value: bytes | None, key: bytes | None = b"card-1", offset: int = 41) -> ConsumerRecord:
    return ConsumerRecord(SOURCE.name, 2, -1, offset, 0, 0, key, value, [], None, 0, 0, 0)


def size_of(key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> int:
    return len(key or b"") + len(value or b"") + sum(len(name) + len(data) for name, data in headers)


def test_a_dead_letter_small_enough_keeps_the_original_bytes_and_no_truncation_header() -> None:
    """A refused record that fits is dead-lettered as it came, key and bytes, with the reason and origin."""
    original = b'{"not": "a cloud event"}'
    (dead,) = worker()._to_outgoing(record(original), Reject("undecodable", "the record is not a CloudEvent"))
    headers = dict(dead.headers)
    assert (dead.topic, dead.key, dead.value) == (SOURCE.dead_letter.name, b"card-1", original)
    assert json.loads(headers["error"])["code"] == "undecodable"
    assert (headers["source_topic"], headers["source_partition"], headers["source_offset"]) == (
        SOURCE.name.encode(),
        b"2",
        b"41",
    )
    assert "truncated" not in headers


def test_a_dead_letter_too_large_for_the_producer_becomes_a_marked_excerpt_with_every_header() -> None:
    """A 2 MiB record (over kafka-python's 1 MiB max_request_size) is dead-lettered as its first 64 KiB,
    with the reason, the origin, `truncated: true` and the original sizes; the result fits the limit."""
    original = b"{" + b"x" * (2 * ONE_MIB)
    (dead,) = worker()._to_outgoing(record(original), Reject("invalid_input", "too long", {"terminal_id": ["long"]}))
    headers = dict(dead.headers)
    assert dead.value == original[:DEAD_LETTER_EXCERPT_BYTES] and dead.key == b"card-1"
    assert headers["truncated"] == b"true"
    assert headers["original_value_bytes"] == str(len(original)).encode()
    assert json.loads(headers["error"]) == {
        "code": "invalid_input",
        "message": "too long",
        "fields": {"terminal_id": ["long"]},
    }
    assert headers["source_offset"] == b"41" and headers["source_partition"] == b"2"
    assert size_of(dead.key, dead.value, dead.headers) < ONE_MIB


def test_the_excerpt_shrinks_to_what_a_lower_producer_limit_leaves_room_for() -> None:
    """With max_request_size at 40 KiB the excerpt is smaller than 64 KiB, and so is an oversized key."""
    limit = 40 * 1024
    original, key = b"v" * (3 * ONE_MIB), b"k" * ONE_MIB
    outgoing = worker(producer_overrides={"max_request_size": limit})
    (dead,) = outgoing._to_outgoing(record(original, key=key), Reject("undecodable", "not JSON"))
    assert dead.value and original.startswith(dead.value) and len(dead.value) < DEAD_LETTER_EXCERPT_BYTES
    assert dead.key and key.startswith(dead.key) and len(dead.key) <= 1024
    assert dict(dead.headers)["original_key_bytes"] == str(len(key)).encode()
    assert size_of(dead.key, dead.value, dead.headers) < limit


def test_a_reason_a_poison_record_made_huge_is_bounded_in_the_error_header() -> None:
    """A 2 MiB event type quoted in the message and 100,000 unknown fields give an `error` header of a few
    KiB, still JSON with the code, a clipped message, the first fields and how many were left out."""
    fields = {f"unknown_{i}": ["Unknown field."] for i in range(100_000)}
    reject = Reject("wrong_event_type", "carries 't', not " + "t" * (2 * ONE_MIB), fields)
    (dead,) = worker()._to_outgoing(record(b"{}"), reject)
    header = dict(dead.headers)["error"]
    error = json.loads(header)
    assert len(header) < 16 * 1024
    assert error["code"] == "wrong_event_type" and error["message"].startswith("carries 't', not ttt")
    assert error["fields_omitted"] == 100_000 - len(error["fields"]) and error["truncated"] is True
    assert error["fields"]["unknown_0"] == ["Unknown field."]


def test_a_redactor_that_fails_on_a_poison_record_still_gives_a_dead_letter_without_its_content() -> None:
    """When the redactor raises (here RecursionError), the record is still dead-lettered, with neither key
    nor value (they may hold personal data) and a header saying the payload was withheld."""

    def failing(key: bytes | None, value: bytes | None) -> Any:
        raise RecursionError("maximum recursion depth exceeded")

    (dead,) = worker(dead_letter_redactor=failing)._to_outgoing(record(b"[[[["), Reject("undecodable", "deep"))
    headers = dict(dead.headers)
    assert (dead.key, dead.value) == (None, b"")
    assert headers["payload"].startswith(b"withheld") and json.loads(headers["error"])["code"] == "undecodable"


def test_an_output_too_large_to_send_becomes_a_dead_letter_instead_of_stopping_the_worker() -> None:
    """A handler output over the producer's limit would fail every delivery attempt and stop the partition:
    the record is dead-lettered with internal_error instead; outputs that fit are produced as they are."""
    event = make_event("com.riskscoring.test.output.v1", "/tests", {"note": "n" * (2 * ONE_MIB)})
    (dead,) = worker()._to_outgoing(record(b"{}"), [Produce("test.poison.out", "card-1", event)])
    assert dead.topic == SOURCE.dead_letter.name and dead.dead_letter_code == INTERNAL_ERROR
    assert "larger than" in json.loads(dict(dead.headers)["error"])["message"]
    small = make_event("com.riskscoring.test.output.v1", "/tests", {"note": "n"})
    (produced,) = worker()._to_outgoing(record(b"{}"), [Produce("test.poison.out", "card-1", small)])
    assert produced.topic == "test.poison.out" and produced.dead_letter_code is None
