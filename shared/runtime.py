"""The composition root: one `Runtime` per process builds and owns every part that process runs.

Settings, the model registry, the control store, the core holder (the scoring core in force), the
window-state store, the decision store, the announcer on `risk.control` and the control listener are each built once, on
first use, and handed to every door (HTTP, stream, batch), the control commands, the demo and the tests.
Nothing else constructs them. Parts that hold sockets or threads (stores, Kafka clients, listener)
are made lazily, so a runtime built before gunicorn forks makes them in the worker that uses them.

`CoreHolder` swaps in a new core when the ruleset in force or the champion changes (announced on
`risk.control`, and checked periodically as a safety net). Work already in hand keeps the core it started
with; an invalid ruleset or an unloadable model is refused, logged and counted, and the old core stays.
"""

from __future__ import annotations

import threading
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from shared.control.listener import ControlListener
from shared.control.store import Change, ControlStore
from shared.core.contract import Contract
from shared.core.monitoring import quality_report
from shared.core.rulesets import packaged_ruleset, parse_ruleset, service_lists
from shared.core.scoring import ScoringCore
from shared.core.service import Service
from shared.decisions import DecisionStore
from shared.errors import ConfigurationError, RiskError
from shared.events.envelope import encode, make_event
from shared.events.producer import make_producer
from shared.events.topics import RISK_CONTROL
from shared.logging import get_logger
from shared.metrics import CONTROL_CHANGES, CONTROL_REFUSALS, DECISIONS_PRUNED
from shared.modeling.registry import ModelRegistry, RegisteredModel
from shared.privacy import pseudonym_of
from shared.rules.engine import Ruleset
from shared.rules.lists import ListsInForce
from shared.settings import NO_DECISION_STORE, Settings
from shared.state import StateStore, open_state_store


class IncompatibleModelError(ConfigurationError):
    """A registered model was trained on another feature set than the one the service computes."""


