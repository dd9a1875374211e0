"""Simulated payment transactions: the simulator of the Fraud Detection Handbook.

Le Borgne, Siblini, Lebichot & Bontempi, "Reproducible Machine Learning for Credit Card Fraud Detection -
Practical Handbook" (2022), chapter 3. The implementation follows the book's published description
(customers and terminals on a 100x100 grid, each customer paying at the terminals within a radius,
Poisson daily counts, normal amounts and times, then three fraud scenarios) with its seeding, so the same
parameters give the same data, and the full size reproduces the book's set-up.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

SECONDS_PER_DAY = 86_400


def customer_profiles(n: int, seed: int = 0) -> pd.DataFrame:
    """Each customer's location, amount habits and daily payment rate (one global seed, drawn in order)."""
    np.random.seed(seed)
    rows = []
    for customer_id in range(n):
        x, y = np.random.uniform(0, 100), np.random.uniform(0, 100)
        mean_amount = np.random.uniform(5, 100)
        mean_nb_tx_per_day = np.random.uniform(0, 4)
        rows.append((customer_id, x, y, mean_amount, mean_amount / 2, mean_nb_tx_per_day))
    return pd.DataFrame(rows, columns=["customer_id", "x", "y", "mean_amount", "std_amount", "mean_nb_tx_per_day"])


def terminal_profiles(n: int, seed: int = 1) -> pd.DataFrame:
    np.random.seed(seed)
    rows = [(terminal_id, np.random.uniform(0, 100), np.random.uniform(0, 100)) for terminal_id in range(n)]
    return pd.DataFrame(rows, columns=["terminal_id", "x", "y"])


def available_terminals(customers: pd.DataFrame, terminals: pd.DataFrame, radius: float) -> list[list[int]]:
    """The terminals strictly within `radius` of each customer."""
    grid = terminals[["x", "y"]].to_numpy(dtype=float)
    return [
        list(np.flatnonzero(np.sqrt(np.sum(np.square(np.array([x, y]) - grid), axis=1)) < radius))
        for x, y in customers[["x", "y"]].to_numpy(dtype=float)
    ]


def _customer_transactions(args: tuple[int, float, float, float, list[int], int]) -> list[tuple[int, int, int, int, float]]:
    """One customer's transactions: (seconds, day, customer, terminal, amount). Reseeds per customer, as
    the book does, so customers can be generated in any order or process."""
    customer_id, mean_amount, std_amount, mean_nb_tx, terminals, nb_days = args
    random.seed(customer_id)
    np.random.seed(customer_id)
    out = []
    for day in range(nb_days):
        for _ in range(np.random.poisson(mean_nb_tx)):
            time_tx = int(np.random.normal(SECONDS_PER_DAY / 2, 20000))
            if 0 < time_tx < SECONDS_PER_DAY:
                amount = np.random.normal(mean_amount, std_amount)
                if amount < 0:
                    amount = np.random.uniform(0, mean_amount * 2)
                amount = float(np.round(amount, decimals=2))
                if terminals:
                    terminal_id = random.choice(terminals)
                    out.append((time_tx + day * SECONDS_PER_DAY, day, customer_id, int(terminal_id), amount))
    return out


