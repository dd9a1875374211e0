"""The backtest replays history with the ruleset in force and a candidate, and says what moves and why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.disease_risk.samples import sample_assessments
from services.registry import runtime, service
from shared.core.rulesets import parse_ruleset
from shared.doors.backtest import Costs, as_html, as_table, backtest
from shared.settings import Settings

DISEASE = service("disease")


def test_a_lower_bmi_threshold_moves_routine_to_follow_up_by_the_rules(disease_settings: Settings) -> None:
    """A candidate ruleset with a lower BMI threshold moves routine decisions to follow-up, attributed to the rules,
    with costs and a report."""
    current = runtime("disease", disease_settings).core
    text = DISEASE.ruleset_path.read_text().replace('version: "2026.11.1"', 'version: "2026.11.9"')
    candidate = current.replaced(
        ruleset=parse_ruleset(DISEASE, text.replace("event.bmi >= 35", "event.bmi >= 28"), "candidate")
    )
    rows = sample_assessments(400, seed=8)
    labels = [int(row["bmi"] >= 30) for row in rows]
    rows.append({"assessment_id": "bad"})
    result = backtest(current, candidate, rows, [*labels, None], costs=Costs(1.0, 10.0))

    assert result.events == 400 and result.rejected == 1
    moved = sum(result.moves.values())
    assert moved > 0 and set(result.moves) == {("routine", "follow_up")}
    assert result.moved_by == {"rules": moved}
    now, then = result.rule_hits["severe_obesity"]
    assert then > now and then - now >= moved
    assert result.candidate["follow_up"] - result.current["follow_up"] == moved
    assert result.labelled["candidate"]["recall"] > result.labelled["current"]["recall"]
    assert result.labelled["current"]["expected_cost"] == pytest.approx(_cost(current, rows[:400], labels), rel=1e-9)
    table = as_table(result, "in force", "candidate")
    assert f"{moved} events change decision: rules moved {moved}" in table
    page = as_html(result, "disease", "in force", "candidate")
    assert page.startswith("<!doctype html>") and "data:image/png;base64," in page


def _cost(core, rows, labels) -> float:  # type: ignore[no-untyped-def]
    decisions = core.score_offline([core.validate(row) for row in rows])
    flagged = [d.decision != "routine" for d in decisions]
    false_positives = sum(f and not y for f, y in zip(flagged, labels, strict=True))
    false_negatives = sum(y and not f for f, y in zip(flagged, labels, strict=True))
    return false_positives * 1.0 + false_negatives * 10.0


def test_the_cli_writes_the_report(disease_settings: Settings, tmp_path: Path) -> None:
    """`risk rules backtest` writes the HTML report and prints the table."""
    import json
    import subprocess
    import sys

    from tests.fixtures.services import service_environment

    data, ruleset, report = tmp_path / "history.jsonl", tmp_path / "candidate.yaml", tmp_path / "report.html"
    data.write_text("".join(json.dumps(row) + "\n" for row in sample_assessments(120, seed=2)))
    ruleset.write_text(
        DISEASE.ruleset_path.read_text()
        .replace('version: "2026.11.1"', 'version: "2026.11.8"')
        .replace("event.systolic_bp >= 140 and", "event.systolic_bp >= 150 and")
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "rules",
            "backtest",
            "disease",
            "--data",
            str(data),
            "--ruleset",
            str(ruleset),
            "--report",
            str(report),
        ],
        env=service_environment(disease_settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "120 events replayed" in done.stdout and "stage_2_hypertension" in done.stdout
    assert "rules 2026.11.8" in report.read_text()


def test_a_candidate_model_is_judged_with_the_rules_and_moves_are_attributed(
    disease_settings: Settings, disease_model_dir: Path, tmp_path: Path
) -> None:
    """A candidate whose CHD calibration says higher risk moves decisions by the model; paired with a
    candidate ruleset, the report tells which moves came from which."""
    import json
    import shutil
    from dataclasses import replace

    from services.disease_risk.train import train
    from shared.modeling.registry import MODEL_DIR, ModelRegistry

    model_dir = tmp_path / "models"
    shutil.copytree(disease_model_dir, model_dir)
    registry = ModelRegistry(model_dir)
    champion = registry.champion("disease")
    train(model_dir)
    candidate_version = registry.versions("disease")[-1]
    registry.set_champion("disease", champion)
    manifest = model_dir / "disease" / candidate_version / MODEL_DIR / "chd.json"
    chd = json.loads(manifest.read_text())
    chd["calibrator"]["intercept"] += 1.5
    manifest.write_text(json.dumps(chd))

    settings = replace(disease_settings, model_dir=model_dir, control_dir=tmp_path / "control")
    parts = runtime("disease", settings)
    current = parts.core
    candidate_model = parts.load_model(candidate_version)
    rows = sample_assessments(300, seed=6)
    by_model = backtest(current, current.replaced(model=candidate_model), rows, [None] * len(rows))
    assert sum(by_model.moves.values()) > 0 and set(by_model.moved_by) == {"model"}
    assert by_model.rule_hits["high_chd_model_risk"][1] > by_model.rule_hits["high_chd_model_risk"][0]

    text = DISEASE.ruleset_path.read_text().replace('version: "2026.11.1"', 'version: "2026.11.7"')
    rules = parse_ruleset(DISEASE, text.replace("event.bmi >= 35", "event.bmi >= 28"), "candidate")
    joint = backtest(current, current.replaced(model=candidate_model, ruleset=rules), rows, [None] * len(rows))
    assert {"model", "rules"} <= set(joint.moved_by) and sum(joint.moves.values()) == sum(joint.moved_by.values())


def test_fraud_is_replayed_column_wise_with_the_row_paths_result(
    fraud_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fraud's backtest runs on the fast engine (column-wise validation, rules in bulk) and says exactly
    what the row-by-row replay says: decisions, moves and their cause, rule hits, labelled quality, rejects."""
    import shared.doors.backtest as module
    from services.fraud_detection.dataset import simulate
    from services.fraud_detection.features import events_from_simulation

    fraud = service("fraud")
    current = runtime("fraud", fraud_settings).core
    text = fraud.ruleset_path.read_text().replace('version: "2026.11.1"', 'version: "2026.11.8"')
    lower = text.replace('when: "score >= 0.3 and score < 0.8"', 'when: "score >= 0.05 and score < 0.8"')
    candidate = current.replaced(ruleset=parse_ruleset(fraud, lower, "candidate"))
    simulated = simulate(n_customers=40, n_terminals=80, nb_days=25, processes=1)
    rows: list[dict[str, object]] = [*events_from_simulation(simulated), {"transaction_id": "bad"}]
    labels: list[int | None] = [*simulated["is_fraud"].astype(int).tolist(), None]

    replays: list[object] = []
    columns_replay = module._columns_replay

    def recorded(*arguments: Any) -> Any:
        replays.append(columns_replay(*arguments))
        return replays[-1]

    monkeypatch.setattr(module, "_columns_replay", recorded)
    fast = backtest(current, candidate, rows, labels)
    monkeypatch.setattr(module, "_columns_replay", lambda *a: None)
    by_rows = backtest(current, candidate, rows, labels)

    assert len(replays) == 1 and replays[0] is not None and fast.events == len(rows) - 1 and fast.rejected == 1
    assert sum(fast.moves.values()) > 0 and fast.moved_by == {"rules": sum(fast.moves.values())}
    assert fast == by_rows


