"""The rules engine: decisions from a ruleset, readable rule hits, robustness to odd events at run time, and
load-time refusal of bad rulesets with a message naming the rule and the problem."""

from __future__ import annotations

import copy
import dataclasses
import math
import pickle
import re
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from shared.errors import InvalidRulesetError
from shared.rules import Ruleset, Verdict
from shared.rules.engine import RuleError
from shared.rules.templates import Template, TemplateError, placeholders, readable

BASE = textwrap.dedent("""
    service: fraud
    version: "2026.11.1"
    outcomes: [approve, review, decline]
    default: approve
    explain_from_score: 0.2
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
SAMPLE: dict[str, Any] = {
    "event": {"amount": 10.0},
    "features": {"card_nb_tx_1d": 1.0},
    "score": 0.1,
    "band": "low",
    "reasons": [],
}


def context(**overrides: Any) -> dict[str, Any]:
    """A context of the sample's shape, with `event` fields merged and other keys replaced."""
    event = {**SAMPLE["event"], **overrides.pop("event", {})}
    return {**SAMPLE, "event": event, **overrides}


def ruleset_with(rules: str, **top: str) -> Ruleset:
    """A ruleset of BASE's header with other rules (YAML text of the `rules:` list items)."""
    header = BASE.split("rules:")[0]
    for key, value in top.items():
        header = re.sub(rf"(?m)^{key}: .*$", f"{key}: {value}", header)
    return Ruleset.from_yaml(header + "rules:\n" + textwrap.indent(textwrap.dedent(rules), "  "), sample_context=SAMPLE)


def problems_of(text: str, sample: dict[str, Any] | None = SAMPLE) -> list[str]:
    """The problems InvalidRulesetError lists for a text (fails the test if it loads)."""
    with pytest.raises(InvalidRulesetError) as error:
        Ruleset.from_yaml(text, source="rules.yaml", sample_context=sample)
    assert str(error.value).startswith("rules.yaml: ")
    return error.value.problems


# ------------------------------------------------------------------ decisions


def test_most_severe_hit_wins_and_every_hit_is_listed_in_rule_order() -> None:
    """A decline and a review both hit: the decision is decline, both hits are reported in file order with
    their reasons rendered on the event."""
    ruleset = Ruleset.from_yaml(BASE, sample_context=SAMPLE)
    verdict = ruleset.evaluate(context(score=0.95, band="high", event={"amount": 5000.0}))
    assert verdict == Verdict(outcome="decline", band="high", hits=verdict.hits)
    assert [(h.rule_id, h.outcome) for h in verdict.hits] == [("very_high_score", "decline"), ("big_amount", "review")]
    assert verdict.hits[0].reason == "fraud score 0.95 is at or above 0.9"
    assert verdict.hits[1].reason == "amount 5000 on card with 1 payments today"


def test_severity_comes_from_the_outcomes_order_not_the_rule_order() -> None:
    """With the review rule listed first and the decline rule last, both hitting still gives decline; and
    when only the review rule hits, the decision is review."""
    ruleset = ruleset_with("""
        - {id: first_review, when: "score >= 0.5", then: review}
        - {id: last_decline, when: "score >= 0.9", then: decline}
    """)
    assert ruleset.evaluate(context(score=0.95)).outcome == "decline"
    only_review = ruleset.evaluate(context(score=0.6))
    assert only_review.outcome == "review" and [h.rule_id for h in only_review.hits] == ["first_review"]


def test_no_hit_gives_the_default() -> None:
    """Nothing hits: the default outcome and no hits, even when the default is not the first outcome."""
    verdict = Ruleset.from_yaml(BASE).evaluate(context(score=0.5))
    assert verdict.outcome == "approve" and verdict.hits == ()
    strict = ruleset_with('- {id: low_score, when: "score < 0.1", then: approve}', default="review")
    assert strict.evaluate(context(score=0.5)).outcome == "review"


def test_a_ruleset_without_rules_always_gives_the_default() -> None:
    """An empty rule list is allowed (a service with only bands) and decides the default."""
    verdict = ruleset_with("[]").evaluate(context(score=0.99))
    assert verdict.outcome == "approve" and verdict.hits == ()


@pytest.mark.parametrize(
    ("score", "band"),
    [
        (0.0, "low"),
        (0.29999, "low"),
        (0.3, "medium"),
        (0.69999, "medium"),
        (0.7, "high"),
        (1.0, "high"),
        (-0.5, "low"),
        (math.nan, "low"),
    ],
)
def test_bands_start_at_their_min_score(score: float, band: str) -> None:
    """A score at a band's threshold belongs to that band; anything below every threshold (or NaN) gets the
    lowest band rather than no band."""
    assert Ruleset.from_yaml(BASE).band_for(score) == band


def test_the_verdict_band_is_the_contexts_or_else_the_scores() -> None:
    """The service's band is kept as given; without one the band comes from the score; without a usable
    score, the lowest band."""
    ruleset = Ruleset.from_yaml(BASE)
    assert ruleset.evaluate(context(score=0.1, band="medium")).band == "medium"
    no_band = {k: v for k, v in context(score=0.75).items() if k != "band"}
    assert ruleset.evaluate(no_band).band == "high"
    assert ruleset.evaluate({"event": {}}).band == "low"


def test_evaluate_many_gives_one_verdict_per_context_in_order() -> None:
    """The batch form gives exactly what evaluating each context alone gives, in order."""
    ruleset = Ruleset.from_yaml(BASE)
    contexts = [context(score=s, event={"amount": a}) for s, a in [(0.95, 10.0), (0.1, 2000.0), (0.1, 5.0)]]
    verdicts = ruleset.evaluate_many(contexts)
    assert verdicts == [ruleset.evaluate(c) for c in contexts]
    assert [v.outcome for v in verdicts] == ["decline", "review", "approve"]


def test_all_conditions_take_one_call_into_zen_per_event() -> None:
    """The conditions are evaluated as one compiled list: one ZEN call per event, whatever the number of
    rules (DESIGN.md: one call per rule costs about seven times more)."""
    ruleset = Ruleset.from_yaml(BASE)
    conditions = ruleset._conditions
    calls: list[Any] = []

    class Counting:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def evaluate(self, ctx: Any) -> Any:
            calls.append(ctx)
            return self.inner.evaluate(ctx)

    object.__setattr__(conditions, "_together", Counting(conditions._together))
    object.__setattr__(conditions, "_alone", tuple(Counting(c) for c in conditions._alone))
    ruleset.evaluate_many([context(score=0.95), context(score=0.1)])
    assert len(calls) == 2


# ------------------------------------------------------------------ run-time robustness


def test_a_field_missing_at_run_time_is_a_rule_error_never_a_silent_non_hit() -> None:
    """An event without the field a rule compares (ZEN raises on `null > 1000`): that rule is not read as
    false but counts as hit with its own outcome, says why, and is listed in the verdict's errors; the
    other rules still decide, and nothing raises."""
    ruleset = Ruleset.from_yaml(BASE)
    verdict = ruleset.evaluate({"event": {}, "features": {}, "score": 0.95, "band": "high", "reasons": []})
    assert verdict.outcome == "decline"
    assert [(h.rule_id, h.outcome) for h in verdict.hits] == [("very_high_score", "decline"), ("big_amount", "review")]
    assert verdict.errors == (RuleError("big_amount", "Opcode Compare: Unsupported type"),)
    calm = ruleset.evaluate({"event": {}, "features": {}, "score": 0.1, "band": "low", "reasons": []})
    assert calm.outcome == "review", "a rule that cannot say no must not decide as if it had said no"
    assert calm.hits[0].reason == "could not be evaluated (Opcode Compare: Unsupported type), so counts as review"
    assert [e.rule_id for e in calm.errors] == ["big_amount"]


def test_on_error_names_the_outcome_of_a_rule_that_cannot_be_evaluated() -> None:
    """With `on_error`, a rule that fails takes that outcome (here the most severe) instead of its own;
    rules that evaluate keep theirs, and an event without failures has no errors."""
    ruleset = Ruleset.from_yaml(BASE.replace("default: approve", "default: approve\non_error: decline"))
    assert ruleset.on_error == "decline"
    failed = ruleset.evaluate({"event": {}, "features": {}, "score": 0.1, "band": "low", "reasons": []})
    assert failed.outcome == "decline" and [(h.rule_id, h.outcome) for h in failed.hits] == [("big_amount", "decline")]
    fine = ruleset.evaluate(context(score=0.1, event={"amount": 5000.0}))
    assert fine.outcome == "review" and fine.errors == ()


def test_on_error_must_be_an_outcome_and_changes_the_digest() -> None:
    """An on_error that is not one of the outcomes is refused at load; setting it changes the digest, and
    leaving it out keeps the digest a ruleset had before the key existed."""
    problems = problems_of(BASE.replace("default: approve", "default: approve\non_error: block"))
    assert problems == ["on_error 'block' is not one of the outcomes (approve, review, decline)"]
    with_key = Ruleset.from_yaml(BASE.replace("default: approve", "default: approve\non_error: review"))
    assert with_key.digest != Ruleset.from_yaml(BASE).digest
    assert pickle.loads(pickle.dumps(with_key)).on_error == "review"


def test_a_missing_field_in_a_hit_reason_renders_as_a_question_mark() -> None:
    """A rule that hits although its reason names a field this event lacks still hits, with '?' in its text."""
    ruleset = Ruleset.from_yaml(BASE)
    verdict = ruleset.evaluate({"event": {"amount": 2000.0}, "features": {}, "score": 0.1})
    assert verdict.outcome == "review"
    assert verdict.hits[0].reason == "amount 2000 on card with ? payments today"


@pytest.mark.parametrize(
    ("when", "kind"),
    [
        ("score", "a number"),
        ("event.amount", "a number"),
        ("1 / 0", "null"),
        ("'yes'", "a text"),
        ("event.amount > 1000 ? 1 : 0", "a number"),
    ],
)
def test_a_condition_giving_anything_but_true_or_false_is_a_rule_error(when: str, kind: str) -> None:
    """Numbers, null and text are neither true nor false: such a condition is reported as not evaluated
    (never taken as true because Python would call the value truthy, nor as false), and the rule beside
    it still hits."""
    text = BASE.replace('when: "event.amount > 1000"', f'when: "{when}"')
    ruleset = Ruleset.from_yaml(text)
    verdict = ruleset.evaluate(context(score=0.95, event={"amount": 5000.0}))
    assert [h.rule_id for h in verdict.hits] == ["very_high_score", "big_amount"]
    assert verdict.errors == (RuleError("big_amount", f"gave {kind} instead of true or false"),)


def test_values_zen_cannot_take_do_not_silence_other_rules() -> None:
    """A NaN feature, a datetime and a numpy-like oddity make ZEN refuse the whole context: the context is
    made plain (NaN -> null) and the rules that do not read those values still decide."""
    ruleset = Ruleset.from_yaml(BASE)
    odd = context(
        score=0.95,
        features={"card_nb_tx_1d": math.nan},
        event={"amount": 5000.0, "at": datetime(2026, 11, 1, tzinfo=UTC), "big": 2**80},
    )
    verdict = ruleset.evaluate(odd)
    assert [h.rule_id for h in verdict.hits] == ["very_high_score", "big_amount"]
    assert verdict.hits[1].reason == "amount 5000 on card with nan payments today"


def test_any_mapping_is_a_context() -> None:
    """Read-only mappings (as a caller may pass to protect its data) evaluate like dicts."""
    ruleset = Ruleset.from_yaml(BASE)
    frozen = MappingProxyType({**context(score=0.95), "event": MappingProxyType({"amount": 5000.0})})
    assert [h.rule_id for h in ruleset.evaluate(frozen).hits] == ["very_high_score", "big_amount"]


# ------------------------------------------------------------------ reasons


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.95, "0.95"),
        (0.123456, "0.123"),
        (0.000123456, "0.000123"),
        (5000.0, "5000"),
        (1234.56789, "1234.568"),
        (-2.5, "-2.5"),
        (3, "3"),
        (True, "true"),
        (None, "?"),
        (["amount", "is_night"], "amount, is_night"),
        ("FR", "FR"),
        (1e-12, "1e-12"),
        (0.9996, "0.9996"),
        (0.99999999, "0.99999999"),
        (-0.9995, "-0.9995"),
        (0.9999999999, "1"),
    ],
)
def test_values_render_readably(value: Any, text: str) -> None:
    """Numbers as an analyst would write them (no 5000.0, no 0.9500000001), lists joined, null as '?'."""
    assert readable(value) == text


