"""Every Kafka topic, in one place: its name, the CloudEvent type it carries and its partition count.

Keys are the entity id (card/customer, policy, patient), so one entity's events stay in order on one
partition. Each input topic has a dead-letter topic `<name>.dlq`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

EVENT_TYPE_PREFIX = "com.riskscoring"


@dataclass(frozen=True)
class Topic:
    name: str
    event_type: str
    partitions: int = 4

    @property
    def dead_letter(self) -> Topic:
        return replace(self, name=f"{self.name}.dlq", event_type=f"{self.event_type}.dead_letter")


PAYMENTS_TRANSACTIONS = Topic("payments.transactions", f"{EVENT_TYPE_PREFIX}.payments.transaction.v1")
INSURANCE_POLICIES = Topic("insurance.policies", f"{EVENT_TYPE_PREFIX}.insurance.policy.v1")
INSURANCE_CLAIMS = Topic("insurance.claims", f"{EVENT_TYPE_PREFIX}.insurance.claim.v1")
HEALTH_ASSESSMENTS = Topic("health.assessments", f"{EVENT_TYPE_PREFIX}.health.assessment.v1")

FRAUD_DECISIONS = Topic("fraud.decisions", f"{EVENT_TYPE_PREFIX}.fraud.decision.v1")
CLAIMS_DECISIONS = Topic("claims.decisions", f"{EVENT_TYPE_PREFIX}.claims.decision.v1")
DISEASE_DECISIONS = Topic("disease.decisions", f"{EVENT_TYPE_PREFIX}.disease.decision.v1")

RISK_CONTROL = Topic("risk.control", f"{EVENT_TYPE_PREFIX}.control.v1", partitions=1)

INPUT_TOPICS = (PAYMENTS_TRANSACTIONS, INSURANCE_POLICIES, INSURANCE_CLAIMS, HEALTH_ASSESSMENTS)
OUTPUT_TOPICS = (FRAUD_DECISIONS, CLAIMS_DECISIONS, DISEASE_DECISIONS)
ALL_TOPICS = (*INPUT_TOPICS, *(t.dead_letter for t in INPUT_TOPICS), *OUTPUT_TOPICS, RISK_CONTROL)

_BY_NAME = {topic.name: topic for topic in ALL_TOPICS}


def topic_by_name(name: str) -> Topic:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown topic {name!r}; known: {', '.join(sorted(_BY_NAME))}") from None
