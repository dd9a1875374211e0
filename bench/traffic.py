"""Realistic traffic for the benchmarks, per service: the events to send, the key they are sent under,
and the state a running service would already hold (card histories, claim histories)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pandas as pd

from shared.events.topics import (
    CLAIMS_DECISIONS,
    DISEASE_DECISIONS,
    FRAUD_DECISIONS,
    HEALTH_ASSESSMENTS,
    INSURANCE_POLICIES,
    PAYMENTS_TRANSACTIONS,
    Topic,
)
from shared.privacy import pseudonymise
from shared.settings import Settings
from shared.state import StateStore

FRAUD_REPLAY_FROM = pd.Timestamp("2018-08-08")


@dataclass(frozen=True)
class Traffic:
    service: str
    events: list[dict[str, Any]]
    key: str
    input_topic: Topic
    output_topic: Topic
    warm: Callable[[StateStore], None]
    history: dict[str, list[dict[str, Any]]]  # what the batch door reads beside the events
    description: str


def traffic(service: str, settings: Settings, count: int) -> Traffic:
    return {"fraud": _fraud, "claims": _claims, "disease": _disease}[service](settings, count)


def _fraud(settings: Settings, count: int) -> Traffic:
    from services.fraud_detection.dataset import load_or_simulate
    from services.fraud_detection.features import events_from_simulation, frame_from_simulation, record_history
    from services.fraud_detection.train import SIZES

    simulated = load_or_simulate(settings.data_dir, **asdict(SIZES["demo"]))
    times = simulated["tx_datetime"]
    history = frame_from_simulation(
        simulated[(times < FRAUD_REPLAY_FROM) & (times >= FRAUD_REPLAY_FROM - pd.Timedelta(days=40))]
    )
    replay = simulated[times >= FRAUD_REPLAY_FROM].head(count)
    return Traffic(
        "fraud",
        events_from_simulation(replay),
        "customer_id",
        PAYMENTS_TRANSACTIONS,
        FRAUD_DECISIONS,
        lambda store: record_history(store, history, partial(pseudonymise, key=settings.pseudonym_key)),
        {},
        f"simulated transactions from {FRAUD_REPLAY_FROM:%Y-%m-%d} in time order, card and terminal state warmed "
        f"with the 40 days before; fraud share {replay['is_fraud'].mean():.4f}",
    )


def _claims(settings: Settings, count: int) -> Traffic:
    from services.claims_risk.dataset import load_policies, policy_event
    from services.claims_risk.features import record_claims
    from services.claims_risk.schemas import ClaimSchema

    rng = random.Random(1)
    now = datetime(2026, 11, 2, tzinfo=UTC)
    book = load_policies()
    book = book.sample(count, replace=count > len(book), random_state=2)
    policies, claims = [], []
    for n, row in enumerate(book.itertuples()):
        policy_id = f"POL-{n:07d}"
        moment = now + timedelta(seconds=n)
        policies.append(policy_event(row, quote_id=f"Q-{n:07d}", policy_id=policy_id, kind="renewal", timestamp=moment))
        for k in range(int(row.claim_count)):
            claims.append(
                {
                    "claim_id": f"CLM-{n}-{k}",
                    "policy_id": policy_id,
                    "timestamp": (now - timedelta(days=rng.randrange(1, 700))).isoformat(),
                    "amount": 1000.0,
                }
            )
    schema = ClaimSchema()
    return Traffic(
        "claims",
        policies,
        "policy_id",
        INSURANCE_POLICIES,
        CLAIMS_DECISIONS,
        lambda store: record_claims([schema.load(c) for c in claims], store),
        {"claims": claims},
        f"renewals of freMTPL2freq policies, each with its observed claims placed in the last two years "
        f"({len(claims)} claims)",
    )


def _disease(settings: Settings, count: int) -> Traffic:
    from services.disease_risk.samples import sample_assessments

    return Traffic(
        "disease",
        sample_assessments(count, seed=3),
        "patient_id",
        HEALTH_ASSESSMENTS,
        DISEASE_DECISIONS,
        lambda store: None,
        {},
        "assessments built from held-out Framingham and Pima participants (services/disease_risk/samples.py), "
        "labs in mg/dL or mmol/L at random",
    )
