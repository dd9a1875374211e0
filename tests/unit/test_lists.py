"""Allow / deny / watch lists: values enter only through a proposal another identity approves, each approval
makes a new version on record and in the audit chain, personal ids enter pseudonymised, and rules see a
list as one boolean per event (`lists.deny_cards`), unknown list names refused at load."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

from services.registry import service
from shared.control.lists import MAX_VALUE_LENGTH, entered_values, values_digest
from shared.control.store import ControlError, ControlStore
from shared.core.rulesets import parse_ruleset, service_lists
from shared.errors import ForbiddenError, InvalidInputError, InvalidRulesetError
from shared.modeling.registry import ModelRegistry
from shared.privacy import pseudonymise
from shared.rules.lists import ListedValues, ListsInForce, ListSpec

FRAUD, DISEASE = service("fraud"), service("disease")
KEY = b"unit-test-pseudonym-key"
DENY_TERMINALS = ListSpec("deny_terminals", "deny", "terminals", "terminal_id")
WATCH_PATIENTS = next(spec for spec in service_lists(DISEASE) if spec.name == "watch_patients")
LIST_RULE = """
  - id: denied_terminal
    description: The terminal is on the deny list
    when: "lists.deny_terminals"
    then: decline
    reason: "terminal {event.terminal_id} is on the deny list"
