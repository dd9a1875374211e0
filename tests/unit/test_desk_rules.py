"""A ruleset's `queue` key (the outcomes whose decisions need a person): checked at load with a clear error,
part of the digest only when set, and set in each packaged ruleset to the outcomes the desk queues."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.errors import InvalidRulesetError
from shared.rules.engine import Ruleset

ROOT = Path(__file__).resolve().parents[2]
BASE = """
service: fraud
version: "1"
outcomes: [approve, review, decline]
default: approve
bands:
  - {name: high, min_score: 0.5}
  - {name: low, min_score: 0.0}
rules:
  - id: high_score
    when: "score >= 0.9"
    then: decline
"""


def with_queue(line: str) -> str:
    return BASE.replace("default: approve\n", f"default: approve\n{line}\n")


def test_queue_names_outcomes_that_need_a_person() -> None:
    """`queue:` lists the outcomes that open a case, in order; a ruleset without the key queues nothing."""
    ruleset = Ruleset.from_yaml(with_queue("queue: [review, decline]"))
    assert ruleset.queue == ("review", "decline")
    assert Ruleset.from_yaml(BASE).queue == ()


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("queue: [review, refer]", "queue names 'refer', which is not one of the outcomes (approve, review, decline)"),
        ("queue: review", "queue must be a list of outcomes"),
        ("queue: [review, review]", "queue names 'review' twice"),
        ("queue: [1]", "queue must be a list of outcomes"),
        ("queu: [review]", "unknown key 'queu' (did you mean 'queue'?)"),
    ],
)
def test_a_bad_queue_is_refused_at_load(line: str, problem: str) -> None:
    """A queue that is not a list of the ruleset's outcomes, each once, or a misspelt key, is refused at load."""
    with pytest.raises(InvalidRulesetError) as refused:
        Ruleset.from_yaml(with_queue(line))
    assert any(problem in found for found in refused.value.problems), refused.value.problems


def test_the_queue_is_in_the_digest_only_when_set() -> None:
    """Setting a queue changes the digest; a ruleset without one keeps the digest it had before the key."""
    assert Ruleset.from_yaml(with_queue("queue: [review]")).digest != Ruleset.from_yaml(BASE).digest
    assert Ruleset.from_yaml(with_queue("queue: []")).digest == Ruleset.from_yaml(BASE).digest


@pytest.mark.parametrize(
    ("service", "queued"),
    [
        ("fraud_detection", ("review", "decline")),
        ("claims_risk", ("refer",)),
        ("disease_risk", ("follow_up", "urgent")),
    ],
)
def test_the_packaged_rulesets_queue_what_needs_a_person(service: str, queued: tuple[str, ...]) -> None:
    """The packaged rulesets queue fraud's review and decline, claims' refer, disease's follow-up and urgent."""
    assert Ruleset.load(ROOT / "services" / service / "rules.yaml").queue == queued
