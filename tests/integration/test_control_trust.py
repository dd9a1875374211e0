"""The issue's two maker-checker bypasses, tried against a real gunicorn server of the disease service, fail:
`risk train` registers a candidate that no worker scores with, and keys that only the CLI's environment
knows are refused by the server. The README's control-plane example runs as written, its rollback included."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import requests

from shared.control.store import ControlStore
from shared.modeling.registry import ModelRegistry
from shared.settings import Settings
from tests.fixtures.services import running_server, service_environment

ROOT = Path(__file__).resolve().parents[2]
ANA, BO = "key-of-ana", "key-of-bo"
KEYS = (f"ana:{ANA}:analyst+approver", f"bo:{BO}:analyst+approver", "app:key-of-app:scorer")


def _risk(settings: Settings, server_url: str, *args: str, environment: dict[str, str] | None = None) -> Any:
    """`risk ARGS` in a child process whose environment holds no server key (unless `environment` adds some)."""
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env={
            **service_environment(settings),
            "RISK_API_KEYS": "",
            "RISK_SERVER_URL": server_url,
            **(environment or {}),
        },
        capture_output=True,
        text=True,
        timeout=180,
    )


def _ok(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _settings(disease_settings: Settings, tmp_path: Path, model_dir: Path) -> Settings:
    return replace(disease_settings, model_dir=model_dir, control_dir=tmp_path / "control", api_keys=KEYS)


def test_training_registers_a_candidate_and_no_worker_switches(disease_settings: Settings, tmp_path: Path) -> None:
    """Bypass 1: the first `risk train` makes the champion (the service had none; audited), a second one
    while the server runs only registers a candidate: the champion alias, the served model card and the
    audit log's model history stay as they were, past the workers' periodic check."""
    settings = _settings(disease_settings, tmp_path, tmp_path / "models")
    first = _ok(_risk(settings, "", "train", "disease"))
    assert first["status"].startswith("champion")
    with running_server("disease", settings, tmp_path / "gunicorn.log") as server:
        card = requests.get(f"{server.base_url}/v1/model", headers={"X-API-Key": ANA}, timeout=10).json()
        assert card["version"] == first["version"]
        second = _ok(_risk(settings, server.base_url, "train", "disease"))
        assert second["status"].startswith("candidate") and second["version"] != first["version"]
        time.sleep(5)  # longer than the workers' 3 s check of the store
        for _ in range(4):  # both gunicorn workers
            card = requests.get(f"{server.base_url}/v1/model", headers={"X-API-Key": ANA}, timeout=10).json()
            assert card["version"] == first["version"]
        models = _ok(_risk(settings, server.base_url, "models", "list", "disease", "--api-key", BO))
    assert ModelRegistry(settings.model_dir).champion("disease") == first["version"]
    assert models["champion"] == first["version"] and models["pending"] == []
    assert {v["version"] for v in models["versions"]} == {first["version"], second["version"]}
    entries = ControlStore(settings.control_dir, ModelRegistry(settings.model_dir)).audit("disease")
    assert [(e["action"], e["version"]) for e in entries if e.get("kind") == "model"] == [
        ("first_champion", first["version"])
    ]


def test_keys_only_the_cli_knows_are_refused_by_the_server(
    disease_settings: Settings, disease_model_dir: Path, tmp_path: Path
) -> None:
    """Bypass 2: with `RISK_API_KEYS="eve:e1,mallory:m1"` (even as admins) in the CLI's environment, eve's
    publication and mallory's approval are refused by the server (401, exit 2), and nothing is proposed, in
    force or audited; the same commands with keys the server knows go through."""
    settings = _settings(disease_settings, tmp_path, disease_model_dir)
    rules = tmp_path / "new.yaml"
    rules.write_text(
        (ROOT / "services/disease_risk/rules.yaml").read_text().replace('version: "2026.11.1"', 'version: "2026.11.2"')
    )
    intruders = {"RISK_API_KEYS": "eve:e1:admin,mallory:m1:admin"}
    with running_server("disease", settings, tmp_path / "gunicorn.log", workers=1) as server:
        refused = _risk(settings, server.base_url, "rules", "publish", "disease", str(rules), "--api-key", "e1",
                        environment=intruders)  # fmt: skip
        assert refused.returncode == 2 and json.loads(refused.stderr)["status"] == 401, refused.stderr
        proposed = _ok(_risk(settings, server.base_url, "rules", "publish", "disease", str(rules), "--api-key", ANA))
        approval = _risk(settings, server.base_url, "rules", "approve", "disease", proposed["id"], "--api-key", "m1",
                         environment=intruders)  # fmt: skip
        assert approval.returncode == 2 and json.loads(approval.stderr)["status"] == 401, approval.stderr
        listing = _ok(_risk(settings, server.base_url, "rules", "list", "disease", "--api-key", BO))
        assert listing["active"] == "2026.11.1" and [p["id"] for p in listing["pending"]] == [proposed["id"]]
        audit = _ok(_risk(settings, server.base_url, "audit", "disease", "--api-key", BO))
        assert {e["identity"] for e in audit} <= {"package", "ana"}
        scorer = _risk(settings, server.base_url, "rules", "approve", "disease", proposed["id"], "--api-key",
                       "key-of-app")  # fmt: skip
        assert scorer.returncode == 2 and json.loads(scorer.stderr)["status"] == 403, scorer.stderr
        _ok(_risk(settings, server.base_url, "rules", "approve", "disease", proposed["id"], "--api-key", BO))
        assert (
            _ok(_risk(settings, server.base_url, "rules", "list", "disease", "--api-key", BO))["active"] == "2026.11.2"
        )


def _readme_control_lines() -> list[str]:
    """The commands of the README's control-plane example, comments dropped, in order."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Changing rules and models without a deploy") :]
    block = section[section.index("```bash") + len("```bash") : section.index("```", section.index("```bash") + 7)]
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip().startswith("risk ")]


