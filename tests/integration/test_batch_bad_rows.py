"""`risk rescore` survives bad rows: each is a reported reject and the rest is scored; byte-order marks,
Parquet's own types and empty inputs are read as a user means them; misuse is one line and a non-zero exit."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from services.fraud_detection.dataset import simulate
from services.fraud_detection.features import events_from_simulation
from shared.core.decision import DecisionSchema
from shared.doors.batch import output_columns
from shared.settings import Settings
from tests.fixtures.services import risk


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return events_from_simulation(simulate(n_customers=20, n_terminals=40, nb_days=8, processes=1))[:60]


def rescore(settings: Settings, source: Path, output: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return risk(
        settings, "rescore", "fraud", "--input", str(source), "--output", str(output), "--no-progress", *options
    )


def rejects_of(output: Path) -> list[tuple[int, list[str]]]:
    lines = Path(f"{output}.rejects.jsonl").read_text().splitlines()
    return [(r["row"], sorted(r["fields"])) for r in map(json.loads, lines)]


def test_each_bad_csv_row_is_a_reject_and_the_rest_is_scored(
    events: list[dict[str, Any]], fraud_settings: Settings, tmp_path: Path
) -> None:
    """A CSV opening with a byte-order mark, with a row of one cell too many, one of a cell too few and
    one holding a byte that is not UTF-8: those three rows are rejects (row number, field at fault), every
    other row is scored, and the run exits 0 as --max-rejects 3 allows."""
    source, output = tmp_path / "in.csv", tmp_path / "out.jsonl"
    pd.DataFrame(events).to_csv(source, index=False)
    lines = source.read_bytes().splitlines()  # lines[0] is the header, lines[n] data row n
    lines[2] += b",surplus"
    lines[5] = lines[5].rsplit(b",", 1)[0]
    lines[9] = lines[9].replace(b",", b",\xff", 1)
    source.write_bytes(b"\xef\xbb\xbf" + b"\n".join(lines) + b"\n")

    done = rescore(fraud_settings, source, output, "--max-rejects", "3")
    assert done.returncode == 0, done.stderr
    assert f"{len(events) - 3} scored, 3 rejected of {len(events)} rows" in done.stdout
    assert rejects_of(output) == [(2, ["_row"]), (5, ["_row"]), (9, ["timestamp"])]
    scored = [json.loads(line)["event_id"] for line in output.read_text().splitlines()]
    assert scored == [e["transaction_id"] for i, e in enumerate(events, start=1) if i not in {2, 5, 9}]


def test_each_bad_json_line_is_a_reject_and_the_rest_is_scored(
    events: list[dict[str, Any]], fraud_settings: Settings, tmp_path: Path
) -> None:
    """JSON Lines opening with a byte-order mark, with a line nested 100,000 deep, a line that is an array,
    a line with a byte that is not UTF-8, a row with a field too many and one with a field missing: five
    rejects naming their fields, the rest scored; by default (--max-rejects 0) the run then exits 1."""
    lines = [json.dumps(e).encode() for e in events]
    lines[1] = b"[" * 100_000 + b"]" * 100_000
    lines[3] = b"[1, 2, 3]"
    lines[6] = lines[6].replace(b'"amount"', b'"amount\xc3"')
    lines[10] = json.dumps({**events[10], "is_fraud": 1}).encode()
    lines[12] = json.dumps({k: v for k, v in events[12].items() if k != "terminal_id"}).encode()
    source, output = tmp_path / "in.jsonl", tmp_path / "out.parquet"
    source.write_bytes(b"\xef\xbb\xbf" + b"\n".join(lines) + b"\n")

    done = rescore(fraud_settings, source, output)
    assert done.returncode == 1
    assert "5 rows rejected, more than --max-rejects 0" in done.stderr and "Traceback" not in done.stderr
    assert f"{len(events) - 5} scored, 5 rejected of {len(events)} rows" in done.stdout
    assert rejects_of(output) == [
        (2, ["_row"]),
        (4, ["_row"]),
        (7, ["_row"]),
        (11, ["is_fraud"]),
        (13, ["terminal_id"]),
    ]
    assert len(pd.read_parquet(output)) == len(events) - 5


def test_parquet_with_integer_ids_numbers_and_timestamps_is_scored_as_its_text_twin(
    events: list[dict[str, Any]], fraud_settings: Settings, tmp_path: Path
) -> None:
    """A Parquet file whose id columns are integers, whose amounts are whole numbers in some rows and
    whose timestamps are a timestamp column gives the same inputs (fingerprints), scores and decisions as
    the JSON Lines file of the same events with text ids and ISO 8601 times."""
    rounded = [{**e, "amount": float(round(e["amount"]))} if i % 2 else e for i, e in enumerate(events)]
    text_source, text_output = tmp_path / "in.jsonl", tmp_path / "text.jsonl"
    text_source.write_text("".join(json.dumps(e) + "\n" for e in rounded))
    frame = pd.DataFrame(rounded)
    for column in ("transaction_id", "customer_id", "terminal_id"):
        frame[column] = frame[column].astype("int64")
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    typed_source, typed_output = tmp_path / "in.parquet", tmp_path / "typed.jsonl"
    frame.to_parquet(typed_source, index=False)
    assert pa.types.is_integer(pq.read_schema(typed_source).field("customer_id").type)

    for source, output in ((text_source, text_output), (typed_source, typed_output)):
        done = rescore(fraud_settings, source, output)
        assert done.returncode == 0, done.stderr
        assert f"{len(events)} scored, 0 rejected" in done.stdout
    text, typed = ([json.loads(line) for line in o.read_text().splitlines()] for o in (text_output, typed_output))
    keys = ("event_id", "entity_id", "input_fingerprint", "score", "decision", "rule_hits")
    assert [[d[k] for k in keys] for d in typed] == [[d[k] for k in keys] for d in text]


@pytest.mark.parametrize("content", ["", "header", "parquet", "jsonl"])
def test_an_empty_input_writes_an_empty_typed_output_and_succeeds(
    content: str, events: list[dict[str, Any]], fraud_settings: Settings, tmp_path: Path
) -> None:
    """No rows at all (an empty CSV, a header alone, a Parquet file of no rows, an empty JSON Lines file):
    exit 0, and the output exists with every decision column and its type, no rejects file."""
    suffix = {"": ".csv", "header": ".csv", "parquet": ".parquet", "jsonl": ".jsonl"}[content]
    source, output = tmp_path / f"in{suffix}", tmp_path / "out.parquet"
    if content == "parquet":
        pd.DataFrame(events).iloc[:0].to_parquet(source, index=False)
    else:
        source.write_text(",".join(events[0]) + "\n" if content == "header" else "")
    done = rescore(fraud_settings, source, output)
    assert done.returncode == 0, done.stderr
    assert "0 scored, 0 rejected of 0 rows" in done.stdout
    assert pq.read_schema(output) == pa.schema(list(output_columns(DecisionSchema()).items()))
    assert pq.read_metadata(output).num_rows == 0
    assert not Path(f"{output}.rejects.jsonl").exists()


def test_a_fully_rejected_input_writes_its_empty_output_and_exits_as_max_rejects_says(
    events: list[dict[str, Any]], fraud_settings: Settings, tmp_path: Path
) -> None:
    """Every row rejected: the empty CSV output still has its header (the decision columns and the kept
    one), every reject is written, and the exit is 1 by default, 0 when --max-rejects allows them all."""
    source, output = tmp_path / "in.csv", tmp_path / "out.csv"
    pd.DataFrame([{**e, "amount": -1, "label": 1} for e in events[:12]]).to_csv(source, index=False)
    failed = rescore(fraud_settings, source, output, "--keep", "label")
    assert failed.returncode == 1 and "12 rows rejected, more than --max-rejects 0" in failed.stderr
    header = output.read_text().splitlines()
    assert header == [",".join([*output_columns(DecisionSchema()), "label"])]
    assert [fields for _, fields in rejects_of(output)] == [["amount"]] * 12

    allowed = rescore(fraud_settings, source, output, "--keep", "label", "--max-rejects", "12")
    assert allowed.returncode == 0, allowed.stderr
    assert output.read_text().splitlines() == header


def test_kept_columns_keep_their_type_and_a_contract_field_can_be_kept(
    events: list[dict[str, Any]], fraud_settings: Settings, tmp_path: Path
) -> None:
    """--keep with a Parquet output: an integer label stays an integer column; keeping a field the
    contract reads (the amount) copies it beside the decision and still scores with it."""
    source, output = tmp_path / "in.jsonl", tmp_path / "out.parquet"
    source.write_text("".join(json.dumps({**e, "is_fraud": i % 2}) + "\n" for i, e in enumerate(events)))
    done = rescore(fraud_settings, source, output, "--keep", "is_fraud", "--keep", "amount")
    assert done.returncode == 0, done.stderr
    schema = pq.read_schema(output)
    assert pa.types.is_integer(schema.field("is_fraud").type) and pa.types.is_floating(schema.field("amount").type)
    rows = pd.read_parquet(output).to_dict(orient="records")
    assert [(r["is_fraud"], r["amount"]) for r in rows] == [(i % 2, e["amount"]) for i, e in enumerate(events)]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--input", "{notparquet}", "--output", "{out}/o.jsonl"], "not a readable Parquet file"),
        (["--input", "{tmp}/in.xlsx", "--output", "{out}/o.jsonl"], "in.xlsx: unknown format"),
        (["--input", "{csv}", "--output", "{tmp}/nowhere/o.jsonl"], "there is no folder"),
        (["--input", "{csv}", "--output", "{folder}"], "is a folder"),
        (["--input", "{csv}", "--output", "{csv}"], "would overwrite the input"),
        (["--input", "{csv}", "--output", "{out}/o.jsonl", "--keep", "is_frad"], "the closest is 'is_fraud'"),
        (["--input", "{jsonl}", "--output", "{out}/o.jsonl", "--keep", "is_frad"], "no row of"),
        (["--input", "{csv}", "--output", "{out}/o.jsonl", "--history", "claims={csv}"], "fraud has no history"),
        (["--input", "{csv}", "--output", "{out}/o.jsonl", "--history", "claims"], "--history takes NAME=PATH"),
        (["--input", "{csv}", "--output", "{out}/o.jsonl", "--max-rejects", "-1"], "--max-rejects -1"),
        (["--input", "{csv}", "--output", "{out}/o.jsonl", "--chunk-size", "0"], "--chunk-size 0"),
    ],
)
def test_misuse_of_rescore_is_one_line_and_a_non_zero_exit(
    arguments: list[str], message: str, events: list[dict[str, Any]], fraud_settings: Settings, tmp_path: Path
) -> None:
    """Input that is not Parquet under a .parquet name, an unknown input suffix, an output folder that does
    not exist, an output that is a folder or the input itself, a misspelt --keep (CSV or JSON Lines), a
    history the service has not or a malformed one, a negative --max-rejects, a chunk of no rows: exit 2
    with one line naming the problem, no traceback, and the input untouched."""
    labelled = [{**e, "is_fraud": 0} for e in events[:3]]
    paths = {
        "tmp": tmp_path,
        "out": tmp_path / "out",
        "folder": tmp_path / "folder.parquet",
        "csv": tmp_path / "in.csv",
        "jsonl": tmp_path / "in.jsonl",
        "notparquet": tmp_path / "in.parquet",
    }
    paths["out"].mkdir()
    paths["folder"].mkdir()
    pd.DataFrame(labelled).to_csv(paths["csv"], index=False)
    paths["jsonl"].write_text("".join(json.dumps(e) + "\n" for e in labelled))
    paths["notparquet"].write_text("not parquet")
    (tmp_path / "in.xlsx").write_text("x")
    before = paths["csv"].read_bytes()
    argv = [a.format(**paths) for a in arguments]
    done = risk(fraud_settings, "rescore", "fraud", "--no-progress", *argv)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert paths["csv"].read_bytes() == before
