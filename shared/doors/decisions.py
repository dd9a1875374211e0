"""Finding decisions: over HTTP (`GET /v1/decisions/<event_id>`, `GET /v1/decisions?...` in keyset pages)
and in the terminal (`risk decisions show|search SERVICE ...`), through the same query schema.

A raw entity id in a search (a patient id, say) is pseudonymised with the service's key before the store
is asked, since the store only ever holds the pseudonym.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, request
from marshmallow import RAISE, Schema, ValidationError, fields, validate

from shared.decisions import DEFAULT_PAGE, MAX_PAGE, DecisionStore, Page, Search
from shared.errors import InvalidInputError, NotFoundError, NotReadyError
from shared.runtime import Runtime


class DecisionQuerySchema(Schema):
    """The query of `GET /v1/decisions`: every filter optional, all of them holding together."""

    class Meta:
        unknown = RAISE

    entity_id = fields.String(validate=validate.Length(min=1, max=128), metadata={"description": "as sent in events"})
    from_ = fields.AwareDateTime(
        data_key="from", format="iso", metadata={"description": "scored at or after (RFC 3339 with offset)"}
    )
    to = fields.AwareDateTime(format="iso", metadata={"description": "scored before (RFC 3339 with offset)"})
    decision = fields.String(validate=validate.Length(min=1, max=32), metadata={"description": "e.g. review"})
    rule = fields.String(validate=validate.Length(min=1, max=128), metadata={"description": "a rule id that hit"})
    limit = fields.Integer(
        load_default=DEFAULT_PAGE,
        validate=validate.Range(min=1, max=MAX_PAGE),
        metadata={"description": f"decisions per page, 1 to {MAX_PAGE} (default {DEFAULT_PAGE})"},
    )
    cursor = fields.String(
        validate=validate.Length(min=1, max=512), metadata={"description": "next_cursor of the page before"}
    )


QUERY = DecisionQuerySchema()


def register_decision_routes(app: Flask, runtime: Runtime) -> None:
    @app.get("/v1/decisions/<event_id>")
    def decision(event_id: str) -> Response:
        return jsonify(show(runtime, event_id))

    @app.get("/v1/decisions")
    def decisions() -> Response:
        arguments = request.args.to_dict(flat=False)
        repeated = {name: ["give this parameter once"] for name, values in arguments.items() if len(values) > 1}
        if repeated:
            raise InvalidInputError(repeated)
        page = search(runtime, {name: values[0] for name, values in arguments.items()})
        return jsonify({"decisions": [d.document for d in page.items], "next_cursor": page.next_cursor})


def show(runtime: Runtime, event_id: str) -> dict[str, Any]:
    """The recorded decision of one event, as its door answered it."""
    recorded = _store(runtime).get(runtime.service.name, event_id)
    if recorded is None:
        raise NotFoundError(f"no {runtime.service.name} decision is recorded for event id {event_id!r}")
    return recorded.document


def search(runtime: Runtime, arguments: dict[str, str]) -> Page:
    """One page of decisions matching `arguments` (the query parameters, as text), newest first."""
    try:
        query: dict[str, Any] = QUERY.load(arguments)
    except ValidationError as error:
        raise InvalidInputError(dict(error.normalized_messages())) from None
    entity = query.get("entity_id")
    return _store(runtime).search(
        runtime.service.name,
        Search(
            entity_id=runtime.entity_key(entity) if entity is not None else None,
            since=query.get("from_"),
            until=query.get("to"),
            decision=query.get("decision"),
            rule_id=query.get("rule"),
            limit=query["limit"],
            cursor=query.get("cursor"),
        ),
    )


def _store(runtime: Runtime) -> DecisionStore:
    found = runtime.decisions
    if found is None:
        raise NotReadyError("this service records no decisions (RISK_DECISIONS_URL=none)")
    return found
