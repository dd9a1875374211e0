"""The audit log is a hash chain: verification passes on the log as written and names the entry at fault when
one is edited, removed (in the middle or at the end) or moved, or when the whole log was rewritten."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import pytest

from shared.control.audit import GENESIS, AuditLog, entry_hash


@pytest.fixture
def log(tmp_path: Path) -> AuditLog:
    written = AuditLog(tmp_path / "fraud" / "audit.jsonl")
    actions = [("proposed", "ana"), ("approved", "bo"), ("proposed", "bo"), ("refused", "ana")]
    for n, (action, who) in enumerate(actions):
        written.append({"action": action, "identity": who, "version": f"2026.11.{n}"})
    return written


def _lines(log: AuditLog) -> list[str]:
    return log.path.read_text().splitlines()


def _rewrite(log: AuditLog, lines: list[str]) -> None:
    log.path.write_text("".join(line + "\n" for line in lines))


def test_each_entry_links_to_the_one_before_and_the_intact_log_verifies(log: AuditLog) -> None:
    """Entries carry seq 1.., the previous entry's hash (zeros for the first) and their own; verify says ok."""
    entries = log.entries()
    assert [e["seq"] for e in entries] == [1, 2, 3, 4]
    assert entries[0]["prev"] == GENESIS
    assert all(later["prev"] == earlier["hash"] for earlier, later in pairwise(entries))
    assert all(e["hash"] == entry_hash(e) for e in entries)
    verification = log.verify()
    assert verification.ok and verification.entries == 4 and verification.head == entries[-1]["hash"]
    assert verification.problems == []


def test_an_edited_entry_is_detected(log: AuditLog) -> None:
    """Changing who approved (the hash left as it was) breaks that entry's hash."""
    lines = _lines(log)
    lines[1] = lines[1].replace('"identity": "bo"', '"identity": "mallory"')
    _rewrite(log, lines)
    verification = log.verify()
    assert not verification.ok
    assert any(p.startswith("entry 2 was edited") for p in verification.problems), verification.problems


def test_an_edited_entry_with_its_hash_recomputed_breaks_the_next_link(log: AuditLog) -> None:
    """An editor who also recomputes the edited entry's own hash is caught by the next entry's `prev`."""
    lines = _lines(log)
    entry = json.loads(lines[1]) | {"identity": "mallory"}
    entry["hash"] = entry_hash(entry)
    lines[1] = json.dumps(entry, sort_keys=True)
    _rewrite(log, lines)
    problems = log.verify().problems
    assert any(p.startswith("entry 3 does not follow entry 2") for p in problems), problems


def test_a_removed_entry_is_detected(log: AuditLog) -> None:
    """Deleting the approval from the middle breaks the link and the sequence after it."""
    lines = _lines(log)
    _rewrite(log, lines[:1] + lines[2:])
    problems = log.verify().problems
    assert any(p.startswith("entry 2 does not follow entry 1") for p in problems), problems
    assert any(p.startswith("entry 2 says it is entry 3") for p in problems), problems


def test_entries_removed_from_the_end_are_detected(log: AuditLog) -> None:
    """Cutting the last entry leaves a chain that no longer reaches the head record."""
    _rewrite(log, _lines(log)[:-1])
    verification = log.verify()
    assert not verification.ok and verification.entries == 3
    assert any("head records entry 4" in p for p in verification.problems), verification.problems


def test_reordered_entries_are_detected(log: AuditLog) -> None:
    """Swapping two entries breaks both links and both sequence numbers."""
    lines = _lines(log)
    lines[1], lines[2] = lines[2], lines[1]
    _rewrite(log, lines)
    problems = log.verify().problems
    assert any(p.startswith("entry 2 does not follow entry 1") for p in problems), problems
    assert any(p.startswith("entry 3 says it is entry 2") for p in problems), problems


def test_a_whole_rewrite_is_caught_against_a_head_kept_elsewhere(log: AuditLog, tmp_path: Path) -> None:
    """A log rebuilt from scratch (chain and head alike) verifies on its own, but not against the head hash
    printed before the rewrite."""
    kept = log.verify().head
    forged = AuditLog(tmp_path / "forged" / "audit.jsonl")
    for entry in log.entries()[:2]:
        forged.append({k: v for k, v in entry.items() if k not in ("seq", "prev", "hash")} | {"identity": "eve"})
    log.path.write_bytes(forged.path.read_bytes())
    log.head_path.write_bytes(forged.head_path.read_bytes())
    assert log.verify().ok
    verification = log.verify(expected_head=kept)
    assert not verification.ok and any("recorded elsewhere" in p for p in verification.problems)


def test_an_entry_cannot_set_its_own_chain_fields(log: AuditLog) -> None:
    """The chain fields are the log's to write: an entry that brings its own is refused."""
    with pytest.raises(ValueError, match="seq, prev, hash"):
        log.append({"action": "approved", "hash": "0" * 64})
