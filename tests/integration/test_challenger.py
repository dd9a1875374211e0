"""A challenger model scored in shadow: recorded in every decision, never acted on, and compared with the
champion on the recorded decisions."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest

from services.disease_risk.samples import sample_assessments
from services.registry import runtime
from shared.control.store import ControlStore
from shared.doors.control import compare
from shared.events.envelope import make_event
from shared.modeling.registry import ModelRegistry
from shared.settings import Settings

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"


@pytest.fixture
def two_versions(disease_settings: Settings, disease_model_dir: Path, tmp_path: Path) -> Settings:
    from services.disease_risk.train import train

    model_dir = tmp_path / "models"
    shutil.copytree(disease_model_dir, model_dir)
    registry = ModelRegistry(model_dir)
    champion = registry.champion("disease")
    train(model_dir)
    assert registry.champion("disease") == champion  # training registers a candidate, the champion stays
    return replace(disease_settings, model_dir=model_dir, control_dir=tmp_path / "control")


def test_the_challenger_is_scored_in_shadow_and_compared(two_versions: Settings, tmp_path: Path) -> None:
    """A challenger proposed and approved through the control store is scored in shadow in every decision,
    never acted on, and compared by the CLI; clearing it is a proposal too."""
    settings = two_versions
    registry = ModelRegistry(settings.model_dir)
    champion, challenger = registry.versions("disease")
    holder = runtime("disease", settings).holder
    assert holder.core.challenger is None
    store = ControlStore(settings.control_dir, registry)
    proposal = store.propose_challenger("disease", challenger, "ana")
    assert not holder.refresh()  # proposed is not in force
    store.approve("disease", proposal.id, "bo")
    assert holder.refresh() and holder.core.challenger.version == challenger
    assert holder.core.model.version == champion

    core = holder.core
    decisions = core.dump(core.score_offline([core.validate(a) for a in sample_assessments(150, seed=4)]))
    schema = json.loads((CONTRACTS / "events/decision.v1.json").read_text())
    for decision in decisions:
        assert decision["model"]["version"] == champion
        assert decision["shadow"]["model"]["version"] == challenger
        assert decision["shadow"]["decision"] in {"routine", "follow_up", "urgent"}
        event = make_event("com.riskscoring.disease.decision.v1", source="/tests", data=decision)
        jsonschema.validate(json.loads(json.dumps(event)), schema)
    recorded = tmp_path / "decisions.jsonl"
    recorded.write_text("".join(json.dumps(d) + "\n" for d in decisions))
    report = _compare_with_the_cli(settings, recorded)
    # Both versions were fitted to the same data by the same deterministic procedure: they agree.
    assert report["decisions"] == 150 and report["agreement"] == 1.0 and report["score_correlation"] == 1.0

    store.approve("disease", store.propose_challenger("disease", None, "ana").id, "bo")
    assert holder.refresh() and holder.core.challenger is None
    assert holder.core.score_offline([core.validate(sample_assessments(1)[0])])[0].shadow is None
    assert [e["action"] for e in store.audit("disease")] == ["proposed", "approved", "proposed", "approved"]


def test_compare_counts_changes_and_scores_each_side_against_labels(tmp_path: Path) -> None:
    """`compare` counts decision changes and each side's precision and recall against labels."""

    def record(event_id: str, score: float, decision: str, shadow_score: float, shadow_decision: str) -> dict:
        return {
            "event_id": event_id,
            "score": score,
            "decision": decision,
            "model": {"name": "m", "version": "1"},
            "shadow": {"model": {"name": "m", "version": "2"}, "score": shadow_score, "decision": shadow_decision},
        }

    decisions = [
        record("a", 0.9, "urgent", 0.8, "urgent"),
        record("b", 0.1, "routine", 0.6, "follow_up"),
        record("c", 0.2, "routine", 0.1, "routine"),
        record("d", 0.7, "follow_up", 0.3, "routine"),
    ]
    path, labels = tmp_path / "decisions.jsonl", tmp_path / "labels.csv"
    path.write_text("".join(json.dumps(d) + "\n" for d in decisions))
    labels.write_text("event_id,label\na,1\nb,1\nc,0\nd,0\n")
    report = compare(path, labels, "label", "routine")
    assert report["agreement"] == 0.5
    assert report["decision_changes"] == {"routine -> follow_up": 1, "follow_up -> routine": 1}
    assert report["champion_labelled"] == {"events": 4, "precision": 0.5, "recall": 0.5}
    assert report["challenger_labelled"] == {"events": 4, "precision": 1.0, "recall": 1.0}


def _compare_with_the_cli(settings: Settings, recorded: Path) -> dict:
    import subprocess
    import sys

    from tests.fixtures.services import service_environment

    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "models", "compare", "disease", "--decisions", str(recorded)],
        env=service_environment(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)
