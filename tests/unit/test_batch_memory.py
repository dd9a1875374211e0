"""The batch engine's slice features (a slice's own rows answered over their look-back, ids as integer
codes, no Python strings) against the in-memory definition over the whole history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from services.fraud_detection.features import (
    FEATURE_SET,
    STATE_RETENTION,
    offline_features,
    offline_features_of_columns,
)
from shared.features.calendar import is_night, is_weekend
from shared.features.windows import DAY_SECONDS

WEEK = 7 * DAY_SECONDS
START = 1_533_081_600.0  # 2018-08-01T00:00:00Z, a Wednesday
COUNTS = [f for f in FEATURE_SET.features if "_nb_tx_" in f or f in ("is_weekend", "is_night")]


def _payments(rows: int = 6000, weeks: int = 12, seed: int = 0) -> pa.Table:
    """Payments over `weeks` weeks in the engine's column shape: busy and rare cards and terminals, times
    repeated (ties broken by id as text: "e10" before "e9"), on window edges, at several UTC offsets."""
    rng = np.random.default_rng(seed)
    card = np.where(rng.random(rows) < 0.2, "busy-card", np.char.add("c", rng.integers(0, 150, rows).astype(str)))
    terminal = np.where(rng.random(rows) < 0.2, "busy-term", np.char.add("t", rng.integers(0, 300, rows).astype(str)))
    seconds = START + rng.integers(0, weeks * 7 * 4, rows) * DAY_SECONDS / 4 + rng.choice([0.0, 0.5, 3600.0], rows)
    table = pa.table(
        {
            "transaction_id": [f"e{i}" for i in rng.permutation(rows)],
            "timestamp": pa.array(np.rint(seconds * 1e6).astype(np.int64), pa.timestamp("us", tz="UTC")),
            "timestamp__offset_seconds": pa.array(rng.choice([0, 3600, -5 * 3600, 19800], rows), pa.int32()),
            "customer_id": card,
            "terminal_id": terminal,
            "amount": np.round(rng.random(rows) * 1000 / 3, 2),
        }
    )
    return table.take(np.argsort(seconds, kind="stable"))  # spooled by week, as the engine reads it


def _frame(table: pa.Table) -> pd.DataFrame:
    """The in-memory definition's input: ids as text, the wall clock read from aware datetimes."""
    micros = table.column("timestamp").cast(pa.int64()).to_numpy()
    offsets = table.column("timestamp__offset_seconds").to_pylist()
    moments = [
        datetime.fromtimestamp(m // 1_000_000, UTC).astimezone(timezone(timedelta(seconds=o)))
        for m, o in zip(micros.tolist(), offsets, strict=True)
    ]
    return pd.DataFrame(
        {
            "event_id": table.column("transaction_id").to_pylist(),
            "customer_id": table.column("customer_id").to_pylist(),
            "terminal_id": table.column("terminal_id").to_pylist(),
            "ts": micros / 1e6,
            "amount": table.column("amount").to_numpy(),
            "is_weekend": [is_weekend(m) for m in moments],
            "is_night": [is_night(m) for m in moments],
            "label": np.zeros(table.num_rows, dtype=np.int64),
        }
    )


def test_every_row_answered_equals_the_in_memory_definition_bit_for_bit() -> None:
    """With no look-back row (answer_from 0), the column-wise features equal `offline_features` of the same
    rows as a frame of text ids, every cell to the last bit."""
    table = _payments()
    found = offline_features_of_columns(table)
    expected = offline_features(_frame(table))
    assert found.shape == (table.num_rows, len(FEATURE_SET.features))
    assert np.array_equal(found.to_numpy(), expected.to_numpy())


@pytest.mark.parametrize("slice_weeks", [1, 3])
def test_slices_with_their_look_back_equal_the_whole_history(slice_weeks: int) -> None:
    """Each slice of weeks answered over only the weeks its widest window looks back (as the engine cuts
    them), cards and terminals alike: counts equal the whole history's exactly, sums to rounding."""
    table = _payments()
    expected = offline_features(_frame(table))
    week = np.floor(table.column("timestamp").cast(pa.int64()).to_numpy() / 1e6 / WEEK).astype(np.int64)
    behind = int(np.ceil(max(STATE_RETENTION.values()) / WEEK))
    answered = np.zeros(table.num_rows, dtype=bool)
    for first in range(week.min(), week.max() + 1, slice_weeks):
        own = np.flatnonzero((week >= first) & (week < first + slice_weeks))
        look_back = np.flatnonzero((week >= first - behind) & (week < first))
        rows = np.r_[look_back, own]
        found = offline_features_of_columns(table.take(rows), answer_from=len(look_back))
        assert len(found) == len(own)
        reference = expected.iloc[own]
        assert np.array_equal(found[COUNTS].to_numpy(), reference[COUNTS].to_numpy())
        np.testing.assert_allclose(found.to_numpy(), reference.to_numpy(), rtol=1e-12, atol=0)
        answered[own] = True
    assert answered.all()
    assert behind == 6 and week.max() - week.min() >= behind + 2  # slices truly leave history behind
    assert expected["customer_nb_tx_30d"].max() > 100 and expected["terminal_nb_tx_30d"].max() > 100
