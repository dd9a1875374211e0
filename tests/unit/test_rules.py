"""The rules engine: decisions from a ruleset, readable rule hits, and load-time refusal of bad rulesets
with a message naming the rule and the problem."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from shared.errors import InvalidRuleset
from shared.rules.engine import Ruleset

BASE = textwrap.dedent("""
    service: fraud
    version: "2026.11.1"
    outcomes: [approve, review, decline]
    default: approve
    bands:
      - {name: high, min_score: 0.7}
      - {name: medium, min_score: 0.3}
      - {name: low, min_score: 0.0}
    rules:
      - id: very_high_score
        description: The model is confident
        when: "score >= 0.9"
        then: decline
        reason: "fraud score {score} is at or above 0.9"
      - id: big_amount
        when: "event.amount > 1000"
        then: review
        reason: "amount {event.amount} on card with {features.card_nb_tx_1d} payments today"
""")
SAMPLE = {"event": {"amount": 10.0}, "features": {"card_nb_tx_1d": 1.0}, "score": 0.1, "band": "low", "reasons": []}


def context(**overrides: Any) -> dict[str, Any]:
    event = {**SAMPLE["event"], **overrides.pop("event", {})}
    return {**SAMPLE, "event": event, **overrides}


def test_most_severe_hit_wins_and_every_hit_is_listed_in_rule_order() -> None:
    """A decline and a review both hit: the decision is decline, both hits are reported in file order."""
    ruleset = Ruleset.from_yaml(BASE, sample_context=SAMPLE)
    verdict = ruleset.evaluate(context(score=0.95, event={"amount": 5000.0}))
    assert verdict.outcome == "decline"
    assert [h.rule_id for h in verdict.hits] == ["very_high_score", "big_amount"]
    assert verdict.hits[0].reason == "fraud score 0.95 is at or above 0.9"
    assert verdict.hits[1].reason == "amount 5000 on card with 1 payments today"


def test_no_hit_gives_the_default() -> None:
    """Nothing hits: the default outcome, no hits."""
    verdict = Ruleset.from_yaml(BASE).evaluate(context(score=0.5))
    assert verdict.outcome == "approve" and verdict.hits == ()


@pytest.mark.parametrize(("score", "band"), [(0.0, "low"), (0.29999, "low"), (0.3, "medium"), (0.7, "high"), (1.0, "high")])
def test_bands_start_at_their_min_score(score: float, band: str) -> None:
    """A score at a band's threshold belongs to that band."""
    assert Ruleset.from_yaml(BASE).band_for(score) == band


def test_a_field_missing_at_run_time_never_hits_and_never_crashes() -> None:
    """An event without the field a rule compares (ZEN raises on `null > 1000`): that rule does not hit,
    the others still decide."""
    ruleset = Ruleset.from_yaml(BASE)
    verdict = ruleset.evaluate({"event": {}, "features": {}, "score": 0.95, "band": "high", "reasons": []})
    assert verdict.outcome == "decline" and [h.rule_id for h in verdict.hits] == ["very_high_score"]
    calm = ruleset.evaluate({"event": {}, "features": {}, "score": 0.1, "band": "low", "reasons": []})
    assert calm.outcome == "approve" and calm.hits == ()


def test_digest_follows_the_content() -> None:
    """Same text, same digest; a changed threshold, another digest."""
    assert Ruleset.from_yaml(BASE).digest == Ruleset.from_yaml(BASE).digest
    assert Ruleset.from_yaml(BASE).digest != Ruleset.from_yaml(BASE.replace("0.9\"", "0.8\"")).digest


def test_the_fraud_ruleset_shipped_with_the_service_loads() -> None:
    """services/fraud_detection/rules.yaml is valid against the real context shape."""
    from services.fraud_detection.scoring import DEFINITION
    from shared.runtime import load_ruleset

    ruleset = load_ruleset(DEFINITION)
    assert ruleset.service == "fraud" and len(ruleset.rules) >= 3


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("when: \"score >= 0.9\"", "when: \"score >= \""), "rule very_high_score: `score >= ` is not a valid expression"),
        (("then: decline", "then: block"), "rule very_high_score: then 'block' is not one of the outcomes"),
        (("when: \"event.amount > 1000\"", "whenn: \"event.amount > 1000\""), "rule big_amount: unknown key 'whenn'"),
        (("id: big_amount", "id: very_high_score"), "rule very_high_score: the id is used twice"),
        (("id: big_amount", "id: Big-Amount"), "rule Big-Amount: id must match"),
        (("default: approve", "default: allow"), "default 'allow' is not one of the outcomes"),
        (("{name: low, min_score: 0.0}", "{name: low, min_score: 0.1}"), "the last band must start at min_score 0"),
        (("version: \"2026.11.1\"\n", ""), "missing key 'version'"),
        (("outcomes: [approve, review, decline]", "outcomes: [approve, review, review, decline]"), "outcomes are listed twice"),
        (("reason: \"fraud score {score} is at or above 0.9\"", "reason: \"score {score:.2f}\""),
         "rule very_high_score: reason template"),
        (("rules:", "rules: [\n"), "not valid YAML at line"),
    ],
)
def test_invalid_rulesets_fail_at_load_naming_rule_and_problem(change: tuple[str, str], expected: str) -> None:
    """Each kind of mistake is refused at load with a message that names the rule (where there is one)."""
    text = BASE.replace(*change)
    assert text != BASE
    with pytest.raises(InvalidRuleset) as error:
        Ruleset.from_yaml(text, source="rules.yaml", sample_context=SAMPLE)
    assert expected in str(error.value) and str(error.value).startswith("rules.yaml: ")


def test_a_misspelt_field_is_caught_against_the_sample_context() -> None:
    """`features.card_nb_tx_1dd` would silently never hit: with a sample context the load refuses it."""
    text = BASE.replace("when: \"event.amount > 1000\"", "when: \"features.card_nb_tx_1dd > 3\"")
    Ruleset.from_yaml(text)  # without a sample, only the syntax can be checked
    with pytest.raises(InvalidRuleset, match=r"rule big_amount: .*features.card_nb_tx_1dd > 3.*misspelt") as error:
        Ruleset.from_yaml(text, sample_context=SAMPLE)
    assert "Stack backtrace" not in str(error.value)


def test_a_reason_naming_an_unknown_field_is_refused() -> None:
    """A reason placeholder that the context does not have is a load error, not a '?' in production."""
    text = BASE.replace("{features.card_nb_tx_1d}", "{features.nope}")
    with pytest.raises(InvalidRuleset, match=r"rule big_amount: reason names \{features.nope\}"):
        Ruleset.from_yaml(text, sample_context=SAMPLE)


def test_all_problems_are_reported_at_once() -> None:
    """Two independent mistakes are both named in one error, so an analyst fixes them in one go."""
    text = BASE.replace("then: decline", "then: block").replace("then: review", "then: hold")
    with pytest.raises(InvalidRuleset) as error:
        Ruleset.from_yaml(text)
    assert len(error.value.problems) == 2
