"""`risk rescore` on the fast engine: a file through column-wise validation, window features and
`score_chunk`, in memory bounded by the events of one time slice and its look-back, not by the file.

    pass 0: each history file (e.g. claim notifications) validated whole -> its rejects written, with
            their source; its valid events held in memory, whole, for every slice
    pass 1: the input in chunks -> validate_table -> rejects written; valid rows kept by week of event
            time (in memory while they fit in one slice, else on disk, one Parquet file per week)
    pass 2: week by week: that week's rows with the weeks its widest window looks back over (the
            service's `state_retention`) -> the features of the week's own rows (the look-back rows only
            read by their windows; fraud's ids as integer codes; a history input's events all of them, as
            the row path hands them over) -> the week's rows scored -> the output

An event's window holds only the events of the look-back before it, all in the slice, so its features
are those of the whole input (counts exactly; sums to floating-point rounding: a running sum starts at
the slice). The output holds one row per valid event, week by week in event time, each week's rows in
input order.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from tqdm import tqdm

from shared.batch.records import output_columns
from shared.batch.scoring import loaded_events, score_chunk
from shared.batch.validation import Reject, paused_gc, validate_table
from shared.core.contract import Contract, validate_event
from shared.core.scoring import ScoringCore
from shared.core.service import Event, History, HistoryInput
from shared.errors import InvalidInputError
from shared.features.featureset import FeatureBatch
from shared.files import RecordWriter, RowProblem, columns_of, format_of, read_rows
from shared.logging import get_logger

log = get_logger("batch")
SLICE_SECONDS = 7 * 86_400.0
SLICE_ROWS = 1_000_000  # rows scored together; with their look-back, what memory holds at once
DATA, DOCUMENT, KEPT, ROW = "d:", "j:", "k:", "row"


@dataclass
class Spool:
    """Valid rows by time slice: kept in memory while the input's valid rows fit in one slice
    (`SLICE_ROWS`, which a slice scored with its look-back holds in memory anyway), else on disk, one
    Parquet file per slice. A small input is thus never written and read back; a large one is spilled
    to disk, rows kept so far first, as soon as it outgrows a slice."""

    folder: Path
    schema: pa.Schema | None = None
    writers: dict[int, pq.ParquetWriter] = field(default_factory=dict)
    kept: dict[int, list[pa.Table]] = field(default_factory=dict)  # the slices' rows while in memory
    rows: int = 0
    counts: dict[int, int] = field(default_factory=dict)

    def write(self, table: pa.Table, slices: np.ndarray) -> None:
        if self.schema is None:
            self.schema = table.schema
        if table.schema != self.schema:
            table = table.cast(self.schema)
        if len(slices) and (slices[1:] >= slices[:-1]).all():  # in time order already: no copy
            ordered, keys = table, slices
        else:
            order = np.argsort(slices, kind="stable")
            ordered, keys = table.take(order), slices[order]
        bounds = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1], True])
        for start, end in itertools.pairwise(bounds):
            key = int(keys[start])
            self.kept.setdefault(key, []).append(ordered.slice(start, end - start))
            self.counts[key] = self.counts.get(key, 0) + int(end - start)
        self.rows += table.num_rows
        if self.writers or self.rows > SLICE_ROWS:
            self._spill()

    def _spill(self) -> None:
        """Every row kept in memory appended to its slice's file, in the order it came."""
        assert self.schema is not None
        for key, parts in self.kept.items():
            if key not in self.writers:
                self.writers[key] = pq.ParquetWriter(self.folder / f"slice-{key}.parquet", self.schema)
            for part in parts:
                self.writers[key].write_table(part)
        self.kept.clear()

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()

    @property
    def keys(self) -> list[int]:
        """The slices holding rows, in time order."""
        return sorted(self.counts)

    def read(self, key: int, columns: Sequence[str] | None = None) -> pa.Table | None:
        if key in self.kept:
            table = pa.concat_tables(self.kept[key])
            return table.select(list(columns)) if columns is not None else table
        if key not in self.writers:
            return None
        return pq.read_table(self.folder / f"slice-{key}.parquet", columns=columns)


@dataclass(frozen=True)
class FastSummary:
    rows: int
    scored: int
    rejected: int
    decisions: dict[str, int]
    seconds: float
    history_rejected: int = 0  # history rows rejected (written to the rejects, not counted in `rejected`)


