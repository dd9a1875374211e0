"""Announcing a change in force on `risk.control`, so every instance applies it within seconds."""

from __future__ import annotations

from dataclasses import asdict

from kafka.errors import KafkaError

from shared.control.store import Change
from shared.events.envelope import encode, make_event
from shared.events.producer import make_producer
from shared.events.topics import RISK_CONTROL
from shared.logging import get_logger


def announce(bootstrap_servers: str, change: Change, source: str) -> bool:
    """True when the broker acknowledged the announcement. When it did not, the change is in force anyway
    (it is on record in the control store) and instances pick it up at their next periodic check."""
    event = make_event(RISK_CONTROL.event_type, source=source, data=asdict(change), subject=change.service)
    try:
        producer = make_producer(bootstrap_servers)
        try:
            producer.send(RISK_CONTROL.name, key=change.service.encode(), value=encode(event)).get(timeout=10)
        finally:
            producer.close(timeout=5)
    except KafkaError as error:
        get_logger("control").warning(
            "control_announcement_failed",
            service=change.service,
            kind=change.kind,
            version=change.version,
            error=type(error).__name__,
        )
        return False
    return True
