"""Reason templates: the readable text of a rule hit, such as "amount {event.amount} is {features.ratio} times".

A placeholder names a field of the evaluation context by its dotted path. Templates are parsed with
`string.Formatter().parse` (so braces, `{{` escapes and malformed templates follow Python's rules) but never
rendered with `str.format`: that would allow attribute access and indexing (`{event.__class__}`) and format
specs on analyst-written text. Here a placeholder is only a path looked up in mappings, and its value is
rendered by `readable`.
"""

from __future__ import annotations

import math
import numbers
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

MISSING: Final = object()
"""What `lookup` gives for a path the context does not have (distinct from a present None)."""

UNKNOWN_TEXT: Final = "?"
"""Rendered for a placeholder whose field is missing or null in one event: the hit still reads, visibly."""


class TemplateError(ValueError):
    """A reason template that cannot be used: malformed braces, a format spec, or a placeholder that is not
    a plain field path."""


def placeholders(template: str) -> tuple[str, ...]:
    """The field paths a template names, in order. Raises TemplateError for anything beyond `{a.b.c}`, so a
    bad template is refused when the ruleset loads rather than rendered oddly in production."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:  # e.g. "Single '}' encountered in format string"
        raise TemplateError(str(error)) from None
    paths = []
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if spec or conversion:
            written = name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            raise TemplateError(f"{{{written}}}: format specs and conversions are not allowed, write {{path}} only")
        if not _is_field_path(name):
            raise TemplateError(f"{{{name}}} is not a field path such as {{score}} or {{features.name}}")
        paths.append(name)
    return tuple(paths)


def _is_field_path(name: str) -> bool:
    """Dotted identifiers only: no indexing, no calls, no empty or numeric (positional) names."""
    return all(part.isidentifier() for part in name.split("."))


def lookup(context: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path through nested mappings, or MISSING. Never getattr: only data is reachable."""
    return lookup_parts(context, tuple(path.split(".")))


def lookup_parts(context: Any, parts: tuple[str, ...]) -> Any:
    """`lookup` on a pre-split path (rendering runs per hit, so the split is done once, at load), from
    any value: MISSING wherever the path meets one that is no mapping."""
    value = context
    for part in parts:
        if not (type(value) is dict or isinstance(value, Mapping)) or part not in value:
            return MISSING
        value = value[part]
    return value


@dataclass(frozen=True)
class Template:
    """A reason template parsed once, at load; `render` then only looks values up and formats them."""

    text: str
    _pieces: tuple[tuple[str, tuple[str, ...] | None], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        placeholders(self.text)  # refuse what cannot be rendered safely, even when built directly
        pieces = tuple(
            (literal, None if path is None else tuple(path.split(".")))
            for literal, path, _spec, _conversion in string.Formatter().parse(self.text)
        )
        object.__setattr__(self, "_pieces", pieces)

    def render(self, context: Mapping[str, Any]) -> str:
        """The text with each placeholder replaced by its readable value; a field this event lacks renders
        as "?" instead of failing the decision (the template itself was checked at load)."""
        out = []
        for literal, parts in self._pieces:
            out.append(literal)
            if parts is not None:
                value = lookup_parts(context, parts)
                out.append(UNKNOWN_TEXT if value is MISSING else readable(value))
        return "".join(out)


def readable(value: Any) -> str:
    """A value as an analyst would write it: 5000 not 5000.0, 0.95 not 0.9500000001, lists comma-separated."""
    if type(value) is float:  # the common case first: ABC checks below cost microseconds
        return readable_number(value)
    if value is None:
        return UNKNOWN_TEXT
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return readable_number(float(value))
    if isinstance(value, list | tuple):
        return ", ".join(readable(item) for item in value)
    return str(value)


def readable_number(number: float) -> str:
    """Whole numbers without decimals; otherwise 3 decimals at or above 1 (1234.568) and 3 significant
    digits below 1 (0.95, 0.123, 0.000123), trailing zeros dropped, and as many more as it takes for a
    number below 1 not to read 1 (0.9996); scientific only for the very small and the very large."""
    magnitude = abs(number)
    if not math.isfinite(number) or magnitude >= 1e15:
        return f"{number:.6g}"
    if number.is_integer():
        return str(int(number))
    decimals = 3 if magnitude >= 1 else 2 - math.floor(math.log10(magnitude))
    if decimals > 9:
        return f"{number:.3g}"
    text = f"{number:.{decimals}f}".rstrip("0").rstrip(".")
    while magnitude < 1 and text.lstrip("-") == "1" and decimals < 9:  # a score of 0.9996 never reads "1"
        decimals += 1
        text = f"{number:.{decimals}f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text
