"""Property-based fuzzing of each service's HTTP API against its own OpenAPI document (schemathesis over
hypothesis): the document the app serves at /openapi.json (equal to the committed copy in contracts/http/,
a contract test says) generates valid and invalid requests for every operation a client calls, and they
go in-process through WSGI to the real app, with a trained model and a decision store on SQLite.

Whatever is sent, no answer is a 5xx, each answer's status code is documented for its operation and its
body matches the documented schema, and invalid input is refused. Generation is derandomised, so every run
sends the same cases; a failure prints the request to reproduce it with.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.registry import runtime
from shared.doors.http import create_app
from shared.runtime import Runtime
from shared.settings import Settings

FUZZ_KEY = "fuzz-key-0123456789abcdef"
CASES_PER_SERVICE = 1_000
INVALID_CASES_PER_SERVICE = 200  # requests still invalid when sent with the key (many mutate only the key)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]
# Given explicitly, so that no configuration file found where the tests run changes what is checked.
CONFIG = schemathesis.Config.from_dict(
    # an invalid request is refused by a documented 4xx: a batch over its bound is a 413, not a 422
    {"checks": {"negative_data_rejection": {"expected-statuses": [401, 403, 404, 409, 413, 422]}}}
)
# Examples per generation mode, in the order they run: scoring first, so that outcomes, look-ups and
# searches also meet event ids that are on record, and the monitoring report is computed in between.
BUDGET: dict[str, int] = {
    "POST /v1/score": 260,
    "POST /v1/outcomes": 110,
    "GET /v1/decisions": 100,
    "GET /v1/decisions/{event_id}": 50,
    "GET /v1/monitoring": 10,
    "GET /v1/model": 10,
    "GET /v1/equations": 10,
    "GET /healthz": 1,
    "GET /readyz": 1,
    "GET /openapi.json": 1,
}
NO_INPUT = frozenset({"GET /healthz", "GET /readyz", "GET /openapi.json"})  # nothing to make invalid


@dataclass
class Tally:
    sent: Counter[str] = field(default_factory=Counter)
    invalid: Counter[str] = field(default_factory=Counter)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)


@pytest.fixture
def fuzzed(request: pytest.FixtureRequest) -> Iterator[tuple[Runtime, Flask]]:
    """The app of the service named by the test's parameter, over a runtime whose only key may do anything
    (so that every route is reached rather than refused); closed when the test ends."""
    settings: Settings = request.getfixturevalue(f"{request.param}_settings")
    opened = runtime(request.param, replace(settings, api_keys=(f"fuzzer:{FUZZ_KEY}:admin",)))
    try:
        yield opened, create_app(opened)
    finally:
        opened.close()


def fuzz(operation: schemathesis.APIOperation, mode: GenerationMode, examples: int, tally: Tally) -> None:
    """`examples` cases of `operation` in `mode`, each sent to the app and its answer checked."""
    label = f"{operation.method.upper()} {operation.path}"

    @hypothesis_settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def send(case: schemathesis.Case) -> None:
        # The key is set on the case itself, so a case whose only invalid part was its key is known to be
        # valid again and is not expected to be refused.
        case.headers = {**(case.headers or {}), "X-API-Key": FUZZ_KEY}
        response = case.call()
        tally.sent[label] += 1
        tally.statuses[(label, response.status_code)] += 1
        if case.meta is not None and any(c.mode.is_negative for c in case.meta.components.values()):
            tally.invalid[label] += 1
        case.validate_response(response, checks=CHECKS)

    send()


@pytest.mark.parametrize("fuzzed", ["fraud", "claims", "disease"], indirect=True)
def test_no_generated_request_gets_a_5xx_or_an_undocumented_answer(fuzzed: tuple[Runtime, Flask]) -> None:
    """Over a thousand generated requests per service, valid and invalid, across scoring (one event and
    batches), outcomes, decision look-ups and searches, the model card, monitoring, the reference documents,
    health, readiness and the document itself: none gets a 5xx, every status is documented with a body of
    the documented schema, invalid ones are refused, and valid events are really scored."""
    opened, app = fuzzed
    document = app.test_client().get("/openapi.json").get_json()
    schema = schemathesis.openapi.from_dict(document, config=CONFIG)
    schema.app = app  # requests go through WSGI, in-process
    operations = {f"{op.method.upper()} {op.path}": op for op in (r.ok() for r in schema.get_all_operations())}
    budget = {label: n for label, n in BUDGET.items() if label in operations}
    tally = Tally()
    for label, examples in budget.items():
        if label == "GET /v1/monitoring":
            opened.monitor()  # a report from what was scored and reported so far: /v1/monitoring serves it
        modes = [GenerationMode.POSITIVE] if label in NO_INPUT else list(GenerationMode)
        for mode in modes:
            fuzz(operations[label], mode, examples, tally)

    assert sum(tally.sent.values()) >= CASES_PER_SERVICE, tally.sent
    assert set(tally.sent) == set(budget), f"operations never reached: {set(budget) - set(tally.sent)}"
    assert sum(tally.invalid.values()) >= INVALID_CASES_PER_SERVICE, tally.invalid
    assert tally.statuses[("POST /v1/score", 200)] > 0, "no generated event was scored"
    assert tally.statuses[("GET /v1/decisions/{event_id}", 200)] > 0, "no recorded decision was found"
    assert tally.statuses[("GET /v1/monitoring", 200)] > 0, "the computed report was not served"