def simulate(
    n_customers: int = 5000,
    n_terminals: int = 10000,
    nb_days: int = 183,
    radius: float = 5.0,
    start_date: str = "2018-04-01",
    processes: int = 2,
) -> pd.DataFrame:
    """The Handbook's transactions with fraud labels. Deterministic for given parameters, whatever
    `processes` is (each customer reseeds)."""
    customers = customer_profiles(n_customers)
    terminals = terminal_profiles(n_terminals)
    reachable = available_terminals(customers, terminals, radius)
    jobs = [
        (int(c.customer_id), float(c.mean_amount), float(c.std_amount), float(c.mean_nb_tx_per_day), reachable[i], nb_days)
        for i, c in enumerate(customers.itertuples(index=False))
    ]
    if processes > 1:
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            per_customer = pool.map(_customer_transactions, jobs, chunksize=max(1, len(jobs) // (processes * 8)))
    else:
        per_customer = [_customer_transactions(job) for job in jobs]
    rows = [row for customer_rows in per_customer for row in customer_rows]
    frame = pd.DataFrame(rows, columns=["tx_time_seconds", "tx_time_days", "customer_id", "terminal_id", "amount"])
    frame = frame.astype({"tx_time_seconds": "int64", "tx_time_days": "int64", "customer_id": "int64",
                          "terminal_id": "int64", "amount": "float64"})
    frame["tx_datetime"] = pd.Timestamp(start_date) + pd.to_timedelta(frame["tx_time_seconds"], unit="s")
    frame = frame.sort_values("tx_datetime", kind="stable").reset_index(drop=True)
    frame.insert(0, "transaction_id", np.arange(len(frame), dtype=np.int64))
    frame = _add_frauds(frame, customers, terminals)
    columns = ["transaction_id", "tx_datetime", "customer_id", "terminal_id", "amount", "tx_time_seconds",
               "tx_time_days", "is_fraud", "fraud_scenario"]
    return frame[columns]


def _add_frauds(frame: pd.DataFrame, customers: pd.DataFrame, terminals: pd.DataFrame) -> pd.DataFrame:
    """The three scenarios, in order (a later one overwrites the scenario of an earlier one):
    1. every amount above 220; 2. two random terminals a day are compromised for 28 days;
    3. three random customers a day have a third of their next 14 days' payments multiplied by 5."""
    frame["is_fraud"] = 0
    frame["fraud_scenario"] = 0
    large = frame["amount"] > 220
    frame.loc[large, ["is_fraud", "fraud_scenario"]] = [1, 1]
    days = frame["tx_time_days"].to_numpy()
    last_day = int(days.max()) if len(frame) else 0
    for day in range(last_day):
        compromised = terminals["terminal_id"].sample(n=2, random_state=day)
        hit = (days >= day) & (days < day + 28) & frame["terminal_id"].isin(compromised).to_numpy()
        frame.loc[hit, ["is_fraud", "fraud_scenario"]] = [1, 2]
    for day in range(last_day):
        compromised = customers["customer_id"].sample(n=3, random_state=day).to_numpy()
        window = frame.index[(days >= day) & (days < day + 14) & frame["customer_id"].isin(compromised).to_numpy()]
        random.seed(day)
        chosen = random.sample(list(window), k=int(len(window) / 3))
        frame.loc[chosen, "amount"] = frame.loc[chosen, "amount"] * 5
        frame.loc[chosen, ["is_fraud", "fraud_scenario"]] = [1, 3]
    return frame.astype({"is_fraud": "int64", "fraud_scenario": "int64"})


def load_or_simulate(cache_dir: Path, **size: object) -> pd.DataFrame:
    """The simulation for these parameters from the Parquet cache, simulating (and caching) it once."""
    params = {"n_customers": 5000, "n_terminals": 10000, "nb_days": 183, "radius": 5.0, **size}
    name = "fraud_handbook_c{n_customers}_t{n_terminals}_d{nb_days}_r{radius}.parquet".format(**params)
    path = Path(cache_dir) / name
    if path.exists():
        return pd.read_parquet(path)
    frame = simulate(**params)  # type: ignore[arg-type]
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{name}.")
    os.close(handle)
    frame.to_parquet(temporary, index=False)
    os.replace(temporary, path)  # readers never see a half-written file
    return frame


def handbook_split(
    transactions: pd.DataFrame, start_training: str = "2018-07-25", delta_train: int = 7, delta_delay: int = 7,
    delta_test: int = 7,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The Handbook's train and test sets.

    Train: the `delta_train` days from `start_training`. Test: the `delta_test` days after a
    `delta_delay`-day gap (labels of the gap are not yet known when training). On each test day i, the
    customers already known to be compromised are removed: those with a fraud in the training week, plus
    those with a fraud on each delay-period day up to day (first train day + delta_train + i - 1), as
    the fraud team would have learnt of them by then.
    """
    start = pd.Timestamp(start_training)
    times = transactions["tx_datetime"]
    train = transactions[(times >= start) & (times < start + pd.Timedelta(days=delta_train))]
    known = set(train.loc[train["is_fraud"] == 1, "customer_id"])
    first_day = int(train["tx_time_days"].min())
    days = transactions["tx_time_days"]
    test_days = []
    for i in range(delta_test):
        delay_day = transactions[days == first_day + delta_train + i - 1]
        known |= set(delay_day.loc[delay_day["is_fraud"] == 1, "customer_id"])
        day = transactions[days == first_day + delta_train + delta_delay + i]
        test_days.append(day[~day["customer_id"].isin(known)])
    return train, pd.concat(test_days)
