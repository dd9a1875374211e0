"""Disease assessments on the fast engine against the row path: the same decisions and details, cell for
cell, with the rows validated column-wise and decided in bulk rather than by `ScoringCore.decide`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from services.disease_risk.samples import sample_assessments
from services.registry import runtime
from shared.core.contract import ValidEvent
from shared.core.scoring import ScoringCore
from shared.doors.batch import rescore
from shared.features.featureset import FeatureBatch
from shared.settings import Settings
from tests.fixtures.outputs import assert_same_cells

ROWS = 3_000


def test_fast_engine_decides_assessments_and_their_details_exactly_as_the_row_path(
    disease_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """3,000 assessments in CSV (laboratory values in mg/dL or mmol/L under dotted headers, optional answers
    given or left out, a few bad rows) through both engines: the same rows rejected, every score within
    1e-9, every other cell (decision, band, rule hits, reasons, measures, details with each equation's
    result, fingerprints) identical; and on the fast engine no good row is decided one by one by the core."""
    assessments = sample_assessments(ROWS, seed=11)
    assessments[5]["total_cholesterol"] = {"value": 5.2, "unit": "mmol/dL"}  # an unknown unit
    assessments[9]["diastolic_bp"] = assessments[9]["systolic_bp"]  # refused by the schema's own check
    assessments[14]["smoking_status"] = "heavy_smoker" if not assessments[14]["smoker"] else "non_smoker"
    source = tmp_path / "assessments.csv"
    pd.json_normalize(assessments).to_csv(source, index=False)
    core = runtime("disease", disease_settings).core
    decided_one_by_one: list[int] = []
    decide = ScoringCore.decide

    def counting(self: ScoringCore, events: Sequence[ValidEvent], features: FeatureBatch, started: float) -> Any:
        decided_one_by_one.append(len(events))
        return decide(self, events, features, started)

    monkeypatch.setattr(ScoringCore, "decide", counting)
    fast = rescore(core, source, tmp_path / "fast.parquet", progress=False, engine="fast")
    on_fast_engine = sum(decided_one_by_one)
    rows = rescore(core, source, tmp_path / "rows.parquet", progress=False, engine="rows")
    assert (fast.rows, fast.scored, fast.rejected) == (rows.rows, rows.scored, rows.rejected) == (ROWS, ROWS - 3, 3)
    assert on_fast_engine == 0
    fast_rejects = (tmp_path / "fast.parquet.rejects.jsonl").read_text().splitlines()
    assert fast_rejects == (tmp_path / "rows.parquet.rejects.jsonl").read_text().splitlines()
    assert fast.decisions == rows.decisions and len(fast.decisions) == 3  # routine, follow_up and urgent
    a = assert_same_cells(tmp_path / "fast.parquet", tmp_path / "rows.parquet")
    details = [json.loads(d) for d in a["details"]]
    assert all(len(d["equations"]) == 5 and set(d["conditions"]) == {"diabetes", "chd"} for d in details)
    assert any(e["applicable"] for d in details for e in d["equations"])
