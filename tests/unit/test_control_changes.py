"""What is in force changes only through an approved proposal: training registers a candidate (the first model
of a service excepted), a rollback is a proposal that only goes back, and the packaged ruleset is version 1
of the published history."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.registry import service
from shared.control.store import ControlError, ControlStore
from shared.core.rulesets import packaged_ruleset
from shared.modeling.registry import ModelRegistry

FRAUD = service("fraud")


class Artifact:
    """A model artifact that saves itself (a file), so the registry is exercised without training."""

    def save(self, directory: Path) -> None:
        (directory / "weights.json").write_text("{}")


@pytest.fixture
def store(tmp_path: Path) -> ControlStore:
    packaged = packaged_ruleset(FRAUD)
    control = ControlStore(tmp_path / "control", ModelRegistry(tmp_path / "models"))
    control.record_packaged("fraud", packaged.version, FRAUD.ruleset_path.read_text())
    return control


def _publish(store: ControlStore, version: str, maker: str = "ana", checker: str = "bo") -> None:
    text = FRAUD.ruleset_path.read_text().replace('version: "2026.11.1"', f'version: "{version}"')
    from shared.core.rulesets import parse_ruleset

    proposal = store.propose_ruleset("fraud", parse_ruleset(FRAUD, text, "test"), text, maker)
    store.approve("fraud", proposal.id, checker)


def test_only_the_first_registered_model_becomes_the_champion(tmp_path: Path) -> None:
    """The first version of a service is its champion; a second one is a candidate and the alias stays."""
    registry = ModelRegistry(tmp_path / "models")
    first = registry.register("fraud", Artifact(), {"data_fingerprint": "a" * 8})
    second = registry.register("fraud", Artifact(), {"data_fingerprint": "b" * 8})
    assert registry.versions("fraud") == sorted([first, second])
    assert registry.champion("fraud") == first


def test_the_packaged_ruleset_is_version_1_of_the_history(store: ControlStore) -> None:
    """Before any approval the packaged ruleset is published, in force and first in the history."""
    assert store.ruleset_versions("fraud") == ["2026.11.1"]
    assert store.current_ruleset("fraud") == "2026.11.1" and store.active_ruleset("fraud") is None
    assert store.history("fraud", "ruleset") == ["2026.11.1"]
    assert store.ruleset_path("fraud", "2026.11.1").read_text() == FRAUD.ruleset_path.read_text()


def test_a_rollback_is_a_proposal_that_needs_a_second_identity(store: ControlStore) -> None:
    """Proposing a rollback changes nothing; its proposer cannot approve it; another identity puts it in force."""
    _publish(store, "2026.12.0")
    proposal = store.propose_rollback("fraud", "ruleset", "2026.11.1", "bo")
    assert store.current_ruleset("fraud") == "2026.12.0"
    with pytest.raises(Exception, match="different identity"):
        store.approve("fraud", proposal.id, "bo")
    change = store.approve("fraud", proposal.id, "ana")
    assert (change.version, change.previous) == ("2026.11.1", "2026.12.0")
    assert store.current_ruleset("fraud") == "2026.11.1"
    assert [e["action"] for e in store.audit("fraud")][-2:] == ["approval_refused", "approved"]
    assert store.verify_audit("fraud").ok


def test_a_rollback_only_goes_back(store: ControlStore) -> None:
    """Targets are the versions in force before the current one first came in: never a newer one, never one
    only published, never the current one."""
    _publish(store, "2026.12.0")
    _publish(store, "2026.12.1")
    text = FRAUD.ruleset_path.read_text().replace('version: "2026.11.1"', 'version: "2026.12.9"')
    from shared.core.rulesets import parse_ruleset

    store.propose_ruleset("fraud", parse_ruleset(FRAUD, text, "test"), text, "ana")  # published, never approved
    assert store.rollback_targets("fraud", "ruleset") == ["2026.11.1", "2026.12.0"]
    for refused in ("2026.12.1", "2026.12.9", "2099.1.1"):
        with pytest.raises(ControlError, match="goes back"):
            store.propose_rollback("fraud", "ruleset", refused, "bo")
    store.approve("fraud", store.propose_rollback("fraud", "ruleset", "2026.12.0", "bo").id, "ana")
    assert store.rollback_targets("fraud", "ruleset") == ["2026.11.1"]
    with pytest.raises(ControlError, match="goes back"):  # 2026.12.1 is newer than what is now in force
        store.propose_rollback("fraud", "ruleset", "2026.12.1", "bo")


def test_a_rollback_proposed_then_overtaken_is_checked_again_on_approval(store: ControlStore) -> None:
    """A rollback valid when proposed but no longer a step back when approved is refused then."""
    _publish(store, "2026.12.0")
    stale = store.propose_rollback("fraud", "ruleset", "2026.11.1", "bo")
    store.approve("fraud", store.propose_rollback("fraud", "ruleset", "2026.11.1", "bo").id, "ana")
    with pytest.raises(ControlError, match="goes back"):
        store.approve("fraud", stale.id, "ana")


def test_model_promotion_challenger_and_rollback_go_through_approval(tmp_path: Path, store: ControlStore) -> None:
    """A candidate becomes champion, a challenger is set and a model rollback happens only once approved."""
    registry = store.models
    first = registry.register("fraud", Artifact(), {"data_fingerprint": "a" * 8})
    store.record_first_champion("fraud", first, "cli:ops")
    second = registry.register("fraud", Artifact(), {"data_fingerprint": "b" * 8})
    promotion = store.propose_promotion("fraud", second, "ana")
    challenger = store.propose_challenger("fraud", first, "ana")
    assert registry.champion("fraud") == first and store.challenger("fraud") is None
    store.approve("fraud", promotion.id, "bo")
    store.approve("fraud", challenger.id, "bo")
    assert registry.champion("fraud") == second and store.challenger("fraud") == first
    assert store.history("fraud", "model") == [first, second]
    rollback = store.propose_rollback("fraud", "model", first, "bo")
    assert registry.champion("fraud") == second
    store.approve("fraud", rollback.id, "ana")
    assert registry.champion("fraud") == first
    clear = store.propose_challenger("fraud", None, "ana")
    store.approve("fraud", clear.id, "bo")
    assert store.challenger("fraud") is None
    assert store.verify_audit("fraud").ok
