"""Allow, deny and watch lists on record: the values of each list in force, every change that made them,
and the values a pending proposal would add or remove. One folder per service, beside its rulesets:

    <root>/<service>/lists/<name>.json           the list in force: {"name", "version", "values"} (sorted)
    <root>/<service>/lists/<name>.changes.jsonl  each approved change: version, add/remove, its values, who
    <root>/<service>/lists/versions.json         every list's version: what each instance checks
    <root>/<service>/lists/proposed/<id>.json    the values of a proposed change

Which lists a service has, and the field each is looked up by, is the service's (shared/rules/lists.py);
proposing and approving are the control store's (shared/control/store.py: maker-checker, the audit log),
which calls `apply` under its lock. Values of a personal field enter already pseudonymised
(`entered_values`), so no file here ever holds a raw personal id.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from shared.errors import InvalidInputError
from shared.modeling.registry import write_atomically
from shared.privacy import PSEUDONYM_PATTERN, pseudonymise
from shared.rules.lists import ListedValues, ListsInForce, ListSpec

ListAction = Literal["add", "remove"]
MAX_VALUE_LENGTH: Final = 64  # as the contracts bound every identifier
MAX_VALUES_PER_CHANGE: Final = 100_000
_PSEUDONYM = re.compile(PSEUDONYM_PATTERN)
_PRINTABLE = re.compile(r"[^\x00-\x1f\x7f]+")  # no control characters: values are shown in pages and logs


@dataclass(frozen=True)
class AppliedChange:
    """What an approved change did to its list."""

    previous: int
    version: int
    changed: int  # values actually added or removed


def entered_values(spec: ListSpec, raw: Sequence[object], key: bytes) -> list[str]:
    """The values as the list holds them, checked (InvalidInputError naming `values.N` at fault): text of
    1 to 64 printable characters; a personal field's values pseudonymised with the service's key, as the
    contract does to events (a value that already is a pseudonym is kept, so a list shown by its
    pseudonyms can be edited by them). Duplicates are dropped, the order kept."""
    if not raw:
        raise InvalidInputError({"values": ["give at least one value"]})
    if len(raw) > MAX_VALUES_PER_CHANGE:
        raise InvalidInputError({"values": [f"at most {MAX_VALUES_PER_CHANGE} values in one change"]})
    problems: dict[str, list[str]] = {}
    for position, value in enumerate(raw):
        if not isinstance(value, str) or not 1 <= len(value) <= MAX_VALUE_LENGTH or not _PRINTABLE.fullmatch(value):
            problems[f"values.{position}"] = [f"an identifier: text of 1 to {MAX_VALUE_LENGTH} printable characters"]
    if problems:
        raise InvalidInputError(problems)
    texts = [str(value) for value in raw]
    if spec.personal:
        texts = [value if _PSEUDONYM.fullmatch(value) else pseudonymise(value, key) for value in texts]
    return list(dict.fromkeys(texts))


def values_digest(values: Iterable[str]) -> str:
    """sha256 of the sorted values, one a line: what the audit log records of a change's values."""
    return "sha256:" + hashlib.sha256("\n".join(sorted(values)).encode()).hexdigest()


class ListStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def versions(self, service: str) -> dict[str, int]:
        """Each changed list's version (a list never changed is at 0, and absent here)."""
        try:
            found = json.loads(self._folder(service).joinpath("versions.json").read_text())
        except FileNotFoundError:
            return {}
        return {str(name): int(version) for name, version in found.items()}

    def listed(self, service: str, name: str) -> tuple[int, list[str]]:
        """The list's version and its values, sorted."""
        try:
            document = json.loads(self._list_path(service, name).read_text())
        except FileNotFoundError:
            return 0, []
        return int(document["version"]), list(document["values"])

    def changes(self, service: str, name: str) -> list[dict[str, Any]]:
        """Every approved change of the list, oldest first, each with its values."""
        try:
            lines = self._changes_path(service, name).read_text().splitlines()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in lines if line.strip()]

    def in_force(self, service: str, specs: Sequence[ListSpec], previous: ListsInForce | None = None) -> ListsInForce:
        """Every list of the service as rules look events up in it; lists at the version `previous` already
        holds are reused, not read again (a list of 100,000 values is a few megabytes of JSON)."""
        versions = self.versions(service)
        kept = previous.lists if previous is not None else {}
        lists = []
        for spec in specs:
            version = versions.get(spec.name, 0)
            same = kept.get(spec.name)
            if same is not None and same.version == version and same.field == spec.field:
                lists.append(same)
                continue
            found_version, values = self.listed(service, spec.name) if version else (0, [])
            lists.append(ListedValues(spec.name, spec.field, found_version, frozenset(values)))
        return ListsInForce.of(lists)

    def save_proposed(self, service: str, proposal_id: str, values: Sequence[str]) -> None:
        write_atomically(self._proposed_path(service, proposal_id), json.dumps(list(values)) + "\n")

    def proposed_values(self, service: str, proposal_id: str) -> list[str]:
        try:
            return list(json.loads(self._proposed_path(service, proposal_id).read_text()))
        except FileNotFoundError:
            return []

    def effect(self, service: str, name: str, action: ListAction, values: Iterable[str]) -> set[str]:
        """The values a change would actually add (those not on the list) or remove (those on it)."""
        _, current = self.listed(service, name)
        on_list = set(current)
        return {v for v in values if v not in on_list} if action == "add" else {v for v in values if v in on_list}

    def apply(self, service: str, name: str, action: ListAction, values: Iterable[str], **who: Any) -> AppliedChange:
        """Put an approved change in force: the list's next version, its change on record, then the version
        instances check (last, so an instance that sees the new version finds the new values). The caller
        holds the service's control lock."""
        previous, current = self.listed(service, name)
        changed = self.effect(service, name, action, values)
        values_now = set(current) | changed if action == "add" else set(current) - changed
        version = previous + 1
        write_atomically(
            self._list_path(service, name),
            json.dumps({"name": name, "version": version, "values": sorted(values_now)}) + "\n",
        )
        with self._changes_path(service, name).open("a", encoding="utf-8") as stream:
            stream.write(json.dumps({"version": version, "action": action, "values": sorted(changed), **who}) + "\n")
        versions = {**self.versions(service), name: version}
        write_atomically(self._folder(service) / "versions.json", json.dumps(versions, sort_keys=True) + "\n")
        return AppliedChange(previous, version, len(changed))

    def _folder(self, service: str) -> Path:
        return self.root / service / "lists"

    def _list_path(self, service: str, name: str) -> Path:
        return self._folder(service) / f"{name}.json"

    def _changes_path(self, service: str, name: str) -> Path:
        path = self._folder(service) / f"{name}.changes.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def _proposed_path(self, service: str, proposal_id: str) -> Path:
        return self._folder(service) / "proposed" / f"{proposal_id}.json"
