"""Window-feature state: the records behind every online window feature, in SQLite (one machine, shared by
its processes) or Redis (many machines), chosen by `RISK_STATE_URL`, each namespace kept for its retention."""

from __future__ import annotations

from collections.abc import Mapping

from shared.errors import ConfigurationError
from shared.sqlite import sqlite_path
from shared.state.retention import RetainedStore
from shared.state.store import (
    DEFAULT_TIMEOUT_SECONDS,
    Record,
    RedisStateStore,
    SqliteStateStore,
    StateStore,
    WindowQuery,
    WindowTotals,
    totals_over,
)

__all__ = [
    "Record",
    "RedisStateStore",
    "RetainedStore",
    "SqliteStateStore",
    "StateStore",
    "WindowQuery",
    "WindowTotals",
    "open_state_store",
    "totals_over",
]


def open_state_store(
    url: str,
    retention: Mapping[str, float] | None = None,
    prune_interval_seconds: float = 60.0,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
) -> StateStore:
    """The store a `RISK_STATE_URL` names. Connects lazily, so it is safe to call before a fork. With
    `retention` (namespace -> seconds of event time its windows look back), older records are pruned in
    the background every `prune_interval_seconds`. A call waits at most `timeout_seconds` for the store
    (`RISK_STATE_TIMEOUT_MS`), then raises NotReadyError."""
    store: StateStore
    if url.startswith("sqlite://"):
        store = SqliteStateStore(sqlite_path(url, "RISK_STATE_URL"), busy_timeout_seconds=timeout_seconds)
    elif url.startswith("redis://"):
        store = RedisStateStore(url, timeout_seconds=timeout_seconds)
    else:
        raise ConfigurationError("RISK_STATE_URL", f"unsupported state store {url!r}: use sqlite:///PATH or redis://")
    return RetainedStore(store, retention, prune_interval_seconds) if retention else store
