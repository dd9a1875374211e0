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
"""

from __future__ import annotations

from dataclasses import asdict
from functools import cache
from typing import Any

from flask import Flask, Response, g, jsonify, request

from shared.control.store import Change, ControlStore
from shared.errors import ForbiddenError, InvalidInputError
from shared.runtime import Runtime

MAX_RULESET_BYTES = 256 * 1024


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
