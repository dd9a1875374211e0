"""Batch rescoring throughput through `rescore` (validation, offline features, model, explanations,
rules, writing), CSV in and Parquet out.

    .venv/bin/python -m bench.batch_throughput [--service fraud|claims|disease] [--rows 100000]
"""

from __future__ import annotations

import argparse
import json
import time

import pandas as pd

from bench.common import bench_settings, record, workdir
from bench.traffic import traffic
from services.registry import runtime, service_names
from shared.doors.batch import rescore


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--service", choices=service_names(), default="fraud")
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    work = workdir()
    settings = bench_settings(work, args.service)
    load = traffic(args.service, settings, args.rows)
    source = work / "events.csv"
    pd.json_normalize(load.events).to_csv(source, index=False)  # nested fields as dotted columns
    history_paths = {}
    for name, rows in load.history.items():
        history_paths[name] = work / f"{name}.jsonl"
        history_paths[name].write_text("".join(json.dumps(row) + "\n" for row in rows))
    core = runtime(args.service, settings).core
    started = time.perf_counter()
    summary = rescore(core, source, work / "decisions.parquet", progress=False, history_paths=history_paths)
    elapsed = time.perf_counter() - started
    record(
        f"batch_throughput_{args.service}",
        {
            "service": args.service,
            "rows": summary.rows,
            "scored": summary.scored,
            "traffic": load.description,
            "input": "csv",
            "output": "parquet",
            "seconds": round(elapsed, 2),
            "rows_per_second": round(summary.rows / elapsed, 1),
            "decisions": summary.decisions,
        },
    )


if __name__ == "__main__":
    main()
