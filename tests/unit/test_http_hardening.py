"""The HTTP door against hostile or careless clients: text that is not Unicode, repeated event ids in a
batch, methods a route does not take, oversized request ids, stray static files, and answers that could
show a secret. Each app runs in-process (Flask's test client) with no model trained: the contract, the
routing and the error bodies need none."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from shared.errors import NotReadyError
from shared.settings import Settings
from tests.fixtures.services import PSEUDONYM_KEY, scoring_app

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = {"fraud": "payments.transaction", "disease": "health.assessment", "claims": "insurance.policy"}
API_KEY = "key-of-ana-0123456789"
STORE_PASSWORD = "s3cret-store-pw"


def example(service: str) -> dict[str, Any]:
    """The service's documented example event (the `data` of contracts/examples/<type>.v1.json)."""
    document = json.loads((REPO / "contracts" / "examples" / f"{EXAMPLES[service]}.v1.json").read_text())
    return dict(document["data"])


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "model_dir": tmp_path / "empty-registry",
        "control_dir": tmp_path / "control",
        "state_url": f"sqlite:///{tmp_path / 'state.sqlite3'}",
        "pseudonym_key": PSEUDONYM_KEY.encode(),
        **overrides,
    }
    return Settings.from_env({}, **values)


def app_for(service: str, tmp_path: Path, **overrides: Any) -> Flask:
    return scoring_app(service, settings_for(tmp_path, **overrides))


def post_json(client: FlaskClient, body: Any) -> Any:
    """POST /v1/score with `body` as JSON text; lone surrogates go as `\\ud800` escapes, as a client sends them."""
    return client.post("/v1/score", data=json.dumps(body), content_type="application/json")


def string_fields(service: str) -> list[tuple[str, str]]:
    return [(service, name) for name, value in example(service).items() if isinstance(value, str)]


# ------------------------------------------------------------------ lone surrogates


@pytest.mark.parametrize(
    ("service", "field"), [*string_fields("fraud"), *string_fields("disease"), *string_fields("claims")]
)
def test_a_lone_surrogate_in_any_string_field_is_a_422_naming_the_field(
    tmp_path: Path, service: str, field: str
) -> None:
    """The example event with one string field holding "\\ud800" is a 422 naming exactly that field, alone
    and inside a batch (events.1.<field>); the same event without it is not refused by the contract."""
    client = app_for(service, tmp_path).test_client()
    poisoned = {**example(service), field: "x\ud800"}
    single = post_json(client, poisoned)
    assert single.status_code == 422, single.get_data(as_text=True)
    assert list(single.get_json()["fields"]) == [field]
    assert "lone surrogate" in single.get_json()["fields"][field][0]
    batch = post_json(client, {"events": [example(service), poisoned]})
    assert batch.status_code == 422 and list(batch.get_json()["fields"]) == [f"events.1.{field}"]
    assert post_json(client, example(service)).status_code == 503, "the clean event passes the contract"


# ------------------------------------------------------------------ repeated event ids


def test_an_event_id_repeated_in_a_batch_is_a_422_naming_it_and_the_earlier_index(tmp_path: Path) -> None:
    """In a batch of four, events.3 with the transaction_id of events.1 is refused (the whole batch, as
    for any invalid event), the field path naming the repeat and the message the earlier index."""
    client = app_for("fraud", tmp_path).test_client()
    events = [{**example("fraud"), "transaction_id": f"t-{i}"} for i in range(4)]
    events[3]["transaction_id"] = "t-1"
    reply = post_json(client, {"events": events})
    assert reply.status_code == 422
    assert reply.get_json()["fields"] == {
        "events.3.transaction_id": ["the same transaction_id as events.1: each event of a batch needs its own id"]
    }
    events[3]["transaction_id"] = "t-3"
    assert post_json(client, {"events": events}).status_code == 503, "distinct ids pass the contract"


def test_a_repeated_id_is_reported_with_the_other_invalid_events_of_the_batch(tmp_path: Path) -> None:
    """Every problem of the batch comes back at once: a repeat (disease: assessment_id) and a bad field."""
    client = app_for("disease", tmp_path).test_client()
    events = [example("disease"), {**example("disease"), "age": -4}, example("disease")]
    fields = post_json(client, {"events": events}).get_json()["fields"]
    assert set(fields) == {"events.1.age", "events.2.assessment_id"}
    assert "events.0" in fields["events.2.assessment_id"][0]


# ------------------------------------------------------------------ methods, request ids, static files


