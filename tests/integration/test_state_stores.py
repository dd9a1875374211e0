"""The window-feature state stores, against a real SQLite file and a real Redis server."""

from __future__ import annotations

import multiprocessing
import random
from pathlib import Path

import pytest
import redis

from shared.errors import ConfigurationError, NotReady
from shared.features.state import Record, StateStore, open_state_store


def test_ranges_exclude_since_and_include_until_ordered_by_time_then_id(state_store: StateStore) -> None:
    """fetch returns since < ts <= until, ties ordered by id, every asked key present."""
    state_store.append("ns", [("k", Record(10.0, "b")), ("k", Record(10.0, "a")), ("k", Record(5.0, "z")),
                              ("k", Record(20.0, "c", 3.5)), ("other", Record(10.0, "x"))])
    found = state_store.fetch("ns", ["k", "missing"], 5.0, 20.0)
    assert [r.id for r in found["k"]] == ["a", "b", "c"]
    assert found["k"][-1] == Record(20.0, "c", 3.5, None)
    assert found["missing"] == []


def test_append_is_idempotent_and_labels_come_later(state_store: StateStore) -> None:
    """Re-appending an id changes nothing (at-least-once delivery); labels attach to known ids only."""
    state_store.append("ns", [("k", Record(1.0, "e1", 10.0))])
    state_store.append("ns", [("k", Record(1.0, "e1", 99.0)), ("k", Record(2.0, "e2", 5.0))])
    state_store.set_labels("ns", [("k", "e1", 1), ("k", "ghost", 1)])
    assert state_store.fetch("ns", ["k"], 0.0, 10.0)["k"] == [Record(1.0, "e1", 10.0, 1), Record(2.0, "e2", 5.0, None)]


def test_prune_drops_old_records_only(state_store: StateStore) -> None:
    """prune(before) removes ts < before in that namespace and reports how many."""
    state_store.append("ns", [("k", Record(float(t), f"e{t}")) for t in range(10)])
    state_store.append("keep", [("k", Record(1.0, "e1"))])
    assert state_store.prune("ns", 5.0) == 5
    assert [r.id for r in state_store.fetch("ns", ["k"], -1.0, 100.0)["k"]] == [f"e{t}" for t in range(5, 10)]
    assert len(state_store.fetch("keep", ["k"], -1.0, 100.0)["k"]) == 1


def test_sqlite_and_redis_agree_on_a_random_history(tmp_path: Path, redis_url: str) -> None:
    """Thousands of seeded random appends, labels and fetches give identical answers from both stores."""
    redis.Redis.from_url(redis_url).flushdb()
    stores = [open_state_store(f"sqlite:///{tmp_path / 'a.sqlite3'}"), open_state_store(redis_url)]
    rng = random.Random(11)
    for step in range(3000):
        key = f"k{rng.randrange(20)}"
        if rng.random() < 0.6:
            record = Record(float(rng.randrange(1000)), f"e{rng.randrange(2000)}", round(rng.uniform(0, 100), 2))
            for store in stores:
                store.append("ns", [(key, record)])
        elif rng.random() < 0.5:
            label = (key, f"e{rng.randrange(2000)}", rng.randrange(2))
            for store in stores:
                store.set_labels("ns", [label])
        else:
            since = float(rng.randrange(1000))
            until = since + rng.randrange(300)
            keys = [f"k{rng.randrange(20)}" for _ in range(3)]
            answers = [store.fetch("ns", keys, since, until) for store in stores]
            assert answers[0] == answers[1], step
    for store in stores:
        store.close()


def _append_many(path: str, worker: int) -> None:
    store = open_state_store(f"sqlite:///{path}")
    for i in range(200):
        store.append("ns", [("shared", Record(float(i), f"w{worker}-{i}")), ("shared", Record(float(i), f"same-{i}"))])
    store.close()


def test_sqlite_is_shared_safely_by_processes(tmp_path: Path) -> None:
    """Four processes appending to one file at once: every distinct record is there exactly once."""
    path = str(tmp_path / "shared.sqlite3")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_many, args=(path, w)) for w in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=60)
        assert process.exitcode == 0
    records = open_state_store(f"sqlite:///{path}").fetch("ns", ["shared"], -1.0, 1e9)["shared"]
    assert len(records) == 4 * 200 + 200
    assert len({r.id for r in records}) == len(records)


def test_unusable_stores_are_reported() -> None:
    """A Redis nobody listens on fails readiness; an unknown URL scheme fails configuration."""
    with pytest.raises(NotReady):
        open_state_store("redis://127.0.0.1:1/0").ping()
    with pytest.raises(ConfigurationError, match="RISK_STATE_URL"):
        open_state_store("memcached://x")
