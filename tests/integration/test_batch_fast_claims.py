"""Claims on the fast batch engine with their claims history file: the same decisions and rejects as the
row path, the history's bad rows reported with their source and row number."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from services.claims_risk.dataset import load_policies, policy_event
from services.registry import runtime
from shared.batch import engine
from shared.core.scoring import ScoringCore
from shared.doors import batch
from shared.doors.batch import rescore
from shared.settings import Settings
from tests.fixtures.events import POLICY_TIME
from tests.fixtures.outputs import assert_same_cells


@pytest.fixture
def core(claims_settings: Settings) -> ScoringCore:
    return runtime("claims", claims_settings).core


@pytest.fixture
def fast_runs(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The inputs the fast engine scored to the end (a fall back to the row path would leave this empty)."""
    done: list[Path] = []
    real = batch.rescore_columns

    def spied(core: ScoringCore, input_path: Path, *args: Any, **kwargs: Any) -> engine.FastSummary:
        summary = real(core, input_path, *args, **kwargs)
        done.append(input_path)
        return summary

    monkeypatch.setattr(batch, "rescore_columns", spied)
    return done


def book(count: int, minutes_apart: int = 43) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`count` real freMTPL policies renewed `minutes_apart` apart (3,000 at 43 minutes span 13 weeks), and
    claims on some of them over the two years before (several for a few, so some are referred or declined)."""
    rng = random.Random(11)
    frame = load_policies().sample(count, random_state=5)
    policies, claims = [], []
    for n, row in enumerate(frame.itertuples()):
        moment = POLICY_TIME + timedelta(minutes=minutes_apart * n)
        policy_id = f"P{row.policy_id % (count // 2)}"  # most policies renewed twice, weeks apart
        policies.append(policy_event(row, quote_id=f"Q{n}", policy_id=policy_id, kind="renewal", timestamp=moment))
        for k in range(rng.choice([0, 0, 0, 1, 1, 2, 3])):
            claims.append(
                {
                    "claim_id": f"C{n}-{k}",
                    "policy_id": policy_id,
                    "timestamp": (moment - timedelta(days=rng.randrange(1, 700))).isoformat(),
                    "amount": float(rng.randrange(200, 9000)),
                }
            )
    return policies, claims


def _with_bad_claims(claims: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The claims with three bad rows among them (rows 3, 10 and the last): a date that is none, a negative
    amount, a missing policy id."""
    bad = [dict(c) for c in claims]
    bad[2]["timestamp"] = "not a date"
    bad[9]["amount"] = -5.0
    del bad[-1]["policy_id"]
    return bad


def _rejects(output: Path) -> list[dict[str, Any]]:
    path = output.with_name(output.name + ".rejects.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("history_format", ["csv", "jsonl", "parquet"])
def test_fast_engine_decides_claims_with_a_claims_history_exactly_as_the_row_path(
    core: ScoringCore, tmp_path: Path, fast_runs: list[Path], history_format: str
) -> None:
    """3,000 policies in CSV with a claims history (CSV, JSON Lines or Parquet, three bad rows in it) and two
    bad policies: the fast engine really scores them, and decides every good policy as the row path does
    (scores within 1e-9; decision, band, rule hits, reasons, measures identical), some referred or
    declined for their claims; the rejects files are identical, the history's bad rows with their source."""
    policies, claims = book(3000)
    policies[5]["driver_age"] = 16
    policies[2999]["area"] = "Z"
    source, history = tmp_path / "policies.csv", tmp_path / f"claims.{history_format}"
    pd.DataFrame(policies).to_csv(source, index=False)
    bad_claims = _with_bad_claims(claims)
    if history_format == "jsonl":
        history.write_text("".join(json.dumps(c) + "\n" for c in bad_claims))
    elif history_format == "csv":
        pd.DataFrame(bad_claims).to_csv(history, index=False)
    else:
        pd.DataFrame(bad_claims).to_parquet(history, index=False)
    paths = {"claims": history}
    fast = rescore(core, source, tmp_path / "fast.parquet", progress=False, history_paths=paths, engine="fast")
    assert fast_runs == [source]
    rows = rescore(core, source, tmp_path / "rows.parquet", progress=False, history_paths=paths, engine="rows")
    assert (fast.rows, fast.scored, fast.rejected) == (rows.rows, rows.scored, rows.rejected) == (3000, 2998, 2)
    assert fast.decisions == rows.decisions
    decided = assert_same_cells(tmp_path / "fast.parquet", tmp_path / "rows.parquet")
    assert {"accept", "refer", "decline"} <= set(decided["decision"])
    fast_rejects, rows_rejects = _rejects(tmp_path / "fast.parquet"), _rejects(tmp_path / "rows.parquet")
    assert fast_rejects == rows_rejects
    assert [(r.get("source"), r["row"]) for r in fast_rejects] == [
        ("claims", 3),
        ("claims", 10),
        ("claims", len(claims)),
        (None, 6),
        (None, 3000),
    ]


def test_a_bad_history_row_is_reported_with_its_source_and_row_number_on_the_fast_engine(
    core: ScoringCore, tmp_path: Path, fast_runs: list[Path]
) -> None:
    """Good policies with a claims CSV whose fourth row has no date: the fast engine scores every policy,
    writes the claim's reject with `"source": "claims"`, its row number and the field at fault, and keeps
    the rejects file (the input's rows all good, so none of them counted as rejected)."""
    policies, claims = book(200)
    claims[3]["timestamp"] = "yesterday"
    source, history, output = tmp_path / "policies.csv", tmp_path / "claims.csv", tmp_path / "out.parquet"
    pd.DataFrame(policies).to_csv(source, index=False)
    pd.DataFrame(claims).to_csv(history, index=False)
    done = rescore(core, source, output, progress=False, history_paths={"claims": history}, engine="fast")
    assert fast_runs == [source]
    assert (done.rows, done.scored, done.rejected) == (200, 200, 0)
    assert done.rejects == output.with_name(output.name + ".rejects.jsonl")
    [reject] = _rejects(output)
    assert reject["source"] == "claims" and reject["row"] == 4 and reject["error"] == "invalid_input"
    assert list(reject["fields"]) == ["timestamp"]


def test_every_week_of_claims_reads_the_whole_claims_history(
    core: ScoringCore, tmp_path: Path, fast_runs: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each week of policies scored as a slice of its own (claims keep no look-back limit) decides as the
    whole input in one slice, and as the row path: a policy renewed weeks after a claim filed long before
    still sees it."""
    policies, claims = book(1500, minutes_apart=120)  # 18 weeks
    source, history = tmp_path / "policies.parquet", tmp_path / "claims.csv"
    pd.DataFrame(policies).to_parquet(source, index=False)
    pd.DataFrame(claims).to_csv(history, index=False)
    paths = {"claims": history}
    monkeypatch.setattr(engine, "SLICE_ROWS", 1)
    weekly = rescore(core, source, tmp_path / "weekly.parquet", progress=False, history_paths=paths, engine="fast")
    assert fast_runs == [source]
    rows = rescore(core, source, tmp_path / "rows.parquet", progress=False, history_paths=paths, engine="rows")
    assert weekly.decisions == rows.decisions and weekly.scored == rows.scored == 1500
    decided = assert_same_cells(tmp_path / "weekly.parquet", tmp_path / "rows.parquet")
    assert {"refer", "decline"} & set(decided["decision"])
