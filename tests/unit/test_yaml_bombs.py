"""YAML from outside (rulesets: files, `risk rules check`, POST /v1/control/rulesets) is parsed without
aliases or anchors and with bounded nesting: an alias bomb or a deeply nested document is one readable
problem and a small 4xx, never an expansion, a RecursionError or a 500."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from services.fraud_detection.service import FraudService
from shared.errors import InvalidRulesetError
from shared.jsonlimits import MAX_NESTING
from shared.rules import Ruleset
from shared.settings import Settings
from tests.fixtures.services import scoring_app

LAUGHS = "\n".join(
    f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]"
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True)
)
# Nine levels of nine aliases under `default`, whose problem message quotes the value: 9**9 "lol"s once expanded.
BILLION_LAUGHS = (
    'service: fraud\nversion: "1"\noutcomes: [approve, decline]\nbands: [{name: low, min_score: 0}]\nrules: []\n'
    f'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n{LAUGHS}\ndefault: *i\n'
)
DEEP_FLOW = "[" * 50_000 + "]" * 50_000
DEEP_BLOCK = "rules:\n" + "".join(f"{'  ' * depth}- \n" for depth in range(1, 200))
API_KEY = "key-of-ana"


def problems(text: str) -> list[str]:
    with pytest.raises(InvalidRulesetError) as error:
        Ruleset.from_yaml(text, source="rules.yaml")
    return error.value.problems


def test_an_alias_bomb_is_one_problem_naming_the_anchor_not_an_expansion() -> None:
    """The billion-laughs document (under 700 bytes) is refused at its first anchor, with line and column;
    nothing is expanded, so the message stays short. Without the anchors, the aliases are refused alone."""
    assert len(BILLION_LAUGHS) < 700
    (problem,) = problems(BILLION_LAUGHS)
    assert (
        problem == "refused YAML at line 6, column 4: an anchor (&a) is not allowed in a ruleset: write the value out"
    )
    (alias,) = problems(BILLION_LAUGHS.replace("&", ""))
    assert alias == "refused YAML at line 15, column 10: an alias (*i) is not allowed in a ruleset: write the value out"


def test_an_anchor_alone_is_refused_too() -> None:
    """An anchor is only useful to an alias, so it is refused where it stands, before any alias."""
    (problem,) = problems('service: &s fraud\nversion: "1"\n')
    assert problem.startswith("refused YAML at line 1, column 10: an anchor (&s) is not allowed")


@pytest.mark.parametrize("text", [DEEP_FLOW, DEEP_BLOCK], ids=["flow-50000-deep", "block-200-deep"])
def test_a_document_nested_too_deeply_is_one_problem_not_a_recursion_error(text: str) -> None:
    """50,000 nested flow lists (past Python's recursion limit in the YAML composer) and 200 nested block
    lists are refused at the level past MAX_NESTING, naming the limit."""
    (problem,) = problems(text)
    assert problem.startswith("refused YAML at line ")
    assert problem.endswith(f"the ruleset nests more than {MAX_NESTING} levels deep")


def test_the_packaged_ruleset_is_within_the_limits() -> None:
    """The limits refuse nothing a real ruleset needs: the fraud service's own ruleset still loads."""
    ruleset = Ruleset.load(FraudService.ruleset_path)
    assert ruleset.service == "fraud" and ruleset.rules


@pytest.fixture
def control(tmp_path: Path) -> FlaskClient:
    """The fraud HTTP app in-process, no model trained (the control plane needs none), one API identity."""
    settings = Settings.from_env(
        {},
        model_dir=tmp_path / "empty-registry",
        control_dir=tmp_path / "control",
        state_url=f"sqlite:///{tmp_path / 'state.sqlite3'}",
        api_keys=(f"ana:{API_KEY}:analyst",),
    )
    return scoring_app("fraud", settings).test_client()


@pytest.mark.parametrize(
    ("body", "expected"),
    [(BILLION_LAUGHS, "an anchor (&a) is not allowed"), (DEEP_FLOW, f"nests more than {MAX_NESTING} levels deep")],
    ids=["billion-laughs", "flow-50000-deep"],
)
def test_a_yaml_bomb_posted_as_a_ruleset_is_a_small_422(control: FlaskClient, body: str, expected: str) -> None:
    """POST /v1/control/rulesets with an alias bomb or a 50,000-deep document answers 422 invalid_ruleset
    naming the problem, in a reply of a few hundred bytes; nothing is proposed."""
    reply = control.post(
        "/v1/control/rulesets", data=body, headers={"X-API-Key": API_KEY, "Content-Type": "application/yaml"}
    )
    assert reply.status_code == 422, reply.get_data(as_text=True)[:500]
    assert len(reply.get_data()) < 1024
    document = reply.get_json()
    assert document["error"] == "invalid_ruleset" and expected in document["problems"][0]
    listed = control.get("/v1/control/proposals", headers={"X-API-Key": API_KEY})
    assert listed.get_json() == {"proposals": []}


def test_json_nested_past_the_parser_on_a_control_endpoint_is_a_422(control: FlaskClient) -> None:
    """A promotion body nested 50,000 deep (json raises RecursionError) is refused like any non-JSON body."""
    reply = control.post(
        "/v1/control/promotions",
        data='{"version": ' + DEEP_FLOW + "}",
        headers={"X-API-Key": API_KEY, "Content-Type": "application/json"},
    )
    assert reply.status_code == 422 and "version" in reply.get_json()["fields"]


def test_a_shallow_ruleset_still_parses_with_its_own_problems() -> None:
    """Below the limits the checks run as before: a plain document gets its ordinary problems."""
    text = textwrap.dedent("""
        service: fraud
        version: "1"
        outcomes: [approve, decline]
        default: maybe
        bands: [{name: low, min_score: 0}]
        rules: []
    """)
    assert problems(text) == ["default 'maybe' is not one of the outcomes (approve, decline)"]