def test_reasons_resolve_dotted_paths_and_keep_escaped_braces() -> None:
    """Placeholders reach nested fields and top-level keys a service adds; `{{` is a literal brace."""
    template = Template("{{{history.claims}}} claims, score {score}, top reasons: {reasons}")
    rendered = template.render({"history": {"claims": 2}, "score": 0.91234, "reasons": ["amount", "is_night"]})
    assert rendered == "{2} claims, score 0.912, top reasons: amount, is_night"


def test_a_rule_without_reason_reads_as_its_description_or_id() -> None:
    """The hit's text falls back to the description, then to the id, so it is never empty."""
    ruleset = ruleset_with("""
        - {id: described, description: Score above a half, when: "score > 0.5", then: review}
        - {id: bare, when: "score > 0.5", then: review}
    """)
    assert [h.reason for h in ruleset.evaluate(context(score=0.6)).hits] == ["Score above a half", "bare"]


@pytest.mark.parametrize(
    "template",
    ["{score:.2f}", "{score!r}", "{reasons[0]}", "{}", "{0}", "{score", "score}", "{score:{x}}"],
)
def test_templates_that_could_do_more_than_look_up_a_field_are_refused(template: str) -> None:
    """Format specs, conversions, indexing, positional or empty fields and broken braces are refused."""
    with pytest.raises(TemplateError):
        placeholders(template)


