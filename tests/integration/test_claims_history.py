"""A policy's claim history built online from claim notifications equals the history computed offline, in the
state store and through the stream worker reading both topics in event-time order."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from services.claims_risk.features import claims_history_offline, claims_history_online, record_claims
from services.claims_risk.schemas import ClaimSchema, PolicySchema
from shared.settings import Settings
from shared.state import StateStore
from tests.fixtures.services import rescored, running_worker

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


def test_claims_published_after_the_renewals_they_precede_are_seen_by_them(
    claims_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1,500 renewals over six months on insurance.policies, claim notifications on insurance.claims, each claim
    recorded before some renewals of its policy. Every renewal is published first and every claim after
    them, then one worker starts on that backlog: ordered by event time across the two topics, each renewal
    sees exactly the claims before it, so its claim history, score, decision and rule hits equal the batch
    door's with the same claims as `--history`."""
    from dataclasses import replace

    import pandas as pd

    from services.claims_risk.dataset import load_policies, policy_event
    from shared.decisions import DecisionStore
    from shared.events.broker import EmbeddedBroker, ensure_topics
    from shared.events.topics import ALL_TOPICS, CLAIMS_DECISIONS, INSURANCE_CLAIMS, INSURANCE_POLICIES
    from tests.fixtures.kafka_io import collect, decision_payloads, publish

    rng = random.Random(11)
    renewals, claims = [], []
    for n, row in enumerate(load_policies().sample(500, random_state=8).itertuples()):
        for k in range(3):  # three renewals a policy, two months apart, each with claims in between
            moment = START + timedelta(days=60 * k, minutes=37 * n)
            renewals.append(
                policy_event(row, quote_id=f"Q{n}-{k}", policy_id=f"P{row.policy_id}", kind="renewal", timestamp=moment)
            )
            for c in range(rng.choice([0, 0, 1, 2])):
                claims.append(
                    {
                        "claim_id": f"C{n}-{k}-{c}",
                        "policy_id": f"P{row.policy_id}",
                        "timestamp": (moment - timedelta(days=rng.randrange(1, 59))).isoformat(),
                        "amount": float(rng.randrange(200, 9000)),
                    }
                )
    claims.sort(key=lambda c: c["timestamp"])

    settings = replace(claims_settings, state_url=f"sqlite:///{tmp_path / 'stream-state.sqlite3'}")
    monkeypatch.setenv("RISK_STREAM_BATCH_SIZE", "50")  # many micro-batches: the order between them matters
    with EmbeddedBroker(port=0) as broker:
        ensure_topics(broker.bootstrap_servers, ALL_TOPICS)
        settings = replace(settings, kafka_bootstrap_servers=broker.bootstrap_servers)
        publish(broker.bootstrap_servers, INSURANCE_POLICIES, renewals, "policy_id")
        publish(broker.bootstrap_servers, INSURANCE_CLAIMS, claims, "policy_id")
        with running_worker("claims", settings, tmp_path / "worker.log"):
            records = collect(broker.bootstrap_servers, CLAIMS_DECISIONS, lambda r: len(r) >= len(renewals), 180)
    streamed = {d["event_id"]: d for d in decision_payloads(records)}
    assert len(streamed) == len(renewals), (tmp_path / "worker.log").read_text()[-3000:]

    history = tmp_path / "claims.csv"
    pd.DataFrame(claims).to_csv(history, index=False)
    in_batch = rescored("claims", renewals, claims_settings, tmp_path, "--history", f"claims={history}")

    recorded = DecisionStore(settings.decisions_url).find("claims", [r["quote_id"] for r in renewals])
    loaded = [PolicySchema().load(r) for r in renewals]
    expected = claims_history_offline(loaded, [ClaimSchema().load(c) for c in claims])
    seen_claims = 0
    for position, renewal in enumerate(renewals):
        key = renewal["quote_id"]
        features = recorded[key].features
        assert features["claims_last_12m"] == expected["claims_last_12m"].iloc[position], key
        since = expected["days_since_last_claim"].iloc[position]
        assert (np.isnan(since) and features["days_since_last_claim"] is None) or np.isclose(
            features["days_since_last_claim"], since, rtol=0, atol=1e-9
        ), key
        s, b = streamed[key], in_batch[key]
        assert abs(s["score"] - b["score"]) <= 1e-9, key
        assert (s["decision"], s["rule_hits"]) == (b["decision"], b["rule_hits"]), key
        seen_claims += int(features["claims_last_12m"])
    assert seen_claims > 50, "the renewals should have claims before them to see"
