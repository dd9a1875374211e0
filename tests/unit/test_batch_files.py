"""Reading batch inputs row by row, bad rows included, and writing typed outputs (shared/files.py)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shared.errors import UsageError
from shared.files import RecordWriter, RowProblem, columns_of, read_chunks, read_rows


def rows_of(path: Path, text_columns: tuple[str, ...] = ()) -> list[Any]:
    return [row for chunk in read_rows(path, 2, text_columns) for row in chunk]


def test_a_ragged_csv_row_is_a_problem_in_its_place_and_the_rows_around_it_are_read(tmp_path: Path) -> None:
    """A row with a cell too many and one with a cell too few are each a RowProblem saying so, in their
    place; the rows before and after are read as usual."""
    source = tmp_path / "in.csv"
    source.write_text("id,amount\n1,2.5\n2,3.5,surplus\n3\n4,4.5\n")
    rows = rows_of(source)
    assert rows[0] == {"id": "1", "amount": "2.5"} and rows[3] == {"id": "4", "amount": "4.5"}
    assert rows[1] == RowProblem({"_row": ["3 cells where the header has 2 columns"]})
    assert rows[2] == RowProblem({"_row": ["1 cells where the header has 2 columns"]})


def test_a_byte_that_is_not_utf8_is_named_by_its_cell_and_spoils_only_its_row(tmp_path: Path) -> None:
    """An invalid UTF-8 byte in one CSV cell is a problem naming that column and the byte; in a JSON line,
    the line's problem; every other row of either file is read."""
    csv_source, json_source = tmp_path / "in.csv", tmp_path / "in.jsonl"
    csv_source.write_bytes(b"id,name\n1,Ana\n2,Jo\xffe\n3,Li\n")
    json_source.write_bytes(b'{"id": "1"}\n{"id": "2\xc3"}\n{"id": "3"}\n')
    csv_rows, json_rows = rows_of(csv_source), rows_of(json_source)
    assert csv_rows[1] == RowProblem({"name": ["not UTF-8 text (byte 0xFF at character 3)"]})
    assert [csv_rows[0], csv_rows[2]] == [{"id": "1", "name": "Ana"}, {"id": "3", "name": "Li"}]
    assert isinstance(json_rows[1], RowProblem) and "not UTF-8 text (byte 0xC3" in json_rows[1].fields["_row"][0]
    assert [json_rows[0], json_rows[2]] == [{"id": "1"}, {"id": "3"}]


def test_a_byte_order_mark_is_read_as_one(tmp_path: Path) -> None:
    """A UTF-8 byte-order mark at the start of a CSV or JSON Lines file is not part of the first column's
    name (nor a broken first line)."""
    csv_source, json_source = tmp_path / "in.csv", tmp_path / "in.jsonl"
    csv_source.write_bytes(b"\xef\xbb\xbfid,amount\n1,2\n")
    json_source.write_bytes(b'\xef\xbb\xbf{"id": "1"}\n')
    assert rows_of(csv_source) == [{"id": "1", "amount": "2"}]
    assert columns_of(csv_source) == ["id", "amount"]
    assert rows_of(json_source) == [{"id": "1"}]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply to be an event"),
        ("[1, 2]", "a row must be a JSON object, not an array"),
        ('"text"', "a row must be a JSON object, not a string"),
        ("null", "a row must be a JSON object, not null"),
        ("{broken", "not JSON: "),
        ('{"amount": NaN}', "not JSON: NaN is not a JSON value"),
    ],
)
def test_a_json_line_that_is_no_event_object_is_a_problem_in_its_place(line: str, problem: str, tmp_path: Path) -> None:
    """A line nested beyond the parser, a value that is not an object, broken JSON or NaN: a problem
    saying which, between two rows that are read."""
    source = tmp_path / "in.jsonl"
    source.write_text(f'{{"id": "1"}}\n{line}\n{{"id": "3"}}\n')
    rows = rows_of(source)
    assert rows[0] == {"id": "1"} and rows[2] == {"id": "3"}
    assert isinstance(rows[1], RowProblem) and rows[1].fields["_row"][0].startswith(problem)


