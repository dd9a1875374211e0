"""How a running instance hears about changes: it follows `risk.control` from its end (no consumer group:
every instance must see every announcement) and, as a safety net for a lost announcement or an
unreachable broker, checks the control store every `CHECK_SECONDS`. Either way it calls `refresh`, which
reads what is in force from the store: an announcement is a wake-up call, never trusted as the state."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from shared.events.envelope import decode
from shared.events.topics import RISK_CONTROL
from shared.logging import get_logger

CHECK_SECONDS = 3.0
POLL_MS = 300


class ControlListener:
    def __init__(self, bootstrap_servers: str, service: str, refresh: Callable[[], bool]) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.service = service
        self._refresh = refresh
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"control-{service}", daemon=True)
        self._log = get_logger(f"{service}.control")

    def start(self) -> ControlListener:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        consumer: KafkaConsumer | None = None
        last_check, outage = 0.0, False
        while not self._stop.is_set():
            try:
                if consumer is None:
                    consumer = self._follow()
                announced = any(
                    self._concerns_us(record.value)
                    for records in consumer.poll(timeout_ms=POLL_MS).values()
                    for record in records
                )
            except KafkaError as error:  # broker away: keep the periodic check, try again later
                if not outage:  # once per outage, not every few seconds
                    self._log.warning("control_topic_unavailable", error=type(error).__name__)
                outage = True
                if consumer is not None:
                    consumer.close()
                consumer, announced = None, False
                self._stop.wait(CHECK_SECONDS)
            else:
                outage = False
            if announced or time.monotonic() - last_check >= CHECK_SECONDS:
                last_check = time.monotonic()
                try:
                    self._refresh()
                except Exception:  # a refresh must never kill the listener; the old core keeps serving
                    self._log.exception("control_refresh_failed")
        if consumer is not None:
            consumer.close()

    def _follow(self) -> KafkaConsumer:
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            client_id=f"risk-{self.service}-control",
        )
        partition = TopicPartition(RISK_CONTROL.name, 0)
        consumer.assign([partition])
        consumer.seek_to_end(partition)
        return consumer

    def _concerns_us(self, value: bytes | None) -> bool:
        try:
            return decode(value)["data"].get("service") == self.service
        except Exception:  # a malformed control record is no reason to stop listening
            return False
