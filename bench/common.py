"""What every benchmark needs: a trained fraud model, fresh settings, simulated events, a results file."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.fraud_detection.train import SIZES, train
from services.registry import service as service_named
from shared.errors import ModelNotFoundError
from shared.modeling.registry import ModelRegistry
from shared.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results"


def bench_settings(workdir: Path, service: str = "fraud") -> Settings:
    """Settings for a benchmark: the user's model registry when it has a model of `service`, else one
    trained here (fraud on the small simulation: same model size, 600 trees of depth 6, 16 features).
    Logging at INFO, as in production: one JSON line per request or message is part of the cost."""
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
