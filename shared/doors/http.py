"""The HTTP door: a Flask app factory shared by every service, served by gunicorn.

POST /v1/score takes one event or {"events": [...]} and answers with decisions from the scoring core.
Errors come from the one hierarchy in shared.errors; no client input, however malformed, gets a 5xx.

A scoring request the app can answer without Flask (`POST /v1/score`, a JSON body of a declared length, an
API key allowed to score) is answered by a plain WSGI path in front of Flask (`_ScoreFastPath`): the same
view code, error handlers, metrics, log line and response bytes, without the request context, the hooks'
machinery and werkzeug's request and response objects (about a sixth of a fraud request's CPU time). Any
other request, and one whose body is not JSON or whose key is refused, is Flask's, body included.
"""

from __future__ import annotations

import io
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import structlog
from flask import Flask, Response, g, jsonify, request
from flask.json.provider import JSONProvider
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from shared.core.contract import Contract, ValidEvent
from shared.core.idempotency import Answer, Conflict, Lookup
from shared.doors.access import authorise
from shared.doors.bodies import field_path, json_body, one_or_batch, validate_each
from shared.doors.control_api import register_control_routes
from shared.doors.decisions import register_decision_routes
from shared.doors.json_provider import OrjsonProvider
from shared.doors.monitoring import LatestReport, register_monitoring_routes
from shared.doors.openapi import build_openapi
from shared.doors.outcomes import register_outcome_routes
from shared.errors import (
    ConflictError,
    InvalidInputError,
    ModelNotFoundError,
    NotReadyError,
    PayloadTooLargeError,
    RiskError,
)
from shared.logging import configure_logging, get_logger
from shared.metrics import DECISIONS, HTTP_REQUESTS, HTTP_SECONDS, REJECTED, SCORING_SECONDS, labelled, render
from shared.modeling.report import REPORT_FILE
from shared.privacy import mask_secrets
from shared.runtime import Runtime
from shared.settings import Settings

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json"})
# A caller's X-Request-ID is kept only when it is a plain token: it is in every log line of the request.
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
RETRY_AFTER_SECONDS = "1"  # on a 503: a dependency down; the caller's next try is bounded by the store timeouts
SCORE_PATH = "/v1/score"


