"""Quality in production, served: `GET /v1/monitoring` (the latest report, JSON), `GET /v1/monitoring/report`
(the same as a page with charts), the report's figures as Prometheus gauges on `/metrics`, and
`risk monitor SERVICE`, which computes a new report (compose runs it on a schedule)."""

from __future__ import annotations

import time
from typing import Any

from flask import Flask, Response, jsonify

from shared.errors import NotFoundError, NotReadyError
from shared.modeling.report import monitoring_page
from shared.runtime import Runtime

SNAPSHOT_CACHE_SECONDS = 30.0  # how long a process serves the report it read before asking the store again


class LatestReport:
    """The service's latest monitoring report, read from the store at most every SNAPSHOT_CACHE_SECONDS."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._report: dict[str, Any] | None = None
        self._read_at = float("-inf")

    def get(self) -> dict[str, Any] | None:
        store = self._runtime.decisions
        if store is None:
            return None
        if time.monotonic() - self._read_at > SNAPSHOT_CACHE_SECONDS:
            try:
                report = store.latest_snapshot(self._runtime.service.name)
            except NotReadyError:
                return self._report  # the store is down: keep exporting what was last known
            if report is not None:  # none yet: ask again next time, so the first report shows at once
                self._report, self._read_at = report, time.monotonic()
        return self._report


def register_monitoring_routes(app: Flask, runtime: Runtime, latest: LatestReport) -> None:
    def report() -> dict[str, Any]:
        found = latest.get()
        if found is None:
            raise NotFoundError(
                f"no monitoring report yet: `risk monitor {runtime.service.name}` computes one "
                "from the recorded decisions"
            )
        return found

    @app.get("/v1/monitoring")
    def monitoring() -> Response:
        return jsonify(report())

    @app.get("/v1/monitoring/report")
    def monitoring_report() -> Response:
        return Response(monitoring_page(report()), content_type="text/html; charset=utf-8")


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The report in a few lines for a terminal: per model version its outcomes' precision and recall,
    calibration, the score's and the three highest features' drift; then the alerts."""
    lines = [f"{report['service']}: {report['decisions']} decisions, {report['labelled']} with a known outcome"]
    for version, section in report["models"].items():
        calibration = section["calibration"] or {}
        lines.append(f"  model {version}: {section['decisions']} decisions, {section['labelled']} with an outcome")
        for decision, figures in section["outcomes"].items():
            lines.append(
                f"    {decision:<8} precision {figures['precision']}, recall {figures['recall']} "
                f"({figures['labelled']} labelled)"
            )
        lines.append(
            f"    calibration: Brier {calibration.get('brier')}, slope {calibration.get('slope')}, "
            f"intercept {calibration.get('intercept')}"
        )
        drift = section["drift"]
        if "features" in drift:
            worst = sorted(drift["features"].items(), key=lambda item: -(item[1] or 0.0))[:3]
            lines.append(f"    drift (PSI): score {drift['score']}; highest " + ", ".join(f"{k} {v}" for k, v in worst))
        else:
            lines.append(f"    drift: {drift['unavailable']}")
    alerts = [f"{a['kind']} of {a['figure']}: {a['value']} (threshold {a['threshold']})" for a in report["alerts"]]
    lines.append("  alerts: " + ("; ".join(alerts) if alerts else "none"))
    return lines
