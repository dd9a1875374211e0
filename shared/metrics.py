"""Prometheus metrics, defined once. Under gunicorn the multiprocess collector aggregates the workers
(PROMETHEUS_MULTIPROC_DIR is set by `risk serve` before any worker starts)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

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
QUALITY_ALERTS = Counter(
    "risk_quality_alerts_total", "Drift or calibration alerts raised by the monitor", ["service", "kind"]
)


@lru_cache(maxsize=4096)
def labelled(metric: MetricWrapperBase, *values: str) -> Any:
    """`metric.labels(*values)`, looked up once per label set: prometheus_client's own look-up (a lock, the
    values checked and joined into a key) costs a few microseconds, several times a request. For metrics
    whose label sets are few (services, doors, endpoints, statuses, outcomes); none is ever removed."""
    return metric.labels(*values)


def render(report: Mapping[str, Any] | None = None) -> tuple[bytes, str]:
    """The exposition text, aggregated over processes when running multiprocess, and the gauges of the
    latest monitoring report when there is one (the report is the one source of those figures, so every
    process exports the same ones)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        text = generate_latest(registry)
    else:
        text = generate_latest()
    if report is not None:
        quality = CollectorRegistry()
        quality.register(_QualityGauges(report))
        text += generate_latest(quality)
    return text, CONTENT_TYPE_LATEST


class _QualityGauges(Collector):
    """The figures of one monitoring report as gauges, labelled by service and model version."""

    def __init__(self, report: Mapping[str, Any]) -> None:
        self._report = report

    def collect(self) -> Iterator[GaugeMetricFamily]:
        service = str(self._report["service"])
        psi = GaugeMetricFamily(
            "risk_drift_psi",
            "Population stability index against the training reference",
            labels=["service", "model_version", "name"],
        )
        slope = GaugeMetricFamily(
            "risk_calibration_slope",
            "Calibration slope in production (1 is ideal)",
            labels=["service", "model_version"],
        )
        brier = GaugeMetricFamily("risk_brier_score", "Brier score in production", labels=["service", "model_version"])
        precision = GaugeMetricFamily(
            "risk_outcome_precision",
            "Share of a decision outcome's known outcomes that were positive",
            labels=["service", "model_version", "decision"],
        )
        recall = GaugeMetricFamily(
            "risk_outcome_recall",
            "Share of known positives given this decision outcome",
            labels=["service", "model_version", "decision"],
        )
        alerts = GaugeMetricFamily(
            "risk_quality_alerts", "Alerts in the latest monitoring report", labels=["service", "kind"]
        )
        for kind in ("drift", "calibration"):
            alerts.add_metric([service, kind], sum(a["kind"] == kind for a in self._report["alerts"]))
        labelled = GaugeMetricFamily(
            "risk_labelled_decisions", "Recorded decisions whose outcome is known", labels=["service", "model_version"]
        )
        for version, section in self._report["models"].items():
            drift = section["drift"]
            for name, value in ({"score": drift.get("score"), **drift.get("features", {})}).items():
                if value is not None:
                    psi.add_metric([service, version, name], value)
            calibration = section["calibration"] or {}
            if calibration.get("slope") is not None:
                slope.add_metric([service, version], calibration["slope"])
            if calibration.get("brier") is not None:
                brier.add_metric([service, version], calibration["brier"])
            for decision, figures in section["outcomes"].items():
                if figures["precision"] is not None:
                    precision.add_metric([service, version, decision], figures["precision"])
                if figures["recall"] is not None:
                    recall.add_metric([service, version, decision], figures["recall"])
            labelled.add_metric([service, version], section["labelled"])
        yield from (psi, slope, brier, precision, recall, labelled, alerts)


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
RULE_ERRORS = Counter(
    "risk_rule_errors_total",
    "Rules that could not be evaluated on an event (counted as hits with the ruleset's on_error outcome)",
    ["service", "rule"],
)
