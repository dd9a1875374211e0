"""The Handbook simulator: its published self-check, determinism, the fraud scenarios as DATA.md states
them, the evaluation split and the Parquet cache."""

from __future__ import annotations

import random
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from services.fraud_detection import dataset
from services.fraud_detection.dataset import (
    cache_file_name,
    customer_profiles,
    generate_transactions,
    handbook_split,
    load_or_simulate,
    simulate,
    terminal_profiles,
    terminals_within_radius,
)

SMALL = {"n_customers": 200, "n_terminals": 400, "nb_days": 60}
START = pd.Timestamp("2018-04-01")


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    return simulate(**SMALL, processes=2)


@pytest.fixture(scope="module")
def small_legitimate() -> pd.DataFrame:
    """The same simulation before any fraud was added."""
    customers = customer_profiles(SMALL["n_customers"])
    terminals = terminal_profiles(SMALL["n_terminals"])
    return generate_transactions(customers, terminals, SMALL["nb_days"], processes=1)


def test_customer_profiles_match_the_published_self_check() -> None:
    """DATA.md self-check: 5 customers, seed 0, customer 0 = (54.881350, 71.518937, mean 62.262521,
    std 31.131260, 2.179533 tx/day)."""
    first = customer_profiles(5, seed=0).iloc[0]
    assert int(first["customer_id"]) == 0
    assert first[["x", "y", "mean_amount", "std_amount", "mean_nb_tx_per_day"]].tolist() == pytest.approx(
        [54.881350, 71.518937, 62.262521, 31.131260, 2.179533], abs=1e-6
    )


def test_profiles_are_drawn_in_order_from_one_seed() -> None:
    """The first customers of a larger draw are the smaller draw's (customer i does not depend on n),
    and another seed gives other customers and other terminals."""
    pd.testing.assert_frame_equal(customer_profiles(50).head(5), customer_profiles(5))
    pd.testing.assert_frame_equal(terminal_profiles(50).head(5), terminal_profiles(5))
    assert not np.allclose(customer_profiles(5, seed=3)["x"], customer_profiles(5)["x"])
    assert not np.allclose(terminal_profiles(5, seed=3)["x"], terminal_profiles(5)["x"])


def test_terminals_count_only_strictly_inside_the_radius() -> None:
    """A terminal at distance exactly 5 (a 3-4-5 triangle) is out, one just inside is in."""
    customers = pd.DataFrame({"customer_id": [0], "x": [10.0], "y": [10.0]})
    terminals = pd.DataFrame({"terminal_id": [0, 1, 2], "x": [13.0, 13.0, 30.0], "y": [14.0, 13.99, 10.0]})
    assert terminals_within_radius(customers, terminals, 5.0)[0].tolist() == [1]


def test_same_parameters_give_the_identical_frame() -> None:
    """Two runs with the same parameters are identical, and a run does not move the caller's global
    numpy and Python generators (a caller's own seeded draws stay reproducible)."""
    np.random.seed(7)
    random.seed(7)
    first = simulate(n_customers=40, n_terminals=80, nb_days=20, processes=1)
    after_numpy, after_python = np.random.random(), random.random()
    np.random.seed(7)
    random.seed(7)
    expected_numpy, expected_python = np.random.random(), random.random()
    assert (after_numpy, after_python) == (expected_numpy, expected_python)
    pd.testing.assert_frame_equal(first, simulate(n_customers=40, n_terminals=80, nb_days=20, processes=1))


def test_one_process_and_two_give_the_identical_frame(small: pd.DataFrame) -> None:
    """Each customer reseeds, so splitting customers over two worker processes changes nothing."""
    pd.testing.assert_frame_equal(small, simulate(**SMALL, processes=1))


