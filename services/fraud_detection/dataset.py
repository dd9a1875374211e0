"""Simulated payment transactions: the simulator of the Fraud Detection Handbook, and its evaluation split.

Reference: Le Borgne, Siblini, Lebichot & Bontempi, "Reproducible Machine Learning for Credit Card Fraud
Detection - Practical Handbook" (2022), chapter 3. This implementation follows the book's published
description (the book's own code is GPL-3 and is not reused): customers and terminals on a 100x100 grid,
each customer paying at the terminals within a radius, Poisson daily counts, normal times and amounts,
then three fraud scenarios applied in order. It reproduces the book's seeding, so the same parameters
give the same data and the full size gives the book's data set.

The book seeds numpy's and Python's global generators (``np.random.seed(s)`` then ``np.random.uniform``,
``random.seed(s)`` then ``random.choice``). Those global functions are methods of one hidden
``np.random.RandomState`` / ``random.Random`` instance, so drawing from a private ``RandomState(s)`` /
``Random(s)`` gives bit-identical numbers while leaving the caller's global generators untouched.
"""

from __future__ import annotations

import inspect
import multiprocessing
import os
import random
import tempfile
from math import ceil
from pathlib import Path

import numpy as np
import pandas as pd

SECONDS_PER_DAY = 86_400
COLUMNS = [
    "transaction_id",
    "tx_datetime",
    "customer_id",
    "terminal_id",
    "amount",
    "tx_time_seconds",
    "tx_time_days",
    "is_fraud",
    "fraud_scenario",
]
LARGE_AMOUNT = 220.0
TERMINALS_COMPROMISED_PER_DAY, TERMINAL_COMPROMISE_DAYS = 2, 28
CUSTOMERS_COMPROMISED_PER_DAY, CUSTOMER_COMPROMISE_DAYS = 3, 14

# (customer_id, mean_amount, std_amount, mean_nb_tx_per_day, reachable terminal ids, nb_days)
_CustomerJob = tuple[int, float, float, float, np.ndarray, int]
# (tx_time_seconds, terminal_id, amount) of one customer, in generation order
_CustomerRows = tuple[np.ndarray, np.ndarray, np.ndarray]


def customer_profiles(n: int, seed: int = 0) -> pd.DataFrame:
    """Each customer's home, amount habits and daily payment rate.

    One seed for all customers, drawn customer by customer in the book's order (x, y, mean amount,
    rate): customer i is draws 4i..4i+3 of that one stream, so changing the draw order would change
    every customer, while a larger `n` only appends customers.
    """
    rng = np.random.RandomState(seed)
    rows = []
    for customer_id in range(n):
        x = rng.uniform(0, 100)
        y = rng.uniform(0, 100)
        mean_amount = rng.uniform(5, 100)
        mean_nb_tx_per_day = rng.uniform(0, 4)
        rows.append((customer_id, x, y, mean_amount, mean_amount / 2, mean_nb_tx_per_day))
    frame = pd.DataFrame(rows, columns=["customer_id", "x", "y", "mean_amount", "std_amount", "mean_nb_tx_per_day"])
    return frame.astype({"customer_id": "int64"})


def terminal_profiles(n: int, seed: int = 1) -> pd.DataFrame:
    """Each terminal's location, drawn terminal by terminal from one seed (the book uses seed 1)."""
    rng = np.random.RandomState(seed)
    rows = []
    for terminal_id in range(n):
        x = rng.uniform(0, 100)
        y = rng.uniform(0, 100)
        rows.append((terminal_id, x, y))
    return pd.DataFrame(rows, columns=["terminal_id", "x", "y"]).astype({"terminal_id": "int64"})


def terminals_within_radius(customers: pd.DataFrame, terminals: pd.DataFrame, radius: float) -> list[np.ndarray]:
    """Per customer, the ids of the terminals at Euclidean distance strictly below `radius`, ascending.

    Ascending id order matters: a customer picks a terminal by position in this list.
    """
    positions = terminals[["x", "y"]].to_numpy(dtype=float)
    ids = terminals["terminal_id"].to_numpy(dtype=np.int64)
    reachable = []
    for x, y in customers[["x", "y"]].to_numpy(dtype=float):
        distance = np.sqrt(np.sum(np.square(positions - np.array([x, y])), axis=1))
        reachable.append(ids[distance < radius])
    return reachable


