"""Prometheus metrics, defined once. Under gunicorn the multiprocess collector aggregates the workers
(PROMETHEUS_MULTIPROC_DIR is set by `risk serve` before any worker starts)."""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

DECISIONS = Counter("risk_decisions_total", "Decisions made", ["service", "door", "decision"])
SCORING_SECONDS = Histogram(
    "risk_scoring_seconds",
    "Time to score one batch of events",
    ["service", "door"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
HTTP_REQUESTS = Counter("risk_http_requests_total", "HTTP requests", ["service", "endpoint", "status"])
HTTP_SECONDS = Histogram(
    "risk_http_request_seconds",
    "HTTP request latency",
    ["service", "endpoint"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
REJECTED = Counter("risk_rejected_events_total", "Events refused by their contract", ["service", "door"])
DECISION_REPLAYS = Counter(
    "risk_decision_replays_total", "Events decided before: the recorded decision answered", ["service", "door"]
)
DECISION_CONFLICTS = Counter(
    "risk_decision_conflicts_total", "Event ids decided before for another payload: refused", ["service", "door"]
)
OUTCOMES = Counter(
    "risk_outcomes_total",
    "Outcomes learnt, by what became of them (recorded, duplicate...)",
    ["service", "door", "status"],
)
DECISIONS_PRUNED = Counter("risk_decisions_pruned_total", "Recorded decisions deleted by retention", ["service"])


def render() -> tuple[bytes, str]:
    """The exposition text, aggregated over processes when running multiprocess."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


STREAM_RECORDS = Counter("risk_stream_records_total", "Records consumed by stream workers", ["topic"])
STREAM_PRODUCED = Counter("risk_stream_produced_total", "Records produced by stream workers", ["topic"])
STREAM_DEAD_LETTERS = Counter(
    "risk_stream_dead_letters_total", "Records sent to a dead-letter topic", ["topic", "code"]
)
STREAM_BATCH_SECONDS = Histogram(
    "risk_stream_batch_seconds",
    "Time to handle, produce and commit one micro-batch",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
CONTROL_CHANGES = Counter(
    "risk_control_changes_total", "Ruleset or model changes applied by this process", ["service", "kind"]
)
CONTROL_REFUSALS = Counter(
    "risk_control_refusals_total", "Ruleset or model changes this process refused", ["service", "kind"]
)
STATE_PRUNED = Counter(
    "risk_state_pruned_records_total", "Window-state records pruned past their retention", ["namespace"]
)
