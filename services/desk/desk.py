"""What the desk works with, built once per process: the settings, one decision store, and each service's
runtime (its ruleset in force, window state and audit log), made on first use (after gunicorn's fork)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from services import registry
from services.desk.resolutions import OUTCOME_SOURCE, Resolution
from shared.core.outcomes import learn
from shared.decisions import DecisionStore, OutcomeReport, OutcomeStatus
from shared.errors import ConfigurationError
from shared.logging import get_logger
from shared.rules.engine import Ruleset
from shared.runtime import Runtime
from shared.settings import NO_DECISION_STORE, Settings

SYNC_EVERY_SECONDS = 2.0  # how often a process looks for new decisions to queue, at most
RULESET_CHECK_SECONDS = 5.0  # how often the ruleset in force (and so what queues) is checked again

_log = get_logger("desk")


class CaseNotOpenError(Exception):
    """The case is not open (resolved meanwhile, or never queued)."""


@dataclass(frozen=True)
class Resolved:
    resolution: Resolution
    outcome_status: OutcomeStatus | None  # what the outcomes door made of it; None when it reports no outcome


class Desk:
    def __init__(self, settings: Settings) -> None:
        if settings.decisions_url == NO_DECISION_STORE:
            raise ConfigurationError("RISK_DECISIONS_URL", "the desk reads recorded decisions: name a decision store")
        self.settings = settings
        self.store = DecisionStore(settings.decisions_url)
        self.services = tuple(registry.service_names())
        self._runtimes: dict[str, Runtime] = {}
        self._rulesets: dict[str, tuple[float, Ruleset]] = {}
        self._synced_at = 0.0
        self._lock = threading.Lock()

    def runtime(self, service: str) -> Runtime:
        with self._lock:
            if service not in self._runtimes:
                self._runtimes[service] = registry.runtime(service, self.settings)
            return self._runtimes[service]

    def ruleset(self, service: str) -> Ruleset:
        """The service's ruleset in force, checked again every few seconds (a published ruleset may queue more)."""
        now = time.monotonic()
        held = self._rulesets.get(service)
        if held is None or now - held[0] >= RULESET_CHECK_SECONDS:
            held = (now, self.runtime(service).ruleset_in_force())
            self._rulesets[service] = held
        return held[1]

    def severities(self, service: str) -> dict[str, int]:
        """The outcomes that queue, each with its place among the ruleset's outcomes (higher: more severe)."""
        ruleset = self.ruleset(service)
        return {outcome: ruleset.outcomes.index(outcome) for outcome in ruleset.queue}

    def sync(self, force: bool = False) -> int:
        """Open cases for the decisions recorded since the last look (at most every SYNC_EVERY_SECONDS)."""
        now = time.monotonic()
        if not force and now - self._synced_at < SYNC_EVERY_SECONDS:
            return 0
        self._synced_at = now
        opened = sum(self.store.sync_cases(s, self.severities(s), datetime.now(UTC)) for s in self.services)
        if opened:
            _log.info("cases_opened", cases=opened)
        return opened

    def assign(self, service: str, event_id: str, identity: str) -> None:
        if not self.store.assign_case(service, event_id, identity, datetime.now(UTC)):
            raise CaseNotOpenError(event_id)
        self._audit(service, "case_assigned", identity, event_id=event_id, assignee=identity)

    def comment(self, service: str, event_id: str, identity: str, body: str) -> None:
        self.store.comment_case(service, event_id, identity, body, datetime.now(UTC))
        self._audit(service, "case_commented", identity, event_id=event_id, characters=len(body))

    def resolve(self, service: str, event_id: str, identity: str, resolution: Resolution) -> Resolved:
        """Close the case (first, so two reviewers cannot both resolve it), then report its outcome through
        the outcomes door's own code; if that fails the case is opened again."""
        now = datetime.now(UTC)
        if not self.store.resolve_case(service, event_id, resolution.value, identity, now):
            raise CaseNotOpenError(event_id)
        status = None
        if resolution.outcome is not None:
            runtime = self.runtime(service)
            label = runtime.service.outcomes[resolution.outcome]
            report = OutcomeReport(event_id, resolution.outcome, label, OUTCOME_SOURCE, now)
            try:
                status = learn(runtime.service, [report], self.store, runtime.state, "desk")[0].status
            except BaseException:
                self.store.reopen_case(service, event_id)
                raise
        self._audit(
            service,
            "case_resolved",
            identity,
            event_id=event_id,
            resolution=resolution.value,
            outcome=resolution.outcome,
            outcome_status=status.value if status else None,
        )
        return Resolved(resolution, status)

    def close(self) -> None:
        for runtime in self._runtimes.values():
            runtime.close()
        self.store.close()

    def _audit(self, service: str, action: str, identity: str, **detail: object) -> None:
        self.runtime(service).control.audit_action(service, action, identity, door="desk", **detail)
        _log.info(action, service=service, identity=identity, **detail)
