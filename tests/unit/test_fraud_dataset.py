"""The Handbook simulator: its published self-check, determinism, the fraud scenarios and the protocol."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from services.fraud_detection.dataset import (
    customer_profiles,
    handbook_split,
    load_or_simulate,
    simulate,
    terminal_profiles,
)


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    return simulate(n_customers=200, n_terminals=400, nb_days=60, processes=2)


def test_customer_profiles_match_the_published_self_check() -> None:
    """DATA.md: with seed 0, customer 0 = (54.881350, 71.518937, mean 62.262521, std 31.131260, 2.179533/day)."""
    first = customer_profiles(5).iloc[0]
    assert first[["x", "y", "mean_amount", "std_amount", "mean_nb_tx_per_day"]].round(6).tolist() == [
        54.881350, 71.518937, 62.262521, 31.131260, 2.179533]


def test_same_parameters_same_data_whatever_the_process_count(small: pd.DataFrame) -> None:
    """Generation reseeds per customer, so one process or two give the identical frame."""
    pd.testing.assert_frame_equal(small, simulate(n_customers=200, n_terminals=400, nb_days=60, processes=1))


def test_columns_ids_and_order(small: pd.DataFrame) -> None:
    """Columns and dtypes as documented; sorted by time; transaction_id is the row position."""
    assert list(small.columns) == ["transaction_id", "tx_datetime", "customer_id", "terminal_id", "amount",
                                   "tx_time_seconds", "tx_time_days", "is_fraud", "fraud_scenario"]
    assert small["tx_datetime"].is_monotonic_increasing
    np.testing.assert_array_equal(small["transaction_id"].to_numpy(), np.arange(len(small)))
    assert small["tx_time_seconds"].between(0, 60 * 86_400).all()
    assert set(small["is_fraud"].unique()) <= {0, 1}


def test_scenario_one_flags_every_large_amount_that_no_later_scenario_took(small: pd.DataFrame) -> None:
    """S1: amounts above 220 are fraud; those still marked scenario 1 are all above 220."""
    assert (small.loc[small["amount"] > 220, "is_fraud"] == 1).all()
    assert (small.loc[small["fraud_scenario"] == 1, "amount"] > 220).all()
    assert ((small["is_fraud"] == 1) == (small["fraud_scenario"] > 0)).all()


def test_scenario_two_frauds_are_at_terminals_compromised_in_the_last_28_days(small: pd.DataFrame) -> None:
    """S2: every scenario-2 fraud happened at a terminal sampled (random_state=day) within 28 days before."""
    terminals = terminal_profiles(400)
    compromised = {day: set(terminals["terminal_id"].sample(n=2, random_state=day)) for day in range(59)}
    for row in small[small["fraud_scenario"] == 2].itertuples():
        assert any(row.terminal_id in compromised[d] for d in range(max(0, row.tx_time_days - 27), row.tx_time_days + 1))


def test_handbook_split_removes_known_compromised_cards(small: pd.DataFrame) -> None:
    """Train is the 7 days from the start; each test day drops the cards with a fraud in the train week
    or on the delay days up to the day before its own delay-shifted day."""
    frame = simulate(n_customers=150, n_terminals=300, nb_days=30, processes=1)
    train, test = handbook_split(frame, start_training="2018-04-05")
    assert train["tx_datetime"].min() >= pd.Timestamp("2018-04-05")
    assert train["tx_datetime"].max() < pd.Timestamp("2018-04-12")
    first = int(train["tx_time_days"].min())
    known = set(train.loc[train["is_fraud"] == 1, "customer_id"])
    for i in range(7):
        delay_day = frame[frame["tx_time_days"] == first + 7 + i - 1]
        known |= set(delay_day.loc[delay_day["is_fraud"] == 1, "customer_id"])
        day = test[test["tx_time_days"] == first + 14 + i]
        assert not set(day["customer_id"]) & known
        assert len(day) == (~frame.loc[frame["tx_time_days"] == first + 14 + i, "customer_id"].isin(known)).sum()


def test_cache_round_trip(tmp_path: Path) -> None:
    """The first call simulates and writes Parquet; the second reads the same frame back."""
    first = load_or_simulate(tmp_path, n_customers=30, n_terminals=60, nb_days=10)
    files = list(tmp_path.glob("*.parquet"))
    assert [f.name for f in files] == ["fraud_handbook_c30_t60_d10_r5.0.parquet"]
    pd.testing.assert_frame_equal(first, load_or_simulate(tmp_path, n_customers=30, n_terminals=60, nb_days=10))