def _customer_transactions(job: _CustomerJob) -> _CustomerRows:
    """One customer's transactions over the days, with the book's per-customer seeding.

    Both generators are seeded with the customer id, which is what makes customers independent of each
    other and lets them be generated in any process. The draws happen in the book's order (count, then
    per transaction: time, amount, possibly a redraw, terminal); times outside the day are dropped after
    their draw, and a customer without a reachable terminal still draws but records nothing.
    """
    customer_id, mean_amount, std_amount, mean_nb_tx_per_day, reachable, nb_days = job
    np_rng = np.random.RandomState(customer_id)
    py_rng = random.Random(customer_id)
    candidates = [int(t) for t in reachable]
    seconds: list[int] = []
    chosen_terminals: list[int] = []
    amounts: list[float] = []
    for day in range(nb_days):
        for _ in range(np_rng.poisson(mean_nb_tx_per_day)):
            time_in_day = int(np_rng.normal(SECONDS_PER_DAY / 2, 20000))
            if not 0 < time_in_day < SECONDS_PER_DAY:
                continue
            amount = np_rng.normal(mean_amount, std_amount)
            if amount < 0:
                amount = np_rng.uniform(0, mean_amount * 2)
            amount = float(np.round(amount, decimals=2))
            if candidates:
                chosen_terminals.append(py_rng.choice(candidates))
                seconds.append(time_in_day + day * SECONDS_PER_DAY)
                amounts.append(amount)
    return (
        np.array(seconds, dtype=np.int64),
        np.array(chosen_terminals, dtype=np.int64),
        np.array(amounts, dtype=np.float64),
    )


def _generate_per_customer(jobs: list[_CustomerJob], processes: int) -> list[_CustomerRows]:
    """Every customer's rows, in customer order.

    Workers are spawned rather than forked: the simulation may run in a process that already has threads
    (servers, Arrow's pool), where a fork can deadlock. Spawning costs a second of imports, small next
    to the generation itself.
    """
    if processes <= 1 or len(jobs) <= 1:
        return [_customer_transactions(job) for job in jobs]
    chunk = max(1, ceil(len(jobs) / (processes * 8)))
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        return pool.map(_customer_transactions, jobs, chunksize=chunk)


def generate_transactions(
    customers: pd.DataFrame,
    terminals: pd.DataFrame,
    nb_days: int,
    radius: float = 5.0,
    start_date: str = "2018-04-01",
    processes: int = 2,
) -> pd.DataFrame:
    """The legitimate transactions (before any fraud), sorted by time, `transaction_id` = position.

    The sort is stable, so transactions at the same second stay in customer order, whatever the number
    of processes.
    """
    reachable = terminals_within_radius(customers, terminals, radius)
    jobs: list[_CustomerJob] = [
        (
            int(c.customer_id),
            float(c.mean_amount),
            float(c.std_amount),
            float(c.mean_nb_tx_per_day),
            reachable[i],
            int(nb_days),
        )
        for i, c in enumerate(customers.itertuples(index=False))
    ]
    per_customer = _generate_per_customer(jobs, processes)
    counts = [len(rows[0]) for rows in per_customer]
    seconds = np.concatenate([rows[0] for rows in per_customer]) if jobs else np.empty(0, np.int64)
    frame = pd.DataFrame(
        {
            "customer_id": np.repeat(customers["customer_id"].to_numpy(dtype=np.int64), counts),
            "terminal_id": np.concatenate([rows[1] for rows in per_customer]) if jobs else np.empty(0, np.int64),
            "amount": np.concatenate([rows[2] for rows in per_customer]) if jobs else np.empty(0, np.float64),
            "tx_time_seconds": seconds,
            "tx_time_days": seconds // SECONDS_PER_DAY,
        }
    )
    origin = pd.Timestamp(start_date)
    if origin.tzinfo is not None:
        raise ValueError(f"start_date must be naive (the book's datetimes are), got {start_date!r}")
    offsets = pd.to_timedelta(frame["tx_time_seconds"], unit="s").astype("timedelta64[ns]")
    frame["tx_datetime"] = (origin.as_unit("ns") + offsets).astype("datetime64[ns]")
    frame = frame.sort_values("tx_datetime", kind="stable").reset_index(drop=True)
    frame["transaction_id"] = np.arange(len(frame), dtype=np.int64)
    frame["is_fraud"] = np.zeros(len(frame), dtype=np.int64)
    frame["fraud_scenario"] = np.zeros(len(frame), dtype=np.int64)
    return frame[COLUMNS]


