"""POST /v1/score answered by the plain WSGI path in front of Flask gives what the Flask route gives: the same
status, headers (request id included) and body bytes, the same log line and the same metrics, request by
request, for new decisions, refusals, replays and conflicts; what it does not take reaches Flask whole."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask
from prometheus_client import REGISTRY

from shared import logging as risk_logging
from shared.errors import NotReadyError
from shared.settings import Settings
from tests.fixtures.services import API_KEY, scoring_app

HEADERS = {"X-API-Key": API_KEY, "X-Request-ID": "req-1"}
FROZEN = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)


class _FrozenDatetime(datetime):
    @classmethod
    def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
        return FROZEN


def tx(i: int, **overrides: Any) -> dict[str, Any]:
    return {
        "transaction_id": f"fast-{i}",
        "timestamp": f"2018-08-08T10:{i:02d}:00+00:00",
        "customer_id": f"card-{i % 2}",
        "terminal_id": f"term-{i % 3}",
        "amount": 20.0 + 37 * i,
        **overrides,
    }


# (body, content type, headers): each sent in this order to both apps, each over a fresh store of its own
REQUESTS: list[tuple[bytes, str, dict[str, str]]] = [
    (json.dumps(tx(1)).encode(), "application/json", HEADERS),
    (json.dumps(tx(2)).encode(), "application/json", {**HEADERS, "X-Request-ID": "caller.id-2"}),
    (json.dumps(tx(3, amount="lots")).encode(), "application/json", HEADERS),  # a bad field: 422
    (json.dumps(tx(4, extra=1)).encode(), "application/json", HEADERS),  # an unknown field: 422
    (json.dumps(tx(1)).encode(), "application/json", HEADERS),  # a replay: the recorded decision
    (json.dumps(tx(1, amount=1.0)).encode(), "application/json", HEADERS),  # another payload, same id: 409
    (json.dumps({"events": [tx(5), tx(6), tx(1)]}).encode(), "application/json", HEADERS),  # a batch
    (json.dumps({"events": [tx(7), tx(7)]}).encode(), "application/json", HEADERS),  # one id twice: 422
    (json.dumps({"events": []}).encode(), "application/json", HEADERS),
    (json.dumps([1, 2]).encode(), "application/json", HEADERS),
    ('{"transaction_id": "fast-9", "amount": "\u00e9"}'.encode(), "application/json", HEADERS),
    (b"{not json", "application/json", HEADERS),  # Flask's: the body must be JSON
    (b"null", "application/json", HEADERS),
    (json.dumps(tx(8)).encode(), "text/plain", HEADERS),  # Flask's
    (json.dumps(tx(8)).encode(), "application/json", {**HEADERS, "X-API-Key": "wrong"}),  # Flask's: 401
    (json.dumps(tx(8)).encode(), "application/json", {"X-Request-ID": "req-3"}),  # Flask's: 401
    (json.dumps(tx(8)).encode(), "application/json", HEADERS),
]


def _counters() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every risk_* counter and histogram count (time is frozen, so the buckets too) by name and labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for metric in REGISTRY.collect()
        if metric.name.startswith("risk_")
        for sample in metric.samples
        if not sample.name.endswith("_created") and not sample.name.endswith("_sum")
    }


@pytest.fixture
def log_lines(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """The apps' log lines, written to a buffer of the test's (structlog is configured by create_app); the
    logging set back on stderr afterwards, so later lines of the session go nowhere closed."""
    buffer = io.StringIO()

    def to_buffer(level: str = "INFO", pseudonym_key: bytes = b"", stream: Any = None) -> None:
        risk_logging.configure_logging(level, pseudonym_key, stream=buffer)

    monkeypatch.setattr("shared.doors.http.configure_logging", to_buffer)
    yield buffer
    risk_logging.configure_logging("INFO", stream=sys.stderr)


def _read(buffer: io.StringIO) -> list[dict[str, Any]]:
    """The JSON lines written since the last read, their time aside."""
    lines = buffer.getvalue().splitlines()
    buffer.seek(0)
    buffer.truncate()
    return [{k: v for k, v in json.loads(line).items() if k != "timestamp"} for line in lines if line.startswith("{")]


def _answers(app: Flask, buffer: io.StringIO) -> list[dict[str, Any]]:
    client = app.test_client()
    _read(buffer)
    answers = []
    for body, content_type, headers in REQUESTS:
        before = _counters()
        response = client.post("/v1/score", data=body, content_type=content_type, headers=headers)
        after = _counters()
        answers.append(
            {
                "status": response.status,
                "headers": list(response.headers.items()),
                "body": response.data,
                "metrics": {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)},
                "logs": _read(buffer),
            }
        )
    return answers


@pytest.fixture
def frozen_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """scored_at, every latency and so every byte of an answer the same on both paths."""
    clock = SimpleNamespace(perf_counter=lambda: 100.0)
    monkeypatch.setattr("shared.core.scoring.datetime", _FrozenDatetime)
    monkeypatch.setattr("shared.core.scoring.time", clock)
    monkeypatch.setattr("shared.doors.http.time", clock)


@pytest.mark.parametrize("store", ["sqlite", "none"])
def test_the_fast_path_answers_byte_for_byte_as_the_flask_route(
    store: str, fraud_settings: Settings, tmp_path: Path, frozen_time: None, log_lines: io.StringIO
) -> None:
    """The same requests, in the same order, to an app with the fast path and one whose every request goes
    to Flask (each over a store of its own): status line, headers, body bytes, the log lines (their time
    aside) and the change in every risk_* metric are the same for each request; the scoring requests with an
    allowed key and a JSON body never reached Flask, the others all did."""
    settings = {}
    for side in ("fast", "flask"):
        (tmp_path / side).mkdir()
        settings[side] = replace(
            fraud_settings,
            state_url=f"sqlite:///{tmp_path / side / 'state.sqlite3'}",
            decisions_url="none" if store == "none" else f"sqlite:///{tmp_path / side / 'decisions.sqlite3'}",
            control_dir=tmp_path / side / "control",
        )
    fast, slow = scoring_app("fraud", settings["fast"]), scoring_app("fraud", settings["flask"])
    flask_wsgi = slow.wsgi_app.flask  # type: ignore[attr-defined]
    slow.wsgi_app = flask_wsgi  # type: ignore[method-assign]
    reached_flask: list[bytes] = []
    fast_flask = fast.wsgi_app.flask  # type: ignore[attr-defined]

    def counted(environ: dict[str, Any], start_response: Any) -> Any:
        reached_flask.append(environ["wsgi.input"].read())
        environ["wsgi.input"].seek(0)
        return fast_flask(environ, start_response)

    fast.wsgi_app.flask = counted  # type: ignore[attr-defined]

    by_fast, by_flask = _answers(fast, log_lines), _answers(slow, log_lines)
    for index, (one, other) in enumerate(zip(by_fast, by_flask, strict=True)):
        assert one == other, f"request {index}: {REQUESTS[index][0]!r}"
    replay_and_conflict = ["200 OK", "409 CONFLICT"] if store == "sqlite" else ["200 OK", "200 OK"]  # or scored again
    assert [answer["status"] for answer in by_fast] == [
        *["200 OK"] * 2,
        *["422 UNPROCESSABLE ENTITY"] * 2,
        *replay_and_conflict,
        "200 OK",
        *["422 UNPROCESSABLE ENTITY"] * 7,
        *["401 UNAUTHORIZED"] * 2,
        "200 OK",
    ]
    if store == "sqlite":
        assert json.loads(by_fast[4]["body"])["replayed"] is True
    assert [dict(answer["headers"])["X-Request-ID"] for answer in by_fast][:3] == ["req-1", "caller.id-2", "req-1"]
    assert all(answer["logs"] and answer["metrics"] for answer in by_fast)
    assert reached_flask == [REQUESTS[i][0] for i in (11, 12, 13, 14, 15)]


@pytest.mark.parametrize(
    ("failure", "status"),
    [
        (NotReadyError("state store down"), "503 SERVICE UNAVAILABLE"),
        (RuntimeError("bug"), "500 INTERNAL SERVER ERROR"),
    ],
)
def test_a_failure_while_scoring_is_answered_as_flask_s_handlers_answer_it(
    failure: Exception,
    status: str,
    fraud_settings: Settings,
    frozen_time: None,
    monkeypatch: pytest.MonkeyPatch,
    log_lines: io.StringIO,
) -> None:
    """A store that fails (503 with Retry-After) or a bug (500, logged with its traceback) while a request
    is being scored: the fast path's answer, log lines and metrics are those of the Flask route."""
    app = scoring_app("fraud", fraud_settings)
    client = app.test_client()
    warm = client.post("/v1/score", json=tx(2), headers=HEADERS)  # the stores opened, their schemas made
    assert warm.status_code == 200

    def failing(*_: Any) -> Any:
        raise failure

    monkeypatch.setattr("shared.core.scoring.ScoringCore.score_online", failing)
    body = json.dumps(tx(1)).encode()
    answers = []
    for wsgi in (app.wsgi_app, app.wsgi_app.flask):  # type: ignore[attr-defined]
        app.wsgi_app = wsgi  # type: ignore[method-assign]
        _read(log_lines)
        before = _counters()
        response = client.post("/v1/score", data=body, content_type="application/json", headers=HEADERS)
        after = _counters()
        lines = _read(log_lines)
        answers.append(
            (
                response.status,
                list(response.headers.items()),
                response.data,
                {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)},
                # a traceback's frames are each path's own; its last line, the error, is the same
                [{k: v.splitlines()[-1] if k == "exception" else v for k, v in line.items()} for line in lines],
            )
        )
    assert answers[0] == answers[1]
    assert answers[0][0] == status and len(answers[0][4]) == (2 if status.startswith("500") else 1)