def rescore_columns(
    core: ScoringCore,
    input_path: Path,
    output_path: Path,
    rejects: RecordWriter,
    *,
    chunk_size: int = 50_000,
    keep: Sequence[str] = (),
    progress: bool = True,
    history_paths: Mapping[str, Path] | None = None,
) -> FastSummary:
    """Score a file on the fast engine (usage already checked by the batch door). Rejected rows go to
    `rejects` with their row number and fields (and, for a history file's rows, its name as `source`).
    `history_paths` names a file for some of the service's history inputs; their events feed the features
    of every slice and are not scored. As on the row path, `rejected` counts the input's rows only."""
    started = time.perf_counter()
    service = core.service
    time_field = service.event_time_field
    lookback = max(service.state_retention.values(), default=0.0)
    behind = int(np.ceil(lookback / SLICE_SECONDS))
    dotted = format_of(input_path) == "csv"  # dotted CSV headers are nested fields, as on the row path
    inputs = {h.name: h for h in service.history_inputs}
    history_events: dict[str, list[Event]] = {}
    history_rejected = 0
    for name, path in (history_paths or {}).items():
        history_events[name], bad = _history_events(core, inputs[name], path, chunk_size, rejects)
        history_rejected += bad
    with tempfile.TemporaryDirectory(prefix="rescore-", dir=output_path.parent) as folder:
        spool = Spool(Path(folder))
        rows, rejected = 0, 0
        for first_row, raw in _raw_tables(input_path, chunk_size, core):
            rows += raw.num_rows
            valid = validate_table(core.contract, raw, first_row, keep, dotted=dotted)
            _write_rejects(rejects, valid.rejects)
            rejected += len(valid.rejects)
            if valid.data.num_rows == 0:
                continue
            seconds = valid.data.column(time_field).cast(pa.int64()).to_numpy() / 1e6
            spooled = _prefixed(valid.data, DATA, valid.documents, DOCUMENT)
            for name in keep:
                values = raw.column(name).take(pa.array(valid.rows - first_row)) if name in raw.column_names else None
                spooled = spooled.append_column(
                    KEPT + name, values if values is not None else pa.nulls(len(valid.rows))
                )
            spooled = spooled.append_column(ROW, pa.array(valid.rows, pa.int64()))
            spool.write(spooled, np.floor(seconds / SLICE_SECONDS).astype(np.int64))
        spool.close()
        counts: dict[str, int] = {}
        columns = dict(output_columns(service.decision_schema()))
        for name in keep:  # with no valid row, a kept column is still in the header, as text
            kind = spool.schema.field(KEPT + name).type if spool.schema is not None else pa.string()
            columns[name] = kind if _primitive(kind) else pa.string()
        with (
            RecordWriter(output_path, columns) as writer,
            tqdm(total=spool.rows, unit="event", desc=f"rescore {service.name}", disable=not progress) as bar,
            _Behind(writer) as output,
        ):
            data_columns = [n for n in (spool.schema.names if spool.schema else []) if n.startswith(DATA)]
            for keys in _slices(spool):
                table = pa.concat_tables([t for k in keys if (t := spool.read(k)) is not None])
                earlier = [spool.read(k, data_columns) for k in range(keys[0] - behind, keys[0])]
                history = [t for t in earlier if t is not None]
                data_all = pa.concat_tables([*history, table.select(data_columns)])
                del earlier, history
                answer_from = data_all.num_rows - table.num_rows
                own = _own_features(core, _unprefixed(data_all, DATA), history_events, answer_from)
                del data_all
                for start in range(0, table.num_rows, chunk_size):
                    part = table.slice(start, chunk_size)
                    decided = score_chunk(
                        core,
                        _unprefixed(part, DOCUMENT),
                        _unprefixed(part, DATA),
                        own.take(slice(start, start + part.num_rows)),
                    )
                    for name in keep:
                        decided = decided.append_column(name, part.column(KEPT + name).cast(columns[name]))
                    _count(counts, decided)
                    output.write_table(decided)
                    bar.update(part.num_rows)
    seconds = round(time.perf_counter() - started, 3)
    return FastSummary(rows, sum(counts.values()), rejected, counts, seconds, history_rejected)


class _Behind:
    """A writer's `write_table` on a thread of its own, one chunk behind the scoring: Arrow writes Parquet
    without the GIL, so a chunk is written while the next is scored. One chunk at most is in flight (each
    write waits for the one before, so chunks land in order); an error in a write is raised by the next
    write or on leaving."""

    def __init__(self, writer: RecordWriter) -> None:
        self._writer = writer
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rescore-writer")
        self._pending: Future[None] | None = None

    def write_table(self, table: pa.Table) -> None:
        self._wait()
        self._pending = self._thread.submit(self._writer.write_table, table)

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def __enter__(self) -> _Behind:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        try:
            self._wait()
        except Exception:
            if kind is None:  # else the error that stopped the scoring is the one raised
                raise
        finally:
            self._thread.shutdown(wait=True)


