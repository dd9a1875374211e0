"""SQLite's window totals of many queries, read in as few statements as its limits allow, are each query's
own totals by the definition, in the order asked, whatever the mix of shapes."""

from __future__ import annotations

import random
from pathlib import Path

from shared.state import Record, SqliteStateStore, WindowQuery, totals_over


def test_a_micro_batch_s_totals_over_several_statements_match_the_definition(tmp_path: Path) -> None:
    """1,200 queries (more SELECTs and parameters than one statement takes), some without windows, some cut
    by id, over two namespaces: every query's totals are `totals_over` of its entity's records."""
    rng = random.Random(7)
    history = {
        namespace: {
            f"k{k}": sorted(
                (Record(float(rng.randrange(100)), f"r{namespace}{k}.{i}", rng.random(), rng.choice((None, 0, 1))))
                for i in range(rng.randrange(0, 12))
            )
            for k in range(40)
        }
        for namespace in ("one", "two")
    }
    store = SqliteStateStore(tmp_path / "state.sqlite3")
    try:
        store.append_many(
            {ns: [(key, r) for key, records in keys.items() for r in records] for ns, keys in history.items()}
        )
        queries = {
            namespace: [
                WindowQuery(
                    f"k{rng.randrange(45)}",
                    tuple(sorted(rng.uniform(-5, 100) for _ in range(rng.choice((0, 1, 3, 5))))),
                    float(rng.randrange(100)),
                    rng.choice((None, f"r{namespace}{rng.randrange(40)}.{rng.randrange(12)}")),
                )
                for _ in range(600)
            ]
            for namespace in ("one", "two")
        }
        totals = store.append_then_total({}, queries)
        for namespace, asked in queries.items():
            expected = [
                totals_over(sorted(history[namespace].get(q.key, []), key=lambda r: (r.ts, r.id)), q) for q in asked
            ]
            assert totals[namespace] == expected
        assert sum(len(q.lower_bounds) for qs in queries.values() for q in qs) > 1000  # several statements
    finally:
        store.close()
