"""The control plane over HTTP, for tools: the same proposals, approvals and audit as `risk rules` and
`risk models`, each request made as the API identity of its key.

    POST /v1/control/rulesets                     a ruleset (YAML body) to publish: 201 with the proposal
    POST /v1/control/promotions                   {"version": ...}: propose a model promotion
    POST /v1/control/proposals/<id>/approve       by another identity: puts it in force, announces it
    POST /v1/control/proposals/<id>/refuse        {"reason": ...}
    GET  /v1/control/proposals                    every proposal of the service
    GET  /v1/control/audit                        the audit log
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import Flask, Response, g, jsonify, request

from shared.control.store import Change
from shared.errors import ForbiddenError, InvalidInputError
from shared.runtime import Runtime

MAX_RULESET_BYTES = 256 * 1024


def register_control_routes(app: Flask, runtime: Runtime) -> None:
    service = runtime.service.name
    store = runtime.control

    def identity() -> str:
        who = g.get("identity")
        if who is None:
            raise ForbiddenError("maker-checker needs API identities: set RISK_API_KEYS (name:key entries)")
        return str(who)

    def applied(change: Change) -> dict[str, Any]:
        return {
            "change": asdict(change),
            "announced": runtime.announce(change, f"/risk/{service}/http"),
        }

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
        body = _json_body()
        if not isinstance(body, dict) or not isinstance(body.get("version"), str):
            raise InvalidInputError({"version": ["a model version from the registry is required"]})
        return jsonify(asdict(store.propose_promotion(service, body["version"], who))), 201

    @app.post("/v1/control/proposals/<proposal_id>/approve")
    def approve(proposal_id: str) -> Response:
        return jsonify(applied(store.approve(service, proposal_id, identity())))

    @app.post("/v1/control/proposals/<proposal_id>/refuse")
    def refuse(proposal_id: str) -> Response:
        body = _json_body() or {}
        reason = body.get("reason") if isinstance(body, dict) else None
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidInputError({"reason": ["say why the proposal is refused"]})
        return jsonify(asdict(store.refuse(service, proposal_id, identity(), reason)))

    @app.get("/v1/control/proposals")
    def proposals() -> Response:
        identity()
        return jsonify({"proposals": [asdict(p) for p in store.proposals(service)]})

    @app.get("/v1/control/audit")
    def audit() -> Response:
        identity()
        return jsonify({"entries": store.audit(service)})


def _json_body() -> Any:
    """The request's JSON, or None when it is not JSON or nests too deeply for the parser (a 4xx for the
    caller to report, never a RecursionError and a 500)."""
    try:
        return request.get_json(silent=True)
    except RecursionError:
        return None
