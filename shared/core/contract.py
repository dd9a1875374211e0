"""The contract at every door: a raw event (parsed JSON, a CSV row) through the service's marshmallow schema,
once, into a `ValidEvent` that keeps both the typed values and the serialised form that leaves the core."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from marshmallow import Schema, ValidationError

from shared.core.decision import fingerprint
from shared.errors import ConfigurationError, InvalidInputError
from shared.jsonlimits import MAX_NESTING, too_deep
from shared.privacy import pseudonymise

Event = dict[str, Any]

_SURROGATE = re.compile("[\ud800-\udfff]")


class ValidEvent(NamedTuple):
    """An event that passed its contract: `data` as loaded (typed values, for the features), `document`, its
    JSON form (for rules and records), and the `fingerprint` of that document (what tells a replay from
    another payload under the same id). Personal fields are keyed pseudonyms in both: nothing past the
    contract holds the raw value, so window state is keyed by the pseudonym too."""

    data: Event
    document: dict[str, Any]
    fingerprint: str


class Contract:
    """A service's event schema, and the pseudonymisation of its personal fields."""

    def __init__(self, schema: type[Schema], personal_fields: tuple[str, ...] = (), pseudonym_key: bytes = b"") -> None:
        if personal_fields and not pseudonym_key:
            raise ConfigurationError(
                "RISK_PSEUDONYM_KEY", f"must be set: this service pseudonymises {', '.join(personal_fields)}"
            )
        self.schema = schema()
        self.personal_fields = personal_fields
        self._key = pseudonym_key

    def validate(self, raw: object) -> ValidEvent:
        """One raw event, or InvalidInputError naming every field at fault."""
        data = validate_event(self.schema, raw)
        document = self.schema.dump(data)
        for name in self.personal_fields:
            if data.get(name) is None:
                continue
            data[name] = self.pseudonym(data[name])
            if name in document:  # absent when the field is load-only (accepted, never written)
                document[name] = data[name]
        return ValidEvent(data, document, fingerprint(document))

    def pseudonym(self, value: object) -> str:
        """A personal field's value as this contract writes it: its keyed pseudonym (for engines that
        validate columns rather than events, and must give the same pseudonyms)."""
        return pseudonymise(value, self._key)


def validate_event(schema: Schema, raw: object) -> Event:
    """One raw event (parsed JSON) through a contract, or InvalidInputError naming every field at fault."""
    if not isinstance(raw, Mapping):
        raise InvalidInputError({"_schema": ["the event must be a JSON object"]})
    if too_deep(raw):
        raise InvalidInputError({"_schema": [f"the event nests more than {MAX_NESTING} levels deep"]})
    surrogates = surrogate_problems(raw)
    if surrogates:
        raise InvalidInputError(surrogates)
    try:
        loaded: Event = schema.load(raw)
    except ValidationError as error:
        raise InvalidInputError(_flatten(error.normalized_messages())) from None
    return loaded


def surrogate_problems(raw: Mapping[str, Any]) -> dict[str, list[str]]:
    """Every string of an event (values, and keys, at any depth) holding a lone surrogate, by field path.
    JSON's `"\\ud800"` escape decodes to one; it is not Unicode text, so it cannot be encoded as UTF-8 for
    the state store, the rules engine, the logs or the decision, and is refused here, at the contract."""
    problems: dict[str, list[str]] = {}
    stack: list[tuple[str, Any]] = [("", raw)]
    while stack:
        prefix, value = stack.pop()
        items = value.items() if isinstance(value, Mapping) else enumerate(value)
        for key, item in items:
            path = f"{prefix}{_printable(str(key))}"
            if isinstance(key, str) and _SURROGATE.search(key):
                problems[path] = ["the field name holds a lone surrogate, which is not Unicode text"]
            elif isinstance(item, str) and not item.isascii() and (found := _SURROGATE.search(item)):
                problems[path] = [
                    f"holds a lone surrogate (\\u{ord(found.group()):04x}) at character {found.start()}, "
                    "which is not Unicode text"
                ]
            elif isinstance(item, Mapping | list):
                stack.append((f"{path}.", item))
    return problems


def _printable(text: str) -> str:
    """`text` with lone surrogates written as `\\udXXX` escapes, so a message naming it can be encoded."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested messages to {"field.path": [messages]} (list positions become path parts)."""
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return {prefix or "_schema": messages}
    flat: dict[str, list[str]] = {}
    items = messages.items() if isinstance(messages, Mapping) else enumerate(messages)
    for key, value in items:
        path = f"{prefix}.{key}" if prefix else str(key)
        flat.update(_flatten(value, path))
    return flat
