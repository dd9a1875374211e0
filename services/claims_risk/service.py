"""The claims service's scoring core: expected annual claim frequency of a motor policy, its relative
risk against the portfolio, claim history from `insurance.claims`, and the claims ruleset."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from services.claims_risk.features import (
    FEATURE_SET,
    HISTORY_COLUMNS,
    claims_history_offline,
    claims_history_online,
    policy_features,
    record_claims,
)
from services.claims_risk.schemas import ClaimSchema, PolicySchema
from shared.core.scoring import HistoryInput, Prediction, ServiceDefinition
from shared.events.topics import CLAIMS_DECISIONS, INSURANCE_CLAIMS, INSURANCE_POLICIES
from shared.modeling.registry import RegisteredModel
from shared.modeling.trees import load_tree_model
from shared.state import StateStore

SERVICE = "claims"


def predict_annual_frequency(model: RegisteredModel, features: pd.DataFrame) -> Prediction:
    """Expected claims per policy-year (the Poisson model's mean for an exposure of one year), and that
    against the portfolio's mean frequency on the training data (from the model card)."""
    scores = np.exp(model.model.raw(features))  # the Poisson model's log-mean, as CatBoost's "Exponent"
    portfolio = float(model.card["portfolio_frequency"])
    return Prediction(scores, [{"expected_frequency": float(s), "relative_risk": float(s) / portfolio} for s in scores])


def online_features(policies: Sequence[Mapping[str, Any]], store: StateStore) -> pd.DataFrame:
    return policy_features(policies, claims_history_online(policies, store))


def offline_features(policies: Sequence[Mapping[str, Any]], history: Mapping[str, Sequence[Any]]) -> pd.DataFrame:
    return policy_features(policies, claims_history_offline(policies, history.get("claims", [])))


REASON_TEXTS = {
    "bonus_malus": "bonus-malus {} (50 is the best, 100 the entry level)",
    "driver_age": "driver aged {}",
    "vehicle_age": "vehicle {} years old",
    "vehicle_power": "vehicle power class {}",
    "vehicle_brand": "vehicle brand {}",
    "area": "area {} (A rural to E urban)",
}


def reason_text(feature: str, features: Mapping[str, Any]) -> str:
    """A rating factor that raised the expected frequency, in an underwriter's words."""
    value = features[feature]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return REASON_TEXTS.get(feature, f"{feature} = {{}}").format(value)


DEFINITION = ServiceDefinition(
    name=SERVICE,
    event_schema=PolicySchema,
    event_id_field="policy_id",
    entity_field="policy_id",
    feature_set=FEATURE_SET,
    online_features=online_features,
    offline_features=offline_features,
    reason_text=reason_text,
    predict=predict_annual_frequency,
    ruleset_path=Path(__file__).with_name("rules.yaml"),
    input_topics=(INSURANCE_POLICIES,),
    output_topic=CLAIMS_DECISIONS,
    history_inputs=(HistoryInput("claims", INSURANCE_CLAIMS, ClaimSchema, record_claims),),
    extra_features=HISTORY_COLUMNS,
    measure_names=("expected_frequency", "relative_risk"),
    load_model=load_tree_model,
)
