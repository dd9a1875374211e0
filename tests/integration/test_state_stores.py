"""The window-feature state stores, against a real SQLite file and a real Redis server."""

from __future__ import annotations

import math
import multiprocessing
import random
import shutil
import sqlite3
import threading
import time
from collections.abc import Sequence
from contextlib import closing
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest
import redis

from shared.errors import ConfigurationError, NotReadyError
from shared.state import (
    Record,
    SqliteStateStore,
    StateStore,
    WindowQuery,
    WindowTotals,
    open_state_store,
    totals_over,
)
from tests.fixtures.redis import flush_redis, free_port

EVERYTHING = (-math.inf, math.inf)


def ids(records: Sequence[Record]) -> list[str]:
    return [r.id for r in records]


# ------------------------------------------------------------------ the contract, against both stores


def test_fetch_excludes_since_and_includes_until(state_store: StateStore) -> None:
    """A record exactly at `since` is left out, one exactly at `until` is in: windows are (since, until]."""
    state_store.append("ns", [("k", Record(t, f"e{t}")) for t in (4.0, 5.0, 5.5, 19.999, 20.0, 20.001)])
    assert ids(state_store.fetch("ns", ["k"], 5.0, 20.0)["k"]) == ["e5.5", "e19.999", "e20.0"]
    assert state_store.fetch("ns", ["k"], 20.0, 20.0)["k"] == []


def test_records_come_back_by_time_then_id_whatever_the_append_order(state_store: StateStore) -> None:
    """Ties on time are ordered by id, by code point (so 'B' < 'a' < 'aa' < 'é'), in both stores."""
    state_store.append("ns", [("k", Record(10.0, "é")), ("k", Record(10.0, "aa")), ("k", Record(11.0, "0"))])
    state_store.append("ns", [("k", Record(10.0, "a")), ("k", Record(9.5, "z")), ("k", Record(10.0, "B"))])
    found = state_store.fetch("ns", ["k"], *EVERYTHING)["k"]
    assert ids(found) == ["z", "B", "a", "aa", "é", "0"]
    assert found == sorted(found)


def test_one_fetch_answers_many_keys_and_every_asked_key_is_present(state_store: StateStore) -> None:
    """1,200 keys in one call (more than one SQLite query's worth), repeats and unknown keys included;
    records of another namespace never leak in."""
    state_store.append("ns", [(f"k{i}", Record(float(i), f"e{i}", value=i / 2)) for i in range(1200)])
    state_store.append("other", [("k1", Record(1.0, "not-mine"))])
    keys = [f"k{i}" for i in range(1200)] + ["k7", "unknown"]
    found = state_store.fetch("ns", keys, -1.0, 2000.0)
    assert set(found) == set(keys)
    assert found["k1"] == [Record(1.0, "e1", 0.5)]
    assert found["k1199"] == [Record(1199.0, "e1199", 599.5)]
    assert found["unknown"] == []
    assert state_store.fetch("ns", [], *EVERYTHING) == {}


def test_one_write_appends_to_several_namespaces(state_store: StateStore) -> None:
    """append_many: each namespace gets its own records, as separate appends would give, idempotently;
    a namespace the store refuses fails the whole write before anything is written."""
    state_store.append("a", [("k", Record(1.0, "old", 1.0))])
    batches = {
        "a": [("k", Record(1.0, "old", 9.0)), ("k", Record(2.0, "new", 2.0))],
        "b": [("k", Record(3.0, "x", label=1)), ("j", Record(4.0, "y"))],
        "c": [],
    }
    state_store.append_many(batches)
    state_store.append_many(batches)
    assert state_store.fetch("a", ["k"], *EVERYTHING)["k"] == [Record(1.0, "old", 1.0), Record(2.0, "new", 2.0)]
    assert state_store.fetch("b", ["k", "j"], *EVERYTHING) == {
        "k": [Record(3.0, "x", label=1)],
        "j": [Record(4.0, "y")],
    }
    with pytest.raises(ValueError):
        state_store.append_many({"d": [("k", Record(5.0, "z"))], "bad name": [("k", Record(5.0, "z"))]})
    assert state_store.fetch("d", ["k"], *EVERYTHING)["k"] == []


