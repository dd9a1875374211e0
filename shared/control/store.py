"""The control plane's records: published ruleset versions, proposals awaiting a second person, what is in
force, and the audit log (a hash chain, shared/control/audit.py). One directory per service:

    <root>/<service>/rulesets/<version>.yaml    every published ruleset version, never rewritten
    <root>/<service>/active_ruleset             the version in force, once one was approved (replaced atomically)
    <root>/<service>/packaged_ruleset           the packaged version, recorded as version 1 of the history
    <root>/<service>/challenger                 the model scored in shadow (empty: none)
    <root>/<service>/proposals/<id>.json        a proposal and, once decided, its outcome
    <root>/<service>/lists/...                  allow / deny / watch lists and their changes (shared/control/lists.py)
    <root>/<service>/audit.jsonl(.head)         who did what, when, old and new version: a hash chain

Maker-checker: every change to what is in force (a ruleset publication, a model promotion, a challenger set
or cleared, a rollback, values added to or removed from a list) is a proposal by one identity that takes
effect only when a different identity approves it. A rollback goes back only: to a version in force before
the current one first came into force. The model versions themselves live in the model registry; only its
champion alias moves here (and once without a proposal: a service's first model, when there is no
champion, is audited as `first_champion`).
Who may propose or approve (roles) is the doors' business: this store only sees identities.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from shared.control.audit import AuditLog, Verification
from shared.control.lists import ListAction, ListStore, values_digest
from shared.errors import ForbiddenError, InvalidInputError, ModelNotFoundError
from shared.locks import exclusive
from shared.modeling.registry import ModelRegistry, write_atomically
from shared.rules.engine import Ruleset
from shared.rules.lists import ListSpec

Kind = Literal["ruleset", "model", "challenger", "list"]
Action = Literal["publish", "promote", "challenger", "rollback", "add", "remove"]
Reversible = Literal["ruleset", "model"]  # the kinds a rollback can go back on
VERSION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Audit actions that put a ruleset or a champion in force (with `previous`, what they replaced).
IN_FORCE_ACTIONS = frozenset({"approved", "rolled_back", "packaged_recorded", "first_champion"})
PACKAGE_IDENTITY = "package"  # who records the packaged ruleset: the deploy that shipped it, not a person


class ControlError(InvalidInputError):
    """A control request that cannot be carried out; `fields` says which part and why (so does the message)."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        super().__init__(fields, "; ".join(f"{name}: {' '.join(problems)}" for name, problems in fields.items()))


@dataclass(frozen=True)
class Proposal:
    id: str
    service: str
    kind: Kind
    version: str  # for a challenger, "" clears it
    proposed_by: str
    proposed_at: str
    status: Literal["pending", "approved", "refused"] = "pending"
    decided_by: str | None = None
    decided_at: str | None = None
    action: Action = "publish"
    previous: str | None = None  # what was in force when it was proposed (a list: its version then)
    # A list change: `version` is the list's name; how many values it adds or removes, and their digest
    # (the values themselves are kept beside the proposal, shared/control/lists.py).
    values: int | None = None
    values_digest: str | None = None


@dataclass(frozen=True)
class Change:
    """What an approval put in force: announced on `risk.control` for every instance. For a list, `version`
    is its name, `previous` and `list_version` its versions before and after."""

    service: str
    kind: Kind
    version: str
    previous: str | None
    list_version: int | None = None


