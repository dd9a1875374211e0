"""The fast engine's spool of valid rows by time slice: in memory while they fit in one slice, on disk beyond,
reading back the same rows in the same order either way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from shared.batch import engine
from shared.batch.engine import Spool


def _chunks(rows: int = 900, size: int = 300, seed: int = 0) -> list[tuple[pa.Table, np.ndarray]]:
    """Chunks of rows with their slice numbers: the first in time order, the others shuffled."""
    rng = np.random.default_rng(seed)
    keys = np.sort(rng.integers(3, 9, rows))
    out = []
    for start in range(0, rows, size):
        part = keys[start : start + size] if start == 0 else rng.permutation(keys[start : start + size])
        table = pa.table({"row": np.arange(start, start + len(part)), "key": part, "text": [f"r{k}" for k in part]})
        out.append((table, part))
    return out


def _read_back(spool: Spool) -> dict[int, list[int]]:
    found = {}
    for key in spool.keys:
        table = spool.read(key)
        assert table is not None and table.column("key").to_pylist() == [key] * table.num_rows
        assert spool.read(key, ["row"]).column_names == ["row"]  # type: ignore[union-attr]
        found[key] = table.column("row").to_pylist()
    return found


def _expected(chunks: list[tuple[pa.Table, np.ndarray]]) -> dict[int, list[int]]:
    """Each slice's rows in the order they came: chunk after chunk, each chunk's rows in its own order."""
    expected: dict[int, list[int]] = {}
    for table, keys in chunks:
        for row, key in zip(table.column("row").to_pylist(), keys.tolist(), strict=True):
            expected.setdefault(key, []).append(row)
    return dict(sorted(expected.items()))


def test_rows_that_fit_in_a_slice_stay_in_memory_and_read_back_by_slice_in_order(tmp_path: Path) -> None:
    """An input whose rows fit in one slice is never written to disk, and each slice reads back its rows
    in the order they came (chunks in time order or not)."""
    spool = Spool(tmp_path)
    chunks = _chunks()
    for table, keys in chunks:
        spool.write(table, keys)
    spool.close()
    assert not list(tmp_path.iterdir())
    assert spool.rows == 900 and sum(spool.counts.values()) == 900
    assert _read_back(spool) == _expected(chunks)
    assert spool.read(99) is None


def test_rows_beyond_a_slice_spill_to_disk_kept_rows_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the rows outgrow a slice, those kept in memory go to disk first, then every later chunk: the
    slices read back exactly as if they had stayed in memory."""
    monkeypatch.setattr(engine, "SLICE_ROWS", 500)
    spool = Spool(tmp_path)
    chunks = _chunks()
    spool.write(*chunks[0])
    assert not list(tmp_path.iterdir())  # 300 rows: still in memory
    for table, keys in chunks[1:]:
        spool.write(table, keys)
    spool.close()
    assert not spool.kept and sorted(p.name for p in tmp_path.iterdir()) == [f"slice-{k}.parquet" for k in spool.keys]
    assert _read_back(spool) == _expected(chunks)
