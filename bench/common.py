"""What every benchmark needs: a trained fraud model, fresh settings, simulated events, a results file."""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.fraud_detection.train import SIZES, train
from services.registry import service as service_named
from shared.errors import ModelNotFoundError
from shared.modeling.registry import ModelRegistry
from shared.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results"


DECISION_STORES = ("sqlite", "postgresql", "none")


def add_decision_store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--decisions",
        choices=DECISION_STORES,
        default="sqlite",
        help="where decisions are recorded: the embedded SQLite file (default), a PostgreSQL server of the "
        "benchmark's own, or nowhere (to measure what recording costs)",
    )


@contextmanager
def decision_store_url(workdir: Path, kind: str) -> Iterator[str]:
    """A fresh decision store of `kind` for one benchmark run."""
    if kind == "postgresql":
        from tests.fixtures.postgres import own_postgres_server

        with own_postgres_server() as url:
            yield url
    else:
        yield "none" if kind == "none" else f"sqlite:///{workdir / 'decisions.sqlite3'}"


def result_name(bench: str, service: str, decisions: str) -> str:
    """The results file of a run: the default store's runs keep the plain name."""
    return f"{bench}_{service}" + ("" if decisions == "sqlite" else f"_{decisions}_decisions")


def bench_settings(workdir: Path, service: str = "fraud", decisions_url: str | None = None) -> Settings:
    """Settings for a benchmark: the user's model registry when it has a model of `service`, else one
    trained here (fraud on the small simulation: same model size, 600 trees of depth 6, 16 features).
    Logging at INFO, as in production: one JSON line per request or message is part of the cost. Decisions
    are recorded in `decisions_url` (a SQLite file in the work directory by default)."""
    settings = Settings.from_env()
    try:
        ModelRegistry(settings.model_dir).champion(service)
        model_dir = settings.model_dir
    except ModelNotFoundError:
        model_dir = workdir / "models"
        if service == "fraud":
            train(model_dir, settings.data_dir, SIZES["small"])
        else:
            service_named(service).train(model_dir, settings.data_dir, "full")
    return Settings.from_env(
        model_dir=model_dir,
        state_url=f"sqlite:///{workdir / 'state.sqlite3'}",
        decisions_url=decisions_url or f"sqlite:///{workdir / 'decisions.sqlite3'}",
        api_keys=("bench-key",),
        log_level="INFO",
        pseudonym_key=settings.pseudonym_key or b"bench-pseudonym-key",
    )


def workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="risk-bench-"))


def record(name: str, results: dict[str, Any]) -> Path:
    """Write results/<name>.json with the machine's facts beside the figures."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {
        "benchmark": name,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        **results,
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(json.dumps(payload, indent=2))
    return path
