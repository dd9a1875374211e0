"""Rules that cannot fail silently: every field a condition or a reason names must exist in the context,
wherever it stands in the expression (refused at load with the rule, the field and the closest real name),
and a rule that cannot be evaluated at run time is counted, logged and visible in the decision."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from marshmallow import Schema, fields
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from services.registry import service, service_names
from shared.core.rulesets import context_fields, packaged_ruleset, parse_ruleset
from shared.core.scoring import ScoringCore
from shared.core.service import Event, History, Prediction, Service
from shared.errors import InvalidRulesetError
from shared.features.featureset import FeatureBatch, FeatureSet
from shared.modeling.explain import Contribution
from shared.modeling.registry import RegisteredModel
from shared.rules import Ruleset, engine
from shared.rules.context import ANY, VALUE, ContextFields, unknown_field
from shared.rules.references import references
from shared.state import StateStore

HEADER = textwrap.dedent("""
    service: fraud
    version: "2026.11.1"
    outcomes: [approve, review, decline]
    default: approve
    bands:
      - {name: high, min_score: 0.7}
      - {name: low, min_score: 0.0}
    rules:
""")
SAMPLE: dict[str, Any] = {
    "event": {"amount": 10.0, "mcc": "5411"},
    "features": {"card_nb_tx_1d": 1.0, "is_night": 0.0},
    "measures": {},
    "score": 0.1,
    "band": "low",
    "reasons": [],
}


def one_rule(when: str, reason: str = "flagged") -> str:
    return HEADER + f'  - id: busy_card\n    when: "{when}"\n    then: review\n    reason: "{reason}"\n'


def problems_of(text: str, **kwargs: Any) -> list[str]:
    with pytest.raises(InvalidRulesetError) as error:
        Ruleset.from_yaml(text, source="rules.yaml", **{"sample_context": SAMPLE, **kwargs})
    return error.value.problems


# ------------------------------------------------------------------ refused at load


@pytest.mark.parametrize(
    "when",
    [
        pytest.param("features.card_nb_tx_1d >= 8 and features.card_nb_tx_1dd > 3", id="behind-and"),
        pytest.param("score > 0.99 or features.card_nb_tx_1dd > 3", id="behind-or"),
        pytest.param("len(features.card_nb_tx_1dd) > 0", id="in-a-function-call"),
        pytest.param("some([1, 2], # == features.card_nb_tx_1dd)", id="in-a-closure"),
        pytest.param("score > 0.5 ? features.card_nb_tx_1dd > 3 : false", id="in-a-then-branch"),
        pytest.param("(features.card_nb_tx_1dd ?? 0) > 3", id="with-a-default"),
        pytest.param("features.card_nb_tx_1dd == 3", id="compared-with-equals"),
        pytest.param("`${features.card_nb_tx_1dd}` == '3'", id="in-a-template-string"),
        pytest.param("$root.features.card_nb_tx_1dd > 3", id="from-the-root"),
    ],
)
def test_a_misspelt_field_anywhere_in_a_condition_is_refused_with_a_suggestion(when: str) -> None:
    """The sample check alone let these load (the misspelt part is never evaluated on the sample, or gives
    a boolean on null); the field check refuses each, naming the rule, the field and the real name."""
    assert problems_of(one_rule(when)) == [
        f"rule busy_card: `{when}` names features.card_nb_tx_1dd, which the context does not have "
        "(did you mean features.card_nb_tx_1d?)"
    ]


def test_a_misspelt_field_in_a_reason_template_is_refused_with_a_suggestion() -> None:
    """A placeholder naming a field the context cannot have is refused like a condition's."""
    text = one_rule("score > 0.5", reason="{features.card_nb_tx_1dd} payments on the card")
    assert problems_of(text) == [
        "rule busy_card: reason names {features.card_nb_tx_1dd}, which is not in the context "
        "(did you mean {features.card_nb_tx_1d}?)"
    ]


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        pytest.param(
            "featurs.is_night == 1",
            "names featurs.is_night, which the context does not have (did you mean features.is_night?)",
            id="misspelt-branch",
        ),
        pytest.param(
            "event.card_nb_tx_1d > 3",
            "names event.card_nb_tx_1d, which the context does not have (did you mean features.card_nb_tx_1d?)",
            id="wrong-branch",
        ),
        pytest.param(
            "event.amount.value > 3",
            "names event.amount.value, which the context does not have (event.amount has no fields)",
            id="under-a-value",
        ),
        pytest.param(
            "history.claims == null",
            "names history.claims, which the context does not have "
            "(the context has: band, event, features, measures, reasons, score)",
            id="no-such-branch",
        ),
        pytest.param(
            "measures.relative_risk > 2",
            "names measures.relative_risk, which the context does not have (measures has no fields)",
            id="empty-record",
        ),
    ],
)
def test_the_suggestion_is_the_closest_real_name_or_what_is_there(when: str, expected: str) -> None:
    """A sibling when one is close, else the closest path anywhere, else what that level holds."""
    assert problems_of(one_rule(when)) == [f"rule busy_card: `{when}` {expected}"]


