"""The batch door: `risk rescore SERVICE --input X --output Y`.

The input is read in chunks and validated row by row against the service's contract; rejected rows
are written, with their row number and the fields at fault, to `<output>.rejects.jsonl` and counted,
never silently dropped. Window features are computed offline over the whole valid input (each event
sees the events before it in the file's time order), then scored chunk by chunk through the same
`decide` as the online doors, with a progress bar.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from tqdm import tqdm

from shared.core.contract import validate_event
from shared.core.scoring import ScoringCore
from shared.errors import InvalidInputError, UsageError
from shared.files import RecordWriter, format_of, read_chunks
from shared.logging import get_logger
from shared.metrics import DECISIONS, REJECTED

log = get_logger("batch")
T = TypeVar("T")


@dataclass(frozen=True)
class BatchSummary:
    rows: int
    scored: int
    rejected: int
    output: Path
    rejects: Path | None
    seconds: float
    decisions: dict[str, int]


def _validated(
    path: Path,
    load: Callable[[dict[str, Any]], T],
    chunk_size: int,
    rejects: RecordWriter,
    source: str | None,
    keep: Sequence[str] = (),
) -> tuple[list[T], list[dict[str, Any]], int, int]:
    """(valid rows, the `keep` columns of each, rows read, rows rejected); the `keep` columns are taken out
    before validation; each rejected row is written with its number and fields."""
    valid: list[T] = []
    kept: list[dict[str, Any]] = []
    rows = rejected = 0
    for chunk in read_chunks(path, chunk_size):
        bad = []
        for row in chunk:
            rows += 1
            try:
                if "_unparsable" in row:
                    raise InvalidInputError({"_row": ["not a JSON object"]})
                extra = {name: row.pop(name, None) for name in keep}
                valid.append(load(row))
                kept.append(extra)
            except InvalidInputError as error:
                bad.append(
                    {"row": rows, "error": error.code, "fields": error.fields, **({"source": source} if source else {})}
                )
        rejected += len(bad)
        rejects.write(bad)
    return valid, kept, rows, rejected


def rejects_path_for(output: Path) -> Path:
    return output.with_name(output.name + ".rejects.jsonl")


def rescore(
    core: ScoringCore,
    input_path: Path,
    output_path: Path,
    *,
    chunk_size: int = 5_000,
    progress: bool = True,
    history_paths: Mapping[str, Path] | None = None,
    keep: Sequence[str] = (),
) -> BatchSummary:
    """Score `input_path` into `output_path`. `history_paths` names a file for each of the service's
    history inputs (e.g. {"claims": claims.csv}); their rows feed the features and are not scored. `keep`
    names input columns (e.g. a label) passed through to each decision row, never shown to the scoring."""
    if not input_path.is_file():
        raise UsageError(f"{input_path}: no such input file")
    format_of(output_path)  # an output it cannot write is refused before any work
    started = time.perf_counter()
    service = core.service.name
    history_inputs = {h.name: h for h in core.service.history_inputs}
    clashing = set(keep) & set(core.service.decision_schema().fields)
    if clashing:
        raise UsageError(f"--keep {', '.join(sorted(clashing))}: a decision field of that name exists already")
    for name, path in (history_paths or {}).items():
        if not path.is_file():
            raise UsageError(f"--history {name}={path}: no such file")
    unknown = set(history_paths or {}) - set(history_inputs)
    if unknown:
        raise UsageError(
            f"{service} has no history input {', '.join(sorted(unknown))} "
            f"(it has: {', '.join(sorted(history_inputs)) or 'none'})"
        )
    rejects_path = rejects_path_for(output_path)
    with RecordWriter(rejects_path) as rejects:
        history = {
            name: _validated(
                path, partial(validate_event, history_inputs[name].schema()), chunk_size, rejects, source=name
            )[0]
            for name, path in (history_paths or {}).items()
        }
        events, kept, rows, rejected = _validated(input_path, core.validate, chunk_size, rejects, None, keep)
    REJECTED.labels(service, "batch").inc(rejected)

    features = core.service.offline_features([e.data for e in events], history) if events else None
    counts: dict[str, int] = {}
    with (
        RecordWriter(output_path) as writer,
        tqdm(total=len(events), unit="event", desc=f"rescore {service}", disable=not progress) as bar,
    ):
        for start in range(0, len(events), chunk_size):
            chunk_started = time.perf_counter()
            assert features is not None
            decisions = core.decide(
                events[start : start + chunk_size], features.take(slice(start, start + chunk_size)), chunk_started
            )
            for decision in decisions:
                counts[decision.decision] = counts.get(decision.decision, 0) + 1
            records = core.dump(decisions)
            if keep:
                records = [{**r, **k} for r, k in zip(records, kept[start : start + chunk_size], strict=True)]
            writer.write(records)
            bar.update(len(decisions))
    for outcome, count in counts.items():
        DECISIONS.labels(service, "batch", outcome).inc(count)
    summary = BatchSummary(
        rows=rows,
        scored=len(events),
        rejected=rejected,
        output=output_path,
        rejects=rejects_path if rejected else None,
        seconds=round(time.perf_counter() - started, 3),
        decisions=counts,
    )
    if not rejected:
        rejects_path.unlink(missing_ok=True)
    log.info(
        "batch_rescored", rows=rows, scored=len(events), rejected=rejected, seconds=summary.seconds, decisions=counts
    )
    return summary