def test_window_totals_see_the_records_appended_with_them(state_store: StateStore) -> None:
    """append_then_total: windows are (bound, until], ties at `until` cut by id as text; the records of
    the same call count, a redelivered one once; labels 1 are the positives; a key never seen totals 0."""
    state_store.append(
        "ns", [("k", Record(1.0, "a", 1.0, 1)), ("k", Record(5.0, "b", 2.0, 0)), ("k", Record(10.0, "c", 4.0, 1))]
    )
    batch = {
        "ns": [
            ("k", Record(10.0, "d", 8.0)),
            ("k", Record(10.0, "B", 16.0)),
            ("k", Record(1.0, "a", 99.0)),
            ("k", Record(11.0, "é", 32.0)),
        ]
    }
    queries = {
        "ns": [
            WindowQuery("k", (0.0, 1.0, 5.0), 10.0),
            WindowQuery("k", (0.0,), 10.0, "c"),
            WindowQuery("k", (0.0, 4.999), 10.0, "B"),
            WindowQuery("k", (), 10.0),
            WindowQuery("unknown", (0.0,), 10.0, "x"),
            WindowQuery("k", (9.0,), 11.0, "z"),
            WindowQuery("k", (9.0,), 11.0, "é"),
            WindowQuery("k", (-math.inf,), math.inf),
        ],
        "empty": [],
    }
    totals = state_store.append_then_total(batch, queries)
    assert totals["empty"] == []
    assert totals["ns"] == [
        [WindowTotals(5, 31.0, 2), WindowTotals(4, 30.0, 1), WindowTotals(3, 28.0, 1)],
        [WindowTotals(4, 23.0, 2)],  # B (16) sorts before c, d after it
        [WindowTotals(3, 19.0, 1), WindowTotals(2, 18.0, 0)],
        [],
        [WindowTotals(0, 0.0, 0)],
        [WindowTotals(3, 28.0, 1)],  # 'é' sorts after 'z' (by code point, as UTF-8 bytes): cut
        [WindowTotals(4, 60.0, 1)],
        [WindowTotals(6, 63.0, 2)],
    ]


def test_append_is_idempotent_by_id(state_store: StateStore) -> None:
    """A redelivered id, even with another time, value or label, changes nothing, in a later batch or
    in the same one: the first write wins, so at-least-once delivery never counts an event twice."""
    state_store.append("ns", [("k", Record(1.0, "e1", 10.0))])
    state_store.append(
        "ns",
        [
            ("k", Record(1.0, "e1", 99.0, 1)),
            ("k", Record(2.0, "e2", 5.0)),
            ("k", Record(0.5, "e2", 7.0)),
            ("k", Record(5.0, "e1", 1.0)),
        ],
    )
    state_store.append("ns", [])
    assert state_store.fetch("ns", ["k"], *EVERYTHING)["k"] == [Record(1.0, "e1", 10.0), Record(2.0, "e2", 5.0)]


def test_labels_learnt_later_attach_to_known_records_only(state_store: StateStore) -> None:
    """set_labels labels and relabels existing records, keeps values, and ignores unknown ids and keys
    (it never creates records); a label given at append time is kept."""
    state_store.append(
        "ns", [("k", Record(1.0, "e1", 10.0)), ("k", Record(2.0, "e2", 5.0, 0)), ("j", Record(1.0, "j1", 1.5))]
    )
    state_store.set_labels("ns", [("k", "e1", 1), ("k", "ghost", 1), ("nobody", "e1", 1), ("j", "e2", 1)])
    state_store.set_labels("ns", [])
    found = state_store.fetch("ns", ["k", "j", "nobody"], *EVERYTHING)
    assert found == {
        "k": [Record(1.0, "e1", 10.0, 1), Record(2.0, "e2", 5.0, 0)],
        "j": [Record(1.0, "j1", 1.5)],
        "nobody": [],
    }
    state_store.set_labels("ns", [("k", "e1", 0)])
    assert state_store.fetch("ns", ["k"], *EVERYTHING)["k"][0] == Record(1.0, "e1", 10.0, 0)


def test_prune_drops_older_records_of_one_namespace(state_store: StateStore) -> None:
    """prune(before) removes ts < before (one exactly at `before` stays), counts them, spares other
    namespaces, and frees pruned ids: a pruned id can be appended again, but not labelled."""
    state_store.append("ns", [("k", Record(float(t), f"e{t}")) for t in range(10)] + [("gone", Record(1.0, "g"))])
    state_store.append("keep", [("k", Record(1.0, "e1"))])
    assert state_store.prune("ns", 5.0) == 6
    assert state_store.prune("ns", 5.0) == 0
    assert ids(state_store.fetch("ns", ["k"], *EVERYTHING)["k"]) == [f"e{t}" for t in range(5, 10)]
    assert state_store.fetch("ns", ["gone"], *EVERYTHING)["gone"] == []
    assert len(state_store.fetch("keep", ["k"], *EVERYTHING)["k"]) == 1
    state_store.set_labels("ns", [("gone", "g", 1)])
    assert state_store.fetch("ns", ["gone"], *EVERYTHING)["gone"] == []
    state_store.append("ns", [("gone", Record(1.0, "g", 2.0))])
    assert state_store.fetch("ns", ["gone"], *EVERYTHING)["gone"] == [Record(1.0, "g", 2.0)]