def test_a_reason_never_reaches_attributes() -> None:
    """A path through a non-mapping (here a str's __class__) is looked up in mappings only: it renders '?'
    instead of exposing Python internals."""
    assert Template("{event.__class__}").render({"event": "x"}) == "?"


# ------------------------------------------------------------------ load-time validation


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(("rules:", "rules: [\n"), "not valid YAML at line 13, column 3", id="yaml-syntax"),
        pytest.param(
            ("    then: decline", "    then: decline\n    then: review"),
            "duplicate key 'then'",
            id="yaml-duplicate-key",
        ),
        pytest.param(('version: "2026.11.1"\n', ""), "missing key 'version'", id="missing-top-key"),
        pytest.param(
            ("default: approve", "default: approve\nrulez: []"),
            "unknown key 'rulez' (did you mean 'rules'?)",
            id="unknown-top-key",
        ),
        pytest.param(
            ('version: "2026.11.1"', "version: 2026.10"), "version must be text: quote it", id="version-not-text"
        ),
        pytest.param(("service: fraud", "service: [fraud]"), "service must be a non-empty text", id="service-not-text"),
        pytest.param(
            ("outcomes: [approve, review, decline]", "outcomes: []"),
            "outcomes must be a non-empty list",
            id="outcomes-empty",
        ),
        pytest.param(
            ("outcomes: [approve, review, decline]", "outcomes: [approve, review, review, decline]"),
            "outcomes are listed twice: review",
            id="outcomes-duplicated",
        ),
        pytest.param(
            ("default: approve", "default: allow"),
            "default 'allow' is not one of the outcomes",
            id="default-not-an-outcome",
        ),
        pytest.param(
            ("explain_from_score: 0.2", "explain_from_score: high"),
            "explain_from_score must be a number",
            id="explain-not-a-number",
        ),
        pytest.param(
            ("{name: medium, min_score: 0.3}", "{name: medium, min_score: 0.8}"),
            "bands must be listed from the highest min_score down",
            id="bands-not-descending",
        ),
        pytest.param(
            ("{name: low, min_score: 0.0}", "{name: low, min_score: 0.1}"),
            "the last band must start at min_score 0",
            id="bands-not-covering-zero",
        ),
        pytest.param(
            ("{name: medium, min_score: 0.3}", "{name: high, min_score: 0.3}"),
            "band high: the name is used twice",
            id="band-name-twice",
        ),
        pytest.param(
            ("{name: low, min_score: 0.0}", "{name: low, min_score: 0.0, max_score: 0.3}"),
            "band low: unknown key 'max_score'",
            id="band-unknown-key",
        ),
        pytest.param(("bands:", "bands: []\nold_bands:"), "bands must be a non-empty list", id="bands-empty"),
        pytest.param(("rules:", "rules: {}\nold_rules:"), "rules must be a list", id="rules-not-a-list"),
    ],
)
def test_invalid_ruleset_documents_fail_at_load(change: tuple[str, str], expected: str) -> None:
    """Each kind of document-level mistake is refused at load with a message saying what is wrong."""
    text = BASE.replace(*change)
    assert text != BASE
    problems = problems_of(text)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            ('when: "event.amount > 1000"', 'whenn: "event.amount > 1000"'),
            "rule big_amount: unknown key 'whenn' (did you mean 'when'?)",
            id="unknown-rule-key",
        ),
        pytest.param(
            ('    when: "event.amount > 1000"\n', ""), "rule big_amount: missing key 'when'", id="missing-rule-key"
        ),
        pytest.param(
            ("id: big_amount", "id: very_high_score"),
            "rule very_high_score: the id is used twice (rules #1 and #2)",
            id="duplicate-id",
        ),
        pytest.param(
            ("id: big_amount", "id: Big-Amount"), "rule Big-Amount: id must match [a-z0-9_]+", id="bad-id-pattern"
        ),
        pytest.param(
            ("then: decline", "then: block"),
            "rule very_high_score: then 'block' is not one of the outcomes",
            id="then-not-an-outcome",
        ),
        pytest.param(
            ('when: "score >= 0.9"', 'when: "score >= "'),
            "rule very_high_score: `score >= ` is not a valid expression: parserError: "
            "Unexpected end of unary expression at (8, 8)",
            id="when-syntax-error",
        ),
        pytest.param(
            ('when: "score >= 0.9"', "when: 0.9"),
            "rule very_high_score: when must be a non-empty ZEN",
            id="when-not-text",
        ),
        pytest.param(
            ("description: The model is confident", "description: [a, b]"),
            "rule very_high_score: description must be text",
            id="description-not-text",
        ),
        pytest.param(
            ('reason: "fraud score {score} is at or above 0.9"', 'reason: "score {score:.2f}"'),
            "rule very_high_score: reason template: {score:.2f}: format specs",
            id="reason-format-spec",
        ),
        pytest.param(
            ("- id: big_amount", "- just text\n  - id: big_amount"),
            "rule #2 must be a mapping",
            id="rule-not-a-mapping",
        ),
    ],
)
def test_invalid_rules_fail_at_load_naming_the_rule(change: tuple[str, str], expected: str) -> None:
    """Each kind of rule mistake is refused at load with a message that names the rule and the problem."""
    text = BASE.replace(*change)
    assert text != BASE
    problems = problems_of(text)
    assert any(p.startswith(expected) for p in problems), problems


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        pytest.param(
            "len(score) > 1",
            r"rule big_amount: `len\(score\) > 1` fails on the sample context "
            r"\(Opcode CallFunction: Function `len` failed: Cannot determine len of type number\)",
            id="error",
        ),
        pytest.param(
            "event.amount > 1 ? null : false",
            r"rule big_amount: `event.amount > 1 \? null : false` gives null instead of true or false",
            id="null",
        ),
        pytest.param("score * 2", r"rule big_amount: `score \* 2` gives 0.2 instead of true or false", id="number"),
    ],
)
def test_a_condition_that_is_not_boolean_on_the_sample_context_is_refused(when: str, expected: str) -> None:
    """A condition naming only real fields that still fails or gives no boolean on the service's sample
    context (a type mismatch, a wrong result) is refused, naming the rule and the expression; without a
    sample only the syntax can be checked, so the same text loads."""
    text = BASE.replace('when: "event.amount > 1000"', f'when: "{when}"')
    Ruleset.from_yaml(text)
    problems = problems_of(text)
    assert len(problems) == 1 and re.search(expected, problems[0]), problems
    assert "Stack backtrace" not in problems[0]


