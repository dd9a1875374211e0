"""Rescoring throughput on Spark's local mode, one and two cores (`local[1]`, `local[2]`), beside the local
engine on the same input: Parquet in, Parquet out, validation, window features, model, rules, decisions.

    .venv/bin/python -m bench.batch_spark [--service fraud|claims|disease] [--rows 100000]
        [--masters local[1],local[2]]

Each master gets a session of its own, started before the clock (about 13 s on an idle machine, timed
apart); the rescore itself is what `rows_per_second` covers. The load average is recorded beside the
figures: these machines are shared.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd

from bench.batch_profile import payments_file
from bench.common import bench_settings, record, workdir
from bench.traffic import traffic
from services.registry import runtime, service_names
from shared.doors.batch import rescore
from shared.doors.spark import rescore_on_spark, spark_session


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--service", choices=service_names(), default="fraud")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--masters", default="local[1],local[2]", help="comma-separated Spark master URLs")
    args = parser.parse_args()
    work = workdir()
    settings = bench_settings(work, args.service, "none")
    history_paths: dict[str, Path] = {}
    if args.service == "fraud":  # the replay traffic holds one test week: take the full simulation's first rows
        source = payments_file(settings.data_dir, work, args.rows, "parquet")
        description = f"the first {args.rows:,} payments of the full-size Handbook simulation"
    else:
        load = traffic(args.service, settings, args.rows)
        source, description = work / "events.parquet", load.description
        pd.DataFrame(load.events).to_parquet(source, index=False)
        for name, rows in load.history.items():
            history_paths[name] = work / f"{name}.parquet"
            pd.DataFrame(rows).to_parquet(history_paths[name], index=False)
    core = runtime(args.service, settings).core

    started = time.perf_counter()
    local = rescore(core, source, work / "local.parquet", progress=False, history_paths=history_paths)
    local_seconds = time.perf_counter() - started
    runs: dict[str, Any] = {
        "local engine": {
            "seconds": round(local_seconds, 2),
            "rows_per_second": round(local.rows / local_seconds, 1),
            "load_average": _load(),
        }
    }
    for master in args.masters.split(","):
        runs[master] = _spark_run(master, core, source, work, history_paths)
    record(
        f"batch_spark_{args.service}" if args.service != "fraud" else "batch_spark",
        {
            "service": args.service,
            "rows": local.rows,
            "traffic": description,
            "input": "parquet",
            "output": "parquet",
            "decisions": local.decisions,
            "runs": runs,
        },
    )


def _spark_run(master: str, core: Any, source: Path, work: Path, history_paths: dict[str, Path]) -> dict[str, Any]:
    # Hadoop reads brackets in a path as a glob: "local[2]" names no file.
    output = work / f"spark-{master.replace('[', '-').replace(']', '')}.parquet"
    started = time.perf_counter()
    with spark_session(master, temp_dir=work / "spark", progress=False) as spark:
        session_seconds = time.perf_counter() - started
        begun = time.perf_counter()
        summary = rescore_on_spark(core, source, output, spark=spark, history_paths=history_paths)
        seconds = time.perf_counter() - begun
    same = _same_decisions(work / "local.parquet", output)
    return {
        "session_start_seconds": round(session_seconds, 1),
        "seconds": round(seconds, 2),
        "rows_per_second": round(summary.rows / seconds, 1),
        "decisions_identical_to_local_engine": same,
        "load_average": _load(),
    }


def _same_decisions(local: Path, spark: Path) -> bool:
    a = pd.read_parquet(local).set_index("event_id").sort_index()
    b = pd.read_parquet(spark).set_index("event_id").sort_index()
    compared = [c for c in a.columns if c not in ("scored_at", "latency_ms", "score")]
    return bool(
        list(a.index) == list(b.index)
        and (a["score"] - b["score"]).abs().max() <= 1e-9
        and (a[compared].fillna("<null>") == b[compared].fillna("<null>")).all().all()
    )


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


if __name__ == "__main__":
    main()
