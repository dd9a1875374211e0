"""Reading inputs and writing outputs of batch jobs: CSV, JSON Lines or Parquet, chosen by file suffix,
in chunks so a large file is never parsed or written in one piece.

A row that cannot be read as a record (a ragged CSV row, bytes that are not UTF-8, a JSON line that is
not a JSON object or nests beyond the parser) is yielded as a `RowProblem` in its place, so the caller can
reject it by row number and go on; only a file that cannot be read at all (an unreadable Parquet file, a
CSV header that is not text) is a `UsageError`. A UTF-8 byte-order mark at the start of a text file is
read as one, not as part of the first column's name.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from shared.errors import UsageError

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}

# Decoding with "surrogateescape" turns each byte that is not UTF-8 into one of these code points (valid
# UTF-8 never decodes to them), so a bad byte is found in the cell it broke instead of ending the file.
_UNDECODABLE = re.compile("[\udc80-\udcff]")
# pandas stores an unnamed index as a column of this name; it describes the frame, it is not data.
_PANDAS_INDEX = re.compile(r"__index_level_\d+__")


@dataclass(frozen=True)
class RowProblem:
    """A row that could not be read as a record: its problems by field (`_row` for the whole row)."""

    fields: dict[str, list[str]]


Row = dict[str, Any] | RowProblem


def format_of(path: Path) -> str:
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise UsageError(f"{path}: unknown format (use {', '.join(sorted(FORMATS))})") from None


def read_rows(path: Path, chunk_size: int, text_columns: Collection[str] = ()) -> Iterator[list[Row]]:
    """Rows as dicts (or a `RowProblem` in a bad row's place), `chunk_size` at a time. Empty and null
    cells are left out, so they read as missing.

    CSV cells stay text (the contract's schema converts and checks them), and a dotted CSV header makes a
    nested field (`total_cholesterol.value` and `total_cholesterol.unit` make `total_cholesterol`).
    Parquet values are read as the JSON-like values a contract reads: timestamps and dates as ISO 8601
    text, and whole numbers in `text_columns` (the fields the contract wants as text, such as ids stored
    as integers) as their digits.
    """
    kind = format_of(path)
    rows = (
        _parquet_rows(path, chunk_size, frozenset(text_columns))
        if kind == "parquet"
        else _csv_rows(path)
        if kind == "csv"
        else _json_rows(path)
    )
    chunk: list[Row] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == chunk_size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def read_chunks(path: Path, chunk_size: int) -> Iterator[list[dict[str, Any]]]:
    """`read_rows` for callers that take dicts only: a bad row is `{"_unparsable": its problems}`."""
    for chunk in read_rows(path, chunk_size):
        yield [{"_unparsable": row.fields} if isinstance(row, RowProblem) else row for row in chunk]


def columns_of(path: Path) -> list[str] | None:
    """The columns a CSV header or a Parquet schema names; None for JSON Lines, whose rows each have their own."""
    kind = format_of(path)
    if kind == "parquet":
        return _data_columns(_parquet_file(path))
    if kind == "jsonl":
        return None
    with _open_text(path) as stream:
        return _header(path, next(csv.reader(stream), []))


# ---------------------------------------------------------------------------------------------- CSV


def _open_text(path: Path) -> Any:
    return path.open(newline="", encoding="utf-8-sig", errors="surrogateescape")


def _csv_rows(path: Path) -> Iterator[Row]:
    with _open_text(path) as stream:
        reader = csv.reader(stream)
        header = _header(path, next(reader, []))
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as error:  # e.g. a cell beyond the csv module's size limit: this row only
                yield RowProblem({"_row": [f"not a CSV row: {error}"]})
                continue
            if cells:  # a blank line is no row
                yield _csv_row(header, cells)


def _header(path: Path, header: list[str]) -> list[str]:
    for position, name in enumerate(header, start=1):
        if _UNDECODABLE.search(name):
            raise UsageError(f"{path}: column {position} of the header is not UTF-8 text (save the file as UTF-8)")
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise UsageError(f"{path}: the header names {', '.join(map(repr, repeated))} more than once")
    return header


def _csv_row(header: list[str], cells: list[str]) -> Row:
    if len(cells) != len(header):
        return RowProblem({"_row": [f"{len(cells)} cells where the header has {len(header)} columns"]})
    undecodable = {name: [problem] for name, cell in zip(header, cells, strict=True) if (problem := _undecodable(cell))}
    if undecodable:
        return RowProblem(undecodable)
    return nested_from_dotted(_present(dict(zip(header, cells, strict=True))))


def _undecodable(text: str) -> str | None:
    """What is wrong with `text` if it holds bytes that were not UTF-8 (decoded with surrogateescape)."""
    found = None if text.isascii() else _UNDECODABLE.search(text)
    if found is None:
        return None
    return f"not UTF-8 text (byte 0x{ord(found.group()) - 0xDC00:02X} at character {found.start() + 1})"


def nested_from_dotted(row: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys (CSV headers) as nested dicts; a dotted key clashing with a plain one stays as it is (the
    contract then refuses it by name)."""
    nested: dict[str, Any] = {k: v for k, v in row.items() if "." not in k}
    for key, value in row.items():
        if "." not in key:
            continue
        parent, leaf = key.split(".", 1)
        child = nested.setdefault(parent, {})
        if isinstance(child, dict):
            child[leaf] = value
        else:
            nested[key] = value
    return nested


# ---------------------------------------------------------------------------------------- JSON Lines


def _json_rows(path: Path) -> Iterator[Row]:
    with path.open(encoding="utf-8-sig", errors="surrogateescape") as stream:
        for line in stream:
            if line.strip():
                yield _json_row(line)


def _json_row(line: str) -> Row:
    undecodable = _undecodable(line)
    if undecodable:
        return RowProblem({"_row": [undecodable]})
    try:
        value = json.loads(line, parse_constant=_refuse_constant)
    except RecursionError:  # nested beyond what the parser walks; the contract bounds what it does parse
        return RowProblem({"_row": ["nested too deeply to be an event"]})
    except ValueError as error:  # JSONDecodeError is a ValueError
        return RowProblem({"_row": [f"not JSON: {error}"]})
    if not isinstance(value, dict):
        return RowProblem({"_row": [f"a row must be a JSON object, not {_json_kind(value)}"]})
    return _present(value)


def _refuse_constant(name: str) -> Any:
    """Python's json reads NaN and Infinity; JSON has no such values (and a NaN cell would read as missing)."""
    raise ValueError(f"{name} is not a JSON value")


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    return "a number"


# ------------------------------------------------------------------------------------------- Parquet


def _parquet_file(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as error:
        raise UsageError(f"{path}: not a readable Parquet file ({error})") from None


def _data_columns(file: pq.ParquetFile) -> list[str]:
    return [name for name in file.schema_arrow.names if not _PANDAS_INDEX.fullmatch(name)]


def _parquet_rows(path: Path, chunk_size: int, text_columns: frozenset[str]) -> Iterator[Row]:
    file = _parquet_file(path)
    columns = _data_columns(file)
    batches = file.iter_batches(batch_size=chunk_size, columns=columns)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as error:
            raise UsageError(f"{path}: not a readable Parquet file ({error})") from None
        for row in batch.to_pylist():
            yield {name: _json_like(value, name in text_columns) for name, value in _present(row).items()}


def _json_like(value: Any, as_text: bool) -> Any:
    """A Parquet value as the contract reads JSON: times as ISO 8601 text; whole numbers as digits where
    the contract wants text (an id column stored as integers, or as floats because a cell was empty)."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if as_text and not isinstance(value, bool):
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
    return value


def _present(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if v is not None and v != "" and not (isinstance(v, float) and math.isnan(v))}


# ------------------------------------------------------------------------------------------- writing


class RecordWriter:
    """Writes dict records chunk by chunk; nested values become JSON text in CSV and Parquet.

    With `columns` (names and Arrow types, in order), every CSV and Parquet chunk has exactly those columns
    whatever keys its records have (a part absent from the first records does not go missing, nor break a
    later chunk), and a file that gets no record still has them: a header, a typed empty table. Without,
    they come from the first chunk."""

    def __init__(self, path: Path, columns: Mapping[str, pa.DataType] | None = None) -> None:
        self.path = path
        self.kind = format_of(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._schema = pa.schema(list(columns.items())) if columns is not None else None
        self._stream: Any = None
        self._csv: csv.DictWriter[str] | None = None
        self._parquet: pq.ParquetWriter | None = None

    def write(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        if self.kind == "jsonl":
            self._open_jsonl()
            self._stream.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
            return
        flat = [{k: _flat(v) for k, v in r.items()} for r in records]
        if self.kind == "csv":
            self._open_csv(list(flat[0]))
            assert self._csv is not None
            self._csv.writerows(flat)
            return
        if self._schema is None:
            table = pa.Table.from_pylist(flat)
        else:
            text = [field.name for field in self._schema if pa.types.is_string(field.type)]
            table = pa.Table.from_pylist([_texts(r, text) for r in flat], schema=self._schema)
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self.path, table.schema)
        self._parquet.write_table(table.cast(self._parquet.schema))

    def write_table(self, table: pa.Table) -> None:
        """Records already as columns (the fast engine's decisions): Parquet as they are, else row by row."""
        if table.num_rows == 0:
            return
        if self.kind != "parquet":
            self.write(table.to_pylist())
            return
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self.path, self._schema or table.schema)
        self._parquet.write_table(table.cast(self._parquet.schema))

    def _open_jsonl(self) -> None:
        if self._stream is None:
            self._stream = self.path.open("w", encoding="utf-8")

    def _open_csv(self, first_keys: list[str]) -> None:
        if self._csv is None:
            names = self._schema.names if self._schema is not None else first_keys
            self._stream = self.path.open("w", newline="", encoding="utf-8")
            self._csv = csv.DictWriter(self._stream, fieldnames=names)
            self._csv.writeheader()

    def close(self) -> None:
        """Finish the file; one that got no record is still written, empty, so a run's output always exists."""
        if self._parquet is None and self._stream is None:
            if self.kind == "parquet":
                pq.write_table(self._schema.empty_table() if self._schema is not None else pa.table({}), self.path)
            elif self.kind == "csv" and self._schema is not None:
                self._open_csv([])  # the header alone
                self._close_stream()
            else:
                self.path.write_text("")
            return
        if self._parquet is not None:
            self._parquet.close()
        self._close_stream()

    def _close_stream(self) -> None:
        if self._stream is not None:
            self._stream.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def flat_value(value: Any) -> Any:
    """A value as CSV and Parquet outputs hold it: nested values as JSON text."""
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value


_flat = flat_value


def _texts(record: dict[str, Any], text_columns: list[str]) -> dict[str, Any]:
    """`record` with the values of its text columns as text (a kept column mixing numbers and words)."""
    for name in text_columns:
        value = record.get(name)
        if value is not None and not isinstance(value, str):
            record[name] = str(value)
    return record
