"""The contract at every door: a raw event (parsed JSON, a CSV row) through the service's marshmallow schema,
once, into a `ValidEvent` that keeps both the typed values and the serialised form that leaves the core."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, TypeGuard

from marshmallow import RAISE, Schema, ValidationError, fields, missing
from marshmallow.decorators import POST_DUMP, POST_LOAD, PRE_DUMP, PRE_LOAD, VALIDATES, VALIDATES_SCHEMA

from shared.core.decision import compile_dump, fingerprint
from shared.errors import ConfigurationError, InvalidInputError
from shared.jsonlimits import MAX_NESTING, too_deep
from shared.privacy import pseudonymise

Event = dict[str, Any]

_SURROGATE = re.compile("[\ud800-\udfff]")
_SCALARS = (str, int, float, bool, type(None))

Load = Callable[[dict[str, Any]], Event | None]


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
        self._load = compile_load(self.schema)
        self._dump = compile_dump(self.schema) if dump_compilable(self.schema) else self.schema.dump

    def validate(self, raw: object) -> ValidEvent:
        """One raw event, or InvalidInputError naming every field at fault."""
        loaded = self._load(raw) if self._load is not None and _plain(raw) else None
        data = validate_event(self.schema, raw) if loaded is None else loaded
        document = self._dump(data)
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


def compile_load(schema: Schema) -> Load | None:
    """`schema.load` of a valid flat event without marshmallow's per-load machinery (error store, getters,
    unknown-field pass, hook look-ups): each field's own `deserialize`, in the schema's field order, as
    `Schema._deserialize` calls it. It answers None whenever marshmallow might say anything else (a
    field refuses its value, an unknown field), and the caller then loads through the schema, so every
    error message is marshmallow's own. None (no fast form) for a schema with hooks or options it does
    not follow."""
    hooked = any(schema._hooks[tag] for tag in (PRE_LOAD, POST_LOAD, VALIDATES, VALIDATES_SCHEMA))
    if hooked or schema.many or schema.partial or schema.unknown != RAISE or schema.dict_class is not dict:
        return None
    plan = [(field.data_key or name, field.attribute or name, field) for name, field in schema.load_fields.items()]
    if any("." in attribute for _, attribute, _ in plan):  # marshmallow would nest such a value
        return None
    known = frozenset(key for key, _, _ in plan)
    options = {} if schema.partial is None else {"partial": schema.partial}

    def load(raw: dict[str, Any]) -> Event | None:
        if not known.issuperset(raw):
            return None
        loaded: Event = {}
        for key, attribute, field in plan:
            try:
                value = field.deserialize(raw.get(key, missing), key, raw, **options)
            except ValidationError:
                return None
            if value is not missing:
                loaded[attribute] = value
        return loaded

    return load


def dump_compilable(schema: Schema) -> bool:
    """Whether `compile_dump` writes what `schema.dump` does: no dump hooks, and no field whose dump it does
    not follow (a default for absent values, numbers dumped as text), nested schemas included."""
    if schema._hooks[PRE_DUMP] or schema._hooks[POST_DUMP]:
        return False
    return all(_field_dump_compilable(field) for field in schema.dump_fields.values())


def _field_dump_compilable(field: fields.Field) -> bool:
    if field.dump_default is not missing or getattr(field, "as_string", False):
        return False
    if type(field) is fields.Nested:
        return dump_compilable(field.schema)
    if type(field) is fields.List:
        return _field_dump_compilable(field.inner)
    if type(field) is fields.Dict:
        return all(_field_dump_compilable(f) for f in (field.key_field, field.value_field) if f is not None)
    return True


def _plain(raw: object) -> TypeGuard[dict[str, Any]]:
    """A JSON object of scalars whose text is all ASCII: nothing nested, no lone surrogate, so neither the
    nesting nor the surrogate check can refuse it."""
    if type(raw) is not dict:
        return False
    for key, value in raw.items():
        if type(key) is not str or not key.isascii() or type(value) not in _SCALARS:
            return False
        if type(value) is str and not value.isascii():
            return False
    return True


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
