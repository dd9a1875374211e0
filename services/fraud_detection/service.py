"""The fraud service's scoring core: the shared pipeline with the fraud contract, features and rules."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from services.fraud_detection.features import (
    FEATURE_SET,
    offline_features_for_events,
    online_features,
    reason_text,
)
from services.fraud_detection.schemas import TransactionSchema
from shared.core.scoring import Prediction, ServiceDefinition
from shared.events.topics import FRAUD_DECISIONS, PAYMENTS_TRANSACTIONS
from shared.modeling.registry import RegisteredModel
from shared.modeling.trees import load_tree_model

SERVICE = "fraud"


def predict_fraud_probability(model: RegisteredModel, features: pd.DataFrame) -> Prediction:
    return Prediction(model.model.probability(features))


DEFINITION = ServiceDefinition(
    name=SERVICE,
    event_schema=TransactionSchema,
    event_id_field="transaction_id",
    entity_field="customer_id",
    feature_set=FEATURE_SET,
    online_features=online_features,
    offline_features=offline_features_for_events,
    reason_text=reason_text,
    predict=predict_fraud_probability,
    load_model=load_tree_model,
    ruleset_path=Path(__file__).with_name("rules.yaml"),
    input_topics=(PAYMENTS_TRANSACTIONS,),
    output_topic=FRAUD_DECISIONS,
)