def test_a_large_prune_over_many_keys_removes_exactly_the_old_records(state_store: StateStore) -> None:
    """6,000 records over 600 keys, half of them old: more than one prune chunk in either store."""
    state_store.append("ns", [(f"k{k}", Record(float(t), f"e{k}-{t}")) for k in range(600) for t in range(10)])
    assert state_store.prune("ns", 5.0) == 3000
    found = state_store.fetch("ns", [f"k{k}" for k in range(600)], *EVERYTHING)
    assert all([r.ts for r in records] == [5.0, 6.0, 7.0, 8.0, 9.0] for records in found.values())


def test_both_stores_refuse_what_one_of_them_could_not_store_faithfully(state_store: StateStore) -> None:
    """A namespace with ':' (ambiguous in a Redis key) and NaN times (unordered) fail alike in both
    stores, and write nothing."""
    with pytest.raises(ValueError, match="namespace"):
        state_store.append("a:b", [("k", Record(1.0, "e"))])
    with pytest.raises(ValueError, match="NaN"):
        state_store.append("ns", [("k", Record(1.0, "fine")), ("k", Record(math.nan, "e"))])
    with pytest.raises(ValueError, match="NaN"):
        state_store.fetch("ns", ["k"], math.nan, 1.0)
    assert state_store.fetch("ns", ["k"], *EVERYTHING)["k"] == []


def _append_in_child(store: StateStore) -> None:
    """Runs in a forked child: an assertion failing here makes the child's exit code non-zero."""
    store.append("ns", [("k", Record(2.0, "child"))])
    assert ids(store.fetch("ns", ["k"], *EVERYTHING)["k"]) == ["parent-1", "child"]


def test_a_store_used_before_a_fork_works_in_the_child_and_after_it(state_store: StateStore) -> None:
    """A store whose connection is already open is usable in a forked child (as gunicorn forks its
    workers), which makes its own connection, and the parent's keeps working after the child exits."""
    state_store.append("ns", [("k", Record(1.0, "parent-1"))])
    child = multiprocessing.get_context("fork").Process(target=_append_in_child, args=(state_store,))
    child.start()
    child.join(timeout=20)
    assert child.exitcode == 0
    state_store.append("ns", [("k", Record(3.0, "parent-2"))])
    assert ids(state_store.fetch("ns", ["k"], *EVERYTHING)["k"]) == ["parent-1", "child", "parent-2"]


# ------------------------------------------------------------------ SQLite and Redis agree


def _random_history_step(rng: random.Random, stores: list[StateStore], step: int) -> None:
    """One random operation applied to every store; any answer must be the same from all of them."""
    namespace = rng.choice(["fraud.card", "claims.policy"])
    keys = [f"k{i}" for i in range(12)] + ["ké"]

    def record() -> Record:
        label = rng.choice([None, None, None, 0, 1])
        return Record(rng.randrange(400) / 2, f"e{rng.randrange(900)}", round(rng.uniform(-5, 500), 2), label)

    roll = rng.random()
    if roll < 0.45:
        batch = [(rng.choice(keys), record()) for _ in range(rng.randint(1, 6))]
        for store in stores:
            store.append(namespace, batch)
    elif roll < 0.60:
        labels = [(rng.choice(keys), f"e{rng.randrange(900)}", rng.randrange(2)) for _ in range(rng.randint(1, 4))]
        for store in stores:
            store.set_labels(namespace, labels)
    elif roll < 0.75:
        batch = [(rng.choice(keys), record()) for _ in range(rng.randint(0, 3))]
        queries = [
            WindowQuery(
                rng.choice([*keys, "absent"]),
                tuple(rng.randrange(400) / 2 - 30 for _ in range(rng.randint(1, 3))),
                rng.randrange(400) / 2,
                rng.choice([None, f"e{rng.randrange(900)}"]),
            )
            for _ in range(rng.randint(1, 4))
        ]
        first, *others = [
            store.append_then_total({namespace: batch}, {namespace: queries})[namespace] for store in stores
        ]
        for other in others:
            assert_same_totals(other, first, f"step {step}: totals {namespace} {queries}")
        history = stores[0].fetch(namespace, [q.key for q in queries], *EVERYTHING)
        assert_same_totals(first, [totals_over(history[q.key], q) for q in queries], f"step {step}: definition")
    elif roll < 0.98:
        since = rng.choice([-math.inf, rng.randrange(400) / 2])
        until = rng.choice([math.inf, since + rng.randrange(120) / 2])
        asked = [rng.choice([*keys, "absent"]) for _ in range(rng.randint(1, 5))]
        first, *others = [store.fetch(namespace, asked, since, until) for store in stores]
        assert all(other == first for other in others), f"step {step}: fetch {namespace} {asked} ({since}, {until}]"
    else:
        before = rng.randrange(60) / 2
        counts = [store.prune(namespace, before) for store in stores]
        assert len(set(counts)) == 1, f"step {step}: prune {namespace} < {before}: {counts}"


