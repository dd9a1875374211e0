"""structlog, configured once: JSON lines on stderr, personal identifiers masked by a processor.

Callers log plain values (`log.info("scored", customer_id=...)`); the masking processor replaces every
value under a personal key with its keyed pseudonym before anything is rendered (a value that already is
one, such as a decision's entity id, is kept, so the logs name an entity as its decisions do). Lines from
the standard library's `logging` (kafka-python, werkzeug, gunicorn, redis) go through structlog's
`ProcessorFormatter` with the same processors, so they are JSON and masked like the project's own;
kafka-python's and py4j's (Spark's bridge) chatty INFO lines are kept at WARNING and above unless the level is DEBUG.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any, TextIO

import orjson
import structlog
from structlog._config import _CONFIG

from shared.privacy import pseudonym_of

PERSONAL_KEYS = frozenset(
    {
        "customer_id",
        "card_id",
        "entity_id",
        "entity_ids",
        "patient_id",
        "patient_name",
        "policy_id",
        "policyholder",
        "name",
        "first_name",
        "last_name",
        "email",
        "phone",
        "address",
        "date_of_birth",
    }
)


class MaskPersonalData:
    """Replaces personal values with keyed pseudonyms, also inside nested dicts and lists."""

    def __init__(self, key: bytes, personal_keys: Iterable[str] = PERSONAL_KEYS) -> None:
        self._key = key
        self._personal = frozenset(personal_keys)

    def __call__(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> Mapping[str, Any]:
        personal, mask = self._personal, self._mask
        # most values of a line are neither personal nor nested: kept without a call (a line every request)
        return {k: mask(k, v) if k in personal or isinstance(v, dict) else v for k, v in event_dict.items()}

    def _mask(self, key: str, value: Any) -> Any:
        if key in self._personal and value is not None:
            if isinstance(value, list | tuple):
                return [pseudonym_of(v, self._key) for v in value]
            return pseudonym_of(value, self._key)
        if isinstance(value, dict):
            return {k: self._mask(k, v) for k, v in value.items()}
        return value


QUIETER_LIBRARIES = ("kafka", "py4j")  # INFO from these is connection chatter; WARNING and above is kept


def configure_logging(level: str = "INFO", pseudonym_key: bytes = b"", stream: TextIO | None = None) -> None:
    """Configure structlog, and the standard library's root logger through it, for the whole process.
    Safe to call again (tests reconfigure)."""
    output = stream or sys.stderr
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        MaskPersonalData(pseudonym_key),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, structlog.processors.JSONRenderer(_json_line)],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level)),
        logger_factory=structlog.PrintLoggerFactory(output),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(output)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[_component_from_logger_name, structlog.stdlib.ExtraAdder(), *shared],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(_json_line),
            ],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_risk_handler", False)]:
        root.removeHandler(old)  # ours from an earlier call; anyone else's handlers stay
    handler._risk_handler = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIETER_LIBRARIES:
        logging.getLogger(name).setLevel(level if level == "DEBUG" else "WARNING")


_ORJSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _json_line(event_dict: Any, default: Callable[[Any], Any]) -> str:
    """A line's JSON by orjson (a log line is written for every request and message; the standard library's
    encoder took several times longer); dates and dataclasses still go to structlog's `default`, and what
    orjson refuses (an integer beyond 64 bits, keys that are not text) is written by the standard library."""
    try:
        return orjson.dumps(event_dict, default=default, option=_ORJSON_OPTIONS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(event_dict, default=default)


def _component_from_logger_name(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> Mapping[str, Any]:
    """A library's logger name as the line's component, as the project's own lines carry theirs."""
    record = event_dict.get("_record")
    if record is not None:
        event_dict.setdefault("component", record.name)
    return event_dict


def get_logger(name: str) -> Any:
    """A lazy logger: it takes the configuration current at each use, so module-level loggers created
    before `configure_logging` still render JSON and mask personal data."""
    return _Logger(structlog.get_logger(component=name))


class _Logger:
    """structlog's lazy proxy, bound once per configuration rather than once per line: the proxy assembles
    a new bound logger (context, logger, wrapper) at every call, a few microseconds a request. structlog's
    configuration is a handful of objects that `structlog.configure` replaces (a processor list changed in
    place, as by `structlog.testing.capture_logs`, is seen by the bound logger as it is): while they are
    the same objects, the bound logger is the one the proxy would make."""

    __slots__ = ("_bound", "_configuration", "_proxy")

    def __init__(self, proxy: Any) -> None:
        self._proxy = proxy
        self._configuration: tuple[Any, ...] = ()
        self._bound: Any = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy, pickle and abstract-method probes: not a logging method
            raise AttributeError(name)
        configuration = _configuration()
        if len(configuration) != len(self._configuration) or any(
            now is not then for now, then in zip(configuration, self._configuration, strict=True)
        ):
            self._bound, self._configuration = self._proxy.bind(), configuration
        return getattr(self._bound, name)


def _configuration() -> tuple[Any, ...]:
    """structlog's configuration objects themselves (its public `get_config` gives copies)."""
    return (
        _CONFIG.default_processors,
        _CONFIG.default_context_class,
        _CONFIG.default_wrapper_class,
        _CONFIG.logger_factory,
    )
