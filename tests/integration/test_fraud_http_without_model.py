"""An HTTP service started before any model was trained: alive, honestly not ready, and clear about why."""

from __future__ import annotations

from pathlib import Path

from shared.settings import Settings
from tests.fixtures.services import PSEUDONYM_KEY, scoring_app


def test_no_model_means_not_ready_and_503_with_the_reason(tmp_path: Path) -> None:
    """/healthz answers, /readyz says 503 naming the missing model, scoring is a 503 pointing at
    `risk train`, invalid input is still a 422 (the contract needs no model); nothing is a 500."""
    settings = Settings.from_env(
        {},
        model_dir=tmp_path / "empty-registry",
        control_dir=tmp_path / "control",
        state_url=f"sqlite:///{tmp_path / 'state.sqlite3'}",
        pseudonym_key=PSEUDONYM_KEY.encode(),
    )
    client = scoring_app("fraud", settings).test_client()
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["checks"]["model"].startswith("unavailable")
    assert ready.get_json()["checks"]["state_store"] == "ok"
    scored = client.post(
        "/v1/score",
        json={
            "transaction_id": "t",
            "timestamp": "2018-08-08T09:00:00+00:00",
            "customer_id": "c",
            "terminal_id": "t",
            "amount": 1.0,
        },
    )
    assert scored.status_code == 503 and "risk train fraud" in scored.get_json()["message"]
    invalid = client.post("/v1/score", json={"transaction_id": "t"})
    assert invalid.status_code == 422 and "amount" in invalid.get_json()["fields"]