def assert_same_totals(actual: list[list[WindowTotals]], expected: list[list[WindowTotals]], message: str) -> None:
    """Counts exactly; sums to rounding (SQLite may add with compensated summation)."""
    assert [[(t.count, t.positives) for t in q] for q in actual] == [
        [(t.count, t.positives) for t in q] for q in expected
    ], message
    for mine, theirs in zip(actual, expected, strict=True):
        assert [t.value for t in mine] == pytest.approx([t.value for t in theirs], rel=1e-12, abs=1e-9), message


def test_sqlite_and_redis_agree_on_a_random_history(tmp_path: Path, redis_url: str) -> None:
    """3,000 seeded random batches of appends (with redeliveries, ties and labels), relabels, prunes,
    fetches and window totals give identical answers from both stores, step by step and at the end, and
    the totals are those of the definition (`totals_over`) on the records fetched."""
    flush_redis(redis_url)
    stores = [open_state_store(f"sqlite:///{tmp_path / 'a.sqlite3'}"), open_state_store(redis_url)]
    rng = random.Random(20240611)
    try:
        for step in range(3000):
            _random_history_step(rng, stores, step)
        keys = [f"k{i}" for i in range(12)] + ["ké"]
        for namespace in ("fraud.card", "claims.policy"):
            final = [store.fetch(namespace, keys, *EVERYTHING) for store in stores]
            assert final[0] == final[1]
            records = [r for found in final[0].values() for r in found]
            assert len(records) > 300 and {r.label for r in records} == {None, 0, 1}
    finally:
        for store in stores:
            store.close()


# ------------------------------------------------------------------ SQLite: many processes, one file


def _append_concurrently(path: str, worker: int, start: Barrier) -> None:
    """One spawned worker: its own store, released by the barrier together with the others."""
    store = open_state_store(f"sqlite:///{path}")
    start.wait(timeout=30)
    for i in range(250):
        store.append(
            "ns", [("shared", Record(float(i), f"w{worker}-{i}", 1.0)), ("shared", Record(float(i), f"same-{i}", 2.0))]
        )
        if i % 25 == 0:
            store.fetch("ns", ["shared"], -1.0, float(i))
    store.close()


def test_sqlite_is_shared_safely_by_processes(tmp_path: Path) -> None:
    """Four processes appending to one file at the same moment, each also re-appending ids the others
    write: no write fails on a lock, and every distinct record is there exactly once."""
    path = str(tmp_path / "nested" / "shared.sqlite3")
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(4)
    workers = [context.Process(target=_append_concurrently, args=(path, w, start)) for w in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=60)
    assert [process.exitcode for process in workers] == [0, 0, 0, 0]
    store = open_state_store(f"sqlite:///{path}")
    records = store.fetch("ns", ["shared"], *EVERYTHING)["shared"]
    store.close()
    assert len(records) == 4 * 250 + 250
    assert len(set(ids(records))) == len(records)
    assert sum(r.value for r in records) == 4 * 250 * 1.0 + 250 * 2.0


def test_sqlite_checkpoints_in_the_background_and_stops_on_close(tmp_path: Path) -> None:
    """The records reach the database file itself (not only the WAL) without any write checkpointing
    (far below its 10,000-page fallback); close() stops the checkpointer thread, and so does dropping
    a store without closing it."""
    path = tmp_path / "state.sqlite3"
    store = SqliteStateStore(path)
    for i in range(200):
        store.append("ns", [(f"k{i % 7}", Record(float(i), f"e{i}", 1.0))])
    deadline, in_the_file = time.monotonic() + 5, 0
    while time.monotonic() < deadline and in_the_file < 200:
        time.sleep(0.1)
        snapshot = tmp_path / "without-wal.sqlite3"
        shutil.copyfile(path, snapshot)  # the file alone: what a checkpoint has copied out of the WAL
        with closing(sqlite3.connect(snapshot)) as db:
            if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'records'").fetchone():
                in_the_file = db.execute("SELECT count(*) FROM records").fetchone()[0]
    assert in_the_file == 200

    def checkpointer_of(path: Path) -> threading.Thread:
        return next(t for t in threading.enumerate() if t.name == f"sqlite-checkpoint:{path}")

    checkpointer = checkpointer_of(path)
    store.close()
    checkpointer.join(timeout=2)
    assert not checkpointer.is_alive()

    dropped = tmp_path / "dropped.sqlite3"
    forgotten = SqliteStateStore(dropped)
    forgotten.append("ns", [("k", Record(1.0, "e"))])
    checkpointer = checkpointer_of(dropped)
    del forgotten
    checkpointer.join(timeout=2)
    assert not checkpointer.is_alive()


