"""Configuration, read once from the environment into one frozen object.

Every entry point (gunicorn, stream worker, batch job, CLI) calls `Settings.from_env()` at its edge and
passes the result down; nothing else reads os.environ. Bad values fail fast with the variable named.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TypedDict, Unpack, overload

from shared.errors import ConfigurationError

DEFAULT_DATA_DIR = Path.home() / ".cache" / "risk-scoring"
DECISION_STORE_SCHEMES = ("sqlite:///", "postgresql://", "postgresql+psycopg://", "postgres://")
NO_DECISION_STORE = "none"
# What an API identity may do (enforced by the doors: shared/doors/access.py says which role each needs).
ROLES = ("scorer", "analyst", "approver", "admin", "viewer")  # viewer: reads the analysts' desk, nothing else
DEFAULT_ROLE = "scorer"  # of a `name:key` or bare-key entry: it may score and nothing else


@dataclass(frozen=True)
class ApiIdentity:
    """One RISK_API_KEYS entry: who presents `key`, and what they may do."""

    name: str
    key: str = field(repr=False)
    roles: frozenset[str]


class SettingsOverrides(TypedDict, total=False):
    """What a caller (a CLI flag, a test) may set over the environment, typed as the fields are."""

    kafka_bootstrap_servers: str
    model_dir: Path
    data_dir: Path
    control_dir: Path
    state_url: str
    decisions_url: str
    decisions_retention_days: int | None
    api_keys: tuple[str, ...]
    pseudonym_key: bytes
    log_level: str
    max_batch_events: int
    max_body_bytes: int
    stream_batch_size: int
    stream_max_idle_ms: int
    state_timeout_ms: int
    stream_outage_seconds: int
    desk_secure_cookies: bool
    desk_secret_key: bytes


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    model_dir: Path = DEFAULT_DATA_DIR / "models"
    data_dir: Path = DEFAULT_DATA_DIR / "data"
    control_dir: Path = DEFAULT_DATA_DIR / "control"  # published rulesets, proposals, the audit log
    # sqlite:///path (embedded, shared by the processes of one machine) or redis://host:port/db
    state_url: str = f"sqlite:///{DEFAULT_DATA_DIR / 'state.sqlite3'}"
    # sqlite:///path (embedded) or postgresql://user:password@host:port/db; "none" records nothing
    decisions_url: str = f"sqlite:///{DEFAULT_DATA_DIR / 'decisions.sqlite3'}"
    decisions_retention_days: int | None = None  # None keeps every decision
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    pseudonym_key: bytes = field(default=b"", repr=False)
    log_level: str = "INFO"
    max_batch_events: int = 500
    max_body_bytes: int = 1_048_576
    stream_batch_size: int = 500
    # How long a stream worker holds back the other partitions' records for one with nothing buffered
    # (Kafka Streams' max.task.idle.ms): event-time order across partitions; 0 never waits.
    stream_max_idle_ms: int = 1000
    # The longest a state-store call may wait (a Redis socket read or connect, SQLite's lock): then 503.
    state_timeout_ms: int = 2000
    # How long a stream worker waits out an outage (state store, decision store, broker) on one micro-batch,
    # retrying with back-off, before it gives up and exits (uncommitted: the batch is consumed again).
    stream_outage_seconds: int = 300
    # The analysts' desk: its cookies are Secure over TLS, and always when this is set (TLS ended by a proxy);
    # the key signs its CSRF tokens (all its workers need the same one; `risk desk` makes one when unset).
    desk_secure_cookies: bool = False
    desk_secret_key: bytes = field(default=b"", repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Unpack[SettingsOverrides]) -> Settings:
        """Settings from `environ` (the process's environment by default); `overrides` (typed, like the
        fields) win over it, then every value is checked."""
        env = os.environ if environ is None else environ
        defaults = cls()
        settings = cls(
            kafka_bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS", defaults.kafka_bootstrap_servers),
            model_dir=Path(env.get("RISK_MODEL_DIR", str(defaults.model_dir))),
            data_dir=Path(env.get("RISK_DATA_DIR", str(defaults.data_dir))),
            control_dir=Path(env.get("RISK_CONTROL_DIR", str(defaults.control_dir))),
            state_url=env.get("RISK_STATE_URL", defaults.state_url),
            decisions_url=env.get("RISK_DECISIONS_URL", defaults.decisions_url),
            decisions_retention_days=_positive_int(env, "RISK_DECISIONS_RETENTION_DAYS", None),
            api_keys=tuple(k.strip() for k in env.get("RISK_API_KEYS", "").split(",") if k.strip()),
            pseudonym_key=env.get("RISK_PSEUDONYM_KEY", "").encode(),
            log_level=env.get("RISK_LOG_LEVEL", defaults.log_level).upper(),
            max_batch_events=_positive_int(env, "RISK_MAX_BATCH_EVENTS", defaults.max_batch_events),
            max_body_bytes=_positive_int(env, "RISK_MAX_BODY_BYTES", defaults.max_body_bytes),
            stream_batch_size=_positive_int(env, "RISK_STREAM_BATCH_SIZE", defaults.stream_batch_size),
            stream_max_idle_ms=_non_negative_int(env, "RISK_STREAM_MAX_IDLE_MS", defaults.stream_max_idle_ms),
            state_timeout_ms=_positive_int(env, "RISK_STATE_TIMEOUT_MS", defaults.state_timeout_ms),
            stream_outage_seconds=_positive_int(env, "RISK_STREAM_OUTAGE_SECONDS", defaults.stream_outage_seconds),
            desk_secure_cookies=_flag(env, "RISK_DESK_SECURE_COOKIES"),
            desk_secret_key=env.get("RISK_DESK_SECRET_KEY", "").encode(),
        )
        settings = replace(settings, **overrides) if overrides else settings
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.log_level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ConfigurationError("RISK_LOG_LEVEL", f"unknown level {self.log_level!r}")
        if not self.state_url.startswith(("sqlite:///", "redis://")):
            raise ConfigurationError("RISK_STATE_URL", "must start with sqlite:/// or redis://")
        if self.decisions_url != NO_DECISION_STORE and not self.decisions_url.startswith(DECISION_STORE_SCHEMES):
            raise ConfigurationError(
                "RISK_DECISIONS_URL", "must start with sqlite:/// or postgresql://, or be none (nothing recorded)"
            )
        if not self.kafka_bootstrap_servers.strip():
            raise ConfigurationError("KAFKA_BOOTSTRAP_SERVERS", "must not be empty")
        keys = [identity.key for identity in self.identities]
        if len(set(keys)) != len(keys):
            raise ConfigurationError("RISK_API_KEYS", "the same key is given twice: each key names one identity")

    @property
    def auth_required(self) -> bool:
        return bool(self.api_keys)

    @cached_property
    def identities(self) -> tuple[ApiIdentity, ...]:
        """RISK_API_KEYS parsed: `name:key:role+role`, `name:key` (role scorer) or a bare key (identity `key-`
        and the key's first 6 characters, role scorer)."""
        return tuple(_identity(entry) for entry in self.api_keys)

    def caller(self, presented: str) -> ApiIdentity | None:
        """The identity a presented key belongs to, or None."""
        found = None
        for identity in self.identities:  # every key is compared: timing says nothing about which one matched
            if hmac.compare_digest(presented.encode(), identity.key.encode()):
                found = identity
        return found

    def identity_of(self, presented: str) -> str | None:
        """The name of the identity a presented key belongs to, or None."""
        caller = self.caller(presented)
        return caller.name if caller else None


def _identity(entry: str) -> ApiIdentity:
    parts = entry.split(":", 2)
    if len(parts) == 1:
        return ApiIdentity(f"key-{entry[:6]}", entry, frozenset({DEFAULT_ROLE}))
    name, key = parts[0].strip(), parts[1].strip()
    if not name or not key:
        raise ConfigurationError("RISK_API_KEYS", "an entry has an empty name or key: write name:key[:role+role]")
    if len(parts) == 2:
        return ApiIdentity(name, key, frozenset({DEFAULT_ROLE}))
    roles = frozenset(role.strip() for role in parts[2].split("+"))
    if not roles or not roles <= set(ROLES):  # the unknown part is not echoed: it may be part of a key
        raise ConfigurationError(
            "RISK_API_KEYS",
            f"the entry of {name!r} ends in something that is not roles ({', '.join(ROLES)}, joined by +)",
        )
    return ApiIdentity(name, key, roles)


@overload
def _positive_int(env: Mapping[str, str], name: str, default: int) -> int: ...
@overload
def _positive_int(env: Mapping[str, str], name: str, default: None) -> int | None: ...
def _positive_int(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    value = _whole_number(env, name)
    if value is None:
        return default
    if value <= 0:
        raise ConfigurationError(name, f"must be positive, got {value}")
    return value


def _non_negative_int(env: Mapping[str, str], name: str, default: int) -> int:
    value = _whole_number(env, name)
    if value is None:
        return default
    if value < 0:
        raise ConfigurationError(name, f"must be zero or more, got {value}")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    """A yes/no variable: 1, true or yes; 0, false, no or unset."""
    raw = env.get(name, "").strip().lower()
    if raw in {"1", "true", "yes"}:
        return True
    if raw in {"", "0", "false", "no"}:
        return False
    raise ConfigurationError(name, f"must be 1 or 0 (true or false), got {raw!r}")


def _whole_number(env: Mapping[str, str], name: str) -> int | None:
    """The variable as a whole number, None when it is not set."""
    raw = env.get(name)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(name, f"must be a whole number, got {raw!r}") from None
