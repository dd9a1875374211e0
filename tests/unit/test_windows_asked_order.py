"""The offline windows' binary searches, run over the asked rows in sorted (entity, time) order and put back
in the order asked: any order of asking gives each row the same counts and sums, bit for bit."""

from __future__ import annotations

import numpy as np
import pandas as pd

from shared.features.windows import DAY_SECONDS, activity_windows, delayed_label_windows, entity_order


def test_rows_asked_in_any_order_get_the_answers_of_every_row_asked() -> None:
    """Rows asked shuffled (not in time order, some entities' rows far apart) get, row for row, the counts
    and sums every row gets when all are asked, for both window kinds, ties of time included."""
    rng = np.random.default_rng(11)
    rows = 4000
    entity = np.where(rng.random(rows) < 0.25, "busy", rng.integers(0, 300, rows).astype(str))
    times = 1_533_700_000.0 + rng.integers(0, 50, rows) * DAY_SECONDS / rng.choice([1, 3, 8], rows)
    ids = np.array([f"e{i}" for i in rng.permutation(rows)])
    codes = pd.factorize(entity)[0]
    order = entity_order(codes, np.lexsort((ids, times)))
    amounts = rng.random(rows) * 1000 / 3
    positives = (rng.random(rows) < 0.1).astype(float)
    asked = rng.permutation(rows)[:1500]  # shuffled: neither in time order nor in entity order
    assert not (np.diff(asked) > 0).all()
    every = activity_windows(codes, times, order, amounts, (1, 7, 30))
    some = activity_windows(codes, times, order, amounts, (1, 7, 30), asked)
    every_delayed = delayed_label_windows(codes, times, order, positives, (7, 28), 7)
    some_delayed = delayed_label_windows(codes, times, order, positives, (7, 28), 7, asked)
    for all_rows, asked_rows in ((every, some), (every_delayed, some_delayed)):
        for days, (count, total) in all_rows.items():
            assert np.array_equal(asked_rows[days][0], count[asked]), days
            assert np.array_equal(asked_rows[days][1], total[asked]), days
    assert every[30][0].max() > 50 and every_delayed[7][1].sum() > 0