def test_the_readme_example_runs_as_written(
    disease_settings: Settings, disease_model_dir: Path, tmp_path: Path
) -> None:
    """The README's publish, approve, rollback, approve and audit commands, run as written (only the proposal
    ids they print filled in) against a server with the README's keys: the rollback to the packaged ruleset
    2026.11.1 is proposed by bo, approved by ana, and the audit log verifies."""
    settings = _settings(disease_settings, tmp_path, disease_model_dir)
    lines = _readme_control_lines()
    rollback = "risk rules rollback disease 2026.11.1 --api-key key-of-bo"
    assert rollback in lines, lines
    (tmp_path / "new-rules.yaml").write_text(
        (ROOT / "services/disease_risk/rules.yaml").read_text().replace('version: "2026.11.1"', 'version: "2026.11.2"')
    )
    wanted = [line for line in lines if re.match(r"risk (rules (publish|approve|rollback)|audit)", line)]
    assert len(wanted) == 6, wanted
    proposal = ""
    with running_server("disease", settings, tmp_path / "gunicorn.log", workers=1) as server:
        for line in wanted:
            args = shlex.split(line.replace("<proposal-id>", proposal))[1:]
            done = subprocess.run(
                [sys.executable, "-m", "services.cli", *args],
                env={**service_environment(settings), "RISK_API_KEYS": "", "RISK_SERVER_URL": server.base_url},
                capture_output=True,
                text=True,
                timeout=120,
                cwd=tmp_path,
            )
            answer = _ok(done)
            if isinstance(answer, dict) and "id" in answer:
                proposal = answer["id"]
            if line == rollback:
                assert (
                    answer["action"] == "rollback"
                    and answer["proposed_by"] == "bo"
                    and answer["previous"] == "2026.11.2"
                )
        listing = _ok(_risk(settings, server.base_url, "rules", "list", "disease", "--api-key", BO))
    assert listing["active"] == "2026.11.1" and listing["history"] == ["2026.11.1", "2026.11.2", "2026.11.1"]
    assert answer["ok"] and answer["entries"] == 5, answer  # the last line: risk audit verify
