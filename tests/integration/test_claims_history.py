"""A policy's claim history built online from claim notifications equals the history computed offline."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np

from services.claims_risk.features import claims_history_offline, claims_history_online, record_claims
from services.claims_risk.schemas import ClaimSchema
from shared.state import StateStore

START = datetime(2024, 1, 1, tzinfo=UTC)


def test_online_claim_history_equals_offline(state_store: StateStore) -> None:
    """Claims and policy events interleaved in time over three years, for 80 policies: at every policy
    event, claims in the last 12 months and days since the last claim agree between the two forms,
    including policies with no claim (count 0, no last claim) and a claim on the very same second."""
    rng = random.Random(5)
    claims, policies = [], []
    for n in range(600):
        policy = f"P{rng.randrange(80)}"
        moment = START + timedelta(seconds=rng.randrange(3 * 365 * 86_400))
        if rng.random() < 0.4:
            claims.append(
                ClaimSchema().load(
                    {
                        "claim_id": f"C{n}",
                        "policy_id": policy,
                        "timestamp": moment.isoformat(),
                        "amount": rng.randrange(100, 5000),
                    }
                )
            )
        else:
            policies.append({"policy_id": policy, "timestamp": moment})
    policies.append({"policy_id": claims[0]["policy_id"], "timestamp": claims[0]["timestamp"]})
    policies.append({"policy_id": "never-claimed", "timestamp": START})

    expected = claims_history_offline(policies, claims)
    for chunk in range(0, len(claims), 50):  # notifications arrive in several deliveries, one twice
        record_claims(claims[chunk : chunk + 50], state_store)
    record_claims(claims[:50], state_store)
    actual = claims_history_online(policies, state_store)

    np.testing.assert_array_equal(actual["claims_last_12m"].to_numpy(), expected["claims_last_12m"].to_numpy())
    np.testing.assert_allclose(
        actual["days_since_last_claim"].to_numpy(),
        expected["days_since_last_claim"].to_numpy(),
        rtol=0,
        atol=1e-9,
        equal_nan=True,
    )
    assert expected["claims_last_12m"].max() >= 2 and expected["days_since_last_claim"].isna().any()
    assert expected["days_since_last_claim"].iloc[-2] == 0.0
