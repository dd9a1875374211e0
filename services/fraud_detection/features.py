"""The fraud feature set: the Handbook's baseline transaction features plus the amount against the
card's own habits, computed offline (training, batch) and online (HTTP, stream) by the shared window
primitives, so both forms give the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shared.features.calendar import NIGHT_ENDS_AT_HOUR, is_night, is_weekend
from shared.features.featureset import FeatureBatch, FeatureSet
from shared.features.windows import (
    DAY_SECONDS,
    WindowCounts,
    activity_windows,
    activity_windows_offline,
    delayed_label_windows,
    delayed_label_windows_offline,
    entity_order,
)
from shared.state import Record, StateStore, WindowQuery

WINDOWS_DAYS = (1, 7, 30)
TERMINAL_DELAY_DAYS = 7
CUSTOMER_NAMESPACE = "fraud.customer"
TERMINAL_NAMESPACE = "fraud.terminal"
# Event time each namespace's windows look back: the widest window, plus the label delay for terminals.
STATE_RETENTION = {
    CUSTOMER_NAMESPACE: max(WINDOWS_DAYS) * DAY_SECONDS,
    TERMINAL_NAMESPACE: (max(WINDOWS_DAYS) + TERMINAL_DELAY_DAYS) * DAY_SECONDS,
}

FEATURE_SET = FeatureSet(
    name="fraud_transaction_windows",
    version="1",
    features=(
        "amount",
        "is_weekend",
        "is_night",
        *(f"customer_nb_tx_{w}d" for w in WINDOWS_DAYS),
        *(f"customer_avg_amount_{w}d" for w in WINDOWS_DAYS),
        "amount_to_customer_avg_30d",
        *(f"terminal_nb_tx_{w}d" for w in WINDOWS_DAYS),
        *(f"terminal_risk_{w}d" for w in WINDOWS_DAYS),
    ),
)

# Columns of a transactions frame, the common shape of every input before its features.
FRAME_COLUMNS = ("event_id", "customer_id", "terminal_id", "ts", "amount", "is_weekend", "is_night", "label")


def frame_from_events(events: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Validated transaction events (as loaded by TransactionSchema) to a transactions frame."""
    moments: list[datetime] = [e["timestamp"] for e in events]
    return pd.DataFrame(
        {
            "event_id": [str(e["transaction_id"]) for e in events],
            "customer_id": [str(e["customer_id"]) for e in events],
            "terminal_id": [str(e["terminal_id"]) for e in events],
            "ts": np.array([m.timestamp() for m in moments], dtype=float),
            "amount": np.array([e["amount"] for e in events], dtype=float),
            "is_weekend": np.array([is_weekend(m) for m in moments], dtype=np.int64),
            "is_night": np.array([is_night(m) for m in moments], dtype=np.int64),
            "label": np.zeros(len(events), dtype=np.int64),
        }
    )


def frame_from_simulation(transactions: pd.DataFrame) -> pd.DataFrame:
    """The simulator's output (naive UTC datetimes, integer ids, labels) to a transactions frame."""
    moments = transactions["tx_datetime"]
    return pd.DataFrame(
        {
            "event_id": transactions["transaction_id"].astype(str).to_numpy(),
            "customer_id": transactions["customer_id"].astype(str).to_numpy(),
            "terminal_id": transactions["terminal_id"].astype(str).to_numpy(),
            "ts": (moments - pd.Timestamp("1970-01-01")).dt.total_seconds().to_numpy(dtype=float),
            "amount": transactions["amount"].to_numpy(dtype=float),
            "is_weekend": (moments.dt.day_of_week >= 5).astype(np.int64).to_numpy(),
            "is_night": (moments.dt.hour <= 6).astype(np.int64).to_numpy(),
            "label": transactions["is_fraud"].astype(np.int64).to_numpy(),
        }
    )