def test_columns_dtypes_and_transaction_ids(small: pd.DataFrame) -> None:
    """The documented columns and dtypes; sorted by time; transaction_id is the row position; the
    datetime is the start date plus the seconds, and the day is the seconds' day."""
    assert small.dtypes.astype(str).to_dict() == {
        "transaction_id": "int64",
        "tx_datetime": "datetime64[ns]",
        "customer_id": "int64",
        "terminal_id": "int64",
        "amount": "float64",
        "tx_time_seconds": "int64",
        "tx_time_days": "int64",
        "is_fraud": "int64",
        "fraud_scenario": "int64",
    }
    assert small["tx_datetime"].dt.tz is None
    assert small["tx_datetime"].is_monotonic_increasing
    np.testing.assert_array_equal(small["transaction_id"].to_numpy(), np.arange(len(small)))
    np.testing.assert_array_equal(small.index.to_numpy(), np.arange(len(small)))
    pd.testing.assert_series_equal(
        small["tx_datetime"],
        START + pd.to_timedelta(small["tx_time_seconds"], unit="s").astype("timedelta64[ns]"),
        check_names=False,
    )
    assert (small["tx_time_days"] == small["tx_time_seconds"] // 86_400).all()
    assert small["tx_time_days"].between(0, SMALL["nb_days"] - 1).all()
    assert (small["tx_time_seconds"] % 86_400 > 0).all(), "times at 0 s into a day are dropped"


def test_ties_in_time_keep_customer_order(small: pd.DataFrame) -> None:
    """The sort is stable and customers are concatenated in id order, so among transactions at the same
    second the customer ids never decrease."""
    same_time = small["tx_datetime"].diff() == pd.Timedelta(0)
    assert same_time.any(), "the simulation must contain ties for this test to mean anything"
    assert (small["customer_id"].diff()[same_time] >= 0).all()


def test_customers_pay_only_at_reachable_terminals(small: pd.DataFrame) -> None:
    """Each transaction's terminal lies within the radius of its customer; customers with no terminal
    in reach make no transaction (and the small set has such customers)."""
    customers = customer_profiles(SMALL["n_customers"])
    reachable = terminals_within_radius(customers, terminal_profiles(SMALL["n_terminals"]), 5.0)
    pairs = small.groupby("customer_id")["terminal_id"].unique()
    for customer_id, used in pairs.items():
        assert set(used) <= set(reachable[customer_id].tolist())
    stranded = {i for i, terminals in enumerate(reachable) if len(terminals) == 0}
    assert stranded, "the small set must have customers without a terminal in reach"
    assert not stranded & set(small["customer_id"])


def test_legitimate_amounts_are_non_negative_and_rounded(small_legitimate: pd.DataFrame) -> None:
    """Before fraud, amounts are >= 0 (negative draws are redrawn) and carry at most two decimals."""
    amounts = small_legitimate["amount"]
    assert (amounts >= 0).all()
    assert np.allclose(amounts, amounts.round(2), rtol=0, atol=1e-9)


def test_scenario_one_flags_every_large_amount(small: pd.DataFrame) -> None:
    """S1: every amount above 220 is fraud; a transaction never touched by a scenario is at most 220;
    is_fraud is exactly 'some scenario applies'."""
    assert (small.loc[small["amount"] > 220, "is_fraud"] == 1).all()
    assert (small.loc[small["fraud_scenario"] == 0, "amount"] <= 220).all()
    assert (small.loc[small["fraud_scenario"] == 1, "amount"] > 220).all()
    assert ((small["is_fraud"] == 1) == (small["fraud_scenario"] > 0)).all()
    assert set(small["fraud_scenario"].unique()) == {0, 1, 2, 3}


def _compromised_terminals(day: int) -> set[int]:
    """DATA.md: the terminals compromised on `day` are `TERMINAL_ID.sample(n=2, random_state=day)`."""
    ids = pd.Series(np.arange(SMALL["n_terminals"]), name="terminal_id")
    return set(ids.sample(n=2, random_state=day).tolist())


def test_scenario_two_frauds_are_at_terminals_compromised_within_28_days(small: pd.DataFrame) -> None:
    """S2: every scenario-2 fraud is at a terminal sampled on one of the 28 days up to its own day, and
    every transaction at such a terminal in its window is fraud (scenario 2, or 3 if S3 took it later)."""
    last_day = int(small["tx_time_days"].max())
    compromised = {day: _compromised_terminals(day) for day in range(last_day)}
    for row in small[small["fraud_scenario"] == 2].itertuples():
        window = range(max(0, row.tx_time_days - 27), min(row.tx_time_days, last_day - 1) + 1)
        assert any(row.terminal_id in compromised[d] for d in window)
    for day, terminals in compromised.items():
        hit = small[small["terminal_id"].isin(terminals) & small["tx_time_days"].between(day, day + 27)]
        assert hit["fraud_scenario"].isin([2, 3]).all()


def test_all_three_scenarios_follow_the_stated_rules(small: pd.DataFrame, small_legitimate: pd.DataFrame) -> None:
    """Rebuilding the labels from DATA.md's wording, with the global generators it names (S1 on the
    legitimate amounts, S2 over it, S3 with `random.seed(day); random.sample(...)` over both), gives the
    simulator's labels exactly, and each S3 amount is the legitimate one times 5 per time it was chosen."""
    legit = small_legitimate
    days = legit["tx_time_days"]
    scenario = np.where(legit["amount"] > 220, 1, 0)
    times_chosen = np.zeros(len(legit), dtype=int)
    customer_ids = pd.Series(np.arange(SMALL["n_customers"]), name="customer_id")
    saved = random.getstate()
    try:
        for day in range(int(days.max())):
            at_terminal = legit["terminal_id"].isin(_compromised_terminals(day)) & days.between(day, day + 27)
            scenario[at_terminal.to_numpy()] = 2
        for day in range(int(days.max())):
            customers = customer_ids.sample(n=3, random_state=day).to_numpy()
            window = legit[legit["customer_id"].isin(customers) & days.between(day, day + 13)]
            random.seed(day)
            chosen = random.sample(list(window.index), k=int(len(window) / 3))
            scenario[chosen] = 3
            times_chosen[chosen] += 1
    finally:
        random.setstate(saved)
    np.testing.assert_array_equal(small["fraud_scenario"].to_numpy(), scenario)
    np.testing.assert_allclose(small["amount"].to_numpy(), legit["amount"].to_numpy() * 5.0**times_chosen, rtol=1e-12)
    assert (times_chosen > 0).any(), "scenario 3 must have struck for this test to mean anything"
    pd.testing.assert_frame_equal(
        small.drop(columns=["amount", "is_fraud", "fraud_scenario"]),
        legit.drop(columns=["amount", "is_fraud", "fraud_scenario"]),
    )


def test_handbook_split_follows_the_protocol(small: pd.DataFrame) -> None:
    """Train is every transaction of the 7 days from the start; test day i (start+14+i) holds every
    transaction of that day except the customers with a fraud in the train week or on a delay day
    start+6 .. start+6+i. The expected test set is rebuilt here from dates, not from day numbers."""
    start = START + pd.Timedelta(days=19)
    train, test = handbook_split(small, start_training=str(start.date()))
    moments = small["tx_datetime"]
    in_train_week = (moments >= start) & (moments < start + pd.Timedelta(days=7))
    assert set(train["transaction_id"]) == set(small.loc[in_train_week, "transaction_id"])
    assert list(train.columns) == list(small.columns) and list(test.columns) == list(small.columns)

    frauds = small[small["is_fraud"] == 1]
    fraud_dates = frauds["tx_datetime"].dt.normalize()
    expected: set[int] = set()
    removed = 0
    for i in range(7):
        known_until = start + pd.Timedelta(days=6 + i)
        known = set(frauds.loc[(fraud_dates >= start) & (fraud_dates <= known_until), "customer_id"])
        test_date = start + pd.Timedelta(days=14 + i)
        that_day = small[moments.dt.normalize() == test_date]
        kept = that_day[~that_day["customer_id"].isin(known)]
        removed += len(that_day) - len(kept)
        expected |= set(kept["transaction_id"])
    assert removed > 0, "the protocol must remove some known-compromised customers here"
    assert set(test["transaction_id"]) == expected
    assert test["transaction_id"].is_monotonic_increasing and train["transaction_id"].is_monotonic_increasing


def test_handbook_split_refuses_an_empty_training_week(small: pd.DataFrame) -> None:
    """A start after the simulated period has no train days to anchor the test days on."""
    with pytest.raises(ValueError, match="no transactions"):
        handbook_split(small, start_training="2019-01-01")


def test_cache_file_name_encodes_what_changes_the_data() -> None:
    """Every parameter that changes the data is in the name (radius and start date included); the
    process count is not, and radius 5 and 5.0 share a file."""
    base = cache_file_name(n_customers=30, n_terminals=60, nb_days=10)
    assert base == cache_file_name(n_customers=30, n_terminals=60, nb_days=10, radius=5, processes=1)
    variants = [
        cache_file_name(n_customers=31, n_terminals=60, nb_days=10),
        cache_file_name(n_customers=30, n_terminals=61, nb_days=10),
        cache_file_name(n_customers=30, n_terminals=60, nb_days=11),
        cache_file_name(n_customers=30, n_terminals=60, nb_days=10, radius=6.0),
        cache_file_name(n_customers=30, n_terminals=60, nb_days=10, start_date="2018-05-01"),
    ]
    assert len({base, *variants}) == 6
    with pytest.raises(TypeError):
        cache_file_name(n_customer=30)


def test_cache_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first call simulates and leaves exactly one complete, world-readable Parquet file (no
    temporary file); the second reads it back, identical in values and dtypes, without simulating again."""
    size = {"n_customers": 30, "n_terminals": 60, "nb_days": 10}
    first = load_or_simulate(tmp_path, **size)
    assert [p.name for p in tmp_path.iterdir()] == [cache_file_name(**size)]
    assert stat.S_IMODE((tmp_path / cache_file_name(**size)).stat().st_mode) == 0o644

    def no_simulation(**_: object) -> pd.DataFrame:
        raise AssertionError("the cached file should have been read")

    monkeypatch.setattr(dataset, "simulate", no_simulation)
    pd.testing.assert_frame_equal(load_or_simulate(tmp_path, **size), first)


def test_cache_write_failure_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If writing fails midway, neither the final file nor the temporary one remains, so no reader can
    pick up a partial simulation."""

    def failing_write(self: pd.DataFrame, path: object, **_: object) -> None:
        Path(str(path)).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", failing_write)
    with pytest.raises(OSError, match="disk full"):
        load_or_simulate(tmp_path, n_customers=30, n_terminals=60, nb_days=5)
    assert list(tmp_path.iterdir()) == []