"""


@pytest.fixture
def store(tmp_path: Path) -> ControlStore:
    return ControlStore(tmp_path / "control", ModelRegistry(tmp_path / "models"))


def test_each_service_has_one_list_of_each_kind_per_subject() -> None:
    """Fraud lists cards, customers and terminals; claims policies; disease patients (pseudonymised)."""
    names = {name: [spec.name for spec in service_lists(service(name))] for name in ("fraud", "claims", "disease")}
    assert set(names["fraud"]) == {
        f"{k}_{s}" for k in ("allow", "deny", "watch") for s in ("cards", "customers", "terminals")
    }
    assert names["claims"] == ["allow_policies", "deny_policies", "watch_policies"]
    assert names["disease"] == ["allow_patients", "deny_patients", "watch_patients"]
    assert WATCH_PATIENTS.field == "patient_id" and WATCH_PATIENTS.personal


def test_a_list_change_takes_effect_only_when_another_identity_approves(store: ControlStore) -> None:
    """The maker cannot approve; the checker's approval makes version 1, then a removal version 2; the audit
    chain names who, the list, the count and digest of the values, and stays whole."""
    proposal = store.propose_list_change("fraud", DENY_TERMINALS, "add", ["T1", "T2"], "ana")
    assert (proposal.kind, proposal.action, proposal.version, proposal.previous) == (
        "list",
        "add",
        "deny_terminals",
        "0",
    )
    assert store.lists.listed("fraud", "deny_terminals") == (0, [])
    assert [p.id for p in store.proposals("fraud")] == [proposal.id]  # the values kept beside it are no proposal
    with pytest.raises(ForbiddenError):
        store.approve("fraud", proposal.id, "ana")
    assert store.lists.versions("fraud") == {}
    change = store.approve("fraud", proposal.id, "bo")
    assert (change.kind, change.version, change.previous, change.list_version) == ("list", "deny_terminals", "0", 1)
    assert store.lists.listed("fraud", "deny_terminals") == (1, ["T1", "T2"])

    removal = store.propose_list_change("fraud", DENY_TERMINALS, "remove", ["T1", "T9"], "bo")
    store.approve("fraud", removal.id, "ana")
    assert store.lists.listed("fraud", "deny_terminals") == (2, ["T2"])
    assert store.lists.versions("fraud") == {"deny_terminals": 2}
    history = store.lists.changes("fraud", "deny_terminals")
    assert [(c["version"], c["action"], c["values"], c["proposed_by"], c["approved_by"]) for c in history] == [
        (1, "add", ["T1", "T2"], "ana", "bo"),
        (2, "remove", ["T1"], "bo", "ana"),  # T9 was never on it
    ]
    entries = store.audit("fraud")
    assert [e["action"] for e in entries] == ["proposed", "approval_refused", "approved", "proposed", "approved"]
    approved = entries[2]
    assert approved["kind"] == "list" and approved["version"] == "deny_terminals" and approved["list_version"] == 1
    assert approved["values"] == 2 and approved["values_digest"] == values_digest(["T2", "T1"])
    assert store.verify_audit("fraud").ok


def test_changes_that_would_change_nothing_are_refused(store: ControlStore) -> None:
    """Adding values all on the list, removing values none on it, and approving a change another approval
    has since made moot are each refused, naming why."""
    first = store.propose_list_change("fraud", DENY_TERMINALS, "add", ["T1"], "ana")
    twin = store.propose_list_change("fraud", DENY_TERMINALS, "add", ["T1"], "ana")
    store.approve("fraud", first.id, "bo")
    with pytest.raises(ControlError, match="already on deny_terminals"):
        store.propose_list_change("fraud", DENY_TERMINALS, "add", ["T1"], "ana")
    with pytest.raises(ControlError, match="not on deny_terminals"):
        store.propose_list_change("fraud", DENY_TERMINALS, "remove", ["T7"], "ana")
    with pytest.raises(ControlError, match="would change nothing now"):
        store.approve("fraud", twin.id, "bo")
    store.refuse("fraud", twin.id, "bo", "already listed")
    assert store.proposal("fraud", twin.id).status == "refused"
    assert store.lists.listed("fraud", "deny_terminals") == (1, ["T1"])


def test_personal_ids_enter_the_list_pseudonymised(store: ControlStore, tmp_path: Path) -> None:
    """A patient id is held as the contract's pseudonym of it, under the service's key; no control file
    holds the raw id; a value that already is a pseudonym (as the list shows it) is kept as it is."""
    raw = "PATIENT-RAW-4711"
    values = entered_values(WATCH_PATIENTS, [raw, pseudonymise("P-2", KEY), raw], KEY)
    assert values == [pseudonymise(raw, KEY), pseudonymise("P-2", KEY)]
    proposal = store.propose_list_change("disease", WATCH_PATIENTS, "add", values, "ana")
    store.approve("disease", proposal.id, "bo")
    assert store.lists.listed("disease", "watch_patients")[1] == sorted(values)
    written = [p.read_text() for p in (tmp_path / "control").rglob("*") if p.is_file()]
    assert written and not any(raw in text for text in written)
    assert entered_values(DENY_TERMINALS, ["T-1"], KEY) == ["T-1"]  # not personal: as given


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ([], "values"),
        ([123], "values.0"),
        (["ok", ""], "values.1"),
        (["x" * (MAX_VALUE_LENGTH + 1)], "values.0"),
        (["a\nb"], "values.0"),
    ],
)
def test_values_that_are_not_identifiers_are_refused_by_position(values: list[Any], field: str) -> None:
    """No values, a non-text value, an empty one, one too long or one with a line break is refused, naming its
    position."""
    with pytest.raises(InvalidInputError) as refused:
        entered_values(DENY_TERMINALS, values, KEY)
    assert field in refused.value.fields


def test_a_listed_value_is_a_rule_hit_with_its_reason() -> None:
    """The ruleset keeps its version and digest over any lists; an event whose terminal is listed hits the
    rule with its reason, one not listed does not; the lists survive pickling (batch worker processes)."""
    ruleset = parse_ruleset(FRAUD, FRAUD.ruleset_path.read_text() + LIST_RULE, "test")
    listed = ruleset.with_lists(ListsInForce.of([ListedValues("deny_terminals", "terminal_id", 3, frozenset({"T1"}))]))
    assert (listed.version, listed.digest) == (ruleset.version, ruleset.digest)
    assert listed.lists_named() == {"deny_cards", "deny_terminals"}  # the packaged example rule reads deny_cards

    def verdict_for(terminal: str, rules: Any) -> Any:
        features = dict.fromkeys(FRAUD.feature_set.features, 0.0)
        return rules.evaluate(
            {"event": {"terminal_id": terminal, "amount": 5.0}, "features": features, "score": 0.01, "band": "low"}
        )

    hit = verdict_for("T1", listed)
    assert hit.outcome == "decline"
    assert [(h.rule_id, h.reason) for h in hit.hits] == [("denied_terminal", "terminal T1 is on the deny list")]
    assert verdict_for("T2", listed).hits == () and verdict_for("T1", ruleset).hits == ()
    copied = pickle.loads(pickle.dumps(listed))
    assert copied.lists.versions == {"deny_terminals": 3} and verdict_for("T1", copied).outcome == "decline"


def test_unknown_list_names_are_refused_at_load_with_the_closest_name() -> None:
    """A rule naming a list the service does not have is refused at load: a misspelt name with the closest
    one there is, and a list of a kind the service has none of (claims has no card lists)."""
    text = FRAUD.ruleset_path.read_text() + LIST_RULE.replace("lists.deny_terminals", "lists.deny_terminal")
    with pytest.raises(InvalidRulesetError) as refused:
        parse_ruleset(FRAUD, text, "test")
    assert any(
        "lists.deny_terminal," in p and "did you mean lists.deny_terminals?" in p for p in refused.value.problems
    )
    with pytest.raises(InvalidRulesetError):  # claims has no card lists
        parse_ruleset(
            service("claims"), service("claims").ruleset_path.read_text() + LIST_RULE.replace("terminals", "cards"), "t"
        )


def test_lists_unchanged_since_the_last_load_are_reused(store: ControlStore) -> None:
    """An instance's periodic check reloads only the lists whose version moved (a 100,000-value list is
    megabytes of JSON), and every list of the service is there, empty until changed."""
    specs = service_lists(FRAUD)
    store.approve("fraud", store.propose_list_change("fraud", DENY_TERMINALS, "add", ["T1"], "ana").id, "bo")
    before = store.lists.in_force("fraud", specs)
    assert set(before.lists) == {spec.name for spec in specs} and before.versions["deny_terminals"] == 1
    store.approve("fraud", store.propose_list_change("fraud", specs[0], "add", ["C1"], "ana").id, "bo")
    after = store.lists.in_force("fraud", specs, before)
    assert after.lists["deny_terminals"] is before.lists["deny_terminals"]
    assert after.lists[specs[0].name].values == {"C1"} and after.versions[specs[0].name] == 1