def events_from_simulation(transactions: pd.DataFrame) -> list[dict[str, Any]]:
    """Simulated transactions as contract-shaped event payloads (JSON-ready, timestamps in UTC)."""
    stamps = transactions["tx_datetime"].dt.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    return [
        {
            "transaction_id": str(tx),
            "timestamp": stamp,
            "customer_id": str(customer),
            "terminal_id": str(terminal),
            "amount": float(amount),
        }
        for tx, stamp, customer, terminal, amount in zip(
            transactions["transaction_id"],
            stamps,
            transactions["customer_id"],
            transactions["terminal_id"],
            transactions["amount"],
            strict=True,
        )
    ]


# ------------------------------------------------------------------ offline


def offline_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Every feature for every row of a transactions frame, from the frame's own history."""
    customer = activity_windows_offline(
        frame, entity="customer_id", ts="ts", event_id="event_id", value="amount", windows_days=WINDOWS_DAYS
    )
    terminal = delayed_label_windows_offline(
        frame,
        entity="terminal_id",
        ts="ts",
        event_id="event_id",
        label="label",
        windows_days=WINDOWS_DAYS,
        delay_days=TERMINAL_DELAY_DAYS,
    )
    own = {name: frame[name].to_numpy() for name in ("amount", "is_weekend", "is_night")}
    return _feature_frame(own, customer, terminal, frame.index)


