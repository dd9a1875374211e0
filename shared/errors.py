"""The one error hierarchy. HTTP maps it in `shared.doors.http`; the stream worker maps it to dead letters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class RiskError(Exception):
    """Base of every error the project raises on purpose."""

    http_status = 500
    code = "internal_error"

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.code, "message": str(self)}


class ConfigurationError(RiskError):
    """A setting is missing or wrong: raised at start-up, never per request."""

    code = "configuration_error"

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


class InvalidInputError(RiskError):
    """Client data failed its contract. `fields` maps each field path to its messages."""

    http_status = 422
    code = "invalid_input"

    def __init__(self, fields: Mapping[str, Any], message: str = "the input does not match the contract") -> None:
        super().__init__(message)
        self.fields = dict(fields)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "fields": self.fields}


class ConflictError(InvalidInputError):
    """The input contradicts what is on record (an event id decided before for another payload)."""

    http_status = 409
    code = "conflict"


class UnknownEventError(InvalidInputError):
    """The input names an event that has no recorded decision (e.g. an outcome for it)."""

    http_status = 404
    code = "unknown_event"


class NotFoundError(RiskError):
    """Nothing is on record under the key asked for."""

    http_status = 404
    code = "not_found"


class UsageError(RiskError):
    """A command was asked for something it cannot do as asked; the message says how to ask instead."""

    code = "usage_error"


class PayloadTooLargeError(RiskError):
    http_status = 413
    code = "payload_too_large"


class UnauthorizedError(RiskError):
    http_status = 401
    code = "unauthorized"


class NotReadyError(RiskError):
    """A dependency (model, broker, state store) is not usable yet."""

    http_status = 503
    code = "not_ready"


class ModelNotFoundError(NotReadyError):
    code = "model_not_found"


class ForbiddenError(RiskError):
    """The identity is known but may not do this (e.g. approve its own proposal)."""

    http_status = 403
    code = "forbidden"


class InvalidRulesetError(RiskError):
    """A ruleset failed to load; the message names the rule and the problem. Over HTTP (a ruleset sent to
    the control plane) it is the client's input: 422 with every problem."""

    http_status = 422
    code = "invalid_ruleset"

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.problems = problems

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "problems": self.problems}
