"""Bounded window state: records older than their namespace's retention are pruned in the background.

Retention is measured in event time, not on the wall clock (a replay of 2018 payments must not be wiped
as it is written): a namespace keeps what lies within its horizon of the newest event time this process
has appended to it. The hot path only notes that newest time (one comparison a batch); a daemon thread
per store and process prunes every `interval` seconds, in the store's own short chunked transactions, so
scoring never waits on more than one chunk. Processes sharing a store each prune by what they have seen;
they see the same stream, so their horizons agree to within a batch.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Mapping, Sequence

from shared.errors import NotReadyError
from shared.logging import get_logger
from shared.metrics import STATE_PRUNED
from shared.state.store import Record, StateStore, WindowQuery, WindowTotals

log = get_logger("state.retention")


class RetainedStore:
    """A state store whose namespaces keep `retention[namespace]` seconds of event time."""

    def __init__(self, store: StateStore, retention: Mapping[str, float], interval: float = 60.0) -> None:
        if interval <= 0 or any(horizon <= 0 for horizon in retention.values()):
            raise ValueError("retention horizons and the prune interval must be positive")
        self.store = store
        self.retention = dict(retention)
        self.interval = interval
        self._newest: dict[str, float] = {}
        self._lock = threading.Lock()
        self._pruner: _Pruner | None = None

    # ------------------------------------------------------------------ the store, as it is

    def fetch(self, namespace: str, keys: Sequence[str], since: float, until: float) -> dict[str, list[Record]]:
        return self.store.fetch(namespace, keys, since, until)

    def append(self, namespace: str, items: Sequence[tuple[str, Record]]) -> None:
        self.append_many({namespace: items})

    def append_many(self, batches: Mapping[str, Sequence[tuple[str, Record]]]) -> None:
        self.store.append_many(batches)
        self._noted(batches)

    def append_then_total(
        self, batches: Mapping[str, Sequence[tuple[str, Record]]], queries: Mapping[str, Sequence[WindowQuery]]
    ) -> dict[str, list[list[WindowTotals]]]:
        totals = self.store.append_then_total(batches, queries)
        self._noted(batches)
        return totals

    def set_labels(self, namespace: str, items: Sequence[tuple[str, str, int]]) -> None:
        self.store.set_labels(namespace, items)

    def prune(self, namespace: str, before: float) -> int:
        return self.store.prune(namespace, before)

    def count(self, namespace: str) -> int:
        return self.store.count(namespace)

    def ping(self) -> None:
        self.store.ping()

    def close(self) -> None:
        pruner, self._pruner = self._pruner, None
        if pruner is not None:
            pruner.stopped.set()
        self.store.close()

    # ------------------------------------------------------------------ retention

    def prune_expired(self) -> dict[str, int]:
        """One pass now: each retained namespace pruned below its newest event time less its horizon."""
        with self._lock:
            newest = dict(self._newest)
        removed: dict[str, int] = {}
        for namespace, latest in newest.items():
            count = self.store.prune(namespace, latest - self.retention[namespace])
            removed[namespace] = count
            if count:
                STATE_PRUNED.labels(namespace).inc(count)
                log.info("state_pruned", namespace=namespace, records=count)
        return removed

    def _noted(self, batches: Mapping[str, Sequence[tuple[str, Record]]]) -> None:
        """The newest event time appended to each retained namespace; the pruner started in this process."""
        for namespace, items in batches.items():
            if namespace in self.retention and items:
                latest = max(record.ts for _, record in items)
                if latest > self._newest.get(namespace, float("-inf")):
                    with self._lock:
                        self._newest[namespace] = max(latest, self._newest.get(namespace, float("-inf")))
        pruner = self._pruner
        if pruner is None or pruner.pid != os.getpid():  # a thread does not survive a fork
            with self._lock:
                if self._pruner is None or self._pruner.pid != os.getpid():
                    self._pruner = _Pruner(self)
                    self._pruner.start()


class _Pruner(threading.Thread):
    """Prunes its store every `interval` seconds until the store is closed or dropped."""

    def __init__(self, owner: RetainedStore) -> None:
        super().__init__(name="state-pruner", daemon=True)
        self.pid = os.getpid()
        self.stopped = threading.Event()
        self._owner = weakref.ref(owner)
        self._interval = owner.interval

    def run(self) -> None:
        while not self.stopped.wait(self._interval):
            owner = self._owner()
            if owner is None:
                return
            try:
                owner.prune_expired()
            except NotReadyError as error:  # the store is away for a moment: the next round tries again
                log.warning("state_prune_failed", error=str(error)[:200])
            del owner