def test_a_reason_naming_a_field_the_context_lacks_is_refused_with_a_suggestion() -> None:
    """A reason placeholder the sample context does not have is a load error, with the closest field."""
    text = BASE.replace("{features.card_nb_tx_1d}", "{features.card_nb_tx_1}")
    assert problems_of(text) == [
        "rule big_amount: reason names {features.card_nb_tx_1}, which is not in the context "
        "(did you mean {features.card_nb_tx_1d}?)"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", "the ruleset is empty"), ("- a list\n", "the ruleset must be a YAML mapping")],
)
def test_a_document_of_the_wrong_shape_is_refused(text: str, expected: str) -> None:
    """An empty file or a top-level list is one clear problem, not a crash."""
    assert problems_of(text)[0].startswith(expected)


def test_all_problems_are_reported_at_once() -> None:
    """Independent mistakes across the document, the rules and the sample check are all named in one error,
    so an analyst fixes them in one go."""
    text = (
        BASE.replace("then: decline", "then: block")
        .replace('when: "event.amount > 1000"', 'when: "event.amout > 1000"')
        .replace("default: approve", "default: allow")
    )
    problems = problems_of(text)
    assert len(problems) == 3
    assert problems[0].startswith("default 'allow'")
    assert problems[1].startswith("rule very_high_score: then 'block'")
    assert problems[2] == (
        "rule big_amount: `event.amout > 1000` names event.amout, which the context does not have "
        "(did you mean event.amount?)"
    )


