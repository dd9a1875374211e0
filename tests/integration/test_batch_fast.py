"""The fast batch engine against today's row-by-row path: the same decisions, cell for cell."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from services.disease_risk.samples import sample_assessments
from services.registry import runtime
from shared.batch import engine
from shared.core.scoring import ScoringCore
from shared.doors.batch import rescore
from shared.settings import Settings
from tests.fixtures.events import many_payments
from tests.fixtures.outputs import CHANGING, assert_same_cells, by_event

ROWS = 100_000


@pytest.fixture(scope="module")
def core(fraud_settings_module: Settings) -> ScoringCore:
    return runtime("fraud", fraud_settings_module).core


@pytest.fixture(scope="module")
def fraud_settings_module(
    tmp_path_factory: pytest.TempPathFactory, fraud_model_dir: Path, fraud_data_dir: Path
) -> Settings:
    folder = tmp_path_factory.mktemp("fast")
    return Settings.from_env(
        {},
        model_dir=fraud_model_dir,
        data_dir=fraud_data_dir,
        control_dir=folder / "control",
        state_url=f"sqlite:///{folder / 'state.sqlite3'}",
        decisions_url="none",
        pseudonym_key=b"fast-engine-test-key",
    )


def test_fast_engine_decides_100000_events_exactly_as_the_row_path(
    core: ScoringCore, fraud_data_dir: Path, tmp_path: Path
) -> None:
    """100,000 payments through both engines: the same events decided, every score within 1e-9 and every
    other cell (decision, band, rule hits, reasons, fingerprints, ids, versions) identical."""
    source = tmp_path / "payments.csv"
    pacsv.write_csv(pa.Table.from_pandas(many_payments(fraud_data_dir, ROWS), preserve_index=False), source)
    fast = rescore(core, source, tmp_path / "fast.parquet", progress=False, engine="fast")
    rows = rescore(core, source, tmp_path / "rows.parquet", progress=False, engine="rows")
    assert (fast.rows, fast.scored, fast.rejected) == (rows.rows, rows.scored, rows.rejected) == (ROWS, ROWS, 0)
    assert fast.decisions == rows.decisions
    a = assert_same_cells(tmp_path / "fast.parquet", tmp_path / "rows.parquet")
    assert set(a["decision"]) >= {"approve", "review"}  # the test decides something other than the default


def test_week_by_week_slices_decide_as_one_slice_of_the_whole_input(
    core: ScoringCore, fraud_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each week scored as its own slice (its features answered over only the six weeks its windows look
    back) decides as the whole input in one slice: the same decisions, every score within 1e-9, the reasons'
    features the same (their values and words, from sums of amounts, to rounding) and every other cell identical."""
    source = tmp_path / "payments.parquet"
    payments = many_payments(fraud_data_dir, 40_000)
    weeks = (pd.to_datetime(payments["timestamp"]).max() - pd.to_datetime(payments["timestamp"]).min()).days / 7
    assert weeks > 8  # some slices leave history behind their look-back
    pq.write_table(pa.Table.from_pandas(payments, preserve_index=False), source)
    whole = rescore(core, source, tmp_path / "whole.parquet", progress=False, engine="fast")
    monkeypatch.setattr(engine, "SLICE_ROWS", 1)
    weekly = rescore(core, source, tmp_path / "weekly.parquet", progress=False, engine="fast")
    assert weekly.decisions == whole.decisions and weekly.scored == whole.scored == 40_000
    a = assert_same_cells(tmp_path / "weekly.parquet", tmp_path / "whole.parquet", exempt=["reasons"])
    b = by_event(tmp_path / "whole.parquet")
    for weekly_reasons, whole_reasons in zip(a["reasons"], b["reasons"], strict=True):
        found, expected = json.loads(weekly_reasons), json.loads(whole_reasons)
        assert [r["feature"] for r in found] == [r["feature"] for r in expected]
        assert np.allclose([r["value"] for r in found], [r["value"] for r in expected], rtol=1e-12, atol=0)


def test_dotted_csv_headers_are_nested_fields_on_the_fast_engine_as_on_the_row_path(
    disease_settings: Settings, tmp_path: Path
) -> None:
    """Assessments in CSV with their laboratory values under dotted headers (`total_cholesterol.value`,
    `.unit`) are decided on the fast engine as on the row path: every good row scored, the one bad unit
    rejected naming `total_cholesterol.unit`, the same decisions cell for cell."""
    assessments = sample_assessments(300, seed=7)
    assessments[12]["total_cholesterol"] = {"value": 5.2, "unit": "mmol/dL"}
    source = tmp_path / "assessments.csv"
    pd.json_normalize(assessments).to_csv(source, index=False)
    assert "total_cholesterol.value" in source.read_text().splitlines()[0]
    disease = runtime("disease", disease_settings).core
    fast = rescore(disease, source, tmp_path / "fast.parquet", progress=False, engine="fast")
    rows = rescore(disease, source, tmp_path / "rows.parquet", progress=False, engine="rows")
    assert (fast.rows, fast.scored, fast.rejected) == (rows.rows, rows.scored, rows.rejected) == (300, 299, 1)
    fast_rejects = [json.loads(line) for line in (tmp_path / "fast.parquet.rejects.jsonl").read_text().splitlines()]
    rows_rejects = [json.loads(line) for line in (tmp_path / "rows.parquet.rejects.jsonl").read_text().splitlines()]
    assert fast_rejects == rows_rejects
    assert fast_rejects[0]["row"] == 13 and "total_cholesterol.unit" in fast_rejects[0]["fields"]
    a, b = by_event(tmp_path / "fast.parquet"), by_event(tmp_path / "rows.parquet")
    assert list(a.index) == list(b.index)
    for column in a.columns.difference(list(CHANGING)):
        assert a[column].fillna("<null>").equals(b[column].fillna("<null>")), column
