"""The claims risk service: the expected annual claim frequency of a motor policy (a CatBoost Poisson model),
its relative risk against the portfolio, the policy's claim history from `insurance.claims`, and the claims
ruleset deciding accept / refer / decline."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pyarrow as pa

from services.claims_risk import features
from services.claims_risk.schemas import ClaimSchema, PolicySchema
from shared.core.service import EntityWindows, Event, History, HistoryInput, Prediction, Service
from shared.decisions import DecisionStore, OutcomeReport
from shared.events.topics import CLAIMS_DECISIONS, INSURANCE_CLAIMS, INSURANCE_POLICIES
from shared.features.featureset import FeatureBatch
from shared.modeling.registry import RegisteredModel
from shared.modeling.trees import TreeModel, load_tree_model
from shared.state import StateStore

CLAIM_HORIZON = timedelta(days=365)  # a quote prices a year of cover: the claims in it are its outcome


class ClaimsService(Service):
    """A policy's claim history is kept whole (claims are few, and `days_since_last_claim` reads back to the
    policy's first claim), so its state namespace has no retention."""

    name = "claims"
    event_schema = PolicySchema
    event_id_field = "quote_id"
    entity_field = "policy_id"
    feature_set = features.FEATURE_SET
    ruleset_path = Path(__file__).with_name("rules.yaml")
    input_topics = (INSURANCE_POLICIES,)
    output_topic = CLAIMS_DECISIONS
    history_inputs = (HistoryInput("claims", INSURANCE_CLAIMS, ClaimSchema, features.record_claims),)
    extra_features = features.HISTORY_COLUMNS
    entity_windows = (EntityWindows("policy_id", features.HISTORY_COLUMNS, history=("claims",)),)
    measure_names = ("expected_frequency", "relative_risk")
    list_subjects = MappingProxyType({"policies": "policy_id"})  # the contract carries no vehicle identifier
    outcomes = MappingProxyType(
        {"claimed": 1}
    )  # learnt from insurance.claims: a claim within the year after a decided quote

    def online_features(self, events: Sequence[Event], store: StateStore) -> FeatureBatch:
        return features.policy_features(events, features.claims_history_online(events, store))

    def offline_features(self, events: Sequence[Event], history: History) -> FeatureBatch:
        claims = features.claims_history_offline(events, history.get("claims", []))
        return features.policy_features(events, claims)

    def offline_features_of_columns(self, data: pa.Table, history: History, answer_from: int = 0) -> FeatureBatch:
        return features.policy_features_of_columns(data, history.get("claims", []), answer_from)

    def probability_of(self, scores: np.ndarray) -> np.ndarray:
        """The score is expected claims per year: the Poisson chance of at least one claim in a year."""
        return -np.expm1(-scores)

    def outcomes_from_history(
        self, history: HistoryInput, events: Sequence[Event], decisions: DecisionStore
    ) -> list[OutcomeReport]:
        """Each claim is the outcome of its policy's latest quote or renewal decided in the year before the loss."""
        reports = []
        for claim in events:
            loss = claim["timestamp"]
            decided = decisions.latest_for_entity(self.name, str(claim["policy_id"]), loss - CLAIM_HORIZON, loss)
            if decided is not None:
                reports.append(OutcomeReport(decided.event_id, "claimed", 1, history.topic.name, loss))
        return reports

    def predict(self, model: RegisteredModel, batch: FeatureBatch) -> Prediction:
        """Expected claims per policy-year (the Poisson model's mean for an exposure of one year), and that
        against the portfolio's mean frequency on the training data (from the model card)."""
        trees: TreeModel = model.model
        scores = np.exp(trees.raw(batch.model_matrix))  # the Poisson model's log-mean, as CatBoost's "Exponent"
        portfolio = float(model.card["portfolio_frequency"])
        measures = [{"expected_frequency": float(s), "relative_risk": float(s) / portfolio} for s in scores]
        return Prediction(scores, measures)

    def reason_text(self, feature: str, row: Mapping[str, Any]) -> str:
        return features.reason_text(feature, row)

    def load_model(self, version_dir: Path) -> TreeModel:
        return load_tree_model(version_dir)

    def train(self, model_dir: Path, data_dir: Path, size: str) -> dict[str, Any]:
        from services.claims_risk.train import train

        return train(model_dir)  # a fixed public data set: no size to choose
