"""The fraud detection service: payment transactions scored by a CatBoost model on card and terminal
window features, with the fraud ruleset deciding approve / review / decline.

The card (customer) id is personal: the contract replaces it by its keyed pseudonym, so the card's window
state, its decisions, their Kafka keys and the logs know the card only by that pseudonym."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pyarrow as pa

from services.fraud_detection import features
from services.fraud_detection.schemas import TransactionSchema
from shared.core.service import EntityWindows, Event, History, Prediction, Service
from shared.decisions import OutcomeResult
from shared.events.topics import FRAUD_DECISIONS, PAYMENTS_OUTCOMES, PAYMENTS_TRANSACTIONS
from shared.features.featureset import FeatureBatch
from shared.modeling.registry import RegisteredModel
from shared.modeling.trees import TreeModel, load_tree_model
from shared.state import StateStore


class FraudService(Service):
    name = "fraud"
    event_schema = TransactionSchema
    event_id_field = "transaction_id"
    entity_field = "customer_id"
    personal_fields = ("customer_id",)  # the card holder; the terminal and the transaction identify no person
    feature_set = features.FEATURE_SET
    ruleset_path = Path(__file__).with_name("rules.yaml")
    input_topics = (PAYMENTS_TRANSACTIONS,)
    output_topic = FRAUD_DECISIONS
    state_retention = features.STATE_RETENTION
    entity_windows = (
        EntityWindows("customer_id", tuple(f for f in features.FEATURE_SET.features if "customer_" in f)),
        EntityWindows("terminal_id", tuple(f for f in features.FEATURE_SET.features if f.startswith("terminal_"))),
    )
    # The simulated payments carry one id for the card and its holder: both subjects list it.
    list_subjects = MappingProxyType({"cards": "customer_id", "customers": "customer_id", "terminals": "terminal_id"})
    outcomes = MappingProxyType({"fraud": 1, "genuine": 0})  # confirmed by a chargeback, the cardholder or an analyst
    outcome_topic = PAYMENTS_OUTCOMES

    def online_features(self, events: Sequence[Event], store: StateStore) -> FeatureBatch:
        return features.online_features(events, store)

    def offline_features(self, events: Sequence[Event], history: History) -> FeatureBatch:
        return FeatureBatch.from_frame(features.offline_features(features.frame_from_events(events)), self.feature_set)

    def offline_features_of_columns(self, data: pa.Table, history: History, answer_from: int = 0) -> FeatureBatch:
        return FeatureBatch.from_frame(features.offline_features_of_columns(data, answer_from), self.feature_set)

    def predict(self, model: RegisteredModel, batch: FeatureBatch) -> Prediction:
        trees: TreeModel = model.model
        return Prediction(trees.probability(batch.model_matrix))

    def reason_text(self, feature: str, row: Mapping[str, Any]) -> str:
        return features.reason_text(feature, row)

    def apply_outcomes(self, learnt: Sequence[OutcomeResult], store: StateStore) -> None:
        features.record_labels([(r.decision.event, r.report.label) for r in learnt if r.decision is not None], store)

    def load_model(self, version_dir: Path) -> TreeModel:
        return load_tree_model(version_dir)

    def train(self, model_dir: Path, data_dir: Path, size: str) -> dict[str, Any]:
        from services.fraud_detection.train import SIZES, train

        return train(model_dir, data_dir, SIZES[size])
