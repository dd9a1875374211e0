"""The fields of the context a ruleset is evaluated against, and the check that rules name only those.

ZEN reads a field that does not exist as null, so a misspelt field is no error to ZEN: behind `and` or
`or`, inside a function call or compared with `==` it quietly makes a rule never (or always) hit. The
service knows every field its context can have (the event contract, the feature set, the measures, the
score, band and reasons), so every path a condition or a reason names is looked up in that shape when the
ruleset loads, and a path the context cannot have is refused with the closest real name.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.rules import references


@dataclass(frozen=True)
class ContextFields:
    """The shape of a context: a record with known fields (`fields`), a plain value (no fields at all:
    `fields` empty), or a free-form value anything may be read under (`fields` None)."""

    fields: Mapping[str, ContextFields] | None

    @classmethod
    def record(cls, fields: Mapping[str, ContextFields]) -> ContextFields:
        return cls(dict(fields))

    @classmethod
    def of_names(cls, names: Iterable[str]) -> ContextFields:
        """A record of plain values, one per name (feature sets, measures)."""
        return cls(dict.fromkeys(names, VALUE))

    @classmethod
    def of_sample(cls, sample: Mapping[str, Any]) -> ContextFields:
        """The shape of a sample context: each mapping a record of its keys, anything else a plain value."""
        return cls({str(key): _shape_of(value) for key, value in sample.items()})

    def with_field(self, name: str, shape: ContextFields) -> ContextFields:
        """This record with one field added or replaced (e.g. the event's fields from its contract)."""
        return ContextFields({**(self.fields or {}), name: shape})

    def paths(self, prefix: str = "") -> list[str]:
        """Every dotted path this shape has, records included, for suggestions."""
        out = []
        for name, shape in (self.fields or {}).items():
            out.append(prefix + name)
            out += shape.paths(f"{prefix}{name}.")
        return out


VALUE = ContextFields({})
"""A plain value: a number, a text, a list, a boolean; it has no fields."""
ANY = ContextFields(None)
"""A value with fields nobody declared (free-form detail): any path under it is accepted."""


def _shape_of(value: Any) -> ContextFields:
    return ContextFields.of_sample(value) if isinstance(value, Mapping) else VALUE


@dataclass(frozen=True)
class UnknownField:
    """A path the context cannot have: the closest real path (`guess`), or else a note on what is there."""

    path: str
    guess: str | None
    note: str


def unknown_field(path: tuple[str, ...], shape: ContextFields) -> UnknownField | None:
    """Why the context cannot have `path`, with the closest real name; None when it can."""
    node = shape
    for depth, part in enumerate(path):
        if node.fields is None:
            return None  # free-form below this point
        if part not in node.fields:
            written = ".".join(path)
            if not node.fields and depth:
                return UnknownField(written, None, f"{'.'.join(path[:depth])} has no fields")
            guess = _closest(path, depth, node, shape)
            level = f"{'.'.join(path[:depth])} has" if depth else "the context has"
            return UnknownField(written, guess, f"{level}: {', '.join(sorted(node.fields))}")
        node = node.fields[part]
    return None


def _closest(path: tuple[str, ...], depth: int, node: ContextFields, root: ContextFields) -> str | None:
    """A sibling of the misspelt part (`features.card_nb_tx_1dd` -> `features.card_nb_tx_1d`), else the
    closest path anywhere (a feature written under `event.`), else None."""
    close = difflib.get_close_matches(path[depth], list(node.fields or {}), n=1)
    if close:
        return ".".join((*path[:depth], close[0], *path[depth + 1 :]))
    anywhere = difflib.get_close_matches(".".join(path), root.paths(), n=1, cutoff=0.75)
    return anywhere[0] if anywhere else None


def condition_problems(name: str, when: str, shape: ContextFields) -> list[str]:
    """One problem per field a compiled condition names that the context cannot have."""
    problems = []
    for reference in references.references(when):
        unknown = unknown_field(reference.path, shape)
        if unknown is not None:
            hint = f"did you mean {unknown.guess}?" if unknown.guess else unknown.note
            problems.append(f"{name}: `{when}` names {unknown.path}, which the context does not have ({hint})")
    return problems


def placeholder_problems(name: str, paths: Iterable[str], shape: ContextFields) -> list[str]:
    """One problem per reason placeholder naming a field the context cannot have."""
    problems = []
    for path in paths:
        unknown = unknown_field(tuple(path.split(".")), shape)
        if unknown is not None:
            hint = f"did you mean {{{unknown.guess}}}?" if unknown.guess else unknown.note
            problems.append(f"{name}: reason names {{{path}}}, which is not in the context ({hint})")
    return problems