def create_app(runtime: Runtime, *, follow_control: bool = False) -> Flask:
    """The service's HTTP app over `runtime`. gunicorn builds one in each worker, after fork, with
    `follow_control` on, so each worker applies ruleset and model changes as they are announced."""
    settings, service = runtime.settings, runtime.service
    configure_logging(settings.log_level, settings.pseudonym_key)
    log = get_logger(f"{service.name}.http")
    app = Flask(f"risk-{service.name}", static_folder=None)  # nothing under ./static is ever served
    app.json = OrjsonProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    try:
        runtime.holder.load()  # the model now, not on the first request
    except ModelNotFoundError as error:
        log.warning("model_not_loaded", reason=str(error))
    if follow_control:
        runtime.follow_control()
    openapi = build_openapi(service, settings.max_batch_events)
    secrets = _secrets_of(settings)

    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()
        g.request_id = _request_id(request.headers.get("X-Request-ID"))
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=g.request_id, service=service.name)
        if settings.auth_required and request.path not in OPEN_PATHS:
            rule = request.url_rule.rule if request.url_rule else None
            presented = request.headers.get("X-API-Key", "")
            g.caller = authorise(settings, presented, request.method, rule, request.endpoint)
            g.identity = g.caller.name

    def noted_request(endpoint: str, status: int, elapsed: float, method: str, path: str, noted: _Noted | None) -> None:
        """A request's metrics and log line, as both paths write them once the answer is known."""
        labelled(HTTP_REQUESTS, service.name, endpoint, str(status)).inc()
        labelled(HTTP_SECONDS, service.name, endpoint).observe(elapsed)
        if endpoint not in OPEN_PATHS:
            log.info(
                "http_request",
                method=method,
                path=path,
                status=status,
                latency_ms=round(elapsed * 1000, 3),
                event_ids=noted.event_ids if noted else None,
                entity_ids=noted.entity_ids if noted else None,
                decisions=noted.outcomes if noted else None,
            )

    @app.after_request
    def _finish(response: Response) -> Response:
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        response.headers["X-Request-ID"] = g.get("request_id", "")
        noted_request(endpoint, response.status_code, elapsed, request.method, request.path, g.get("noted"))
        return response

    def as_json(obj: Any) -> Response:
        """`jsonify(obj)`: its very call, which needs no app context (the fast path answers errors outside one)."""
        return cast(Response, app.json.response(obj))

    @app.errorhandler(RiskError)
    def _risk_error(error: RiskError) -> tuple[Response, int]:
        if isinstance(error, InvalidInputError):
            REJECTED.labels(service.name, "http").inc()
        body = error.to_dict()
        body["message"] = mask_secrets(str(body.get("message", "")), secrets)  # e.g. a store URL's password
        response = as_json(body)
        if isinstance(error, NotReadyError):  # a store or the model is down: worth asking again shortly
            response.headers["Retry-After"] = RETRY_AFTER_SECONDS
        return response, error.http_status

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> tuple[Response, int]:
        if isinstance(error, RequestEntityTooLarge):
            return _risk_error(PayloadTooLargeError(f"the body is larger than {settings.max_body_bytes} bytes"))
        code = error.code or 500
        response = as_json({"error": (error.name or "error").lower().replace(" ", "_"), "message": error.description})
        for name, value in error.get_headers():  # such as Allow on a 405
            if name.lower() != "content-type":
                response.headers[name] = value
        return response, code

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> tuple[Response, int]:
        log.exception("unhandled_error")
        return as_json({"error": "internal_error", "message": "an internal error occurred"}), 500

    def decide(body: Any, noted: _Noted) -> Any:
        """The answer of POST /v1/score to a parsed JSON body (raises what the error handlers answer)."""
        events, single = _read_events(body, runtime.contract, settings.max_batch_events, service.event_id_field)
        core = runtime.core
        noted.event_ids = [str(e.document[service.event_id_field]) for e in events]
        noted.entity_ids = [str(e.document[service.entity_field]) for e in events]
        started = time.perf_counter()
        lookup = Lookup(core, events, runtime.decisions)
        if lookup.conflicts:  # the batch is refused whole, before anything is scored
            raise _conflicts(service.event_id_field, single, lookup.conflicts)
        answers = lookup.decide(
            lambda positions: core.score_online([events[p] for p in positions], runtime.state), "http"
        )
        labelled(SCORING_SECONDS, service.name, "http").observe(time.perf_counter() - started)
        raced = [(i, a) for i, a in enumerate(answers) if isinstance(a, Conflict)]
        if raced:  # another door recorded one of these ids, for another payload, while we scored
            raise _conflicts(service.event_id_field, single, raced)
        decided = [a for a in answers if isinstance(a, Answer)]
        for answer in decided:
            if not answer.replayed:
                labelled(DECISIONS, service.name, "http", answer.decision).inc()
        noted.outcomes = [a.decision for a in decided]
        documents = [a.document for a in decided]
        return documents[0] if single else {"decisions": documents}

    @app.post(SCORE_PATH)
    def score() -> Response:
        noted = g.noted = _Noted()
        return jsonify(decide(json_body(), noted))

    @app.get("/v1/model")
    def model_card() -> Response:
        return jsonify(runtime.core.model.card)

    @app.get("/v1/model/report")
    def model_report() -> Response:
        path = runtime.core.model.path / REPORT_FILE
        if not path.is_file():
            raise ModelNotFoundError(
                f"model {runtime.core.model.version} has no evaluation report (trained before reports)"
            )
        return Response(path.read_bytes(), content_type="text/html; charset=utf-8")

    for path, (_, document) in service.reference_documents().items():
        app.add_url_rule(path, f"reference:{path}", lambda document=document: jsonify(document()), methods=["GET"])

    register_control_routes(app, runtime)
    register_decision_routes(app, runtime)
    register_outcome_routes(app, runtime, settings.max_batch_events)
    latest_report = LatestReport(runtime)
    register_monitoring_routes(app, runtime, latest_report)

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify({"status": "ok", "service": service.name})

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        checks: dict[str, str] = {}
        try:
            checks["model"] = runtime.core.model.version
        except ModelNotFoundError as error:
            checks["model"] = f"unavailable: {mask_secrets(str(error), secrets)}"
        try:
            runtime.state.ping()
            checks["state_store"] = "ok"
        except NotReadyError as error:
            checks["state_store"] = f"unavailable: {mask_secrets(str(error), secrets)}"
        if runtime.decisions is not None:
            try:
                runtime.decisions.ping()
                checks["decision_store"] = "ok"
            except NotReadyError as error:
                checks["decision_store"] = f"unavailable: {mask_secrets(str(error), secrets)}"
        ready = all(not v.startswith("unavailable") for v in checks.values())
        response = jsonify({"ready": ready, "checks": checks})
        if not ready:
            response.headers["Retry-After"] = RETRY_AFTER_SECONDS
        return response, 200 if ready else 503

    @app.get("/metrics")
    def metrics() -> Response:
        body, content_type = render(latest_report.get())
        return Response(body, content_type=content_type)

    @app.get("/openapi.json")
    def openapi_document() -> Response:
        return jsonify(openapi)

    def error_answer(error: Exception) -> Response:
        """What Flask's error handlers answer for `error` raised by the view (called while it is handled)."""
        if isinstance(error, RiskError):
            response, status = _risk_error(error)
        elif isinstance(error, HTTPException):
            response, status = _http_error(error)
        else:
            response, status = _unexpected(error)
        response.status_code = status
        return response

    app.wsgi_app = _ScoreFastPath(app, settings, decide, error_answer, noted_request, service.name)  # type: ignore[method-assign]
    return app


