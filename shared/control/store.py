"""The control plane's records: published ruleset versions, proposals awaiting a second person, which
ruleset is active, and the append-only audit log. One directory per service:

    <root>/<service>/rulesets/<version>.yaml    every published ruleset version, never rewritten
    <root>/<service>/active_ruleset             the version in force (one line; replaced atomically)
    <root>/<service>/proposals/<id>.json        a proposal and, once decided, its outcome
    <root>/<service>/audit.jsonl                who did what, when, old and new version: appended only

Maker-checker: a ruleset publication or a model promotion is proposed by one identity and takes effect
only when a different identity approves it. A rollback to a version that was in force before takes effect
at once (it is the way out of an incident) and is audited like the rest. The model versions themselves
live in the model registry; only its champion alias moves here.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from shared.errors import ForbiddenError, InvalidInputError, ModelNotFoundError
from shared.modeling.registry import ModelRegistry, write_atomically
from shared.rules.engine import Ruleset

Kind = Literal["ruleset", "model", "challenger"]
VERSION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class ControlError(InvalidInputError):
    """A control request that cannot be carried out; `fields` says which part and why."""


@dataclass(frozen=True)
class Proposal:
    id: str
    service: str
    kind: Kind
    version: str
    proposed_by: str
    proposed_at: str
    status: Literal["pending", "approved", "refused"] = "pending"
    decided_by: str | None = None
    decided_at: str | None = None


@dataclass(frozen=True)
class Change:
    """What an approval or a rollback put in force: announced on `risk.control` for every instance."""

    service: str
    kind: Kind
    version: str
    previous: str | None


class ControlStore:
    def __init__(self, root: Path, models: ModelRegistry) -> None:
        self.root = Path(root)
        self.models = models

    # ------------------------------------------------------------------ rulesets

    def ruleset_path(self, service: str, version: str) -> Path:
        return self.root / service / "rulesets" / f"{_checked_version(version)}.yaml"

    def ruleset_versions(self, service: str) -> list[str]:
        folder = self.root / service / "rulesets"
        return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []

    def active_ruleset(self, service: str) -> str | None:
        try:
            return (self.root / service / "active_ruleset").read_text().strip() or None
        except FileNotFoundError:
            return None

    def propose_ruleset(self, service: str, ruleset: Ruleset, text: str, identity: str) -> Proposal:
        """Store the (already validated) ruleset as an immutable version and propose putting it in force."""
        if ruleset.service != service:
            raise ControlError({"service": [f"the ruleset is for {ruleset.service!r}, not {service!r}"]})
        path = self.ruleset_path(service, ruleset.version)
        with self._locked(service):
            if path.exists() and path.read_text() != text:
                raise ControlError(
                    {
                        "version": [
                            f"version {ruleset.version} is already published with other "
                            "content: give the new ruleset a new version"
                        ]
                    }
                )
            if not path.exists():
                write_atomically(path, text)
            return self._propose(service, "ruleset", ruleset.version, identity)

    # ------------------------------------------------------------------ models

    def propose_promotion(self, service: str, version: str, identity: str) -> Proposal:
        if version not in self.models.versions(service):
            raise ControlError({"version": [f"no {service} model version {version!r} in the registry"]})
        with self._locked(service):
            return self._propose(service, "model", version, identity)

    def challenger(self, service: str) -> str | None:
        """The model scored in shadow beside the champion (recorded in decisions, never acted on)."""
        try:
            return (self.root / service / "challenger").read_text().strip() or None
        except FileNotFoundError:
            return None

    def set_challenger(self, service: str, version: str | None, identity: str) -> Change:
        """Shadow scoring changes no decision, so it needs no second person; it is audited all the same."""
        with self._locked(service):
            if version is not None and version not in self.models.versions(service):
                raise ControlError({"version": [f"no {service} model version {version!r} in the registry"]})
            previous = self.challenger(service)
            write_atomically(self.root / service / "challenger", (version or "") + "\n")
            self._audit(
                service,
                "challenger_set" if version else "challenger_cleared",
                identity,
                "challenger",
                version or "",
                previous,
            )
            return Change(service, "challenger", version or "", previous)

    def champion(self, service: str) -> str | None:
        try:
            return self.models.champion(service)
        except ModelNotFoundError:
            return None

    # ------------------------------------------------------------------ decisions on proposals

    def approve(self, service: str, proposal_id: str, identity: str) -> Change:
        with self._locked(service):
            proposal = self._pending(service, proposal_id)
            if identity == proposal.proposed_by:
                self._audit(
                    service,
                    "approval_refused",
                    identity,
                    proposal.kind,
                    proposal.version,
                    None,
                    reason="the proposer cannot approve their own proposal",
                    proposal=proposal.id,
                )
                raise ForbiddenError(f"{identity!r} proposed this change: a different identity must approve it")
            change = self._put_in_force(service, proposal.kind, proposal.version)
            self._decide(proposal, "approved", identity)
            self._audit(
                service,
                "approved",
                identity,
                proposal.kind,
                proposal.version,
                change.previous,
                proposal=proposal.id,
                proposed_by=proposal.proposed_by,
            )
            return change

    def refuse(self, service: str, proposal_id: str, identity: str, reason: str) -> Proposal:
        with self._locked(service):
            proposal = self._decide(self._pending(service, proposal_id), "refused", identity)
            self._audit(
                service, "refused", identity, proposal.kind, proposal.version, None, proposal=proposal.id, reason=reason
            )
            return proposal

    def rollback(self, service: str, kind: Kind, version: str, identity: str) -> Change:
        """Back to a version that exists (a published ruleset, a registered model), at once."""
        with self._locked(service):
            if kind == "ruleset" and version not in self.ruleset_versions(service):
                raise ControlError({"version": [f"no published {service} ruleset {version!r}"]})
            if kind == "model" and version not in self.models.versions(service):
                raise ControlError({"version": [f"no {service} model version {version!r} in the registry"]})
            change = self._put_in_force(service, kind, version)
            self._audit(service, "rolled_back", identity, kind, version, change.previous)
            return change

    def proposals(self, service: str) -> list[Proposal]:
        folder = self.root / service / "proposals"
        found = [Proposal(**json.loads(p.read_text())) for p in folder.glob("*.json")] if folder.is_dir() else []
        return sorted(found, key=lambda p: p.proposed_at)

    def audit_action(self, service: str, action: str, identity: str, **detail: Any) -> None:
        """Put an action that changes no version in force (e.g. pruning records by retention) in the audit log."""
        self._append_audit(
            service, {"at": _now(), "service": service, "action": action, "identity": identity, **detail}
        )

    def audit(self, service: str) -> list[dict[str, Any]]:
        try:
            lines = (self.root / service / "audit.jsonl").read_text().splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines if line.strip()]

    # ------------------------------------------------------------------ internals

    def _propose(self, service: str, kind: Kind, version: str, identity: str) -> Proposal:
        proposal = Proposal(uuid.uuid4().hex[:12], service, kind, version, identity, _now())
        write_atomically(self._proposal_path(service, proposal.id), json.dumps(asdict(proposal)) + "\n")
        current = self.active_ruleset(service) if kind == "ruleset" else self.champion(service)
        self._audit(service, "proposed", identity, kind, version, current, proposal=proposal.id)
        return proposal

    def _pending(self, service: str, proposal_id: str) -> Proposal:
        try:
            proposal = Proposal(**json.loads(self._proposal_path(service, proposal_id).read_text()))
        except FileNotFoundError:
            raise ControlError({"proposal": [f"no {service} proposal {proposal_id!r}"]}) from None
        if proposal.status != "pending":
            raise ControlError({"proposal": [f"proposal {proposal_id} was already {proposal.status}"]})
        return proposal

    def _decide(self, proposal: Proposal, status: Literal["approved", "refused"], identity: str) -> Proposal:
        decided = Proposal(**{**asdict(proposal), "status": status, "decided_by": identity, "decided_at": _now()})
        write_atomically(self._proposal_path(proposal.service, proposal.id), json.dumps(asdict(decided)) + "\n")
        return decided

    def _put_in_force(self, service: str, kind: Kind, version: str) -> Change:
        if kind == "ruleset":
            previous = self.active_ruleset(service)
            write_atomically(self.root / service / "active_ruleset", version + "\n")
        else:
            previous = self.champion(service)
            self.models.set_champion(service, version)
        return Change(service, kind, version, previous)

    def _audit(
        self, service: str, action: str, identity: str, kind: Kind, version: str, previous: str | None, **detail: Any
    ) -> None:
        entry = {
            "at": _now(),
            "service": service,
            "action": action,
            "identity": identity,
            "kind": kind,
            "version": version,
            "previous": previous,
            **detail,
        }
        self._append_audit(service, entry)

    def _append_audit(self, service: str, entry: dict[str, Any]) -> None:
        path = self.root / service / "audit.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as stream:  # O_APPEND: entries are only ever added
            stream.write(json.dumps(entry, sort_keys=True) + "\n")

    def _proposal_path(self, service: str, proposal_id: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{12}", proposal_id):
            raise ControlError({"proposal": [f"{proposal_id!r} is not a proposal id"]})
        return self.root / service / "proposals" / f"{proposal_id}.json"

    @contextmanager
    def _locked(self, service: str) -> Iterator[None]:
        """One control change of a service at a time, across processes (CLI and HTTP alike)."""
        folder = self.root / service
        folder.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)


def _checked_version(version: str) -> str:
    if not VERSION_PATTERN.fullmatch(version):
        raise ControlError({"version": [f"{version!r} is not a version name (letters, digits, . _ -)"]})
    return version


def _now() -> str:
    return datetime.now(UTC).isoformat()
