"""The OpenAPI document of a service, generated from its marshmallow schemas (contracts/http/ holds the
committed copy; a test fails when the two drift apart)."""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema, fields

from shared.core.service import Service

API_VERSION = "1.0.0"


class ErrorSchema(Schema):
    error = fields.String(required=True, metadata={"example": "invalid_input"})
    message = fields.String(required=True)
    fields_ = fields.Dict(
        data_key="fields",
        keys=fields.String(),
        values=fields.List(fields.String()),
        metadata={"description": "field path -> messages (422 only)"},
    )


def build_openapi(service: Service, max_batch_events: int) -> dict[str, Any]:
    spec = APISpec(
        title=f"{service.name} risk scoring",
        version=API_VERSION,
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": f"Scores {service.name} events through the shared scoring core."},
    )
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
                    "401": {"description": "missing or unknown API key", "content": error},
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
                    "401": {"description": "missing or unknown API key"},
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
                    "200": {"description": "model card"},
                    "401": {"description": "missing or unknown API key"},
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
                        "401": {"description": "missing or unknown API key", "content": error},
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
                        "200": {"description": "the reference document"},
                        "401": {"description": "missing or unknown API key"},
                    },
                }
            },
        )
    for path, summary in (
        ("/healthz", "The process is alive"),
        ("/readyz", "The model and the state store are usable"),
        ("/metrics", "Prometheus metrics"),
        ("/openapi.json", "This document"),
    ):
        spec.path(path=path, operations={"get": {"summary": summary, "responses": {"200": {"description": "OK"}}}})
    return spec.to_dict()


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
    denied = {"401": {"description": "missing or unknown API key", "content": error}}
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
                    **denied,
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
                    **denied,
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
                                            "properties": {"outcomes": {"type": "array", "items": status}},
                                        },
                                    ]
                                }
                            }
                        },
                    },
                    "401": {"description": "missing or unknown API key", "content": error},
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
        "401": {"description": "missing or unknown API key", "content": error},
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
