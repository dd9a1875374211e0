"""The OpenAPI document of a service, generated from its marshmallow schemas (contracts/http/ holds the
committed copy; a test fails when the two drift apart)."""

from __future__ import annotations

import json
import math
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, fields, validate

from shared.core.fields import Measurement
from shared.core.service import Service
from shared.features.units import MG_DL, MMOL_L, to_mmol_l

API_VERSION = "1.0.0"


class ErrorSchema(Schema):
    error = fields.String(required=True, metadata={"example": "invalid_input"})
    message = fields.String(required=True)
    fields_ = fields.Dict(
        data_key="fields",
        keys=fields.String(),
        values=fields.List(fields.String()),
        metadata={"description": "field path -> messages (422, and the 404 and 409 that name events)"},
    )


class ReadinessSchema(Schema):
    ready = fields.Boolean(required=True)
    checks = fields.Dict(
        required=True,
        keys=fields.String(),
        values=fields.String(),
        metadata={"description": "model version, and `ok` or `unavailable: <why>` for each store"},
    )


class HealthSchema(Schema):
    status = fields.String(required=True, metadata={"example": "ok"})
    service = fields.String(required=True)


def build_openapi(service: Service, max_batch_events: int) -> dict[str, Any]:
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title=f"{service.name} risk scoring",
        version=API_VERSION,
        openapi_version="3.0.3",
        plugins=[plugin],
        info={"description": f"Scores {service.name} events through the shared scoring core."},
    )
    assert plugin.converter is not None  # set by APISpec when it registers the plugin
    plugin.converter.add_attribute_function(_exclusive_bounds)
    plugin.converter.add_attribute_function(_measurement_in_either_unit)
    spec.components.security_scheme("apiKey", {"type": "apiKey", "in": "header", "name": "X-API-Key"})
    event_name = service.event_schema.__name__.removesuffix("Schema")
    spec.components.schema(event_name, schema=service.event_schema)
    decision_batch = Schema.from_dict(
        {"decisions": fields.List(fields.Nested(service.decision_schema), required=True)}, name="DecisionBatch"
    )
    spec.components.schema("Decision", schema=service.decision_schema)
    spec.components.schema("DecisionBatch", schema=decision_batch)
    spec.components.schema("Error", schema=ErrorSchema)
    event_ref = {"$ref": f"#/components/schemas/{event_name}"}
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    spec.path(
        path="/v1/score",
        operations={
            "post": {
                "summary": f"Score one event, or a batch of up to {max_batch_events}",
                "security": [{"apiKey": []}],
                "requestBody": _one_or_batch(event_ref, "events", max_batch_events),
                "responses": {
                    "200": {
                        "description": "the decision, or {decisions: [...]} for a batch",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {"$ref": "#/components/schemas/Decision"},
                                        {"$ref": "#/components/schemas/DecisionBatch"},
                                    ]
                                }
                            }
                        },
                    },
                    "409": {
                        "description": "an event id was decided before for another payload; nothing scored",
                        "content": error,
                    },
                    "413": {"description": "body or batch too large", "content": error},
                    "422": {"description": "the input breaks the contract; `fields` names what", "content": error},
                    "503": {"description": "no model loaded yet", "content": error},
                },
            }
        },
    )
    spec.path(
        path="/v1/model/report",
        operations={
            "get": {
                "summary": "The champion's evaluation report (HTML: metrics, ROC, precision-recall, calibration, lift, "
                "feature importance)",
                "security": [{"apiKey": []}],
                "responses": {
                    "200": {"description": "HTML", "content": {"text/html": {}}},
                    "503": {"description": "no model loaded yet, or one trained before reports", "content": error},
                },
            }
        },
    )
    spec.path(
        path="/v1/model",
        operations={
            "get": {
                "summary": "The model card of the champion model",
                "security": [{"apiKey": []}],
                "responses": {
                    "200": {
                        "description": "model card",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "503": {"description": "no model loaded yet", "content": error},
                },
            }
        },
    )
    _decision_paths(spec, service)
    _outcome_paths(spec, service, max_batch_events)
    _control_paths(spec)
    for path, summary, content in (
        (
            "/v1/monitoring",
            "The latest quality report: precision and recall per outcome and per rule, calibration and "
            "drift per model version, and the alerts (computed by `risk monitor`)",
            "application/json",
        ),
        ("/v1/monitoring/report", "The latest quality report as a page with charts", "text/html"),
    ):
        spec.path(
            path=path,
            operations={
                "get": {
                    "summary": summary,
                    "security": [{"apiKey": []}],
                    "responses": {
                        "200": {"description": "the report", "content": {content: {}}},
                        "404": {"description": "no report computed yet", "content": error},
                    },
                }
            },
        )
    for path, (summary, _) in service.reference_documents().items():
        spec.path(
            path=path,
            operations={
                "get": {
                    "summary": summary,
                    "security": [{"apiKey": []}],
                    "responses": {
                        "200": {
                            "description": "the reference document",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        )
    _open_paths(spec)
    document = spec.to_dict()
    _refusals_of_keyed_operations(document, error)
    _drop_unreferenced_schemas(document)
    return document


def _drop_unreferenced_schemas(document: dict[str, Any]) -> None:
    """Component schemas nothing refers to any more (apispec registers a nested schema, such as a laboratory
    result's, before `_measurement_in_either_unit` replaces the reference to it)."""
    schemas = document["components"]["schemas"]
    for name in list(schemas):
        others = {**document, "components": {**document["components"], "schemas": {**schemas, name: None}}}
        if f'"#/components/schemas/{name}"' not in json.dumps(others):
            del schemas[name]


def _open_paths(spec: APISpec) -> None:
    """The endpoints anyone may call, without a key: liveness, readiness, metrics and this document."""
    spec.components.schema("Health", schema=HealthSchema)
    spec.components.schema("Readiness", schema=ReadinessSchema)
    readiness = {"application/json": {"schema": {"$ref": "#/components/schemas/Readiness"}}}
    for path, summary, responses in (
        (
            "/healthz",
            "The process is alive",
            {
                "200": {
                    "description": "alive",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}},
                }
            },
        ),
        (
            "/readyz",
            "The model and the stores are usable",
            {
                "200": {"description": "ready", "content": readiness},
                "503": {"description": "not ready: `checks` says which part is unavailable", "content": readiness},
            },
        ),
        (
            "/metrics",
            "Prometheus metrics",
            {"200": {"description": "the text exposition format", "content": {"text/plain": {}}}},
        ),
        (
            "/openapi.json",
            "This document",
            {"200": {"description": "OpenAPI 3.0", "content": {"application/json": {"schema": {"type": "object"}}}}},
        ),
    ):
        spec.path(path=path, operations={"get": {"summary": summary, "responses": responses}})


def _refusals_of_keyed_operations(document: dict[str, Any], error: dict[str, Any]) -> None:
    """Every operation behind a key may answer 401 (no key, or one the server does not know) and 403 (the
    key's roles do not allow it), whatever else it answers: said once here rather than in each operation."""
    for operations in document["paths"].values():
        for operation in operations.values():
            if not operation.get("security"):
                continue
            responses = operation["responses"]
            responses["401"] = {"description": "missing or unknown API key", "content": error}
            responses.setdefault("403", {"description": "the key's roles do not allow this endpoint", "content": error})


def _exclusive_bounds(converter: Any, field: fields.Field, **_: Any) -> dict[str, Any]:
    """`exclusiveMinimum`/`exclusiveMaximum` (OpenAPI 3.0's booleans) for a Range that leaves out its bound,
    which apispec writes as an inclusive minimum or maximum (`exposure` above 0, say)."""
    found: dict[str, Any] = {}
    for validator in field.validators:
        if isinstance(validator, validate.Range) and not isinstance(field, Measurement):
            if validator.min is not None and not validator.min_inclusive:
                found["exclusiveMinimum"] = True
            if validator.max is not None and not validator.max_inclusive:
                found["exclusiveMaximum"] = True
    return found


def _measurement_in_either_unit(converter: Any, field: fields.Field, ret: dict[str, Any], **_: Any) -> dict[str, Any]:
    """A laboratory result as what it is: `{"value", "unit"}` in mg/dL or in mmol/L, each unit with its own
    plausible range (apispec would give the nested schema and the mg/dL range as `x-minimum`, which no
    client can check a mmol/L value against). The mmol/L bounds are rounded inwards, so that any value
    within them converts to a value the contract accepts."""
    if not isinstance(field, Measurement):
        return {}
    ranges = [v for v in field.validators if isinstance(v, validate.Range)]
    low = max((float(r.min) for r in ranges if r.min is not None), default=None)
    high = min((float(r.max) for r in ranges if r.max is not None), default=None)
    for stale in ("allOf", "$ref", "x-minimum", "x-maximum"):
        ret.pop(stale, None)
    mmol_low = None if low is None else _inward(to_mmol_l(low, field.analyte), math.ceil)
    mmol_high = None if high is None else _inward(to_mmol_l(high, field.analyte), math.floor)
    return {"oneOf": [_result_in(MG_DL, low, high), _result_in(MMOL_L, mmol_low, mmol_high)]}


def _inward(bound: float, rounding: Any, places: int = 2) -> float:
    scale = 10**places
    return float(rounding(bound * scale)) / scale


def _result_in(unit: str, low: float | None, high: float | None) -> dict[str, Any]:
    value: dict[str, Any] = {"type": "number"}
    if low is not None:
        value["minimum"] = low
    if high is not None:
        value["maximum"] = high
    return {
        "type": "object",
        "required": ["value", "unit"],
        "additionalProperties": False,
        "properties": {"value": value, "unit": {"type": "string", "enum": [unit]}},
    }


def _one_or_batch(item: dict[str, Any], key: str, limit: int) -> dict[str, Any]:
    """The body `shared.doors.bodies` reads: one item, or `{key: [...]}` with 1 to `limit` of them."""
    batch = {
        "type": "object",
        "required": [key],
        "additionalProperties": False,
        "properties": {key: {"type": "array", "items": item, "minItems": 1, "maxItems": limit}},
    }
    return {"required": True, "content": {"application/json": {"schema": {"oneOf": [item, batch]}}}}


def _decision_paths(spec: APISpec, service: Service) -> None:
    from shared.doors.decisions import DecisionQuerySchema

    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    page = Schema.from_dict(
        {
            "decisions": fields.List(fields.Nested(service.decision_schema), required=True),
            "next_cursor": fields.String(
                required=True, allow_none=True, metadata={"description": "pass as cursor for the next page; null"}
            ),
        },
        name="DecisionPage",
    )
    spec.components.schema("DecisionPage", schema=page)
    spec.path(
        path="/v1/decisions/{event_id}",
        operations={
            "get": {
                "summary": "The decision recorded for an event id, as its door answered it",
                "security": [{"apiKey": []}],
                "parameters": [{"name": "event_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {
                    "200": {
                        "description": "the decision",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Decision"}}},
                    },
                    "404": {"description": "no decision is recorded for this event id", "content": error},
                },
            }
        },
    )
    spec.path(
        path="/v1/decisions",
        operations={
            "get": {
                "summary": "Recorded decisions, newest first, filtered and paged (keyset: pass next_cursor back)",
                "security": [{"apiKey": []}],
                "parameters": [{"in": "query", "schema": DecisionQuerySchema}],
                "responses": {
                    "200": {
                        "description": "one page",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DecisionPage"}}},
                    },
                    "422": {
                        "description": "a parameter is wrong, unknown or repeated; `fields` names it",
                        "content": error,
                    },
                },
            }
        },
    )


def _outcome_paths(spec: APISpec, service: Service, max_batch_events: int) -> None:
    if not service.outcomes:
        return
    from shared.core.outcomes import outcome_schema

    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    name = outcome_schema(service).__name__.removesuffix("Schema")
    spec.components.schema(name, schema=outcome_schema(service))
    outcome_ref = {"$ref": f"#/components/schemas/{name}"}
    status = {
        "type": "object",
        "required": [service.event_id_field, "status"],
        "additionalProperties": False,
        "properties": {
            service.event_id_field: {"type": "string"},
            "status": {"type": "string", "enum": ["recorded", "duplicate", "revised", "stale"]},
        },
    }
    spec.path(
        path="/v1/outcomes",
        operations={
            "post": {
                "summary": f"What became of decided events (one outcome, or a batch of up to {max_batch_events}): "
                "joined to their decisions, fed to the features and the quality figures",
                "security": [{"apiKey": []}],
                "requestBody": _one_or_batch(outcome_ref, "outcomes", max_batch_events),
                "responses": {
                    "200": {
                        "description": "each outcome's status: recorded (the first), duplicate (the same again), "
                        "revised (another, reported later: it replaces the one on record), stale (another, "
                        "reported no later: ignored)",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        status,
                                        {
                                            "type": "object",
                                            "required": ["outcomes"],
                                            "additionalProperties": False,
                                            "properties": {"outcomes": {"type": "array", "items": status}},
                                        },
                                    ]
                                }
                            }
                        },
                    },
                    "404": {
                        "description": "an outcome names an event with no recorded decision; nothing recorded",
                        "content": error,
                    },
                    "413": {"description": "batch too large", "content": error},
                    "422": {"description": "an outcome breaks the contract; `fields` names what", "content": error},
                    "503": {"description": "this service records no decisions", "content": error},
                },
            }
        },
    )


