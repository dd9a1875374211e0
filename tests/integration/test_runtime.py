"""The runtime, the composition root of a process: each part built once, and a model that does not fit the
service refused at load with a message that says what to do."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from services.registry import runtime
from shared.runtime import IncompatibleModelError
from shared.settings import Settings


def test_each_part_is_built_once(fraud_settings: Settings) -> None:
    """Asking twice gives the same registry, control store, core and state store."""
    with runtime("fraud", fraud_settings) as parts:
        assert parts.core is parts.core and parts.state is parts.state and parts.contract is parts.contract
        assert parts.holder.core is parts.core
        assert parts.control.models is parts.registry


def test_a_model_trained_on_another_feature_set_is_refused(fraud_settings: Settings, tmp_path: Path) -> None:
    """A champion whose card names another feature set (or other features) is not loaded: the error names
    both feature sets and the way out."""
    model_dir = tmp_path / "models"
    shutil.copytree(fraud_settings.model_dir, model_dir)
    settings = replace(fraud_settings, model_dir=model_dir)
    with runtime("fraud", settings) as parts:
        version = parts.registry.champion("fraud")
        card_path = model_dir / "fraud" / version / "card.json"
        card = json.loads(card_path.read_text())
        card["feature_set"] = {**card["feature_set"], "version": "0", "features": card["feature_set"]["features"][:-1]}
        card_path.write_text(json.dumps(card))
        with pytest.raises(IncompatibleModelError) as refused:
            parts.core  # noqa: B018 - loading the core is the act under test
    message = str(refused.value)
    assert "fraud_transaction_windows v0" in message and "fraud_transaction_windows v1" in message
    assert "risk train fraud" in message