def offline_features_of_columns(data: pa.Table, answer_from: int = 0) -> pd.DataFrame:
    """`offline_features` of validated transactions as columns (the batch engine's shape: the timestamp a
    UTC instant beside its offset in seconds), for the rows from `answer_from` on: the rows before are
    their look-back only. The same numbers as `offline_features` of the same rows as a frame (no label:
    a batch input carries none), without turning ids into Python strings: cards and terminals become
    integer codes, and the (time, id as text) order is Arrow's sort (UTF-8 bytes sort as the text does)."""
    micros = data.column("timestamp").cast(pa.int64()).to_numpy()
    times = micros / 1e6
    by_time_then_id = [("timestamp", "ascending"), ("transaction_id", "ascending")]
    in_time_order = pc.sort_indices(data, sort_keys=by_time_then_id).to_numpy().astype(np.intp)
    answer = np.arange(answer_from, data.num_rows)
    amounts = data.column("amount").to_numpy().astype(float)
    cards = _codes(data.column("customer_id"))
    customer = activity_windows(cards, times, entity_order(cards, in_time_order), amounts, WINDOWS_DAYS, answer)
    del cards
    terminals = _codes(data.column("terminal_id"))
    terminal = delayed_label_windows(
        terminals,
        times,
        entity_order(terminals, in_time_order),
        np.zeros(data.num_rows),
        WINDOWS_DAYS,
        TERMINAL_DELAY_DAYS,
        answer,
    )
    own = data.slice(answer_from)
    offsets = own.column("timestamp__offset_seconds").to_numpy().astype(np.int64)
    local = (micros[answer_from:] // 1_000_000 + offsets).astype("datetime64[s]")
    days = local.astype("datetime64[D]")
    columns = {
        "amount": amounts[answer_from:],
        "is_weekend": ((days.astype(np.int64) + 3) % 7 >= 5).astype(np.int64),
        "is_night": ((local - days).astype(np.int64) // 3600 <= NIGHT_ENDS_AT_HOUR).astype(np.int64),
    }
    return _feature_frame(columns, customer, terminal, pd.RangeIndex(len(answer)))


def _codes(ids: pa.ChunkedArray) -> np.ndarray:
    """Each id's integer code: the rank of its first appearance (missing ids, which the contract refuses, share one)."""
    return pc.index_in(ids, value_set=pc.unique(ids)).fill_null(-1).to_numpy().astype(np.int64)


def _feature_frame(
    own: Mapping[str, np.ndarray], customer: WindowCounts, terminal: WindowCounts, index: pd.Index
) -> pd.DataFrame:
    """The feature set from the event's own columns and its card's and terminal's windows."""
    columns: dict[str, np.ndarray] = {
        "amount": np.asarray(own["amount"], dtype=float),
        "is_weekend": own["is_weekend"],
        "is_night": own["is_night"],
    }
    for w in WINDOWS_DAYS:
        count, total = customer[w]
        columns[f"customer_nb_tx_{w}d"] = count
        columns[f"customer_avg_amount_{w}d"] = total / count
    for w in WINDOWS_DAYS:
        count, frauds = terminal[w]
        columns[f"terminal_nb_tx_{w}d"] = count
        columns[f"terminal_risk_{w}d"] = np.divide(frauds, count, out=np.zeros_like(frauds), where=count > 0)
    columns["amount_to_customer_avg_30d"] = _ratio(columns["amount"], columns["customer_avg_amount_30d"])
    return pd.DataFrame(columns, index=index)[list(FEATURE_SET.features)]


# ------------------------------------------------------------------ online


def online_features(events: Sequence[Mapping[str, Any]], store: StateStore) -> FeatureBatch:
    """Features for a micro-batch from the state store, in one write: the batch's events are recorded,
    then each event's windows are totalled by the store. An event so sees every event of its card or
    terminal recorded before it in (time, id) order, its own batch included, and itself: the offline
    definition exactly. (Plain Python over the events, no intermediate frame: this is the hot path.)"""
    if not events:
        return FeatureBatch.build(FEATURE_SET, np.empty((0, len(FEATURE_SET.features))))
    moments = [e["timestamp"] for e in events]
    stamps = [m.timestamp() for m in moments]
    event_ids = [str(e["transaction_id"]) for e in events]
    amounts = [float(e["amount"]) for e in events]
    customers = [str(e["customer_id"]) for e in events]
    terminals = [str(e["terminal_id"]) for e in events]
    delay = TERMINAL_DELAY_DAYS * DAY_SECONDS  # labels of a terminal's newest week are not known yet
    totals = store.append_then_total(
        {
            CUSTOMER_NAMESPACE: [
                (c, Record(ts, i, a)) for c, ts, i, a in zip(customers, stamps, event_ids, amounts, strict=True)
            ],
            TERMINAL_NAMESPACE: [(t, Record(ts, i)) for t, ts, i in zip(terminals, stamps, event_ids, strict=True)],
        },
        {
            CUSTOMER_NAMESPACE: [
                WindowQuery(c, tuple(ts - w * DAY_SECONDS for w in WINDOWS_DAYS), ts, i)
                for c, ts, i in zip(customers, stamps, event_ids, strict=True)
            ],
            TERMINAL_NAMESPACE: [
                WindowQuery(t, tuple(ts - delay - w * DAY_SECONDS for w in WINDOWS_DAYS), ts - delay)
                for t, ts in zip(terminals, stamps, strict=True)
            ],
        },
    )
    rows = []
    for moment, amount, activity, risk in zip(
        moments, amounts, totals[CUSTOMER_NAMESPACE], totals[TERMINAL_NAMESPACE], strict=True
    ):
        row: dict[str, float] = {"amount": amount, "is_weekend": is_weekend(moment), "is_night": is_night(moment)}
        for w, window in zip(WINDOWS_DAYS, activity, strict=True):
            row[f"customer_nb_tx_{w}d"] = float(window.count)
            row[f"customer_avg_amount_{w}d"] = window.value / window.count
        for w, window in zip(WINDOWS_DAYS, risk, strict=True):
            row[f"terminal_nb_tx_{w}d"] = float(window.count)
            row[f"terminal_risk_{w}d"] = window.positives / window.count if window.count else 0.0
        row["amount_to_customer_avg_30d"] = float(_ratio(amount, row["customer_avg_amount_30d"]))
        rows.append([row[name] for name in FEATURE_SET.features])
    return FeatureBatch.build(FEATURE_SET, rows)


def record_history(store: StateStore, frame: pd.DataFrame, card_key: Callable[[str], str]) -> None:
    """Load a labelled transaction history into the state store (warm start, or confirmed-fraud feedback).
    `card_key` turns a raw card id into the key the scored events' windows use (the runtime's `entity_key`,
    the card's pseudonym), so the history is found and the raw id is not stored."""
    keys = {card: card_key(card) for card in frame["customer_id"].unique()}
    customers = [
        (keys[c], Record(ts=t, id=i, value=a))
        for c, t, i, a in zip(frame["customer_id"], frame["ts"], frame["event_id"], frame["amount"], strict=True)
    ]
    terminals = [
        (term, Record(ts=t, id=i, label=int(label)))
        for term, t, i, label in zip(frame["terminal_id"], frame["ts"], frame["event_id"], frame["label"], strict=True)
    ]
    store.append(CUSTOMER_NAMESPACE, customers)
    store.append(TERMINAL_NAMESPACE, terminals)


def record_labels(labelled: Sequence[tuple[Mapping[str, Any], int]], store: StateStore) -> None:
    """Confirmed outcomes (a transaction as recorded, its label) into the terminal windows, where later
    payments' terminal-risk features read them once the label delay has passed, as offline."""
    store.set_labels(
        TERMINAL_NAMESPACE,
        [(str(event["terminal_id"]), str(event["transaction_id"]), label) for event, label in labelled],
    )


def _ratio(amount: Any, average: Any) -> Any:
    """The amount against the card's average; 1 when there is no average. Scalars or arrays alike."""
    if np.ndim(average) == 0:
        return amount / average if average > 0 else 1.0
    positive = np.asarray(average) > 0
    return np.where(positive, np.asarray(amount) / np.where(positive, average, 1.0), 1.0)


# ------------------------------------------------------------------ reasons in plain words


def _counted(number: float, noun: str) -> str:
    """'1 transaction', '7 transactions' (numbers shown rounded to units)."""
    shown = f"{number:.0f}"
    return f"{shown} {noun}" if shown == "1" else f"{shown} {noun}s"


def reason_text(feature: str, features: Mapping[str, Any]) -> str:
    value = features[feature]
    daily_habit = features["customer_nb_tx_30d"] / 30.0
    average_30d = features["customer_avg_amount_30d"]
    window = feature.rsplit("_", 1)[-1]
    days = int(window.rstrip("d")) if window.endswith("d") and window[:-1].isdigit() else None
    if feature.startswith("customer_nb_tx_") and days:
        period = "24 hours" if days == 1 else f"{days} days"
        return f"{_counted(value, 'transaction')} on this card in the last {period}, usually {daily_habit * days:.0f}"
    if feature.startswith("customer_avg_amount_") and days:
        period = "24 hours" if days == 1 else f"{days} days"
        return f"average amount {value:.2f} on this card in the last {period}, against {average_30d:.2f} over 30 days"
    if feature == "amount":
        return f"amount {value:.2f}, against this card's 30-day average of {average_30d:.2f}"
    if feature == "amount_to_customer_avg_30d":
        return f"amount is {value:.1f} times this card's 30-day average of {average_30d:.2f}"
    if feature.startswith("terminal_risk_") and days:
        count = features[f"terminal_nb_tx_{days}d"]
        verb = "was" if f"{count:.0f}" == "1" else "were"
        return (
            f"{value:.0%} of the {_counted(count, 'transaction')} at this terminal in the {_counted(days, 'day')} "
            f"before last week {verb} confirmed fraud"
        )
    if feature.startswith("terminal_nb_tx_") and days:
        return f"{_counted(value, 'transaction')} at this terminal in the {_counted(days, 'day')} before last week"
    if feature == "is_night":
        return "made at night (00:00 to 06:59)" if value else "made in the daytime"
    if feature == "is_weekend":
        return "made at the weekend" if value else "made on a weekday"
    return f"{feature} = {value}"
