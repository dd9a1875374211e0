"""The batch door: `risk rescore` over CSV, JSON Lines and Parquet, with rejected rows reported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from services.fraud_detection.dataset import simulate
from services.fraud_detection.features import events_from_simulation
from shared.settings import Settings
from tests.fixtures.services import service_environment


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return events_from_simulation(simulate(n_customers=30, n_terminals=60, nb_days=20, processes=1))


def rescore(settings: Settings, source: Path, output: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "rescore",
            "fraud",
            "--input",
            str(source),
            "--output",
            str(output),
            "--chunk-size",
            "64",
            *options,
        ],
        env=service_environment(settings),
        capture_output=True,
        text=True,
        timeout=300,
    )


def read(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".parquet":
        return pd.read_parquet(path).to_dict(orient="records")
    if path.suffix == ".csv":
        return pd.read_csv(path, dtype={"event_id": str, "entity_id": str}).to_dict(orient="records")
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_format_in_and_out_gives_the_same_decisions(
    events: list[dict[str, Any]], fraud_settings: Settings, tmp_path: Path
) -> None:
    """The same events through CSV, JSON Lines and Parquet, in and out: one decision per row, in input
    order, and identical decisions and rule hits whatever the formats, scores within 1e-9 (JSON Lines in
    goes row by row through the compiled trees, the others through the fast engine's CatBoost evaluator)."""
    frame = pd.DataFrame(events)
    writers = {
        ".csv": lambda p: frame.to_csv(p, index=False),
        ".jsonl": lambda p: frame.to_json(p, orient="records", lines=True),
        ".parquet": lambda p: frame.to_parquet(p, index=False),
    }
    results, scores = [], []
    for source_suffix, output_suffix in [(".csv", ".jsonl"), (".jsonl", ".parquet"), (".parquet", ".csv")]:
        source, output = tmp_path / f"in{source_suffix}", tmp_path / f"out{output_suffix}"
        writers[source_suffix](source)
        done = rescore(fraud_settings, source, output)
        assert done.returncode == 0, done.stderr
        assert f"{len(events)} scored, 0 rejected of {len(events)} rows" in done.stdout
        rows = read(output)
        assert [str(r["event_id"]) for r in rows] == [e["transaction_id"] for e in events]
        scores.append(np.array([float(r["score"]) for r in rows]))
        results.append(
            [
                (
                    r["decision"],
                    r["rule_hits"]
                    if isinstance(r["rule_hits"], str)
                    else json.dumps(r["rule_hits"], ensure_ascii=False),
                )
                for r in rows
            ]
        )
    assert results[0] == results[1] == results[2]
    assert np.abs(scores[0] - scores[1]).max() <= 1e-9 and np.abs(scores[0] - scores[2]).max() <= 1e-9
    assert {decision for decision, _ in results[0]} >= {"approve"}


def test_bad_rows_are_reported_with_their_fields_and_the_rest_scored(
    events: list[dict[str, Any]], fraud_settings: Settings, tmp_path: Path
) -> None:
    """Rows with a negative amount, a naive timestamp or a broken line land in <output>.rejects.jsonl with
    row number and field; every other row is scored."""
    lines = [json.dumps(e) for e in events[:50]]
    lines[3] = json.dumps({**events[3], "amount": -4})
    lines[10] = json.dumps({**events[10], "timestamp": "2018-08-08 10:00:00"})
    lines[20] = "{broken"
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("\n".join(lines) + "\n")
    done = rescore(fraud_settings, source, output, "--max-rejects", "3")
    assert done.returncode == 0, done.stderr
    assert "47 scored, 3 rejected of 50 rows" in done.stdout
    rejects = [json.loads(line) for line in (tmp_path / "out.jsonl.rejects.jsonl").read_text().splitlines()]
    assert [(r["row"], sorted(r["fields"])) for r in rejects] == [(4, ["amount"]), (11, ["timestamp"]), (21, ["_row"])]
    assert len(read(output)) == 47


def test_rejects_beyond_the_bound_fail_the_run_after_writing_everything(
    events: list[dict[str, Any]], fraud_settings: Settings, tmp_path: Path
) -> None:
    """By default any reject fails the run (exit 1, saying so), yet every good row and every reject is
    written; an extra column can be kept beside the decisions instead of rejecting every row."""
    rows = [{**e, "is_fraud": i % 2} for i, e in enumerate(events[:40])]
    source, output = tmp_path / "labelled.csv", tmp_path / "out.jsonl"
    pd.DataFrame(rows).to_csv(source, index=False)
    failed = rescore(fraud_settings, source, output)
    assert failed.returncode == 1 and "40 rows rejected, more than --max-rejects 0" in failed.stderr
    assert output.exists() and output.read_text() == ""
    assert len((tmp_path / "out.jsonl.rejects.jsonl").read_text().splitlines()) == 40

    kept = rescore(fraud_settings, source, output, "--keep", "is_fraud")
    assert kept.returncode == 0, kept.stderr
    assert [str(r["is_fraud"]) for r in read(output)] == [str(i % 2) for i in range(40)]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--input", "missing.csv", "--output", "out.jsonl"], "missing.csv: no such input file"),
        (["--input", "{source}", "--output", "out.xlsx"], "unknown format"),
        (["--input", "{source}", "--output", "out.jsonl", "--history", "nonsense"], "--history takes NAME=PATH"),
        (["--input", "{source}", "--output", "out.jsonl", "--keep", "score"], "a decision field of that name"),
        (["--input", "{source}", "--output", "out.jsonl", "--keep", "customer_id"], "personal data is never written"),
    ],
)
def test_misuse_ends_in_one_line_and_a_non_zero_exit(
    arguments: list[str], message: str, events: list[dict[str, Any]], fraud_settings: Settings, tmp_path: Path
) -> None:
    """A missing input, an unknown output format, a malformed --history, a --keep that would overwrite a
    decision field or write a personal field as given: exit 2 with a one-line message naming the problem,
    no traceback."""
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(events[0]) + "\n")
    argv = [a.replace("{source}", str(source)) for a in arguments]
    argv = [str(tmp_path / a) if a.endswith((".csv", ".jsonl", ".xlsx")) and "/" not in a else a for a in argv]
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "rescore", "fraud", *argv],
        env=service_environment(fraud_settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_claims_without_their_history_are_refused_unless_asked(claims_settings: Settings, tmp_path: Path) -> None:
    """Scoring claims without the claim history would change decisions silently: refused, naming the flag."""
    source = tmp_path / "policies.jsonl"
    source.write_text("")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "rescore",
            "claims",
            "--input",
            str(source),
            "--output",
            str(tmp_path / "out.parquet"),
        ],
        env=service_environment(claims_settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "--history claims=FILE" in done.stderr and "--no-history" in done.stderr
    empty = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "rescore",
            "claims",
            "--input",
            str(source),
            "--output",
            str(tmp_path / "out.parquet"),
            "--no-history",
        ],
        env=service_environment(claims_settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert empty.returncode == 0, empty.stderr
    assert pd.read_parquet(tmp_path / "out.parquet").empty
