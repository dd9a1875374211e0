"""The batch door: `risk rescore SERVICE --input X --output Y`.

The input is read in chunks and validated row by row against the service's contract; rejected rows
are written, with their row number and the fields at fault, to `<output>.rejects.jsonl` and counted,
never silently dropped. Window features are computed offline over the whole valid input (each event
sees the events before it in the file's time order), then scored chunk by chunk through the same
`decide` as the online doors, with a progress bar.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from shared.batch.io import RecordWriter, read_chunks
from shared.errors import InvalidInput
from shared.logging import get_logger
from shared.metrics import DECISIONS, REJECTED
from shared.scoring import ScoringCore

log = get_logger("batch")


@dataclass(frozen=True)
class BatchSummary:
    rows: int
    scored: int
    rejected: int
    output: Path
    rejects: Path | None
    seconds: float
    decisions: dict[str, int]


def rejects_path_for(output: Path) -> Path:
    return output.with_name(output.name + ".rejects.jsonl")


def rescore(
    core: ScoringCore, input_path: Path, output_path: Path, *, chunk_size: int = 5_000, progress: bool = True
) -> BatchSummary:
    started = time.perf_counter()
    service = core.definition.name
    events: list[dict[str, Any]] = []
    rejects_path = rejects_path_for(output_path)
    rejected = rows = 0
    with RecordWriter(rejects_path) as rejects:
        for chunk in read_chunks(input_path, chunk_size):
            bad = []
            for row in chunk:
                rows += 1
                try:
                    if "_unparsable" in row:
                        raise InvalidInput({"_row": ["not a JSON object"]})
                    events.append(core.validate(row))
                except InvalidInput as error:
                    bad.append({"row": rows, "error": error.code, "fields": error.fields})
            rejected += len(bad)
            rejects.write(bad)
    REJECTED.labels(service, "batch").inc(rejected)

    features = core.definition.offline_features(events) if events else None
    counts: dict[str, int] = {}
    with RecordWriter(output_path) as writer, tqdm(
        total=len(events), unit="event", desc=f"rescore {service}", disable=not progress
    ) as bar:
        for start in range(0, len(events), chunk_size):
            chunk_started = time.perf_counter()
            assert features is not None
            decisions = core.decide(
                events[start : start + chunk_size], features.iloc[start : start + chunk_size], chunk_started
            )
            for decision in decisions:
                counts[decision["decision"]] = counts.get(decision["decision"], 0) + 1
            writer.write(decisions)
            bar.update(len(decisions))
    for outcome, count in counts.items():
        DECISIONS.labels(service, "batch", outcome).inc(count)
    summary = BatchSummary(
        rows=rows, scored=len(events), rejected=rejected, output=output_path,
        rejects=rejects_path if rejected else None, seconds=round(time.perf_counter() - started, 3),
        decisions=counts,
    )
    if not rejected:
        rejects_path.unlink(missing_ok=True)
    log.info("batch_rescored", rows=rows, scored=len(events), rejected=rejected, seconds=summary.seconds,
             decisions=counts)
    return summary
