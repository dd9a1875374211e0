"""The desk's lists page: each service's allow / deny / watch lists, a page of a list's values, proposing
values to add or remove, and approving or refusing another identity's proposal. Every change goes through
the control store (maker-checker, the audit log) and, once approved, is announced on `risk.control`, as the
control API does (shared/doors/control_api.py). Who may do what is the control plane's roles: reading lists
needs analyst, approver or admin; proposing analyst or admin; approving approver or admin."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from services.desk.access import VIEW_CASES, requires
from services.desk.desk import Desk
from shared.control.lists import ListAction, entered_values
from shared.control.roles import DECIDE, PROPOSE, READ_CONTROL, may, require
from shared.control.store import Proposal
from shared.core.rulesets import service_lists
from shared.errors import ForbiddenError, InvalidInputError
from shared.rules.lists import ListSpec
from shared.runtime import Runtime

blueprint = Blueprint("lists", __name__)
PAGE = 200
SHOWN_PROPOSED = 50  # of a pending change's values, on the page (the count and digest say the rest)


def _desk() -> Desk:
    found: Desk = current_app.extensions["risk_desk"]
    return found


def _runtime(service: str) -> Runtime:
    if service not in _desk().services:
        abort(404, f"no service {service}")
    return _desk().runtime(service)


def _spec(runtime: Runtime, name: str) -> ListSpec:
    spec = next((s for s in service_lists(runtime.service) if s.name == name), None)
    if spec is None:
        abort(404, f"{runtime.service.name} has no list {name}")
    return spec


def _allowed(action: str) -> None:
    try:
        require(g.identity, action)
    except ForbiddenError as error:
        abort(403, str(error))


@blueprint.get("/lists")
@requires(VIEW_CASES)
def lists_page() -> tuple[str, int]:
    _allowed(READ_CONTROL)
    service = request.args.get("service") or _desk().services[0]
    return _render(service, {}, 200)


@blueprint.get("/lists/<service>/<name>")
@requires(VIEW_CASES)
def list_values(service: str, name: str) -> str:
    _allowed(READ_CONTROL)
    runtime = _runtime(service)
    spec = _spec(runtime, name)
    version, values = runtime.control.lists.listed(service, name)
    after = request.args.get("after", "")
    start = next((i for i, v in enumerate(values) if v > after), len(values)) if after else 0
    looked_up = request.args.get("value", "").strip()
    found: dict[str, Any] | None = None
    if looked_up:
        try:
            (held,) = entered_values(spec, [looked_up], runtime.settings.pseudonym_key)
            found = {"value": held, "listed": held in set(values)}
        except InvalidInputError:
            found = {"value": None, "listed": False}
    page = values[start : start + PAGE]
    return render_template(
        "lists_values.html",
        service=service,
        spec=spec,
        version=version,
        size=len(values),
        values=page,
        next_after=page[-1] if start + PAGE < len(values) else None,
        found=found,
        history=[
            {k: v for k, v in change.items() if k != "values"} | {"changed": len(change["values"])}
            for change in runtime.control.lists.changes(service, name)
        ],
    )


@blueprint.post("/lists/<service>/proposals")
@requires(VIEW_CASES)
def propose(service: str) -> Response | tuple[str, int]:
    _allowed(PROPOSE)
    runtime = _runtime(service)
    form = request.form
    problems: dict[str, str] = {}
    spec = next((s for s in service_lists(runtime.service) if s.name == form.get("list")), None)
    if spec is None:
        problems["list"] = "choose one of the lists"
    action = form.get("action")
    if action not in ("add", "remove"):
        problems["action"] = "add or remove"
    raw = [line.strip() for line in form.get("values", "").splitlines() if line.strip()]
    if not raw:
        problems["values"] = "one value a line"
    if problems or spec is None:
        return _render(service, problems, 422)
    change: ListAction = "add" if action == "add" else "remove"
    try:
        values = entered_values(spec, raw, runtime.settings.pseudonym_key)
        proposal = runtime.control.propose_list_change(service, spec, change, values, g.identity.name)
    except InvalidInputError as error:
        return _render(service, {"values": _words(error)}, 422)
    flash(f"Proposed {proposal.id}: {change} {len(values)} value(s) on {spec.name}; another person approves it.")
    return redirect(url_for("lists.lists_page", service=service), 303)


@blueprint.post("/lists/<service>/proposals/<proposal_id>/approve")
@requires(VIEW_CASES)
def approve(service: str, proposal_id: str) -> Response | tuple[str, int]:
    _allowed(DECIDE)
    runtime = _runtime(service)
    try:
        _list_proposal(runtime, proposal_id)
        change = runtime.control.approve(service, proposal_id, g.identity.name)
    except ForbiddenError as error:
        return _render(service, {"proposal": str(error)}, 403)
    except InvalidInputError as error:
        return _render(service, {"proposal": _words(error)}, 422)
    announced = runtime.announce(change, "/risk/desk")
    later = "" if announced else " (not announced: instances pick it up at their next check, within seconds)"
    flash(f"Approved: {change.version} is at version {change.list_version}{later}.")
    return redirect(url_for("lists.lists_page", service=service), 303)


@blueprint.post("/lists/<service>/proposals/<proposal_id>/refuse")
@requires(VIEW_CASES)
def refuse(service: str, proposal_id: str) -> Response | tuple[str, int]:
    _allowed(DECIDE)
    runtime = _runtime(service)
    reason = request.form.get("reason", "").strip()
    if not reason:
        return _render(service, {"reason": "say why the change is refused"}, 422)
    try:
        _list_proposal(runtime, proposal_id)
        runtime.control.refuse(service, proposal_id, g.identity.name, reason[:500])
    except InvalidInputError as error:
        return _render(service, {"proposal": _words(error)}, 422)
    flash(f"Refused {proposal_id}.")
    return redirect(url_for("lists.lists_page", service=service), 303)


def _list_proposal(runtime: Runtime, proposal_id: str) -> Proposal:
    """The proposal, refused unless it is a list change (the desk approves no ruleset or model here)."""
    proposal = runtime.control.proposal(runtime.service.name, proposal_id)
    if proposal.kind != "list":
        raise InvalidInputError({"proposal": [f"{proposal_id} is a {proposal.kind} change, not a list change"]})
    return proposal


def _render(service: str, problems: dict[str, str], status: int) -> tuple[str, int]:
    runtime = _runtime(service)
    store = runtime.control
    pending = [p for p in store.proposals(service) if p.kind == "list" and p.status == "pending"]
    lists = []
    for spec in service_lists(runtime.service):
        version, values = store.lists.listed(service, spec.name)
        lists.append({"spec": spec, "version": version, "size": len(values)})
    html = render_template(
        "lists.html",
        service=service,
        services=_desk().services,
        lists=lists,
        pending=[
            {"proposal": p, "values": store.lists.proposed_values(service, p.id)[:SHOWN_PROPOSED]} for p in pending
        ],
        problems=problems,
        form=request.form,
        may_propose=may(g.identity, PROPOSE),
        may_decide=may(g.identity, DECIDE),
    )
    return html, status


def _words(error: InvalidInputError) -> str:
    return "; ".join(f"{name}: {' '.join(texts)}" for name, texts in error.fields.items())
