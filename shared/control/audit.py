"""The audit log as a hash chain: who did what to a service's rulesets and models, and proof of its order.

Each entry is one JSON line carrying its place (`seq`, from 1), the hash of the entry before it (`prev`; the
first has 64 zeros) and its own `hash`: SHA-256 of the entry's canonical JSON without `hash`. A head file
beside the log records the last entry's `seq` and `hash`. So an entry edited in place no longer matches its
hash; one removed, inserted or moved breaks the next entry's `prev` and the sequence; entries cut from the
end no longer reach the head. Someone who rewrites the whole chain and the head alike is caught only against
a head kept elsewhere: `verify` prints the head hash, and checks it against one given.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.locks import exclusive
from shared.modeling.registry import write_atomically

GENESIS = "0" * 64
CHAIN_FIELDS = ("seq", "prev", "hash")


@dataclass(frozen=True)
class Verification:
    """What `AuditLog.verify` found: `ok` when the chain is whole; each problem names the entry."""

    ok: bool
    entries: int
    head: str | None
    problems: list[str] = field(default_factory=list)


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.head_path = self.path.with_name(self.path.name + ".head")

    def append(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Add `entry` at the end of the chain (one writer at a time, across processes); the entry as written."""
        if set(CHAIN_FIELDS) & entry.keys():
            raise ValueError(f"an audit entry may not set {', '.join(CHAIN_FIELDS)} itself")
        with self._locked():
            last = self._last_entry()
            chained = {**entry, "seq": int(last["seq"]) + 1 if last else 1, "prev": last["hash"] if last else GENESIS}
            chained["hash"] = entry_hash(chained)
            with self.path.open("a", encoding="utf-8") as stream:  # O_APPEND: entries are only ever added
                stream.write(json.dumps(chained, sort_keys=True, ensure_ascii=False) + "\n")
                stream.flush()
                os.fsync(stream.fileno())
            write_atomically(self.head_path, json.dumps({"seq": chained["seq"], "hash": chained["hash"]}) + "\n")
            return chained

    def entries(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self._lines() if line.strip()]

    def verify(self, expected_head: str | None = None) -> Verification:
        """Check every link of the chain, the head file, and (given) a head hash recorded elsewhere."""
        problems: list[str] = []
        previous_hash: str | None = GENESIS
        count, last_hash = 0, None
        for number, line in enumerate((line for line in self._lines() if line.strip()), start=1):
            count = number
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                problems.append(f"entry {number} is not JSON")
                previous_hash = last_hash = None
                continue
            if not isinstance(entry, dict) or not all(name in entry for name in CHAIN_FIELDS):
                problems.append(f"entry {number} carries no chain fields (seq, prev, hash)")
                previous_hash = last_hash = None
                continue
            if entry["hash"] != entry_hash(entry):
                problems.append(f"entry {number} was edited: its content no longer matches its hash")
            if previous_hash is not None and entry["prev"] != previous_hash:
                problems.append(
                    f"entry {number} does not follow entry {number - 1}: "
                    "an entry before it was removed, inserted, moved or edited"
                )
            if entry["seq"] != number:
                problems.append(f"entry {number} says it is entry {entry['seq']}: entries were removed or reordered")
            previous_hash = last_hash = entry["hash"]
        problems.extend(self._head_problems(count, last_hash))
        if expected_head is not None and expected_head != last_hash:
            problems.append(f"the chain ends in {last_hash}, not in the head recorded elsewhere ({expected_head})")
        return Verification(not problems, count, last_hash, problems)

    def _head_problems(self, count: int, last_hash: str | None) -> list[str]:
        try:
            head = json.loads(self.head_path.read_text())
        except FileNotFoundError:
            return [f"the log has {count} entries but no head record"] if count else []
        except json.JSONDecodeError:
            return ["the head record is not JSON"]
        if not isinstance(head, dict) or (head.get("seq"), head.get("hash")) != (count, last_hash):
            recorded = head.get("seq") if isinstance(head, dict) else None
            return [
                f"the log ends at entry {count} but its head records entry {recorded} with another hash: "
                "entries were removed from the end, or the log was rewritten"
            ]
        return []

    def _lines(self) -> list[str]:
        try:
            return self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []

    def _last_entry(self) -> dict[str, Any] | None:
        """The last entry, read from the end of the file (the log only grows)."""
        try:
            with self.path.open("rb") as stream:
                stream.seek(0, os.SEEK_END)
                end = position = stream.tell()
                tail = b""
                while position > 0 and tail.rstrip(b"\n").count(b"\n") < 1:
                    position = max(0, position - 65_536)
                    stream.seek(position)
                    tail = stream.read(end - position)
        except FileNotFoundError:
            return None
        lines = [line for line in tail.splitlines() if line.strip()]
        if not lines:
            return None
        last: dict[str, Any] = json.loads(lines[-1])
        if "hash" not in last:  # a line from before the chain: link to the line itself
            last = {"seq": len([line for line in self._lines() if line.strip()]), "hash": _sha256(lines[-1])}
        return last

    def _locked(self) -> AbstractContextManager[None]:
        return exclusive(self.path.with_name(f".{self.path.name}.lock"))


def entry_hash(entry: dict[str, Any]) -> str:
    """SHA-256 of the entry's canonical JSON (sorted keys, no spaces), its own `hash` left out."""
    content = {name: value for name, value in entry.items() if name != "hash"}
    return _sha256(json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
