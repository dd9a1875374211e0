"""Allow, deny and watch lists as rules see them: one boolean per list in the context (`lists.deny_cards`).

A service names the identifier fields of its events that lists may hold (`subjects`: e.g. cards ->
`customer_id`, terminals -> `terminal_id`), and every subject gets one list of each kind. A ruleset
computes the lists its rules name with one Python set look-up each, before the single ZEN call, so ZEN
receives booleans, never the values: a list of 100,000 values costs an event what a list of one does.
The values themselves are kept, changed and approved by the control plane (`shared/control/lists.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

KINDS: Final = ("allow", "deny", "watch")
CONTEXT_KEY: Final = "lists"  # the context's record of list flags, `lists.<name>`


@dataclass(frozen=True)
class ListSpec:
    """One named list: its kind, the subject it lists and the event field it is looked up by. Values of a
    personal field are held pseudonymised, as the events reach the rules."""

    name: str
    kind: str
    subject: str
    field: str
    personal: bool = False


def list_specs(subjects: Mapping[str, str], personal_fields: Iterable[str] = ()) -> tuple[ListSpec, ...]:
    """Every list a service has: one per kind and subject, named `<kind>_<subject>` (`deny_cards`)."""
    personal = frozenset(personal_fields)
    return tuple(
        ListSpec(f"{kind}_{subject}", kind, subject, event_field, event_field in personal)
        for subject, event_field in subjects.items()
        for kind in KINDS
    )


@dataclass(frozen=True)
class ListedValues:
    """The values of one list in force, at one version (0: never changed, empty)."""

    name: str
    field: str
    version: int
    values: frozenset[str]


@dataclass(frozen=True)
class ListsInForce:
    """The lists a ruleset looks events up in; a list absent from it is empty."""

    lists: Mapping[str, ListedValues] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def of(cls, lists: Iterable[ListedValues]) -> ListsInForce:
        return cls(MappingProxyType({listed.name: listed for listed in lists}))

    @property
    def versions(self) -> dict[str, int]:
        return {name: listed.version for name, listed in self.lists.items()}

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickled as its lists (a mapping proxy cannot be), so rulesets reach worker processes whole."""
        return (ListsInForce.of, (tuple(self.lists.values()),))


NO_LISTS: Final = ListsInForce()


@dataclass(frozen=True, slots=True)
class ListProbe:
    """What one event is looked up by for one list the rules name: the list's name, the event field and
    the values. `flag` is the one per-event cost of a list: a set membership test."""

    name: str
    field: str
    values: frozenset[str]

    def flag(self, event: Mapping[str, Any]) -> bool:
        value = event.get(self.field)
        return isinstance(value, str) and value in self.values


def probes(names: Iterable[str], lists: ListsInForce) -> tuple[ListProbe, ...]:
    """The look-ups for the lists named, in a stable order; a list with no values in force is empty (its
    field unknown to `lists` is no matter then: nothing can be on it)."""
    found = []
    for name in sorted(set(names)):
        listed = lists.lists.get(name)
        found.append(ListProbe(name, listed.field, listed.values) if listed else ListProbe(name, "", frozenset()))
    return tuple(found)


def named_lists(paths: Iterable[tuple[str, ...]], every_list: Iterable[str]) -> frozenset[str]:
    """The lists that context paths read: `lists.deny_cards` names one; `lists` alone names all of them."""
    names: set[str] = set()
    for path in paths:
        if not path or path[0] != CONTEXT_KEY:
            continue
        if len(path) == 1:
            names.update(every_list)
        else:
            names.add(path[1])
    return frozenset(names)
