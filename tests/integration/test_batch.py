"""The batch door: `risk rescore` over CSV, JSON Lines and Parquet, with rejected rows reported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from services.fraud_detection.dataset import simulate
from services.fraud_detection.features import events_from_simulation
from shared.settings import Settings
from tests.fixtures.services import service_environment


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return events_from_simulation(simulate(n_customers=30, n_terminals=60, nb_days=20, processes=1))


def rescore(settings: Settings, source: Path, output: Path) -> subprocess.CompletedProcess[str]:
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
    order, and identical scores, decisions and rule hits whatever the formats."""
    frame = pd.DataFrame(events)
    writers = {
        ".csv": lambda p: frame.to_csv(p, index=False),
        ".jsonl": lambda p: frame.to_json(p, orient="records", lines=True),
        ".parquet": lambda p: frame.to_parquet(p, index=False),
    }
    results = []
    for source_suffix, output_suffix in [(".csv", ".jsonl"), (".jsonl", ".parquet"), (".parquet", ".csv")]:
        source, output = tmp_path / f"in{source_suffix}", tmp_path / f"out{output_suffix}"
        writers[source_suffix](source)
        done = rescore(fraud_settings, source, output)
        assert done.returncode == 0, done.stderr
        assert f"{len(events)} scored, 0 rejected of {len(events)} rows" in done.stdout
        rows = read(output)
        assert [str(r["event_id"]) for r in rows] == [e["transaction_id"] for e in events]
        results.append(
            [
                (
                    r["score"],
                    r["decision"],
                    r["rule_hits"]
                    if isinstance(r["rule_hits"], str)
                    else json.dumps(r["rule_hits"], ensure_ascii=False),
                )
                for r in rows
            ]
        )
    assert results[0] == results[1] == results[2]
    assert {decision for _, decision, _ in results[0]} >= {"approve"}


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
    done = rescore(fraud_settings, source, output)
    assert done.returncode == 0, done.stderr
    assert "47 scored, 3 rejected of 50 rows" in done.stdout
    rejects = [json.loads(line) for line in (tmp_path / "out.jsonl.rejects.jsonl").read_text().splitlines()]
    assert [(r["row"], sorted(r["fields"])) for r in rejects] == [(4, ["amount"]), (11, ["timestamp"]), (21, ["_row"])]
    assert len(read(output)) == 47