def test_load_names_the_file_and_refuses_an_unreadable_one(tmp_path: Path) -> None:
    """`load` reads a file and names it in every problem; a missing file is an InvalidRulesetError, not an OSError."""
    path = tmp_path / "rules.yaml"
    path.write_text(BASE, encoding="utf-8")
    assert Ruleset.load(path, sample_context=SAMPLE) == Ruleset.from_yaml(BASE)
    path.write_text(BASE.replace("then: decline", "then: block"), encoding="utf-8")
    with pytest.raises(InvalidRulesetError, match=rf"^{re.escape(str(path))}: rule very_high_score: then 'block'"):
        Ruleset.load(path)
    with pytest.raises(InvalidRulesetError, match="cannot be read"):
        Ruleset.load(tmp_path / "absent.yaml")


def test_the_documented_example_is_a_valid_ruleset() -> None:
    """The YAML example in shared/rules/README.md loads against a sample context and decides as described."""
    readme = (Path(__file__).parents[2] / "shared" / "rules" / "README.md").read_text(encoding="utf-8")
    example = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    ruleset = Ruleset.from_yaml(example, source="README.md", sample_context=SAMPLE)
    busy = context(
        score=0.5, band="medium", event={"amount": 800.0}, features={"card_nb_tx_1d": 9.0}, reasons=["amount"]
    )
    verdict = ruleset.evaluate(busy)
    assert verdict.outcome == "review"
    assert [h.reason for h in verdict.hits] == ["9 payments today, this one for 800", "explained_by_amount"]


