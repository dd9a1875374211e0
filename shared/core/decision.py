"""The decision record: what every door (HTTP, Kafka, batch) returns for a scored event.

A `Decision` is a typed, frozen record made by the scoring core; `DecisionSchema` (a service may extend it,
e.g. with typed `details`) dumps it to JSON values, draws it in the OpenAPI documents, and generates the
decision's JSON Schema in `contracts/events/decision.v1.json`. It pins everything needed to reproduce the
decision: the model, feature set and ruleset versions and a fingerprint of the validated input.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from marshmallow import RAISE, Schema, fields, post_dump, validate

from shared.rules.engine import RuleError, RuleHit

OPTIONAL_PARTS = ("shadow", "details", "rule_errors")


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
    decision_id: str  # derived from the service and event id: the same on every delivery, door and replay
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
    replayed: bool = False  # True when the event was decided before and this is the recorded decision
    rule_errors: tuple[RuleError, ...] | None = None  # rules that could not be evaluated; None when none
    # Kept beside the decision (the store records them), never part of what a door answers:
    event_time: datetime | None = None  # when the decided event happened
    features: Mapping[str, Any] | None = None  # the feature row the model and rules read


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


class RuleErrorSchema(_Closed):
    rule_id = fields.String(required=True)
    message = fields.String(required=True, metadata={"description": "why the rule could not be evaluated"})


class VersionedNameSchema(_Closed):
    name = fields.String(required=True)
    version = fields.String(required=True)


class ShadowSchema(_Closed):
    model = fields.Nested(VersionedNameSchema, required=True)
    score = fields.Float(required=True)
    decision = fields.String(required=True, metadata={"description": "what the rules would decide; not acted on"})


class DecisionSchema(_Closed):
    event_id = fields.String(required=True, validate=validate.Length(min=1))
    decision_id = fields.String(
        required=True,
        metadata={
            "description": "derived from the service and the event id: the same whenever this event is decided",
            "format": "uuid",
        },
    )
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
    replayed = fields.Boolean(
        required=True,
        metadata={
            "description": "true when the event id was decided before: this is the recorded decision, not rescored"
        },
    )
    rule_errors = fields.List(
        fields.Nested(RuleErrorSchema),
        metadata={
            "description": "rules that could not be evaluated on this event (present only then): each is among "
            "the rule hits with the ruleset's on_error outcome, never read as not hit"
        },
    )

    @post_dump
    def _drop_absent_parts(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        return drop_absent_parts(data)


def drop_absent_parts(data: dict[str, Any]) -> dict[str, Any]:
    """A decision without a challenger, details or rule errors has no such keys (rather than nulls)."""
    for name in OPTIONAL_PARTS:
        if data.get(name) is None:
            data.pop(name, None)
    return data


Dump = Callable[[Any], Any]
_ABSENT = object()


def compile_dump(schema: Schema) -> Callable[[Any], dict[str, Any]]:
    """A dump function made once from `schema`'s declared fields: the same output as `schema.dump` (a test
    holds the two equal on every service's decisions) at a fraction of the cost, since marshmallow's
    general machinery (hooks, field lookups, error collection) runs per field per object, ~35 us a
    decision, which the stream and batch doors pay thousands of times a second. Field types it does not
    know are dumped by the field itself. Post-dump hooks are not run: callers apply them."""
    parts = [(field.data_key or name, name, _value_dump(field)) for name, field in schema.dump_fields.items()]

    def dump(obj: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        is_mapping = isinstance(obj, Mapping)
        for key, attribute, convert in parts:
            value = obj.get(attribute, _ABSENT) if is_mapping else getattr(obj, attribute, _ABSENT)
            if value is not _ABSENT:
                out[key] = convert(value)
        return out

    return dump


def _value_dump(field: fields.Field) -> Dump:
    kind = type(field)  # exact types only: a subclass (e.g. a unit-converting field) may dump otherwise
    if isinstance(field, fields.Nested) and kind is fields.Nested:
        inner = compile_dump(field.schema)
        return _nullable(lambda v: [inner(x) for x in v]) if field.many else _nullable(inner)
    if isinstance(field, fields.List) and kind is fields.List:
        item = _value_dump(field.inner)
        return _nullable(lambda v: [item(x) for x in v])
    if isinstance(field, fields.Dict) and kind is fields.Dict:
        keys = _value_dump(field.key_field) if field.key_field else _same
        values = _value_dump(field.value_field) if field.value_field else _same
        return _nullable(lambda v: {keys(k): values(x) for k, x in v.items()})
    if kind is fields.Raw:
        return _same
    if kind is fields.String:  # a decision's text is text already; anything else is shown as text
        return lambda v: v if v is None or type(v) is str else str(v)
    converters: dict[type[fields.Field], Dump] = {fields.Float: float, fields.Integer: int, fields.Boolean: bool}
    if kind in converters:
        return _nullable(converters[kind])
    return lambda v: field._serialize(v, None, None)


def _nullable(convert: Dump) -> Dump:
    return lambda v: None if v is None else convert(v)


def _same(value: Any) -> Any:
    return value


_DECISION_IDS = uuid.UUID("7f4c2a9e-3b1d-5e8f-9a6c-1d2e3f4a5b6c")


_DECISION_IDS_BYTES = _DECISION_IDS.bytes


def decision_id_for(service: str, event_id: str) -> str:
    """The decision's id, a UUID derived from what it decides (name-based, version 5), so a consumer can drop
    a repeat whichever door or delivery it came by. It is `str(uuid.uuid5(_DECISION_IDS, name))` written
    without building a UUID object (a test holds the two equal), a third of the cost, once per decision."""
    digest = bytearray(hashlib.sha1(_DECISION_IDS_BYTES + f"{service}/{event_id}".encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # the RFC 4122 variant
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def fingerprint(validated: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of a validated, serialised input."""
    canonical = json.dumps(validated, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
