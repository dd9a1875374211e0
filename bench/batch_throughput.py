"""Batch rescoring throughput through `rescore` (validation, offline features, model, explanations,
rules, writing), CSV in and Parquet out, on the fast engine or the row path (`--engine rows`); with
`--record`, every decision also recorded in a decision store,
whose size per million decisions is measured.

    .venv/bin/python -m bench.batch_throughput [--service fraud|claims|disease] [--rows 100000]
        [--record sqlite|postgresql] [--engine fast|rows]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from bench.common import bench_settings, decision_store_url, record, workdir
from bench.traffic import traffic
from services.registry import runtime, service_names
from shared.decisions.store import make_engine
from shared.doors.batch import rescore
from shared.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--service", choices=service_names(), default="fraud")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--record", choices=("sqlite", "postgresql"), help="record every decision (rescore --record)")
    parser.add_argument("--engine", choices=("fast", "rows"), default="fast", help="rescore --engine")
    args = parser.parse_args()
    work = workdir()
    with decision_store_url(work, args.record or "none") as decisions_url:
        run(args, work, bench_settings(work, args.service, decisions_url))


def run(args: argparse.Namespace, work: Path, settings: Settings) -> None:
    load = traffic(args.service, settings, args.rows)
    source = work / "events.csv"
    pd.json_normalize(load.events).to_csv(source, index=False)  # nested fields as dotted columns
    history_paths = {}
    for name, rows in load.history.items():
        history_paths[name] = work / f"{name}.jsonl"
        history_paths[name].write_text("".join(json.dumps(row) + "\n" for row in rows))
    parts = runtime(args.service, settings)
    core = parts.core
    started, cpu_started = time.perf_counter(), time.process_time()
    summary = rescore(
        core,
        source,
        work / "decisions.parquet",
        progress=False,
        history_paths=history_paths,
        record=parts.decisions,
        engine=args.engine,
    )
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    results: dict[str, Any] = {
        "service": args.service,
        "rows": summary.rows,
        "scored": summary.scored,
        "traffic": load.description,
        "engine": args.engine,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "input": "csv",
        "output": "parquet",
        "seconds": round(elapsed, 2),
        "rows_per_second": round(summary.rows / elapsed, 1),
        "cpu_seconds": round(cpu, 2),  # the process's user + system time: what other work does not inflate
        "rows_per_cpu_second": round(summary.rows / cpu, 1),
        "decisions": summary.decisions,
    }
    if args.record:
        size = store_bytes(settings.decisions_url)
        results["decision_store"] = {
            "backend": args.record,
            "decisions": summary.scored,
            "bytes": size,
            "bytes_per_decision": round(size / summary.scored, 1),
            "gib_per_million_decisions": round(size / summary.scored * 1e6 / 2**30, 3),
            "kept_per_decision": "the decision document, the pseudonymised input, the feature row, rule hits, indexes",
        }
    parts.close()
    name = (
        f"batch_throughput_{args.service}"
        + (f"_recorded_{args.record}" if args.record else "")
        + ("_rows_engine" if args.engine == "rows" else "")
    )
    record(name, results)


def store_bytes(url: str) -> int:
    """The store's size on disk: the SQLite file after a checkpoint, or PostgreSQL's tables with their
    indexes and TOAST."""
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "sqlite":
                connection.execute(sa.text("PRAGMA wal_checkpoint(TRUNCATE)"))
                path = Path(url.removeprefix("sqlite://"))
                return sum(p.stat().st_size for p in path.parent.glob(f"{path.name}*"))
            tables = ("decisions", "decision_rule_hits", "outcomes", "monitoring_snapshots")
            return int(
                sum(
                    connection.execute(sa.text("SELECT pg_total_relation_size(:t)"), {"t": table}).scalar_one()
                    for table in tables
                )
            )
    finally:
        engine.dispose()


if __name__ == "__main__":
    main()
