"""A decision's id is the version-5 UUID of its service and event id, as the standard library makes it."""

from __future__ import annotations

import random
import uuid

from shared.core.decision import _DECISION_IDS, decision_id_for


def test_decision_ids_are_the_standard_library_s_uuid5_of_service_and_event_id() -> None:
    """Over ASCII, non-ASCII, empty and long event ids, the id is str(uuid.uuid5(...)) character for character."""
    rng = random.Random(3)
    event_ids = ["", "1", "tx-000123", "é", "\u00ff\u4e2d", "x" * 300]
    event_ids += ["".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randrange(1, 40))) for _ in range(500)]
    for service in ("fraud", "claims", "disease"):
        for event_id in event_ids:
            assert decision_id_for(service, event_id) == str(uuid.uuid5(_DECISION_IDS, f"{service}/{event_id}"))
