"""The batch door: `risk rescore SERVICE --input X --output Y`.

The input is read in chunks and validated row by row against the service's contract; rejected rows
are written, with their row number and the fields at fault, to `<output>.rejects.jsonl` and counted,
never silently dropped. A row that cannot even be read (a ragged CSV row, bytes that are not UTF-8, a
JSON line nested beyond the parser or that is no object) is a reject like any other: one bad row never
stops the job. What cannot work at all (no such input, an unknown format, an unreadable Parquet file, an
output folder that does not exist, a `--keep` column the input lacks) is refused before any work.

Window features are computed offline over the whole valid input (each event sees the events before it
in the file's time order), then scored chunk by chunk through the same
`decide` as the online doors, with a progress bar. With a decision store (`--record`), each event is
decided once like at the other doors: a recorded event id gets its recorded decision (replayed), the
same id with another payload is a reject, and new decisions are recorded. The output has one typed
column per decision field (and per kept column) whatever its rows hold, so an empty input, or one whose
every row was rejected, still writes a well-formed empty output.
"""

from __future__ import annotations

import difflib
import os
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Generic, TypeVar

import pyarrow as pa
from marshmallow import Schema, fields
from tqdm import tqdm

from shared.batch.engine import NotColumnarError, rescore_columns
from shared.batch.records import output_columns
from shared.core.contract import ValidEvent, validate_event
from shared.core.decision import Decision
from shared.core.idempotency import Answer, Conflict, Score, decide_once
from shared.core.scoring import ScoringCore
from shared.decisions import DecisionStore
from shared.errors import InvalidInputError, UsageError
from shared.features.featureset import FeatureBatch
from shared.files import RecordWriter, RowProblem, columns_of, format_of, read_rows
from shared.logging import get_logger
from shared.metrics import DECISIONS, REJECTED

log = get_logger("batch")
FAST_CHUNK_ROWS = 50_000  # the fast engine works a column at a time: larger chunks cost no more memory a row
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
    columns_seen: set[str] = field(default_factory=set)  # the `keep` columns some row had


def _validated(
    path: Path,
    load: Callable[[dict[str, Any]], T],
    schema: Schema,
    chunk_size: int,
    rejects: RecordWriter,
    source: str | None,
    keep: Sequence[str] = (),
) -> _Valid[T]:
    """The valid rows, with their `keep` columns and row numbers; each rejected row (unreadable, or
    refused by the contract) is written with its number and fields. A kept column the contract does not
    read is taken out before validation; one it reads is copied and validated too."""
    valid = _Valid[T]([], [], [], 0, 0)
    read_by_contract = _field_names(schema, "load")
    for chunk in read_rows(path, chunk_size, text_columns=_text_fields(schema)):
        bad = []
        for row in chunk:
            valid.rows += 1
            try:
                if isinstance(row, RowProblem):
                    raise InvalidInputError(row.fields, "the row could not be read")
                valid.columns_seen.update(name for name in keep if name in row)
                extra = {name: row.get(name) if name in read_by_contract else row.pop(name, None) for name in keep}
                valid.events.append(load(row))
                valid.kept.append(extra)
                valid.row_numbers.append(valid.rows)
            except InvalidInputError as error:
                bad.append(
                    {
                        "row": valid.rows,
                        "error": error.code,
                        "fields": error.fields,
                        **({"source": source} if source else {}),
                    }
                )
        valid.rejected += len(bad)
        rejects.write(bad)
    return valid


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
    engine: str = "fast",
) -> BatchSummary:
    """Score `input_path` into `output_path`. `history_paths` names a file for each of the service's
    history inputs (e.g. {"claims": claims.csv}); their rows feed the features and are not scored. `keep`
    names input columns (e.g. a label) passed through to each decision row, never shown to the scoring.
    `record` is the decision store to decide once against and record in (none: every row is scored)."""
    history_paths = dict(history_paths or {})
    keep = list(dict.fromkeys(keep))
    history_inputs = {h.name: h for h in core.service.history_inputs}
    _check_usage(core, input_path, output_path, chunk_size, history_paths, keep)
    started = time.perf_counter()
    service = core.service.name
    rejects_path = rejects_path_for(output_path)
    if engine == "fast" and _fast_engine_fits(output_path, record):
        try:
            return _rescore_fast(core, input_path, output_path, chunk_size, progress, keep, history_paths, started)
        except NotColumnarError as reason:
            log.info("batch_rows_engine", reason=str(reason))
    with RecordWriter(rejects_path) as rejects:
        history, history_rejected = {}, 0
        for name, path in history_paths.items():
            loaded = _validated(
                path,
                partial(validate_event, history_inputs[name].schema()),
                history_inputs[name].schema(),
                chunk_size,
                rejects,
                source=name,
            )
            history[name], history_rejected = loaded.events, history_rejected + loaded.rejected
        valid = _validated(input_path, core.validate, core.contract.schema, chunk_size, rejects, None, keep)
        _check_kept_columns_seen(input_path, keep, valid)
        events = valid.events
        features = core.service.offline_features([e.data for e in events], history) if events else None
        counts: dict[str, int] = {}
        rejected, replayed = valid.rejected, 0
        columns = {**output_columns(core.service.decision_schema()), **_kept_columns(valid.kept, keep)}
        with (
            RecordWriter(output_path, columns) as writer,
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
        rejects=rejects_path if rejected or history_rejected else None,
        seconds=round(time.perf_counter() - started, 3),
        decisions=counts,
    )
    if not rejected and not history_rejected:  # a history's bad rows are reported, not counted as the input's
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


def _fast_engine_fits(output_path: Path, record: DecisionStore | None) -> bool:
    """The fast engine scores inputs (with their history files, if any) with no decision store to decide
    once against, into CSV or Parquet (JSON Lines outputs keep nested parts as objects, which the row path
    writes)."""
    return record is None and format_of(output_path) != "jsonl"


