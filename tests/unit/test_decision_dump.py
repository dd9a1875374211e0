"""The decision's compiled dump gives exactly what its marshmallow schema dumps, for every shape a decision
takes (with and without reasons, rule hits, a challenger, and the disease service's typed details)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.disease_risk.schemas import DiseaseDecisionSchema
from shared.core.decision import (
    Decision,
    DecisionSchema,
    Reason,
    Shadow,
    VersionedName,
    compile_dump,
    decision_id_for,
    drop_absent_parts,
)
from shared.rules.engine import RuleHit

FINGERPRINT = "sha256:" + "0" * 64


def _decision(**changes: Any) -> Decision:
    base: dict[str, Any] = {
        "event_id": "t1",
        "decision_id": decision_id_for("fraud", "t1"),
        "entity_id": "c1",
        "service": "fraud",
        "score": 0.91,
        "risk_band": "high",
        "measures": {"relative_risk": 2, "expected_frequency": 0.1},
        "decision": "decline",
        "reasons": (Reason("amount", 257.16, 3.1, "amount 257.16"), Reason("area", "E", 0.2, "area E")),
        "rule_hits": (RuleHit("very_high_score", "decline", "score 0.91"),),
        "model": VersionedName("fraud", "v1"),
        "feature_set": VersionedName("fraud_transaction_windows", "1"),
        "ruleset_version": "2026.11.1",
        "input_fingerprint": FINGERPRINT,
        "scored_at": "2026-12-02T09:00:00+00:00",
        "latency_ms": 1.25,
    }
    return Decision(**{**base, **changes})


DISEASE_DETAILS = {
    "conditions": {
        "diabetes": {"title": "d", "model": "logistic", "applicable": False, "risk": None, "reason": "men only"},
        "chd": {"title": "c", "model": "catboost", "applicable": True, "risk": 0.2, "reason": None},
    },
    "equations": [
        {
            "equation": "findrisc",
            "name": "FINDRISC",
            "variant": "original",
            "outcome": "type 2 diabetes",
            "horizon_years": 10,
            "applicable": True,
            "risk": 15,
            "probability": 0.33,
            "category": "high",
            "reason": None,
        }
    ],
}


@pytest.mark.parametrize(
    ("schema", "decision"),
    [
        (DecisionSchema(), _decision()),
        (DecisionSchema(), _decision(reasons=(), rule_hits=(), measures={}, decision="approve")),
        (DecisionSchema(), _decision(shadow=Shadow(VersionedName("fraud", "v2"), 0.4, "review"))),
        (DiseaseDecisionSchema(), _decision(service="disease", details=DISEASE_DETAILS)),
    ],
    ids=["flagged", "plain", "with-challenger", "disease-details"],
)
def test_the_compiled_dump_equals_the_schema_dump(schema: DecisionSchema, decision: Decision) -> None:
    """Same keys, same values, same types (an int measure becomes a float in both), absent parts dropped."""
    compiled = drop_absent_parts(compile_dump(schema)(decision))
    reference = schema.dump(decision)
    assert compiled == reference
    assert json.dumps(compiled, sort_keys=True) == json.dumps(reference, sort_keys=True)
    assert "shadow" in compiled if decision.shadow is not None else "shadow" not in compiled


def test_a_missing_key_in_a_nested_mapping_is_left_out_as_marshmallow_leaves_it() -> None:
    """A details mapping without an optional key dumps without it, not with a null."""
    details = {
        **DISEASE_DETAILS,
        "equations": [{k: v for k, v in DISEASE_DETAILS["equations"][0].items() if k != "category"}],
    }
    decision = _decision(service="disease", details=details)
    schema = DiseaseDecisionSchema()
    compiled = drop_absent_parts(compile_dump(schema)(decision))
    assert compiled == schema.dump(decision) and "category" not in compiled["details"]["equations"][0]
