"""Builds a service's scoring core from settings: the champion model from the registry and the ruleset,
validated against a sample context made from the event schema's examples."""

from __future__ import annotations

from typing import Any

from shared.modeling.registry import ModelRegistry
from shared.rules.engine import Ruleset
from shared.scoring import ScoringCore, ServiceDefinition
from shared.settings import Settings


def sample_context(definition: ServiceDefinition) -> dict[str, Any]:
    """A context of the shape the rules see, for load-time validation of every expression."""
    schema = definition.event_schema()
    example = {name: f.metadata.get("example") for name, f in schema.fields.items()}
    return {
        "event": {k: v for k, v in example.items() if v is not None},
        "features": {
            **{name: _numeric(example.get(name)) for name in definition.feature_set.features},
            **{name: 0.0 for name in definition.extra_features},
        },
        "measures": {name: 1.0 for name in definition.measure_names},
        "score": 0.5,
        "band": "low",
        "reasons": [],
    }


def load_ruleset(definition: ServiceDefinition) -> Ruleset:
    return Ruleset.load(definition.ruleset_path, sample_context=sample_context(definition))


def load_core(definition: ServiceDefinition, settings: Settings, model_version: str | None = None) -> ScoringCore:
    model = ModelRegistry(settings.model_dir).load(definition.name, model_version, loader=definition.load_model)
    return ScoringCore(definition, model, load_ruleset(definition), settings.pseudonym_key)


def _numeric(example: object) -> Any:
    """A feature's sample value: the event field's example when it is a plain value, else 0.0 (features
    are flat numbers or categories even where the event's field is structured, e.g. a lab value and unit)."""
    return example if isinstance(example, int | float | str) else 0.0
