"""Window-feature state: the records behind every online window feature, in SQLite (one machine, shared by
its processes) or Redis (many machines), chosen by `RISK_STATE_URL`."""

from shared.state.store import (
    Record,
    RedisStateStore,
    SqliteStateStore,
    StateStore,
    WindowQuery,
    WindowTotals,
    open_state_store,
    totals_over,
)

__all__ = [
    "Record",
    "RedisStateStore",
    "SqliteStateStore",
    "StateStore",
    "WindowQuery",
    "WindowTotals",
    "open_state_store",
    "totals_over",
]