@dataclass(slots=True)
class _Noted:
    """What a scoring request's log line names, noted by the view as it goes (kept when it raises)."""

    event_ids: list[str] | None = None
    entity_ids: list[str] | None = None
    outcomes: list[str] | None = None


StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class _ScoreFastPath:
    """`app.wsgi_app` for POST /v1/score without Flask around the view: the request id, log context and API
    key as `_start` takes them, the body as `request.get_json` reads it, the view's own `decide`, the error
    handlers' answers, `_finish`'s header, metrics and log line, and the very bytes `jsonify` writes. What
    this path does not take (another route or method, a body that is not `application/json` of a declared
    length within the limit, one that does not parse, a key that is refused, debug mode) goes to Flask,
    with the body when it was read, before anything is decided."""

    def __init__(
        self,
        app: Flask,
        settings: Settings,
        decide: Callable[[Any, _Noted], Any],
        error_answer: Callable[[Exception], Response],
        noted_request: Callable[[str, int, float, str, str, _Noted | None], None],
        service: str,
    ) -> None:
        self._app, self.flask = app, app.wsgi_app  # every request this path does not take
        self._settings, self._service = settings, service
        self._decide, self._error_answer, self._noted_request = decide, error_answer, noted_request
        self._json: JSONProvider = app.json

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        length = environ.get("CONTENT_LENGTH") or ""
        settings = self._settings
        if (
            environ.get("PATH_INFO") != SCORE_PATH
            or environ.get("REQUEST_METHOD") != "POST"
            or environ.get("CONTENT_TYPE") != "application/json"
            or not (length.isascii() and length.isdigit())
            or int(length) > settings.max_body_bytes
            or "HTTP_TRANSFER_ENCODING" in environ
            or self._app.debug
        ):
            return self.flask(environ, start_response)
        if settings.auth_required:
            try:
                authorise(settings, environ.get("HTTP_X_API_KEY", ""), "POST", SCORE_PATH, "score")
            except RiskError:  # Flask answers the 401 or 403
                return self.flask(environ, start_response)
        data = environ["wsgi.input"].read(int(length))
        try:
            body = self._json.loads(data)
        except (ValueError, RecursionError):
            body = None
        if body is None:  # Flask answers that the body must be JSON
            environ["wsgi.input"] = io.BytesIO(data)
            return self.flask(environ, start_response)
        request_id = _request_id(environ.get("HTTP_X_REQUEST_ID"))
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id, service=self._service)
        noted = _Noted()
        try:
            answer = self._decide(body, noted)
        except Exception as error:  # every error is answered as Flask's handlers answer it
            response = self._error_answer(error)
            response.headers["X-Request-ID"] = request_id
            elapsed = time.perf_counter() - started
            self._noted_request(SCORE_PATH, response.status_code, elapsed, "POST", SCORE_PATH, noted)
            return response(environ, start_response)
        payload = f"{self._json.dumps(answer, separators=(',', ':'))}\n".encode()
        self._noted_request(SCORE_PATH, 200, time.perf_counter() - started, "POST", SCORE_PATH, noted)
        start_response(
            "200 OK",
            [("Content-Type", "application/json"), ("Content-Length", str(len(payload))), ("X-Request-ID", request_id)],
        )
        return [payload]


def _conflicts(id_field: str, single: bool, conflicts: list[tuple[int, Conflict]]) -> ConflictError:
    return ConflictError(
        {field_path("events", single, i, id_field): [c.message] for i, c in conflicts},
        "an event id was decided before for another payload",
    )


def _request_id(presented: str | None) -> str:
    """The caller's X-Request-ID when it is at most 64 of [A-Za-z0-9._-], else a new one: it goes into every
    log line of the request, so nobody may make those lines 8 KB long or put their own text in them."""
    return presented if presented and REQUEST_ID.fullmatch(presented) else uuid.uuid4().hex


def _secrets_of(settings: Settings) -> tuple[str, ...]:
    """Values no answer may show: the API keys, the pseudonym key, the stores' passwords."""
    keys = tuple(identity.key for identity in settings.identities)
    passwords = [urlsplit(url).password for url in (settings.state_url, settings.decisions_url)]
    return (*keys, settings.pseudonym_key.decode("utf-8", "replace"), *(p for p in passwords if p))


def _read_events(body: Any, contract: Contract, limit: int, id_field: str) -> tuple[list[ValidEvent], bool]:
    """The events of a request's JSON body, validated all or nothing: one bad event refuses the whole batch, and so does
    an event id given twice (the second would be counted twice in the window state and decided twice)."""
    items, single = one_or_batch(body, "events", limit)
    valid, problems = validate_each(items, "events", single, contract.validate)
    first_index: dict[str, int] = {}
    for index, event in valid:  # reported with the batch's other problems
        earlier = first_index.setdefault(str(event.data.get(id_field)), index)
        if earlier != index:
            problems[field_path("events", single, index, id_field)] = [
                f"the same {id_field} as events.{earlier}: each event of a batch needs its own id"
            ]
    if problems:
        raise InvalidInputError(problems)
    return [event for _, event in valid], single