@pytest.mark.parametrize(("method", "path", "allowed"), [("GET", "/v1/score", "POST"), ("POST", "/healthz", "GET")])
def test_a_405_names_the_allowed_methods_in_the_allow_header(
    tmp_path: Path, method: str, path: str, allowed: str
) -> None:
    """A method the route does not take is a JSON 405 carrying Allow, as HTTP requires."""
    reply = app_for("fraud", tmp_path).test_client().open(path, method=method)
    assert reply.status_code == 405 and reply.get_json()["error"] == "method_not_allowed"
    assert allowed in {m.strip() for m in reply.headers["Allow"].split(",")}
    assert reply.content_type == "application/json"


@pytest.mark.parametrize(
    "presented",
    ["x" * 65, "a" * 8192, "has space", "tab\there", "semi;colon", "ünïcode", ""],
    ids=["65-chars", "8-KB", "space", "tab", "semicolon", "non-ascii", "empty"],
)
def test_a_request_id_that_is_not_a_short_plain_token_is_replaced_by_a_new_one(tmp_path: Path, presented: str) -> None:
    """Only up to 64 of [A-Za-z0-9._-] is kept from X-Request-ID (it is in every log line of the request);
    anything else gets a fresh id, sent back in the answer."""
    client = app_for("fraud", tmp_path).test_client()
    answered = client.get("/healthz", headers={"X-Request-ID": presented}).headers["X-Request-ID"]
    assert answered != presented and len(answered) == 32 and int(answered, 16) >= 0


def test_a_plain_request_id_of_up_to_64_characters_is_kept(tmp_path: Path) -> None:
    """A caller's own correlation id, such as a UUID or a 64-character token, comes back unchanged."""
    client = app_for("fraud", tmp_path).test_client()
    for presented in ("3f0c9a7e-5d21-4b8e-a6f4-91c2d7e0b815", "A1._-" + "z" * 59):
        assert client.get("/healthz", headers={"X-Request-ID": presented}).headers["X-Request-ID"] == presented


def test_files_under_a_static_folder_are_never_served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The app has no static route: a file in ./static of the working directory is a 404, not its content."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "secret.txt").write_text("do not serve")
    app = app_for("fraud", tmp_path)
    assert app.static_folder is None and "static" not in {rule.endpoint for rule in app.url_map.iter_rules()}
    reply = app.test_client().get("/static/secret.txt")
    assert reply.status_code == 404 and b"do not serve" not in reply.get_data()


# ------------------------------------------------------------------ secrets in answers


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_readyz_shows_why_the_state_store_is_down_without_its_password(tmp_path: Path) -> None:
    """With Redis unreachable at redis://:PASSWORD@..., /readyz is a 503 naming the store (URL masked) and
    never the password."""
    url = f"redis://:{STORE_PASSWORD}@127.0.0.1:{closed_port()}/0"
    reply = app_for("fraud", tmp_path, state_url=url).test_client().get("/readyz")
    assert reply.status_code == 503
    state = reply.get_json()["checks"]["state_store"]
    assert state.startswith("unavailable") and "redis://:***@127.0.0.1" in state
    assert STORE_PASSWORD not in reply.get_data(as_text=True)


def test_error_bodies_mask_store_passwords_and_every_configured_secret(tmp_path: Path) -> None:
    """A 503 whose message carries a store URL with a password, a token parameter, the pseudonym key and an
    API key answers with each masked; the rest of the message stays readable."""
    url = f"redis://ops:{STORE_PASSWORD}@cache.internal:6379/0"
    app = app_for("fraud", tmp_path, state_url=url, api_keys=(f"ana:{API_KEY}:admin",))

    @app.get("/v1/broken")
    def broken() -> None:
        raise NotReadyError(f"state store {url}: refused (token=abc123; key {API_KEY}; {PSEUDONYM_KEY})")

    reply = app.test_client().get("/v1/broken", headers={"X-API-Key": API_KEY})
    assert reply.status_code == 503
    message = reply.get_json()["message"]
    assert message == "state store redis://ops:***@cache.internal:6379/0: refused (token=***; key ***; ***)"
    for secret in (STORE_PASSWORD, "abc123", API_KEY, PSEUDONYM_KEY):
        assert secret not in reply.get_data(as_text=True)


# ------------------------------------------------------------------ answers as the OpenAPI document says


def served_document(app: Flask) -> dict[str, Any]:
    return dict(app.test_client().get("/openapi.json").get_json())


def matches(document: dict[str, Any], schema: dict[str, Any], body: Any) -> bool:
    """Whether `body` is valid under `schema`, its references read from the document's components."""
    from jsonschema import Draft4Validator  # OpenAPI 3.0's schemas are JSON Schema draft 4's, extended

    return bool(Draft4Validator({**schema, "components": document["components"]}).is_valid(body))


ERROR = {"$ref": "#/components/schemas/Error"}


