"""Reading inputs and writing outputs of batch jobs: CSV, JSON Lines or Parquet, chosen by file suffix,
in chunks so a large file is never parsed or written in one piece."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from shared.errors import UsageError

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}


def format_of(path: Path) -> str:
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise UsageError(f"{path}: unknown format (use {', '.join(sorted(FORMATS))})") from None


def read_chunks(path: Path, chunk_size: int) -> Iterator[list[dict[str, Any]]]:
    """Rows as dicts, `chunk_size` at a time. Empty and null cells are left out, so they read as missing.

    CSV cells stay text (the contract's schema converts and checks them), and a dotted CSV header makes a
    nested field (`total_cholesterol.value` and `total_cholesterol.unit` make `total_cholesterol`); a JSON
    Lines line that is not a JSON object is yielded as `{"_unparsable": line}` so the caller can reject it
    with its row number.
    """
    kind = format_of(path)
    if kind == "parquet":
        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_size):
            yield [_present(row) for row in batch.to_pylist()]
        return
    with path.open(newline="" if kind == "csv" else None, encoding="utf-8") as stream:
        rows = csv.DictReader(stream) if kind == "csv" else (_json_line(line) for line in stream if line.strip())
        chunk: list[dict[str, Any]] = []
        for row in rows:
            chunk.append(_nested(_present(row)) if kind == "csv" else _present(row))
            if len(chunk) == chunk_size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


def _json_line(line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return {"_unparsable": line.strip()[:200]}
    return value if isinstance(value, dict) else {"_unparsable": line.strip()[:200]}


def _present(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if v is not None and v != "" and not (isinstance(v, float) and math.isnan(v))}


def _nested(row: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys as nested dicts; a dotted key clashing with a plain one stays as it is (the contract then
    refuses it by name)."""
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


class RecordWriter:
    """Writes dict records chunk by chunk; nested values become JSON text in CSV and Parquet."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.kind = format_of(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._stream: Any = None
        self._csv: csv.DictWriter[str] | None = None
        self._parquet: pq.ParquetWriter | None = None

    def write(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        if self.kind == "jsonl":
            if self._stream is None:
                self._stream = self.path.open("w", encoding="utf-8")
            self._stream.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
            return
        flat = [{k: _flat(v) for k, v in r.items()} for r in records]
        if self.kind == "csv":
            if self._csv is None:
                self._stream = self.path.open("w", newline="", encoding="utf-8")
                self._csv = csv.DictWriter(self._stream, fieldnames=list(flat[0]))
                self._csv.writeheader()
            self._csv.writerows(flat)
            return
        table = pa.Table.from_pylist(flat)
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self.path, table.schema)
        self._parquet.write_table(table.cast(self._parquet.schema))

    def close(self) -> None:
        """Finish the file; one that got no record is still written, empty, so a run's output always exists."""
        if self._parquet is None and self._stream is None:
            if self.kind == "parquet":
                pq.write_table(pa.table({}), self.path)
            else:
                self.path.write_text("")
            return
        if self._parquet is not None:
            self._parquet.close()
        if self._stream is not None:
            self._stream.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _flat(value: Any) -> Any:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value
