"""Request bodies of the HTTP door: one JSON item, or a batch `{"<key>": [...]}` of them, validated all or
nothing, with every problem named by its field path (`events.3.amount` in a batch, `amount` alone)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import request

from shared.errors import InvalidInputError, PayloadTooLargeError

T = TypeVar("T")


def json_body() -> Any:
    """The request's JSON, or a 422 saying it must be JSON (a body nested beyond the parser is not either)."""
    try:
        body = request.get_json(silent=True)
    except RecursionError:
        body = None
    if body is None:
        raise InvalidInputError({"_body": ["the body must be JSON (Content-Type: application/json)"]})
    return body


def one_or_batch(body: Any, key: str, limit: int) -> tuple[list[Any], bool]:
    """The items of `body` and whether it was a single one (a body that is not a `{key: [...]}` batch)."""
    if not (isinstance(body, dict) and key in body):
        return [body], True
    if set(body) != {key}:
        raise InvalidInputError({k: [f"unknown field beside {key}"] for k in body if k != key})
    items = body[key]
    if not isinstance(items, list) or not items:
        raise InvalidInputError({key: [f"must be a non-empty list of {key}"]})
    if len(items) > limit:
        raise PayloadTooLargeError(f"a batch holds at most {limit} {key}; this one has {len(items)}")
    return items, False


def field_path(key: str, single: bool, index: int, field: str) -> str:
    """How a problem of item `index` is named: `field` alone for a single item, `key.index.field` in a batch."""
    return field if single else f"{key}.{index}.{field}"


def validate_each(
    items: list[Any], key: str, single: bool, validate: Callable[[Any], T]
) -> tuple[list[tuple[int, T]], dict[str, Any]]:
    """Every item through `validate`: the valid ones with their positions, and the problems of the others."""
    valid, problems = [], {}
    for index, item in enumerate(items):
        try:
            valid.append((index, validate(item)))
        except InvalidInputError as error:
            problems.update({field_path(key, single, index, f): m for f, m in error.fields.items()})
    return valid, problems


def validated_all(items: list[Any], key: str, single: bool, validate: Callable[[Any], T]) -> list[T]:
    """Every item through `validate`, or one InvalidInputError naming every field at fault in any of them."""
    valid, problems = validate_each(items, key, single, validate)
    if problems:
        raise InvalidInputError(problems)
    return [item for _, item in valid]