def test_parquet_numbers_and_times_read_as_the_contract_reads_json(tmp_path: Path) -> None:
    """Integer ids (and ids stored as floats because a cell was empty) read as their digits where the
    contract wants text, other numbers stay numbers, timestamps and dates read as ISO 8601 text, and
    pandas' unnamed index column is no column of the data."""
    source = tmp_path / "in.parquet"
    frame = pd.DataFrame(
        {
            "id": [4217, 4218],
            "card": [12.0, None],
            "amount": [3, 4],
            "at": pd.to_datetime(["2018-04-01T01:11:00Z", "2018-04-02T00:00:00Z"]),
            "day": [dt.date(2018, 4, 1), dt.date(2018, 4, 2)],
        },
        index=[7, 9],
    )
    frame.to_parquet(source)
    assert columns_of(source) == ["id", "card", "amount", "at", "day"]
    assert rows_of(source, ("id", "card")) == [
        {"id": "4217", "card": "12", "amount": 3, "at": "2018-04-01T01:11:00+00:00", "day": "2018-04-01"},
        {"id": "4218", "amount": 4, "at": "2018-04-02T00:00:00+00:00", "day": "2018-04-02"},
    ]


def test_a_file_that_cannot_be_read_at_all_is_a_usage_error(tmp_path: Path) -> None:
    """Not Parquet under a .parquet name, a CSV header that is not UTF-8, or a header naming a column
    twice: one UsageError naming the file, rather than a traceback or every row rejected."""
    broken, header, twice = tmp_path / "broken.parquet", tmp_path / "header.csv", tmp_path / "twice.csv"
    broken.write_text("hello")
    header.write_bytes(b"id,n\xe9e\n1,2\n")
    twice.write_text("id,id\n1,2\n")
    with pytest.raises(UsageError, match="broken.parquet: not a readable Parquet file"):
        rows_of(broken)
    with pytest.raises(UsageError, match="column 2 of the header is not UTF-8 text"):
        rows_of(header)
    with pytest.raises(UsageError, match="names 'id' more than once"):
        columns_of(twice)


def test_the_dict_reader_marks_a_bad_row_for_callers_that_take_dicts(tmp_path: Path) -> None:
    """read_chunks, for the doors that take dicts only, gives a bad row as `_unparsable` with its problems."""
    source = tmp_path / "in.csv"
    source.write_text("id\n1\n2,3\n")
    assert [row for chunk in read_chunks(source, 10) for row in chunk] == [
        {"id": "1"},
        {"_unparsable": {"_row": ["2 cells where the header has 1 columns"]}},
    ]


COLUMNS = {"event_id": pa.string(), "score": pa.float64(), "shadow": pa.string(), "replayed": pa.bool_()}


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_writer_with_columns_writes_them_all_whatever_the_records_hold(suffix: str, tmp_path: Path) -> None:
    """With its columns given, a writer that gets no record still writes them (a CSV header, a typed empty
    Parquet table), and a part missing from the first chunk but present in a later one is neither lost
    nor a failure."""
    empty, filled = tmp_path / f"empty{suffix}", tmp_path / f"filled{suffix}"
    with RecordWriter(empty, COLUMNS):
        pass
    with RecordWriter(filled, COLUMNS) as writer:
        writer.write([{"event_id": "a", "score": 0.5}])
        writer.write([{"event_id": "b", "score": 1, "shadow": {"score": 0.2}, "replayed": True}])
    if suffix == ".parquet":
        assert pq.read_schema(empty) == pa.schema(list(COLUMNS.items()))
        rows = pq.read_table(filled).to_pylist()
        assert rows[1] == {"event_id": "b", "score": 1.0, "shadow": json.dumps({"score": 0.2}), "replayed": True}
        assert rows[0]["shadow"] is None
    else:
        assert empty.read_text().splitlines() == ["event_id,score,shadow,replayed"]
        lines = filled.read_text().splitlines()
        assert lines[0] == "event_id,score,shadow,replayed" and lines[2].startswith('b,1,"{""score"": 0.2}",True')