def test_the_fraud_ruleset_shipped_with_the_service_loads() -> None:
    """services/fraud_detection/rules.yaml is valid against the real context shape."""
    from services.registry import service
    from shared.core.rulesets import packaged_ruleset

    ruleset = packaged_ruleset(service("fraud"))
    assert ruleset.service == "fraud" and len(ruleset.rules) >= 3


# ------------------------------------------------------------------ identity and immutability


def test_digest_follows_the_content_not_the_layout() -> None:
    """Same content, same digest, even with comments, flow style and 0 for 0.0; a changed threshold or a
    changed reason gives another digest."""
    relaid = "# analysts' notes\n" + BASE.replace("{name: low, min_score: 0.0}", "{min_score: 0, name: low}").replace(
        "outcomes: [approve, review, decline]", "outcomes:\n  - approve\n  - review\n  - decline"
    )
    digest = Ruleset.from_yaml(BASE).digest
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest)
    assert Ruleset.from_yaml(relaid).digest == digest
    assert Ruleset.from_yaml(BASE.replace('0.9"', '0.8"')).digest != digest
    assert Ruleset.from_yaml(BASE.replace("is at or above", "reaches")).digest != digest


def test_a_ruleset_is_immutable() -> None:
    """Nothing in a loaded ruleset can be changed in place: a change is a new load with a new digest."""
    ruleset = Ruleset.from_yaml(BASE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ruleset.default = "decline"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ruleset.rules[0].then = "approve"  # type: ignore[misc]
    assert isinstance(ruleset.rules, tuple) and isinstance(ruleset.outcomes, tuple) and isinstance(ruleset.bands, tuple)


def test_a_ruleset_survives_pickling_and_copying() -> None:
    """Compiled ZEN expressions cannot be pickled; a ruleset pickles by content and recompiles, so it can
    go to worker processes and still decide the same."""
    ruleset = Ruleset.from_yaml(BASE)
    for clone in (pickle.loads(pickle.dumps(ruleset)), copy.deepcopy(ruleset)):
        assert clone == ruleset and clone.digest == ruleset.digest
        assert clone.evaluate(context(score=0.95)) == ruleset.evaluate(context(score=0.95))
