"""Builds a service's scoring core from settings, and keeps it current while the process runs.

The core is the champion model from the registry and the ruleset in force: the one published and
approved through the control plane (shared/control/), else the one packaged beside the service. Every
ruleset is validated against a sample context made from the event schema's examples before it is used.

`CoreHolder` swaps in a new core when the ruleset in force or the champion changes (announced on
`risk.control`, and checked periodically as a safety net). Work already in hand keeps the core it started
with; an invalid ruleset or an unloadable model is refused, logged and counted, and the old core stays.
"""

from __future__ import annotations

import threading
from typing import Any

from shared.core.scoring import ScoringCore, ServiceDefinition
from shared.errors import RiskError
from shared.logging import get_logger
from shared.metrics import CONTROL_CHANGES, CONTROL_REFUSALS
from shared.modeling.registry import ModelRegistry
from shared.rules.engine import Ruleset
from shared.settings import Settings


def sample_context(definition: ServiceDefinition) -> dict[str, Any]:
    """A context of the shape the rules see, for load-time validation of every expression."""
    schema = definition.event_schema()
    example = {name: f.metadata.get("example") for name, f in schema.fields.items()}
    return {
        "event": {k: v for k, v in example.items() if v is not None},
        "features": {
            **{name: _numeric(example.get(name)) for name in definition.feature_set.features},
            **dict.fromkeys(definition.extra_features, 0.0),
        },
        "measures": dict.fromkeys(definition.measure_names, 1.0),
        "score": 0.5,
        "band": "low",
        "reasons": [],
    }


def parse_ruleset(definition: ServiceDefinition, text: str, source: str) -> Ruleset:
    """A ruleset document validated for this service (InvalidRulesetError names every problem)."""
    return Ruleset.from_yaml(text, source=source, sample_context=sample_context(definition))


def load_ruleset(definition: ServiceDefinition, settings: Settings | None = None) -> Ruleset:
    """The ruleset in force: the approved published version, else the packaged file."""
    path = definition.ruleset_path
    if settings is not None:
        from shared.control.store import ControlStore

        control = ControlStore(settings.control_dir, ModelRegistry(settings.model_dir))
        active = control.active_ruleset(definition.name)
        if active is not None:
            path = control.ruleset_path(definition.name, active)
    return Ruleset.load(path, sample_context=sample_context(definition))


def load_core(definition: ServiceDefinition, settings: Settings, model_version: str | None = None) -> ScoringCore:
    registry = ModelRegistry(settings.model_dir)
    model = registry.load(definition.name, model_version, loader=definition.load_model)
    challenger = _challenger_version(definition, settings)
    shadow = registry.load(definition.name, challenger, loader=definition.load_model) if challenger else None
    return ScoringCore(definition, model, load_ruleset(definition, settings), settings.pseudonym_key, shadow)


def _challenger_version(definition: ServiceDefinition, settings: Settings) -> str | None:
    from shared.control.store import ControlStore

    return ControlStore(settings.control_dir, ModelRegistry(settings.model_dir)).challenger(definition.name)


class CoreHolder:
    """The process's current scoring core; `refresh` brings it in line with the ruleset and model in force."""

    def __init__(self, definition: ServiceDefinition, settings: Settings) -> None:
        self.definition = definition
        self.settings = settings
        self._core: ScoringCore | None = None
        self._lock = threading.Lock()
        self._log = get_logger(f"{definition.name}.control")
        self._ruleset_pointer = self._active_ruleset()

    @property
    def core(self) -> ScoringCore:
        core = self._core
        if core is None:
            with self._lock:
                if self._core is None:
                    self._core = load_core(self.definition, self.settings)
                core = self._core
        return core

    def refresh(self) -> bool:
        """Swap in a new core if the ruleset in force or the champion changed; True when swapped."""
        with self._lock:
            current = self._core
            if current is None:
                return False
            registry = ModelRegistry(self.settings.model_dir)
            model, ruleset = current.model, current.ruleset
            try:
                champion = registry.champion(self.definition.name)
                if champion != model.version:
                    model = registry.load(self.definition.name, champion, loader=self.definition.load_model)
            except (RiskError, OSError, ValueError) as error:
                return self._refused("model", error)
            challenger = current.challenger
            wanted = _challenger_version(self.definition, self.settings)
            if wanted != (challenger.version if challenger else None):
                try:
                    challenger = (
                        registry.load(self.definition.name, wanted, loader=self.definition.load_model)
                        if wanted
                        else None
                    )
                except (RiskError, OSError, ValueError) as error:
                    return self._refused("challenger", error)
            pointer = self._active_ruleset()
            if pointer != self._ruleset_pointer:
                try:
                    ruleset = load_ruleset(self.definition, self.settings)
                except (RiskError, OSError, ValueError) as error:
                    self._ruleset_pointer = pointer  # refused once, not again at every check
                    return self._refused("ruleset", error)
                self._ruleset_pointer = pointer
            if model is current.model and ruleset is current.ruleset and challenger is current.challenger:
                return False
            self._core = current.replaced(model=model, ruleset=ruleset, challenger=challenger)
            for kind, changed in (("model", model is not current.model), ("ruleset", ruleset is not current.ruleset)):
                if changed:
                    CONTROL_CHANGES.labels(self.definition.name, kind).inc()
            self._log.info(
                "control_change_applied",
                model=model.version,
                ruleset=ruleset.version,
                challenger=challenger.version if challenger else None,
                previous_model=current.model.version,
                previous_ruleset=current.ruleset.version,
            )
            return True

    def _active_ruleset(self) -> str | None:
        from shared.control.store import ControlStore

        return ControlStore(self.settings.control_dir, ModelRegistry(self.settings.model_dir)).active_ruleset(
            self.definition.name
        )

    def _refused(self, kind: str, error: Exception) -> bool:
        CONTROL_REFUSALS.labels(self.definition.name, kind).inc()
        self._log.error("control_change_refused", kind=kind, error=str(error)[:500])
        return False


def _numeric(example: object) -> Any:
    """A feature's sample value: the event field's example when it is a plain value, else 0.0 (features
    are flat numbers or categories even where the event's field is structured, e.g. a lab value and unit)."""
    return example if isinstance(example, int | float | str) else 0.0
