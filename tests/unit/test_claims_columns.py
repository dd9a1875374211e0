"""The claims service's column-wise features (the fast batch engine's form) against its row form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

from services.claims_risk.schemas import ClaimSchema, PolicySchema
from services.claims_risk.service import ClaimsService
from shared.batch.scoring import loaded_events
from shared.batch.validation import contract_columns, validate_table
from shared.core.contract import Contract

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _policies(count: int) -> pa.Table:
    rng = np.random.default_rng(3)
    rows = [
        {
            "quote_id": f"Q-{k}",
            "policy_id": f"P-{k % 40}",
            "kind": "renewal" if k % 3 else "quote",
            "timestamp": (START + timedelta(hours=7 * k, seconds=int(rng.integers(0, 3600)))).isoformat(),
            "exposure": f"{rng.uniform(0.05, 2.0):.3f}",
            "area": "ABCDE"[k % 5],
            "bonus_malus": str(int(rng.integers(50, 200))),
            "driver_age": f"{int(rng.integers(18, 90))}.0",
            "vehicle_age": str(int(rng.integers(0, 30))),
            "vehicle_power": str(int(rng.integers(4, 15))),
            "vehicle_brand": ("B1", "B12", "B2", "B5")[k % 4],
        }
        for k in range(count)
    ]
    return pa.table({name: pa.array([r[name] for r in rows]) for name in rows[0]})


def test_column_wise_policy_features_equal_the_row_form_over_a_claims_history() -> None:
    """Policies validated column-wise and their claims (a year's window, days since the last claim) give the
    very batch `offline_features` gives their loaded events, for the rows answered (`answer_from` on)."""
    valid = validate_table(Contract(PolicySchema), _policies(400), first_row=1)
    assert not valid.rejects and valid.data.num_rows == 400
    claims_contract = Contract(ClaimSchema)
    assert contract_columns(claims_contract) is not None  # claims (an amount defaulting to 0) too
    claims = [
        claims_contract.validate(
            {"claim_id": f"C-{k}", "policy_id": f"P-{k % 25}", "timestamp": (START + timedelta(days=9 * k)).isoformat()}
        ).data
        for k in range(60)
    ]
    service = ClaimsService()
    for answer_from in (0, 150):
        found = service.offline_features_of_columns(valid.data, {"claims": claims}, answer_from)
        events = loaded_events(valid.data.slice(answer_from))
        expected = service.offline_features(events, {"claims": claims})
        assert found is not None and len(found) == 400 - answer_from
        assert found.rows == expected.rows
        np.testing.assert_array_equal(found.model_matrix, expected.model_matrix)
    assert any(row["claims_last_12m"] > 0 for row in expected.rows)