def _control_paths(spec: APISpec) -> None:
    """The control plane for tools (shared/control/http.py): each call acts as the identity of its key."""
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    denied = {
        "403": {"description": "not allowed for this identity (e.g. approving one's own proposal)", "content": error},
    }
    refused = {"422": {"description": "the request or the ruleset is invalid; every problem named", "content": error}}

    def operation(summary: str, responses: dict[str, Any], body: dict[str, Any] | None = None) -> dict[str, Any]:
        found: dict[str, Any] = {"summary": summary, "security": [{"apiKey": []}], "responses": {**responses, **denied}}
        if body is not None:
            found["requestBody"] = {"required": True, "content": body}
        return found

    version = {
        "application/json": {
            "schema": {"type": "object", "required": ["version"], "properties": {"version": {"type": "string"}}}
        }
    }
    reason = {
        "application/json": {
            "schema": {"type": "object", "required": ["reason"], "properties": {"reason": {"type": "string"}}}
        }
    }
    spec.path(
        path="/v1/control/rulesets",
        operations={
            "post": operation(
                "Publish a ruleset (YAML) as a new version and propose it",
                {"201": {"description": "the proposal"}, **refused},
                {"application/yaml": {"schema": {"type": "string"}}},
            )
        },
    )
    spec.path(
        path="/v1/control/promotions",
        operations={
            "post": operation(
                "Propose a registered model version as the champion",
                {"201": {"description": "the proposal"}, **refused},
                version,
            )
        },
    )
    spec.path(
        path="/v1/control/proposals/{proposal_id}/approve",
        operations={
            "post": {
                **operation(
                    "Approve another identity's proposal: it takes effect and is announced on risk.control",
                    {"200": {"description": "the change in force and whether it was announced"}, **refused},
                ),
                "parameters": [{"name": "proposal_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            }
        },
    )
    spec.path(
        path="/v1/control/proposals/{proposal_id}/refuse",
        operations={
            "post": {
                **operation(
                    "Refuse a proposal, saying why", {"200": {"description": "the refused proposal"}, **refused}, reason
                ),
                "parameters": [{"name": "proposal_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            }
        },
    )
    spec.path(
        path="/v1/control/proposals",
        operations={"get": operation("Every proposal of the service", {"200": {"description": "the proposals"}})},
    )
    spec.path(
        path="/v1/control/audit",
        operations={
            "get": operation(
                "The audit log: who proposed, approved, refused or rolled back what, when",
                {"200": {"description": "entries"}},
            )
        },
    )
