"""The claims feature set: the policy's rating factors (what the frequency model reads) and the
policy's claim history from `insurance.claims` (what the rules read), computed offline (batch, with a
claims file) and online (HTTP and stream, over the state store) by one definition.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from shared.features.featureset import FeatureBatch, FeatureSet
from shared.features.windows import DAY_SECONDS, prior_events_offline, prior_events_online
from shared.state import Record, StateStore

HISTORY_NAMESPACE = "claims.policy"
HISTORY_WINDOW_DAYS = 365

FEATURE_SET = FeatureSet(
    name="motor_tpl_frequency",
    version="1",
    features=("area", "bonus_malus", "driver_age", "vehicle_age", "vehicle_brand", "vehicle_power"),
    categorical=("area", "vehicle_brand"),
)
HISTORY_COLUMNS = ("claims_last_12m", "days_since_last_claim")


def claims_history_offline(policies: Sequence[Mapping[str, Any]], claims: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Claim-history columns for each validated policy event, from validated claim notifications."""
    events = pd.DataFrame(
        {"policy_id": [str(p["policy_id"]) for p in policies], "ts": [p["timestamp"].timestamp() for p in policies]}
    )
    return _claims_history(events, claims)


def _claims_history(events: pd.DataFrame, claims: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The claim-history columns of policy events given as their policy ids and times (seconds)."""
    history = pd.DataFrame(
        {"policy_id": [str(c["policy_id"]) for c in claims], "ts": [c["timestamp"].timestamp() for c in claims]}
    )
    counts, latest = prior_events_offline(
        events, history, entity="policy_id", ts="ts", window_seconds=HISTORY_WINDOW_DAYS * DAY_SECONDS
    )
    return pd.DataFrame(
        {"claims_last_12m": counts, "days_since_last_claim": (events["ts"].to_numpy() - latest) / DAY_SECONDS}
    )


def claims_history_online(policies: Sequence[Mapping[str, Any]], store: StateStore) -> pd.DataFrame:
    """The same columns from the state store (claim notifications recorded by `record_claims`)."""
    stamps = [p["timestamp"].timestamp() for p in policies]
    histories = store.fetch(HISTORY_NAMESPACE, [str(p["policy_id"]) for p in policies], float("-inf"), max(stamps))
    counts, since_last = [], []
    for policy, now in zip(policies, stamps, strict=True):
        count, latest = prior_events_online(histories[str(policy["policy_id"])], now, HISTORY_WINDOW_DAYS * DAY_SECONDS)
        counts.append(float(count))
        since_last.append(np.nan if latest is None else (now - latest) / DAY_SECONDS)
    return pd.DataFrame({"claims_last_12m": counts, "days_since_last_claim": since_last})


def record_claims(claims: Sequence[Mapping[str, Any]], store: StateStore) -> None:
    """Claim notifications into the policies' histories (idempotent per claim id)."""
    store.append(
        HISTORY_NAMESPACE,
        [
            (
                str(c["policy_id"]),
                Record(ts=c["timestamp"].timestamp(), id=str(c["claim_id"]), value=float(c["amount"])),
            )
            for c in claims
        ],
    )


def policy_features(policies: Sequence[Mapping[str, Any]], history: pd.DataFrame) -> FeatureBatch:
    """The policies' rating factors (the model's features) beside their claim-history columns, as one
    batch built once."""
    factors = [[p[name] for name in FEATURE_SET.features] for p in policies]
    past = history[pd.Index(HISTORY_COLUMNS, dtype=object)].to_numpy(dtype=object).tolist()
    return FeatureBatch.build(FEATURE_SET, [f + h for f, h in zip(factors, past, strict=True)], extra=HISTORY_COLUMNS)


def policy_features_of_columns(
    data: pa.Table, claims: Sequence[Mapping[str, Any]], answer_from: int = 0
) -> FeatureBatch:
    """`policy_features` over `claims_history_offline` of policies given as columns (the batch engine's form:
    each field as loaded, the time a UTC instant), for the rows from `answer_from` on: the same batch."""
    data = data.slice(answer_from)
    seconds = data.column("timestamp").cast(pa.int64()).to_numpy() / 1e6  # as datetime.timestamp() divides
    events = pd.DataFrame({"policy_id": data.column("policy_id").cast(pa.string()).to_pylist(), "ts": seconds})
    history = _claims_history(events, claims)
    factors = [list(row) for row in zip(*(data.column(n).to_pylist() for n in FEATURE_SET.features), strict=True)]
    past = history[pd.Index(HISTORY_COLUMNS, dtype=object)].to_numpy(dtype=object).tolist()
    return FeatureBatch.build(FEATURE_SET, [f + h for f, h in zip(factors, past, strict=True)], extra=HISTORY_COLUMNS)


REASON_TEXTS = {
    "bonus_malus": "bonus-malus {} (50 is the best, 100 the entry level)",
    "driver_age": "driver aged {}",
    "vehicle_age": "vehicle {} years old",
    "vehicle_power": "vehicle power class {}",
    "vehicle_brand": "vehicle brand {}",
    "area": "area {} (A rural to E urban)",
}


def reason_text(feature: str, row: Mapping[str, Any]) -> str:
    """A rating factor that raised the expected frequency, in an underwriter's words."""
    value = row[feature]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return REASON_TEXTS.get(feature, f"{feature} = {{}}").format(value)