def test_sqlite_urls_name_absolute_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sqlite:///abs and sqlite:////abs name the same file, `~` is the home directory, missing parent
    directories are made, and a relative or empty path is a configuration error."""
    target = tmp_path / "deep" / "er" / "state.sqlite3"
    three, four = open_state_store(f"sqlite://{target}"), open_state_store(f"sqlite:///{target}")
    three.append("ns", [("k", Record(1.0, "e1"))])
    assert ids(four.fetch("ns", ["k"], *EVERYTHING)["k"]) == ["e1"]
    three.close()
    four.close()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    home = open_state_store("sqlite:///~/state.sqlite3")
    home.ping()
    home.close()
    assert (tmp_path / "home" / "state.sqlite3").is_file()
    for url in ("sqlite:///", "sqlite://relative/state.sqlite3"):
        with pytest.raises(ConfigurationError, match="RISK_STATE_URL"):
            open_state_store(url)


# ------------------------------------------------------------------ Redis specifics


def test_redis_keeps_every_key_under_its_prefix_and_survives_forgotten_scripts(redis_url: str) -> None:
    """All keys the store writes start with risk:state:, and after Redis forgets its scripts (restart,
    SCRIPT FLUSH) every operation still works, loading them again."""
    flush_redis(redis_url)
    store = open_state_store(redis_url)
    admin = redis.Redis.from_url(redis_url)
    try:
        store.append("ns", [("k", Record(1.0, "e1", 3.0)), ("k", Record(2.0, "e2"))])
        store.set_labels("ns", [("k", "e1", 1)])
        admin.script_flush()
        assert store.fetch("ns", ["k"], *EVERYTHING)["k"] == [Record(1.0, "e1", 3.0, 1), Record(2.0, "e2")]
        admin.script_flush()
        store.set_labels("ns", [("k", "e2", 0)])
        admin.script_flush()
        assert store.prune("ns", 1.5) == 1
        assert store.fetch("ns", ["k"], *EVERYTHING)["k"] == [Record(2.0, "e2", 0.0, 0)]
        assert admin.keys() and all(key.startswith(b"risk:state:") for key in admin.keys())  # noqa: SIM118 - a client, not a dict
    finally:
        admin.close()
        store.close()


# ------------------------------------------------------------------ unusable stores


def test_a_dead_redis_is_not_ready_within_seconds() -> None:
    """Against a port nobody listens on, ping and every operation raise NotReadyError (HTTP 503), quickly."""
    store = open_state_store(f"redis://127.0.0.1:{free_port()}/0")
    started = time.monotonic()
    with pytest.raises(NotReadyError):
        store.ping()
    with pytest.raises(NotReadyError):
        store.fetch("ns", ["k"], 0.0, 1.0)
    with pytest.raises(NotReadyError):
        store.append("ns", [("k", Record(1.0, "e"))])
    assert time.monotonic() - started < 10
    store.close()


def test_an_unusable_sqlite_path_is_not_ready(tmp_path: Path) -> None:
    """A file where the store's directory should be makes ping and writes raise NotReadyError, not OSError."""
    (tmp_path / "blocker").write_text("not a directory")
    store = open_state_store(f"sqlite:///{tmp_path / 'blocker' / 'state.sqlite3'}")
    with pytest.raises(NotReadyError):
        store.ping()
    with pytest.raises(NotReadyError):
        store.append("ns", [("k", Record(1.0, "e"))])


@pytest.mark.parametrize("url", ["memcached://x", "redis://127.0.0.1:notaport/0", "redis://127.0.0.1:6379/zero"])
def test_a_wrong_url_is_a_configuration_error(url: str) -> None:
    """Unknown schemes and malformed Redis URLs fail at start-up, naming RISK_STATE_URL."""
    with pytest.raises(ConfigurationError, match="RISK_STATE_URL"):
        open_state_store(url)
