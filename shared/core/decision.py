"""The decision record: what every door (HTTP, Kafka, batch) returns for a scored event.

It pins everything needed to reproduce the decision: the model, feature set and ruleset versions and
a fingerprint of the validated input. Its JSON Schema is contracts/events/decision.json.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from marshmallow import Schema, fields


class ReasonSchema(Schema):
    feature = fields.String(required=True)
    value = fields.Raw(required=True, metadata={"description": "the feature's value for this event"})
    contribution = fields.Float(required=True, metadata={"description": "SHAP contribution (model scale)"})
    text = fields.String(required=True, metadata={"description": "the reason in plain words"})


class RuleHitSchema(Schema):
    rule_id = fields.String(required=True)
    outcome = fields.String(required=True)
    reason = fields.String(required=True)


class VersionedNameSchema(Schema):
    name = fields.String(required=True)
    version = fields.String(required=True)


class ShadowSchema(Schema):
    model = fields.Nested(VersionedNameSchema, required=True)
    score = fields.Float(required=True)
    decision = fields.String(required=True, metadata={"description": "what the rules would decide; not acted on"})


class DecisionSchema(Schema):
    event_id = fields.String(required=True)
    entity_id = fields.String(required=True)
    service = fields.String(required=True)
    score = fields.Float(required=True)
    risk_band = fields.String(required=True)
    measures = fields.Dict(
        keys=fields.String(),
        values=fields.Float(),
        required=True,
        metadata={"description": "the service's own figures beside the score (e.g. relative_risk); may be empty"},
    )
    decision = fields.String(required=True)
    reasons = fields.List(fields.Nested(ReasonSchema), required=True)
    rule_hits = fields.List(fields.Nested(RuleHitSchema), required=True)
    model = fields.Nested(VersionedNameSchema, required=True)
    feature_set = fields.Nested(VersionedNameSchema, required=True)
    ruleset_version = fields.String(required=True)
    input_fingerprint = fields.String(required=True, metadata={"description": "sha256 of the validated input"})
    scored_at = fields.String(required=True, metadata={"description": "RFC 3339 UTC"})
    latency_ms = fields.Float(required=True)
    shadow = fields.Nested(
        ShadowSchema,
        metadata={
            "description": "the challenger model's score and decision, when one is set: recorded, never acted on"
        },
    )
    details = fields.Dict(
        keys=fields.String(),
        values=fields.Raw(),
        metadata={"description": "service-specific detail (disease: per-condition model risks and clinical equations)"},
    )


def fingerprint(validated: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of a validated, serialised input."""
    canonical = json.dumps(validated, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
