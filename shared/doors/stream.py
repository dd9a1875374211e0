"""The Kafka door: a stream handler that runs micro-batches through a service's scoring core.

Invalid events become dead letters (the StreamWorker keeps the original bytes); valid ones are decided
once (a redelivered event gets its recorded decision back, marked replayed; a recorded id with another
payload is a dead letter), scored together, recorded, and each decision is produced to the output topic
as a CloudEvent keyed by the entity id, whose id is the decision id, the same on every delivery.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from shared.core.contract import ValidEvent, validate_event
from shared.core.idempotency import Conflict, decide_once
from shared.core.outcomes import learn, report_of, validate_outcome
from shared.core.scoring import ScoringCore
from shared.core.service import Event, Service
from shared.decisions import DecisionStore, OutcomeReport, OutcomeStatus
from shared.errors import InvalidInputError, NotReadyError, UsageError
from shared.events.consumer import Handler, Inbound, Produce, Reject, StreamWorker
from shared.events.envelope import make_event
from shared.logging import configure_logging, get_logger
from shared.metrics import DECISIONS, REJECTED, SCORING_SECONDS, render
from shared.privacy import mask_secrets, redact_event_record
from shared.runtime import Runtime
from shared.state import StateStore

CONFLICT = "conflict"
UNKNOWN_EVENT = "unknown_event"
NO_DECISION_STORE = "no_decision_store"
OUTCOME_TIME_FIELD = "reported_at"  # shared.core.outcomes: when the source established the outcome


def scoring_handler(
    current: Callable[[], ScoringCore], store: StateStore, decisions: DecisionStore | None = None
) -> Handler:
    """Scores the events of the input topics; records those of history topics and learns those of the
    outcome topic (no output for either). History is taken in before the batch's scoring, so an event sees
    the notifications polled with it; outcomes (and those history reveals) are learnt after it, so an
    outcome polled with the decision it reports on finds that decision recorded. `current` gives the core
    in force; each batch is scored whole by the core it started with. With a decision store, each decision
    is recorded before it is produced (and before the offsets are committed)."""
    service = current().service
    output = service.output_topic
    histories = {h.topic.name: (h, h.schema()) for h in service.history_inputs}
    outcome_topic = service.outcome_topic.name if service.outcome_topic is not None else None
    log = get_logger(f"{service.name}.stream")

    def take_outcomes(reports: list[tuple[int | None, OutcomeReport]], results: list[list[Produce] | Reject]) -> None:
        """Learn outcomes (from the outcome topic, or revealed by history events: no position of their own)."""
        if not reports:
            return
        if decisions is None:
            for index, _ in reports:
                if index is not None:
                    results[index] = Reject(NO_DECISION_STORE, "outcomes join recorded decisions; none are recorded")
            return
        learnt = learn(service, [r for _, r in reports], decisions, store, "stream")
        for (index, report), result in zip(reports, learnt, strict=True):
            if index is not None and result.status is OutcomeStatus.UNKNOWN_EVENT:
                message = f"no decision is recorded for {report.event_id!r}"
                results[index] = Reject(UNKNOWN_EVENT, message, {service.event_id_field: [message]})

    def handle(batch: Sequence[Inbound]) -> list[list[Produce] | Reject]:
        core = current()
        results: list[list[Produce] | Reject] = [[] for _ in batch]
        valid: list[ValidEvent] = []
        positions: list[int] = []
        updates: dict[str, list[Event]] = {}
        reports: list[tuple[int | None, OutcomeReport]] = []
        for index, inbound in enumerate(batch):
            try:
                if inbound.topic == outcome_topic:
                    reports.append((index, report_of(service, validate_outcome(service, inbound.event.get("data")))))
                elif inbound.topic in histories:
                    updates.setdefault(inbound.topic, []).append(
                        validate_event(histories[inbound.topic][1], inbound.event.get("data"))
                    )
                else:
                    valid.append(core.validate(inbound.event.get("data")))
                    positions.append(index)
            except InvalidInputError as error:
                REJECTED.labels(service.name, "stream").inc()
                results[index] = Reject(error.code, str(error), error.fields)
        for topic, events in updates.items():
            histories[topic][0].record(events, store)
        if valid:
            score(core, valid, positions, results, len(batch))
        if decisions is not None:
            for topic, events in updates.items():
                history = histories[topic][0]
                reports.extend((None, r) for r in service.outcomes_from_history(history, events, decisions))
        take_outcomes(reports, results)
        return results

    def score(
        core: ScoringCore,
        valid: list[ValidEvent],
        positions: list[int],
        results: list[list[Produce] | Reject],
        batch_size: int,
    ) -> None:
        """Decide the batch's valid events (each once), putting each one's decision event in its position."""
        started = time.perf_counter()
        answers = decide_once(
            core, valid, lambda chosen: core.score_online([valid[p] for p in chosen], store), decisions, "stream"
        )
        SCORING_SECONDS.labels(service.name, "stream").observe(time.perf_counter() - started)
        replayed = 0
        for index, answer in zip(positions, answers, strict=True):
            if isinstance(answer, Conflict):
                REJECTED.labels(service.name, "stream").inc()
                results[index] = Reject(CONFLICT, answer.message, {service.event_id_field: [answer.message]})
                continue
            replayed += answer.replayed
            if not answer.replayed:
                DECISIONS.labels(service.name, "stream", answer.decision).inc()
            event = make_event(
                output.event_type,
                source=f"/risk/{service.name}",
                data=answer.document,
                event_id=answer.document["decision_id"],
                subject=answer.event_id,
            )
            results[index] = [Produce(topic=output.name, key=answer.entity_id, event=event)]
        log.info(
            "stream_batch_scored",
            events=batch_size,
            decided=len(answers),
            replayed=replayed,
            event_ids=[a.event_id for a in answers],
            entity_ids=[a.entity_id for a in answers if not isinstance(a, Conflict)],
        )

    return handle


def build_worker(runtime: Runtime, **worker_options: Any) -> StreamWorker:
    """The service's stream worker over `runtime`'s core and state store."""
    service, settings = runtime.service, runtime.settings
    runtime.holder.load()  # the model and ruleset now: a missing model stops the worker before it joins
    if service.personal_fields:
        worker_options.setdefault(
            "dead_letter_redactor",
            partial(
                redact_event_record,
                known_fields=frozenset(service.event_schema().fields),
                personal_fields=frozenset(service.personal_fields),
                secret=settings.pseudonym_key,
            ),
        )
    worker_options.setdefault("max_idle_ms", settings.stream_max_idle_ms)
    worker_options.setdefault("outage_seconds", settings.stream_outage_seconds)
    history_topics = tuple(h.topic for h in service.history_inputs)
    outcome_topics = (service.outcome_topic,) if service.outcome_topic is not None else ()
    return StreamWorker(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=f"risk-{service.name}",
        inputs=(*service.input_topics, *history_topics, *outcome_topics),
        handler=scoring_handler(lambda: runtime.core, runtime.state, runtime.decisions),
        batch_size=settings.stream_batch_size,
        time_fields=event_time_fields(service),
        # At an equal event time, what happened to an entity (a claim, an outcome) comes before what is scored.
        precedence=tuple(topic.name for topic in (*history_topics, *outcome_topics)),
        outputs=(service.output_topic,),
        **worker_options,
    )


def event_time_fields(service: Service) -> dict[str, str]:
    """Per input topic, the field of an event's data that says when it happened, for event-time order: the
    service's own time field for what it scores and for history events that carry it (a claim's loss time),
    and when the outcome was established for outcomes. Not the CloudEvent `time`: producers set that when
    they publish (a replay of last month is all "now"), while the features and the batch door order events
    by their own time, which is what the stream must follow to give the same answers."""
    fields = {topic.name: service.event_time_field for topic in service.input_topics}
    for history in service.history_inputs:
        if service.event_time_field in history.schema().fields:
            fields[history.topic.name] = service.event_time_field
    if service.outcome_topic is not None:
        fields[service.outcome_topic.name] = OUTCOME_TIME_FIELD
    return fields


def run_worker(runtime: Runtime, metrics_address: tuple[str, int] | None = None) -> None:
    """`risk stream SERVICE`: consume until SIGTERM/SIGINT, finishing and committing the batch in hand; with
    `metrics_address`, serve /metrics, /healthz and /readyz there meanwhile."""
    configure_logging(runtime.settings.log_level, runtime.settings.pseudonym_key)
    worker = build_worker(runtime)
    server = serve_health(worker, metrics_address, store_checks(runtime)) if metrics_address is not None else None
    runtime.follow_control()
    try:
        worker.run_until_stopped_by_signals()
    finally:
        if server is not None:
            server.shutdown()
        runtime.close()


# A worker that has not polled for this long is stuck (kafka-python's own limit before the group evicts it).
STALE_AFTER_SECONDS = 30.0


def store_checks(runtime: Runtime) -> dict[str, Callable[[], None]]:
    """The worker's stores, each pinged (NotReadyError when down, within the store's timeout) by /readyz."""
    checks = {"state_store": runtime.state.ping}
    decisions = runtime.decisions
    if decisions is not None:
        checks["decision_store"] = decisions.ping
    return checks


def readiness(worker: StreamWorker, checks: Mapping[str, Callable[[], None]]) -> dict[str, Any]:
    """Whether the worker decides records now, and why not: the broker (in its group, reachable), an outage
    it is waiting out, and each store pinged (a store's message with any password in its URL masked)."""
    found: dict[str, str] = {"broker": "ok" if worker.broker_reachable else "unavailable: no group coordinator"}
    if worker.waiting_for is not None:
        found["outage"] = f"unavailable: waiting for the {worker.waiting_for} to answer"
    for name, ping in checks.items():
        try:
            ping()
            found[name] = "ok"
        except NotReadyError as error:
            found[name] = f"unavailable: {mask_secrets(str(error))}"
    return {"ready": all(value == "ok" for value in found.values()), "checks": found}


def serve_health(
    worker: StreamWorker, address: tuple[str, int], checks: Mapping[str, Callable[[], None]] | None = None
) -> WSGIServer:
    """The stream worker's own HTTP port, on a thread: `/metrics` (Prometheus: records, decisions, dead
    letters...), `/healthz` (200 while the consumer loop polls; 503 when it has not for 30 s) and `/readyz`
    (200 while it decides records; 503, with Retry-After, while the broker or a store of `checks` is down)."""

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            body, content_type = render()
            status = "200 OK"
        elif path == "/healthz":
            polled = worker.last_poll_at
            since = None if polled is None else round(time.monotonic() - polled, 3)
            healthy = since is None or since < STALE_AFTER_SECONDS  # None: still joining its group
            body = json.dumps({"status": "ok" if healthy else "stuck", "seconds_since_poll": since}).encode()
            status, content_type = ("200 OK" if healthy else "503 Service Unavailable"), "application/json"
        elif path == "/readyz":
            answer = readiness(worker, checks or {})
            body, content_type = json.dumps(answer).encode(), "application/json"
            status = "200 OK" if answer["ready"] else "503 Service Unavailable"
        else:
            body, status, content_type = b'{"error": "not_found"}', "404 Not Found", "application/json"
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        if status.startswith("503"):
            headers.append(("Retry-After", "1"))
        start_response(status, headers)
        return [body]

    try:
        server = make_server(address[0], address[1], application, handler_class=_QuietHandler)
    except OSError as error:
        raise UsageError(f"--metrics-port {address[1]} on {address[0]}: {error.strerror}: choose another") from None
    threading.Thread(target=server.serve_forever, name="stream-health", daemon=True).start()
    get_logger("stream").info("stream_health_serving", host=address[0], port=server.server_port)
    return server


class _QuietHandler(WSGIRequestHandler):
    """Scrapes every few seconds are not news: no access log line for each."""

    def log_message(self, format: str, *args: Any) -> None:
        return None