def test_disease_replayed_column_wise_reads_fields_the_first_row_lacks(
    disease_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Assessments whose first row has no `cigarettes_per_day` (a non-smoker) while later ones do: the
    column-wise replay keeps every row's fields and says exactly what the row-by-row replay says; a row
    with a null given goes to the contract row by row."""
    import shared.doors.backtest as module

    current = runtime("disease", disease_settings).core
    text = DISEASE.ruleset_path.read_text().replace('version: "2026.11.1"', 'version: "2026.11.7"')
    candidate = current.replaced(
        ruleset=parse_ruleset(DISEASE, text.replace("event.bmi >= 35", "event.bmi >= 28"), "candidate")
    )
    rows = sample_assessments(300, seed=8)
    rows.sort(key=lambda row: "cigarettes_per_day" in row)  # non-smokers first
    assert "cigarettes_per_day" not in rows[0] and any("cigarettes_per_day" in row for row in rows)
    labels: list[int | None] = [int(row["bmi"] >= 30) for row in rows]

    assert module._columns_replay(current, rows, labels, None) is not None  # the column-wise replay takes them
    fast = backtest(current, candidate, rows, labels)
    monkeypatch.setattr(module, "_columns_replay", lambda *a: None)
    assert fast == backtest(current, candidate, rows, labels)
    monkeypatch.undo()
    assert module._columns_replay(current, [{**rows[0], "waist_cm": None}, *rows[1:]], labels, None) is None
