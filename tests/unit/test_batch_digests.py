"""The batch engine's column-wise digests against the online doors' own, value for value."""

from __future__ import annotations

import json

import pyarrow as pa

from shared.batch.digests import decision_ids, sha256_texts
from shared.core.decision import decision_id_for, fingerprint

EVENT_IDS = ["tx-0000001", "", "é-ü-😀", "a/b", "x" * 300, "12345", " space "]


def test_decision_ids_equal_the_online_decision_id_of_every_event() -> None:
    """Each id equals `decision_id_for` (uuid5) bit for bit, unicode, empty and long ids included."""
    assert decision_ids("fraud", pa.array(EVENT_IDS)).to_pylist() == [decision_id_for("fraud", e) for e in EVENT_IDS]
    assert decision_ids("claims", EVENT_IDS).to_pylist() == [decision_id_for("claims", e) for e in EVENT_IDS]


def test_sha256_texts_equal_the_online_fingerprint_of_each_document() -> None:
    """The hex digest of each canonical JSON text, prefixed, equals `fingerprint` of its document."""
    documents = [{"id": e, "amount": 12.5 * k} for k, e in enumerate(EVENT_IDS)]
    canonical = [json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False) for d in documents]
    assert sha256_texts(pa.array(canonical)).to_pylist() == [fingerprint(d) for d in documents]


def test_no_rows_give_an_empty_text_column() -> None:
    """An empty chunk gives empty string arrays, not an error."""
    assert decision_ids("fraud", pa.array([], pa.string())).to_pylist() == []
    assert sha256_texts(pa.array([], pa.string())).type == pa.string()