@pytest.mark.parametrize("service", ["fraud", "claims", "disease"])
def test_every_operation_behind_a_key_documents_its_401_and_403(tmp_path: Path, service: str) -> None:
    """Each operation that needs a key documents 401 and 403 with the error body, and a key whose roles do not
    allow an endpoint gets exactly that: a 403 with a body of the documented schema."""
    app = app_for(service, tmp_path, api_keys=(API_KEY,))  # a bare key: the scorer role alone
    document = served_document(app)
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if operation.get("security"):
                for status in ("401", "403"):
                    documented = operation["responses"].get(status, {})
                    assert documented.get("content", {}).get("application/json", {}).get("schema") == ERROR, (
                        method,
                        path,
                        status,
                    )
    reply = app.test_client().get("/v1/decisions", headers={"X-API-Key": API_KEY})
    assert reply.status_code == 403 and matches(document, ERROR, reply.get_json())


def test_a_readyz_503_is_documented_with_the_body_it_has(tmp_path: Path) -> None:
    """/readyz with its state store down answers 503, a status its document lists, with a body matching the
    documented readiness schema (the 200's schema, the same body saying ready)."""
    app = app_for("fraud", tmp_path, state_url=f"redis://127.0.0.1:{closed_port()}/0")
    documented = served_document(app)["paths"]["/readyz"]["get"]["responses"]
    reply = app.test_client().get("/readyz")
    assert reply.status_code == 503 and "503" in documented
    schema = documented["503"]["content"]["application/json"]["schema"]
    assert matches(served_document(app), schema, reply.get_json())
    assert not matches(served_document(app), schema, {"ready": False})


@pytest.mark.parametrize("service", ["fraud", "claims", "disease"])
def test_an_outcomes_answer_matches_exactly_one_documented_shape(tmp_path: Path, service: str) -> None:
    """The 200 of POST /v1/outcomes is one of two shapes (one status, or `outcomes` of them): an answer of
    either matches exactly one, as `oneOf` requires (both were open objects, so each matched both)."""
    document = served_document(app_for(service, tmp_path))
    id_field = {"fraud": "transaction_id", "claims": "quote_id", "disease": "assessment_id"}[service]
    responses = document["paths"]["/v1/outcomes"]["post"]["responses"]
    shapes = responses["200"]["content"]["application/json"]["schema"]["oneOf"]
    single = {id_field: "e-1", "status": "recorded"}
    for answer in (single, {"outcomes": [single, {id_field: "e-2", "status": "stale"}]}):
        assert [matches(document, shape, answer) for shape in shapes].count(True) == 1, answer


def test_a_bound_the_contract_leaves_out_is_documented_as_exclusive(tmp_path: Path) -> None:
    """claims' exposure must be above 0: the document says exclusiveMinimum (apispec wrote an inclusive
    minimum of 0, so a generated 0 was refused although documented valid), and the contract refuses 0."""
    app = app_for("claims", tmp_path)
    exposure = served_document(app)["components"]["schemas"]["Policy"]["properties"]["exposure"]
    assert exposure["minimum"] == 0 and exposure["exclusiveMinimum"] is True
    reply = post_json(app.test_client(), {**example("claims"), "exposure": 0})
    assert reply.status_code == 422 and list(reply.get_json()["fields"]) == ["exposure"]


def test_a_laboratory_result_is_documented_in_both_units_within_what_the_contract_accepts(tmp_path: Path) -> None:
    """Each laboratory result is documented as {value, unit} in mg/dL or in mmol/L, each with its range: a
    value at either end of either unit's range passes the contract, and one just outside the mg/dL range
    is a 422 naming the field."""
    app = app_for("disease", tmp_path)
    client = app.test_client()
    properties = served_document(app)["components"]["schemas"]["Assessment"]["properties"]
    measured = {name: p for name, p in properties.items() if "oneOf" in p and "value" in p["oneOf"][0]["properties"]}
    assert set(measured) >= {"fasting_glucose", "glucose_2h", "total_cholesterol", "hdl_cholesterol"}
    for name, documented in measured.items():
        for shape in documented["oneOf"]:
            unit, value = shape["properties"]["unit"]["enum"][0], shape["properties"]["value"]
            for bound in (value["minimum"], value["maximum"]):
                event = {**example("disease"), name: {"value": bound, "unit": unit}}
                event.pop("hdl_cholesterol" if name == "total_cholesterol" else "total_cholesterol", None)
                reply = post_json(client, event)
                assert reply.status_code == 503, (name, unit, bound, reply.get_json())  # past the contract
        mg_dl = documented["oneOf"][0]["properties"]["value"]
        reply = post_json(client, {**example("disease"), name: {"value": mg_dl["maximum"] + 1, "unit": "mg/dL"}})
        assert reply.status_code == 422 and name in reply.get_json()["fields"]
