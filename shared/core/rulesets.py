"""A service's rulesets: every ruleset is validated against a sample of the context its rules will see
(made from the event schema's examples and the service's feature and measure names) before it is used."""

from __future__ import annotations

from typing import Any

from shared.core.service import Service
from shared.rules.engine import Ruleset


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
    }


def parse_ruleset(service: Service, text: str, source: str) -> Ruleset:
    """A ruleset document validated for this service (InvalidRulesetError names every problem)."""
    return Ruleset.from_yaml(text, source=source, sample_context=sample_context(service))


def packaged_ruleset(service: Service) -> Ruleset:
    """The ruleset shipped beside the service's code, in force until one is published and approved."""
    return Ruleset.load(service.ruleset_path, sample_context=sample_context(service))


def _numeric(example: object) -> Any:
    """A feature's sample value: the event field's example when it is a plain value, else 0.0 (features
    are flat numbers or categories even where the event's field is structured, e.g. a lab value and unit)."""
    return example if isinstance(example, int | float | str) else 0.0
