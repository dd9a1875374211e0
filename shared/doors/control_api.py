"""The control plane over HTTP: the one way to change what a running service has in force. `risk rules ...`,
`risk models ...` and `risk audit ...` are clients of these endpoints, so every change is checked here, by
the server that holds the keys, as the identity (and roles, shared/doors/access.py) of the request's key.

    POST /v1/control/rulesets                     a ruleset (YAML body) to publish: 201 with the proposal
    POST /v1/control/promotions                   {"version": ...}: propose a model promotion
    POST /v1/control/challengers                  {"version": ... or null}: propose a challenger, or clearing it
    POST /v1/control/rollbacks                    {"kind": "ruleset"|"model", "version": ...}: propose going back
    POST /v1/control/proposals/<id>/approve       by another identity: puts it in force, announces it
    POST /v1/control/proposals/<id>/refuse        {"reason": ...}
    GET  /v1/control/proposals                    every proposal of the service
    GET  /v1/control/rulesets, /v1/control/models what is in force, published or registered, pending, history
    GET  /v1/control/audit                        the audit log
    GET  /v1/control/audit/verify[?head=HASH]     the audit log's hash chain checked
    GET  /v1/control/lists                        every allow / deny / watch list: version, size, pending
    GET  /v1/control/lists/<name>[?value=&after=&limit=]   one list: a page of its values, history, pending
    POST /v1/control/lists/<name>/additions       {"values": [...]}: propose adding them (201)
    POST /v1/control/lists/<name>/removals        {"values": [...]}: propose removing them (201)
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import asdict
from functools import cache
from typing import Any

from flask import Flask, Response, g, jsonify, request

from shared.control.lists import ListAction, entered_values
from shared.control.store import Change, ControlStore
from shared.core.rulesets import service_lists
from shared.errors import ForbiddenError, InvalidInputError, NotFoundError, PayloadTooLargeError
from shared.rules.lists import ListSpec
from shared.runtime import Runtime

MAX_RULESET_BYTES = 256 * 1024
MAX_LIST_BODY_BYTES = 8 * 1024 * 1024  # 100,000 identifiers of up to 64 characters, as JSON
LIST_PAGE, MAX_LIST_PAGE = 1_000, 10_000


def register_control_routes(app: Flask, runtime: Runtime) -> None:
    service = runtime.service.name
    store = runtime.control

    @cache
    def packaged() -> tuple[str, str]:
        text = runtime.service.ruleset_path.read_text()
        return runtime.parse_ruleset(text, source=str(runtime.service.ruleset_path)).version, text

    def identity() -> str:
        """The caller, once the packaged ruleset is on record as version 1 of the history."""
        who = g.get("identity")
        if who is None:
            raise ForbiddenError(
                "maker-checker needs API identities: set RISK_API_KEYS (name:key:roles entries) on the server"
            )
        store.record_packaged(service, *packaged())
        return str(who)

    def applied(change: Change) -> dict[str, Any]:
        return {"change": asdict(change), "announced": runtime.announce(change, f"/risk/{service}/http")}

    @app.post("/v1/control/rulesets")
    def propose_ruleset() -> tuple[Response, int]:
        who = identity()
        text = request.get_data(as_text=True)
        if not text.strip() or len(text) > MAX_RULESET_BYTES:
            raise InvalidInputError(
                {"_body": [f"the body must be a ruleset in YAML, at most {MAX_RULESET_BYTES} bytes"]}
            )
        ruleset = runtime.parse_ruleset(text, source="request body")
        return jsonify(asdict(store.propose_ruleset(service, ruleset, text, who))), 201

    @app.post("/v1/control/promotions")
    def propose_promotion() -> tuple[Response, int]:
        who = identity()
        version = _field(_json_object(), "version", "a model version from the registry is required")
        return jsonify(asdict(store.propose_promotion(service, version, who))), 201

    @app.post("/v1/control/challengers")
    def propose_challenger() -> tuple[Response, int]:
        who = identity()
        body = _json_object()
        version = body.get("version")
        if "version" not in body or not (version is None or (isinstance(version, str) and version)):
            raise InvalidInputError({"version": ["a model version from the registry, or null to clear it"]})
        return jsonify(asdict(store.propose_challenger(service, version, who))), 201

    @app.post("/v1/control/rollbacks")
    def propose_rollback() -> tuple[Response, int]:
        who = identity()
        body = _json_object()
        kind = body.get("kind")
        if kind not in ("ruleset", "model"):
            raise InvalidInputError({"kind": ["ruleset or model"]})
        version = _field(body, "version", "the version to go back to")
        return jsonify(asdict(store.propose_rollback(service, kind, version, who))), 201

    @app.post("/v1/control/proposals/<proposal_id>/approve")
    def approve(proposal_id: str) -> Response:
        return jsonify(applied(store.approve(service, proposal_id, identity())))

    @app.post("/v1/control/proposals/<proposal_id>/refuse")
    def refuse(proposal_id: str) -> Response:
        who = identity()
        reason = _field(_json_object(), "reason", "say why the proposal is refused")
        return jsonify(asdict(store.refuse(service, proposal_id, who, reason)))

    @app.get("/v1/control/proposals")
    def proposals() -> Response:
        identity()
        return jsonify({"proposals": [asdict(p) for p in store.proposals(service)]})

    @app.get("/v1/control/rulesets")
    def rulesets() -> Response:
        identity()
        return jsonify(ruleset_listing(store, service))

    @app.get("/v1/control/models")
    def models() -> Response:
        identity()
        return jsonify(model_listing(store, service))

    @app.get("/v1/control/audit")
    def audit() -> Response:
        identity()
        return jsonify({"entries": store.audit(service)})

    @app.get("/v1/control/audit/verify")
    def verify_audit() -> Response:
        identity()
        return jsonify(asdict(store.verify_audit(service, request.args.get("head") or None)))

    lists = {spec.name: spec for spec in service_lists(runtime.service)}

    def list_named(name: str) -> ListSpec:
        if name not in lists:
            raise NotFoundError(f"{service} has no list {name!r}; its lists: {', '.join(lists) or 'none'}")
        return lists[name]

    def propose_list_change(name: str, action: ListAction) -> tuple[Response, int]:
        who, spec = identity(), list_named(name)
        if (request.content_length or 0) > MAX_LIST_BODY_BYTES:
            raise PayloadTooLargeError(f"a list change is at most {MAX_LIST_BODY_BYTES} bytes")
        request.max_content_length = MAX_LIST_BODY_BYTES  # above the scoring body limit, for this route only
        raw = _json_object().get("values")
        if not isinstance(raw, list):
            raise InvalidInputError({"values": ["a list of identifiers"]})
        values = entered_values(spec, raw, runtime.settings.pseudonym_key)
        return jsonify(asdict(store.propose_list_change(service, spec, action, values, who))), 201

    @app.get("/v1/control/lists")
    def all_lists() -> Response:
        identity()
        return jsonify({"lists": [list_summary(store, service, spec) for spec in lists.values()]})

    @app.get("/v1/control/lists/<name>")
    def one_list(name: str) -> Response:
        identity()
        spec = list_named(name)
        return jsonify(list_page(store, service, spec, request.args.to_dict(), runtime.settings.pseudonym_key))

    @app.post("/v1/control/lists/<name>/additions")
    def propose_additions(name: str) -> tuple[Response, int]:
        return propose_list_change(name, "add")

    @app.post("/v1/control/lists/<name>/removals")
    def propose_removals(name: str) -> tuple[Response, int]:
        return propose_list_change(name, "remove")


def ruleset_listing(store: ControlStore, service: str) -> dict[str, Any]:
    return {
        "active": store.current_ruleset(service),
        "published": store.ruleset_versions(service),
        "history": store.history(service, "ruleset"),
        "rollback_targets": store.rollback_targets(service, "ruleset"),
        "pending": [asdict(p) for p in store.proposals(service) if p.kind == "ruleset" and p.status == "pending"],
    }


def model_listing(store: ControlStore, service: str) -> dict[str, Any]:
    registry, champion = store.models, store.champion(service)
    return {
        "champion": champion,
        "challenger": store.challenger(service),
        "versions": [
            {
                "version": v,
                "champion": v == champion,
                "created_at": card.get("created_at"),
                "metrics": card.get("metrics"),
            }
            for v in registry.versions(service)
            for card in [registry.card(service, v)]
        ],
        "history": store.history(service, "model"),
        "rollback_targets": store.rollback_targets(service, "model"),
        "pending": [
            asdict(p) for p in store.proposals(service) if p.kind in ("model", "challenger") and p.status == "pending"
        ],
    }


def list_summary(store: ControlStore, service: str, spec: ListSpec) -> dict[str, Any]:
    """A list without its values: what it lists, its version and size, the changes awaiting approval."""
    version, values = store.lists.listed(service, spec.name)
    return {
        **asdict(spec),
        "version": version,
        "size": len(values),
        "pending": [
            asdict(p)
            for p in store.proposals(service)
            if p.kind == "list" and p.version == spec.name and p.status == "pending"
        ],
    }


def list_page(store: ControlStore, service: str, spec: ListSpec, query: dict[str, str], key: bytes) -> dict[str, Any]:
    """One list: a page of its values in order (`after` the last value of the previous page, at most `limit`),
    its history (each approved change, without its values), the pending changes with their values; with
    `value`, whether that value (pseudonymised first for a personal field) is on it."""
    limit = _bounded_int(query.get("limit"), "limit", LIST_PAGE, MAX_LIST_PAGE)
    summary = list_summary(store, service, spec)
    _, values = store.lists.listed(service, spec.name)
    after = query.get("after")
    start = bisect_right(values, after) if after else 0
    page = values[start : start + limit]
    found: dict[str, Any] = {
        **summary,
        "values": page,
        "next_after": page[-1] if start + limit < len(values) else None,
        "history": [
            {name: item for name, item in change.items() if name != "values"} | {"changed": len(change["values"])}
            for change in store.lists.changes(service, spec.name)
        ],
        "pending": [
            {**pending, "proposed_values": store.lists.proposed_values(service, pending["id"])}
            for pending in summary["pending"]
        ],
    }
    if "value" in query:
        try:
            (looked_up,) = entered_values(spec, [query["value"]], key)
        except InvalidInputError:
            raise InvalidInputError({"value": ["an identifier: text of 1 to 64 printable characters"]}) from None
        found["contains"] = {"value": looked_up, "listed": looked_up in set(values)}
    return found


def _bounded_int(text: str | None, name: str, default: int, largest: int) -> int:
    if text is None:
        return default
    if not text.isdigit() or not 1 <= int(text) <= largest:
        raise InvalidInputError({name: [f"a whole number from 1 to {largest}"]})
    return int(text)


def _field(body: dict[str, Any], name: str, problem: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError({name: [problem]})
    return value


def _json_object() -> dict[str, Any]:
    """The request's JSON object, or {} when it is not one, not JSON, or nests too deeply for the parser (the
    missing fields are then reported by name: a 4xx, never a RecursionError and a 500)."""
    try:
        body = request.get_json(silent=True)
    except RecursionError:
        return {}
    return body if isinstance(body, dict) else {}
