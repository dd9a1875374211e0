"""Batch rescoring throughput through `rescore` (validation, offline features, model, explanations,
rules, writing), for CSV in and Parquet out.

    .venv/bin/python -m bench.batch_throughput [--rows 100000]
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from bench.common import bench_settings, record, simulated_events, workdir
from services.fraud_detection.scoring import DEFINITION
from shared.batch.runner import rescore
from shared.runtime import load_core


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    work = workdir()
    settings = bench_settings(work)
    events = simulated_events(n_customers=1000, n_terminals=2000, nb_days=60)[-args.rows :]
    source = work / "transactions.csv"
    pd.DataFrame(events).to_csv(source, index=False)
    core = load_core(DEFINITION, settings)
    started = time.perf_counter()
    summary = rescore(core, source, work / "decisions.parquet", progress=False)
    elapsed = time.perf_counter() - started
    record("batch_throughput", {
        "rows": summary.rows, "scored": summary.scored, "input": "csv", "output": "parquet",
        "seconds": round(elapsed, 2), "rows_per_second": round(summary.rows / elapsed, 1),
        "decisions": summary.decisions,
    })


if __name__ == "__main__":
    main()
