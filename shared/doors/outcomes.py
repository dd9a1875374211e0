"""The outcomes door: `POST /v1/outcomes` over HTTP and `risk outcomes import SERVICE FILE` in the terminal
(the Kafka side is the stream worker's outcome topic). Every path validates against the service's outcome
contract and learns through `shared.core.outcomes`, so each case (recorded, duplicate, revised, stale,
unknown) ends the same whichever way the outcome came.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from flask import Flask, Response, jsonify

from shared.core.outcomes import learn, report_of, validate_outcome
from shared.decisions import DecisionStore, OutcomeStatus
from shared.doors.bodies import field_path, json_body, one_or_batch, validated_all
from shared.errors import InvalidInputError, NotReadyError, UnknownEventError, UsageError
from shared.files import RecordWriter, read_chunks
from shared.runtime import Runtime


def register_outcome_routes(app: Flask, runtime: Runtime, max_events: int) -> None:
    service = runtime.service
    if not service.outcomes:
        return

    @app.post("/v1/outcomes")
    def outcomes() -> Response:
        items, single = one_or_batch(json_body(), "outcomes", max_events)
        validated = validated_all(items, "outcomes", single, partial(validate_outcome, service))
        store = decision_store(runtime)
        reports = [report_of(service, o) for o in validated]
        known = store.answers(service.name, [r.event_id for r in reports])
        missing = {
            field_path("outcomes", single, i, service.event_id_field): [
                f"no decision is recorded for {r.event_id!r}: an outcome joins a decided event"
            ]
            for i, r in enumerate(reports)
            if r.event_id not in known
        }
        if missing:  # refused whole, like a batch of events with one bad event
            raise UnknownEventError(missing, "an outcome names an event with no recorded decision")
        results = learn(service, reports, store, runtime.state, "http")
        answers = [{service.event_id_field: r.report.event_id, "status": r.status.value} for r in results]
        return jsonify(answers[0] if single else {"outcomes": answers})


def decision_store(runtime: Runtime) -> DecisionStore:
    found = runtime.decisions
    if found is None:
        raise NotReadyError("outcomes join recorded decisions, and this service records none (RISK_DECISIONS_URL=none)")
    return found


@dataclass(frozen=True)
class ImportSummary:
    rows: int
    statuses: dict[str, int]
    rejected: int
    rejects: Path | None


def import_outcomes(runtime: Runtime, path: Path, chunk_size: int = 5_000) -> ImportSummary:
    """Learn every outcome of a file (CSV, JSON Lines or Parquet); rows that break the contract or name no
    recorded decision are written with their row number to `<file>.rejects.jsonl`."""
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    service, store = runtime.service, decision_store(runtime)
    if not service.outcomes:
        raise UsageError(f"{service.name} learns its outcomes from its history inputs, not from a file")
    rejects_path = path.with_name(path.name + ".rejects.jsonl")
    statuses: Counter[str] = Counter()
    rows = rejected = 0
    with RecordWriter(rejects_path) as rejects:
        for chunk in read_chunks(path, chunk_size):
            reports, numbers, bad = [], [], []
            for row in chunk:
                rows += 1
                try:
                    reports.append(report_of(service, validate_outcome(service, row)))
                    numbers.append(rows)
                except InvalidInputError as error:
                    bad.append({"row": rows, "error": error.code, "fields": error.fields})
            for number, result in zip(numbers, learn(service, reports, store, runtime.state, "file"), strict=True):
                statuses[result.status.value] += 1
                if result.status is OutcomeStatus.UNKNOWN_EVENT:
                    message = f"no decision is recorded for {result.report.event_id!r}"
                    bad.append({"row": number, "error": "unknown_event", "fields": {service.event_id_field: [message]}})
            rejected += len(bad)
            rejects.write(sorted(bad, key=lambda r: r["row"]))
    if not rejected:
        rejects_path.unlink(missing_ok=True)
    return ImportSummary(rows, dict(statuses), rejected, rejects_path if rejected else None)
