"""Where the time of a fraud rescore goes: `rescore` on the fast engine over the first `--rows` payments of
the full Handbook simulation (Parquet or CSV in, Parquet out), timed end to end and, with `--profile`,
under cProfile with the time of each step of the engine (validation, features, model, rules, decision
records, writing) summed from the profile. The process's CPU time (user + sys) is recorded beside the wall
time: on a shared machine it is the figure other work does not inflate.

    .venv/bin/python -m bench.batch_profile [--rows 200000] [--input parquet|csv] [--profile]
    .venv/bin/python -m bench.batch_profile --rows 0 --write-input payments.parquet   (all 1.75 M payments)
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from bench.common import bench_settings, record, workdir
from services.fraud_detection.dataset import load_or_simulate
from services.fraud_detection.features import events_from_simulation
from services.fraud_detection.train import SIZES
from services.registry import runtime
from shared.doors.batch import rescore
from shared.settings import Settings

# The engine's steps, each the cumulative time of the functions that do it (a function's time includes
# its callees': name no function of a step beside one that calls it).
STEPS: dict[str, tuple[str, ...]] = {
    "reading the input": ("engine.py:_raw_tables",),
    "validation and fingerprints": ("validation.py:validate_table",),
    "spooling by week (in memory up to a slice, else on disk)": ("engine.py:write", "engine.py:read"),
    # a slice's own rows (the service's column-wise form, else `features_of` over events as dicts)
    "window features": ("engine.py:_own_features",),
    "model": ("service.py:predict",),
    "rows decided by ScoringCore.decide (rules, explanations, dump)": ("scoring.py:_with_core_decisions",),
    "rows decided in bulk (verdicts, explanations, their cells)": (
        "scoring.py:_bulk_verdicts",
        "scoring.py:_decided_columns",
    ),
    "explanations (Service.explain, inside the decided rows above)": ("service.py:explain",),
    "rules screened in bulk": ("rules.py:may_hit", "scoring.py:_values_at"),
    "decision records as columns": ("scoring.py:_default_decisions",),
    "writing the output": ("files.py:write_table",),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--input", choices=("parquet", "csv"), default="parquet")
    parser.add_argument("--profile", action="store_true", help="run under cProfile and sum the engine's steps")
    parser.add_argument("--name", default="batch_profile_fraud", help="results file name")
    parser.add_argument("--write-input", type=Path, help="only write the input file here (e.g. for `risk rescore`)")
    parser.add_argument(
        "--copies",
        type=int,
        default=1,
        help="with --write-input: the simulation this many times over, each copy "
        "with its own cards, terminals and transactions (10: a synthetic input ten times the size)",
    )
    args = parser.parse_args()
    work = workdir()
    if args.write_input is not None:
        source = payments_file(Settings.from_env().data_dir, work, args.rows, args.input)
        if args.copies > 1:
            source = copies_of(source, args.copies)
        source.replace(args.write_input)
        print(f"{args.rows or 'all'} payments written to {args.write_input}")
        return
    settings = bench_settings(work, "fraud")
    source = payments_file(settings.data_dir, work, args.rows, args.input)
    parts = runtime("fraud", settings)
    core = parts.core  # the model loaded before the clock starts
    profiler = cProfile.Profile() if args.profile else None
    started, cpu_started = time.perf_counter(), time.process_time()
    if profiler is not None:
        profiler.enable()
    summary = rescore(core, source, work / "decisions.parquet", progress=False)
    if profiler is not None:
        profiler.disable()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    results: dict[str, Any] = {
        "service": "fraud",
        "engine": "fast",
        "input": args.input,
        "output": "parquet",
        "rows": summary.rows,
        "seconds": round(elapsed, 2),
        "rows_per_second": round(summary.rows / elapsed, 1),
        # user + sys of this process: what the machine's other work does not inflate (wall time it does)
        "cpu_seconds": round(cpu, 2),
        "cpu_seconds_per_100k_rows": round(cpu * 100_000 / max(summary.rows, 1), 2),
        "rows_per_cpu_second": round(summary.rows / cpu, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "decisions": summary.decisions,
        "profiled": profiler is not None,
    }
    if profiler is not None:
        results["steps_seconds"] = steps_of(pstats.Stats(profiler))
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        profiler.dump_stats(work / "rescore.prof")
        print(f"profile: {work / 'rescore.prof'}")
    parts.close()
    record(args.name, results)


def payments_file(data_dir: Path, work: Path, rows: int, kind: str) -> Path:
    """The first `rows` payments of the full simulation as a contract-shaped input file (UTC timestamps)."""
    simulated = load_or_simulate(data_dir, **asdict(SIZES["full"]))
    simulated = simulated.head(rows) if rows else simulated
    table = pa.Table.from_pylist(events_from_simulation(simulated))
    path = work / f"payments.{kind}"
    if kind == "parquet":
        pq.write_table(table, path)
    else:
        pacsv.write_csv(table, path)
    return path


def copies_of(source: Path, copies: int) -> Path:
    """The payments `copies` times, copy k's ids suffixed `-k` (its own cards, terminals and
    transactions), all in time order: the same weekly pattern, `copies` times the rows. Parquet only."""
    payments = pq.read_table(source)
    ids = ("transaction_id", "customer_id", "terminal_id")
    parts = []
    for copy in range(copies):
        part = payments
        for name in ids:
            renamed = pc.binary_join_element_wise(part.column(name), pa.scalar(f"-{copy}"), "")
            part = part.set_column(part.column_names.index(name), name, renamed)
        parts.append(part)
    many = pa.concat_tables(parts)
    many = many.take(pc.sort_indices(many, sort_keys=[("timestamp", "ascending")]))
    path = source.with_name(f"payments-x{copies}.parquet")
    pq.write_table(many, path, row_group_size=200_000)
    return path


def steps_of(stats: pstats.Stats) -> dict[str, float]:
    """Cumulative seconds of each step in STEPS, from the profile's functions."""
    table: dict[tuple[str, int, str], Any] = stats.stats  # type: ignore[attr-defined]
    found: dict[str, float] = {}
    for step, names in STEPS.items():
        total = 0.0
        for (file, _line, function), (_calls, _primitive, _own, cumulative, _callers) in table.items():
            if f"{Path(file).name}:{function}" in names:
                total += cumulative
        found[step] = round(total, 2)
    found["total"] = round(max(v[3] for v in table.values()), 2)
    return found


if __name__ == "__main__":
    main()