def _rescore_fast(
    core: ScoringCore,
    input_path: Path,
    output_path: Path,
    chunk_size: int,
    progress: bool,
    keep: Sequence[str],
    history_paths: Mapping[str, Path],
    started: float,
) -> BatchSummary:
    service = core.service.name
    rejects_path = rejects_path_for(output_path)
    with RecordWriter(rejects_path) as rejects:
        done = rescore_columns(
            core,
            input_path,
            output_path,
            rejects,
            chunk_size=max(chunk_size, FAST_CHUNK_ROWS),
            keep=keep,
            progress=progress,
            history_paths=history_paths,
        )
    REJECTED.labels(service, "batch").inc(done.rejected)
    for outcome, count in done.decisions.items():
        DECISIONS.labels(service, "batch", outcome).inc(count)
    summary = BatchSummary(
        rows=done.rows,
        scored=done.scored,
        rejected=done.rejected,
        output=output_path,
        rejects=rejects_path if done.rejected or done.history_rejected else None,
        seconds=round(time.perf_counter() - started, 3),
        decisions=done.decisions,
    )
    if not done.rejected and not done.history_rejected:
        rejects_path.unlink(missing_ok=True)
    log.info(
        "batch_rescored",
        engine="fast",
        rows=summary.rows,
        scored=summary.scored,
        rejected=summary.rejected,
        seconds=summary.seconds,
        decisions=summary.decisions,
    )
    return summary


def _check_usage(
    core: ScoringCore,
    input_path: Path,
    output_path: Path,
    chunk_size: int,
    history_paths: Mapping[str, Path],
    keep: Sequence[str],
) -> None:
    """Refuse, before any work and in one line, what cannot work as asked."""
    if chunk_size < 1:
        raise UsageError(f"--chunk-size {chunk_size}: give a number of rows of at least 1")
    if not input_path.is_file():
        raise UsageError(f"{input_path}: no such input file")
    format_of(input_path)
    _check_output(output_path, [input_path, *history_paths.values()])
    history_inputs = {h.name: h for h in core.service.history_inputs}
    unknown = set(history_paths) - set(history_inputs)
    if unknown:
        raise UsageError(
            f"{core.service.name} has no history input {', '.join(sorted(unknown))} "
            f"(it has: {', '.join(sorted(history_inputs)) or 'none'})"
        )
    for name, path in history_paths.items():
        if not path.is_file():
            raise UsageError(f"--history {name}={path}: no such file")
        columns_of(path)  # a history file that cannot be read at all is refused now, not halfway
    clashing = set(keep) & _field_names(core.service.decision_schema(), "dump")
    if clashing:
        raise UsageError(f"--keep {', '.join(sorted(clashing))}: a decision field of that name exists already")
    personal = set(keep) & set(core.contract.personal_fields)
    if personal:
        raise UsageError(f"--keep {', '.join(sorted(personal))}: personal data is never written out as given")
    columns = columns_of(input_path)  # also refuses an input that cannot be read at all
    if columns is not None:
        _check_kept_columns(input_path, keep, columns)


def _check_output(output_path: Path, inputs: Sequence[Path]) -> None:
    format_of(output_path)
    folder = output_path.parent
    if not folder.is_dir():
        raise UsageError(f"--output {output_path}: there is no folder {folder} (create it first)")
    if output_path.is_dir():
        raise UsageError(f"--output {output_path}: is a folder; give a file name (e.g. {output_path / 'out.parquet'})")
    for written in (output_path, rejects_path_for(output_path)):
        if any(written.resolve() == source.resolve() for source in inputs):
            raise UsageError(f"--output {output_path}: would overwrite the input {written}; choose another name")
        if not os.access(written if written.exists() else folder, os.W_OK):
            raise UsageError(f"--output {output_path}: {written if written.exists() else folder} is not writable")


def _check_kept_columns(input_path: Path, keep: Sequence[str], columns: Collection[str]) -> None:
    for name in keep:
        if name not in columns:
            closest = difflib.get_close_matches(name, list(columns), n=1)
            hint = f" (the closest is {closest[0]!r})" if closest else ""
            raise UsageError(f"--keep {name}: {input_path} has no such column{hint}")


def _check_kept_columns_seen(input_path: Path, keep: Sequence[str], valid: _Valid[Any]) -> None:
    """For JSON Lines, whose columns are only known row by row: a kept column no row had is a misspelling."""
    if keep and valid.rows and columns_of(input_path) is None:
        missing = [name for name in keep if name not in valid.columns_seen]
        if missing:
            raise UsageError(f"--keep {', '.join(missing)}: no row of {input_path} has such a field")


def _field_names(schema: Schema, direction: str) -> set[str]:
    """The names a schema reads ("load") or writes ("dump") at its top level, as they appear in files."""
    declared = schema.load_fields if direction == "load" else schema.dump_fields
    return {f.data_key or name for name, f in declared.items()}


def _text_fields(schema: Schema) -> set[str]:
    """The top-level fields a contract reads as text (ids above all), which a Parquet file may hold as numbers."""
    return {f.data_key or name for name, f in schema.load_fields.items() if isinstance(f, fields.String)}


def _kept_columns(kept: Sequence[Mapping[str, Any]], keep: Sequence[str]) -> dict[str, pa.DataType]:
    """The type of each kept column, from all its values: a number, a flag or text as they are in the
    input; text where they mix kinds, are nested, or are all missing."""
    columns = {}
    for name in keep:
        try:
            kind = pa.array([row[name] for row in kept]).type
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            kind = pa.string()
        primitive = pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
        columns[name] = kind if primitive else pa.string()
    return columns


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