def _own_features(core: ScoringCore, data: pa.Table, history: History, answer_from: int) -> FeatureBatch:
    """The features of the rows from `answer_from` on, the rows before being their look-back only (a
    service with a column-wise form computes no window of a look-back row), over the history inputs'
    events."""
    with paused_gc():
        batch = core.service.offline_features_of_columns(data, history, answer_from)
        if batch is None:
            batch = core.service.offline_features(loaded_events(data), history).take(slice(answer_from, data.num_rows))
    return batch


def _history_events(
    core: ScoringCore, history: HistoryInput, path: Path, chunk_size: int, rejects: RecordWriter
) -> tuple[list[Event], int]:
    """A history file's valid events in file order (loaded as the row path loads them) and how many rows
    were rejected, each bad row written to `rejects` with its number and `source` as the row path writes
    it. A CSV or Parquet file is validated a chunk of columns at a time; a JSON Lines file (Arrow reads no
    tables of it) row by row, as on the row path."""
    events: list[Event] = []
    bad = 0
    kind = format_of(path)
    if kind in ("csv", "parquet"):
        contract = Contract(history.schema)
        for first_row, raw in _raw_tables(path, chunk_size, core):
            valid = validate_table(contract, raw, first_row, dotted=kind == "csv")
            events.extend(loaded_events(valid.data))
            bad += len(valid.rejects)
            _write_rejects(rejects, valid.rejects, source=history.name)
        return events, bad
    schema, number = history.schema(), 0
    for chunk in read_rows(path, chunk_size):
        found = []
        for row in chunk:
            number += 1
            try:
                if isinstance(row, RowProblem):
                    raise InvalidInputError(row.fields, "the row could not be read")
                events.append(validate_event(schema, row))
            except InvalidInputError as error:
                found.append(Reject(number, error.code, error.fields))
        bad += len(found)
        _write_rejects(rejects, found, source=history.name)
    return events, bad


def _slices(spool: Spool) -> list[list[int]]:
    """Consecutive weeks grouped while their rows stay within SLICE_ROWS: a small input is one slice,
    whose features are computed once; a large one is cut where its weeks fill a slice."""
    groups: list[list[int]] = []
    rows = 0
    for key in spool.keys:
        count = spool.counts.get(key, 0)
        if groups and rows + count <= SLICE_ROWS and key == groups[-1][-1] + 1:
            groups[-1].append(key)
            rows += count
        else:
            groups.append([key])
            rows = count
    return groups


def _primitive(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)


def _count(counts: dict[str, int], decided: pa.Table) -> None:
    values = pc.value_counts(decided.column("decision")).to_pylist()
    for item in values:
        counts[item["values"]] = counts.get(item["values"], 0) + int(item["counts"])


def _prefixed(data: pa.Table, data_prefix: str, documents: pa.Table, document_prefix: str) -> pa.Table:
    names = [data_prefix + n for n in data.column_names] + [document_prefix + n for n in documents.column_names]
    return pa.Table.from_arrays([*data.columns, *documents.columns], names=names)


def _unprefixed(table: pa.Table, prefix: str) -> pa.Table:
    chosen = [n for n in table.column_names if n.startswith(prefix)]
    return table.select(chosen).rename_columns([n.removeprefix(prefix) for n in chosen])


def _write_rejects(rejects: RecordWriter, found: Sequence[Reject], source: str | None = None) -> None:
    extra = {"source": source} if source else {}
    rejects.write([{"row": r.row, "error": r.error, "fields": r.fields, **extra} for r in found])


class NotColumnarError(Exception):
    """The input is one Arrow does not read as tables (JSON Lines, a ragged or non-UTF-8 CSV): the batch
    door scores it row by row instead."""


def _raw_tables(path: Path, chunk_size: int, core: ScoringCore) -> Iterator[tuple[int, pa.Table]]:
    """The input as Arrow tables of raw rows (CSV cells as text), with the number of each one's first row."""
    kind = format_of(path)
    done = 0
    if kind == "parquet":
        file = pq.ParquetFile(path)
        for batch in file.iter_batches(batch_size=chunk_size):
            table = pa.Table.from_batches([batch])
            yield done + 1, table.drop_columns([n for n in table.column_names if n.startswith("__index_level_")])
            done += batch.num_rows
        return
    if kind != "csv":
        raise NotColumnarError(f"{path}: {kind} is read row by row")
    names = columns_of(path) or []
    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=1 << 23, use_threads=False),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=False
            ),
        )
        for batch in reader:
            yield done + 1, pa.Table.from_batches([batch])
            done += batch.num_rows
    except (pa.ArrowInvalid, UnicodeDecodeError) as error:
        raise NotColumnarError(f"{path}: {error}") from None
