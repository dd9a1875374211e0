"""The batch door: `risk rescore SERVICE --input X --output Y`.

The input is read in chunks and validated row by row against the service's contract; rejected rows
are written, with their row number and the fields at fault, to `<output>.rejects.jsonl` and counted,
never silently dropped. Window features are computed offline over the whole valid input (each event
sees the events before it in the file's time order), then scored chunk by chunk through the same
`decide` as the online doors, with a progress bar. With a decision store (`--record`), each event is
decided once like at the other doors: a recorded event id gets its recorded decision (replayed), the
same id with another payload is a reject, and new decisions are recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Generic, TypeVar

from tqdm import tqdm

from shared.core.contract import ValidEvent, validate_event
from shared.core.decision import Decision
from shared.core.idempotency import Answer, Conflict, Score, decide_once
from shared.core.scoring import ScoringCore
from shared.decisions import DecisionStore
from shared.errors import InvalidInputError, UsageError
from shared.features.featureset import FeatureBatch
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
    replayed: int = 0


@dataclass
class _Valid(Generic[T]):
    events: list[T]
    kept: list[dict[str, Any]]  # the `keep` columns of each event
    row_numbers: list[int]
    rows: int  # rows read
    rejected: int


def _validated(
    path: Path,
    load: Callable[[dict[str, Any]], T],
    chunk_size: int,
    rejects: RecordWriter,
    source: str | None,
    keep: Sequence[str] = (),
) -> _Valid[T]:
    """The valid rows, with their `keep` columns (taken out before validation) and row numbers; each
    rejected row is written with its number and fields."""
    valid: list[T] = []
    kept: list[dict[str, Any]] = []
    numbers: list[int] = []
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
                numbers.append(rows)
            except InvalidInputError as error:
                bad.append(
                    {"row": rows, "error": error.code, "fields": error.fields, **({"source": source} if source else {})}
                )
        rejected += len(bad)
        rejects.write(bad)
    return _Valid(valid, kept, numbers, rows, rejected)


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
    record: DecisionStore | None = None,
) -> BatchSummary:
    """Score `input_path` into `output_path`. `history_paths` names a file for each of the service's
    history inputs (e.g. {"claims": claims.csv}); their rows feed the features and are not scored. `keep`
    names input columns (e.g. a label) passed through to each decision row, never shown to the scoring.
    `record` is the decision store to decide once against and record in (none: every row is scored)."""
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
            ).events
            for name, path in (history_paths or {}).items()
        }
        valid = _validated(input_path, core.validate, chunk_size, rejects, None, keep)
        events = valid.events
        features = core.service.offline_features([e.data for e in events], history) if events else None
        counts: dict[str, int] = {}
        rejected, replayed = valid.rejected, 0
        with (
            RecordWriter(output_path) as writer,
            tqdm(total=len(events), unit="event", desc=f"rescore {service}", disable=not progress) as bar,
        ):
            for start in range(0, len(events), chunk_size):
                chunk_started = time.perf_counter()
                chunk = events[start : start + chunk_size]
                assert features is not None
                part = features.take(slice(start, start + chunk_size))
                answers = decide_once(core, chunk, _scorer(core, chunk, part, chunk_started), record, "batch")
                records, conflicts = _rows(answers, valid.kept[start : start + chunk_size], keep)
                rejects.write(
                    [
                        {
                            "row": valid.row_numbers[start + i],
                            "error": "conflict",
                            "fields": {core.service.event_id_field: [c.message]},
                        }
                        for i, c in conflicts
                    ]
                )
                rejected += len(conflicts)
                for answer in answers:
                    if isinstance(answer, Answer):
                        counts[answer.decision] = counts.get(answer.decision, 0) + 1
                        replayed += answer.replayed
                writer.write(records)
                bar.update(len(chunk))
    REJECTED.labels(service, "batch").inc(rejected)
    for outcome, count in counts.items():
        DECISIONS.labels(service, "batch", outcome).inc(count)
    summary = BatchSummary(
        rows=valid.rows,
        scored=sum(counts.values()) - replayed,
        replayed=replayed,
        rejected=rejected,
        output=output_path,
        rejects=rejects_path if rejected else None,
        seconds=round(time.perf_counter() - started, 3),
        decisions=counts,
    )
    if not rejected:
        rejects_path.unlink(missing_ok=True)
    log.info(
        "batch_rescored",
        rows=summary.rows,
        scored=summary.scored,
        replayed=replayed,
        rejected=rejected,
        seconds=summary.seconds,
        decisions=counts,
    )
    return summary


def _scorer(core: ScoringCore, chunk: Sequence[ValidEvent], features: FeatureBatch, began: float) -> Score:
    """Scores the chunk's events at the positions asked for, from the features computed over the whole input."""

    def score(positions: Sequence[int]) -> list[Decision]:
        if len(positions) == len(chunk):  # nothing was decided before: the chunk as it is
            return core.decide(chunk, features, began)
        return core.decide([chunk[p] for p in positions], features.take(list(positions)), began)

    return score


def _rows(
    answers: Sequence[Answer | Conflict], kept: Sequence[dict[str, Any]], keep: Sequence[str]
) -> tuple[list[dict[str, Any]], list[tuple[int, Conflict]]]:
    """The output rows of a chunk's answers (with their kept columns), and its conflicts by position."""
    records: list[dict[str, Any]] = []
    conflicts: list[tuple[int, Conflict]] = []
    for i, answer in enumerate(answers):
        if isinstance(answer, Conflict):
            conflicts.append((i, answer))
        else:
            records.append({**answer.document, **kept[i]} if keep else answer.document)
    return records, conflicts
