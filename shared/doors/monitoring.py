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