def add_frauds(transactions: pd.DataFrame, customers: pd.DataFrame, terminals: pd.DataFrame) -> pd.DataFrame:
    """A copy of `transactions` with the book's three fraud scenarios, applied in order.

    1. Every amount above 220 is fraud.
    2. For each day d before the last one, two terminals (``terminal_id.sample(n=2, random_state=d)``)
       are compromised: all their transactions on days [d, d+28) are fraud.
    3. For each day d before the last one, three customers (``customer_id.sample(n=3, random_state=d)``)
       have their card details leaked: of their transactions on days [d, d+14), a third
       (``random.seed(d); random.sample(row labels, k=int(n/3))``) are fraud with the amount times 5.
    A later scenario overwrites the scenario of an earlier one, and scenario 3 windows can overlap, so a
    transaction can be multiplied by 5 more than once, as in the book. Scenario 3 samples row labels,
    as the book does, so `transactions` must keep the labels `generate_transactions` gives (0..n-1).
    """
    frame = transactions.copy()
    days = frame["tx_time_days"].to_numpy()
    terminal_ids = frame["terminal_id"]
    customer_ids = frame["customer_id"]
    amounts = frame["amount"].to_numpy(dtype=np.float64, copy=True)
    is_fraud = np.zeros(len(frame), dtype=np.int64)
    scenario = np.zeros(len(frame), dtype=np.int64)

    large = amounts > LARGE_AMOUNT
    is_fraud[large], scenario[large] = 1, 1

    last_day = int(days.max()) if len(frame) else 0
    for day in range(last_day):
        compromised = terminals["terminal_id"].sample(n=TERMINALS_COMPROMISED_PER_DAY, random_state=day)
        hit = (days >= day) & (days < day + TERMINAL_COMPROMISE_DAYS) & terminal_ids.isin(compromised).to_numpy()
        is_fraud[hit], scenario[hit] = 1, 2

    labels = frame.index.to_numpy()
    for day in range(last_day):
        compromised = customers["customer_id"].sample(n=CUSTOMERS_COMPROMISED_PER_DAY, random_state=day)
        window = (days >= day) & (days < day + CUSTOMER_COMPROMISE_DAYS) & customer_ids.isin(compromised).to_numpy()
        candidates = [int(label) for label in labels[window]]
        chosen = random.Random(day).sample(candidates, k=int(len(candidates) / 3))
        positions = frame.index.get_indexer(chosen)
        amounts[positions] = amounts[positions] * 5
        is_fraud[positions], scenario[positions] = 1, 3

    frame["amount"] = amounts
    frame["is_fraud"] = is_fraud
    frame["fraud_scenario"] = scenario
    return frame


def simulate(
    n_customers: int = 5000,
    n_terminals: int = 10000,
    nb_days: int = 183,
    radius: float = 5.0,
    start_date: str = "2018-04-01",
    processes: int = 2,
) -> pd.DataFrame:
    """The book's labelled transactions (columns `COLUMNS`), identical for identical parameters.

    `processes` only changes the speed: each customer reseeds, so any split of the customers over
    workers gives the same frame. With more than one process the workers are spawned, so a script that
    calls this at import time needs the usual ``if __name__ == "__main__":`` guard. The defaults are the
    book's set-up (about 10,000 transactions and 80 frauds a day).
    """
    if n_customers < CUSTOMERS_COMPROMISED_PER_DAY or n_terminals < TERMINALS_COMPROMISED_PER_DAY:
        raise ValueError(
            f"the fraud scenarios sample {CUSTOMERS_COMPROMISED_PER_DAY} customers and "
            f"{TERMINALS_COMPROMISED_PER_DAY} terminals a day: got {n_customers} and {n_terminals}"
        )
    if nb_days < 1 or radius <= 0 or processes < 1:
        raise ValueError(f"need nb_days >= 1, radius > 0, processes >= 1: got {nb_days}, {radius}, {processes}")
    customers = customer_profiles(n_customers)
    terminals = terminal_profiles(n_terminals)
    legitimate = generate_transactions(customers, terminals, nb_days, radius, start_date, processes)
    return add_frauds(legitimate, customers, terminals)


