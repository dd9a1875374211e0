"""The Kafka door: a stream handler that runs micro-batches through a service's scoring core.

Invalid events become dead letters (the StreamWorker keeps the original bytes); valid ones are scored
together and each decision is produced, as a CloudEvent keyed by the entity id, to the output topic.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

from shared.control.listener import ControlListener
from shared.core.scoring import ScoringCore, ServiceDefinition, validate_event
from shared.errors import InvalidInputError
from shared.events.consumer import Handler, Inbound, Produce, Reject, StreamWorker
from shared.events.envelope import make_event
from shared.logging import configure_logging, get_logger
from shared.metrics import DECISIONS, REJECTED, SCORING_SECONDS
from shared.privacy import redact_event_record
from shared.runtime import CoreHolder
from shared.settings import Settings
from shared.state import StateStore, open_state_store


def scoring_handler(current: Callable[[], ScoringCore], store: StateStore) -> Handler:
    """Scores the events of the input topics; records those of history topics (no output for them).
    History is recorded before the batch's scoring, so an event sees the notifications polled with it.
    `current` gives the core in force; each batch is scored whole by the core it started with."""
    definition = current().definition
    output = definition.output_topic
    histories = {h.topic.name: (h, h.schema()) for h in definition.history_inputs}
    log = get_logger(f"{definition.name}.stream")

    def handle(batch: list[Inbound]) -> list[list[Produce] | Reject]:
        core = current()
        results: list[list[Produce] | Reject] = [[] for _ in batch]
        valid, positions = [], []
        updates: dict[str, list[dict]] = {}
        for index, inbound in enumerate(batch):
            try:
                if inbound.topic in histories:
                    updates.setdefault(inbound.topic, []).append(
                        validate_event(histories[inbound.topic][1], inbound.event.get("data"))
                    )
                else:
                    valid.append(core.validate(inbound.event.get("data")))
                    positions.append(index)
            except InvalidInputError as error:
                REJECTED.labels(definition.name, "stream").inc()
                results[index] = Reject(error.code, str(error), error.fields)
        for topic, events in updates.items():
            histories[topic][0].record(events, store)
        started = time.perf_counter()
        decisions = core.score_online(valid, store)
        SCORING_SECONDS.labels(definition.name, "stream").observe(time.perf_counter() - started)
        for index, decision in zip(positions, decisions, strict=True):
            DECISIONS.labels(definition.name, "stream", decision["decision"]).inc()
            event = make_event(
                output.event_type, source=f"/risk/{definition.name}", data=decision, subject=decision["event_id"]
            )
            results[index] = [Produce(topic=output.name, key=decision["entity_id"], event=event)]
        if decisions:
            log.info(
                "stream_batch_scored",
                events=len(batch),
                scored=len(decisions),
                event_ids=[d["event_id"] for d in decisions],
                entity_ids=[d["entity_id"] for d in decisions],
            )
        return results

    return handle


def build_worker(
    definition: ServiceDefinition, settings: Settings, holder: CoreHolder | None = None, **worker_options: object
) -> StreamWorker:
    holder = holder or CoreHolder(definition, settings)
    holder.core  # load the model and the ruleset now: a missing model stops the worker before it joins
    store = open_state_store(settings.state_url)
    if definition.personal_fields:
        worker_options.setdefault(
            "dead_letter_redactor",
            partial(
                redact_event_record,
                known_fields=frozenset(definition.event_schema().fields),
                personal_fields=frozenset(definition.personal_fields),
                secret=settings.pseudonym_key,
            ),
        )
    return StreamWorker(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=f"risk-{definition.name}",
        inputs=(*definition.input_topics, *(h.topic for h in definition.history_inputs)),
        handler=scoring_handler(lambda: holder.core, store),
        batch_size=settings.stream_batch_size,
        **worker_options,  # type: ignore[arg-type]
    )


def run_worker(definition: ServiceDefinition, settings: Settings) -> None:
    """`risk stream SERVICE`: consume until SIGTERM/SIGINT, finishing and committing the batch in hand."""
    configure_logging(settings.log_level, settings.pseudonym_key)
    holder = CoreHolder(definition, settings)
    worker = build_worker(definition, settings, holder)
    listener = ControlListener(settings.kafka_bootstrap_servers, definition.name, holder.refresh).start()
    try:
        worker.run_until_stopped_by_signals()
    finally:
        listener.stop()
