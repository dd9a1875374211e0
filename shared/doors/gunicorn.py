"""Launching the HTTP door under gunicorn: the command and environment `risk serve`, the demo, the tests and
the benchmarks all use. gunicorn builds the app in each worker, after fork, from an app factory spec; a
worker serves requests on one thread, or on RISK_HTTP_THREADS of them (infra/gunicorn.conf.py), which then
share the app and its runtime."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

GUNICORN_CONFIG = Path(__file__).resolve().parents[2] / "infra" / "gunicorn.conf.py"


def serve_environment(host: str, port: int, workers: int) -> dict[str, str]:
    """The environment gunicorn runs with: bind, workers, and a fresh Prometheus multiprocess directory."""
    metrics_dir = tempfile.mkdtemp(prefix="risk-prometheus-")
    return {
        **os.environ,
        "RISK_HTTP_BIND": f"{host}:{port}",
        "RISK_HTTP_WORKERS": str(workers),
        "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
    }


def gunicorn_command(app_spec: str) -> list[str]:
    """gunicorn serving `app_spec` ("module:factory(args)") with the project's configuration."""
    return [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONFIG), app_spec]