_SIMULATE_SIGNATURE = inspect.signature(simulate)


def cache_file_name(**size_params: object) -> str:
    """The Parquet file name for these `simulate` parameters: every parameter that changes the data
    (not `processes`), normalised so that equal simulations share one file (radius 5 and 5.0 alike)."""
    bound = _SIMULATE_SIGNATURE.bind(**size_params)
    bound.apply_defaults()
    params = bound.arguments
    start = pd.Timestamp(params["start_date"])
    start_tag = start.strftime("%Y%m%d") if start == start.normalize() else start.strftime("%Y%m%dT%H%M%S")
    return (
        f"fraud_handbook_c{int(params['n_customers'])}_t{int(params['n_terminals'])}"
        f"_d{int(params['nb_days'])}_r{float(params['radius'])!r}_s{start_tag}.parquet"
    )


def load_or_simulate(cache_dir: Path, **size_params: object) -> pd.DataFrame:
    """The simulation for these `simulate` parameters, from the Parquet cache in `cache_dir`, simulating
    and caching it on first use.

    The file is written to a temporary name in the same directory and moved into place with
    `os.replace` (atomic on one file system), so a concurrent reader sees either no file or a complete
    one; two processes simulating at once both write complete files and the last one wins. The file is
    made world-readable (temporary files are created owner-only) so services running as another user can
    share the cache.
    """
    path = Path(cache_dir) / cache_file_name(**size_params)
    if path.exists():
        return pd.read_parquet(path)
    frame = simulate(**size_params)  # type: ignore[arg-type]
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        frame.to_parquet(temporary, index=False)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return frame


def handbook_split(
    transactions: pd.DataFrame,
    start_training: str = "2018-07-25",
    delta_train: int = 7,
    delta_delay: int = 7,
    delta_test: int = 7,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The book's (train, test) transactions, all columns kept, each sorted by `transaction_id`.

    Train: transactions with `tx_datetime` in [start_training, start_training + delta_train days).
    Let D be the first train day (the smallest `tx_time_days` in train). Test day i (i = 0..delta_test-1)
    is day D + delta_train + delta_delay + i, without the customers known to be compromised by then:
    those with a fraud in the train set, plus, cumulatively, those with a fraud on day
    D + delta_train + i - 1. Labels arrive with a delay of `delta_delay` days, so on test day i the
    investigators have learnt the frauds of the delay days up to that one (for i = 0 that is the last
    train day, already known), and a card known to be compromised would already be blocked.
    """
    start = pd.Timestamp(start_training)
    moments = transactions["tx_datetime"]
    train = transactions[(moments >= start) & (moments < start + pd.Timedelta(days=delta_train))]
    if train.empty:
        raise ValueError(f"no transactions in the {delta_train} training days from {start_training}")
    known = set(train.loc[train["is_fraud"] == 1, "customer_id"])
    first_day = int(train["tx_time_days"].min())
    days = transactions["tx_time_days"]
    test_days = []
    for i in range(delta_test):
        delay_day = transactions[days == first_day + delta_train + i - 1]
        known |= set(delay_day.loc[delay_day["is_fraud"] == 1, "customer_id"])
        test_day = transactions[days == first_day + delta_train + delta_delay + i]
        test_days.append(test_day[~test_day["customer_id"].isin(known)])
    test = pd.concat(test_days)
    return train.sort_values("transaction_id"), test.sort_values("transaction_id")
