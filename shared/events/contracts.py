"""JSON Schemas of the events the project defines in code, for `contracts/events/`: generated from the
marshmallow schemas (through apispec, in OpenAPI 3.1's dialect of JSON Schema 2020-12) and wrapped in the
CloudEvents 1.0 envelope, so the committed documents cannot drift from what the code produces."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NamedTuple

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema

from shared.events.topics import Topic
from shared.privacy import PSEUDONYM_PATTERN

CONTRACT_BASE = "https://risk-scoring.example/contracts/events/"


class DecisionVariant(NamedTuple):
    """One service's decisions: the schema that dumps them and whether their entity id is a pseudonym."""

    schema: type[Schema]
    pseudonymous_entity: bool


def decision_json_schema(variants: Mapping[str, DecisionVariant]) -> dict[str, Any]:
    """The schema of a decision CloudEvent on any `<service>.decisions` topic, its data one of the services'."""
    spec = APISpec(title="decisions", version="1", openapi_version="3.1.0", plugins=[MarshmallowPlugin()])
    names: dict[type[Schema], str] = {}
    for variant in variants.values():
        if variant.schema not in names:
            names[variant.schema] = variant.schema.__name__.removesuffix("Schema")
            spec.components.schema(names[variant.schema], schema=variant.schema)
    defs = _local_refs(spec.to_dict()["components"]["schemas"])
    for service, variant in sorted(variants.items()):
        constraint: dict[str, Any] = {"service": {"const": service}}
        if variant.pseudonymous_entity:
            constraint["entity_id"] = {"pattern": PSEUDONYM_PATTERN}
        defs[f"{service}_decision"] = {
            "allOf": [{"$ref": f"#/$defs/{names[variant.schema]}"}],
            "properties": constraint,
            "required": ["service"],
        }
    services = "|".join(sorted(variants))
    return {
        **_cloud_event(
            "decision.v1.json",
            f"Risk decision (topics {', '.join(f'{s}.decisions' for s in sorted(variants))})",
            "A CloudEvents 1.0 event in structured JSON mode whose data is one decision, pinning what is needed "
            "to reproduce it. Kafka key: the entity id. Generated from the code by `risk contracts`.",
            {"type": "string", "pattern": rf"^com\.riskscoring\.({services})\.decision\.v1$"},
            {"type": "string", "description": "the input event id"},
            {"oneOf": [{"$ref": f"#/$defs/{service}_decision"} for service in sorted(variants)]},
        ),
        "$defs": defs,
    }


def outcome_json_schema(topic: Topic, schema: type[Schema], service: str) -> dict[str, Any]:
    """The schema of an outcome CloudEvent on `topic`, whose data is one outcome of `service`."""
    spec = APISpec(title="outcomes", version="1", openapi_version="3.1.0", plugins=[MarshmallowPlugin()])
    name = schema.__name__.removesuffix("Schema")
    spec.components.schema(name, schema=schema)
    data = _local_refs(spec.to_dict()["components"]["schemas"])[name]
    return _cloud_event(
        event_file_name(topic),
        f"Outcome of a {service} decision (topic {topic.name})",
        "A CloudEvents 1.0 event in structured JSON mode whose data says what became of one decided event; "
        "it joins the recorded decision and feeds the features and the quality figures. Kafka key: the "
        "decided event's id. Generated from the code by `risk contracts`.",
        {"const": topic.event_type},
        {"type": "string"},
        data,
    )


def event_file_name(topic: Topic) -> str:
    """The file of a topic's event schema in contracts/events/: its event type's short name."""
    return topic.event_type.removeprefix("com.riskscoring.") + ".json"


def _cloud_event(
    file_name: str, title: str, description: str, event_type: Any, subject: Any, data: Any
) -> dict[str, Any]:
    """A CloudEvents 1.0 envelope in structured JSON mode around `data`, as the project's JSON Schemas write it."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": CONTRACT_BASE + file_name,
        "title": title,
        "description": description,
        "type": "object",
        "required": ["specversion", "id", "source", "type", "data"],
        "properties": {
            "specversion": {"const": "1.0"},
            "id": {"type": "string", "minLength": 1},
            "source": {"type": "string", "minLength": 1},
            "type": event_type,
            "time": {"type": "string", "format": "date-time"},
            "subject": subject,
            "datacontenttype": {"const": "application/json"},
            "data": data,
        },
    }


def _local_refs(schemas: dict[str, Any]) -> dict[str, Any]:
    """apispec's component references (#/components/schemas/X) as references into this document's $defs."""
    text = json.dumps(schemas).replace('"#/components/schemas/', '"#/$defs/')
    moved: dict[str, Any] = json.loads(text)
    return moved