def test_every_unknown_field_is_named_once_and_all_rules_are_checked() -> None:
    """Two misspelt fields in one condition, one repeated, and another rule's reason: all named, none twice."""
    text = (
        one_rule("event.amout > 1 and event.amout < 9 and features.is_nigth == 1")
        + '  - id: other\n    when: "score > 0.5"\n    then: decline\n    reason: "{scor}"\n'
    )
    assert problems_of(text) == [
        "rule busy_card: `event.amout > 1 and event.amout < 9 and features.is_nigth == 1` names event.amout, "
        "which the context does not have (did you mean event.amount?)",
        "rule busy_card: `event.amout > 1 and event.amout < 9 and features.is_nigth == 1` names "
        "features.is_nigth, which the context does not have (did you mean features.is_night?)",
        "rule other: reason names {scor}, which is not in the context (did you mean {score}?)",
    ]


@pytest.mark.parametrize(
    "when",
    [
        "contains(reasons, 'features.typo') and band != 'low'",  # text that looks like a field is text
        "some(reasons, # == 'is_night') or count(map(reasons as r, r), # == 'x') > 0",  # closure element, alias
        "{limit: 500, kind: 'x'}.limit < event.amount",  # object keys are not fields
        "d(event.mcc).year() > 2020 or startsWith(event.mcc, '54')",  # functions and methods
        "`${event.mcc}-x` == '5411-x' or $root.score > 0.9",  # template strings, the root
        "event.amount in [100..500] and features.is_night not in [1]",  # ranges, `not in`
        "(x = 2; x * score) > 1 or event['amount'] > 3",  # an assignment's own name, a quoted step
    ],
)
def test_valid_constructs_name_no_unknown_field(when: str) -> None:
    """Strings, closures and their aliases, object keys, function and method names, template strings,
    `$root`, ranges and assignments are read for what they are: none is taken for an unknown field."""
    shape = ContextFields.of_sample(SAMPLE)
    assert [r.dotted for r in references(when) if unknown_field(r.path, shape)] == []


@pytest.mark.parametrize(
    ("expression", "paths"),
    [
        ("features.n >= 8 and features.typo > 3", ["features.n", "features.typo"]),
        ("map(xs as x, x.a + y.b)", ["xs", "y.b"]),
        ("some(history.claims, #.amount > 1000)", ["history.claims"]),
        ("a['b'].c > 1 and a[0].q and a[k.j]", ["a.b.c", "a", "a", "k.j"]),
        ("`v ${a.b} w ${c}`", ["a.b", "c"]),
        ("d(event.timestamp).year() > 2020", ["event.timestamp"]),
        ("$root.features.x > $root.y", ["features.x", "y"]),
        ("{k: event.amount, 'z': 2}.k", ["event.amount"]),
        ("a = 1; a > 0 and b.c", ["b.c"]),
        ("len('a.b') + 1e3 + 1_000.5 > q", ["q"]),
    ],
)
def test_references_are_the_fields_an_expression_reads(expression: str, paths: list[str]) -> None:
    """The tokenizer finds each field path as ZEN reads it, and nothing else."""
    assert [r.dotted for r in references(expression)] == paths


def test_a_free_form_field_accepts_any_path_below_it() -> None:
    """Fields nobody declared (free-form detail) are accepted below their name, not beside it."""
    shape = ContextFields.record({"event": ContextFields.record({"extra": ANY, "amount": VALUE})})
    assert unknown_field(("event", "extra", "a", "b"), shape) is None
    assert unknown_field(("event", "extr"), shape) is not None


# ------------------------------------------------------------------ the services' real context


@pytest.mark.parametrize("name", service_names())
def test_each_packaged_ruleset_names_only_real_fields(name: str) -> None:
    """The three rulesets shipped with the services load against their service's full context fields."""
    ruleset = packaged_ruleset(service(name))
    assert ruleset.service == name and ruleset.rules


def test_the_context_fields_come_from_the_contract_the_features_and_the_core() -> None:
    """Every dumped event field (nested laboratory values included), every feature and measure, and the
    keys the scoring core sets; not the load-only personal name, which never reaches the rules."""
    paths = set(context_fields(service("disease")).paths())
    assert {"event.total_cholesterol.value", "event.diabetes", "features.hdl_cholesterol"} <= paths
    assert {"measures.chd_risk", "score", "band", "reasons"} <= paths
    assert "event.patient_name" not in paths


