"""The decision record: what every door (HTTP, Kafka, batch) returns for a scored event.

A `Decision` is a typed, frozen record made by the scoring core; `DecisionSchema` (a service may extend it,
e.g. with typed `details`) dumps it to JSON values, draws it in the OpenAPI documents, and generates the
decision's JSON Schema in `contracts/events/decision.v1.json`. It pins everything needed to reproduce the
decision: the model, feature set and ruleset versions and a fingerprint of the validated input.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from marshmallow import RAISE, Schema, fields, post_dump, validate

from shared.rules.engine import RuleHit

OPTIONAL_PARTS = ("shadow", "details")


@dataclass(frozen=True, slots=True)
class Reason:
    """One of the features that raised the score most, with its value and contribution, in plain words."""

    feature: str
    value: Any
    contribution: float
    text: str


@dataclass(frozen=True, slots=True)
class VersionedName:
    name: str
    version: str


@dataclass(frozen=True, slots=True)
class Shadow:
    """The challenger model's score and the decision the rules would make of it: recorded, never acted on."""

    model: VersionedName
    score: float
    decision: str


@dataclass(frozen=True, slots=True)
class Decision:
    event_id: str
    entity_id: str
    service: str
    score: float
    risk_band: str
    measures: Mapping[str, float]
    decision: str
    reasons: tuple[Reason, ...]
    rule_hits: tuple[RuleHit, ...]
    model: VersionedName
    feature_set: VersionedName
    ruleset_version: str
    input_fingerprint: str
    scored_at: str
    latency_ms: float
    shadow: Shadow | None = None
    details: Mapping[str, Any] | None = None


class _Closed(Schema):
    class Meta:
        unknown = RAISE
        ordered = True


class ReasonSchema(_Closed):
    feature = fields.String(required=True)
    value = fields.Raw(required=True, metadata={"description": "the feature's value for this event"})
    contribution = fields.Float(required=True, metadata={"description": "SHAP contribution (model scale)"})
    text = fields.String(required=True, metadata={"description": "the reason in plain words"})


class RuleHitSchema(_Closed):
    rule_id = fields.String(required=True)
    outcome = fields.String(required=True)
    reason = fields.String(required=True)


class VersionedNameSchema(_Closed):
    name = fields.String(required=True)
    version = fields.String(required=True)


class ShadowSchema(_Closed):
    model = fields.Nested(VersionedNameSchema, required=True)
    score = fields.Float(required=True)
    decision = fields.String(required=True, metadata={"description": "what the rules would decide; not acted on"})


class DecisionSchema(_Closed):
    event_id = fields.String(required=True, validate=validate.Length(min=1))
    entity_id = fields.String(required=True, validate=validate.Length(min=1))
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
    reasons = fields.List(fields.Nested(ReasonSchema), required=True, validate=validate.Length(max=3))
    rule_hits = fields.List(fields.Nested(RuleHitSchema), required=True)
    model = fields.Nested(VersionedNameSchema, required=True)
    feature_set = fields.Nested(VersionedNameSchema, required=True)
    ruleset_version = fields.String(required=True)
    input_fingerprint = fields.String(
        required=True,
        validate=validate.Regexp(r"^sha256:[0-9a-f]{64}$"),
        metadata={"description": "sha256 of the validated input"},
    )
    scored_at = fields.String(required=True, metadata={"description": "RFC 3339 UTC", "format": "date-time"})
    latency_ms = fields.Float(required=True, validate=validate.Range(min=0))
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

    @post_dump
    def _drop_absent_parts(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        """A decision without a challenger or details has no such keys (rather than nulls)."""
        for name in OPTIONAL_PARTS:
            if data.get(name) is None:
                data.pop(name, None)
        return data


def fingerprint(validated: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of a validated, serialised input."""
    canonical = json.dumps(validated, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
