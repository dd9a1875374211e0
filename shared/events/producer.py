"""The Kafka producer every door uses: acknowledged by all in-sync replicas, idempotent, so a retried
send never duplicates a record. Create it in the process that uses it (after fork), never at import."""

from __future__ import annotations

from typing import Any

from kafka import KafkaProducer


def make_producer(bootstrap_servers: str, **overrides: Any) -> KafkaProducer:
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "retries": 5,
        "max_in_flight_requests_per_connection": 5,
        "request_timeout_ms": 15_000,
        **overrides,
    }
    return KafkaProducer(**options)
