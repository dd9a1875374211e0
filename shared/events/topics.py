"""Every Kafka topic, in one place: its name, the CloudEvent type it carries and its partition count.

This module is the only place a topic name or an event type is written; everything else refers to the
constants below, so a rename is one edit and a typo fails at import instead of creating a stray topic
(brokers, Tansu included, auto-create topics on first use).

Keys are the entity id (card/customer, policy, patient), so one entity's events stay in order on one
partition. Each input topic has a dead-letter topic `<name>.dlq`, which holds the refused records'
original bytes (see `shared.events.consumer`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

EVENT_TYPE_PREFIX = "com.riskscoring"
DEAD_LETTER_SUFFIX = ".dlq"

# Kafka's own rule for topic names (kafka.common.internals.Topic): checked here so a bad name fails at import.
_LEGAL_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")


@dataclass(frozen=True)
class Topic:
    """A topic as the code knows it: created with `partitions`, carrying CloudEvents of `event_type`."""

    name: str
    event_type: str
    partitions: int = 4

    def __post_init__(self) -> None:
        if not _LEGAL_TOPIC_NAME.fullmatch(self.name):
            raise ValueError(f"illegal topic name {self.name!r}: use 1-249 of [a-zA-Z0-9._-]")
        if not self.event_type:
            raise ValueError(f"topic {self.name!r} needs an event type")
        if self.partitions < 1:
            raise ValueError(f"topic {self.name!r} needs at least one partition, not {self.partitions}")

    @property
    def dead_letter(self) -> Topic:
        """`<name>.dlq`, same partition count. Its records are the refused originals (whatever their bytes),
        so its `event_type` says "dead letters of" rather than claiming the input's type."""
        return replace(self, name=f"{self.name}{DEAD_LETTER_SUFFIX}", event_type=f"{self.event_type}.dead_letter")


PAYMENTS_TRANSACTIONS = Topic("payments.transactions", f"{EVENT_TYPE_PREFIX}.payments.transaction.v1")
INSURANCE_POLICIES = Topic("insurance.policies", f"{EVENT_TYPE_PREFIX}.insurance.policy.v1")
INSURANCE_CLAIMS = Topic("insurance.claims", f"{EVENT_TYPE_PREFIX}.insurance.claim.v1")
HEALTH_ASSESSMENTS = Topic("health.assessments", f"{EVENT_TYPE_PREFIX}.health.assessment.v1")
# What became of decided events (confirmed fraud or genuine, a diagnosis or none): back into the features
# and the quality figures. Claims learns its outcomes from insurance.claims.
PAYMENTS_OUTCOMES = Topic("payments.outcomes", f"{EVENT_TYPE_PREFIX}.payments.outcome.v1")
HEALTH_OUTCOMES = Topic("health.outcomes", f"{EVENT_TYPE_PREFIX}.health.outcome.v1")

FRAUD_DECISIONS = Topic("fraud.decisions", f"{EVENT_TYPE_PREFIX}.fraud.decision.v1")
CLAIMS_DECISIONS = Topic("claims.decisions", f"{EVENT_TYPE_PREFIX}.claims.decision.v1")
DISEASE_DECISIONS = Topic("disease.decisions", f"{EVENT_TYPE_PREFIX}.disease.decision.v1")

# Model and ruleset changes: one partition, so every worker sees them in the order they were made.
RISK_CONTROL = Topic("risk.control", f"{EVENT_TYPE_PREFIX}.control.v1", partitions=1)

INPUT_TOPICS: tuple[Topic, ...] = (
    PAYMENTS_TRANSACTIONS,
    INSURANCE_POLICIES,
    INSURANCE_CLAIMS,
    HEALTH_ASSESSMENTS,
    PAYMENTS_OUTCOMES,
    HEALTH_OUTCOMES,
)
DEAD_LETTER_TOPICS: tuple[Topic, ...] = tuple(topic.dead_letter for topic in INPUT_TOPICS)
OUTPUT_TOPICS: tuple[Topic, ...] = (FRAUD_DECISIONS, CLAIMS_DECISIONS, DISEASE_DECISIONS)
ALL_TOPICS: tuple[Topic, ...] = (*INPUT_TOPICS, *DEAD_LETTER_TOPICS, *OUTPUT_TOPICS, RISK_CONTROL)

_BY_NAME = {topic.name: topic for topic in ALL_TOPICS}


def topic_by_name(name: str) -> Topic:
    """The registered topic called `name`; a KeyError listing the known names otherwise (CLI flags, config)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown topic {name!r}; known: {', '.join(sorted(_BY_NAME))}") from None
