"""The Kafka producer every door uses.

Acknowledged by all in-sync replicas and idempotent, so the producer's own retries never duplicate a
record; its waits are bounded so a dead broker surfaces as an error within seconds, not minutes (the
kafka-python defaults are 30 s to find a broker, 60 s to block in `send` and 120 s to deliver: a control
change approved while the broker was down held its HTTP request past gunicorn's 30 s worker timeout).
Keys and values are bytes: callers encode (`envelope.encode`), so nothing is serialised twice or in two
ways.

kafka-python clients hold sockets and a sender thread, which do not survive `fork`: create the
producer in the process that uses it (lazily, or in gunicorn's `post_fork`), never at import time.
"""

from __future__ import annotations

from typing import Any

from kafka import KafkaProducer

PRODUCER_DEFAULTS: dict[str, Any] = {
    "acks": "all",
    "enable_idempotence": True,
    "linger_ms": 5,  # a few ms of batching: most of the throughput, no visible latency
    "retries": 5,
    "retry_backoff_ms": 100,
    "max_in_flight_requests_per_connection": 5,  # the most idempotence allows while keeping order
    "request_timeout_ms": 10_000,
    "delivery_timeout_ms": 30_000,  # >= request_timeout_ms + linger_ms, as kafka-python requires
    "max_block_ms": 10_000,  # bound on `send` waiting for metadata or buffer space
    "bootstrap_timeout_ms": 10_000,  # bound on the constructor's wait for a first broker
}


def make_producer(bootstrap_servers: str, **overrides: Any) -> KafkaProducer:
    """A new producer with the defaults above; `overrides` are KafkaProducer options (tests, tuning)."""
    return KafkaProducer(bootstrap_servers=bootstrap_servers, **{**PRODUCER_DEFAULTS, **overrides})