class ControlStore:
    def __init__(self, root: Path, models: ModelRegistry) -> None:
        self.root = Path(root)
        self.models = models
        self.lists = ListStore(self.root)

    # ------------------------------------------------------------------ rulesets

    def ruleset_path(self, service: str, version: str) -> Path:
        return self.root / service / "rulesets" / f"{_checked_version(version)}.yaml"

    def ruleset_versions(self, service: str) -> list[str]:
        folder = self.root / service / "rulesets"
        return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []

    def active_ruleset(self, service: str) -> str | None:
        """The approved version in force; None while the packaged ruleset is (the runtime then loads it)."""
        return _pointer(self.root / service / "active_ruleset")

    def current_ruleset(self, service: str) -> str | None:
        """The version in force as the control plane knows it: the approved one, else the packaged one."""
        return self.active_ruleset(service) or _pointer(self.root / service / "packaged_ruleset")

    def record_packaged(self, service: str, version: str, text: str) -> None:
        """While no approved ruleset is in force, the packaged one is: record it as a published version (the
        first of the history, so a rollback can go back to it). Once recorded, nothing to do."""
        if self.active_ruleset(service) or _pointer(self.root / service / "packaged_ruleset") == version:
            return
        path = self.ruleset_path(service, version)
        with self._locked(service):
            if self.active_ruleset(service) or _pointer(self.root / service / "packaged_ruleset") == version:
                return
            if path.exists() and path.read_text() != text:
                return  # that version was published with other content: it stays as published
            if not path.exists():
                write_atomically(path, text)
            previous = _pointer(self.root / service / "packaged_ruleset")
            write_atomically(self.root / service / "packaged_ruleset", version + "\n")
            self._audit(service, "packaged_recorded", PACKAGE_IDENTITY, "ruleset", version, previous)

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
            if ruleset.version == self.current_ruleset(service):
                raise ControlError({"version": [f"ruleset {ruleset.version} is already in force"]})
            if not path.exists():
                write_atomically(path, text)
            return self._propose(service, "ruleset", "publish", ruleset.version, identity)

    # ------------------------------------------------------------------ models

    def champion(self, service: str) -> str | None:
        try:
            return self.models.champion(service)
        except ModelNotFoundError:
            return None

    def challenger(self, service: str) -> str | None:
        """The model scored in shadow beside the champion (recorded in decisions, never acted on)."""
        return _pointer(self.root / service / "challenger")

    def propose_promotion(self, service: str, version: str, identity: str) -> Proposal:
        with self._locked(service):
            self._registered(service, version)
            if version == self.champion(service):
                raise ControlError({"version": [f"{service} model {version} is already the champion"]})
            return self._propose(service, "model", "promote", version, identity)

    def propose_challenger(self, service: str, version: str | None, identity: str) -> Proposal:
        """Shadow scoring changes no decision, yet it changes what runs on every event: a proposal too.
        `version` None proposes clearing the challenger."""
        with self._locked(service):
            if version is not None:
                self._registered(service, version)
            if version == self.challenger(service):
                raise ControlError({"version": [f"the {service} challenger is already {version or 'none'}"]})
            return self._propose(service, "challenger", "challenger", version or "", identity)

    def record_first_champion(self, service: str, version: str, identity: str) -> None:
        """The registry made `version` the champion because there was none: the one change without a proposal."""
        self._audit(service, "first_champion", identity, "model", version, None)

    # ------------------------------------------------------------------ lists

    def propose_list_change(
        self, service: str, spec: ListSpec, action: ListAction, values: list[str], identity: str
    ) -> Proposal:
        """Propose adding values to a list, or removing them (values as the list holds them: see
        `shared.control.lists.entered_values`); refused when it would change nothing."""
        with self._locked(service):
            if not self.lists.effect(service, spec.name, action, values):
                where = "already on" if action == "add" else "not on"
                raise ControlError({"values": [f"every value given is {where} {spec.name}: nothing would change"]})
            version, _ = self.lists.listed(service, spec.name)
            proposal = self._propose(
                service,
                "list",
                action,
                spec.name,
                identity,
                previous=str(version),
                values=len(values),
                values_digest=values_digest(values),
                before_writing=lambda proposal_id: self.lists.save_proposed(service, proposal_id, values),
            )
            return proposal

    # ------------------------------------------------------------------ rollbacks

    def history(self, service: str, kind: Reversible) -> list[str]:
        """The versions of `kind` in the order they came into force (a version again each time it came back)."""
        history: list[str] = []
        for entry in self.audit(service):
            if entry.get("kind") != kind or entry.get("action") not in IN_FORCE_ACTIONS:
                continue
            previous = entry.get("previous")
            if previous and (not history or history[-1] != previous):  # in force before the log knew it
                history.append(previous)
            if not history or history[-1] != entry["version"]:
                history.append(entry["version"])
        return history

    def rollback_targets(self, service: str, kind: Reversible) -> list[str]:
        """Where a rollback may go: the versions in force before the current one first came into force."""
        current = self.current_ruleset(service) if kind == "ruleset" else self.champion(service)
        history = self.history(service, kind)
        earlier = history[: history.index(current)] if current in history else history
        return list(dict.fromkeys(v for v in earlier if v != current))

    def propose_rollback(self, service: str, kind: Reversible, version: str, identity: str) -> Proposal:
        with self._locked(service):
            self._check_rollback(service, kind, version)
            return self._propose(service, kind, "rollback", version, identity)

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
            self._still_possible(proposal)
            change = self._put_in_force(proposal, identity)
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
                change=proposal.action,
                **_list_detail(proposal, change),
            )
            return change

    def refuse(self, service: str, proposal_id: str, identity: str, reason: str) -> Proposal:
        with self._locked(service):
            proposal = self._decide(self._pending(service, proposal_id), "refused", identity)
            self._audit(
                service,
                "refused",
                identity,
                proposal.kind,
                proposal.version,
                None,
                proposal=proposal.id,
                reason=reason,
                change=proposal.action,
                **_list_detail(proposal, None),
            )
            return proposal

    def proposals(self, service: str) -> list[Proposal]:
        folder = self.root / service / "proposals"
        found = [_proposal(json.loads(p.read_text())) for p in folder.glob("*.json")] if folder.is_dir() else []
        return sorted(found, key=lambda p: p.proposed_at)

    def proposal(self, service: str, proposal_id: str) -> Proposal:
        try:
            return _proposal(json.loads(self._proposal_path(service, proposal_id).read_text()))
        except FileNotFoundError:
            raise ControlError({"proposal": [f"no {service} proposal {proposal_id!r}"]}) from None

    # ------------------------------------------------------------------ the audit log

    def audit_action(self, service: str, action: str, identity: str, **detail: Any) -> None:
        """Put an action that changes no version in force (e.g. pruning records by retention) in the audit log."""
        self._log(service).append({"at": _now(), "service": service, "action": action, "identity": identity, **detail})

    def audit(self, service: str) -> list[dict[str, Any]]:
        return self._log(service).entries()

    def verify_audit(self, service: str, expected_head: str | None = None) -> Verification:
        return self._log(service).verify(expected_head)

    # ------------------------------------------------------------------ internals

    def _log(self, service: str) -> AuditLog:
        return AuditLog(self.root / service / "audit.jsonl")

    def _propose(
        self,
        service: str,
        kind: Kind,
        action: Action,
        version: str,
        identity: str,
        *,
        previous: str | None = None,
        values: int | None = None,
        values_digest: str | None = None,
        before_writing: Callable[[str], None] | None = None,
    ) -> Proposal:
        current = (
            previous
            if kind == "list"
            else {"ruleset": self.current_ruleset, "model": self.champion, "challenger": self.challenger}[kind](service)
        )
        proposal = Proposal(
            uuid.uuid4().hex[:12],
            service,
            kind,
            version,
            identity,
            _now(),
            action=action,
            previous=current,
            values=values,
            values_digest=values_digest,
        )
        if before_writing is not None:  # what the proposal needs beside it, there before the proposal is
            before_writing(proposal.id)
        write_atomically(self._proposal_path(service, proposal.id), json.dumps(asdict(proposal)) + "\n")
        self._audit(
            service,
            "proposed",
            identity,
            kind,
            version,
            current,
            proposal=proposal.id,
            change=action,
            **_list_detail(proposal, None),
        )
        return proposal

    def _registered(self, service: str, version: str) -> None:
        if version not in self.models.versions(service):
            raise ControlError({"version": [f"no {service} model version {version!r} in the registry"]})

    def _check_rollback(self, service: str, kind: Reversible, version: str) -> None:
        targets = self.rollback_targets(service, kind)
        if version not in targets:
            what = "ruleset" if kind == "ruleset" else "model version"
            raise ControlError(
                {
                    "version": [
                        f"a rollback goes back to a {service} {what} in force before the current one; "
                        f"{version!r} is not one (it may be: {', '.join(targets) or 'none'})"
                    ]
                }
            )

    def _still_possible(self, proposal: Proposal) -> None:
        """What was checked when it was proposed, checked again: things may have moved since."""
        if proposal.kind == "list":
            values = self.lists.proposed_values(proposal.service, proposal.id)
            if not self.lists.effect(proposal.service, proposal.version, _list_action(proposal), values):
                raise ControlError(
                    {"proposal": [f"{proposal.version} has changed since: this change would change nothing now"]}
                )
        elif proposal.action == "rollback" and proposal.kind in ("ruleset", "model"):
            self._check_rollback(proposal.service, proposal.kind, proposal.version)
        elif proposal.kind == "ruleset" and not self.ruleset_path(proposal.service, proposal.version).exists():
            raise ControlError({"version": [f"ruleset {proposal.version} is no longer published"]})
        elif proposal.kind in ("model", "challenger") and proposal.version:
            self._registered(proposal.service, proposal.version)

    def _pending(self, service: str, proposal_id: str) -> Proposal:
        proposal = self.proposal(service, proposal_id)
        if proposal.status != "pending":
            raise ControlError({"proposal": [f"proposal {proposal_id} was already {proposal.status}"]})
        return proposal

    def _decide(self, proposal: Proposal, status: Literal["approved", "refused"], identity: str) -> Proposal:
        decided = Proposal(**{**asdict(proposal), "status": status, "decided_by": identity, "decided_at": _now()})
        write_atomically(self._proposal_path(proposal.service, proposal.id), json.dumps(asdict(decided)) + "\n")
        return decided

    def _put_in_force(self, proposal: Proposal, approved_by: str) -> Change:
        service, kind, version = proposal.service, proposal.kind, proposal.version
        if kind == "list":
            applied = self.lists.apply(
                service,
                version,
                _list_action(proposal),
                self.lists.proposed_values(service, proposal.id),
                proposal=proposal.id,
                proposed_by=proposal.proposed_by,
                approved_by=approved_by,
                at=_now(),
            )
            return Change(service, kind, version, str(applied.previous), list_version=applied.version)
        if kind == "ruleset":
            previous = self.current_ruleset(service)
            write_atomically(self.root / service / "active_ruleset", version + "\n")
        elif kind == "challenger":
            previous = self.challenger(service)
            write_atomically(self.root / service / "challenger", version + "\n")
        else:
            previous = self.champion(service)
            self.models.set_champion(service, version)
        return Change(service, kind, version, previous)

    def _audit(
        self, service: str, action: str, identity: str, kind: Kind, version: str, previous: str | None, **detail: Any
    ) -> None:
        self.audit_action(service, action, identity, kind=kind, version=version, previous=previous, **detail)

    def _proposal_path(self, service: str, proposal_id: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{12}", proposal_id):
            raise ControlError({"proposal": [f"{proposal_id!r} is not a proposal id"]})
        return self.root / service / "proposals" / f"{proposal_id}.json"

    def _locked(self, service: str) -> AbstractContextManager[None]:
        """One control change of a service at a time, across processes."""
        return exclusive(self.root / service / ".lock")


def _list_action(proposal: Proposal) -> ListAction:
    return "remove" if proposal.action == "remove" else "add"


def _list_detail(proposal: Proposal, change: Change | None) -> dict[str, Any]:
    """What the audit log records of a list change beside its name: how many values, their digest, and
    (approved) the list's new version; nothing for other kinds."""
    if proposal.kind != "list":
        return {}
    detail: dict[str, Any] = {"values": proposal.values, "values_digest": proposal.values_digest}
    if change is not None:
        detail["list_version"] = change.list_version
    return detail


def _proposal(record: dict[str, Any]) -> Proposal:
    """A stored proposal; one written before proposals named their action gets the action its kind implies."""
    known = {f.name for f in fields(Proposal)}
    record = {name: value for name, value in record.items() if name in known}
    record.setdefault("action", {"ruleset": "publish", "model": "promote"}.get(record["kind"], "challenger"))
    return Proposal(**record)


def _pointer(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


def _checked_version(version: str) -> str:
    if not VERSION_PATTERN.fullmatch(version):
        raise ControlError({"version": [f"{version!r} is not a version name (letters, digits, . _ -)"]})
    return version


def _now() -> str:
    return datetime.now(UTC).isoformat()