class Runtime:
    """Everything one process of one service runs, built once."""

    def __init__(self, service: Service, settings: Settings) -> None:
        self.service = service
        self.settings = settings
        self.registry = ModelRegistry(settings.model_dir)
        self.control = ControlStore(settings.control_dir, self.registry)
        self.holder = CoreHolder(self)
        self._lock = threading.Lock()
        self._state: StateStore | None = None
        self._decisions: DecisionStore | None = None
        self._producer: KafkaProducer | None = None
        self._listener: ControlListener | None = None
        self._log = get_logger(f"{service.name}.runtime")

    @property
    def core(self) -> ScoringCore:
        """The scoring core in force (loaded on first use)."""
        return self.holder.core

    @cached_property
    def contract(self) -> Contract:
        """The service's contract: validation needs no model, so bad input is a 422 even before one is trained."""
        return Contract(self.service.event_schema, self.service.personal_fields, self.settings.pseudonym_key)

    @property
    def state(self) -> StateStore:
        """The window-state store, opened on first use in this process, pruned by its retention."""
        if self._state is None:
            with self._lock:
                if self._state is None:
                    self._state = open_state_store(
                        self.settings.state_url,
                        retention=self.service.state_retention,
                        timeout_seconds=self.settings.state_timeout_ms / 1000,
                    )
        return self._state

    @property
    def decisions(self) -> DecisionStore | None:
        """The decision store (None when `RISK_DECISIONS_URL=none`); it connects, and migrates its schema,
        on first use in each process."""
        if self._decisions is None and self.settings.decisions_url != NO_DECISION_STORE:
            with self._lock:
                if self._decisions is None:
                    self._decisions = DecisionStore(self.settings.decisions_url)
        return self._decisions

    def entity_key(self, raw: str) -> str:
        """An entity id as the store keeps it: pseudonymised with the service's key when it is personal, so a
        look-up by a raw patient id finds that patient's decisions without the store ever holding the id."""
        if self.service.entity_field in self.service.personal_fields:
            return pseudonym_of(raw, self.settings.pseudonym_key)  # a pseudonym, as decisions show it, too
        return raw

    def prune_decisions(self, identity: str, now: datetime | None = None) -> int:
        """Delete the decisions older than the retention setting (none without one), and audit it."""
        days, store = self.settings.decisions_retention_days, self.decisions
        if days is None or store is None:
            return 0
        before = (now or datetime.now(UTC)) - timedelta(days=days)
        deleted = store.prune(self.service.name, before)
        DECISIONS_PRUNED.labels(self.service.name).inc(deleted)
        self.control.audit_action(
            self.service.name, "decisions_pruned", identity, before=before.isoformat(), deleted=deleted, days=days
        )
        self._log.info("decisions_pruned", before=before.isoformat(), deleted=deleted, retention_days=days)
        return deleted

    def monitor(self, since: datetime | None = None, until: datetime | None = None) -> dict[str, Any]:
        """Quality, calibration and drift of the decisions scored in [since, until) (all by default), per
        model version; saved as the service's latest monitoring snapshot, which /v1/monitoring serves."""
        store = self.decisions
        if store is None:
            raise ConfigurationError("RISK_DECISIONS_URL", "monitoring reads recorded decisions, and none are recorded")
        labelled = store.labelled(self.service.name, since, until)
        cards = {}
        for version in {row.model_version for row in labelled}:
            try:
                cards[version] = self.registry.card(self.service.name, version)
            except (RiskError, OSError):  # a version since deleted from the registry: no drift reference
                cards[version] = {}
        now = datetime.now(UTC)
        report = quality_report(self.service, labelled, cards, now, (since, until))
        store.save_snapshot(self.service.name, now, report)
        return report

    # ------------------------------------------------------------------ models and rulesets

    def load_model(self, version: str | None = None) -> RegisteredModel:
        """A registered version (the champion by default), refused when its feature set is not the service's."""
        model = self.registry.load(self.service.name, version, loader=self.service.load_model)
        trained_on = model.card.get("feature_set")
        expected = self.service.feature_set.describe()
        if trained_on != expected:
            raise IncompatibleModelError(
                "RISK_MODEL_DIR",
                f"{self.service.name} model {model.version} was trained on feature set {_described(trained_on)}, "
                f"but the service computes {_described(expected)}: train a model for it (`risk train "
                f"{self.service.name}`) or promote one that matches",
            )
        return model

    def ruleset_in_force(self) -> Ruleset:
        """The approved published ruleset, else the packaged one, over the lists in force."""
        active = self.control.active_ruleset(self.service.name)
        if active is None:
            return packaged_ruleset(self.service).with_lists(self.lists_in_force())
        path = self.control.ruleset_path(self.service.name, active)
        return parse_ruleset(self.service, path.read_text(), source=str(path)).with_lists(self.lists_in_force())

    def lists_in_force(self, previous: ListsInForce | None = None) -> ListsInForce:
        """The service's allow / deny / watch lists as approved (those at `previous`'s version reused)."""
        return self.control.lists.in_force(self.service.name, service_lists(self.service), previous)

    def parse_ruleset(self, text: str, source: str) -> Ruleset:
        return parse_ruleset(self.service, text, source)

    def build_core(self, model_version: str | None = None) -> ScoringCore:
        """A fresh core from what is in force (or another model version), with its challenger, if one is set."""
        challenger = self.control.challenger(self.service.name)
        return ScoringCore(
            self.service,
            self.load_model(model_version),
            self.ruleset_in_force(),
            self.settings.pseudonym_key,
            self.load_model(challenger) if challenger else None,
        )

    # ------------------------------------------------------------------ the control plane

    def follow_control(self) -> None:
        """Apply ruleset and model changes as they are announced (each HTTP worker and stream worker)."""
        with self._lock:
            if self._listener is None:
                self._listener = ControlListener(
                    self.settings.kafka_bootstrap_servers, self.service.name, self.holder.refresh
                ).start()

    def announce(self, change: Change, source: str) -> bool:
        """Tell every instance about a change in force; True when the broker acknowledged it. When it did not,
        the change is in force anyway (it is on record in the control store) and instances pick it up at
        their next periodic check."""
        event = make_event(RISK_CONTROL.event_type, source=source, data=asdict(change), subject=change.service)
        try:
            with self._lock:
                if self._producer is None:
                    self._producer = make_producer(self.settings.kafka_bootstrap_servers)
                producer = self._producer
            producer.send(RISK_CONTROL.name, key=change.service.encode(), value=encode(event)).get(timeout=10)
        except KafkaError as error:
            self._log.warning(
                "control_announcement_failed",
                service=change.service,
                kind=change.kind,
                version=change.version,
                error=type(error).__name__,
            )
            return False
        return True

    def close(self) -> None:
        """Stop the listener and close the clients and stores this runtime opened."""
        with self._lock:
            listener, producer, state, decisions = self._listener, self._producer, self._state, self._decisions
            self._listener = self._producer = self._state = self._decisions = None
        if listener is not None:
            listener.stop()
        if producer is not None:
            producer.close(timeout=5)
        if state is not None:
            state.close()
        if decisions is not None:
            decisions.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class CoreHolder:
    """The process's current scoring core; `refresh` brings it in line with the ruleset and model in force."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._service = runtime.service.name
        self._core: ScoringCore | None = None
        self._lock = threading.Lock()
        self._log = get_logger(f"{self._service}.control")
        self._ruleset_pointer = runtime.control.active_ruleset(self._service)

    @property
    def core(self) -> ScoringCore:
        return self.load()

    def load(self) -> ScoringCore:
        """The core in force, loaded now if it was not yet."""
        core = self._core
        if core is None:
            with self._lock:
                if self._core is None:
                    self._core = self._runtime.build_core()
                core = self._core
        return core

    def refresh(self) -> bool:
        """Swap in a new core if the ruleset in force, the champion or the challenger changed; True when swapped."""
        with self._lock:
            current = self._core
            if current is None:
                return False
            runtime, service = self._runtime, self._service
            model, ruleset, challenger = current.model, current.ruleset, current.challenger
            try:
                champion = runtime.registry.champion(service)
                if champion != model.version:
                    model = runtime.load_model(champion)
            except (RiskError, OSError, ValueError) as error:
                return self._refused("model", error)
            wanted = runtime.control.challenger(service)
            if wanted != (challenger.version if challenger else None):
                try:
                    challenger = runtime.load_model(wanted) if wanted else None
                except (RiskError, OSError, ValueError) as error:
                    return self._refused("challenger", error)
            pointer = runtime.control.active_ruleset(service)
            ruleset_changed = pointer != self._ruleset_pointer
            if ruleset_changed:
                self._ruleset_pointer = pointer  # refused once, not again at every check
                try:
                    ruleset = runtime.ruleset_in_force()
                except (RiskError, OSError, ValueError) as error:
                    return self._refused("ruleset", error)
            elif runtime.control.lists.versions(service).items() - ruleset.lists.versions.items():
                try:
                    ruleset = ruleset.with_lists(runtime.lists_in_force(ruleset.lists))
                except (RiskError, OSError, ValueError) as error:
                    return self._refused("lists", error)
            if model is current.model and ruleset is current.ruleset and challenger is current.challenger:
                return False
            self._core = current.replaced(model=model, ruleset=ruleset, challenger=challenger)
            lists_changed = ruleset.lists.versions != current.ruleset.lists.versions
            for kind, changed in (
                ("model", model is not current.model),
                ("ruleset", ruleset_changed),
                ("lists", lists_changed),
            ):
                if changed:
                    CONTROL_CHANGES.labels(service, kind).inc()
            self._log.info(
                "control_change_applied",
                model=model.version,
                ruleset=ruleset.version,
                challenger=challenger.version if challenger else None,
                previous_model=current.model.version,
                previous_ruleset=current.ruleset.version,
                lists=ruleset.lists.versions if lists_changed else None,
            )
            return True

    def _refused(self, kind: str, error: Exception) -> bool:
        CONTROL_REFUSALS.labels(self._service, kind).inc()
        self._log.error("control_change_refused", kind=kind, error=str(error)[:500])
        return False


def _described(feature_set: Any) -> str:
    if not isinstance(feature_set, dict):
        return "(none recorded)"
    return f"{feature_set.get('name')} v{feature_set.get('version')} ({', '.join(feature_set.get('features', []))})"
