"""A service's rulesets: every ruleset is validated against the fields of the context its rules will see
(the event contract's fields, the service's feature and measure names, score, band, reasons and one flag
per allow / deny / watch list), and against a sample of that context made from the schema's examples,
before it is used."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields

from shared.core.service import Service
from shared.rules.context import ANY, VALUE, ContextFields
from shared.rules.engine import Ruleset
from shared.rules.lists import CONTEXT_KEY, ListSpec, list_specs


def sample_context(service: Service) -> dict[str, Any]:
    """A context of the shape the rules see, for load-time validation of every expression."""
    schema = service.event_schema()
    example = {name: f.metadata.get("example") for name, f in schema.fields.items()}
    return {
        "event": {k: v for k, v in example.items() if v is not None},
        "features": {
            **{name: _numeric(example.get(name)) for name in service.feature_set.features},
            **dict.fromkeys(service.extra_features, 0.0),
        },
        "measures": dict.fromkeys(service.measure_names, 1.0),
        "score": 0.5,
        "band": "low",
        "reasons": [],
        CONTEXT_KEY: dict.fromkeys((spec.name for spec in service_lists(service)), False),
    }


def service_lists(service: Service) -> tuple[ListSpec, ...]:
    """Every list the service has (`deny_cards`, ...): one of each kind per subject it declares."""
    return list_specs(service.list_subjects, service.personal_fields)


def context_fields(service: Service) -> ContextFields:
    """Every field the rules' context can have: the sample's shape (the keys the scoring core sets, every
    feature and measure), with the event's fields taken from its contract, examples or not."""
    return ContextFields.of_sample(sample_context(service)).with_field("event", _schema_fields(service.event_schema()))


def parse_ruleset(service: Service, text: str, source: str) -> Ruleset:
    """A ruleset document validated for this service (InvalidRulesetError names every problem)."""
    return Ruleset.from_yaml(
        text, source=source, sample_context=sample_context(service), context_fields=context_fields(service)
    )


def packaged_ruleset(service: Service) -> Ruleset:
    """The ruleset shipped beside the service's code, in force until one is published and approved."""
    return Ruleset.load(
        service.ruleset_path, sample_context=sample_context(service), context_fields=context_fields(service)
    )


def _schema_fields(schema: Schema) -> ContextFields:
    """The fields of a schema's dumped documents, by the name they are dumped under: a nested schema is a
    record of its own fields, a dict or raw field free-form, anything else a plain value."""
    shapes: dict[str, ContextFields] = {}
    for name, field in schema.dump_fields.items():
        if isinstance(field, fields.Nested) and isinstance(field.schema, Schema) and not field.many:
            shape = _schema_fields(field.schema)
        elif isinstance(field, fields.Dict | fields.Raw) and not isinstance(field, fields.Nested):
            shape = ANY
        else:
            shape = VALUE
        shapes[field.data_key or name] = shape
    return ContextFields.record(shapes)


def _numeric(example: object) -> Any:
    """A feature's sample value: the event field's example when it is a plain value, else 0.0 (features
    are flat numbers or categories even where the event's field is structured, e.g. a lab value and unit)."""
    return example if isinstance(example, int | float | str) else 0.0