def test_publishing_or_loading_a_ruleset_with_an_unknown_field_is_refused() -> None:
    """The service's parse (what publish, approve and a worker's reload all call) refuses a misspelt
    field behind `and` that the sample check would have let through."""
    fraud = service("fraud")
    text = fraud.ruleset_path.read_text().replace("features.terminal_nb_tx_7d >= 3", "features.terminal_nb_tx_7dd >= 3")
    with pytest.raises(InvalidRulesetError) as error:
        parse_ruleset(fraud, text, source="published")
    assert error.value.problems == [
        "rule compromised_terminal: `features.terminal_risk_7d >= 0.5 and features.terminal_nb_tx_7dd >= 3` "
        "names features.terminal_nb_tx_7dd, which the context does not have (did you mean "
        "features.terminal_nb_tx_7d?)"
    ]


# ------------------------------------------------------------------ run-time errors reported


def _errors_counted(rule: str) -> float:
    return REGISTRY.get_sample_value("risk_rule_errors_total", {"service": "fraud", "rule": rule}) or 0.0


def test_a_rule_error_at_run_time_is_counted_and_logged_without_flooding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each failure is counted by rule; the first is logged with the rule, ZEN's message and the outcome
    it counts as, and repeats within a minute are counted but not logged again."""
    monkeypatch.setattr(engine, "_last_logged", {})
    ruleset = Ruleset.from_yaml(one_rule("event.amount > 500"), sample_context=SAMPLE)
    before = _errors_counted("busy_card")
    with capture_logs() as logs:
        for _ in range(3):
            ruleset.evaluate({**SAMPLE, "event": {}})
    assert _errors_counted("busy_card") - before == 3
    assert [(log["event"], log["rule"], log["error"], log["outcome"]) for log in logs] == [
        ("rule_not_evaluated", "busy_card", "Opcode Compare: Unsupported type", "review")
    ]
    assert logs[0]["log_level"] == "warning" and logs[0]["ruleset_version"] == "2026.11.1"


class _Schema(Schema):
    transaction_id = fields.String(required=True)
    customer_id = fields.String(required=True)
    timestamp = fields.AwareDateTime(required=True)
    amount = fields.Float()


class _TinyService(Service):
    """A service without a trained model: its score is fixed, its one feature the amount."""

    name = "fraud"
    event_schema = _Schema
    event_id_field = "transaction_id"
    entity_field = "customer_id"
    feature_set = FeatureSet("tiny", "1", ("amount",))
    ruleset_path = Path("unused.yaml")
    input_topics: ClassVar = ()
    output_topic: ClassVar = None

    def online_features(self, events: Sequence[Event], store: StateStore) -> FeatureBatch:
        raise NotImplementedError

    def offline_features(self, events: Sequence[Event], history: History) -> FeatureBatch:
        return FeatureBatch.build(self.feature_set, [[e.get("amount", math.nan)] for e in events])

    def predict(self, model: RegisteredModel, features: FeatureBatch) -> Prediction:
        return Prediction(np.full(len(features), 0.1))

    def explain(
        self, model: RegisteredModel, features: FeatureBatch, prediction: Prediction, positions: Sequence[int]
    ) -> list[list[Contribution]]:
        return [[] for _ in positions]

    def reason_text(self, feature: str, row: Mapping[str, Any]) -> str:
        return feature


def test_a_rule_error_is_visible_in_the_decision() -> None:
    """Through the scoring core: an event without the amount a rule compares is decided as that rule's
    outcome (never the default), the hit says it could not be evaluated, and the decision document lists
    the rule under `rule_errors`; an event the rule evaluates on has no such key."""
    tiny = _TinyService()
    ruleset = Ruleset.from_yaml(
        one_rule("features.amount > 500"), sample_context={**SAMPLE, "features": {"amount": 1.0}}
    )
    core = ScoringCore(tiny, RegisteredModel("fraud", "v1", Path("."), {}, None), ruleset)
    events = [
        core.validate({"transaction_id": "t1", "customer_id": "c1", "timestamp": "2026-11-02T10:00:00+00:00"}),
        core.validate(
            {"transaction_id": "t2", "customer_id": "c1", "timestamp": "2026-11-02T10:01:00+00:00", "amount": 9.0}
        ),
    ]
    failed, fine = core.dump(core.score_offline(events))
    assert failed["decision"] == "review"
    assert failed["rule_hits"] == [
        {
            "rule_id": "busy_card",
            "outcome": "review",
            "reason": "could not be evaluated (Opcode Compare: Unsupported type), so counts as review",
        }
    ]
    assert failed["rule_errors"] == [{"rule_id": "busy_card", "message": "Opcode Compare: Unsupported type"}]
    assert fine["decision"] == "approve" and fine["rule_hits"] == [] and "rule_errors" not in fine
